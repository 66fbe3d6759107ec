//! One VM backup job: open the platform and the repository, run the engine on
//! a blocking thread with the job's [`Progress`] while [`telemetry`] streams
//! it, then record the restore point, apply the flow's retention, and settle
//! the job row and the flow's state. A failure raises an alert.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use shared_types::flow::FlowState;
use shared_types::jobs::{BackupType, JobStatus, LogLevel};
use shared_types::platform::PlatformKind;
use shared_types::repositories::RepositoryKind;

use super::{retention, telemetry, Runner};
use crate::catalog::{repository_health, storage_locks};
use crate::catalog::backups::{record, NewBackup};
use crate::catalog::{flows as flow_rules, from_wire, inventory, to_i64};
use crate::db::entities::{backups, flows, jobs, platforms, repositories, vm_contexts};
use crate::engine::backup::BackupOptions;
use crate::catalog::repositories as repositories_logic;
use crate::engine::progress::Progress;
use crate::engine::EngineError;
use crate::repos::http::RequestCounts;
use crate::jobs::vm_backup::{backup_vm_with, snapshot_group, VmBackupReport};
use crate::jobs::JobError;
use crate::platforms::Quiesce;

/// What the blocking part needs from the catalog.
struct Plan {
    platform_kind: PlatformKind,
    platform_address: String,
    vm_ref: String,
    repository: repositories::Model,
    flow: Option<flows::Model>,
    full: bool,
}

pub async fn run(runner: &Runner, job: jobs::Model, vm: vm_contexts::Model, progress: Arc<Progress>) {
    let db = runner.db().clone();
    let Some(job) = start(runner, job).await else { return };
    if let Some(flow) = &job.flow_id {
        let _ = set_flow_state(&db, flow, FlowState::Running, None).await;
    }

    let outcome = match plan(&db, &job, &vm).await {
        Ok(plan) => execute(runner, &job, &vm, plan, progress.clone()).await,
        Err(message) => Err(message),
    };
    let mut read_as = None;
    let mut copy_of = None;
    let (status, error) = match outcome {
        Ok((report, restore_point)) => {
            copy_of = Some(restore_point);
            // The job shows how the VM was really read, not what was asked.
            read_as = Some(if report.disks.iter().all(|d| d.incremental) { BackupType::Incremental } else { BackupType::Full });
            telemetry::log(runner, &job.id, LogLevel::Info, format!(
                "snapshot {} committed: read {} bytes, wrote {} bytes in {:.1} s",
                report.snapshot, report.bytes_read, report.bytes_written, report.duration_ms as f64 / 1000.0
            ))
            .await;
            (JobStatus::Completed, None)
        }
        Err(message) if progress.control.is_cancelled() => (JobStatus::Cancelled, Some(message)),
        Err(message) => (JobStatus::Failed, Some(message)),
    };
    if let Some(e) = &error {
        telemetry::log(runner, &job.id, if status == JobStatus::Failed { LogLevel::Error } else { LogLevel::Warn }, e.clone()).await;
    }
    let mut job = job;
    if let Some(t) = read_as {
        job.backup_type = Some(t.as_str().to_owned());
    }
    let Some(job) = end_job(runner, job, status, error.clone(), &progress).await else {
        return;
    };
    if status == JobStatus::Failed {
        telemetry::alert(runner, &job, &vm.name, error.as_deref().unwrap_or("failed")).await;
    }
    // 3-2-1: the flow's copy target gets the new restore point.
    if let (Some(point), Some(flow_id)) = (copy_of.filter(|_| status == JobStatus::Completed), &job.flow_id) {
        if let Ok(Some(flow)) = flows::Entity::find_by_id(flow_id.clone()).one(&db).await {
            runner.copy_after_backup(&job, &flow, &point).await;
        }
    }
    if let Some(flow) = &job.flow_id {
        if let Err(e) = settle_flow(&db, flow).await {
            tracing::error!(error = %e, "unable to settle the flow's state");
        }
    }
}

