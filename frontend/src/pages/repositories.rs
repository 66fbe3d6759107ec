//! Repositories: where backups live, with capacity, the engine's real
//! deduplication and compression, and maintenance (new backups refused,
//! queued ones wait) entered with a reason and ended by an operator, and the
//! encryption key of an encrypted repository downloaded for safekeeping
//! (admins, behind a confirmation that says what the key allows).

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::repositories::{Repository, RepositoryStatus, SetMaintenanceRequest};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::instruments::Meter;
use crate::components::modal::Modal;
use crate::format::{format_bytes, when};
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::session::{needs, use_session};

#[component]
pub fn RepositoriesPage() -> impl IntoView {
    let d = nav::for_path("/repositories").expect("Repositories is in the navigation table");
    let live = use_live();
    let version = RwSignal::new(0u32);
    let repos = LocalResource::new(move || {
        version.get();
        live.jobs_version.get();
        api::repositories()
    });
    view! {
        <section class="page" data-testid="page-repositories">
            <PageHeader label=d.label purpose=d.purpose />
            <Transition fallback=|| view! { <p class="muted">"Reading the repositories…"</p> }>
                {move || repos.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(list) => view! {
                        <div class="card-grid">
                            {list.into_iter().map(|r| view! { <RepositoryCard r=r version=version /> }).collect_view()}
                        </div>
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}

fn status_class(s: RepositoryStatus) -> &'static str {
    match s {
        RepositoryStatus::Online => "operational",
        RepositoryStatus::Maintenance => "caution",
        RepositoryStatus::Unavailable => "warning",
    }
}

#[component]
fn RepositoryCard(r: Repository, version: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let act = Act::new();
    let reason = RwSignal::new(String::new());
    let id = StoredValue::new(r.id.clone());
    let set = move |enabled: bool| {
        let req = SetMaintenanceRequest { enabled, reason: enabled.then(|| reason.get_untracked()) };
        act.run(api::set_maintenance(id.get_value(), req), move |_| {
            reason.set(String::new());
            version.update(|v| *v += 1);
        });
    };
    let admin = move || session.can(Role::Admin);
    let key_title = move || if admin() { String::new() } else { needs(Role::Admin, session.user.get().as_ref()) };
    let key_open = RwSignal::new(false);
    let understood = RwSignal::new(false);
    let key_href = StoredValue::new(api::repository_key_url(&r.id));
    let encryption = match (&r.encrypted, &r.key_fingerprint) {
        (true, Some(fp)) => format!("AES-256-GCM, key {fp}"),
        (true, None) => "AES-256-GCM".to_string(),
        (false, _) => "none".to_string(),
    };
    let capacity = r.capacity.clone();
    let used = capacity.as_ref().map(|c| (c.total_bytes - c.free_bytes.min(c.total_bytes)) as f32 * 100.0 / c.total_bytes.max(1) as f32);
    let caption = capacity
        .as_ref()
        .map(|c| format!("{} free of {}", format_bytes(c.free_bytes), format_bytes(c.total_bytes)))
        .unwrap_or_else(|| "unknown".into());
    view! {
        <div class="card repo-card" data-testid=format!("repo-{}", r.name) data-status=r.status.as_str()>
            <div class="card-head">
                <h2>{r.name.to_uppercase()}</h2>
                <span class=format!("status-pill {}", status_class(r.status)) data-testid="repo-status">{r.status.as_str()}</span>
            </div>
            <dl class="facts">
                <dt>"Kind"</dt><dd>{r.kind.as_str()}</dd>
                <dt>"Path"</dt><dd class="mono">{r.path.clone()}</dd>
                <dt>"Restore points"</dt><dd class="mono">{r.backup_count}</dd>
                <dt>"Encryption"</dt><dd class="mono" data-testid="repo-encryption">{encryption}</dd>
                {r.stats.clone().map(|s| view! {
                    <dt>"Protected data"</dt><dd class="mono">{format_bytes(s.logical_bytes)}</dd>
                    <dt>"Stored"</dt><dd class="mono">{format_bytes(s.repository_bytes)}</dd>
                    <dt>"Deduplication"</dt><dd class="mono">{format!("{:.2}:1", s.dedup_ratio)}</dd>
                    <dt>"Compression"</dt><dd class="mono">{format!("{:.2}:1", s.compression_ratio)}</dd>
                })}
            </dl>
            <Meter label="SPACE USED" percent=Signal::derive(move || used) caption=Signal::derive(move || caption.clone()) testid="repo-space" />
            {r.error.clone().map(|e| view! { <p class="notice warning">{e}</p> })}
            {match r.maintenance.clone() {
                Some(m) => view! {
                    <p class="notice caution" data-testid="repo-maintenance">
                        {format!("In maintenance since {}{}: {}. New backups are refused; queued ones wait.",
                            when(m.since), m.by.map(|b| format!(" (by {b})")).unwrap_or_default(), m.reason)}
                    </p>
                    <div class="action-row">
                        <button class="button primary small" data-testid="repo-maintenance-end" title=title
                            disabled=move || !operator() || act.busy.get() on:click=move |_| set(false)>"End maintenance"</button>
                    </div>
                }.into_any(),
                None => view! {
                    <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); set(true); }>
                        <input type="text" placeholder="Reason, e.g. disk replacement" data-testid="repo-maintenance-reason"
                            prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev)) />
                        <button class="button small" type="submit" data-testid="repo-maintenance-enter" title=title
                            disabled=move || !operator() || act.busy.get()>"Enter maintenance"</button>
                    </form>
                }.into_any(),
            }}
            {r.encrypted.then(|| view! {
                <div class="action-row">
                    <button class="button small" data-testid="repo-key-download" title=key_title disabled=move || !admin()
                        on:click=move |_| { understood.set(false); key_open.set(true); }>"Download key"</button>
                </div>
                <Modal open=key_open title="Download the repository key" testid="repo-key-dialog">
                    <p class="notice warning" data-testid="repo-key-warning">
                        "Anyone holding this key and a copy of the repository can read every backup in it. "
                        "Store it offline, apart from the repository, where only trusted people can reach it."
                    </p>
                    <p class="notice caution">
                        "Without this key nothing in the repository can be restored if the server's data directory is lost. "
                        "The download is recorded in the audit log."
                    </p>
                    <label class="check">
                        <input type="checkbox" data-testid="repo-key-understood"
                            prop:checked=move || understood.get() on:change=move |ev| understood.set(event_target_checked(&ev)) />
                        " I understand and will keep the key safe"
                    </label>
                    <div class="action-row">
                        <button class="button small" on:click=move |_| key_open.set(false)>"Cancel"</button>
                        <Show when=move || understood.get()
                            fallback=|| view! { <button class="button primary small" disabled=true>"Download key"</button> }>
                            <a class="button primary small" data-testid="repo-key-confirm" href=move || key_href.get_value() download=""
                                on:click=move |_| key_open.set(false)>"Download key"</a>
                        </Show>
                    </div>
                </Modal>
            })}
            <ActError act=act testid="repo-error" />
        </div>
    }
}
