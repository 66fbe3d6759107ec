//! The replication details modal (seed 003's FlowDetailsModal for a
//! replication flow): state and why it failed, what keeps a failover from
//! placing the VM's NICs, the running job, the replica's points, recent
//! jobs (each opens the job view), and only the buttons the flow's state
//! allows. Dangerous actions open [`super::confirm::ConfirmDialog`].
//! Settings (interval, points kept, name) and removal sit apart, folded.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::jobs::Job;
use shared_types::platform::PowerState;
use shared_types::replication::{ReplicaPoint, ReplicationAction, ReplicationFlow, TestVmStatus, UpdateReplicationRequest};

use super::confirm::{ConfirmDialog, Confirming};
use super::{interval_text, lag_text, live_lag, points_text, state_class, use_replication_hub};
use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::flow_details::Inspect;
use crate::components::job_panel::JobPanel;
use crate::fetch::Fetch;
use crate::format::{format_bytes, format_duration, when};
use crate::job_view::{duration_s, status_class};
use crate::live::use_live;
use crate::session::{needs, use_session};

#[component]
pub fn ReplicationDetailsModal() -> impl IntoView {
    let hub = use_replication_hub();
    let confirming = RwSignal::new(None::<Confirming>);
    let close = move || {
        confirming.set(None);
        hub.details.set(None);
    };
    view! {
        {move || hub.details.get().map(|id| view! {
            <div class="modal-backdrop" on:click=move |_| close()>
                <div class="modal wide" role="dialog" aria-modal="true" aria-label="Replication details" data-testid="repl-details"
                    on:click=|ev| ev.stop_propagation()
                    on:keydown=move |ev| if ev.key() == "Escape" && confirming.with_untracked(Option::is_none) { close() }>
                    <header class="modal-head">
                        <h2>"REPLICATION DETAILS"</h2>
                        <button class="icon-button" aria-label="Close" data-testid="repl-details-close" on:click=move |_| close()>"✕"</button>
                    </header>
                    <div class="modal-body">
                        <DetailsBody id=id confirming=confirming />
                    </div>
                </div>
            </div>
        })}
        {move || confirming.get().map(|c| view! { <ConfirmDialog c=c open=confirming /> })}
    }
}

#[component]
fn DetailsBody(id: String, confirming: RwSignal<Option<Confirming>>) -> impl IntoView {
    let live = use_live();
    let hub = use_replication_hub();
    let sid = id.clone();
    let stored = Memo::new(move |_| live.replications.with(|m| m.get(&sid).cloned()));
    // Read again whenever the flow or any job changes (points, jobs).
    let rid = id.clone();
    let details = Fetch::new(move || {
        stored.with(|f| f.as_ref().map(|f| f.updated_at));
        live.jobs_version.get();
        api::replication(rid.clone())
    });
    // The store's copy is the newest; the details' until the store has it.
    let flow = Memo::new(move |_| {
        stored.get().or_else(|| details.get().and_then(|r| r.ok()).map(|d| d.flow))
    });
    let points = Signal::derive(move || details.get().and_then(|r| r.ok()).map(|d| d.points).unwrap_or_default());
    let has_flow = Memo::new(move |_| flow.with(Option::is_some));
    view! {
        // Drawn again only when the flow changes, not on each read of the details.
        {move || match flow.get() {
            Some(f) => view! { <FlowHead flow=f points=points confirming=confirming /> }.into_any(),
            None => match details.get() {
                Some(Err(e)) => view! { <p class="notice warning" data-testid="repl-details-error">{e.message}</p> }.into_any(),
                _ => view! { <p class="muted">"Loading the replication flow…"</p> }.into_any(),
            },
        }}
        <Transition fallback=|| view! { <p class="muted">"Loading points and jobs…"</p> }>
            {move || details.get().and_then(|r| r.ok()).map(|d| {
                let active = d.active_job.clone();
                let test_vm = d.test_vm.clone();
                view! {
                    {test_vm.map(|vm| view! { <TestVmPanel vm=vm /> })}
                    {active.map(|j| view! {
                        <h3 class="section-title">"RUNNING"</h3>
                        <JobPanel job=Signal::derive(move || j.clone()) />
                    })}
                    <h3 class="section-title">{format!("REPLICA POINTS · {} on the target", format_bytes(d.replica_bytes))}</h3>
                    <PointsTable points=d.points />
                    <h3 class="section-title">"RECENT JOBS"</h3>
                    <JobsTable jobs=d.recent_jobs on_open=Callback::new(move |id| hub.job.set(Some(Inspect::Job(id)))) />
                }
            })}
        </Transition>
        // Drawn once the flow is known, not again on each update (edits stay).
        {move || has_flow.get().then(|| view! { <Settings flow=flow /> })}
    }
}

