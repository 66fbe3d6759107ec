//! Repositories: where backups live (a local directory, an S3 bucket, an
//! Azure container: kind, location and who enforces immutability; admins add,
//! test, edit, remove and choose the default, see `repository_setup`), with capacity, the engine's real
//! deduplication and compression, and maintenance (new backups refused,
//! queued ones wait) entered with a reason and ended by an operator; upkeep:
//! last verify and GC, next runs, their schedules, and Verify now / GC now /
//! Prune now with the running job's live progress; and the encryption key of
//! an encrypted repository downloaded for safekeeping (admins, behind a
//! confirmation that says what the key allows).

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::jobs::{Job, JobKind};
use shared_types::repositories::{MaintenanceScheduleRequest, Repository, RepositoryKind, RepositoryStatus, SetMaintenanceRequest, StorageFailure, StorageFailureCause, Upkeep, VerifyOutcome};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::instruments::Meter;
use crate::components::modal::Modal;
use crate::fetch::Fetch;
use crate::format::{format_bytes, when};
use crate::job_view::{figures, rate, status_class as job_status_class};
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::pages::repository_setup::{immutability_text, location_text, AddRepositoryForm, RepositoryAdmin};
use crate::session::{needs, use_session};

#[component]
pub fn RepositoriesPage() -> impl IntoView {
    let d = nav::for_path("/repositories").expect("Repositories is in the navigation table");
    let live = use_live();
    let version = RwSignal::new(0u32);
    let repos = Fetch::new(move || {
        version.get();
        live.jobs_version.get();
        api::repositories()
    });
    crate::components::open_param::scroll_to_opened(shared_types::search::route::REPOSITORY);
    let session = use_session();
    let admin = move || session.can(Role::Admin);
    let adding = RwSignal::new(false);
    let message = RwSignal::new(None::<(bool, String)>);
    let on_added = Callback::new(move |m: String| {
        adding.set(false);
        message.set(Some((true, m)));
        version.update(|v| *v += 1);
    });
    view! {
        <section class="page" data-testid="page-repositories">
            <PageHeader label=d.label purpose=d.purpose />
            <div class="action-row repo-toolbar">
                <button class="button small primary" data-testid="repo-add" disabled=move || !admin() || adding.get()
                    title=move || if admin() { "Add a local directory, an S3 bucket or an Azure container".to_string() } else { needs(Role::Admin, session.user.get().as_ref()) }
                    on:click=move |_| { message.set(None); adding.set(true); }>"Add repository"</button>
            </div>
            {move || message.get().map(|(ok, text)| view! {
                <p class=if ok { "notice operational" } else { "notice warning" } role="status" data-testid="repo-message">{text}</p>
            })}
            <Show when=move || adding.get()>
                <AddRepositoryForm on_done=on_added on_cancel=Callback::new(move |_| adding.set(false)) />
            </Show>
            <Transition fallback=|| view! { <p class="muted">"Reading the repositories…"</p> }>
                {move || repos.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(list) => view! {
                        <div class="card-grid">
                            {list.into_iter().map(|r| view! { <RepositoryCard r=r version=version message=message /> }).collect_view()}
                        </div>
                    }.into_any(),
                })}
            </Transition>
        </section>
    }
}

fn kind_text(k: RepositoryKind) -> &'static str {
    match k {
        RepositoryKind::Local => "local directory",
        RepositoryKind::S3 => "S3 bucket",
        RepositoryKind::Azure => "Azure Blob container",
    }
}

fn status_class(s: RepositoryStatus) -> &'static str {
    match s {
        RepositoryStatus::Online => "operational",
        RepositoryStatus::Maintenance => "caution",
        RepositoryStatus::Unavailable => "warning",
        RepositoryStatus::Degraded => "warning",
    }
}

/// The cause of a storage failure in words.
fn cause_text(c: StorageFailureCause) -> &'static str {
    match c {
        StorageFailureCause::Full => "the storage is full or over its quota",
        StorageFailureCause::Refused => "the storage refuses writes or the credentials",
        StorageFailureCause::Unreachable => "the storage did not answer",
        StorageFailureCause::Failed => "the storage failed the write",
    }
}

