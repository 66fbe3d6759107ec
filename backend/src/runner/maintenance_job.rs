//! A repository's maintenance jobs, each a `jobs` row of kind `verify`, `gc`
//! or `prune` with the repository set and no VM, run like a backup: on a
//! blocking thread with the job's [`Progress`] (streamed by [`telemetry`]),
//! paused and stopped between chunks (verify) or packs (GC).
//!
//! * **Verify** re-reads and re-hashes every chunk of every restore point;
//!   each restore point in the catalog is then marked `verified` or
//!   `corrupt` with the reason, and damage raises an alert. A stopped
//!   verify marks nothing.
//! * **GC** removes packs no restore point references (mark, then the
//!   two-phase plan of `engine::gc_plan`, safe beside running backups; it
//!   refuses when the repository's listing misses a restore point of the
//!   catalog) and
//!   reports the bytes given back. A stopped GC leaves the repository
//!   consistent: each pack goes index first, then data, as at any crash.
//! * **Prune** applies each backup flow's retention to the restore points
//!   of every VM the flow protects, through the same function a backup job
//!   calls after its snapshot (chunks go at the next GC).
//!
//! Each job refreshes the repository's cached statistics when it changed it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use shared_types::backups::{BackupStatus, LocationRole, LocationState};
use shared_types::flow::FlowKind;
use shared_types::jobs::{JobKind, JobStatus, LogLevel};
use shared_types::repositories::VerifyOutcome;
use shared_types::ws::AlertSeverity;

use super::{backup_job, queued_row, retention, telemetry, Runner, RunnerError};
use crate::catalog::{backup_locations, flows as flow_rules, repositories as repo_logic, to_i64};
use crate::db::entities::{flows, jobs, repositories};
use crate::engine::progress::Progress;
use crate::engine::{gc, verify, EngineError};

/// Default grace period of GC jobs: a pack found unreferenced is deleted by
/// a GC at least this long (by the storage's clock) after the one that named
/// it in its plan (running backups are protected by their leases anyway).
pub const DEFAULT_GC_GRACE_SECS: u64 = 3600;

/// Longest reason stored on a damaged restore point, in characters.
const REASON_MAX: usize = 2000;

/// Queues a verify, GC or prune of a repository; refused while one of the
/// same kind is queued or running there.
pub async fn enqueue(runner: &Runner, repository_id: &str, kind: JobKind, requested_by: &str) -> Result<jobs::Model, RunnerError> {
    let db = runner.db();
    let repo = repositories::Entity::find_by_id(repository_id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| RunnerError::NotFound(format!("repository '{repository_id}' not found")))?;
    let busy = jobs::Entity::find()
        .filter(jobs::Column::RepositoryId.eq(repo.id.clone()))
        .filter(jobs::Column::Kind.eq(kind.as_str()))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .one(db)
        .await?;
    if let Some(j) = busy {
        return Err(RunnerError::Conflict(format!(
            "a {} of repository '{}' is already {} (job {}); wait for it or stop it first",
            kind.as_str(),
            repo.name,
            j.status,
            j.id
        )));
    }
    let mut row = queued_row(kind, "", &repo.id, 0, Some(requested_by.to_owned()));
    row.vm_context_id = Set(None);
    let job = row.insert(db).await?;
    telemetry::job_changed(runner, &job).await;
    runner.wake();
    Ok(job)
}

/// Runs one dispatched maintenance job to its end.
pub async fn run(runner: &Runner, job: jobs::Model, repo: repositories::Model, progress: Arc<Progress>) {
    let Some(job) = backup_job::start(runner, job).await else { return };
    let kind = JobKind::parse(&job.kind);
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), repo.name.clone(), progress.clone());
    let outcome = match kind {
        Some(JobKind::Verify) => run_verify(runner, &job, &repo, progress.clone()).await,
        Some(JobKind::Gc) => run_gc(runner, &job, &repo, progress.clone()).await,
        Some(JobKind::Prune) => run_prune(runner, &job, &repo).await,
        _ => Err(format!("job kind '{}' is not repository maintenance", job.kind)),
    };
    sampler.abort();
    let (status, error) = match outcome {
        Ok(()) => (JobStatus::Completed, None),
        Err(m) if progress.control.is_cancelled() => (JobStatus::Cancelled, Some(m)),
        Err(m) => (JobStatus::Failed, Some(m)),
    };
    if let Some(e) = &error {
        telemetry::log(runner, &job.id, if status == JobStatus::Failed { LogLevel::Error } else { LogLevel::Warn }, e.clone()).await;
    }
    if status == JobStatus::Failed && kind == Some(JobKind::Verify) {
        record_verify(runner, &repo.id, VerifyOutcome::Failed, 0).await;
    }
    let Some(job) = backup_job::end_job(runner, job, status, error.clone(), &progress).await else {
        return;
    };
    if status == JobStatus::Failed {
        let what = kind.map(|k| k.as_str()).unwrap_or("maintenance");
        telemetry::job_alert(runner, &job, AlertSeverity::Critical, &format!("{what} of repository {} failed", repo.name), error.as_deref().unwrap_or("failed")).await;
    }
}

