//! FlowDetailsModal (seed 003): the flow's machines with their last backup,
//! its jobs with live progress and a 60 s throughput graph, the actions its
//! state allows (`allowed_actions`, the same rule the server enforces) and
//! its history of runs. Also opens on a single job started outside flows
//! (or a job of a replication flow), with its log, live.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::flow::{Flow, FlowAction, FlowDetails, FlowKind, FlowSource};
use shared_types::jobs::{Job, JobStatus};
use shared_types::policies::summary;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::copy_target::CopyTargetLine;
use crate::components::create_flow::FlowForm;
use crate::components::job_log::JobLog;
use crate::components::job_panel::JobPanel;
use crate::components::restore_points::RestoreVmButton;
use crate::components::vm_cells::{ProtectionPill, LastBackup};
use crate::format::{format_bytes, format_duration, when};
use crate::job_view::{duration_s, status_class};
use crate::live::use_live;
use crate::session::{needs, use_session};

/// Jobs of a flow queued within this many seconds belong to one run.
const RUN_WINDOW_S: i64 = 5;

/// What the details view shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Inspect {
    Flow(String),
    Job(String),
}

#[component]
pub fn FlowDetailsModal(target: RwSignal<Option<Inspect>>) -> impl IntoView {
    let close = move || target.set(None);
    view! {
        {move || target.get().map(|t| view! {
            <div class="modal-backdrop" on:click=move |_| close()>
                <div
                    class="modal wide"
                    role="dialog"
                    aria-modal="true"
                    aria-label="Flow details"
                    data-testid="flow-details"
                    on:click=|ev| ev.stop_propagation()
                    on:keydown=move |ev| if ev.key() == "Escape" { close() }
                >
                    <header class="modal-head">
                        <h2>{match &t { Inspect::Flow(_) => "FLOW DETAILS", Inspect::Job(_) => "JOB DETAILS" }}</h2>
                        <button class="icon-button" aria-label="Close" data-testid="flow-details-close" on:click=move |_| close()>"✕"</button>
                    </header>
                    <div class="modal-body">
                        {match t.clone() {
                            Inspect::Flow(id) => view! { <FlowBody id=id target=target /> }.into_any(),
                            Inspect::Job(id) => view! { <JobBody id=id /> }.into_any(),
                        }}
                    </div>
                </div>
            </div>
        })}
    }
}

fn source_text(flow: &Flow) -> String {
    match (&flow.source, &flow.group) {
        (_, Some(g)) => format!("group {} ({} VMs)", g.name, flow.vm_count),
        (FlowSource::Vms { vm_ids }, None) => format!("{} VM(s)", vm_ids.len()),
        (FlowSource::Group { .. }, None) => format!("{} VMs", flow.vm_count),
    }
}

pub fn flow_state_class(flow: &Flow) -> &'static str {
    use shared_types::flow::FlowState::*;
    match flow.state {
        Running | Healthy => "operational",
        Queued | Paused | Warning => "caution",
        Failed => "warning",
        Idle | Disabled => "offline",
    }
}