/// Marks a dispatched job running and announces it; `None` when it was
/// stopped between dispatch and now (emergency stop) or cannot be read.
pub(super) async fn start(runner: &Runner, job: jobs::Model) -> Option<jobs::Model> {
    let db = runner.db();
    match jobs::Entity::find_by_id(job.id.clone()).one(db).await {
        Ok(Some(current)) if current.status == JobStatus::Queued.as_str() => {}
        Ok(_) => return None,
        Err(e) => {
            tracing::error!(error = %e, "unable to read the job before starting it");
            return None;
        }
    }
    let job = match mark_running(db, job).await {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "unable to start the job");
            return None;
        }
    };
    telemetry::job_changed(runner, &job).await;
    Some(job)
}

async fn mark_running(db: &DatabaseConnection, job: jobs::Model) -> Result<jobs::Model, DbErr> {
    let mut a: jobs::ActiveModel = job.into();
    let now = Utc::now();
    a.status = Set(JobStatus::Running.as_str().to_owned());
    a.started_at = Set(Some(now));
    a.updated_at = Set(now);
    a.update(db).await
}

async fn plan(db: &DatabaseConnection, job: &jobs::Model, vm: &vm_contexts::Model) -> Result<Plan, String> {
    let platform = platforms::Entity::find_by_id(vm.platform_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the platform of VM '{}' was removed", vm.name))?;
    let kind: PlatformKind = from_wire(&platform.kind).ok_or_else(|| format!("platform '{}' has an unknown kind", platform.name))?;
    let repo_id = job.repository_id.clone().ok_or("the job names no repository")?;
    let repository = repositories::Entity::find_by_id(repo_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("repository '{repo_id}' was removed"))?;
    let flow = match &job.flow_id {
        Some(id) => flows::Entity::find_by_id(id.clone()).one(db).await.map_err(|e| e.to_string())?,
        None => None,
    };
    let full = job.backup_type.as_deref().and_then(BackupType::parse) == Some(BackupType::Full);
    Ok(Plan { platform_kind: kind, platform_address: platform.address, vm_ref: vm.platform_vm_id.clone(), repository, flow, full })
}

async fn execute(
    runner: &Runner,
    job: &jobs::Model,
    vm: &vm_contexts::Model,
    plan: Plan,
    progress: Arc<Progress>,
) -> Result<(VmBackupReport, backups::Model), String> {
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), vm.name.clone(), progress.clone());
    let repository = plan.repository.clone();
    let data_dir = runner.data_dir()?;
    let flow_days = plan.flow.as_ref().map(|f| f.immutable_days.max(0) as u32).unwrap_or(0);
    let (immutable_days, object_lock) = repositories_logic::backup_immutability(&repository, flow_days);
    let (kind, address, vm_ref, full) = (plan.platform_kind, plan.platform_address.clone(), plan.vm_ref.clone(), plan.full);
    let group = snapshot_group(&vm.id);
    let p = progress.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<(VmBackupReport, Option<RequestCounts>), JobError> {
        let platform = inventory::connect(kind, &address)?;
        let ds = repositories_logic::open_datastore(&data_dir, &repository)?;
        let mut opts = BackupOptions::new(&group);
        opts.immutable_days = (immutable_days > 0).then_some(immutable_days);
        opts.object_lock = object_lock;
        let stop = p.clone();
        let report = crate::platforms::tools::with_stop(move || stop.control.is_cancelled(), || backup_vm_with(platform.as_ref(), &vm_ref, &ds, &opts, full, &p))?;
        Ok((report, ds.repo.request_counts()))
    })
    .await;
    sampler.abort();
    let report = match result {
        Ok(Ok((r, requests))) => {
            if let Some(line) = requests.and_then(|c| retried_line(&c, &plan.repository.kind, "the storage", "the backup")) {
                telemetry::log(runner, &job.id, LogLevel::Warn, line).await;
            }
            r
        }
        Ok(Err(JobError::Engine(EngineError::Cancelled))) => return Err("stopped by an operator; no restore point was written".into()),
        Ok(Err(e)) => {
            // An object store's error names it by its location: say which catalog repository that is.
            let message = if plan.repository.kind != RepositoryKind::Local.as_str() {
                format!("backup to {} repository '{}' failed: {e}", plan.repository.kind, plan.repository.name)
            } else {
                e.to_string()
            };
            // The storage failed it (full, refusing writes...): the repository shows it until a write there succeeds.
            if let Some(cause) = repository_health::job_cause(&e) {
                if let Err(db) = repository_health::record(runner.db(), &plan.repository.id, cause, &message, Some(&job.id), Utc::now()).await {
                    tracing::warn!(error = %db, repository = %plan.repository.name, "recording the repository's storage failure");
                }
            }
            return Err(message);
        }
        Err(e) => return Err(format!("the backup thread failed: {e}")),
    };
    for d in &report.disks {
        let line = match &d.full_read_reason {
            None => format!("{}: incremental, {} bytes changed since the previous restore point", d.disk, d.changed_bytes),
            Some(r) => format!("{}: full read ({r})", d.disk),
        };
        telemetry::log(runner, &job.id, LogLevel::Info, line).await;
    }
    if let Some(q) = &report.quiesce {
        let level = if matches!(q, Quiesce::AgentFailed { .. }) { LogLevel::Warn } else { LogLevel::Info };
        telemetry::log(runner, &job.id, level, q.to_string()).await;
    }
    let all_incremental = report.disks.iter().all(|d| d.incremental);
    let db = runner.db();
    let backup = record(
        db,
        NewBackup {
            vm_context_id: &vm.id,
            job_id: Some(&job.id),
            repository_id: &plan.repository.id,
            manifest: &report.manifest,
            immutable_days,
            backup_type: Some(if all_incremental { BackupType::Incremental } else { BackupType::Full }),
        },
    )
    .await
    .map_err(|e| format!("the snapshot was committed but the catalog could not record it: {e}"))?;
    // A write there succeeded: an earlier storage failure is over.
    match repository_health::clear(db, &plan.repository.id).await {
        Ok(true) => telemetry::log(runner, &job.id, LogLevel::Info, format!("repository '{}' took this backup: its last storage failure is cleared", plan.repository.name)).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, repository = %plan.repository.name, "clearing the repository's storage failure"),
    }
    // Locked by the storage: the date the storage itself reports on the
    // manifest (GetObjectRetention) is what the restore point shows.
    if object_lock.is_some() {
        match storage_locks::refresh_one(db, &runner.data_dir()?, &plan.repository, &backup).await {
            Ok(Some(r)) => {
                let line = format!("the storage locks the restore point until {} ({} mode, S3 Object Lock)", r.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), r.mode);
                telemetry::log(runner, &job.id, LogLevel::Info, line).await;
            }
            Ok(None) => telemetry::log(runner, &job.id, LogLevel::Warn, "the storage reports no lock on the restore point's manifest; the next verify checks its retention again".into()).await,
            Err(e) => telemetry::log(runner, &job.id, LogLevel::Warn, format!("reading the restore point's lock from the storage: {e}")).await,
        }
    }
    // Only the new restore point changed the repository: add it to the
    // cached statistics; anything retention removed means a recount.
    let mut added = Some((report.manifest.name.clone(), report.manifest.id.clone()));
    if let Some(flow) = &plan.flow {
        let rules = flow_rules::keep_rules(&flow_rules::retention(flow));
        match retention::apply_for_vm(db, &runner.data_dir()?, &plan.repository, &vm.id, &rules).await {
            Ok(r) if !r.removed.is_empty() => {
                added = None;
                let line = format!("retention removed {} restore point(s): {}", r.removed.len(), r.removed.join(", "));
                telemetry::log(runner, &job.id, LogLevel::Info, line).await;
            }
            Ok(_) => {}
            Err(e) => {
                added = None;
                telemetry::log(runner, &job.id, LogLevel::Warn, format!("retention not applied: {e}")).await
            }
        }
    }
    update_stats(runner, &plan.repository, added).await;
    Ok((report, backup))
}

