//! One full VM restore job: check the target host has room for the restore
//! point's data, restore every disk to a raw image in the staging directory,
//! let the target platform convert and register the VM (stopped), power it on
//! if asked. The engine runs on a blocking thread with the job's
//! [`Progress`] while [`telemetry`] streams it; each step is a log line.
//!
//! A failed or stopped restore leaves nothing on the target: the platform
//! publishes a VM only once its disks are converted, and
//! [`restore_vm_with`] deletes the VM again when the restore is cancelled
//! after that or powering on fails. An overwrite builds the new VM beside
//! the existing one and switches it in only once complete, so a failed or
//! stopped overwrite leaves the existing VM as it was; a switch interrupted
//! by a stop of the server is finished or undone at the next start
//! ([`recover_replacements`]). Staging is removed in every case.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use shared_types::jobs::{JobStatus, LogLevel};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NicInfo, PlatformKind, VmInfo};

use super::backup_job::{end_job, start};
use super::{telemetry, Runner};
use crate::catalog::compatibility::{filesystem_id, free_bytes, space_note};
use crate::catalog::{from_wire, inventory};
use crate::db::entities::{backups, jobs, platforms, repositories, vm_contexts};
use crate::catalog::repositories as repositories_logic;
use crate::engine::progress::Progress;
use crate::engine::{restore, EngineError};
use crate::jobs::vm_restore::{restore_vm_with, RestoreHooks, RestoreRequest};
use crate::jobs::JobError;
use crate::platforms::DiskSpace;

/// What a restore job does, kept in the job row (`jobs.options`, JSON),
/// decided and validated when it was queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreOptions {
    /// Name of the VM on the target.
    pub name: String,
    /// Replace a VM of that name (confirmed by the operator).
    pub overwrite: bool,
    pub disk_format: DiskFormat,
    /// The NICs with their target networks.
    pub nics: Vec<NicInfo>,
    pub power_on: bool,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub os: GuestOs,
    /// Where raw images are staged (the server's data directory).
    pub staging_dir: PathBuf,
    /// The target's storage pool for the disks (`None`: its default).
    #[serde(default)]
    pub storage_pool: Option<String>,
}

/// A restore to queue.
#[derive(Debug, Clone)]
pub struct RestoreJobRequest {
    pub vm_context_id: String,
    pub repository_id: String,
    pub backup_id: String,
    pub target_platform_id: String,
    pub options: RestoreOptions,
    pub priority: i32,
    pub requested_by: Option<String>,
}

/// What the blocking part needs from the catalog.
struct Plan {
    options: RestoreOptions,
    snapshot_name: String,
    snapshot_id: String,
    repository: repositories::Model,
    data_dir: PathBuf,
    target_kind: PlatformKind,
    target_address: String,
    target_name: String,
}