/// The storage's last failed write (status degraded) and "Test now": a
/// passing test clears it, like the next successful backup here.
#[component]
fn StorageFailureNotice(repo_id: String, failure: StorageFailure, version: RwSignal<u32>, message: RwSignal<Option<(bool, String)>>) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { "Write, read and delete a probe object there now".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let act = Act::new();
    let id = StoredValue::new(repo_id);
    let test = move |_| {
        act.run(api::test_saved_repository(id.get_value()), move |t| {
            let text = if t.ok {
                "The test passed: the repository takes writes again.".to_string()
            } else {
                let failed: Vec<String> = t.checks.iter().filter(|c| !c.ok).map(|c| c.message.clone()).collect();
                format!("The test failed: {}", failed.join("; "))
            };
            message.set(Some((t.ok, text)));
            version.update(|v| *v += 1);
        });
    };
    let job = failure.job_id.clone().map(|j| format!(" (job {j})")).unwrap_or_default();
    view! {
        <div class="notice warning repo-storage-failure" data-testid="repo-storage-failure" data-cause=failure.cause.as_str()>
            <p><strong>{format!("Last write failed {}{job}: {}.", when(failure.at), cause_text(failure.cause))}</strong></p>
            <p class="small wrap-anywhere" data-testid="repo-storage-failure-message">{failure.message.clone()}</p>
            <p class="small">"The next successful backup or copy here, or a passing test, clears this."</p>
            <div class="action-row">
                <button class="button small" data-testid="repo-test" title=title disabled=move || !operator() || act.busy.get() on:click=test>
                    {move || if act.busy.get() { "Testing…" } else { "Test now" }}
                </button>
            </div>
            <ActError act=act testid="repo-test-error" />
        </div>
    }
}