/// Interval, points kept and name (`PATCH`, only what changed), and
/// removing the flow (with or without the replica's disks).
#[component]
fn Settings(flow: Memo<Option<ReplicationFlow>>) -> impl IntoView {
    let live = use_live();
    let hub = use_replication_hub();
    let session = use_session();
    let act = Act::new();
    let operator = move || session.can(Role::Operator);
    let Some(start) = flow.get_untracked() else { return ().into_any() };
    let name = RwSignal::new(start.name.clone());
    let interval = RwSignal::new(start.interval_seconds.to_string());
    let keep = RwSignal::new(start.keep_points.to_string());
    let remove_replica = RwSignal::new(true);
    let arming = RwSignal::new(false);
    let saved = RwSignal::new(false);
    let id = start.id.clone();
    let target = start.target_platform.name.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(false);
        let Some(now) = flow.get_untracked() else { return };
        let (n, i, k) = (name.get_untracked().trim().to_string(), interval.get_untracked().trim().parse::<u64>().ok(), keep.get_untracked().trim().parse::<u32>().ok());
        let req = UpdateReplicationRequest {
            name: (n != now.name).then_some(n),
            interval_seconds: i.filter(|i| *i != now.interval_seconds),
            keep_points: k.filter(|k| *k != now.keep_points),
            network_mapping: None,
        };
        if let Err((_, m)) = req.validate() {
            act.error.set(Some(m));
            return;
        }
        if req == UpdateReplicationRequest::default() {
            act.error.set(Some("Nothing changed (interval in seconds, points a whole number).".into()));
            return;
        }
        act.run(api::update_replication(now.id.clone(), req), move |f| {
            live.offer_replication(f);
            saved.set(true);
        });
    };
    let remove = move |_| {
        if !arming.get_untracked() {
            arming.set(true);
            return;
        }
        let id = id.clone();
        let gone = id.clone();
        act.run(api::delete_replication(id, remove_replica.get_untracked()), move |_| {
            live.replications.update(|m| {
                m.remove(&gone);
            });
            hub.details.set(None);
        });
    };
    view! {
        <details class="settings" data-testid="repl-settings">
            <summary>"SETTINGS"</summary>
            <form class="form-row" on:submit=save>
                <label class="grow">"Name"
                    <input type="text" data-testid="repl-edit-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <label>"Interval (s)"
                    <input type="text" inputmode="numeric" size="7" data-testid="repl-edit-interval" prop:value=move || interval.get() on:input=move |ev| interval.set(event_target_value(&ev)) />
                </label>
                <label>"Keep points"
                    <input type="text" inputmode="numeric" size="4" data-testid="repl-edit-keep" prop:value=move || keep.get() on:input=move |ev| keep.set(event_target_value(&ev)) />
                </label>
                <button class="button small primary" type="submit" data-testid="repl-edit-save" disabled=move || !operator() || act.busy.get()>"Save"</button>
                {move || saved.get().then(|| view! { <span class="ok small">"Saved."</span> })}
            </form>
            <div class="form-row">
                <label class="check">
                    <input type="checkbox" data-testid="repl-remove-replica" prop:checked=move || remove_replica.get() on:change=move |ev| remove_replica.set(event_target_checked(&ev)) />
                    {format!("Also delete the replica's disks on {target}")}
                </label>
                <button class="button small danger" data-testid="repl-remove" disabled=move || !operator() || act.busy.get() on:click=remove>
                    {move || if arming.get() { "Click again to remove the flow" } else { "Remove flow" }}
                </button>
            </div>
            <ActError act=act testid="repl-settings-error" />
        </details>
    }
    .into_any()
}