/// The job's line about the answers a storage made it retry, if any:
/// throttling (503 or 429) and other server errors. `storage` names the
/// storage ("the storage", "the storage of 'x'"), `job` the work that went
/// on ("the backup", "the copy"). Backup and copy jobs log it.
pub(super) fn retried_line(c: &RequestCounts, kind: &str, storage: &str, job: &str) -> Option<String> {
    let mut parts = Vec::new();
    if c.throttled > 0 {
        let code = match from_wire::<RepositoryKind>(kind) {
            Some(RepositoryKind::S3) => "503 SlowDown",
            Some(RepositoryKind::Azure) => "503 ServerBusy",
            _ => "503",
        };
        parts.push(format!("throttled {} request(s) ({code} or 429)", c.throttled));
    }
    if c.server_errors > 0 {
        parts.push(format!("failed {} request(s) with a server error (5xx)", c.server_errors));
    }
    (!parts.is_empty()).then(|| {
        format!("{storage} {} of {}; each was retried after a backoff and {job} went on", parts.join(" and "), c.total())
    })
}

/// Recomputes the repository's cached statistics after a job changed it
/// (requests only read the cache).
pub(super) async fn refresh_stats(runner: &Runner, repo: &repositories::Model) {
    update_stats(runner, repo, None).await
}

