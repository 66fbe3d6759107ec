//! The Sendense cockpit, mounted on `<body>`.

mod api;
mod app;
mod components;
mod fetch;
mod format;
mod job_view;
mod latest;
mod live;
mod nav;
mod pages;
mod session;

fn main() {
    // index.html's loader (Trunk.toml's pattern_script) fetches this wasm
    // only after the browser has painted the loading shell, so the app can
    // mount at once; in a task of its own, not in the one that instantiated
    // the wasm: two shorter tasks block the page less than one long one
    // (components/later.rs splits the shell's first render the same way).
    leptos::prelude::set_timeout(mount, std::time::Duration::ZERO);
}

/// Replaces the loading shell with the app.
fn mount() {
    // index.html's loading shell goes in the same task the app mounts in:
    // no frame shows both.
    if let Some(boot) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("boot")) {
        boot.remove();
    }
    leptos::mount::mount_to_body(app::App);
    // Lets tests and operators measure navigation → first render of the shell.
    if let Some(perf) = web_sys::window().and_then(|w| w.performance()) {
        let _ = perf.mark("sendense-shell-mounted");
    }
}
