//! Instant recovery jobs (kind `instant_recovery`), one per step of an
//! instant recovery (`instant_recoveries` row):
//!
//! * `start`: the export process serves the restore point (pinning it),
//!   the VM is defined on qcow2 overlays of the export and booted; the job
//!   completes when the guest's console shows its boot line. A failure
//!   removes the VM, its overlays and the export.
//! * `finalize`: the rest of the restore point is copied into the overlays
//!   while the guest runs (live progress in bytes); then the export
//!   process ends and the pin goes. A failure or a stop leaves the VM
//!   running on the export as before.
//!
//! After a server stop ([`recover`]): a start that was under way is undone;
//! a running VM keeps its export (the process outlives the server, or is
//! started again on the same socket); a finalize under way is queued again
//! and follows the copy QEMU went on with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use shared_types::instant::InstantState;
use shared_types::jobs::{JobKind, JobStatus, LogLevel};
use shared_types::platform::{Firmware, GuestOs, NicInfo, PlatformKind};

use super::backup_job::{end_job, start};
use super::{queued_row, telemetry, Runner, RunnerError};
use crate::catalog::repositories as repositories_logic;
use crate::catalog::spec_files::{ChildRepo, SpecFile};
use crate::catalog::{from_wire, inventory, repository_keys};
use crate::db::entities::{instant_recoveries, jobs, platforms, repositories, vm_contexts};
use crate::engine::progress::Progress;
use crate::platforms::Platform;
use crate::restore::export_process::{self, ExportArgs};
use crate::restore::instant::{self, InstantRequest};

/// The operations.
pub const START: &str = "start";
pub const FINALIZE: &str = "finalize";

/// The VM an instant recovery boots (`instant_recoveries.options`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstantOptions {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub os: GuestOs,
    pub nics: Vec<NicInfo>,
    /// The target's storage pool for the overlays (`None`: its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_pool: Option<String>,
}

/// What a job of this kind does (`jobs.options`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobOptions {
    instant_id: String,
    #[serde(default)]
    bandwidth_mib_s: u64,
}

/// The export socket of instant recovery `id` (short: a unix socket path
/// holds at most 107 bytes).
pub fn socket_path(id: &str) -> PathBuf {
    std::env::temp_dir().join("sendense-instant").join(format!("{id}.sock"))
}

impl Runner {
    /// Queues `operation` of instant recovery `row`; refused while a job of
    /// it is queued or running.
    pub async fn enqueue_instant(&self, row: &instant_recoveries::Model, operation: &str, bandwidth_mib_s: u64, requested_by: Option<String>) -> Result<jobs::Model, RunnerError> {
        let db = self.db();
        if let Some(job_id) = &row.job_id {
            if let Some(j) = jobs::Entity::find_by_id(job_id.clone()).one(db).await? {
                if JobStatus::parse(&j.status).is_some_and(|s| s.is_active()) {
                    return Err(RunnerError::Conflict(format!("instant recovery '{}' has a job {} already (job {})", row.name, j.status, j.id)));
                }
            }
        }
        let options = serde_json::to_string(&JobOptions { instant_id: row.id.clone(), bandwidth_mib_s }).map_err(|e| RunnerError::Conflict(e.to_string()))?;
        let mut job = queued_row(JobKind::InstantRecovery, &row.vm_context_id, &row.repository_id, 1, requested_by);
        job.backup_id = Set(Some(row.backup_id.clone()));
        job.target_platform_id = Set(Some(row.target_platform_id.clone()));
        job.operation = Set(Some(operation.to_string()));
        job.options = Set(Some(options));
        let job = job.insert(db).await?;
        let mut r: instant_recoveries::ActiveModel = row.clone().into();
        r.job_id = Set(Some(job.id.clone()));
        r.updated_at = Set(Utc::now());
        r.update(db).await?;
        telemetry::job_changed(self, &job).await;
        self.wake();
        Ok(job)
    }
}

/// Everything a step needs, read from the catalog.
struct Plan {
    row: instant_recoveries::Model,
    repository: repositories::Model,
    data_dir: PathBuf,
    target_kind: PlatformKind,
    target_address: String,
    bandwidth_mib_s: u64,
}