/// Updates the cached statistics: the snapshot `added` (group, id) alone,
/// or a recount with `None`.
async fn update_stats(runner: &Runner, repo: &repositories::Model, added: Option<(String, String)>) {
    let cache = runner.repo_stats();
    let row = repo.clone();
    let data_dir = match runner.data_dir() {
        Ok(d) => d,
        Err(e) => return tracing::warn!(error = %e, "refreshing the repository's statistics"),
    };
    let done = tokio::task::spawn_blocking(move || {
        let ds = repositories_logic::open_datastore(&data_dir, &row)?;
        let root = std::path::Path::new(&row.path);
        match &added {
            Some((name, id)) => cache.add_snapshot(root, &ds, name, id),
            None => cache.refresh(root, &ds),
        }
    })
    .await;
    match done {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, repository = %repo.name, "refreshing the repository's statistics"),
        Err(e) => tracing::warn!(error = %e, "the statistics thread failed"),
    }
}

/// Applies a flow's retention to one VM's restore points in the repository
/// (a prune job, over all flows and VMs), logged on `job`.
pub(super) async fn apply_retention_to_vm(runner: &Runner, job: &jobs::Model, flow: &flows::Model, repo: &repositories::Model, vm_context_id: &str) -> Result<(), String> {
    let rules = flow_rules::keep_rules(&flow_rules::retention(flow));
    let r = retention::apply_for_vm(runner.db(), &runner.data_dir()?, repo, vm_context_id, &rules).await?;
    if !r.removed.is_empty() {
        telemetry::log(runner, &job.id, LogLevel::Info, format!("retention removed {} restore point(s): {}", r.removed.len(), r.removed.join(", "))).await;
    }
    refresh_stats(runner, repo).await;
    Ok(())
}

