//! Schedules: every backup flow, replication flow, verify and GC that runs
//! on its own in the next 7 or 14 days on one timeline, with how long each
//! is expected to run (from its own history), the spans where runs share a
//! repository or platform, and the schedule edited in place.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::flow::UpdateFlowRequest;
use shared_types::replication::UpdateReplicationRequest;
use shared_types::repositories::MaintenanceScheduleRequest;
use shared_types::schedules::{Overlap, ScheduleTimeline, ScheduledEntry, ScheduledKind};
use shared_types::search::route;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::format::{format_duration, when};
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::session::{needs, use_session};

/// Width of the timeline's drawing, in SVG units (it scales to the card).
const TRACK_W: f64 = 1000.0;

#[component]
pub fn SchedulesPage() -> impl IntoView {
    let d = nav::for_path("/schedules").expect("Schedules is in the navigation table");
    let live = use_live();
    let days = RwSignal::new(7u32);
    let version = RwSignal::new(0u32);
    let timeline = Fetch::new(move || {
        (version.get(), live.jobs_version.get());
        api::schedules(days.get())
    });
    view! {
        <section class="page" data-testid="page-schedules">
            <PageHeader label=d.label purpose=d.purpose />
            <div class="card">
                <div class="card-head">
                    <h2>{move || format!("NEXT {} DAYS (UTC)", days.get())}</h2>
                    <div class="seg" role="group" aria-label="Days ahead">
                        {[7u32, 14].into_iter().map(|n| view! {
                            <button type="button" class="seg-button" data-testid=format!("schedules-{n}d")
                                aria-pressed=move || (days.get() == n).to_string() on:click=move |_| days.set(n)>
                                {format!("{n} days")}
                            </button>
                        }).collect_view()}
                    </div>
                </div>
                <Transition fallback=|| view! { <p class="muted">"Reading the schedules…"</p> }>
                    {move || timeline.get().map(|r| match r {
                        Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                        Ok(t) => view! { <Timeline t=t version=version /> }.into_any(),
                    })}
                </Transition>
            </div>
        </section>
    }
}

fn kind_label(kind: ScheduledKind) -> &'static str {
    match kind {
        ScheduledKind::Backup => "BACKUP",
        ScheduledKind::Replication => "REPLICATION",
        ScheduledKind::Verify => "VERIFY",
        ScheduledKind::Gc => "GC",
    }
}

/// Where the entry's own page is.
fn href(e: &ScheduledEntry) -> String {
    match e.kind {
        ScheduledKind::Backup => route::to("/flows", route::FLOW, &e.id),
        ScheduledKind::Replication => route::to("/flows", route::REPLICATION, &e.id),
        ScheduledKind::Verify | ScheduledKind::Gc => route::to("/repositories", route::REPOSITORY, &e.id),
    }
}

