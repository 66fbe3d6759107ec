//! FlowDetailsModal (seed 003): the flow's machines with their last backup,
//! its jobs with live progress and a 60 s throughput graph, the actions its
//! state allows (`allowed_actions`, the same rule the server enforces) and
//! its history of runs. Also opens on a single job started outside flows
//! (or a job of a replication flow), with its log, live.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::flow::{Flow, FlowAction, FlowDetails, FlowKind, FlowSource};
use shared_types::jobs::{Job, JobDetails, JobStatus};
use shared_types::policies::summary;
use shared_types::vms::VmContext;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::copy_target::CopyTargetLine;
use crate::components::create_flow::FlowForm;
use crate::components::job_log::JobLog;
use crate::components::job_panel::JobPanel;
use crate::components::restore_points::RestoreVmButton;
use crate::components::vm_cells::{ProtectionPill, LastBackup};
use crate::fetch::Fetch;
use crate::format::{format_bytes, format_duration, when};
use crate::job_view::{duration_s, status_class};
use crate::latest::latest;
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

/// What FlowBody shows; its view is made again only when this changes, so a
/// refetch (every `job_update`) patches the shown values in place instead of
/// rendering the flow's panels, graphs and tables again.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Loading,
    Failed(String),
    Editing,
    Shown,
}

#[component]
fn FlowBody(id: String, target: RwSignal<Option<Inspect>>) -> impl IntoView {
    let live = use_live();
    let fid = id.clone();
    let refresh = RwSignal::new(0u32);
    let editing = RwSignal::new(false);
    let details = Fetch::new(move || {
        live.jobs_version.get();
        refresh.get();
        api::flow(fid.clone())
    });
    // Jobs of the newest run seen while this view is open stay shown once
    // they finish; a new run replaces them.
    let watched = StoredValue::new(Vec::<String>::new());
    // The newest details read (kept while the next one loads) and the last
    // read's error.
    let data = RwSignal::new(None::<FlowDetails>);
    let failed = RwSignal::new(None::<String>);
    Effect::new(move |_| match details.get() {
        Some(Ok(d)) => {
            watched.update_value(|w| {
                let active: Vec<String> = d.active_jobs.iter().map(|j| j.id.clone()).collect();
                if active.iter().any(|id| !w.contains(id)) {
                    if !active.iter().any(|id| w.contains(id)) {
                        w.clear();
                    }
                    w.extend(active.into_iter().filter(|id| !w.contains(id)).collect::<Vec<_>>());
                }
            });
            if failed.with_untracked(Option::is_some) {
                failed.set(None);
            }
            if data.with_untracked(|old| old.as_ref() != Some(&d)) {
                data.set(Some(d));
            }
        }
        Some(Err(e)) => failed.set(Some(e.message)),
        None => {}
    });
    let shape = Memo::new(move |_| match (failed.get(), data.with(Option::is_some), editing.get()) {
        (Some(message), _, _) => Shape::Failed(message),
        (None, false, _) => Shape::Loading,
        (None, true, true) => Shape::Editing,
        (None, true, false) => Shape::Shown,
    });
    move || match shape.get() {
        Shape::Loading => view! { <p class="muted">"Loading the flow…"</p> }.into_any(),
        Shape::Failed(message) => view! { <p class="notice warning">{message}</p> }.into_any(),
        Shape::Editing => {
            let on_saved = Callback::new(move |_| {
                editing.set(false);
                refresh.update(|n| *n += 1);
            });
            let flow = data.with_untracked(|d| d.as_ref().map(|d| d.flow.clone()));
            view! {
                <h3 class="section-title">"EDIT FLOW"</h3>
                <div data-testid="edit-flow">
                    <FlowForm group=String::new() editing=flow on_close=Callback::new(move |_| editing.set(false)) on_saved=on_saved />
                </div>
            }
            .into_any()
        }
        Shape::Shown => match data.get_untracked() {
            Some(first) => {
                let d = Memo::new(move |prev: Option<&FlowDetails>| {
                    data.with(|d| d.clone()).or_else(|| prev.cloned()).unwrap_or_else(|| first.clone())
                });
                view! { <FlowView d=d watched=watched target=target editing=editing /> }.into_any()
            }
            None => view! { <p class="muted">"Loading the flow…"</p> }.into_any(),
        },
    }
}