#[component]
fn FlowHead(flow: ReplicationFlow, points: Signal<Vec<ReplicaPoint>>, confirming: RwSignal<Option<Confirming>>) -> impl IntoView {
    let live = use_live();
    let f = StoredValue::new(flow.clone());
    let lag = Memo::new(move |_| f.with_value(|f| live_lag(&live, f)));
    let class = state_class(flow.state);
    view! {
        <div class="flow-head" data-testid="repl-details-head" data-state=flow.state.as_str()>
            <div class="min0">
                <div class="flow-title">{flow.name.clone()}</div>
                <div class="muted small">
                    "REPLICATION · " <span class="vm-name">{flow.source_vm.name.clone()}</span>
                    {format!(" ({}) → {} as ", flow.source_platform.name, flow.target_platform.name)}
                    <span class="mono">{flow.replica_vm_name.clone()}</span>
                </div>
                <div class="muted small">
                    {format!("Syncs every {} · keeps {} point(s)", interval_text(flow.interval_seconds), flow.keep_points)}
                    {flow.next_sync_at.map(|t| format!(" · next sync {}", when(t)))}
                </div>
            </div>
            <span class=format!("status-pill {class}") data-testid="repl-state" data-state=flow.state.as_str()>{flow.state.label()}</span>
        </div>
        <div class="stat-row four repl-stats">
            <div class=move || format!("stat {}", if lag.with(|l| l.rpo_missed) { "warning" } else { "operational" })>
                <span class="stat-label">"LAG / RPO"</span>
                <span class="mono" data-testid="repl-details-lag" data-rpo-missed=move || lag.with(|l| l.rpo_missed.to_string())>
                    {move || lag.with(|l| f.with_value(|f| lag_text(l, f.interval_seconds)))}
                </span>
            </div>
            <div class="stat"><span class="stat-label">"POINTS"</span><span class="mono" data-testid="repl-details-points">{points_text(flow.point_count)}</span></div>
            <div class="stat"><span class="stat-label">"LAST POINT"</span><span class="mono small">{flow.last_consistent_at.map(when).unwrap_or_else(|| "none yet".into())}</span></div>
            <div class="stat"><span class="stat-label">"LAST SYNC"</span><span class="mono small">
                {flow.last_sync.as_ref().map(|s| format!("{} · {} of {}", s.kind.as_str(), format_bytes(s.bytes_written), format_bytes(s.bytes_changed))).unwrap_or_else(|| "none yet".into())}
            </span></div>
        </div>
        {flow.failure_reason.clone().map(|r| view! { <p class="notice warning" data-testid="repl-failure">{r}</p> })}
        {flow.test_vm_name.clone().map(|n| view! {
            <p class="notice operational" data-testid="repl-test-vm" data-name=flow.test_vm_name.clone()>
                "Test VM " <span class="mono">{n}</span> {format!(" runs on {}'s isolated network; production and the replica are untouched.", flow.target_platform.name)}
            </p>
        })}
        {(!flow.network_problems.is_empty()).then(|| view! { <NetworkProblems problems=flow.network_problems.clone() /> })}
        <Actions flow=flow points=points confirming=confirming />
    }
}

/// The running test VM as its host has it: power, how long its guest took
/// to come up (its boot line), and its console's last lines.
#[component]
fn TestVmPanel(vm: TestVmStatus) -> impl IntoView {
    let (class, text) = match vm.power {
        PowerState::Running => ("operational", "running"),
        PowerState::Stopped => ("offline", "stopped"),
        PowerState::Suspended => ("caution", "suspended"),
    };
    let up = vm.up_ms.map(|ms| format!(" · guest up {:.1} s after the test started", ms as f64 / 1000.0));
    view! {
        <h3 class="section-title">{format!("TEST VM · {}", vm.name)}</h3>
        <div class="test-vm" data-testid="repl-test-vm-status" data-power=text data-up-ms=vm.up_ms.map(|m| m.to_string()).unwrap_or_default()>
            <p class="small">
                <span class=format!("power {class}")><span class="power-dot"></span>{text}</span>
                {up}
            </p>
            // The boot line, unless the console's tail still shows it.
            {vm.boot_line.filter(|l| !vm.console_tail.iter().any(|c| c.trim() == l.trim())).map(|l| view! {
                <p class="mono small muted wrap-anywhere" data-testid="repl-test-boot-line">{l}</p>
            })}
            {if vm.console_tail.is_empty() {
                view! { <p class="muted small" data-testid="repl-test-console">"No console log from this host."</p> }.into_any()
            } else {
                view! { <pre class="console-tail mono small" data-testid="repl-test-console">{vm.console_tail.join("\n")}</pre> }.into_any()
            }}
        </div>
    }
}

/// Why a live failover could not place the VM's NICs now.
#[component]
pub fn NetworkProblems(problems: Vec<String>) -> impl IntoView {
    view! {
        <div class="notice caution" data-testid="repl-network-problems">
            <strong>"Failover network mapping incomplete"</strong>
            <ul class="plain-list">{problems.into_iter().map(|p| view! { <li>{p}</li> }).collect_view()}</ul>
            <a class="link-button" href="/networks" data-testid="repl-network-link">"Map the networks on NETWORKS →"</a>
        </div>
    }
}

