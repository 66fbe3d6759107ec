//! Restore points with their two ways back: Browse files (a file-level
//! session) and Restore VM (the RecoveryWizard); their chain and Delete. The shell provides one
//! [`RestoreHub`] so every page (RECOVERY, ASSETS, the FlowDetailsModal)
//! opens the same FileBrowser, wizard and per-VM restore point list.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::jobs::JobKind;
use shared_types::backups::{Backup, BackupStatus, ChainRelation, LockEnforcer, RestorePointLock};
use shared_types::restore::Mount;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::file_browser::FileBrowserModal;
use crate::components::point_locations::PointLocations;
use crate::components::restore_wizard::RestoreWizardModal;
use crate::fetch::Fetch;
use crate::format::{format_bytes, when};
use crate::session::{needs, use_session};

/// What is open for restoring, shared by the whole cockpit.
#[derive(Clone, Copy)]
pub struct RestoreHub {
    /// The file-level session shown in the FileBrowser.
    pub browsing: RwSignal<Option<Mount>>,
    /// The restore point the RecoveryWizard starts from.
    pub restoring: RwSignal<Option<Backup>>,
    /// The VM (id, name) whose restore points are listed in a modal.
    pub points_of: RwSignal<Option<(String, String)>>,
    /// The restore point global search opened: marked in the lists.
    pub opened: RwSignal<Option<String>>,
    /// Bumped when sessions open or close, so lists of them refresh.
    pub sessions_version: RwSignal<u32>,
    /// The restore point whose chain is shown.
    pub chain_of: RwSignal<Option<String>>,
    /// Bumped when a restore point is deleted, so lists of them refresh.
    pub points_version: RwSignal<u32>,
    /// The last copy queued from a list: (restore point id, what was
    /// queued). Kept here because queueing reloads the list and rebuilds
    /// its rows.
    pub copy_queued: RwSignal<Option<(String, String)>>,
}

pub fn provide_restore_hub() -> RestoreHub {
    let hub = RestoreHub {
        browsing: RwSignal::new(None),
        restoring: RwSignal::new(None),
        points_of: RwSignal::new(None),
        opened: RwSignal::new(None),
        sessions_version: RwSignal::new(0),
        chain_of: RwSignal::new(None),
        points_version: RwSignal::new(0),
        copy_queued: RwSignal::new(None),
    };
    provide_context(hub);
    hub
}

pub fn use_restore_hub() -> RestoreHub {
    expect_context::<RestoreHub>()
}

/// The modals of the hub; rendered once by the shell, after the page so
/// they stack above the page's own modals.
#[component]
pub fn RestoreModals() -> impl IntoView {
    let hub = use_restore_hub();
    // Closing the browser refreshes session lists (expiry times moved).
    Effect::new(move |was_open: Option<bool>| {
        let open = hub.browsing.with(Option::is_some);
        if was_open == Some(true) && !open {
            hub.sessions_version.update(|v| *v += 1);
        }
        open
    });
    view! {
        <VmPointsModal />
        <ChainModal />
        <FileBrowserModal mount=hub.browsing />
        <RestoreWizardModal open=hub.restoring />
    }
}

/// A button opening the restore points of one VM.
#[component]
pub fn RestoreVmButton(vm_id: String, vm_name: String, points: u64) -> impl IntoView {
    let hub = use_restore_hub();
    let session = use_session();
    let testid = format!("restore-points-{vm_name}");
    let title = move || {
        if !session.can(Role::Operator) {
            needs(Role::Operator, session.user.get().as_ref())
        } else if points == 0 {
            "No restore point yet".to_string()
        } else {
            "Browse files or restore the VM from one of its restore points".to_string()
        }
    };
    view! {
        <button class="button small" data-testid=testid title=title disabled=move || points == 0 || !session.can(Role::Operator)
            on:click=move |_| hub.points_of.set(Some((vm_id.clone(), vm_name.clone())))>"Restore…"</button>
    }
}

#[component]
fn VmPointsModal() -> impl IntoView {
    let hub = use_restore_hub();
    view! {
        {move || hub.points_of.get().map(|(id, name)| view! {
            <div class="modal-backdrop" on:click=move |_| hub.points_of.set(None)>
                <div class="modal wide" role="dialog" aria-modal="true" aria-label="Restore points" data-testid="vm-points"
                    on:click=|ev| ev.stop_propagation()>
                    <header class="modal-head">
                        <h2>{format!("RESTORE POINTS · {name}")}</h2>
                        <button class="icon-button" aria-label="Close" data-testid="vm-points-close" on:click=move |_| hub.points_of.set(None)>"✕"</button>
                    </header>
                    <div class="modal-body">
                        <RestorePointsTable query=format!("vm={id}") />
                    </div>
                </div>
            </div>
        })}
    }
}

