//! The Sendense cockpit, mounted on `<body>`.

mod api;
mod app;
mod components;
mod format;
mod live;
mod nav;
mod pages;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