#[component]
fn RepositoryCard(r: Repository, version: RwSignal<u32>, message: RwSignal<Option<(bool, String)>>) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let act = Act::new();
    let reason = RwSignal::new(String::new());
    let id = StoredValue::new(r.id.clone());
    let opened = crate::components::open_param::use_open_param(shared_types::search::route::REPOSITORY);
    let this = r.id.clone();
    let set = move |enabled: bool| {
        let req = SetMaintenanceRequest { enabled, reason: enabled.then(|| reason.get_untracked()) };
        act.run(api::set_maintenance(id.get_value(), req), move |_| {
            reason.set(String::new());
            version.update(|v| *v += 1);
        });
    };
    let admin = move || session.can(Role::Admin);
    let key_title = move || if admin() { String::new() } else { needs(Role::Admin, session.user.get().as_ref()) };
    let key_open = RwSignal::new(false);
    let understood = RwSignal::new(false);
    let key_href = StoredValue::new(api::repository_key_url(&r.id));
    let encryption = match (&r.encrypted, &r.key_fingerprint) {
        (true, Some(fp)) => format!("AES-256-GCM, key {fp}"),
        (true, None) => "AES-256-GCM".to_string(),
        (false, _) => "none".to_string(),
    };
    let capacity = r.capacity.clone();
    let used = capacity.as_ref().map(|c| (c.total_bytes - c.free_bytes.min(c.total_bytes)) as f32 * 100.0 / c.total_bytes.max(1) as f32);
    let caption = capacity
        .as_ref()
        .map(|c| format!("{} free of {}", format_bytes(c.free_bytes), format_bytes(c.total_bytes)))
        // An object store has no size of its own: what it holds is in "Stored" below.
        .unwrap_or_else(|| if r.kind == shared_types::repositories::RepositoryKind::Local { "unknown".into() } else { "unbounded (reported by the provider)".into() });
    view! {
        <div class="card repo-card" data-open-id=r.id.clone() class:focused=move || opened.with(|o| o.as_ref() == Some(&this)) data-testid=format!("repo-{}", r.name) data-status=r.status.as_str()>
            <div class="card-head">
                <h2>{r.name.to_uppercase()}</h2>
                {r.is_default.then(|| view! { <span class="status-pill operational" data-testid="repo-default" title="New flows go here unless they name another repository">"default"</span> })}
                <span class=format!("status-pill {}", status_class(r.status)) data-testid="repo-status">{r.status.as_str()}</span>
            </div>
            <dl class="facts">
                <dt>"Kind"</dt><dd data-testid="repo-kind">{kind_text(r.kind)}</dd>
                <dt>"Location"</dt><dd class="mono" data-testid="repo-location">{location_text(&r)}</dd>
                <dt>"Immutability"</dt><dd data-testid="repo-immutability" data-mode=r.immutability.as_str()>{immutability_text(&r)}</dd>
                <dt>"Restore points"</dt><dd class="mono">{r.backup_count}</dd>
                <dt>"Encryption"</dt><dd class="mono" data-testid="repo-encryption">{encryption}</dd>
                {r.stats.clone().map(|s| view! {
                    <dt>"Protected data"</dt><dd class="mono">{format_bytes(s.logical_bytes)}</dd>
                    <dt>"Stored"</dt><dd class="mono">{format_bytes(s.repository_bytes)}</dd>
                    <dt>"Deduplication"</dt><dd class="mono">{format!("{:.2}:1", s.dedup_ratio)}</dd>
                    <dt>"Compression"</dt><dd class="mono">{format!("{:.2}:1", s.compression_ratio)}</dd>
                })}
            </dl>
            <Meter label="SPACE USED" percent=Signal::derive(move || used) caption=Signal::derive(move || caption.clone()) testid="repo-space" />
            {r.error.clone().map(|e| view! { <p class="notice warning">{e}</p> })}
            {r.storage_failure.clone().map(|f| view! { <StorageFailureNotice repo_id=r.id.clone() failure=f version=version message=message /> })}
            {match r.maintenance.clone() {
                Some(m) => view! {
                    <p class="notice caution" data-testid="repo-maintenance">
                        {format!("In maintenance since {}{}: {}. New backups are refused; queued ones wait.",
                            when(m.since), m.by.map(|b| format!(" (by {b})")).unwrap_or_default(), m.reason)}
                    </p>
                    <div class="action-row">
                        <button class="button primary small" data-testid="repo-maintenance-end" title=title
                            disabled=move || !operator() || act.busy.get() on:click=move |_| set(false)>"End maintenance"</button>
                    </div>
                }.into_any(),
                None => view! {
                    <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); set(true); }>
                        <input type="text" placeholder="Reason, e.g. disk replacement" data-testid="repo-maintenance-reason"
                            prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev)) />
                        <button class="button small" type="submit" data-testid="repo-maintenance-enter" title=title
                            disabled=move || !operator() || act.busy.get()>"Enter maintenance"</button>
                    </form>
                }.into_any(),
            }}
            {r.encrypted.then(|| view! {
                <div class="action-row">
                    <button class="button small" data-testid="repo-key-download" title=key_title disabled=move || !admin()
                        on:click=move |_| { understood.set(false); key_open.set(true); }>"Download key"</button>
                </div>
                <Modal open=key_open title="Download the repository key" testid="repo-key-dialog">
                    <p class="notice warning" data-testid="repo-key-warning">
                        "Anyone holding this key and a copy of the repository can read every backup in it. "
                        "Store it offline, apart from the repository, where only trusted people can reach it."
                    </p>
                    <p class="notice caution">
                        "Without this key nothing in the repository can be restored if the server's data directory is lost. "
                        "The download is recorded in the audit log."
                    </p>
                    <label class="check">
                        <input type="checkbox" data-testid="repo-key-understood"
                            prop:checked=move || understood.get() on:change=move |ev| understood.set(event_target_checked(&ev)) />
                        " I understand and will keep the key safe"
                    </label>
                    <div class="action-row">
                        <button class="button small" on:click=move |_| key_open.set(false)>"Cancel"</button>
                        <Show when=move || understood.get()
                            fallback=|| view! { <button class="button primary small" disabled=true>"Download key"</button> }>
                            <a class="button primary small" data-testid="repo-key-confirm" href=move || key_href.get_value() download=""
                                on:click=move |_| key_open.set(false)>"Download key"</a>
                        </Show>
                    </div>
                </Modal>
            })}
            <ActError act=act testid="repo-error" />
            <RepositoryAdmin r=r.clone() version=version message=message />
            <UpkeepSection repo_id=r.id.clone() upkeep=r.upkeep.clone() version=version />
        </div>
    }
}

