//! COMMAND: mission control. Fleet health, operations, platform
//! distribution, throughput and storage efficiency from
//! `GET /api/v1/telemetry/overview` (refetched on every job change and every
//! 5 s), throughput now from the live `job_progress` events, and a live
//! activity feed of jobs and alerts.

use leptos::prelude::*;
use leptos_router::components::A;
use shared_types::jobs::{Job, JobStatus};
use shared_types::overview::{FleetHealth, Overview};
use shared_types::ws::AlertSeverity;

use crate::api;
use crate::components::instruments::{level_class, Dial};
use crate::components::later::Later;
use crate::fetch::Fetch;
use crate::format::{ago, format_bytes};
use crate::job_view::{rate, status_class};
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;

/// Items the activity feed shows.
const FEED_MAX: usize = 12;

#[component]
pub fn CommandPage() -> impl IntoView {
    let d = nav::for_path("/command").expect("COMMAND is in the navigation table");
    let live = use_live();
    let every_5s = Memo::new(move |_| (live.now_ms.get() / 5_000.0) as u64);
    let overview = Fetch::new(move || {
        live.jobs_version.get();
        every_5s.get();
        api::overview()
    });
    let recent = Fetch::new(move || {
        live.jobs_version.get();
        api::jobs(format!("limit={FEED_MAX}"))
    });
    // The last good answer stays on screen while the next one loads.
    let last = RwSignal::new(None::<Overview>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| match overview.get() {
        Some(Ok(o)) => {
            // Every read has a new generated_at: only a changed figure is
            // news, and each panel below follows only its own part.
            if last.with_untracked(|l| l.as_ref().is_none_or(|l| Overview { generated_at: o.generated_at, ..l.clone() } != o)) {
                last.set(Some(o));
            }
            if error.with_untracked(Option::is_some) {
                error.set(None);
            }
        }
        Some(Err(e)) => error.set(Some(e.message)),
        None => {}
    });
    let o = Signal::derive(move || last.get());
    view! {
        <section class="page" data-testid="page-command">
            <PageHeader label=d.label purpose=d.purpose />
            {move || error.get().map(|e| view! { <p class="notice warning" data-testid="overview-error">{e}</p> })}
            <div class="panel-grid two">
                <FleetPanel o=o />
                <OperationsPanel o=o />
                // Further down: each built in a task of its own (components/later.rs).
                <Later><PlatformsPanel o=o /></Later>
                <Later><ThroughputPanel o=o /></Later>
                <Later><StoragePanel o=o /></Later>
                <Later><ActivityFeed recent=Signal::derive(move || recent.get().and_then(|r| r.ok()).map(|p| p.items)) /></Later>
            </div>
        </section>
    }
}

/// A counter tile; `data-value` carries the number for tests.
#[component]
fn Stat(label: &'static str, value: Signal<Option<u64>>, class: &'static str, #[prop(into)] testid: String) -> impl IntoView {
    view! {
        <div class=format!("stat {class}") data-testid=testid data-value=move || value.get().map(|v| v.to_string())>
            <span class="stat-label">{label}</span>
            <span class="stat-value mono">{move || value.get().map(|v| v.to_string()).unwrap_or_else(|| "—".into())}</span>
        </div>
    }
}

