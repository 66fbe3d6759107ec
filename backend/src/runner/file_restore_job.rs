//! One file restore job: selected files of a file-level restore session
//! written into a host directory (under a restore root) or into a powered-off
//! VM's disk. The request checks the selection and the destination and
//! queues the job (202); the runner starts it like any other, within the
//! limits of the restore point's repository and the VM's platform.
//!
//! The selection (it holds the open session's filesystem) waits in memory
//! between the request and the start: a server restart loses it, and the
//! job then fails saying the session must be opened again. Progress is the
//! file bytes written (of the selection's total), the log names each
//! selected path written and each entry skipped with the reason, pause and
//! stop act before every entry (and between the steps of a write into a
//! disk), and a stop kills the external tool running at that moment. The
//! result (written counts, skipped list) is kept in the job's options and
//! shown by `GET /api/v1/jobs/{id}` as `file_restore`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use shared_types::jobs::{JobKind, JobStatus, LogLevel};
use shared_types::restore::{ConflictPolicy, FileRestoreDestination, FileRestoreResult};

use super::backup_job::{end_job, start};
use super::{queued_row, telemetry, Runner, RunnerError};
use crate::confinement::Destination;
use crate::db::entities::{jobs, vm_contexts};
use crate::engine::progress::Progress;
use crate::restore::file_restore::{self, FileRestoreError, Selection, Watch};
use crate::restore::into_disk::{self, DiskDestination};
use crate::restore::to_directory;

/// What a file restore job does, kept in the job row (`jobs.options`,
/// JSON); `result` is filled in when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRestoreOptions {
    pub mount_id: String,
    pub paths: Vec<String>,
    pub destination: FileRestoreDestination,
    pub conflict: ConflictPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<FileRestoreResult>,
}

/// Where the files go, checked.
pub enum WriteTo {
    Host(Destination),
    Disk(DiskDestination),
}

/// A file restore to queue.
pub struct FileRestoreJobRequest {
    pub vm_context_id: String,
    pub repository_id: String,
    pub backup_id: String,
    /// The VM's platform when writing into its disk.
    pub target_platform_id: Option<String>,
    pub options: FileRestoreOptions,
    pub selection: Selection,
    pub target: WriteTo,
    /// Where a write into a disk stages its files.
    pub staging_dir: PathBuf,
    pub requested_by: Option<String>,
}

struct Pending {
    selection: Selection,
    target: WriteTo,
    staging_dir: PathBuf,
}

/// Selections of queued file restores, by job id.
static PENDING: Mutex<Option<HashMap<String, Pending>>> = Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<HashMap<String, Pending>>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops the selection of a job stopped before it started.
pub fn forget(job_id: &str) {
    if let Some(p) = pending().as_mut() {
        p.remove(job_id);
    }
}

/// The file restore result a job row carries, once it ended.
pub fn result_of(job: &jobs::Model) -> Option<FileRestoreResult> {
    if job.kind != JobKind::FileRestore.as_str() {
        return None;
    }
    job.options.as_deref().and_then(|o| serde_json::from_str::<FileRestoreOptions>(o).ok()).and_then(|o| o.result)
}

impl Runner {
    /// Queues a file restore (202 for the API).
    pub async fn enqueue_file_restore(&self, req: FileRestoreJobRequest) -> Result<jobs::Model, RunnerError> {
        let options = serde_json::to_string(&req.options).map_err(|e| RunnerError::Conflict(format!("file restore options: {e}")))?;
        let mut row = queued_row(JobKind::FileRestore, &req.vm_context_id, &req.repository_id, 0, req.requested_by.clone());
        row.backup_id = Set(Some(req.backup_id.clone()));
        row.target_platform_id = Set(req.target_platform_id.clone());
        row.options = Set(Some(options));
        let id = match &row.id {
            sea_orm::ActiveValue::Set(id) => id.clone(),
            _ => return Err(RunnerError::Conflict("a new job has no id".into())),
        };
        // Waiting before the row exists: the dispatcher may start it at once.
        pending().get_or_insert_with(HashMap::new).insert(id.clone(), Pending { selection: req.selection, target: req.target, staging_dir: req.staging_dir });
        let job = match row.insert(self.db()).await {
            Ok(j) => j,
            Err(e) => {
                pending().as_mut().map(|p| p.remove(&id));
                return Err(e.into());
            }
        };
        telemetry::job_changed(self, &job).await;
        self.wake();
        Ok(job)
    }
}