/// One button per allowed action, in the rule's order; actions without
/// risk run at once, the others ask first.
#[component]
fn Actions(flow: ReplicationFlow, points: Signal<Vec<ReplicaPoint>>, confirming: RwSignal<Option<Confirming>>) -> impl IntoView {
    let live = use_live();
    let session = use_session();
    let act = Act::new();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let buttons = flow
        .allowed_actions
        .iter()
        .map(|a| {
            let action = *a;
            let flow = flow.clone();
            let class = match action {
                ReplicationAction::Failover => "button small danger",
                ReplicationAction::ReplicateNow | ReplicationAction::Resume | ReplicationAction::TestFailover => "button small primary",
                _ => "button small",
            };
            let on_click = move |_| {
                let id = flow.id.clone();
                let verb = match action {
                    ReplicationAction::ReplicateNow => Some("sync"),
                    ReplicationAction::Pause => Some("pause"),
                    ReplicationAction::Resume => Some("resume"),
                    _ => None,
                };
                match verb {
                    Some(verb) => act.run(api::replication_action(id, verb), move |a| live.offer_replication(a.flow)),
                    None => confirming.set(Some(Confirming { action, flow: flow.clone(), points: points.get_untracked() })),
                }
            };
            view! {
                <button class=class data-testid=format!("repl-action-{}", action.as_str()) title=title
                    disabled=move || !operator() || act.busy.get() on:click=on_click>
                    {action.label()}
                    {action.is_dangerous().then_some("…")}
                </button>
            }
        })
        .collect_view();
    let none = flow.allowed_actions.is_empty().then(|| {
        view! { <span class="muted small" data-testid="repl-no-actions">"An operation of this flow is running: actions return when it ends."</span> }
    });
    view! {
        <div class="action-row" data-testid="repl-actions">{buttons}{none}</div>
        <ActError act=act testid="repl-action-error" />
    }
}

#[component]
fn PointsTable(points: Vec<ReplicaPoint>) -> impl IntoView {
    if points.is_empty() {
        return view! { <p class="muted" data-testid="repl-no-points">"No consistent point yet: the first sync makes one."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="repl-points-table">
                <thead><tr><th>"Point"</th><th>"Consistent at"</th><th>"Kind"</th><th>"Written"</th><th></th></tr></thead>
                <tbody>
                    {points.into_iter().map(|p| view! {
                        <tr data-testid=format!("repl-point-{}", p.id)>
                            <td class="mono">{p.id.clone()}</td>
                            <td class="mono">{when(p.consistent_at)}</td>
                            <td>{p.kind.as_str()}</td>
                            <td class="mono">{format_bytes(p.bytes_copied)}</td>
                            <td>
                                {p.in_test.then(|| view! { <span class="status-pill info">"test VM"</span> })}
                                {p.failover_point.then(|| view! { <span class="status-pill caution">"failover"</span> })}
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn JobsTable(jobs: Vec<Job>, on_open: Callback<String>) -> impl IntoView {
    if jobs.is_empty() {
        return view! { <p class="muted">"No finished job yet."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="repl-jobs">
                <thead><tr><th>"Started"</th><th>"Operation"</th><th>"Status"</th><th class="hide-narrow">"Read"</th><th>"Written"</th><th class="hide-narrow">"Took"</th><th></th></tr></thead>
                <tbody>
                    {jobs.into_iter().map(|j| {
                        let id = j.id.clone();
                        view! {
                            <tr data-testid="repl-job" data-job-id=j.id.clone() data-operation=j.operation.map(|o| o.as_str()).unwrap_or("") data-status=j.status.as_str()>
                                <td class="mono">{j.started_at.or(Some(j.created_at)).map(when)}</td>
                                <td>{j.operation.map(|o| o.as_str().replace('_', " ")).unwrap_or_else(|| "—".into())}</td>
                                <td><span class=format!("status-pill {}", status_class(j.status))>{j.status.as_str()}</span></td>
                                <td class="mono hide-narrow">{format_bytes(j.bytes_read)}</td>
                                <td class="mono">{format_bytes(j.bytes_written)}</td>
                                <td class="mono hide-narrow">{duration_s(&j).map(|s| if s < 10.0 { format!("{s:.1}s") } else { format_duration(s as u64) }).unwrap_or_else(|| "—".into())}</td>
                                <td><button class="button small" data-testid="repl-job-open" on:click=move |_| on_open.run(id.clone())>"Open"</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
