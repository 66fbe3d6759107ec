//! The Sendense cockpit, mounted on `<body>`.

mod api;
mod app;
mod components;
mod format;
mod job_view;
mod live;
mod nav;
mod pages;
mod session;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
    // Lets tests and operators measure navigation → first render of the shell.
    if let Some(perf) = web_sys::window().and_then(|w| w.performance()) {
        let _ = perf.mark("sendense-shell-mounted");
    }
}