/// Restore points answering `query` (`GET /backup/list?…`), newest first,
/// each with Browse files, Restore VM, its chain and Delete. With `offset`,
/// a pager of `page` points moves through every match.
#[component]
pub fn RestorePointsTable(
    #[prop(into)] query: Signal<String>,
    #[prop(optional)] offset: Option<RwSignal<u64>>,
    #[prop(default = 50)] page: u64,
) -> impl IntoView {
    let hub = use_restore_hub();
    let live = crate::live::use_live();
    // Backups and copies that ended while the list is shown add restore
    // points or locations: the list is read again when their count changes.
    let settled = Memo::new(move |_| {
        live.job_states.with(|m| {
            m.values()
                .filter(|j| matches!(j.kind, JobKind::Backup | JobKind::Copy) && j.status.is_finished())
                .count()
        })
    });
    let points = Fetch::new(move || {
        hub.sessions_version.get();
        hub.points_version.get();
        settled.get();
        let q = query.get();
        let from = offset.map(|o| o.get()).unwrap_or(0);
        api::backups(format!("{q}{}limit={page}&offset={from}", if q.is_empty() { "" } else { "&" }))
    });
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading restore points…"</p> }>
            {move || points.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning" data-testid="restore-points-error">{e.message}</p> }.into_any(),
                Ok(p) if p.items.is_empty() && offset.is_some() => view! {
                    <p class="muted" data-testid="no-restore-points">"No restore point matches: change or clear the filters."</p>
                }.into_any(),
                Ok(p) if p.items.is_empty() => view! {
                    <p class="muted" data-testid="no-restore-points">"No restore point yet: back up a VM from ASSETS or FLOWS."</p>
                }.into_any(),
                Ok(p) => {
                    let total = p.total;
                    let from = offset.map(|o| o.get_untracked()).unwrap_or(0);
                    let shown = p.items.len() as u64;
                    view! {
                        <div class="table-wrap">
                            <table class="table points-table" data-testid="restore-points" data-total=total>
                                <thead><tr><th>"VM"</th><th>"Taken"</th><th>"Type"</th><th>"Check"</th><th class="hide-narrow">"Immutable"</th>
                                    <th class="hide-narrow">"Size"</th><th class="hide-narrow">"Stored in"</th><th></th></tr></thead>
                                <tbody>
                                    {p.items.into_iter().map(|b| view! { <PointRow b=b /> }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        {offset.map(|o| view! {
                            <div class="pager">
                                <span class="muted small" data-testid="points-range">{format!("{}–{} of {total}", (from + 1).min(total), from + shown)}</span>
                                <button class="button small" data-testid="points-newer" disabled=from == 0
                                    on:click=move |_| o.update(|x| *x = x.saturating_sub(page))>"Newer"</button>
                                <button class="button small" data-testid="points-older" disabled={from + shown >= total}
                                    on:click=move |_| o.update(|x| *x += page)>"Older"</button>
                            </div>
                        })}
                    }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn PointRow(b: Backup) -> impl IntoView {
    let hub = use_restore_hub();
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { "Read its files".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let act = Act::new();
    let removal = Act::new();
    let confirming = RwSignal::new(false);
    let id = b.id.clone();
    let whole = b.clone();
    let this = b.id.clone();
    let open = move |_| {
        act.run(api::mount(id.clone()), move |m| {
            hub.sessions_version.update(|v| *v += 1);
            hub.browsing.set(Some(m));
        })
    };
    let chain_id = b.id.clone();
    let delete_id = b.id.clone();
    let remove = move |_| {
        confirming.set(false);
        removal.run(api::delete_backup(delete_id.clone()), move |_| hub.points_version.update(|v| *v += 1));
    };
    let locked = locked_at(b.immutable_until);
    let lock_note = StoredValue::new(lock_ahead(&b.lock).map(|l| format!("{}: it cannot be deleted before then", lock_title(&l))));
    let delete_title = move || {
        if !operator() {
            needs(Role::Operator, session.user.get().as_ref())
        } else if let Some(note) = lock_note.get_value() {
            note
        } else if let Some(u) = locked {
            format!("Immutable until {}: the server refuses to delete it before then", when(u))
        } else {
            "Deletes its snapshot from the repository; the points that read from it stay whole".to_string()
        }
    };
    view! {
        <tr data-testid=format!("point-{}", b.id) data-vm=b.vm_name.clone() data-open-id=b.id.clone() data-type=b.backup_type.as_str()
            data-immutable=locked.is_some().to_string()
            class:focused=move || hub.opened.with(|o| o.as_ref() == Some(&this))>
            <td class="vm-name">{b.vm_name.clone()}</td>
            <td class="mono">{when(b.created_at)}</td>
            <td>{b.backup_type.as_str()}</td>
            <td data-label="Check"><VerifyCell b=b.clone() /></td>
            <td class="hide-narrow" data-label="Immutable" data-testid="point-immutable"><LockCell b=b.clone() /></td>
            <td class="mono hide-narrow" data-label="Size">{format_bytes(b.logical_bytes)}</td>
            <td class="hide-narrow" data-label="Stored in"><PointLocations b=b.clone() /></td>
            <td class="point-actions">
                <span class="action-row">
                    <button class="button small" data-testid=format!("browse-{}", b.id) title=title disabled=move || !operator() || act.busy.get() on:click=open>
                        {move || if act.busy.get() { "Opening…" } else { "Browse files" }}
                    </button>
                    <button class="button small primary" data-testid=format!("restore-{}", b.id) title=title disabled=move || !operator()
                        on:click=move |_| hub.restoring.set(Some(whole.clone()))>"Restore VM"</button>
                    <button class="button small" data-testid=format!("chain-{}", b.id) title="The restore points it reads from and that read from it"
                        on:click=move |_| hub.chain_of.set(Some(chain_id.clone()))>"Chain"</button>
                    {move || if confirming.get() {
                        view! {
                            <span class="action-row confirm-delete">
                                <button class="button small danger" data-testid="point-delete-confirm" on:click=remove.clone()>"Delete restore point"</button>
                                <button class="button small" on:click=move |_| confirming.set(false)>"Keep"</button>
                            </span>
                        }.into_any()
                    } else {
                        view! {
                            <button class="button small danger" data-testid="point-delete" title=delete_title disabled=move || !operator() || removal.busy.get()
                                on:click=move |_| confirming.set(true)>{move || if removal.busy.get() { "Deleting…" } else { "Delete" }}</button>
                        }.into_any()
                    }}
                </span>
            </td>
        </tr>
        // What went wrong, across the whole row (the action cell is narrow).
        <Show when=move || act.error.with(Option::is_some) || removal.error.with(Option::is_some)>
            <tr class="point-problem">
                <td colspan="8">
                    <ActError act=act testid="browse-error" />
                    <ActError act=removal testid="point-delete-error" />
                </td>
            </tr>
        </Show>
    }
}

/// A restore point's chain from the catalog's parent links, oldest first.
#[component]
fn ChainModal() -> impl IntoView {
    let hub = use_restore_hub();
    let chain = Fetch::new(move || {
        let id = hub.chain_of.get();
        hub.points_version.get();
        async move {
            match id {
                Some(id) => api::point_chain(id).await.map(Some),
                None => Ok(None),
            }
        }
    });
    let close = move || hub.chain_of.set(None);
    view! {
        {move || hub.chain_of.get().is_some().then(|| view! {
            <div class="modal-backdrop" on:click=move |_| close()>
                <div class="modal wide" role="dialog" aria-modal="true" aria-label="Restore point chain" data-testid="point-chain"
                    on:click=|ev| ev.stop_propagation()>
                    <header class="modal-head">
                        <h2>"CHAIN"</h2>
                        <button class="icon-button" aria-label="Close" data-testid="point-chain-close" on:click=move |_| close()>"✕"</button>
                    </header>
                    <div class="modal-body">
                        <p class="muted small">"An incremental reads the blocks that did not change from the point before it. Each restore point is still a whole image in the repository: deleting one leaves the others restorable (the chunks they share stay until no point uses them)."</p>
                        <Transition fallback=|| view! { <p class="muted">"Loading the chain…"</p> }>
                            {move || chain.get().map(|r| match r {
                                Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                                Ok(None) => ().into_any(),
                                Ok(Some(c)) => view! {
                                    {c.missing_parent.clone().map(|m| view! {
                                        <p class="notice caution" data-testid="chain-missing-parent">{format!("The point this chain started from (snapshot {m}) was deleted; the points below stay whole images.")}</p>
                                    })}
                                    <div class="table-wrap">
                                        <table class="table" data-testid="chain-links">
                                            <thead><tr><th>""</th><th>"Taken"</th><th>"Type"</th><th>"Check"</th><th class="hide-narrow">"Written"</th><th class="hide-narrow">"Immutable"</th></tr></thead>
                                            <tbody>
                                                {c.links.into_iter().map(|l| {
                                                    let b = l.backup;
                                                    let label = match l.relation {
                                                        ChainRelation::Ancestor => "reads from",
                                                        ChainRelation::This => "this point",
                                                        ChainRelation::Descendant => "reads from it",
                                                    };
                                                    view! {
                                                        <tr data-testid="chain-link" data-relation=l.relation.as_str() data-id=b.id.clone()
                                                            class:focused=l.relation == ChainRelation::This>
                                                            <td>{label}</td>
                                                            <td class="mono">{when(b.created_at)}</td>
                                                            <td>{b.backup_type.as_str()}</td>
                                                            <td><VerifyCell b=b.clone() /></td>
                                                            <td class="mono hide-narrow">{format_bytes(b.bytes_written)}</td>
                                                            <td class="hide-narrow"><LockCell b=b.clone() /></td>
                                                        </tr>
                                                    }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                }.into_any(),
                            })}
                        </Transition>
                    </div>
                </div>
            </div>
        })}
    }
}

/// What the last verify said about a restore point: damaged with the reason
/// (hover), verified with when, or not verified yet.
#[component]
fn VerifyCell(b: Backup) -> impl IntoView {
    let (class, label, title) = match (b.status, b.verified_at) {
        (BackupStatus::Corrupt, at) => (
            "status-pill warning",
            "damaged".to_string(),
            format!("{}{}", at.map(|t| format!("Verify {}: ", when(t))).unwrap_or_default(), b.verify_reason.clone().unwrap_or_else(|| "chunks missing or damaged".into())),
        ),
        (BackupStatus::Verified, Some(at)) => ("status-pill operational", "verified".to_string(), format!("Every chunk re-read and matched its digest {}", when(at))),
        _ => ("muted", "—".to_string(), "Not verified yet: Verify now on the Repositories page checks it".to_string()),
    };
    view! {
        <span class=class data-testid="point-verify" data-state=b.status.as_str() title=title>{label}</span>
    }
}

/// A restore point's lock that has not ended yet (by the browser's clock).
pub(crate) fn lock_ahead(lock: &Option<RestorePointLock>) -> Option<RestorePointLock> {
    lock.clone().filter(|l| l.until.timestamp_millis() as f64 > js_sys::Date::now())
}

/// Who refuses the delete, until when, in words.
pub(crate) fn lock_title(l: &RestorePointLock) -> String {
    match l.enforced_by {
        LockEnforcer::Storage => format!(
            "The storage itself (S3 Object Lock{}) refuses to delete it until {}{}",
            l.mode.map(|m| format!(", {} mode", m.as_str())).unwrap_or_default(),
            when(l.until),
            l.checked_at.map(|c| format!("; date read from the storage {}", when(c))).unwrap_or_default()
        ),
        LockEnforcer::Sendense => format!("Sendense refuses to delete or prune it until {} (someone with the storage's own credentials still could)", when(l.until)),
    }
}

/// A restore point's lock: "Locked until 2026-12-12 (S3 Object Lock,
/// compliance)" when the storage enforces it, "Immutable until 2026-12-12
/// (Sendense)" when Sendense alone does, a dash when none is ahead.
#[component]
fn LockCell(b: Backup) -> impl IntoView {
    match lock_ahead(&b.lock) {
        None => view! { <span class="muted" data-testid="point-lock" data-enforced-by="none">"—"</span> }.into_any(),
        Some(l) => {
            let date = l.until.format("%Y-%m-%d").to_string();
            let (line, by) = match l.enforced_by {
                LockEnforcer::Storage => (
                    format!("Locked until {date}"),
                    format!("(S3 Object Lock{})", l.mode.map(|m| format!(", {}", m.as_str())).unwrap_or_default()),
                ),
                LockEnforcer::Sendense => (format!("Immutable until {date}"), "(Sendense)".to_string()),
            };
            view! {
                <span class="point-lock" data-testid="point-lock" data-enforced-by=l.enforced_by.as_str()
                    data-until=l.until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) title=lock_title(&l)>
                    <span class="mono">{line}</span>" "<span class="muted small lock-by">{by}</span>
                </span>
            }.into_any()
        }
    }
}

/// The end of an immutability window that has not passed yet (by the
/// browser's clock; the server decides on delete).
fn locked_at(until: Option<chrono::DateTime<chrono::Utc>>) -> Option<chrono::DateTime<chrono::Utc>> {
    until.filter(|u| u.timestamp_millis() as f64 > js_sys::Date::now())
}
