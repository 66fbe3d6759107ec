//! RECOVERY center: restore points with file-level recovery (a session is
//! opened on the server, which reads the restore point's filesystems from
//! the store) and the open sessions; VMs running straight from a restore
//! point (instant recoveries) with finalize and discard; emergency actions (site failover of a
//! protection group). Failover of one flow is in its details on FLOWS.

use leptos::prelude::*;
use shared_types::auth::Role;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::instant_recoveries::InstantRecoveries;
use crate::components::restore_point_filters::RestorePointBrowser;
use crate::components::restore_points::use_restore_hub;
use crate::components::flow_details::{FlowDetailsModal, Inspect};
use crate::fetch::Fetch;
use crate::format::{format_bytes, when};
use crate::job_view::{duration_s, status_class};
use crate::live::use_live;
use crate::nav;
use crate::components::replication::site_failover::EmergencyActions;
use crate::pages::planned::PageHeader;
use crate::session::use_session;

#[component]
pub fn RecoveryPage() -> impl IntoView {
    let d = nav::for_path("/recovery").expect("RECOVERY is in the navigation table");
    let not_opened = open_found_restore_point();
    view! {
        <section class="page" data-testid="page-recovery">
            <PageHeader label=d.label purpose=d.purpose />
            {move || not_opened.get().map(|e| view! { <p class="notice warning" data-testid="open-point-error">{e}</p> })}
            <EmergencyActions />
            <div class="card">
                <h2>"RESTORE POINTS"</h2>
                <p class="muted small">"Browse files opens the restore point's disks straight from the repository: nothing is written or mounted. Chain shows what a point reads from and what reads from it; Delete is refused while a point is immutable."</p>
                <RestorePointBrowser />
            </div>
            <InstantRecoveries />
            <RecentRestores />
            <Sessions />
        </section>
    }
}

/// A restore point global search opened (`?restore_point=ID`): its VM's
/// restore points open with it marked. What went wrong, if it could not.
fn open_found_restore_point() -> RwSignal<Option<String>> {
    let hub = use_restore_hub();
    let failed = RwSignal::new(None::<String>);
    crate::components::open_param::open_from_param(shared_types::search::route::RESTORE_POINT, move |id| {
        leptos::task::spawn_local(async move {
            match api::backup(id.clone()).await {
                Ok(b) => {
                    failed.try_set(None);
                    hub.opened.set(Some(b.id));
                    hub.points_of.set(Some((b.vm_context_id, b.vm_name)));
                }
                Err(e) => {
                    failed.try_set(Some(format!("Restore point {id} could not be opened: {}", e.message)));
                }
            }
        });
    });
    failed
}

/// The newest full VM restores with their outcome, live as jobs change;
/// Inspect opens the job with its progress and log.
#[component]
fn RecentRestores() -> impl IntoView {
    let live = use_live();
    let inspect = RwSignal::new(None::<Inspect>);
    let jobs = Fetch::new(move || {
        live.jobs_version.get();
        api::jobs("kind=restore&limit=10".into())
    });
    view! {
        <div class="card">
            <h2>"RECENT RESTORES"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading restores…"</p> }>
                {move || jobs.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(p) if p.items.is_empty() => view! {
                        <p class="muted small" data-testid="no-restores">"No VM has been restored yet: Restore VM on a restore point starts one."</p>
                    }.into_any(),
                    Ok(p) => view! {
                        <div class="table-wrap">
                            <table class="table" data-testid="recent-restores">
                                <thead><tr><th>"Queued"</th><th>"VM"</th><th>"Status"</th><th class="hide-narrow">"Read"</th><th class="hide-narrow">"Written"</th><th class="hide-narrow">"Took"</th><th></th></tr></thead>
                                <tbody>
                                    {p.items.into_iter().map(|j| {
                                        let id = j.id.clone();
                                        view! {
                                            <tr data-testid="restore-job" data-status=j.status.as_str()>
                                                <td class="mono">{when(j.created_at)}</td>
                                                <td>{j.vm_name.clone()}</td>
                                                <td><span class=format!("status-pill {}", status_class(j.status))>{j.status.as_str()}</span></td>
                                                <td class="mono hide-narrow">{format_bytes(j.bytes_read)}</td>
                                                <td class="mono hide-narrow">{format_bytes(j.bytes_written)}</td>
                                                <td class="mono hide-narrow">{duration_s(&j).map(|s| format!("{s:.1}s")).unwrap_or_else(|| "—".into())}</td>
                                                <td><button class="button small" on:click=move |_| inspect.set(Some(Inspect::Job(id.clone())))>"Inspect"</button></td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                })}
            </Transition>
            <FlowDetailsModal target=inspect />
        </div>
    }
}

#[component]
fn Sessions() -> impl IntoView {
    let hub = use_restore_hub();
    let (browsing, version) = (hub.browsing, hub.sessions_version);
    let session = use_session();
    let mounts = Fetch::new(move || {
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