pub async fn run(runner: &Runner, job: jobs::Model, vm: vm_contexts::Model, progress: Arc<Progress>) {
    let db = runner.db().clone();
    let Some(job) = start(runner, job).await else { return };
    let started = std::time::Instant::now();
    let outcome = match plan(runner, &db, &job).await {
        Ok(plan) => execute(runner, &job, &vm, plan, progress.clone()).await,
        Err(message) => Err(message),
    };
    let (status, error) = match outcome {
        Ok(created) => {
            let snap = progress.snapshot();
            let secs = started.elapsed().as_secs_f64();
            telemetry::log(runner, &job.id, LogLevel::Info, format!(
                "restore complete: VM '{}' ({:?}) from {} bytes in {:.1} s ({:.1} MB/s)",
                created.name,
                created.power,
                snap.bytes_read,
                secs,
                snap.bytes_read as f64 / secs.max(0.001) / 1e6
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
    let Some(job) = end_job(runner, job, status, error.clone(), &progress).await else {
        return;
    };
    if status == JobStatus::Failed {
        telemetry::alert(runner, &job, &vm.name, error.as_deref().unwrap_or("failed")).await;
    }
}

async fn plan(runner: &Runner, db: &sea_orm::DatabaseConnection, job: &jobs::Model) -> Result<Plan, String> {
    let options: RestoreOptions = job
        .options
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .ok_or("the job's restore options are missing or unreadable")?;
    let backup_id = job.backup_id.clone().ok_or("the job names no restore point")?;
    let backup = backups::Entity::find_by_id(backup_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("restore point '{backup_id}' was removed"))?;
    // The location the request chose (the job's repository), else where it was written.
    let backup = match &job.repository_id {
        Some(r) => crate::catalog::backup_locations::at(db, backup, r).await.map_err(|e| e.to_string())?,
        None => backup,
    };
    let repository = repositories::Entity::find_by_id(backup.repository_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the repository of restore point '{backup_id}' was removed"))?;
    let target_id = job.target_platform_id.clone().ok_or("the job names no target platform")?;
    let target = platforms::Entity::find_by_id(target_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("target platform '{target_id}' was removed"))?;
    let target_kind: PlatformKind = from_wire(&target.kind).ok_or_else(|| format!("platform '{}' has an unknown kind", target.name))?;
    Ok(Plan {
        options,
        snapshot_name: backup.snapshot_name,
        snapshot_id: backup.snapshot_id,
        repository,
        data_dir: runner.data_dir()?,
        target_kind,
        target_address: target.address,
        target_name: target.name,
    })
}

/// Refuses when the target (and the staging area) cannot hold `required` bytes.
pub fn check_space(target_name: &str, target: &DiskSpace, staging: &Path, required: u64) -> Result<(), String> {
    let free = target.free_bytes;
    let same_fs = target.local_dir.as_deref().is_some_and(|d| matches!((filesystem_id(d), filesystem_id(staging)), (Ok(a), Ok(b)) if a == b));
    // Staged raw images and the converted disks coexist until the end.
    let on_target = if same_fs { required.saturating_mul(2) } else { required };
    if let Some(n) = space_note(target_name, on_target, free) {
        return Err(n.message);
    }
    if !same_fs {
        let free = free_bytes(staging).map_err(|e| format!("unable to read the free space of {}: {e}", staging.display()))?;
        if let Some(n) = space_note(&format!("staging {}", staging.display()), required, free) {
            return Err(n.message);
        }
    }
    Ok(())
}

async fn execute(runner: &Runner, job: &jobs::Model, vm: &vm_contexts::Model, plan: Plan, progress: Arc<Progress>) -> Result<VmInfo, String> {
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), vm.name.clone(), progress.clone());
    let (tx, logger) = telemetry::spawn_logger(runner.clone(), job.id.clone());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let p = progress.clone();
    let span = tracing::info_span!("restore_job", job = %job.id, to = %plan.options.name, target = %plan.target_name);
    let left = if plan.options.overwrite {
        format!("the existing VM '{}' on the target is unchanged", plan.options.name)
    } else {
        "no VM was left on the target".to_string()
    };
    let result = tokio::task::spawn_blocking(move || -> Result<VmInfo, JobError> {
        let _span = span.entered();
        let o = &plan.options;
        let log = move |line: String| {
            let _ = tx.send(line);
        };
        let target = inventory::connect(plan.target_kind, &plan.target_address)?;
        let ds = repositories_logic::open_datastore(&plan.data_dir, &plan.repository)?;
        let required = restore::allocated_bytes(&ds, &plan.snapshot_name, &plan.snapshot_id)?;
        std::fs::create_dir_all(&o.staging_dir).map_err(|e| JobError::Io { what: format!("creating {}", o.staging_dir.display()), source: e })?;
        check_space(&plan.target_name, &target.disk_space_in(o.storage_pool.as_deref())?, &o.staging_dir, required).map_err(crate::platforms::PlatformError::Invalid)?;
        log(format!("{required} bytes of data to restore; host '{}' has room", plan.target_name));
        let req = RestoreRequest {
            source_vm: plan.snapshot_name.clone(),
            snapshot: plan.snapshot_id.clone(),
            new_name: o.name.clone(),
            format: Some(o.disk_format),
            vcpus: o.vcpus,
            memory_mib: o.memory_mib,
            firmware: o.firmware,
            os: o.os,
            nics: o.nics.clone(),
            power_on: o.power_on,
            storage_pool: o.storage_pool.clone(),
        };
        let hooks = RestoreHooks { replace_existing: o.overwrite, log: &log };
        let stop = p.clone();
        crate::platforms::tools::with_stop(move || stop.control.is_cancelled(), || restore_vm_with(&ds, target.as_ref(), &req, &o.staging_dir, workers, &p, &hooks))
    })
    .await;
    sampler.abort();
    let _ = logger.await;
    match result {
        Ok(Ok(created)) => Ok(created),
        Ok(Err(JobError::Engine(EngineError::Cancelled))) => Err(format!("stopped by an operator; {left}")),
        Ok(Err(e)) => Err(format!("restore to '{}' failed: {e}; {left}", plan_target(job))),
        Err(e) => Err(format!("the restore thread failed: {e}")),
    }
}

fn plan_target(job: &jobs::Model) -> String {
    job.options
        .as_deref()
        .and_then(|o| serde_json::from_str::<RestoreOptions>(o).ok())
        .map(|o| o.name)
        .unwrap_or_else(|| "the target".into())
}

/// Where restore jobs stage raw images, under the server's data directory.
pub fn staging_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("staging")
}

/// Removes staging directories a previous run of the server left behind
/// (restores it was running when it stopped); call before the runner
/// starts. Returns how many were removed.
pub fn clear_staging(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(staging_dir(data_dir)) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("sendense-restore-") {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => n += 1,
                Err(err) => tracing::warn!(path = %e.path().display(), error = %err, "removing a stale restore staging directory"),
            }
        }
    }
    n
}