/// The jobs a flow's details show: those of the runs watched while the view
/// is open, else the newest run's (queued together, within a few seconds).
fn shown_jobs(d: &FlowDetails, watched: &[String]) -> Vec<Job> {
    let mut shown: Vec<Job> =
        d.active_jobs.iter().chain(d.recent_jobs.iter()).filter(|j| watched.contains(&j.id)).cloned().collect();
    if shown.is_empty() {
        if let Some(newest) = d.recent_jobs.first() {
            let t = newest.created_at;
            shown.extend(d.recent_jobs.iter().filter(|j| (t - j.created_at).num_seconds().abs() <= RUN_WINDOW_S).cloned());
        }
    }
    shown.sort_by(|a, b| a.vm_name.cmp(&b.vm_name));
    shown
}

/// What a machine row shows: its key in the table (a row is made again
/// only when one of these changes).
type VmRowKey = (String, String, &'static str, Option<chrono::DateTime<chrono::Utc>>, u64, u64);

fn vm_row_key(vm: &VmContext) -> VmRowKey {
    (vm.id.clone(), vm.name.clone(), vm.protection.as_str(), vm.last_backup_at, vm.backup_count, vm.backup_logical_bytes)
}

#[component]
fn FlowView(d: Memo<FlowDetails>, watched: StoredValue<Vec<String>>, target: RwSignal<Option<Inspect>>, editing: RwSignal<bool>) -> impl IntoView {
    let live = use_live();
    let flow = Memo::new(move |_| d.with(|d| d.flow.clone()));
    let flow_id = d.with_untracked(|d| d.flow.id.clone());
    let actions = Memo::new(move |_| flow.with(|f| f.allowed_actions.clone()));
    let active = Memo::new(move |_| d.with(|d| d.active_jobs.clone()));
    let shown = Memo::new(move |_| d.with(|d| watched.with_value(|w| shown_jobs(d, w))));
    let shown_ids = Memo::new(move |_| shown.with(|s| s.iter().map(|j| j.id.clone()).collect::<Vec<_>>()));
    let vms = Memo::new(move |_| d.with(|d| d.vms.clone()));
    let recent = Memo::new(move |_| d.with(|d| d.recent_jobs.clone()));
    let head = move || {
        flow.with(|flow| {
            view! {
                <div>
                    <div class="flow-title">{flow.name.clone()}</div>
                    <div class="muted small">
                        {flow.kind.as_str().to_uppercase()} " · " {source_text(flow)} " → " {flow.repository.name.clone()}
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
            }
        })
    };
    view! {
        <div class="flow-head" data-testid="flow-details-head" data-state=move || flow.with(|f| f.state.as_str())>
            {head}
            <span class=move || format!("status-pill {}", flow.with(flow_state_class)) data-testid="flow-state">{move || flow.with(|f| f.state.label())}</span>
        </div>
        <FlowActions flow_id=flow_id actions=actions active=active target=target editing=editing />
        <h3 class="section-title">"JOBS"</h3>
        <Show when=move || shown_ids.with(|s| !s.is_empty()) fallback=|| view! { <p class="muted" data-testid="no-jobs">"This flow has not run yet."</p> }>
            <For
                each=move || shown_ids.get()
                key=|id| id.clone()
                children=move |id| {
                    let first = shown.with_untracked(|s| s.iter().find(|j| j.id == id).cloned());
                    first.map(|first| {
                        let job = Signal::derive(move || shown.with(|s| s.iter().find(|j| j.id == id).cloned()).unwrap_or_else(|| first.clone()));
                        view! { <JobPanel job=job /> }
                    })
                }
            />
        </Show>
        <h3 class="section-title">"MACHINES"</h3>
        <div class="table-wrap">
            <table class="table" data-testid="flow-vms">
                <thead><tr><th>"VM"</th><th>"Power"</th><th>"Protection"</th><th>"Last backup"</th><th>"Restore points"</th><th></th></tr></thead>
                <tbody>
                    <For each=move || vms.get() key=vm_row_key children=move |vm| {
                            let id = vm.id.clone();
                            let power = Memo::new(move |_| vms.with(|v| v.iter().find(|x| x.id == id).map(|x| format!("{:?}", x.power).to_lowercase()).unwrap_or_default()));
                            view! {
                                <tr>
                                    <td>{vm.name.clone()}</td>
                                    <td>{move || power.get()}</td>
                                    <td><ProtectionPill p=vm.protection /></td>
                                    <td><LastBackup at=vm.last_backup_at now=live.now_ms /></td>
                                    <td class="mono">{format!("{} · {}", vm.backup_count, format_bytes(vm.backup_logical_bytes))}</td>
                                    <td><RestoreVmButton vm_id=vm.id.clone() vm_name=vm.name.clone() points=vm.backup_count /></td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
        </div>
        <h3 class="section-title">"HISTORY"</h3>
        {move || view! { <JobHistory jobs=recent.get() /> }}
    }
}

/// Buttons for the actions the flow's state allows; job actions act on
/// the flow's active jobs.
#[component]
fn FlowActions(
    flow_id: String,
    actions: Memo<Vec<FlowAction>>,
    active: Memo<Vec<Job>>,
    target: RwSignal<Option<Inspect>>,
    editing: RwSignal<bool>,
) -> impl IntoView {
    let session = use_session();
    let act = Act::new();
    let allowed = move || session.can(Role::Operator);
    let title = move || if allowed() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    // Made again only when the allowed actions change; the active jobs are
    // read when a button is pressed.
    let buttons = move || actions.get()
        .into_iter()
        .map(|action| {
            let id = flow_id.clone();
            let class = match action {
                FlowAction::Stop | FlowAction::Delete => "button small danger",
                FlowAction::BackupNow | FlowAction::Resume => "button small primary",
                _ => "button small",
            };
            let on_click = move |_| {
                let id = id.clone();
                let active = active.get_untracked();
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
    // Read again on every job_update; built once, patched in place.
    let details = latest(Fetch::new(move || {
        live.jobs_version.get();
        api::job(jid.clone())
    }));
    let shape = Memo::new(move |_| {
        details.with(|d| match d {
            None => Shape::Loading,
            Some(Err(e)) => Shape::Failed(e.clone()),
            Some(Ok(_)) => Shape::Shown,
        })
    });
    move || match shape.get() {
        Shape::Failed(message) => view! { <p class="notice warning">{message}</p> }.into_any(),
        Shape::Shown => match details.get_untracked() {
            Some(Ok(first)) => {
                let d = Memo::new(move |prev: Option<&JobDetails>| match details.get() {
                    Some(Ok(d)) => d,
                    _ => prev.cloned().unwrap_or_else(|| first.clone()),
                });
                let job = Memo::new(move |_| d.with(|d| d.job.clone()));
                let logs = Memo::new(move |_| d.with(|d| d.logs.clone()));
                let status = Memo::new(move |_| job.with(|j| j.status));
                let id = job.with_untracked(|j| j.id.clone());
                let id_for_log = id.clone();
                let verbs = move || -> Vec<&'static str> {
                    match status.get() {
                        JobStatus::Running => vec!["pause", "stop"],
                        JobStatus::Paused => vec!["resume", "stop"],
                        JobStatus::Queued => vec!["stop"],
                        _ => vec![],
                    }
                };
                view! {
                    <div class="action-row">
                        {move || verbs().into_iter().map(|verb| {
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
                    <JobPanel job=Signal::from(job) />
                    <JobLog job_id=id_for_log logs=Signal::from(logs) />
                }
                .into_any()
            }
            _ => view! { <p class="muted">"Loading the job…"</p> }.into_any(),
        },
        _ => view! { <p class="muted">"Loading the job…"</p> }.into_any(),
    }
}

