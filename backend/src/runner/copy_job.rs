//! One copy job (3-2-1): a restore point copied from an available location
//! (its primary, or a copy when the primary cannot be read) to a second
//! repository with the engine's [`copy_snapshot`]: only the chunks the
//! target lacks are sent, and every chunk is read back and re-hashed at the
//! target before the copy's manifest is published. The copy is recorded as
//! a location of the restore point (`copying` → `present` or `failed`);
//! then the target's retention for copies runs (never inside immutability).
//!
//! Queued after each successful backup of a flow with a copy target, and on
//! demand (`POST /api/v1/restore-points/{id}/copy`). A failure raises an
//! alert about the VM; the next good copy of that VM resolves it. A failure
//! of a storage (the target full or refusing writes, the source or target
//! not answering) marks that repository degraded, as a backup's does
//! (`catalog::repository_health`); a good copy clears the target's. Like a
//! backup job, the job logs how many requests each object store (source,
//! target) throttled or failed with a 5xx and had retried.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use shared_types::alerts::AlertSeverity;
use shared_types::backups::{LocationRole, LocationState};
use shared_types::flow::RetentionPolicy;
use shared_types::jobs::{JobKind, JobStatus, LogLevel};
use shared_types::repositories::RepositoryKind;

use super::backup_job::{end_job, refresh_stats, retried_line, start};
use super::{queued_row, retention, telemetry, Runner, RunnerError};
use crate::catalog::backup_locations::{self, CopyDone};
use crate::catalog::{flows as flow_rules, repositories as repositories_logic, repository_health, storage_locks};
use crate::db::entities::{backups, jobs, repositories, vm_contexts};
use crate::engine::copy::{copy_snapshot, CopyOptions, CopyStats};
use crate::engine::datastore::Datastore;
use crate::engine::progress::Progress;
use crate::engine::repository::ErrorTap;
use crate::engine::EngineError;
use crate::repos::http::RequestCounts;

/// What a copy job does, kept in the job row (`jobs.options`, JSON); the
/// target is the job's `repository_id`, the restore point its `backup_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyJobOptions {
    /// Days the copy cannot be deleted at the target (0: the source's immutability is kept as it is).
    #[serde(default)]
    pub immutable_days: u32,
    /// The target's retention for this VM's copies, applied after the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    /// The flow whose copy target asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// What the copy did, once it ended well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_chunks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_bytes: Option<u64>,
}

impl Runner {
    /// Queues a copy of `backup` to `target`. Refused while the target is
    /// in maintenance, when the restore point is there already, or while
    /// another copy of it to the same target is queued or running.
    pub async fn enqueue_copy(
        &self,
        backup: &backups::Model,
        target: &repositories::Model,
        options: CopyJobOptions,
        requested_by: Option<String>,
    ) -> Result<jobs::Model, RunnerError> {
        let db = self.db();
        if let Some(why) = repositories_logic::refusal(target) {
            return Err(RunnerError::Conflict(why));
        }
        let here = backup_locations::of(db, backup).await?;
        if let Some(loc) = here.iter().find(|l| l.repository_id == target.id) {
            if loc.state == LocationState::Present.as_str() {
                return Err(RunnerError::Conflict(format!("restore point '{}' is in repository '{}' already ({})", backup.id, target.name, loc.role)));
            }
        }
        let busy = jobs::Entity::find()
            .filter(jobs::Column::Kind.eq(JobKind::Copy.as_str()))
            .filter(jobs::Column::BackupId.eq(backup.id.clone()))
            .filter(jobs::Column::RepositoryId.eq(target.id.clone()))
            .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
            .one(db)
            .await?;
        if let Some(j) = busy {
            return Err(RunnerError::Conflict(format!("a copy of restore point '{}' to '{}' is already {} (job {})", backup.id, target.name, j.status, j.id)));
        }
        let text = serde_json::to_string(&options).map_err(|e| RunnerError::Conflict(format!("copy options: {e}")))?;
        let mut row = queued_row(JobKind::Copy, &backup.vm_context_id, &target.id, 0, requested_by);
        row.backup_id = Set(Some(backup.id.clone()));
        row.options = Set(Some(text));
        let job = row.insert(db).await?;
        telemetry::job_changed(self, &job).await;
        self.wake();
        Ok(job)
    }

