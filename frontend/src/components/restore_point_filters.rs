//! RECOVERY's restore points: filters (VM, repository, type, check,
//! immutability, taken between two days; the server filters and pages)
//! over the restore point table.

use chrono::{Duration, NaiveDate};
use leptos::prelude::*;
use shared_types::backups::BackupStatus;
use shared_types::jobs::BackupType;

use crate::api;
use crate::components::restore_points::RestorePointsTable;
use crate::fetch::Fetch;

/// Restore points per page.
const PAGE: u64 = 25;

/// The filter selects and the paged table.
#[component]
pub fn RestorePointBrowser() -> impl IntoView {
    let vm = RwSignal::new(String::new());
    let repository = RwSignal::new(String::new());
    let kind = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    let immutable = RwSignal::new(String::new());
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let offset = RwSignal::new(0u64);
    let vms = Fetch::new(api::vm_contexts);
    let repos = Fetch::new(api::repositories);
    let bad_dates = move || {
        let (f, t) = (day(&from.get()), day(&to.get()));
        matches!((f, t), (Some(f), Some(t)) if f > t)
    };
    let query = Signal::derive(move || {
        let enc = |s: &str| String::from(js_sys::encode_uri_component(s));
        let mut q = Vec::new();
        for (key, value) in [("vm", vm.get()), ("repository", repository.get()), ("type", kind.get()), ("status", status.get()), ("immutable", immutable.get())] {
            if !value.is_empty() {
                q.push(format!("{key}={}", enc(&value)));
            }
        }
        // Whole days in UTC: from the start of the first to the end of the last.
        if let Some(d) = day(&from.get()) {
            q.push(format!("from={}T00:00:00Z", d.format("%Y-%m-%d")));
        }
        if let Some(d) = day(&to.get()) {
            q.push(format!("to={}T00:00:00Z", (d + Duration::days(1)).format("%Y-%m-%d")));
        }
        q.join("&")
    });
    // A changed filter starts again at the newest.
    Effect::new(move |prev: Option<String>| {
        let q = query.get();
        if prev.is_some_and(|p| p != q) {
            offset.set(0);
        }
        q
    });
    let any = move || !query.get().is_empty();
    let clear = move |_| {
        for s in [vm, repository, kind, status, immutable, from, to] {
            s.set(String::new());
        }
    };
    let select = |label: &'static str, testid: &'static str, value: RwSignal<String>, options: Vec<(String, String)>| {
        view! {
            <label>{label}
                <select data-testid=testid prop:value=move || value.get() on:change=move |ev| value.set(event_target_value(&ev))>
                    {options.into_iter().map(|(v, text)| {
                        let selected = value.get_untracked() == v;
                        view! { <option value=v selected=selected>{text}</option> }
                    }).collect_view()}
                </select>
            </label>
        }
    };
    view! {
        <div class="filter-bar" data-testid="point-filters">
            <label>"VM"
                <select data-testid="point-filter-vm" prop:value=move || vm.get() on:change=move |ev| vm.set(event_target_value(&ev))>
                    <option value="">"Any VM"</option>
                    {move || vms.get().and_then(|r| r.ok()).map(|p| p.items).unwrap_or_default().into_iter().filter(|v| v.backup_count > 0).map(|v| {
                        let selected = vm.get_untracked() == v.id;
                        view! { <option value=v.id.clone() selected=selected>{v.name}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Repository"
                <select data-testid="point-filter-repository" prop:value=move || repository.get() on:change=move |ev| repository.set(event_target_value(&ev))>
                    <option value="">"Any repository"</option>
                    {move || repos.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|r| {
                        let selected = repository.get_untracked() == r.id;
                        view! { <option value=r.id.clone() selected=selected>{r.name}</option> }
                    }).collect_view()}
                </select>
            </label>
            {select("Type", "point-filter-type", kind, vec![
                (String::new(), "Any type".into()),
                (BackupType::Full.as_str().into(), "full".into()),
                (BackupType::Incremental.as_str().into(), "incremental".into()),
            ])}
            {select("Check", "point-filter-status", status, vec![
                (String::new(), "Any check".into()),
                (BackupStatus::Verified.as_str().into(), "verified".into()),
                (BackupStatus::Corrupt.as_str().into(), "damaged (verify failed)".into()),
                (BackupStatus::Available.as_str().into(), "not verified yet".into()),
            ])}
            {select("Immutability", "point-filter-immutable", immutable, vec![
                (String::new(), "Any".into()),
                ("true".into(), "immutable now".into()),
                ("false".into(), "deletable".into()),
            ])}
            <label>"Taken from"
                <input type="date" data-testid="point-filter-from" prop:value=move || from.get() on:change=move |ev| from.set(event_target_value(&ev)) />
            </label>
            <label>"to"
                <input type="date" data-testid="point-filter-to" prop:value=move || to.get() on:change=move |ev| to.set(event_target_value(&ev)) />
            </label>
            <button class="button small" data-testid="point-filter-clear" disabled=move || !any() on:click=clear>"Clear filters"</button>
        </div>
        <Show when=bad_dates>
            <p class="notice caution" data-testid="point-filter-dates">"The first day comes after the last: swap them."</p>
        </Show>
        <RestorePointsTable query=query offset=offset page=PAGE />
    }
}

/// A date input's value (`YYYY-MM-DD`), if it holds one.
fn day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}