/// Finishes or undoes VM replacements (overwrite restores) that a stop of
/// the server interrupted mid-switch, on every KVM platform in the catalog;
/// call before the runner starts. Returns how many were repaired.
pub async fn recover_replacements(db: &sea_orm::DatabaseConnection) -> usize {
    let rows = match platforms::Entity::find().all(db).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "listing platforms to recover interrupted VM replacements");
            return 0;
        }
    };
    let hosts: Vec<(String, String)> =
        rows.into_iter().filter(|p| from_wire::<PlatformKind>(&p.kind) == Some(PlatformKind::Kvm)).map(|p| (p.name, p.address)).collect();
    tokio::task::spawn_blocking(move || {
        let mut n = 0;
        for (name, address) in hosts {
            match inventory::connect(PlatformKind::Kvm, &address).and_then(|p| p.recover_replacements()) {
                Ok(done) => {
                    for line in &done {
                        tracing::warn!(host = %name, "{line}");
                    }
                    n += done.len();
                }
                Err(e) => tracing::error!(host = %name, error = %e, "recovering interrupted VM replacements"),
            }
        }
        n
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_staging_is_cleared_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let staging = staging_dir(dir.path());
        std::fs::create_dir_all(staging.join("sendense-restore-abc")).unwrap();
        std::fs::write(staging.join("sendense-restore-abc/disk0.raw"), b"x").unwrap();
        std::fs::write(staging.join("keep.txt"), b"x").unwrap();
        assert_eq!(clear_staging(dir.path()), 1);
        assert!(staging.join("keep.txt").exists() && !staging.join("sendense-restore-abc").exists());
        assert_eq!(clear_staging(&dir.path().join("none")), 0);
    }

    #[test]
    fn space_is_refused_with_both_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        let space = DiskSpace { free_bytes: free, local_dir: Some(dir.path().to_path_buf()) };
        assert!(check_space("h", &space, dir.path(), 1).is_ok());
        let err = check_space("kvm-dr-01", &space, dir.path(), free).unwrap_err();
        assert!(err.contains("not enough space on host 'kvm-dr-01'") && err.contains(&(free * 2).to_string()), "{err}");
    }
}