    /// Queues the copy a flow's copy target asks for after a good backup
    /// (logged on the backup job when it cannot be queued).
    pub(super) async fn copy_after_backup(&self, backup_job: &jobs::Model, flow: &crate::db::entities::flows::Model, backup: &backups::Model) {
        let Some(target) = backup_locations::parse_target(flow.copy_target.as_deref()) else { return };
        let line = match repositories::Entity::find_by_id(target.repository_id.clone()).one(self.db()).await {
            Ok(Some(repo)) => {
                let options = CopyJobOptions {
                    immutable_days: target.immutable_days,
                    retention: Some(target.retention.clone()),
                    flow_id: Some(flow.id.clone()),
                    ..Default::default()
                };
                match self.enqueue_copy(backup, &repo, options, backup_job.requested_by.clone()).await {
                    Ok(j) => (LogLevel::Info, format!("copy to '{}' queued (job {})", repo.name, j.id)),
                    Err(e) => (LogLevel::Warn, format!("the copy to '{}' could not be queued: {e}", repo.name)),
                }
            }
            Ok(None) => (LogLevel::Warn, format!("the flow's copy target repository '{}' is no longer in the catalog; no copy made", target.repository_id)),
            Err(e) => (LogLevel::Warn, format!("the copy could not be queued: {e}")),
        };
        telemetry::log(self, &backup_job.id, line.0, line.1).await;
    }
}

/// The options of a copy job row.
pub fn options_of(job: &jobs::Model) -> CopyJobOptions {
    job.options.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or_default()
}

pub async fn run(runner: &Runner, job: jobs::Model, vm: vm_contexts::Model, progress: Arc<Progress>) {
    let Some(job) = start(runner, job).await else { return };
    let options = options_of(&job);
    let outcome = execute(runner, &job, &vm, &options, progress.clone()).await;
    let mut job = job;
    let (status, error) = match outcome {
        Ok(stats) => {
            let mut o = options.clone();
            o.sent_chunks = Some(stats.chunks_sent);
            o.sent_bytes = Some(stats.bytes_sent);
            job.options = serde_json::to_string(&o).ok();
            (JobStatus::Completed, None)
        }
        Err(message) if progress.control.is_cancelled() => (JobStatus::Cancelled, Some(message)),
        Err(message) => (JobStatus::Failed, Some(message)),
    };
    if let Some(e) = &error {
        telemetry::log(runner, &job.id, if status == JobStatus::Failed { LogLevel::Error } else { LogLevel::Warn }, e.clone()).await;
    }
    if let Some(backup_id) = &job.backup_id {
        if let Some(target) = &job.repository_id {
            if let Some(e) = &error {
                if let Err(db) = backup_locations::end_copy(runner.db(), backup_id, target, Err(e.clone())).await {
                    tracing::error!(error = %db, "recording a failed copy");
                }
            }
        }
    }
    let Some(job) = end_job(runner, job, status, error.clone(), &progress).await else { return };
    if status == JobStatus::Failed {
        let target = target_name(runner, &job).await;
        let title = format!("Copy of {} to '{target}' failed", vm.name);
        telemetry::job_alert(runner, &job, AlertSeverity::Critical, &title, error.as_deref().unwrap_or("failed")).await;
    }
}

async fn target_name(runner: &Runner, job: &jobs::Model) -> String {
    match &job.repository_id {
        Some(id) => repositories::Entity::find_by_id(id.clone()).one(runner.db()).await.ok().flatten().map(|r| r.name).unwrap_or_else(|| id.clone()),
        None => "?".into(),
    }
}