fn verify_summary(u: &Upkeep) -> (String, &'static str) {
    match &u.last_verify {
        None => ("never".into(), "offline"),
        Some(v) => match v.outcome {
            VerifyOutcome::Ok => (format!("{}: every restore point intact", when(v.at)), "operational"),
            VerifyOutcome::Damaged => (format!("{}: {} damaged restore point(s), see RECOVERY", when(v.at), v.damaged), "warning"),
            VerifyOutcome::Failed => (format!("{}: could not finish, see the job's log", when(v.at)), "warning"),
        },
    }
}

/// Last verify and GC, next runs, schedules, and the buttons that start a
/// verify, GC or prune now; the repository's newest maintenance job shows
/// live (from the WebSocket, like backups).
#[component]
fn UpkeepSection(repo_id: String, upkeep: Upkeep, version: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let live = use_live();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let act = Act::new();
    let id = StoredValue::new(repo_id);
    // The job just started (its answer), until the link announces it.
    let started: RwSignal<Option<Job>> = RwSignal::new(None);
    let current = Memo::new(move |_| {
        let rid = id.get_value();
        let announced = live.job_states.with(|m| {
            m.values()
                .filter(|j| j.repository_id.as_deref() == Some(rid.as_str()) && j.kind.is_repository_maintenance())
                .max_by_key(|j| j.created_at)
                .cloned()
        });
        match (announced, started.get()) {
            (Some(a), Some(s)) if s.created_at > a.created_at => Some(s),
            (Some(a), _) => Some(a),
            (None, s) => s,
        }
    });
    let busy = move || current.with(|j| j.as_ref().is_some_and(|j| j.status.is_active()));
    let start = move |verb: &'static str| {
        act.run(api::repository_job(id.get_value(), verb), move |job| started.set(Some(job)));
    };
    let (verify_text, verify_class) = verify_summary(&upkeep);
    let gc_text = upkeep.last_gc.as_ref().map(|g| format!("{}: {} given back", when(g.at), format_bytes(g.reclaimed_bytes))).unwrap_or_else(|| "never".into());
    let next = |at: Option<chrono::DateTime<chrono::Utc>>, pattern: &Option<String>| match (at, pattern) {
        (Some(at), Some(p)) => format!("{} ({p})", when(at)),
        _ => "off".into(),
    };
    let next_verify = next(upkeep.next_verify_at, &upkeep.verify_schedule);
    let next_gc = next(upkeep.next_gc_at, &upkeep.gc_schedule);
    let verify_cron = RwSignal::new(upkeep.verify_schedule.clone().unwrap_or_default());
    let gc_cron = RwSignal::new(upkeep.gc_schedule.clone().unwrap_or_default());
    let sched = Act::new();
    let save = move || {
        let req = MaintenanceScheduleRequest { verify_schedule: Some(verify_cron.get_untracked()), gc_schedule: Some(gc_cron.get_untracked()) };
        sched.run(api::set_maintenance_schedule(id.get_value(), req), move |_| version.update(|v| *v += 1));
    };
    view! {
        <div class="upkeep" data-testid="repo-upkeep">
            <h3>"UPKEEP"</h3>
            <dl class="facts">
                <dt>"Last verify"</dt>
                <dd data-testid="repo-last-verify" data-outcome=upkeep.last_verify.as_ref().map(|v| v.outcome.as_str()).unwrap_or("never")>
                    <span class=format!("status-dot {verify_class}")></span>" "{verify_text}
                </dd>
                <dt>"Last GC"</dt><dd data-testid="repo-last-gc">{gc_text}</dd>
                <dt>"Next verify"</dt><dd class="mono" data-testid="repo-next-verify">{next_verify}</dd>
                <dt>"Next GC"</dt><dd class="mono" data-testid="repo-next-gc">{next_gc}</dd>
            </dl>
            <div class="action-row">
                <button class="button small primary" data-testid="repo-verify-now" title=title disabled=move || !operator() || act.busy.get() || busy()
                    on:click=move |_| start("verify")>"Verify now"</button>
                <button class="button small" data-testid="repo-gc-now" title=title disabled=move || !operator() || act.busy.get() || busy()
                    on:click=move |_| start("gc")>"GC now"</button>
                <button class="button small" data-testid="repo-prune-now" title=title disabled=move || !operator() || act.busy.get() || busy()
                    on:click=move |_| start("prune")>"Prune now"</button>
            </div>
            <ActError act=act testid="repo-job-error" />
            {move || current.get().map(|j| view! { <MaintenanceJob job=j /> })}
            <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); save(); }>
                <label class="small muted">"Verify (cron, UTC)"
                    <input type="text" class="mono" data-testid="repo-verify-schedule" placeholder="off"
                        prop:value=move || verify_cron.get() on:input=move |ev| verify_cron.set(event_target_value(&ev)) />
                </label>
                <label class="small muted">"GC (cron, UTC)"
                    <input type="text" class="mono" data-testid="repo-gc-schedule" placeholder="off"
                        prop:value=move || gc_cron.get() on:input=move |ev| gc_cron.set(event_target_value(&ev)) />
                </label>
                <button class="button small" type="submit" data-testid="repo-schedule-save" title=title
                    disabled=move || !operator() || sched.busy.get()>"Save schedules"</button>
            </form>
            <ActError act=sched testid="repo-schedule-error" />
        </div>
    }
}

