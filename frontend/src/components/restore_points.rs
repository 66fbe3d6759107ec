//! Restore points with their two ways back: Browse files (a file-level
//! session) and Restore VM (the RecoveryWizard). The shell provides one
//! [`RestoreHub`] so every page (RECOVERY, ASSETS, the FlowDetailsModal)
//! opens the same FileBrowser, wizard and per-VM restore point list.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::backups::{Backup, BackupStatus};
use shared_types::restore::Mount;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::file_browser::FileBrowserModal;
use crate::components::restore_wizard::RestoreWizardModal;
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
}

pub fn provide_restore_hub() -> RestoreHub {
    let hub = RestoreHub {
        browsing: RwSignal::new(None),
        restoring: RwSignal::new(None),
        points_of: RwSignal::new(None),
        opened: RwSignal::new(None),
        sessions_version: RwSignal::new(0),
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
                        <RestorePointsTable query=format!("vm={id}&limit=50") />
                    </div>
                </div>
            </div>
        })}
    }
}

/// Restore points answering `query` (`GET /backup/list?…`), newest first,
/// each with Browse files and Restore VM.
#[component]
pub fn RestorePointsTable(#[prop(into)] query: String) -> impl IntoView {
    let hub = use_restore_hub();
    let points = LocalResource::new(move || {
        hub.sessions_version.get();
        api::backups(query.clone())
    });
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading restore points…"</p> }>
            {move || points.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                Ok(p) if p.items.is_empty() => view! {
                    <p class="muted" data-testid="no-restore-points">"No restore point yet: back up a VM from ASSETS or FLOWS."</p>
                }.into_any(),
                Ok(p) => view! {
                    <div class="table-wrap">
                        <table class="table" data-testid="restore-points">
                            <thead><tr><th>"VM"</th><th>"Taken"</th><th>"Type"</th><th>"Check"</th><th class="hide-narrow">"Size"</th><th class="hide-narrow">"Repository"</th><th></th></tr></thead>
                            <tbody>
                                {p.items.into_iter().map(|b| view! { <PointRow b=b /> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any(),
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
    let id = b.id.clone();
    let whole = b.clone();
    let this = b.id.clone();
    let open = move |_| {
        act.run(api::mount(id.clone()), move |m| {
            hub.sessions_version.update(|v| *v += 1);
            hub.browsing.set(Some(m));
        })
    };
    view! {
        <tr data-testid=format!("point-{}", b.id) data-vm=b.vm_name.clone() data-open-id=b.id.clone()
            class:focused=move || hub.opened.with(|o| o.as_ref() == Some(&this))>
            <td class="vm-name">{b.vm_name.clone()}</td>
            <td class="mono">{when(b.created_at)}</td>
            <td>{b.backup_type.as_str()}</td>
            <td><VerifyCell b=b.clone() /></td>
            <td class="mono hide-narrow">{format_bytes(b.logical_bytes)}</td>
            <td class="hide-narrow">{b.repository.name.clone()}</td>
            <td>
                <span class="action-row">
                    <button class="button small" data-testid=format!("browse-{}", b.id) title=title disabled=move || !operator() || act.busy.get() on:click=open>
                        {move || if act.busy.get() { "Opening…" } else { "Browse files" }}
                    </button>
                    <button class="button small primary" data-testid=format!("restore-{}", b.id) title=title disabled=move || !operator()
                        on:click=move |_| hub.restoring.set(Some(whole.clone()))>"Restore VM"</button>
                </span>
                <ActError act=act testid="browse-error" />
            </td>
        </tr>
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