async fn execute(runner: &Runner, job: &jobs::Model, vm: &vm_contexts::Model, options: &CopyJobOptions, progress: Arc<Progress>) -> Result<CopyStats, String> {
    let db = runner.db();
    let data_dir = runner.data_dir()?;
    let backup_id = job.backup_id.clone().ok_or("the job names no restore point")?;
    let backup = backups::Entity::find_by_id(backup_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("restore point '{backup_id}' was removed"))?;
    let target_id = job.repository_id.clone().ok_or("the job names no target repository")?;
    let target = repositories::Entity::find_by_id(target_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the target repository '{target_id}' was removed"))?;
    // Read from an available location other than the target.
    let (source_point, source) = choose_source(runner, &backup, &target.id, &job.id).await?;
    telemetry::log(
        runner,
        &job.id,
        LogLevel::Info,
        format!("copying restore point {}/{} of {} from '{}' to '{}'", source_point.snapshot_name, source_point.snapshot_id, vm.name, source.name, target.name),
    )
    .await;
    backup_locations::begin_copy(db, &source_point, &target.id, &job.id).await.map_err(|e| e.to_string())?;
    let (days, object_lock) = repositories_logic::backup_immutability(&target, options.immutable_days);
    let immutable_until: Option<DateTime<Utc>> = (days > 0).then(|| Utc::now() + Duration::days(i64::from(days)));
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), vm.name.clone(), progress.clone());
    let (src_row, dst_row, name, id, p) = (source.clone(), target.clone(), source_point.snapshot_name.clone(), source_point.snapshot_id.clone(), progress.clone());
    let result = tokio::task::spawn_blocking(move || -> Result<(CopyStats, [Option<RequestCounts>; 2]), (EngineError, Option<Side>)> {
        let src = repositories_logic::open_datastore(&data_dir, &src_row).map_err(|e| (e, Some(Side::Source)))?;
        let dst = repositories_logic::open_datastore(&data_dir, &dst_row).map_err(|e| (e, Some(Side::Target)))?;
        // Which storage an error came from: the one to mark as failing.
        let (src_tap, dst_tap) = ErrorTap::pair(src.repo.clone(), dst.repo.clone());
        let src = Datastore { repo: src_tap.clone(), ..src };
        let dst = Datastore { repo: dst_tap.clone(), ..dst };
        let opts = CopyOptions { immutable_until, object_lock, workers: 0, on_phase: None };
        let stats = copy_snapshot(&src, &dst, &name, &id, &opts, &p).map_err(|e| {
            let side = Side::of(&e, &src_tap, &dst_tap);
            (e, side)
        })?;
        Ok((stats, [src.repo.request_counts(), dst.repo.request_counts()]))
    })
    .await;
    sampler.abort();
    let stats = match result {
        Ok(Ok((s, requests))) => {
            // Throttling and server errors each storage answered (object stores), as backups log them.
            for (counts, repo, role) in [(requests[0], &source, "source"), (requests[1], &target, "target")] {
                let storage = format!("the storage of '{}' ({role})", repo.name);
                if let Some(line) = counts.and_then(|c| retried_line(&c, &repo.kind, &storage, "the copy")) {
                    telemetry::log(runner, &job.id, LogLevel::Warn, line).await;
                }
            }
            s
        }
        Ok(Err((EngineError::Cancelled, _))) => return Err("stopped by an operator; no copy was written at the target".into()),
        Ok(Err((e, side))) => {
            let message = format!("copy from '{}' to '{}' failed: {e}", source.name, target.name);
            // A storage failed it (the target full or refusing writes, the source not answering...):
            // that repository shows it until a write there succeeds, as after a backup.
            if let (Some(side), Some(cause)) = (side, repository_health::engine_cause(&e)) {
                let repo = match side {
                    Side::Source => &source,
                    Side::Target => &target,
                };
                if let Err(db) = repository_health::record(db, &repo.id, cause, &message, Some(&job.id), Utc::now()).await {
                    tracing::warn!(error = %db, repository = %repo.name, "recording the repository's storage failure");
                }
            }
            return Err(message);
        }
        Err(e) => return Err(format!("the copy thread failed: {e}")),
    };
    let line = if stats.already_present {
        format!("'{}' had the snapshot already; verified there: {} chunks ({} bytes) re-read and matched", target.name, stats.verified_chunks, stats.verified_bytes)
    } else {
        format!(
            "copied in {:.1} s: {} of {} chunks sent ({} already at the target, {} zero), {} bytes sent in {} objects{}; verified at the target: {} chunks ({} bytes) re-read and matched",
            stats.duration_ms as f64 / 1000.0,
            stats.chunks_sent,
            stats.chunks_total,
            stats.chunks_present,
            stats.chunks_zero,
            stats.bytes_sent,
            stats.objects_written,
            if stats.reencoded { ", re-encrypted for the target's key" } else { "" },
            stats.verified_chunks,
            stats.verified_bytes,
        )
    };
    telemetry::log(runner, &job.id, LogLevel::Info, line).await;
    let until = stats.immutable_until.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc));
    let done = CopyDone { snapshot_name: stats.name.clone(), snapshot_id: stats.snapshot.clone(), immutable_until: until, bytes_sent: stats.bytes_sent };
    backup_locations::end_copy(db, &backup.id, &target.id, Ok(done))
        .await
        .map_err(|e| format!("the copy was written and verified but the catalog could not record it: {e}"))?;
    // A write there succeeded: an earlier storage failure at the target is over.
    if let Err(e) = repository_health::clear(db, &target.id).await {
        tracing::warn!(error = %e, repository = %target.name, "clearing the repository's storage failure");
    }
    // Locked by the storage at the target: the date the storage itself
    // reports on the copy's manifest (GetObjectRetention) is what the
    // location shows (also for a copy found there already, locked or not).
    if target.kind == RepositoryKind::S3.as_str() && target.object_lock_mode.is_some() {
        let copy = backups::Model { snapshot_name: stats.name.clone(), snapshot_id: stats.snapshot.clone(), ..backup.clone() };
        match storage_locks::refresh_one(db, &runner.data_dir()?, &target, &copy).await {
            Ok(Some(r)) => {
                let line = format!(
                    "the storage locks the copy in '{}' until {} ({} mode, S3 Object Lock)",
                    target.name,
                    r.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.mode
                );
                telemetry::log(runner, &job.id, LogLevel::Info, line).await;
            }
            Ok(None) if object_lock.is_some() => {
                let line = format!("the storage reports no lock on the copy's manifest in '{}'; the next verify there checks its retention again", target.name);
                telemetry::log(runner, &job.id, LogLevel::Warn, line).await
            }
            Ok(None) => {}
            Err(e) => telemetry::log(runner, &job.id, LogLevel::Warn, format!("reading the copy's lock from the storage of '{}': {e}", target.name)).await,
        }
    }
    if let Some(r) = options.retention.as_ref().filter(|r| !r.keeps_everything()) {
        match retention::apply_for_vm_at(db, &runner.data_dir()?, &target, &vm.id, &flow_rules::keep_rules(r), LocationRole::Copy).await {
            Ok(out) if !out.removed.is_empty() => {
                let line = format!("retention at '{}' removed {} copy(ies): {}", target.name, out.removed.len(), out.removed.join(", "));
                telemetry::log(runner, &job.id, LogLevel::Info, line).await;
            }
            Ok(_) => {}
            Err(e) => telemetry::log(runner, &job.id, LogLevel::Warn, format!("retention at '{}' not applied: {e}", target.name)).await,
        }
    }
    refresh_stats(runner, &target).await;
    Ok(stats)
}