async fn plan(runner: &Runner, job: &jobs::Model) -> Result<Plan, String> {
    let db = runner.db();
    let o: JobOptions = job.options.as_deref().and_then(|o| serde_json::from_str(o).ok()).ok_or("the job's options are missing or unreadable")?;
    let row = instant_recoveries::Entity::find_by_id(o.instant_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("instant recovery '{}' was removed", o.instant_id))?;
    let repository = repositories::Entity::find_by_id(row.repository_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the restore point's repository was removed")?;
    let target = platforms::Entity::find_by_id(row.target_platform_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the target platform was removed")?;
    let target_kind = from_wire(&target.kind).ok_or_else(|| format!("platform '{}' has an unknown kind", target.name))?;
    Ok(Plan { row, repository, data_dir: runner.data_dir()?, target_kind, target_address: target.address, bandwidth_mib_s: o.bandwidth_mib_s })
}

async fn save(runner: &Runner, row: instant_recoveries::Model, change: impl FnOnce(&mut instant_recoveries::ActiveModel)) -> Option<instant_recoveries::Model> {
    let mut a: instant_recoveries::ActiveModel = row.into();
    change(&mut a);
    a.updated_at = Set(Utc::now());
    match a.update(runner.db()).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "recording an instant recovery's state");
            None
        }
    }
}

/// The export process's arguments for `row`, with the spec file an
/// object-store repository is handed over in (keep it until the process
/// serves: it reads the file once at start). Blocking (an object store's
/// configuration is read over the network).
pub fn export_args(data_dir: &Path, repository: &repositories::Model, row: &instant_recoveries::Model, snapshot: String) -> Result<(ExportArgs, Option<SpecFile>), String> {
    let spec = repositories_logic::row_spec(data_dir, repository).map_err(|e| format!("repository '{}': {e}", repository.name))?;
    let encrypted = crate::engine::datastore::Datastore::read_config_spec(&spec).map_err(|e| e.to_string())?.encryption.is_some();
    let key_file = if encrypted { Some(repository_keys::key_path(data_dir, &repository.id).map_err(|e| e.to_string())?) } else { None };
    let (dir, spec_file) = match ChildRepo::of(data_dir, repository).map_err(|e| format!("{e:#}"))? {
        ChildRepo::Dir(d) => (Some(d), None),
        ChildRepo::Spec(f) => (None, Some(f)),
    };
    let args = ExportArgs {
        repository: dir,
        spec_file: spec_file.as_ref().map(|f| f.path().to_path_buf()),
        key_file,
        snapshot,
        socket: PathBuf::from(&row.socket),
        pin_id: row.id.clone(),
    };
    Ok((args, spec_file))
}

/// Ends `row`'s export process and releases its pin (blocking).
fn stop_export(data_dir: &Path, repository: &repositories::Model, row: &instant_recoveries::Model) {
    match repositories_logic::open_datastore(data_dir, repository) {
        Ok(ds) => export_process::stop(row.export_pid.map(|p| p as u32), Path::new(&row.socket), ds.repo.as_ref(), &row.id),
        Err(e) => tracing::warn!(error = %e, "opening the repository to release an instant recovery's pin"),
    }
}

fn export_log(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("instant").join(format!("{id}.export.log"))
}

pub async fn run(runner: &Runner, job: jobs::Model, vm: vm_contexts::Model, progress: Arc<Progress>) {
    let Some(job) = start(runner, job).await else { return };
    let operation = job.operation.clone().unwrap_or_default();
    let outcome = match plan(runner, &job).await {
        Ok(plan) if operation == START => start_vm(runner, &job, plan).await,
        Ok(plan) if operation == FINALIZE => finalize(runner, &job, plan, progress.clone()).await,
        Ok(_) => Err(format!("unknown instant recovery operation '{operation}'")),
        Err(e) => Err(e),
    };
    let (status, error) = match outcome {
        Ok(()) => (JobStatus::Completed, None),
        Err(m) if progress.control.is_cancelled() => (JobStatus::Cancelled, Some(m)),
        Err(m) => (JobStatus::Failed, Some(m)),
    };
    if let Some(e) = &error {
        telemetry::log(runner, &job.id, if status == JobStatus::Failed { LogLevel::Error } else { LogLevel::Warn }, e.clone()).await;
    }
    let Some(job) = end_job(runner, job, status, error.clone(), &progress).await else { return };
    if status == JobStatus::Failed {
        telemetry::alert(runner, &job, &vm.name, error.as_deref().unwrap_or("failed")).await;
    }
}

