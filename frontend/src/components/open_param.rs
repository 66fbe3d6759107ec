//! What global search opened: the id a page's query string names
//! (`/assets?vm=ID`; the parameter names are `shared_types::search::route`),
//! the row or card drawn for it marked `focused` and brought into view.

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_location, use_navigate, use_query_map};
use leptos_router::NavigateOptions;

/// The id the query string names under `param`, if any.
pub fn use_open_param(param: &'static str) -> Memo<Option<String>> {
    let query = use_query_map();
    Memo::new(move |_| query.with(|q| q.get(param)).filter(|s| !s.is_empty()))
}

/// Brings the element with `data-open-id` equal to the id `param` names
/// into view once it is drawn (lists load after the page).
pub fn scroll_to_opened(param: &'static str) {
    let id = use_open_param(param);
    Effect::new(move |_| {
        let Some(id) = id.get() else { return };
        // Ids are UUIDs and names: anything else is not looked for.
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return;
        }
        let selector = format!("[data-open-id=\"{id}\"]");
        spawn_local(async move {
            for _ in 0..50 {
                if let Some(el) = document().query_selector(&selector).ok().flatten() {
                    el.scroll_into_view();
                    return;
                }
                TimeoutFuture::new(100).await;
            }
        });
    });
}

/// Calls `open` with the id `param` names, then takes it out of the
/// address (so the same search opens it again after it was closed).
pub fn open_from_param(param: &'static str, open: impl Fn(String) + 'static) {
    let id = use_open_param(param);
    let location = use_location();
    let navigate = use_navigate();
    Effect::new(move |_| {
        let Some(found) = id.get() else { return };
        open(found);
        let path = location.pathname.get_untracked();
        navigate(&path, NavigateOptions { replace: true, ..Default::default() });
    });
}