pub async fn run(runner: &Runner, job: jobs::Model, vm: vm_contexts::Model, progress: Arc<Progress>) {
    let db = runner.db().clone();
    let work = pending().as_mut().and_then(|p| p.remove(&job.id));
    let Some(job) = start(runner, job).await else { return };
    let options: Option<FileRestoreOptions> = job.options.as_deref().and_then(|o| serde_json::from_str(o).ok());
    let outcome = match (work, options.clone()) {
        (Some(work), Some(options)) => execute(runner, &job, &vm, options, work, progress.clone()).await,
        (None, _) => Err("the file-level restore session this job was to read from is gone (the server restarted); open the restore point again and restore the files anew".to_string()),
        (_, None) => Err("the job's file restore options are missing or unreadable".to_string()),
    };
    let (status, error, result) = match outcome {
        Ok(r) => (JobStatus::Completed, None, Some(r)),
        Err(m) if progress.control.is_cancelled() => (JobStatus::Cancelled, Some(m), None),
        Err(m) => (JobStatus::Failed, Some(m), None),
    };
    if let Some(e) = &error {
        telemetry::log(runner, &job.id, if status == JobStatus::Failed { LogLevel::Error } else { LogLevel::Warn }, e.clone()).await;
    }
    let mut job = job;
    if let (Some(r), Some(mut o)) = (result, options) {
        o.result = Some(r);
        if let Ok(text) = serde_json::to_string(&o) {
            let saved = jobs::Entity::update_many()
                .col_expr(jobs::Column::Options, sea_orm::sea_query::Expr::value(text.clone()))
                .filter(jobs::Column::Id.eq(job.id.clone()))
                .exec(&db)
                .await;
            match saved {
                Ok(_) => job.options = Some(text),
                Err(e) => tracing::error!(error = %e, "unable to record the file restore's result"),
            }
        }
    }
    let Some(job) = end_job(runner, job, status, error.clone(), &progress).await else {
        return;
    };
    if status == JobStatus::Failed {
        telemetry::alert(runner, &job, &vm.name, error.as_deref().unwrap_or("failed")).await;
    }
}

async fn execute(runner: &Runner, job: &jobs::Model, vm: &vm_contexts::Model, options: FileRestoreOptions, work: Pending, progress: Arc<Progress>) -> Result<FileRestoreResult, String> {
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), vm.name.clone(), progress.clone());
    let (tx, logger) = telemetry::spawn_logger(runner.clone(), job.id.clone());
    let span = tracing::info_span!("file_restore_job", job = %job.id, mount = %options.mount_id, paths = options.paths.len(), conflict = options.conflict.as_str());
    let p = progress.clone();
    let mount_id = options.mount_id.clone();
    let conflict = options.conflict;
    let result = tokio::task::spawn_blocking(move || -> Result<FileRestoreResult, FileRestoreError> {
        let _span = span.entered();
        let tx = Mutex::new(tx);
        let log = move |line: String| {
            let _ = tx.lock().map(|t| t.send(line));
        };
        let watch = Watch { progress: &p, log: &log };
        let stop = p.clone();
        crate::platforms::tools::with_stop(move || stop.control.is_cancelled(), || {
            let started = std::time::Instant::now();
            let now = Utc::now();
            let sel = &work.selection;
            let (files, bytes) = file_restore::measure(sel);
            p.bytes_total.store(bytes, std::sync::atomic::Ordering::Relaxed);
            log(format!("{} selected path(s) of volume {}: {files} files, {bytes} bytes to write (conflict policy: {})", sel.items.len(), sel.volume, conflict.as_str()));
            let (outcome, words) = match &work.target {
                WriteTo::Host(dest) => {
                    let words = format!("{} on the Sendense host", dest.path().display());
                    (to_directory::restore_to_directory(sel, dest, conflict, now, &watch)?, words)
                }
                WriteTo::Disk(d) => into_disk::restore_into_disk(sel, d, conflict, now, &work.staging_dir, &watch)?,
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            log(format!(
                "done: {} files, {} directories, {} links, {} bytes written to {words}; {} skipped; {duration_ms} ms",
                outcome.files, outcome.directories, outcome.symlinks, outcome.bytes, outcome.skipped_total
            ));
            tracing::info!(destination = %words, files = outcome.files, directories = outcome.directories, symlinks = outcome.symlinks,
                bytes = outcome.bytes, skipped = outcome.skipped_total, duration_ms, "files restored");
            Ok(FileRestoreResult {
                mount_id,
                destination: words,
                files: outcome.files,
                directories: outcome.directories,
                symlinks: outcome.symlinks,
                bytes: outcome.bytes,
                skipped: outcome.skipped,
                skipped_total: outcome.skipped_total,
                duration_ms,
            })
        })
    })
    .await;
    sampler.abort();
    let _ = logger.await;
    match result {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(FileRestoreError::Stopped)) => Err("stopped by an operator; files written before the stop stay, a VM's disk is left as it was".into()),
        Ok(Err(FileRestoreError::Platform(crate::platforms::PlatformError::ToolStopped { tool }))) => {
            Err(format!("stopped by an operator while {tool} ran (killed); a VM's disk is left as it was"))
        }
        Ok(Err(e)) => Err(format!("file restore failed: {e}")),
        Err(e) => Err(format!("the file restore thread failed: {e}")),
    }
}