#[component]
fn FleetPanel(o: Signal<Option<Overview>>) -> impl IntoView {
    let count = move |f: fn(&Overview) -> u64| Signal::derive(move || o.with(|o| o.as_ref().map(f)));
    let part = Memo::new(move |_| o.with(|o| o.as_ref().map(|o| (o.fleet.total, o.fleet.attention + o.fleet.critical, o.issues.clone()))));
    view! {
        <div class="card" data-testid="fleet-status">
            <h2>"FLEET STATUS"</h2>
            <div class="stat-row three">
                <Stat label="PROTECTED" value=count(|o| o.fleet.protected) class="operational" testid="fleet-protected" />
                <Stat label="ATTENTION" value=count(|o| o.fleet.attention) class="caution" testid="fleet-attention" />
                <Stat label="CRITICAL" value=count(|o| o.fleet.critical) class="warning" testid="fleet-critical" />
            </div>
            {move || part.with(|o| {
                // One line held while the overview loads: the card does not
                // push the others down when its figures arrive.
                let Some((total, flagged, issues)) = o.as_ref() else {
                    return view! { <p class="muted small">"Loading the fleet…"</p> }.into_any();
                };
                if *total == 0 {
                    return view! {
                        <p class="muted small">"No managed VMs yet. "<A href="/assets">"Add VMs on ASSETS"</A>" to protect them."</p>
                    }.into_any();
                }
                let more = flagged.saturating_sub(issues.len() as u64);
                view! {
                    <ul class="issue-list" data-testid="fleet-issues">
                        {issues.iter().map(|i| {
                            let class = if i.health == FleetHealth::Critical { "warning" } else { "caution" };
                            view! {
                                <li>
                                    <span class=format!("status-dot {class}")></span>
                                    <span class="vm-name">{i.vm.name.clone()}</span>
                                    <span class="muted small">{format!("{} · {}", i.reason, i.platform_name)}</span>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                    {(more > 0).then(|| view! { <p class="muted small">{format!("and {more} more")}</p> })}
                }.into_any()
            })}
        </div>
    }
}

#[component]
fn OperationsPanel(o: Signal<Option<Overview>>) -> impl IntoView {
    let count = move |f: fn(&Overview) -> u64| Signal::derive(move || o.with(|o| o.as_ref().map(f)));
    let today = Memo::new(move |_| o.with(|o| o.as_ref().map(|o| (o.jobs.completed_today, o.jobs.failed_today, o.jobs.cancelled_today))));
    view! {
        <div class="card" data-testid="operations-status">
            <h2>"OPERATIONS STATUS"</h2>
            <div class="stat-row four">
                <Stat label="ACTIVE" value=count(|o| o.jobs.running) class="operational" testid="ops-active" />
                <Stat label="QUEUED" value=count(|o| o.jobs.queued) class="caution" testid="ops-queued" />
                <Stat label="PAUSED" value=count(|o| o.jobs.paused) class="caution" testid="ops-paused" />
                <Stat label="DONE TODAY" value=count(|o| o.jobs.completed_today) class="operational" testid="ops-today" />
            </div>
            {move || today.with(|t| match *t {
                Some((completed, failed, cancelled)) => view! {
                    <p class="muted small" data-testid="ops-today-detail">
                        {format!("Today (UTC): {completed} completed, {failed} failed, {cancelled} cancelled.")}
                        " " <A href="/flows">"Open FLOWS"</A>
                    </p>
                }.into_any(),
                None => view! { <p class="muted small">"Loading today's jobs…"</p> }.into_any(),
            })}
        </div>
    }
}

#[component]
fn PlatformsPanel(o: Signal<Option<Overview>>) -> impl IntoView {
    let part = Memo::new(move |_| o.with(|o| o.as_ref().map(|o| (o.platforms.clone(), o.fleet.total))));
    view! {
        <div class="card" data-testid="platform-distribution">
            <h2>"PLATFORM DISTRIBUTION"</h2>
            {move || part.with(|o| o.as_ref().map(|(platforms, total)| {
                if platforms.is_empty() {
                    return view! { <p class="muted small">"No platform is connected. "<A href="/assets">"+ Add VMs"</A>" connects one."</p> }.into_any();
                }
                let total = (*total).max(1);
                platforms.iter().map(|p| {
                    let share = p.vms as f64 * 100.0 / total as f64;
                    view! {
                        <div class="meter" data-testid=format!("platform-share-{}", p.name) data-vms=p.vms.to_string()>
                            <div class="meter-head">
                                <span class="meter-label">{format!("{} · {}", p.name, p.kind.label())}</span>
                                <span class="mono">{format!("{:.0}% · {} VMs · {} protected", share, p.vms, p.protected)}</span>
                            </div>
                            <div class="meter-track"><div class="meter-fill operational" style:width=format!("{share:.1}%")></div></div>
                        </div>
                    }
                }).collect_view().into_any()
            }))}
        </div>
    }
}

#[component]
fn ThroughputPanel(o: Signal<Option<Overview>>) -> impl IntoView {
    let live = use_live();
    // Throughput now: the latest event of each active job, if fresh (3 s).
    let current = Signal::derive(move || {
        let now = live.now_ms.get();
        let states = live.job_states.get();
        live.jobs.with(|jobs| {
            jobs.values()
                .filter(|j| !j.progress.paused && now - j.progress.at.timestamp_millis() as f64 <= 3_000.0)
                .filter(|j| states.get(&j.progress.job_id).is_none_or(|s| s.status == JobStatus::Running))
                .map(|j| j.progress.throughput_bps)
                .sum::<u64>()
        })
    });
    let peak = Signal::derive(move || o.with(|o| o.as_ref().map(|o| o.throughput.peak_bps_today)).unwrap_or(0).max(current.get()));
    let read_limit = Memo::new(move |_| o.with(|o| o.as_ref().and_then(|o| o.throughput.read_limit_bps)));
    let load = Signal::derive(move || {
        let p = peak.get();
        (p > 0).then(|| (current.get() as f64 * 100.0 / p as f64) as f32)
    });
    view! {
        <div class="card" data-testid="throughput-gauge" data-bps=move || current.get().to_string()>
            <h2>"THROUGHPUT"</h2>
            <div class="gauge-row">
                <Dial label="OF TODAY'S PEAK" value=load testid="throughput-dial" />
                <div>
                    <div class="stat-value mono" data-testid="throughput-now">{move || rate(current.get() as f64)}</div>
                    <div class="muted small">{move || format!("peak today {}", rate(peak.get() as f64))}</div>
                    {move || read_limit.get().map(|l| view! {
                        <div class="muted small">{format!("read cap {} per job", rate(l as f64))}</div>
                    })}
                </div>
            </div>
        </div>
    }
}

fn ratio(r: f64) -> String {
    if r > 0.0 {
        format!("{r:.2}:1")
    } else {
        "—".into()
    }
}

#[component]
fn StoragePanel(o: Signal<Option<Overview>>) -> impl IntoView {
    let storage = Memo::new(move |_| o.with(|o| o.as_ref().map(|o| o.storage.clone())));
    view! {
        <div class="card" data-testid="storage-efficiency">
            <h2>"STORAGE EFFICIENCY"</h2>
            {move || storage.get().map(|s| {
                if s.logical_bytes == 0 {
                    return view! { <p class="muted small">"Deduplication and compression appear after the first backup."</p> }.into_any();
                }
                let saved = (s.savings_ratio * 100.0) as f32;
                view! {
                    <dl class="facts">
                        <dt>"Deduplication"</dt><dd class="mono" data-testid="dedup-ratio" data-value=s.dedup_ratio.to_string()>{ratio(s.dedup_ratio)}</dd>
                        <dt>"Compression"</dt><dd class="mono" data-testid="compression-ratio" data-value=s.compression_ratio.to_string()>{ratio(s.compression_ratio)}</dd>
                        <dt>"Protected data"</dt><dd class="mono">{format_bytes(s.logical_bytes)}</dd>
                        <dt>"On disk"</dt><dd class="mono">{format_bytes(s.repository_bytes)}</dd>
                    </dl>
                    <div class="meter">
                        <div class="meter-head"><span class="meter-label">"SAVED"</span><span class="mono" data-testid="savings">{format!("{saved:.1}%")}</span></div>
                        <div class="meter-track"><div class=format!("meter-fill {}", if saved >= 50.0 { "operational" } else { level_class(100.0 - saved) }) style:width=format!("{:.1}%", saved.clamp(0.0, 100.0))></div></div>
                    </div>
                    <p class="muted small">
                        {format!("{} repositor{}", s.repositories, if s.repositories == 1 { "y" } else { "ies" })}
                        {(s.in_maintenance > 0).then(|| format!(", {} in maintenance", s.in_maintenance))}
                        {(s.unavailable > 0).then(|| format!(", {} unavailable", s.unavailable))}
                        {(s.degraded > 0).then(|| format!(", {} degraded (the storage failed a write)", s.degraded))}
                        " · " <A href="/repositories">"Repositories"</A>
                    </p>
                }.into_any()
            })}
        </div>
    }
}

/// One line of the feed.
#[derive(Debug, Clone, PartialEq)]
struct FeedItem {
    at_ms: f64,
    class: &'static str,
    title: String,
    detail: String,
}

fn job_item(j: &Job) -> FeedItem {
    let at = j.finished_at.or(j.started_at).unwrap_or(j.created_at);
    let what = match j.backup_type {
        Some(t) => format!("{} {}", t.as_str(), j.kind.as_str()),
        None => j.kind.as_str().to_string(),
    };
    let detail = match j.status {
        JobStatus::Completed => format!("read {}, stored {}", format_bytes(j.bytes_read), format_bytes(j.bytes_written)),
        JobStatus::Failed | JobStatus::Cancelled => j.error.clone().unwrap_or_default(),
        _ => j.flow_name.clone().map(|f| format!("flow {f}")).unwrap_or_default(),
    };
    FeedItem {
        at_ms: at.timestamp_millis() as f64,
        class: status_class(j.status),
        title: format!("{} · {what} {}", j.vm_name, j.status.as_str()),
        detail,
    }
}

#[component]
fn ActivityFeed(recent: Signal<Option<Vec<Job>>>) -> impl IntoView {
    let live = use_live();
    let items = move || {
        // The newest state of each job: the live event if newer than the list.
        let states = live.job_states.get();
        let mut jobs: Vec<Job> = recent.get().unwrap_or_default();
        for j in jobs.iter_mut() {
            if let Some(s) = states.get(&j.id) {
                *j = s.clone();
            }
        }
        for s in states.values() {
            if !jobs.iter().any(|j| j.id == s.id) {
                jobs.push(s.clone());
            }
        }
        let mut feed: Vec<FeedItem> = jobs.iter().map(job_item).collect();
        feed.extend(live.server_alerts.get().iter().map(|a| FeedItem {
            at_ms: a.at.timestamp_millis() as f64,
            class: match a.severity {
                AlertSeverity::Critical => "warning",
                AlertSeverity::Warning => "caution",
                AlertSeverity::Info => "operational",
            },
            title: a.title.clone(),
            detail: a.message.clone(),
        }));
        feed.sort_by(|a, b| b.at_ms.total_cmp(&a.at_ms));
        feed.truncate(FEED_MAX);
        feed
    };
    // The list is built once; an item is made when it appears (keyed by
    // what it shows) and only its age ticks with the clock.
    let feed = Memo::new(move |_| items());
    view! {
        <div class="card" data-testid="activity-feed">
            <h2>"LIVE ACTIVITY"</h2>
            <Show when=move || feed.with(|f| !f.is_empty()) fallback=|| view! { <p class="muted small">"No job has run yet."</p> }>
                <ul class="feed">
                    <For each=move || feed.get() key=|f| (f.at_ms as i64, f.class, f.title.clone(), f.detail.clone()) let:f>
                        <li data-testid="feed-item">
                            <span class=format!("status-dot {}", f.class)></span>
                            <span class="feed-text">
                                <span>{f.title}</span>
                                <span class="muted small">{f.detail}</span>
                            </span>
                            <span class="muted small mono">{move || ago(chrono::DateTime::from_timestamp_millis(f.at_ms as i64).unwrap_or_default(), live.now_ms.get())}</span>
                        </li>
                    </For>
                </ul>
            </Show>
        </div>
    }
}