#[component]
fn Timeline(t: ScheduleTimeline, version: RwSignal<u32>) -> impl IntoView {
    if t.entries.is_empty() {
        return view! {
            <p class="muted" data-testid="schedules-empty">
                "Nothing runs on its own yet: give a backup flow a schedule (FLOWS), or create a replication flow."
            </p>
        }
        .into_any();
    }
    let span = (t.end - t.start).num_seconds().max(1) as f64;
    let x = move |at: DateTime<Utc>| ((at - t.start).num_seconds() as f64 / span * TRACK_W).clamp(0.0, TRACK_W);
    // Day lines at each midnight UTC in the window.
    let mut ticks = Vec::new();
    let mut day = t.start.date_naive().succ_opt();
    while let Some(d) = day {
        let Some(midnight) = d.and_hms_opt(0, 0, 0).map(|m| m.and_utc()) else { break };
        if midnight >= t.end {
            break;
        }
        // A fortnight's days are labelled by their number only.
        let label = if span > 8.0 * 86_400.0 { d.format("%d") } else { d.format("%a %d") };
        ticks.push((x(midnight), label.to_string()));
        day = d.succ_opt();
    }
    let overlaps = t.overlaps.clone();
    let overlap_count = overlaps.len();
    view! {
        <div class="schedule-list" data-testid="schedule-list">
            {t.entries.into_iter().map(|e| {
                let in_overlap: Vec<(f64, f64)> = overlaps.iter()
                    .filter(|o| o.entries.contains(&e.key))
                    .map(|o| (x(o.start), (x(o.end) - x(o.start)).max(2.0)))
                    .collect();
                let width = e.expected_seconds.map(|s| s as f64 / span * TRACK_W).unwrap_or(0.0).max(2.0);
                let runs: Vec<f64> = e.runs.iter().map(|r| x(*r)).collect();
                let ticks = ticks.clone();
                view! {
                    <div class="schedule-row" data-testid=format!("schedule-{}", e.key) data-kind=e.kind.as_str() data-runs=e.runs.len().to_string()>
                        <div class="schedule-label">
                            <span class="kind-tag">{kind_label(e.kind)}</span>
                            <a class="schedule-name" href=href(&e)>{e.name.clone()}</a>
                            <span class="muted small" title=e.describe.clone()>{e.schedule.clone()}</span>
                            <span class="muted small" data-testid="schedule-expected">
                                {match e.expected_seconds {
                                    Some(s) => format!("≈ {} a run (median of {})", format_duration(s), e.history_runs),
                                    None => "no completed run yet".to_string(),
                                }}
                            </span>
                            <span class="muted small">
                                {e.runs.first().map(|r| format!("next {}", when(*r))).unwrap_or_else(|| "no run in the window".into())}
                                {e.truncated.then_some(" (more runs than shown)")}
                            </span>
                            {match e.policy.clone() {
                                // A policy's verify: its schedule is the policy's.
                                Some(p) => view! {
                                    <a class="muted small" href="/policies" data-testid="schedule-policy">{format!("Set by policy {}: edit it on Policies", p.name)}</a>
                                }.into_any(),
                                None => view! { <ScheduleEditor e=e.clone() version=version /> }.into_any(),
                            }}
                        </div>
                        <svg class="schedule-track" viewBox=format!("0 0 {TRACK_W} 24") preserveAspectRatio="none" role="img"
                            aria-label=format!("{} runs of {}", e.runs.len(), e.name)>
                            {ticks.into_iter().map(|(tx, _)| view! { <line class="schedule-day" x1=tx x2=tx y1="0" y2="24" /> }).collect_view()}
                            {in_overlap.into_iter().map(|(ox, ow)| view! { <rect class="schedule-overlap" x=ox y="0" width=ow height="24" /> }).collect_view()}
                            {runs.into_iter().map(|rx| view! { <rect class="schedule-run" x=rx y="5" width=width height="14" /> }).collect_view()}
                        </svg>
                    </div>
                }
            }).collect_view()}
            <div class="schedule-row schedule-axis" aria-hidden="true">
                <div></div>
                <div class="schedule-days">
                    {ticks.into_iter().map(|(tx, label)| view! {
                        <span style:left=format!("{:.2}%", tx / TRACK_W * 100.0)>{label}</span>
                    }).collect_view()}
                </div>
            </div>
        </div>
        <h3 class="schedule-overlaps-title">{format!("OVERLAPS ({overlap_count})")}</h3>
        <OverlapTable overlaps=overlaps />
    }
    .into_any()
}

