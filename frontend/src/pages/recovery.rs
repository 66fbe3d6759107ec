//! RECOVERY center: restore points with file-level recovery (a session is
//! opened on the server, which reads the restore point's filesystems from
//! the store) and the open sessions.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::backups::Backup;
use shared_types::restore::Mount;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::file_browser::FileBrowserModal;
use crate::components::restore_wizard::RestoreWizardModal;
use crate::format::{format_bytes, when};
use crate::nav;
use crate::pages::planned::{PageHeader, PlannedList};
use crate::session::{needs, use_session};

#[component]
pub fn RecoveryPage() -> impl IntoView {
    let d = nav::for_path("/recovery").expect("RECOVERY is in the navigation table");
    let version = RwSignal::new(0u32);
    let browsing = RwSignal::new(None::<Mount>);
    let restoring = RwSignal::new(None::<Backup>);
    // Closing the browser refreshes the sessions list (expiry times moved).
    Effect::new(move |was_open: Option<bool>| {
        let open = browsing.with(Option::is_some);
        if was_open == Some(true) && !open {
            version.update(|v| *v += 1);
        }
        open
    });
    view! {
        <section class="page" data-testid="page-recovery">
            <PageHeader label=d.label purpose=d.purpose />
            <RestorePoints browsing=browsing restoring=restoring version=version />
            <Sessions browsing=browsing version=version />
            <PlannedList holds=&["Failover, test failover and rollback for replicated machines"] />
            <FileBrowserModal mount=browsing />
            <RestoreWizardModal open=restoring />
        </section>
    }
}

#[component]
fn RestorePoints(browsing: RwSignal<Option<Mount>>, restoring: RwSignal<Option<Backup>>, version: RwSignal<u32>) -> impl IntoView {
    let points = LocalResource::new(move || {
        version.get();
        api::backups("limit=50".into())
    });
    view! {
        <div class="card">
            <h2>"RESTORE POINTS"</h2>
            <p class="muted small">"Browse files opens the restore point's disks straight from the repository: nothing is written or mounted."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading restore points…"</p> }>
                {move || points.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! {
                        <p class="muted" data-testid="no-restore-points">"No restore point yet: back up a VM from ASSETS or FLOWS."</p>
                    }.into_any(),
                    Ok(p) => view! {
                        <div class="table-wrap">
                            <table class="table" data-testid="restore-points">
                                <thead><tr><th>"VM"</th><th>"Taken"</th><th>"Type"</th><th class="hide-narrow">"Size"</th><th class="hide-narrow">"Repository"</th><th></th></tr></thead>
                                <tbody>
                                    {p.items.into_iter().map(|b| view! { <PointRow b=b browsing=browsing restoring=restoring version=version /> }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                })}
            </Transition>
        </div>
    }
}

#[component]
fn PointRow(b: Backup, browsing: RwSignal<Option<Mount>>, restoring: RwSignal<Option<Backup>>, version: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { "Read its files".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let act = Act::new();
    let id = b.id.clone();
    let whole = b.clone();
    let open = move |_| {
        act.run(api::mount(id.clone()), move |m| {
            version.update(|v| *v += 1);
            browsing.set(Some(m));
        })
    };
    view! {
        <tr data-testid=format!("point-{}", b.id) data-vm=b.vm_name.clone()>
            <td class="vm-name">{b.vm_name.clone()}</td>
            <td class="mono">{when(b.created_at)}</td>
            <td>{b.backup_type.as_str()}</td>
            <td class="mono hide-narrow">{format_bytes(b.logical_bytes)}</td>
            <td class="hide-narrow">{b.repository.name.clone()}</td>
            <td>
                <button class="button small" data-testid=format!("browse-{}", b.id) title=title disabled=move || !operator() || act.busy.get() on:click=open>
                    {move || if act.busy.get() { "Opening…" } else { "Browse files" }}
                </button>
                <button class="button small primary" data-testid=format!("restore-{}", b.id) title=title disabled=move || !operator()
                    on:click=move |_| restoring.set(Some(whole.clone()))>"Restore VM"</button>
                <ActError act=act testid="browse-error" />
            </td>
        </tr>
    }
}

#[component]
fn Sessions(browsing: RwSignal<Option<Mount>>, version: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let mounts = LocalResource::new(move || {
        version.get();
        async move {
            if session.can(Role::Operator) { api::mounts().await.map(Some) } else { Ok(None) }
        }
    });
    let act = Act::new();
    view! {
        <div class="card">
            <h2>"FILE-LEVEL SESSIONS"</h2>
            <ActError act=act testid="session-error" />
            {move || mounts.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                Ok(None) => view! { <p class="muted small">"Sessions are shown to operators."</p> }.into_any(),
                Ok(Some(list)) if list.is_empty() => view! { <p class="muted small" data-testid="no-sessions">"No session is open."</p> }.into_any(),
                Ok(Some(list)) => view! {
                    <ul class="feed" data-testid="sessions">
                        {list.into_iter().map(|m| {
                            let id = m.id.clone();
                            let again = m.clone();
                            view! {
                                <li data-testid="session">
                                    <span class="status-dot operational"></span>
                                    <span class="feed-text">
                                        <span>{format!("{} · restore point of {}", m.vm_name, when(m.backup_created_at))}</span>
                                        <span class="muted small">{format!("{} volume(s) · opened by {} · closes when idle at {}", m.volumes.len(), m.opened_by, when(m.expires_at))}</span>
                                    </span>
                                    <span class="action-row">
                                        <button class="button small" on:click=move |_| browsing.set(Some(again.clone()))>"Open"</button>
                                        <button class="button small" data-testid="session-close"
                                            on:click=move |_| act.run(api::unmount(id.clone()), move |_| version.update(|v| *v += 1))>"Close"</button>
                                    </span>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any(),
            })}
        </div>
    }
}