/// One maintenance job: what it does, live progress, its result.
#[component]
fn MaintenanceJob(job: Job) -> impl IntoView {
    let live = use_live();
    let kind = job.kind;
    let error = job.error.clone();
    let fig = {
        let id = job.id.clone();
        Memo::new(move |_| live.jobs.with(|m| figures(&job, m.get(&id))))
    };
    let label = match kind {
        JobKind::Verify => "VERIFY",
        JobKind::Gc => "GC",
        _ => "PRUNE",
    };
    let bytes = move || {
        fig.with(|f| match kind {
            JobKind::Verify => format!("{} of {} checked", format_bytes(f.done), format_bytes(f.total)),
            JobKind::Gc => format!("{} of {} looked at, {} given back", format_bytes(f.done), format_bytes(f.total), format_bytes(f.written)),
            _ => String::new(),
        })
    };
    view! {
        <div class="maintenance-job" data-testid="repo-job" data-kind=kind.as_str() data-status=move || fig.with(|f| f.status.as_str())>
            <div class="job-head">
                <span class="job-vm">{label}</span>
                <span class=move || format!("status-pill {}", job_status_class(fig.with(|f| f.status))) data-testid="repo-job-status">
                    {move || fig.with(|f| f.status.as_str().to_uppercase())}
                </span>
            </div>
            <div class="progress">
                <div class="progress-track">
                    <div class=move || format!("progress-fill {}", job_status_class(fig.with(|f| f.status))) style:width=move || format!("{:.1}%", fig.with(|f| f.percent()))></div>
                </div>
                <div class="progress-caption mono">
                    <span data-testid="repo-job-percent">{move || format!("{:.1}%", fig.with(|f| f.percent()))}</span>
                    <span data-testid="repo-job-bytes">{bytes}</span>
                    <span>{move || fig.with(|f| f.throughput_bps.filter(|_| f.status.is_active()).map(|b| rate(b as f64)).unwrap_or_default())}</span>
                </div>
            </div>
            {error.map(|e| view! { <p class="notice warning">{e}</p> })}
        </div>
    }
}