#[component]
fn OverlapTable(overlaps: Vec<Overlap>) -> impl IntoView {
    if overlaps.is_empty() {
        return view! { <p class="muted small" data-testid="schedule-overlaps">"No two runs share a repository or platform in this window."</p> }.into_any();
    }
    view! {
        <div class="table-wrap" data-testid="schedule-overlaps">
            <table class="table">
                <thead><tr>
                    <th scope="col">"Where"</th><th scope="col">"From"</th><th scope="col">"To"</th>
                    <th scope="col">"At once"</th><th scope="col">"Runs of"</th>
                </tr></thead>
                <tbody>
                    {overlaps.into_iter().take(100).map(|o| view! {
                        <tr>
                            <td>{o.target_name.clone()}</td>
                            <td class="mono">{when(o.start)}</td>
                            <td class="mono">{when(o.end)}</td>
                            <td class="mono">{o.concurrent}</td>
                            <td class="small">{o.entries.iter().map(|k| k.split(':').next().unwrap_or_default().to_owned()).collect::<Vec<_>>().join(", ")}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// The schedule edited in place: a cron pattern (backup, verify, GC) or the
/// interval in minutes (replication). The server checks it; its message
/// shows here.
#[component]
fn ScheduleEditor(e: ScheduledEntry, version: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let allowed = move || session.can(Role::Operator);
    let open = RwSignal::new(false);
    let act = Act::new();
    let initial = match e.kind {
        ScheduledKind::Replication => e.schedule.trim_start_matches("every ").to_owned(),
        _ => e.schedule.clone(),
    };
    let value = RwSignal::new(match e.kind {
        ScheduledKind::Replication => minutes_of(&initial).map(|m| m.to_string()).unwrap_or_default(),
        _ => initial,
    });
    let entry = StoredValue::new(e.clone());
    let save = move || {
        let e = entry.get_value();
        let v = value.get_untracked().trim().to_owned();
        let done = move |_| {
            open.set(false);
            version.update(|n| *n += 1);
        };
        match e.kind {
            ScheduledKind::Backup => act.run(
                async move { api::update_flow(e.id, UpdateFlowRequest { schedule: Some(Some(v)), ..Default::default() }).await.map(|_| ()) },
                done,
            ),
            ScheduledKind::Verify => act.run(
                async move { api::set_maintenance_schedule(e.id, MaintenanceScheduleRequest { verify_schedule: Some(v), gc_schedule: None }).await.map(|_| ()) },
                done,
            ),
            ScheduledKind::Gc => act.run(
                async move { api::set_maintenance_schedule(e.id, MaintenanceScheduleRequest { verify_schedule: None, gc_schedule: Some(v) }).await.map(|_| ()) },
                done,
            ),
            ScheduledKind::Replication => match v.parse::<u64>() {
                Ok(minutes) if minutes > 0 => act.run(
                    async move {
                        api::update_replication(e.id, UpdateReplicationRequest { interval_seconds: Some(minutes * 60), ..Default::default() }).await.map(|_| ())
                    },
                    done,
                ),
                _ => act.error.set(Some("Enter the interval as a whole number of minutes, e.g. 15.".into())),
            },
        }
    };
    let placeholder = if e.kind == ScheduledKind::Replication { "minutes" } else { "cron, e.g. 0 2 * * *" };
    let testid = format!("schedule-edit-{}", e.key);
    view! {
        <Show when=move || open.get() fallback=move || view! {
            <button class="button small" data-testid=testid.clone() disabled=move || !allowed()
                title=move || if allowed() { "Change this schedule".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) }
                on:click=move |_| open.set(true)>"Edit"</button>
        }>
            <form class="schedule-editor" on:submit=move |ev| { ev.prevent_default(); save(); }>
                <input type="text" aria-label="Schedule" placeholder=placeholder data-testid="schedule-input"
                    prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev)) />
                <button class="button small primary" type="submit" data-testid="schedule-save" disabled=move || act.busy.get()>"Save"</button>
                <button class="button small" type="button" on:click=move |_| open.set(false)>"Cancel"</button>
                <ActError act=act testid="schedule-error" />
            </form>
        </Show>
    }
}

/// "15 minute(s)", "2 hour(s)", "1 day(s)" → minutes.
fn minutes_of(words: &str) -> Option<u64> {
    let mut parts = words.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next()? {
        w if w.starts_with("minute") => Some(n),
        w if w.starts_with("hour") => Some(n * 60),
        w if w.starts_with("day") => Some(n * 1440),
        _ => None,
    }
}
