//! Parts of the shell the first frame does not need, built in later tasks.
//!
//! The shell's first render is one long task on the browser's main thread
//! (Lighthouse counts what a task takes over 50 ms as blocking time). Built
//! in one go, the page, the side panels (folded on small screens), the status
//! bar and the modals' watchers made one task of 215-260 ms in Lighthouse's
//! simulated phone; wrapped in [`Later`], each part is built in a task of its
//! own right after the page's.

use std::time::Duration;

use leptos::prelude::*;

/// Builds `children` in a task after the current one (a timer of `step`
/// ms; parts with the same step come in the order they were declared, each
/// in its own task).
#[component]
pub fn Later(#[prop(optional)] step: u64, children: ChildrenFn) -> impl IntoView {
    let ready = RwSignal::new(false);
    set_timeout(move || ready.set(true), Duration::from_millis(step));
    move || ready.get().then(|| children())
}