fn rate(bytes: u64, took: Duration) -> String {
    let s = took.as_secs_f64();
    if s > 0.0 {
        format!("{:.0} MB/s", bytes as f64 / s / 1e6)
    } else {
        "-".into()
    }
}

fn engine_error(e: EngineError, what: &str) -> String {
    match e {
        EngineError::Cancelled => format!("stopped by an operator; {what}"),
        e => e.to_string(),
    }
}

async fn run_verify(runner: &Runner, job: &jobs::Model, repo: &repositories::Model, progress: Arc<Progress>) -> Result<(), String> {
    telemetry::log(runner, &job.id, LogLevel::Info, format!("verifying every restore point of repository '{}'", repo.name)).await;
    let row = repo.clone();
    let data_dir = runner.data_dir()?;
    let p = progress.clone();
    let started = Instant::now();
    let (report, present) = tokio::task::spawn_blocking(move || {
        let ds = repo_logic::open_datastore(&data_dir, &row)?;
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let report = verify::verify(&ds, workers, &p)?;
        // Snapshots there now: one committed while verify ran is not missing.
        let present: std::collections::HashSet<String> = ds.list_snapshots(None)?.into_iter().map(|(n, id)| format!("{n}/{id}")).collect();
        Ok::<_, EngineError>((report, present))
    })
    .await
    .map_err(|e| format!("the verify thread failed: {e}"))?
    .map_err(|e| engine_error(e, "no restore point was marked"))?;
    let took = started.elapsed();
    telemetry::log(runner, &job.id, LogLevel::Info, format!(
        "checked {} snapshots: {} chunks, {} bytes in {:.1} s ({})",
        report.snapshots, report.chunks_checked, report.bytes_checked, took.as_secs_f64(), rate(report.bytes_checked, took)
    ))
    .await;

    // Mark each restore point of the catalog by what verify found.
    let now = Utc::now();
    // Restore points written here and copies made here (3-2-1): a copy's
    // finding is its location's state; a restore point's status is its primary's.
    let rows = backup_locations::in_repository(runner.db(), &repo.id).await.map_err(|e| e.to_string())?;
    let mut damaged = Vec::new();
    for (b, role) in rows {
        let label = format!("{}/{}", b.snapshot_name, b.snapshot_id);
        if role == LocationRole::Copy {
            let finding = if let Some(problems) = report.damaged.get(&label) {
                Some(Some(format!("verify found the copy damaged: {}", problems.join("; "))))
            } else if report.intact.contains(&label) {
                Some(None)
            } else if present.contains(&label) {
                None
            } else {
                Some(Some(format!("verify found no snapshot {label} in the repository")))
            };
            if let Some(why) = finding {
                let state = if why.is_some() { LocationState::Missing } else { LocationState::Present };
                if let Some(w) = &why {
                    telemetry::log(runner, &job.id, LogLevel::Warn, format!("the copy of restore point {} is damaged or missing here: {w}", b.id)).await;
                }
                backup_locations::set_state(runner.db(), &b.id, &repo.id, state, why).await.map_err(|e| e.to_string())?;
            }
            continue;
        }
        let (status, reason) = if let Some(problems) = report.damaged.get(&label) {
            (BackupStatus::Corrupt, Some(problems.join("; ")))
        } else if report.intact.contains(&label) {
            (BackupStatus::Verified, None)
        } else if present.contains(&label) {
            continue; // committed after verify listed the snapshots: next time
        } else {
            (BackupStatus::Corrupt, Some(format!("snapshot {label} is missing from the repository (its manifest is gone)")))
        };
        let reason = reason.map(|r| if r.chars().count() > REASON_MAX { r.chars().take(REASON_MAX).collect::<String>() + "…" } else { r });
        if status == BackupStatus::Corrupt {
            damaged.push((b.id.clone(), b.vm_context_id.clone(), label.clone(), reason.clone().unwrap_or_default()));
        }
        let mut a = b.into_active_model();
        a.status = Set(status.as_str().to_owned());
        a.verified_at = Set(Some(now));
        a.verify_reason = Set(reason);
        a.update(runner.db()).await.map_err(|e| e.to_string())?;
    }
    let names = crate::catalog::convert::Names::vms(runner.db(), damaged.iter().map(|d| d.1.clone())).await.map_err(|e| e.to_string())?;
    for (_, vm, label, reason) in &damaged {
        telemetry::log(runner, &job.id, LogLevel::Error, format!("restore point {label} of {} is damaged: {reason}", names.get(vm))).await;
    }
    ensure_storage_locks(runner, job, repo).await;
    let outcome = if damaged.is_empty() { VerifyOutcome::Ok } else { VerifyOutcome::Damaged };
    record_verify(runner, &repo.id, outcome, damaged.len() as u64).await;
    if damaged.is_empty() {
        telemetry::log(runner, &job.id, LogLevel::Info, "every restore point read back whole".into()).await;
        let reason = format!("verify job {} read every restore point back whole", job.id);
        if let Err(e) = runner.alerts().resolve(&[crate::alerts::keys::repository_damaged(&repo.id)], &reason).await {
            tracing::warn!(error = %e, "resolving a repository's damage alert");
        }
    } else {
        let vms: Vec<String> = damaged.iter().map(|d| names.get(&d.1)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        telemetry::repository_alert(
            runner,
            job,
            &repo.id,
            crate::alerts::keys::repository_damaged(&repo.id),
            AlertSeverity::Critical,
            &format!("{} damaged restore point(s) in repository {}", damaged.len(), repo.name),
            &format!("Verify found damaged restore points of {}: {}", vms.join(", "), damaged[0].3),
        )
        .await;
    }
    Ok(())
}

/// On a repository whose restore points the storage locks (S3 Object
/// Lock): the "ensure retention" repair (`engine::object_lock::ensure_retention`:
/// objects of locked restore points left without retention or with a
/// shorter one, e.g. by a crash between a write and its lock, are locked
/// again), then every restore point's lock date re-read from the storage.
/// Problems are logged on the job (verify itself already judged the data).
async fn ensure_storage_locks(runner: &Runner, job: &jobs::Model, repo: &repositories::Model) {
    let (_, Some(mode)) = repo_logic::backup_immutability(repo, 0) else { return };
    let Ok(data_dir) = runner.data_dir() else { return };
    let (d, row) = (data_dir.clone(), repo.clone());
    let repaired = tokio::task::spawn_blocking(move || {
        let ds = repo_logic::open_datastore(&d, &row)?;
        crate::engine::object_lock::ensure_retention(&ds, mode)
    })
    .await
    .map_err(|e| format!("the retention thread failed: {e}"))
    .and_then(|r| r.map_err(|e| e.to_string()));
    let line = match &repaired {
        Ok(r) if r.extended.is_empty() => (LogLevel::Info, format!(
            "storage locks: the {} objects of {} locked restore point(s) are locked long enough ({mode} mode)", r.objects, r.snapshots)),
        Ok(r) => (LogLevel::Warn, format!(
            "storage locks: {} of {} objects of {} locked restore point(s) had no or too short a retention and are locked again ({mode} mode): {}",
            r.extended.len(), r.objects, r.snapshots, r.extended.iter().take(10).cloned().collect::<Vec<_>>().join(", "))),
        Err(e) => (LogLevel::Error, format!("storage locks: ensuring the retention of locked restore points failed: {e}")),
    };
    telemetry::log(runner, &job.id, line.0, line.1).await;
    if let Ok(r) = &repaired {
        if !r.missing.is_empty() {
            let line = format!("storage locks: {} object(s) locked restore points need are missing: {}", r.missing.len(), r.missing.iter().take(10).cloned().collect::<Vec<_>>().join(", "));
            telemetry::log(runner, &job.id, LogLevel::Error, line).await;
        }
    }
    match crate::catalog::storage_locks::refresh_repository(runner.db(), &data_dir, repo).await {
        Ok(r) => {
            for (label, e) in &r.failed {
                telemetry::log(runner, &job.id, LogLevel::Warn, format!("storage locks: reading the lock of {label}: {e}")).await;
            }
            telemetry::log(runner, &job.id, LogLevel::Info, format!("storage locks: {} restore point(s) locked by the storage, dates re-read", r.locked)).await;
        }
        Err(e) => telemetry::log(runner, &job.id, LogLevel::Warn, format!("storage locks: re-reading the lock dates failed: {e}")).await,
    }
}

async fn record_verify(runner: &Runner, repository_id: &str, outcome: VerifyOutcome, damaged: u64) {
    let update = repositories::Entity::update_many()
        .col_expr(repositories::Column::LastVerifyAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .col_expr(repositories::Column::LastVerifyStatus, sea_orm::sea_query::Expr::value(outcome.as_str()))
        .col_expr(repositories::Column::LastVerifyDamaged, sea_orm::sea_query::Expr::value(to_i64(damaged)))
        .filter(repositories::Column::Id.eq(repository_id))
        .exec(runner.db())
        .await;
    if let Err(e) = update {
        tracing::warn!(error = %e, "recording the repository's last verify");
    }
}

async fn run_gc(runner: &Runner, job: &jobs::Model, repo: &repositories::Model, progress: Arc<Progress>) -> Result<(), String> {
    let grace = Duration::from_secs(runner.gc_grace_secs());
    telemetry::log(runner, &job.id, LogLevel::Info, format!(
        "collecting garbage in repository '{}' (packs found unreferenced less than {} s ago and those of running backups are kept)",
        repo.name,
        grace.as_secs()
    ))
    .await;
    // The restore points the catalog knows there: GC refuses to run when the
    // repository's listing misses one (an incomplete listing would make it
    // delete their chunks). Damaged ones may have lost their manifest.
    // Copies made here count too; a restore point whose primary left this repository does not.
    let expected: Vec<(String, String)> = backup_locations::in_repository(runner.db(), &repo.id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(b, role)| *role == LocationRole::Copy || b.status != BackupStatus::Corrupt.as_str())
        .map(|(b, _)| (b.snapshot_name, b.snapshot_id))
        .collect();
    let row = repo.clone();
    let data_dir = runner.data_dir()?;
    let p = progress.clone();
    let stats = runner.repo_stats();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        let ds = repo_logic::open_datastore(&data_dir, &row)?;
        let r = gc::gc_opts(&ds, &gc::GcOptions { grace, expected_manifests: Some(expected) }, &p);
        // Stopped or not, what was removed is gone: the statistics follow.
        if p.bytes_written.load(std::sync::atomic::Ordering::Relaxed) > 0 || r.is_ok() {
            if let Err(e) = stats.refresh(std::path::Path::new(&row.path), &ds) {
                tracing::warn!(error = %e, "refreshing the repository's statistics");
            }
        }
        r
    })
    .await
    .map_err(|e| format!("the GC thread failed: {e}"))?;
    let reclaimed = progress.bytes_written.load(std::sync::atomic::Ordering::Relaxed);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if reclaimed > 0 {
                record_gc(runner, &repo.id, reclaimed).await;
            }
            return Err(engine_error(e, &format!("{reclaimed} bytes were reclaimed before; the repository is consistent")));
        }
    };
    let took = started.elapsed();
    telemetry::log(runner, &job.id, LogLevel::Info, format!(
        "{} snapshots, {} chunks in use; reclaimed {} bytes: removed {} packs ({} bytes; {} of them partly used, their chunks in use copied into {} new packs of {} bytes), {} unused indexes, {} temporary files; kept {} packs ({} of them waiting for a later GC, {} unreferenced bytes inside packs still in use) in {:.1} s ({} looked at)",
        report.snapshots,
        report.chunks_marked,
        report.reclaimed(),
        report.packs_removed,
        report.bytes_removed,
        report.packs_repacked,
        report.packs_written,
        report.bytes_written,
        report.indexes_removed,
        report.temp_files_removed,
        report.packs_kept,
        report.packs_in_grace,
        report.bytes_unreferenced_in_kept_packs,
        took.as_secs_f64(),
        rate(progress.bytes_read.load(std::sync::atomic::Ordering::Relaxed), took),
    ))
    .await;
    sweep_versions(runner, job, repo).await;
    record_gc(runner, &repo.id, report.reclaimed()).await;
    Ok(())
}

