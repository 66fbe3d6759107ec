//! The newest value a refetching resource read, for views that update in
//! place: a resource that reads again on every `job_update` (`jobs_version`)
//! would, read directly in a `move ||` closure, render its whole subtree
//! again each time (and under `erase_components` every element in it loses
//! and regains all its attributes). The memo keeps the last value while the
//! next read loads and wakes its readers only when the value changed, so
//! views built from it with keyed lists (`For`) and memos patch what moved.

use leptos::prelude::*;

use crate::api::ApiError;
use crate::fetch::Fetch;

/// `None` until the first read ends; then the newest read's value or its
/// error's message.
pub fn latest<T>(resource: Fetch<Result<T, ApiError>>) -> Memo<Option<Result<T, String>>>
where
    T: Clone + PartialEq + Send + Sync + 'static,
{
    Memo::new(move |prev: Option<&Option<Result<T, String>>>| match resource.get() {
        Some(read) => Some(read.map_err(|e| e.message)),
        None => prev.cloned().flatten(),
    })
}