/// The repository of a copy whose storage returned the error it failed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
}

impl Side {
    /// Which tap returned `e` (the later one when both returned the same
    /// words about the same key); `None`: not an error of either storage.
    fn of(e: &EngineError, source: &ErrorTap, target: &ErrorTap) -> Option<Side> {
        match (source.returned(e), target.returned(e)) {
            (Some(s), Some(t)) => Some(if s > t { Side::Source } else { Side::Target }),
            (Some(_), None) => Some(Side::Source),
            (None, Some(_)) => Some(Side::Target),
            (None, None) => None,
        }
    }
}

/// The location the copy reads from: the first readable one that is not the
/// target. A location whose storage failed (not: the restore point is not
/// there) also marks its repository degraded, as a failure of the copy
/// itself at the source does (job `job_id`).
async fn choose_source(runner: &Runner, backup: &backups::Model, target_id: &str, job_id: &str) -> Result<(backups::Model, repositories::Model), String> {
    let db = runner.db();
    let data_dir = runner.data_dir()?;
    let rows = backup_locations::of(db, backup).await.map_err(|e| e.to_string())?;
    let mut why = Vec::new();
    for loc in rows.iter().filter(|l| l.repository_id != target_id && l.state != LocationState::Copying.as_str() && l.state != LocationState::Failed.as_str()) {
        // Reads its manifest there (and marks the location missing when it cannot).
        match backup_locations::choose_cause(db, &data_dir, backup, Some(&loc.repository_id)).await {
            Ok((point, repo)) => return Ok((point, repo)),
            Err((e, cause)) => {
                let message = format!("the copy could not read its source: {e}");
                if let Some(cause) = cause {
                    if let Err(db) = repository_health::record(db, &loc.repository_id, cause, &message, Some(job_id), Utc::now()).await {
                        tracing::warn!(error = %db, repository = %loc.repository_id, "recording the repository's storage failure");
                    }
                }
                why.push(e.to_string())
            }
        }
    }
    Err(format!("restore point '{}' cannot be read from any repository but the target: {}", backup.id, why.join("; ")))
}
