//! FlowCard (seed 000): one flow with a run in progress (or one job started
//! outside flows): type, source → target, progress per job with a live
//! throughput sparkline and ETA, and Pause / Resume, Inspect, Stop.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::jobs::{Job, JobStatus};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::throughput_graph::Sparkline;
use crate::format::{format_bytes, format_duration};
use crate::job_view::{figures, points, rate, status_class};
use crate::live::use_live;
use crate::session::{needs, use_session};

#[component]
pub fn FlowCard(
    /// `BACKUP`, ...
    kind: String,
    name: String,
    source: String,
    target: String,
    jobs: Vec<Job>,
    #[prop(into)] on_inspect: Callback<()>,
    #[prop(into)] testid: String,
) -> impl IntoView {
    let session = use_session();
    let act = Act::new();
    let allowed = move || session.can(Role::Operator);
    let title = move || if allowed() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let running: Vec<String> = jobs.iter().filter(|j| j.status == JobStatus::Running).map(|j| j.id.clone()).collect();
    let paused: Vec<String> = jobs.iter().filter(|j| j.status == JobStatus::Paused).map(|j| j.id.clone()).collect();
    let active: Vec<String> = jobs.iter().filter(|j| j.status.is_active()).map(|j| j.id.clone()).collect();
    let each = move |ids: Vec<String>, verb: &'static str| {
        act.run(
            async move {
                for id in ids {
                    api::job_action(id, verb).await?;
                }
                Ok(())
            },
            |_| {},
        )
    };
    let (pause_ids, resume_ids, stop_ids) = (running.clone(), paused.clone(), active);
    let state = if !running.is_empty() { "running" } else if !paused.is_empty() { "paused" } else { "queued" };
    view! {
        <article class=format!("flow-card {state}") data-testid=testid data-state=state>
            <header class="flow-card-head">
                <span class="flow-kind">{kind}</span>
                <span class="flow-name">{name}</span>
                <span class=format!("status-pill {}", match state { "running" => "operational", _ => "caution" })>{state.to_uppercase()}</span>
            </header>
            <div class="flow-route muted small"><span>{source}</span>" → "<span>{target}</span></div>
            {jobs.into_iter().map(|j| view! { <JobLine job=j /> }).collect_view()}
            <div class="action-row">
                {(!pause_ids.is_empty()).then(|| view! {
                    <button class="button small" data-testid="card-pause" title=title disabled=move || !allowed() || act.busy.get()
                        on:click=move |_| each(pause_ids.clone(), "pause")>"Pause"</button>
                })}
                {(!resume_ids.is_empty()).then(|| view! {
                    <button class="button small primary" data-testid="card-resume" title=title disabled=move || !allowed() || act.busy.get()
                        on:click=move |_| each(resume_ids.clone(), "resume")>"Resume"</button>
                })}
                <button class="button small" data-testid="card-inspect" on:click=move |_| on_inspect.run(())>"Inspect"</button>
                <button class="button small danger" data-testid="card-stop" title=title disabled=move || !allowed() || act.busy.get()
                    on:click=move |_| each(stop_ids.clone(), "stop")>"Stop"</button>
            </div>
            <ActError act=act testid="card-error" />
        </article>
    }
}

#[component]
fn JobLine(job: Job) -> impl IntoView {
    let live = use_live();
    let id = job.id.clone();
    let lid = id.clone();
    let live_job = Memo::new(move |_| live.jobs.with(|m| m.get(&lid).cloned()));
    let j = job.clone();
    let fig = Memo::new(move |_| figures(&j, live_job.get().as_ref()));
    let spark = Signal::derive(move || {
        let now = live.now_ms.get();
        live_job.with(|l| l.as_ref().map(|l| points(&l.history, now.max(l.history.last().map(|p| p.0).unwrap_or(0.0)))).unwrap_or_default())
    });
    view! {
        <div class="job-line" data-testid="card-job" data-job-id=id>
            <div class="job-line-head">
                <span>{job.vm_name.clone()}</span>
                <span class=move || format!("status-pill {}", status_class(fig.with(|f| f.status)))>{move || fig.with(|f| f.status.as_str())}</span>
                <span class="mono small push">{move || fig.with(|f| format!("{:.0}%", f.percent()))}</span>
            </div>
            <div class="progress-track"><div class=move || format!("progress-fill {}", status_class(fig.with(|f| f.status))) style:width=move || format!("{:.1}%", fig.with(|f| f.percent()))></div></div>
            <div class="job-line-figures mono small">
                <span>{move || fig.with(|f| format!("{} / {}", format_bytes(f.done), format_bytes(f.total)))}</span>
                <Sparkline points=spark testid="card-sparkline" />
                <span>{move || fig.with(|f| f.throughput_bps.map(|b| rate(b as f64)).unwrap_or_else(|| "—".into()))}</span>
                <span>"ETA " {move || fig.with(|f| f.eta_seconds.map(format_duration).unwrap_or_else(|| "—".into()))}</span>
            </div>
        </div>
    }
}
