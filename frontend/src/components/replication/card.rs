//! A replication flow as a FlowCard (seed 000): source VM → target
//! platform, state, lag against the RPO (red when missed), points, what the
//! last sync did, and the running job's live progress and throughput.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::replication::{ReplicationAction, ReplicationFlow};

use super::{interval_text, lag_text, live_lag, points_text, state_class, use_replication_hub};
use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::throughput_graph::Sparkline;
use crate::format::{ago, format_bytes, format_duration};
use crate::job_view::{points, rate};
use crate::live::use_live;
use crate::session::{needs, use_session};

#[component]
pub fn ReplicationCard(flow: ReplicationFlow) -> impl IntoView {
    let live = use_live();
    let hub = use_replication_hub();
    let session = use_session();
    let act = Act::new();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let f = StoredValue::new(flow.clone());
    let lag = Memo::new(move |_| f.with_value(|f| live_lag(&live, f)));
    let id = flow.id.clone();
    let sync_id = flow.id.clone();
    let can_sync = flow.allowed_actions.contains(&ReplicationAction::ReplicateNow);
    let class = state_class(flow.state);
    let last_sync = flow.last_sync.clone().map(|s| {
        let finished = s.finished_at;
        view! {
            <div class="muted small" data-testid="repl-last-sync" data-written=s.bytes_written.to_string() data-changed=s.bytes_changed.to_string()>
                "last sync " <span class="mono">{s.kind.as_str()}</span> " · "
                <span class="mono">{format!("{} written of {} changed", format_bytes(s.bytes_written), format_bytes(s.bytes_changed))}</span>
                " · " {move || ago(finished, live.now_ms.get())}
            </div>
        }
    });
    view! {
        <article class=format!("flow-card repl {class}") data-testid=format!("repl-card-{}", flow.name) data-state=flow.state.as_str()
            data-points=flow.point_count.to_string()>
            <header class="flow-card-head">
                <span class="flow-kind repl">"REPLICATE"</span>
                <span class="flow-name" title=flow.name.clone()>{flow.name.clone()}</span>
                <span class=format!("status-pill {class}") data-testid="repl-card-state">{flow.state.label()}</span>
            </header>
            <div class="flow-route muted small">
                <span class="vm-name">{flow.source_vm.name.clone()}</span>
                <span>{format!(" ({}) → ", flow.source_platform.name)}</span>
                <span>{flow.target_platform.name.clone()}</span>
            </div>
            <div class="repl-figures small">
                <span class=move || format!("mono {}", if lag.with(|l| l.rpo_missed) { "bad" } else { "" })
                    data-testid="repl-lag" data-rpo-missed=move || lag.with(|l| l.rpo_missed.to_string())>
                    {move || lag.with(|l| f.with_value(|f| lag_text(l, f.interval_seconds)))}
                </span>
                <span class="mono" data-testid="repl-points">{points_text(flow.point_count)}</span>
                {flow.next_sync_at.map(|t| view! {
                    <span class="muted">{move || {
                        let secs = ((t.timestamp_millis() as f64 - live.server_now_ms()) / 1000.0).max(0.0) as u64;
                        format!("next sync in {}", format_duration(secs))
                    }}</span>
                })}
            </div>
            {last_sync}
            {flow.test_vm_name.clone().map(|n| view! {
                <div class="small" data-testid="repl-card-test-vm">"Test VM " <span class="mono">{n}</span> " on the isolated network"</div>
            })}
            {flow.failure_reason.clone().map(|r| view! { <p class="notice warning small" data-testid="repl-card-failure">{r}</p> })}
            {(!flow.network_problems.is_empty()).then(|| view! {
                <div class="small caution-text" data-testid="repl-card-network">
                    {format!("⚠ {} network problem(s) for failover", flow.network_problems.len())}
                </div>
            })}
            {flow.active_job_id.clone().map(|job_id| view! { <ActiveJobLine job_id=job_id /> })}
            <div class="action-row">
                <button class="button small" data-testid="repl-card-details" on:click=move |_| hub.details.set(Some(id.clone()))>"Details"</button>
                {can_sync.then(|| view! {
                    <button class="button small primary" data-testid="repl-card-sync" title=title disabled=move || !operator() || act.busy.get()
                        on:click=move |_| act.run(api::replication_action(sync_id.clone(), "sync"), move |a| live.offer_replication(a.flow))>
                        "Replicate now"
                    </button>
                })}
                <span class="push muted small mono">{format!("every {} · keep {}", interval_text(flow.interval_seconds), flow.keep_points)}</span>
            </div>
            <ActError act=act testid="repl-card-error" />
        </article>
    }
}