/// Ends a job row with `status`, error and the progress's byte counts, and
/// announces it; `None` (logged) when the catalog could not record it.
pub async fn end_job(runner: &Runner, job: jobs::Model, status: JobStatus, error: Option<String>, progress: &Progress) -> Option<jobs::Model> {
    let snap = progress.snapshot();
    match finish_row(runner.db(), job, status, error, Some((snap.bytes_total, snap.bytes_read, snap.bytes_written))).await {
        Ok(job) => {
            telemetry::job_changed(runner, &job).await;
            if status == JobStatus::Completed {
                telemetry::job_succeeded(runner, &job).await;
            }
            Some(job)
        }
        Err(e) => {
            tracing::error!(error = %e, "unable to record the job's end");
            None
        }
    }
}

/// Ends a job row with `status`; `bytes`: (total, read, written) when known.
pub async fn finish_row(
    db: &impl ConnectionTrait,
    job: jobs::Model,
    status: JobStatus,
    error: Option<String>,
    bytes: Option<(u64, u64, u64)>,
) -> Result<jobs::Model, DbErr> {
    let backup_type = job.backup_type.clone();
    let mut a: jobs::ActiveModel = job.into();
    let now = Utc::now();
    a.status = Set(status.as_str().to_owned());
    a.backup_type = Set(backup_type);
    a.error = Set(error);
    a.finished_at = Set(Some(now));
    a.updated_at = Set(now);
    if let Some((total, read, written)) = bytes {
        a.bytes_total = Set(to_i64(total));
        a.bytes_read = Set(to_i64(read));
        a.bytes_written = Set(to_i64(written));
    }
    a.update(db).await
}

pub async fn set_flow_state(db: &impl ConnectionTrait, flow_id: &str, state: FlowState, last_run: Option<chrono::DateTime<Utc>>) -> Result<(), DbErr> {
    let Some(flow) = flows::Entity::find_by_id(flow_id.to_owned()).one(db).await? else { return Ok(()) };
    if !flow.enabled && !state.is_active() {
        return Ok(()); // a disabled flow stays disabled once its runs end
    }
    let mut a: flows::ActiveModel = flow.into();
    a.state = Set(state.as_str().to_owned());
    if let Some(at) = last_run {
        a.last_run_at = Set(Some(at));
    }
    a.updated_at = Set(Utc::now());
    a.update(db).await.map(|_| ())
}

/// A flow's state from its jobs: active while one is queued, running or
/// paused; otherwise from the last run (healthy, warning when some VMs of
/// that run failed, failed when all did).
pub async fn settle_flow(db: &impl ConnectionTrait, flow_id: &str) -> Result<(), DbErr> {
    let recent = jobs::Entity::find()
        .filter(jobs::Column::FlowId.eq(flow_id))
        .order_by_desc(jobs::Column::CreatedAt)
        .all(db)
        .await?;
    let statuses: Vec<JobStatus> = recent.iter().filter_map(|j| JobStatus::parse(&j.status)).collect();
    let state = if statuses.contains(&JobStatus::Running) {
        FlowState::Running
    } else if statuses.contains(&JobStatus::Paused) {
        FlowState::Paused
    } else if statuses.contains(&JobStatus::Queued) {
        FlowState::Queued
    } else {
        // The last run: jobs created within a minute of the newest one.
        let newest = recent.first().map(|j| j.created_at);
        let run: Vec<JobStatus> = recent
            .iter()
            .filter(|j| newest.is_some_and(|n| (n - j.created_at).num_seconds() < 60))
            .filter_map(|j| JobStatus::parse(&j.status))
            .collect();
        let ok = run.iter().filter(|s| **s == JobStatus::Completed).count();
        match (ok, run.len()) {
            (_, 0) => FlowState::Idle,
            (o, n) if o == n => FlowState::Healthy,
            (0, _) => FlowState::Failed,
            _ => FlowState::Warning,
        }
    };
    let last_run = recent.iter().filter_map(|j| j.finished_at).max();
    set_flow_state(db, flow_id, state, last_run).await
}

/// Settles every flow (after a restart).
pub async fn settle_flows(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for f in flows::Entity::find().all(db).await? {
        settle_flow(db, &f.id).await?;
    }
    Ok(())
}