async fn start_vm(runner: &Runner, job: &jobs::Model, plan: Plan) -> Result<(), String> {
    let row = plan.row.clone();
    let options: InstantOptions = serde_json::from_str(&row.options).map_err(|e| format!("the instant recovery's options: {e}"))?;
    let backup = crate::db::entities::backups::Entity::find_by_id(row.backup_id.clone())
        .one(runner.db())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("restore point '{}' was removed", row.backup_id))?;
    // As it is in the location the instant recovery reads from.
    let backup = crate::catalog::backup_locations::at(runner.db(), backup, &row.repository_id).await.map_err(|e| e.to_string())?;
    let (tx, logger) = telemetry::spawn_logger(runner.clone(), job.id.clone());
    let log = move |l: String| {
        let _ = tx.send(l);
    };
    let started = std::time::Instant::now();
    let snapshot = format!("{}/{}", backup.snapshot_name, backup.snapshot_id);
    let (data_dir, repository, probe) = (plan.data_dir.clone(), plan.repository.clone(), row.clone());
    let log_file = export_log(&plan.data_dir, &row.id);
    let l = log.clone();
    let pid = tokio::task::spawn_blocking(move || -> Result<u32, String> {
        let (args, _spec_file) = export_args(&data_dir, &repository, &probe, snapshot)?;
        if let Some(d) = log_file.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        if let Some(d) = args.socket.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let pid = export_process::start(&args, &log_file).map_err(|e| format!("{e:#}"))?;
        l(format!("restore point {} served by export process {pid} on {} (pinned)", args.snapshot, args.socket.display()));
        Ok(pid)
    })
    .await
    .map_err(|e| e.to_string())??;
    let Some(row) = save(runner, row, |a| a.export_pid = Set(Some(pid as i64))).await else {
        return Err("the catalog could not record the export".into());
    };
    let req = InstantRequest {
        snapshot_name: backup.snapshot_name.clone(),
        snapshot_id: backup.snapshot_id.clone(),
        name: row.name.clone(),
        vcpus: options.vcpus,
        memory_mib: options.memory_mib,
        firmware: options.firmware,
        os: options.os,
        nics: options.nics,
        pool: options.storage_pool,
    };
    let (kind, address, data_dir, repository, socket, id) =
        (plan.target_kind, plan.target_address.clone(), plan.data_dir.clone(), plan.repository.clone(), PathBuf::from(&row.socket), row.id.clone());
    let span = tracing::info_span!("instant_start", instant = %row.id, vm = %row.name);
    let booted = tokio::task::spawn_blocking(move || {
        let _span = span.entered();
        let target = inventory::connect(kind, &address).map_err(|e| e.to_string())?;
        let ds = repositories_logic::open_datastore(&data_dir, &repository).map_err(|e| e.to_string())?;
        let done = instant::boot(&ds, target.as_ref(), &socket, &req, &log);
        if done.is_err() {
            export_process::stop(Some(pid), &socket, ds.repo.as_ref(), &id);
        }
        done.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?;
    let _ = logger.await;
    match booted {
        Ok(b) => {
            let up = b.up_ms.map(|ms| format!("guest up after {ms} ms: {}", b.boot_line.as_deref().unwrap_or("")));
            telemetry::log(runner, &job.id, LogLevel::Info, format!(
                "instant recovery running: VM '{}' (id {}) on the restore point in {:.1} s; {}",
                b.vm.name,
                b.vm.id,
                started.elapsed().as_secs_f64(),
                up.unwrap_or_else(|| "no boot line on its console (whether the guest is up is not known)".into())
            ))
            .await;
            save(runner, row, |a| {
                a.state = Set(InstantState::Running.as_str().into());
                a.vm_id = Set(Some(b.vm.id.clone()));
                a.dir = Set(Some(b.dir.display().to_string()));
                a.up_ms = Set(b.up_ms.map(|m| m as i64));
                a.boot_line = Set(b.boot_line.clone());
                a.error = Set(None);
            })
            .await;
            Ok(())
        }
        Err(e) => {
            let message = format!("instant recovery of '{}' failed: {e}; nothing was left on the target and the restore point is no longer pinned", row.name);
            save(runner, row, |a| {
                a.state = Set(InstantState::Failed.as_str().into());
                a.export_pid = Set(None);
                a.error = Set(Some(message.clone()));
            })
            .await;
            Err(message)
        }
    }
}

async fn finalize(runner: &Runner, job: &jobs::Model, plan: Plan, progress: Arc<Progress>) -> Result<(), String> {
    let row = plan.row.clone();
    let Some(vm_id) = row.vm_id.clone() else { return Err("the instant VM was never defined".into()) };
    if InstantState::parse(&row.state) == Some(InstantState::Finalized) {
        return Ok(());
    }
    let Some(row) = save(runner, row, |a| a.state = Set(InstantState::Finalizing.as_str().into())).await else {
        return Err("the catalog could not record the finalize".into());
    };
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), row.name.clone(), progress.clone());
    telemetry::log(runner, &job.id, LogLevel::Info, format!(
        "copying the restore point into the disks of '{}' while it runs{}",
        row.name,
        if plan.bandwidth_mib_s > 0 { format!(" (at most {} MiB/s per disk)", plan.bandwidth_mib_s) } else { String::new() }
    ))
    .await;
    let started = std::time::Instant::now();
    let (kind, address, p, bw) = (plan.target_kind, plan.target_address.clone(), progress.clone(), plan.bandwidth_mib_s);
    let span = tracing::info_span!("instant_finalize", instant = %row.id, vm = %row.name);
    let result = tokio::task::spawn_blocking(move || {
        let _span = span.entered();
        let target: Box<dyn Platform> = inventory::connect(kind, &address).map_err(|e| e.to_string())?;
        let report = |done: u64, total: u64| {
            p.bytes_total.store(total, std::sync::atomic::Ordering::Relaxed);
            p.bytes_read.store(done, std::sync::atomic::Ordering::Relaxed);
            p.bytes_written.store(done, std::sync::atomic::Ordering::Relaxed);
        };
        let stopped = || p.control.is_cancelled();
        instant::finalize(target.as_ref(), &vm_id, bw, &report, &stopped).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    sampler.abort();
    let snap = progress.snapshot();
    match result {
        Ok(()) => {
            let secs = started.elapsed().as_secs_f64();
            telemetry::log(runner, &job.id, LogLevel::Info, format!(
                "finalized: {} bytes copied in {:.1} s ({:.1} MB/s); '{}' no longer needs the repository",
                snap.bytes_total,
                secs,
                snap.bytes_total as f64 / secs.max(0.001) / 1e6,
                row.name
            ))
            .await;
            let (data_dir, repository, r) = (plan.data_dir.clone(), plan.repository.clone(), row.clone());
            let _ = tokio::task::spawn_blocking(move || stop_export(&data_dir, &repository, &r)).await;
            save(runner, row, |a| {
                a.state = Set(InstantState::Finalized.as_str().into());
                a.export_pid = Set(None);
                a.finalize_done = Set(snap.bytes_total as i64);
                a.finalize_total = Set(snap.bytes_total as i64);
                a.finalized_at = Set(Some(Utc::now()));
                a.error = Set(None);
            })
            .await;
            Ok(())
        }
        Err(e) => {
            let message = format!("finalize of '{}' did not complete: {e}; the VM runs on the restore point as before", row.name);
            save(runner, row, |a| {
                a.state = Set(InstantState::Running.as_str().into());
                a.finalize_done = Set(snap.bytes_read as i64);
                a.finalize_total = Set(snap.bytes_total as i64);
                a.error = Set(Some(message.clone()));
            })
            .await;
            Err(message)
        }
    }
}

/// Removes instant recovery `row` from its host: the VM (stopped hard) and
/// its overlays unless it was finalized, and the export with its pin.
pub async fn discard(runner: &Runner, row: &instant_recoveries::Model) -> Result<(), String> {
    let db = runner.db();
    let repository = repositories::Entity::find_by_id(row.repository_id.clone()).one(db).await.map_err(|e| e.to_string())?;
    let target = platforms::Entity::find_by_id(row.target_platform_id.clone()).one(db).await.map_err(|e| e.to_string())?;
    let data_dir = runner.data_dir()?;
    let row = row.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let state = InstantState::parse(&row.state);
        if state != Some(InstantState::Finalized) {
            if let Some(t) = &target {
                let kind = from_wire(&t.kind).ok_or("the target platform has an unknown kind")?;
                let platform = inventory::connect(kind, &t.address).map_err(|e| e.to_string())?;
                let vm = row.vm_id.clone().unwrap_or_else(|| row.name.clone());
                let dir = match &row.dir {
                    Some(d) => PathBuf::from(d),
                    None => {
                        let pool = serde_json::from_str::<InstantOptions>(&row.options).ok().and_then(|o| o.storage_pool);
                        instant::folder(platform.as_ref(), pool.as_deref(), &row.name).map_err(|e| e.to_string())?
                    }
                };
                // A VM by name only where Sendense made its folder.
                if row.vm_id.is_some() || dir.join(instant::MARKER).exists() {
                    instant::discard(platform.as_ref(), &vm, &dir).map_err(|e| e.to_string())?;
                }
            }
        }
        if let Some(repository) = repository {
            stop_export(&data_dir, &repository, &row);
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Puts instant recoveries back in order after the server stopped (call
/// before the runner starts): see the module. Returns how many it touched.
pub async fn recover(runner: &Runner) -> usize {
    let rows = match instant_recoveries::Entity::find()
        .filter(instant_recoveries::Column::State.is_in(InstantState::ACTIVE.map(|s| s.as_str())))
        .all(runner.db())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "listing instant recoveries to recover");
            return 0;
        }
    };
    let mut n = 0;
    for row in rows {
        n += 1;
        match InstantState::parse(&row.state) {
            Some(InstantState::Starting) => {
                let outcome = discard(runner, &row).await;
                let message = match &outcome {
                    Ok(()) => "the server stopped while this instant recovery started; what it had made was removed".to_string(),
                    Err(e) => format!("the server stopped while this instant recovery started; removing what it had made failed: {e}"),
                };
                tracing::warn!(instant = %row.id, vm = %row.name, "{message}");
                save(runner, row, |a| {
                    a.state = Set(InstantState::Failed.as_str().into());
                    a.export_pid = Set(None);
                    a.error = Set(Some(message));
                })
                .await;
            }
            state => {
                if let Err(e) = keep_serving(runner, &row).await {
                    tracing::error!(instant = %row.id, vm = %row.name, error = %e, "serving an instant recovery's restore point again");
                    save(runner, row.clone(), |a| a.error = Set(Some(format!("its restore point could not be served again after a restart: {e}")))).await;
                    continue;
                }
                if state == Some(InstantState::Finalizing) {
                    tracing::warn!(instant = %row.id, vm = %row.name, "the server stopped during a finalize: queued again");
                    let fresh = instant_recoveries::Entity::find_by_id(row.id.clone()).one(runner.db()).await.ok().flatten().unwrap_or(row);
                    if let Err(e) = runner.enqueue_instant(&fresh, FINALIZE, 0, Some("sendense".into())).await {
                        tracing::error!(error = %e, "queueing an interrupted finalize again");
                    }
                }
            }
        }
    }
    n
}

/// Makes sure the export of `row` serves (started again on its socket when
/// its process is gone), recording the pid.
async fn keep_serving(runner: &Runner, row: &instant_recoveries::Model) -> Result<(), String> {
    if row.export_pid.is_some_and(|p| export_process::is_serving(p as u32, Path::new(&row.socket))) {
        return Ok(());
    }
    let db = runner.db();
    let repository = repositories::Entity::find_by_id(row.repository_id.clone()).one(db).await.map_err(|e| e.to_string())?.ok_or("its repository was removed")?;
    let backup = crate::db::entities::backups::Entity::find_by_id(row.backup_id.clone())
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("its restore point was removed")?;
    let backup = crate::catalog::backup_locations::at(db, backup, &row.repository_id).await.map_err(|e| e.to_string())?;
    let data_dir = runner.data_dir()?;
    let snapshot = format!("{}/{}", backup.snapshot_name, backup.snapshot_id);
    let log = export_log(&data_dir, &row.id);
    let probe = row.clone();
    let pid = tokio::task::spawn_blocking(move || {
        let (args, _spec_file) = export_args(&data_dir, &repository, &probe, snapshot)?;
        export_process::start(&args, &log).map_err(|e| format!("{e:#}"))
    })
    .await
    .map_err(|e| e.to_string())??;
    tracing::warn!(instant = %row.id, pid, "the restore point of an instant recovery is served again");
    save(runner, row.clone(), |a| a.export_pid = Set(Some(pid as i64))).await;
    Ok(())
}

/// The demo lab stopped with the server: its instant VMs went with its
/// hosts, so their exports and overlays go too (recorded as failed).
pub async fn end_with_lab(runner: &Runner) {
    let rows = instant_recoveries::Entity::find()
        .filter(instant_recoveries::Column::State.is_in(InstantState::ACTIVE.map(|s| s.as_str())))
        .all(runner.db())
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(Some(repository)) = repositories::Entity::find_by_id(row.repository_id.clone()).one(runner.db()).await else { continue };
        let Ok(data_dir) = runner.data_dir() else { continue };
        let r = row.clone();
        let _ = tokio::task::spawn_blocking(move || {
            stop_export(&data_dir, &repository, &r);
            if let Some(dir) = r.dir.as_deref().map(PathBuf::from).filter(|d| d.join(instant::MARKER).exists()) {
                let _ = std::fs::remove_dir_all(dir);
            }
        })
        .await;
        save(runner, row, |a| {
            a.state = Set(InstantState::Failed.as_str().into());
            a.export_pid = Set(None);
            a.error = Set(Some("the demo lab stopped with the server, and this instant VM with it".into()));
        })
        .await;
    }
}