/// The flow's running job: live progress bar, bytes, throughput sparkline and ETA.
#[component]
fn ActiveJobLine(job_id: String) -> impl IntoView {
    let live = use_live();
    let job_id = StoredValue::new(job_id);
    let jid = job_id.get_value();
    let progress = Memo::new(move |_| live.jobs.with(|m| m.get(&jid).cloned()));
    let jid = job_id.get_value();
    let state = Memo::new(move |_| live.job_states.with(|m| m.get(&jid).map(|j| (j.status, j.operation))));
    let spark = Signal::derive(move || {
        let now = live.now_ms.get();
        progress.with(|l| l.as_ref().map(|l| points(&l.history, now.max(l.history.last().map(|p| p.0).unwrap_or(0.0)))).unwrap_or_default())
    });
    let percent = move || {
        progress.with(|p| p.as_ref().and_then(|p| shared_types::jobs::Job::percent(p.progress.bytes_done, p.progress.bytes_total))).unwrap_or(0.0)
    };
    let status = move || {
        let paused = progress.with(|p| p.as_ref().is_some_and(|p| p.progress.paused));
        match state.get() {
            _ if paused => "paused".to_string(),
            Some((s, _)) => s.as_str().to_string(),
            None if progress.with(Option::is_some) => "running".into(),
            None => "queued".into(),
        }
    };
    let operation = move || state.get().and_then(|(_, op)| op).map(|o| o.as_str().replace('_', " ")).unwrap_or_else(|| "job".into());
    // The flow can be announced a moment before its job is marked finished:
    // the job's own update then hides the line.
    let finished = move || state.get().is_some_and(|(s, _)| s.is_finished());
    view! {
        <Show when=move || !finished()>
        <div class="job-line" data-testid="repl-card-job" data-job-id=job_id.get_value()
            data-done=move || progress.with(|p| p.as_ref().map(|p| p.progress.bytes_done).unwrap_or(0).to_string())>
            <div class="job-line-head">
                <span class="small">{move || operation().to_uppercase()}</span>
                <span class="status-pill info">{status}</span>
                <span class="mono small push" data-testid="repl-card-percent">{move || format!("{:.0}%", percent())}</span>
            </div>
            <div class="progress-track"><div class="progress-fill" style:width=move || format!("{:.1}%", percent())></div></div>
            <div class="job-line-figures mono small">
                <span>{move || progress.with(|p| p.as_ref().map(|p| format!("{} / {}", format_bytes(p.progress.bytes_done), format_bytes(p.progress.bytes_total))).unwrap_or_else(|| "waiting…".into()))}</span>
                <Sparkline points=spark testid="repl-card-sparkline" />
                <span data-testid="repl-card-throughput">{move || progress.with(|p| p.as_ref().filter(|p| !p.progress.paused).map(|p| rate(p.progress.throughput_bps as f64)).unwrap_or_else(|| "—".into()))}</span>
                <span>"ETA " {move || progress.with(|p| p.as_ref().and_then(|p| p.progress.eta_seconds).map(format_duration).unwrap_or_else(|| "—".into()))}</span>
            </div>
        </div>
        </Show>
    }
}