#[component]
fn FlowBody(id: String, target: RwSignal<Option<Inspect>>) -> impl IntoView {
    let live = use_live();
    let fid = id.clone();
    let refresh = RwSignal::new(0u32);
    let editing = RwSignal::new(false);
    let details = LocalResource::new(move || {
        live.jobs_version.get();
        refresh.get();
        api::flow(fid.clone())
    });
    // Jobs of the newest run seen while this view is open stay shown once
    // they finish; a new run replaces them.
    let watched = StoredValue::new(Vec::<String>::new());
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the flow…"</p> }>
            {move || details.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                Ok(d) => {
                    watched.update_value(|w| {
                        let active: Vec<String> = d.active_jobs.iter().map(|j| j.id.clone()).collect();
                        if active.iter().any(|id| !w.contains(id)) {
                            if !active.iter().any(|id| w.contains(id)) {
                                w.clear();
                            }
                            w.extend(active.into_iter().filter(|id| !w.contains(id)).collect::<Vec<_>>());
                        }
                    });
                    if editing.get() {
                        let on_saved = Callback::new(move |_| {
                            editing.set(false);
                            refresh.update(|n| *n += 1);
                        });
                        return view! {
                            <h3 class="section-title">"EDIT FLOW"</h3>
                            <div data-testid="edit-flow">
                                <FlowForm group=String::new() editing=Some(d.flow) on_close=Callback::new(move |_| editing.set(false)) on_saved=on_saved />
                            </div>
                        }
                        .into_any();
                    }
                    view! { <FlowView d=d watched=watched.get_value() target=target editing=editing /> }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn FlowView(d: FlowDetails, watched: Vec<String>, target: RwSignal<Option<Inspect>>, editing: RwSignal<bool>) -> impl IntoView {
    let live = use_live();
    let flow = d.flow.clone();
    let mut all: Vec<Job> = d.active_jobs.clone();
    all.extend(d.recent_jobs.iter().cloned());
    let mut shown: Vec<Job> = all.iter().filter(|j| watched.contains(&j.id)).cloned().collect();
    if shown.is_empty() {
        // The newest run: its jobs were queued together (within a few seconds).
        if let Some(newest) = d.recent_jobs.first() {
            let t = newest.created_at;
            shown.extend(d.recent_jobs.iter().filter(|j| (t - j.created_at).num_seconds().abs() <= RUN_WINDOW_S).cloned());
        }
    }
    shown.sort_by(|a, b| a.vm_name.cmp(&b.vm_name));
    let active = d.active_jobs.clone();
    view! {
        <div class="flow-head" data-testid="flow-details-head" data-state=flow.state.as_str()>
            <div>
                <div class="flow-title">{flow.name.clone()}</div>
                <div class="muted small">
                    {flow.kind.as_str().to_uppercase()} " · " {source_text(&flow)} " → " {flow.repository.name.clone()}
                </div>
                <div class="muted small">
                    {flow.schedule_description.clone().unwrap_or_else(|| "No schedule: runs when asked".into())}
                    {flow.next_run_at.map(|t| format!(" · next run {}", when(t)))}
                </div>
                <div class="small" data-testid="flow-policy">
                    {match &flow.policy {
                        Some(p) => view! {
                            <span class="muted">"Policy "</span><a href="/policies" data-testid="flow-policy-link">{p.name.clone()}</a>
                            <span class="muted">{format!(": {}", summary(&flow.retention, flow.immutable_days, false))}</span>
                        }.into_any(),
                        None => view! {
                            <span class="muted">{format!("No policy: {}", summary(&flow.retention, flow.immutable_days, false))}</span>
                        }.into_any(),
                    }}
                </div>
                {(flow.kind == FlowKind::Backup).then(|| {
                    let prefix = match &flow.policy {
                        Some(p) => format!("3-2-1 (from the policy {}): ", p.name),
                        None => "3-2-1: ".to_string(),
                    };
                    view! { <div class="small muted"><CopyTargetLine target=flow.copy_target.clone() testid="flow-copy-target" prefix=prefix /></div> }
                })}
            </div>
            <span class=format!("status-pill {}", flow_state_class(&flow)) data-testid="flow-state">{flow.state.label()}</span>
        </div>
        <FlowActions flow=flow.clone() active=active target=target editing=editing />
        <h3 class="section-title">"JOBS"</h3>
        {if shown.is_empty() {
            view! { <p class="muted" data-testid="no-jobs">"This flow has not run yet."</p> }.into_any()
        } else {
            shown.into_iter().map(|j| view! { <JobPanel job=Signal::derive(move || j.clone()) /> }).collect_view().into_any()
        }}
        <h3 class="section-title">"MACHINES"</h3>
        <div class="table-wrap">
            <table class="table" data-testid="flow-vms">
                <thead><tr><th>"VM"</th><th>"Power"</th><th>"Protection"</th><th>"Last backup"</th><th>"Restore points"</th><th></th></tr></thead>
                <tbody>
                    {d.vms.into_iter().map(|vm| {
                        let at = vm.last_backup_at;
                        view! {
                            <tr>
                                <td>{vm.name.clone()}</td>
                                <td>{format!("{:?}", vm.power).to_lowercase()}</td>
                                <td><ProtectionPill p=vm.protection /></td>
                                <td><LastBackup at=at now=live.now_ms /></td>
                                <td class="mono">{format!("{} · {}", vm.backup_count, format_bytes(vm.backup_logical_bytes))}</td>
                                <td><RestoreVmButton vm_id=vm.id.clone() vm_name=vm.name.clone() points=vm.backup_count /></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <h3 class="section-title">"HISTORY"</h3>
        <JobHistory jobs=d.recent_jobs />
    }
}

/// Buttons for the actions the flow's state allows; job actions act on
/// the flow's active jobs.
#[component]
fn FlowActions(flow: Flow, active: Vec<Job>, target: RwSignal<Option<Inspect>>, editing: RwSignal<bool>) -> impl IntoView {
    let session = use_session();
    let act = Act::new();
    let allowed = move || session.can(Role::Operator);
    let title = move || if allowed() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let buttons = flow
        .allowed_actions
        .iter()
        .map(|action| {
            let action = *action;
            let id = flow.id.clone();
            let active = active.clone();
            let class = match action {
                FlowAction::Stop | FlowAction::Delete => "button small danger",
                FlowAction::BackupNow | FlowAction::Resume => "button small primary",
                _ => "button small",
            };
            let on_click = move |_| {
                let id = id.clone();
                let active = active.clone();
                match action {
                    FlowAction::BackupNow => act.run(api::run_flow(id), |_| {}),
                    FlowAction::Enable => act.run(api::set_flow_enabled(id, true), |_| {}),
                    FlowAction::Disable => act.run(api::set_flow_enabled(id, false), |_| {}),
                    FlowAction::Delete => act.run(api::delete_flow(id), move |_| target.set(None)),
                    FlowAction::Edit => editing.set(true),
                    FlowAction::Pause | FlowAction::Resume | FlowAction::Stop => {
                        let verb = match action {
                            FlowAction::Pause => "pause",
                            FlowAction::Resume => "resume",
                            _ => "stop",
                        };
                        let want: &[JobStatus] = match action {
                            FlowAction::Pause => &[JobStatus::Running],
                            FlowAction::Resume => &[JobStatus::Paused],
                            _ => &JobStatus::ACTIVE,
                        };
                        let ids: Vec<String> = active.iter().filter(|j| want.contains(&j.status)).map(|j| j.id.clone()).collect();
                        act.run(
                            async move {
                                for id in ids {
                                    api::job_action(id, verb).await?;
                                }
                                Ok(())
                            },
                            |_| {},
                        )
                    }
                }
            };
            view! {
                <button
                    class=class
                    data-testid=format!("flow-action-{}", action.as_str())
                    disabled=move || !allowed() || act.busy.get()
                    title=title
                    on:click=on_click
                >
                    {action.label()}
                </button>
            }
        })
        .collect_view();
    view! {
        <div class="action-row" data-testid="flow-actions">{buttons}</div>
        <ActError act=act testid="flow-action-error" />
    }
}

#[component]
pub fn JobHistory(jobs: Vec<Job>) -> impl IntoView {
    if jobs.is_empty() {
        return view! { <p class="muted">"No finished run yet."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="job-history">
                <thead><tr><th>"Started"</th><th>"VM"</th><th>"Type"</th><th>"Status"</th><th>"Read"</th><th>"Written"</th><th>"Took"</th></tr></thead>
                <tbody>
                    {jobs.into_iter().map(|j| view! {
                        <tr data-job-id=j.id.clone()>
                            <td class="mono">{j.started_at.map(when).unwrap_or_else(|| "—".into())}</td>
                            <td>{j.vm_name.clone()}</td>
                            <td>{j.backup_type.map(|t| t.as_str()).or(j.operation.map(|o| o.as_str())).unwrap_or("—")}</td>
                            <td><span class=format!("status-pill {}", status_class(j.status))>{j.status.as_str()}</span></td>
                            <td class="mono">{format_bytes(j.bytes_read)}</td>
                            <td class="mono">{format_bytes(j.bytes_written)}</td>
                            <td class="mono">{duration_s(&j).map(|s| if s < 10.0 { format!("{s:.1}s") } else { format_duration(s as u64) }).unwrap_or_else(|| "—".into())}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// A job started outside flows (Backup Now on a VM).
#[component]
fn JobBody(id: String) -> impl IntoView {
    let live = use_live();
    let session = use_session();
    let act = Act::new();
    let jid = id.clone();
    let details = LocalResource::new(move || {
        live.jobs_version.get();
        api::job(jid.clone())
    });
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the job…"</p> }>
            {move || details.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                Ok(d) => {
                    let job = d.job.clone();
                    let logs = d.logs.clone();
                    let status = job.status;
                    let id = job.id.clone();
                    let id_for_log = job.id.clone();
                    let verbs: Vec<&'static str> = match status {
                        JobStatus::Running => vec!["pause", "stop"],
                        JobStatus::Paused => vec!["resume", "stop"],
                        JobStatus::Queued => vec!["stop"],
                        _ => vec![],
                    };
                    view! {
                        <div class="action-row">
                            {verbs.into_iter().map(|verb| {
                                let id = id.clone();
                                view! {
                                    <button class="button small" data-testid=format!("job-action-{verb}")
                                        disabled=move || !session.can(Role::Operator) || act.busy.get()
                                        on:click=move |_| act.run(api::job_action(id.clone(), verb), |_| {})>
                                        {verb}
                                    </button>
                                }
                            }).collect_view()}
                        </div>
                        <ActError act=act testid="job-action-error" />
                        <JobPanel job=Signal::derive(move || job.clone()) />
                        <JobLog job_id=id_for_log logs=logs />
                    }.into_any()
                }
            })}
        </Transition>
    }
}

