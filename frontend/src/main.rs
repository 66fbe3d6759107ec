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

use std::cell::Cell;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

thread_local! {
    static MOUNTED: Cell<bool> = const { Cell::new(false) };
}

/// Longest wait for the shell's paint: a tab in the background gets no
/// animation frames, and the app must start there too.
const PAINT_WAIT_MS: u32 = 100;

fn main() {
    // The app mounts after the browser has painted index.html's loading shell
    // (the page's name and purpose, from the server): an animation frame, then
    // a task after that frame's paint. On a fast link the wasm can otherwise
    // start before the first paint, and the shell is never seen.
    gloo_timers::callback::Timeout::new(PAINT_WAIT_MS, mount).forget();
    let after_paint = Closure::once_into_js(|| gloo_timers::callback::Timeout::new(0, mount).forget());
    let framed = web_sys::window().is_some_and(|w| w.request_animation_frame(after_paint.unchecked_ref()).is_ok());
    if !framed {
        mount();
    }
}

/// Replaces the loading shell with the app, once.
fn mount() {
    if MOUNTED.with(|m| m.replace(true)) {
        return;
    }
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