/// How long an old version stays after it stopped being current, before
/// the GC job's version sweep may delete it: the time to notice a deletion
/// and undelete.
pub const UNDELETE_WINDOW_DAYS: i64 = 7;

/// On an S3 repository: the version sweep after GC (`Repository::sweep_versions`):
/// old versions of objects GC deleted (or that were replaced) go once the
/// storage's retention of each has ended and they stopped being current
/// more than [`UNDELETE_WINDOW_DAYS`] ago (by the storage's clock). A bucket
/// without versioning has none. Problems are logged; GC itself succeeded.
async fn sweep_versions(runner: &Runner, job: &jobs::Model, repo: &repositories::Model) {
    if repo.kind != shared_types::repositories::RepositoryKind::S3.as_str() {
        return;
    }
    let Ok(data_dir) = runner.data_dir() else { return };
    let row = repo.clone();
    let swept = tokio::task::spawn_blocking(move || {
        let ds = repo_logic::open_datastore(&data_dir, &row)?;
        let now: chrono::DateTime<Utc> = ds.repo.server_now()?.into();
        ds.repo.sweep_versions(now - chrono::Duration::days(UNDELETE_WINDOW_DAYS), now)
    })
    .await
    .map_err(|e| format!("the sweep thread failed: {e}"))
    .and_then(|r| r.map_err(|e| e.to_string()));
    let (level, line) = match swept {
        Ok(r) => (LogLevel::Info, format!(
            "old versions: removed {} ({} bytes) and {} delete markers; kept {} still under retention and {} superseded in the last {UNDELETE_WINDOW_DAYS} days (time to undelete)",
            r.versions_removed, r.bytes_removed, r.markers_removed, r.retained, r.recent
        )),
        Err(e) => (LogLevel::Warn, format!("old versions: the sweep failed: {e}")),
    };
    telemetry::log(runner, &job.id, level, line).await;
}

