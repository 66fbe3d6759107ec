//! One job in detail: progress bar, bytes done / total, read and written,
//! throughput now, ETA, and its throughput graph over the last 60 s (live
//! from the WebSocket; from the catalog's samples when opened later), and
//! Retry for a failed or cancelled job that can run again as it was asked.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::jobs::{Job, JobKind, JobStatus};

use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::session::{needs, use_session};

use crate::components::throughput_graph::ThroughputGraph;
use crate::format::{format_bytes, format_duration};
use crate::job_view::{figures, points, rate, sample_history, status_class};
use crate::live::use_live;

#[component]
pub fn JobPanel(job: Signal<Job>) -> impl IntoView {
    let live = use_live();
    let id = Memo::new(move |_| job.with(|j| j.id.clone()));
    // The newest state the link announced, else the one we were given.
    let current = Memo::new(move |_| {
        let given = job.get();
        live.job_states.with(|m| match m.get(&given.id) {
            Some(j) if j.finished_at.is_some() || given.finished_at.is_none() => j.clone(),
            _ => given,
        })
    });
    let live_job = Memo::new(move |_| id.with(|id| live.jobs.with(|m| m.get(id).cloned())));
    let fig = Memo::new(move |_| figures(&current.get(), live_job.get().as_ref()));
    let finished = Memo::new(move |_| current.with(|j| j.status.is_finished()));
    // Samples the catalog kept: the graph of a job that ran before this view opened.
    let samples = Fetch::new(move || {
        let (id, _) = (id.get(), finished.get());
        async move { crate::api::job(id).await.map(|d| sample_history(&d.samples)).unwrap_or_default() }
    });
    let graph = Signal::derive(move || {
        let history = live_job.with(|l| l.as_ref().map(|l| l.history.clone())).unwrap_or_default();
        let history = if history.len() >= 2 { history } else { samples.get().unwrap_or_default() };
        let end = if finished.get() {
            history.last().map(|p| p.0).unwrap_or_else(|| live.now_ms.get())
        } else {
            live.now_ms.get().max(history.last().map(|p| p.0).unwrap_or(0.0))
        };
        points(&history, end)
    });
    view! {
        <div class="job-panel" data-testid="job-panel" data-job-id=move || id.get()>
            <div class="job-head">
                <span class="job-vm">{move || current.with(|j| j.vm_name.clone())}</span>
                <span class="muted small">{move || current.with(|j| j.backup_type.map(|t| t.as_str()).or(j.operation.map(|o| o.as_str())).map(|t| t.replace('_', " ").to_uppercase()).unwrap_or_default())}</span>
                <span class=move || format!("status-pill {}", status_class(fig.with(|f| f.status))) data-testid="job-status">
                    {move || fig.with(|f| f.status.as_str().to_uppercase())}
                </span>
            </div>
            <div
                class="progress"
                data-testid="job-progress"
                data-status=move || fig.with(|f| f.status.as_str())
                data-done=move || fig.with(|f| f.done.to_string())
                data-total=move || fig.with(|f| f.total.to_string())
                data-read=move || fig.with(|f| f.read.to_string())
                data-written=move || fig.with(|f| f.written.to_string())
                data-at=move || fig.with(|f| f.at_ms.map(|a| a.to_string()).unwrap_or_default())
                data-recv=move || fig.with(|f| f.received_perf_ms.map(|a| a.to_string()).unwrap_or_default())
            >
                <div class="progress-track">
                    <div class=move || format!("progress-fill {}", status_class(fig.with(|f| f.status))) style:width=move || format!("{:.1}%", fig.with(|f| f.percent()))></div>
                </div>
                <div class="progress-caption mono">
                    <span data-testid="job-percent">{move || format!("{:.1}%", fig.with(|f| f.percent()))}</span>
                    <span data-testid="job-bytes">{move || fig.with(|f| format!("{} / {}", format_bytes(f.done), format_bytes(f.total)))}</span>
                </div>
            </div>
            <dl class="facts job-facts">
                <dt>"Read from the VM"</dt><dd class="mono" data-testid="job-read">{move || format_bytes(fig.with(|f| f.read))}</dd>
                <dt>"Written to the repository"</dt><dd class="mono" data-testid="job-written">{move || format_bytes(fig.with(|f| f.written))}</dd>
                <dt>"Throughput"</dt><dd class="mono" data-testid="job-throughput">{move || fig.with(|f| f.throughput_bps.map(|b| rate(b as f64)).unwrap_or_else(|| "—".into()))}</dd>
                <dt>"ETA"</dt><dd class="mono" data-testid="job-eta">{move || fig.with(|f| if f.status.is_finished() { "done".to_string() } else { f.eta_seconds.map(format_duration).unwrap_or_else(|| "—".into()) })}</dd>
            </dl>
            {move || current.with(|j| j.error.clone()).map(|e| view! { <p class="notice warning">{e}</p> })}
            {move || current.with(retryable).then(|| view! { <RetryButton id=id.get() /> })}
            <ThroughputGraph points=graph testid="throughput-graph" />
        </div>
    }
}

/// Failed or cancelled, and of a kind the server queues again as it was
/// (replications, file restores and instant recoveries are run again from
/// their own screens).
fn retryable(job: &Job) -> bool {
    matches!(job.status, JobStatus::Failed | JobStatus::Cancelled)
        && matches!(job.kind, JobKind::Backup | JobKind::Restore | JobKind::Verify | JobKind::Gc | JobKind::Prune)
}

#[component]
fn RetryButton(id: String) -> impl IntoView {
    let session = use_session();
    let act = Act::new();
    let queued = RwSignal::new(None::<Job>);
    let allowed = move || session.can(Role::Operator);
    let id = StoredValue::new(id);
    view! {
        <div class="job-retry">
            <button class="button primary" data-testid="job-retry" disabled=move || !allowed() || act.busy.get() || queued.with(|q| q.is_some())
                title=move || if allowed() { "Queue this job again, as it was asked".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) }
                on:click=move |_| act.run(crate::api::job_action(id.get_value(), "retry"), move |j| queued.set(Some(j)))>
                "Retry"
            </button>
            {move || queued.get().map(|j| view! {
                <span class="muted small" data-testid="job-retry-queued" data-job-id=j.id.clone()>{format!("Queued again as job {}.", short_id(&j.id))}</span>
            })}
            <ActError act=act testid="job-retry-error" />
        </div>
    }
}

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
