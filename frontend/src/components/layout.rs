//! Which side panels are open. Defaults follow the viewport: both open above
//! 1280 px, the context panel folded up to 1280 px, both folded (and shown as
//! overlays when opened) at 768 px and below.

use leptos::prelude::*;

#[derive(Clone, Copy)]
pub struct Layout {
    pub left_open: RwSignal<bool>,
    pub right_open: RwSignal<bool>,
}

pub fn viewport_width() -> f64 {
    web_sys::window().and_then(|w| w.inner_width().ok()).and_then(|v| v.as_f64()).unwrap_or(1440.0)
}

/// Whether panels float over the page instead of taking room beside it.
pub fn panels_overlay() -> bool {
    viewport_width() <= 768.0
}

pub fn provide_layout() -> Layout {
    let width = viewport_width();
    let layout = Layout { left_open: RwSignal::new(width > 768.0), right_open: RwSignal::new(width > 1280.0) };
    provide_context(layout);
    layout
}

pub fn use_layout() -> Layout {
    expect_context::<Layout>()
}

impl Layout {
    /// After navigating on a small screen, overlays get out of the way.
    pub fn close_overlays(&self) {
        if panels_overlay() {
            self.left_open.set(false);
            self.right_open.set(false);
        }
    }
}