async fn record_gc(runner: &Runner, repository_id: &str, reclaimed: u64) {
    let update = repositories::Entity::update_many()
        .col_expr(repositories::Column::LastGcAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .col_expr(repositories::Column::LastGcReclaimedBytes, sea_orm::sea_query::Expr::value(to_i64(reclaimed)))
        .filter(repositories::Column::Id.eq(repository_id))
        .exec(runner.db())
        .await;
    if let Err(e) = update {
        tracing::warn!(error = %e, "recording the repository's last GC");
    }
}

async fn run_prune(runner: &Runner, job: &jobs::Model, repo: &repositories::Model) -> Result<(), String> {
    let db = runner.db();
    let flows = flows::Entity::find().filter(flows::Column::RepositoryId.eq(repo.id.clone())).all(db).await.map_err(|e| e.to_string())?;
    let mut applied = 0;
    for flow in flows.iter().filter(|f| flow_rules::kind(f) == FlowKind::Backup) {
        let vms = flow_rules::vm_ids(db, flow).await.map_err(|e| e.to_string())?;
        for vm in vms {
            backup_job::apply_retention_to_vm(runner, job, flow, repo, &vm).await?;
            applied += 1;
        }
    }
    telemetry::log(runner, &job.id, LogLevel::Info, format!("applied the retention of {} backup flow(s) to {applied} VM(s); their chunks go at the next GC", flows.len())).await;
    // 3-2-1: the copy retention of flows that copy to this repository, over their copies only.
    let all = flows::Entity::find().all(db).await.map_err(|e| e.to_string())?;
    let mut copies = 0;
    for flow in all.iter().filter(|f| flow_rules::kind(f) == FlowKind::Backup) {
        let Some(target) = backup_locations::parse_target(flow.copy_target.as_deref()).filter(|t| t.repository_id == repo.id) else { continue };
        if target.retention.keeps_everything() {
            continue;
        }
        let rules = flow_rules::keep_rules(&target.retention);
        for vm in flow_rules::vm_ids(db, flow).await.map_err(|e| e.to_string())? {
            let out = retention::apply_for_vm_at(db, &runner.data_dir()?, repo, &vm, &rules, LocationRole::Copy).await?;
            if !out.removed.is_empty() {
                telemetry::log(runner, &job.id, LogLevel::Info, format!("copy retention of flow '{}' removed {} copy(ies): {}", flow.name, out.removed.len(), out.removed.join(", "))).await;
            }
            copies += 1;
        }
    }
    if copies > 0 {
        telemetry::log(runner, &job.id, LogLevel::Info, format!("applied the copy retention to {copies} VM(s)' copies here")).await;
        backup_job::refresh_stats(runner, repo).await;
    }
    Ok(())
}
