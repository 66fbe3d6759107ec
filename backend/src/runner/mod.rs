//! The job runner: a queue of jobs in the catalog (`jobs` rows, status
//! `queued`), started by priority then age within concurrency limits per
//! repository and per platform, each run on a blocking thread with a
//! [`Progress`] whose figures are streamed to the WebSocket and sampled into
//! the catalog. Pause, resume and stop act on the engine at chunk-run
//! boundaries; emergency stop cancels everything queued and running.
//!
//! * [`backup_job`]: one VM backup job, start to restore point and retention.
//! * [`copy_job`]: a restore point copied to a second repository (3-2-1).
//! * [`restore_job`]: one full VM restore onto a target platform.
//! * [`file_restore_job`]: selected files of a file-level restore session
//!   written into a host directory or a VM's disk.
//! * [`replication_job`]: replication flow actions (sync, test failover,
//!   failover, rollback, cleanup), their interval schedule and RPO alerts.
//! * [`telemetry`]: progress → WebSocket events, job samples, log lines.
//! * [`maintenance_job`]: a repository's verify, garbage collection and prune.
//! * [`scheduler`]: fires flows on their cron schedule, queues scheduled
//!   repository maintenance, and prunes the catalog's own history daily.
//!
//! After a restart no job stays running: [`Runner::recover`] marks the
//! interrupted ones failed with the reason (their snapshots were never
//! committed, so repository and catalog agree) and they can be run again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};
use shared_types::jobs::{BackupType, JobKind, JobStatus};
use shared_types::ws::ServerMessage;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::catalog::new_id;
use crate::db::entities::{jobs, repositories, vm_contexts};
use crate::engine::progress::Progress;

pub mod backup_job;
pub mod copy_job;
pub mod file_restore_job;
pub mod instant_job;
pub mod maintenance_job;
pub mod replication_job;
pub mod restore_job;
pub mod retention;
pub mod retry;
pub mod scheduler;
pub mod site_failover;
pub mod telemetry;

/// How many jobs run at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_repository: usize,
    pub per_platform: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Limits { total: cores.max(2), per_repository: 2, per_platform: 2 }
    }
}

/// A job being worked on.
struct Active {
    progress: Arc<Progress>,
    repository_id: Option<String>,
    platform_id: String,
}

struct Inner {
    db: DatabaseConnection,
    events: broadcast::Sender<ServerMessage>,
    wake: Notify,
    active: Mutex<HashMap<String, Active>>,
    limits: Limits,
    /// Read cap given to every job that starts (bytes per second, 0: none).
    read_limit_bps: std::sync::atomic::AtomicU64,
    shutdown: CancellationToken,
    /// Repository statistics: requests read them, jobs that change a repository refresh them.
    stats: Arc<crate::engine::stats::StatsCache>,
    /// Grace period of GC jobs, in seconds (see `engine::gc`).
    gc_grace_secs: std::sync::atomic::AtomicU64,
    /// What the daily catalog pruning keeps.
    pub(crate) housekeeping: Mutex<crate::catalog::housekeeping::Retention>,
    /// The server's data directory (repository keys live there).
    data_dir: std::sync::OnceLock<std::path::PathBuf>,
    /// Where jobs raise and resolve alerts.
    alerts: crate::alerts::AlertCenter,
}

/// Handle to the runner; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

/// Why a job could not be queued or controlled; the API maps these to 4xx.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("catalog: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// A backup to queue.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub vm_context_id: String,
    pub repository_id: String,
    pub flow_id: Option<String>,
    pub backup_type: BackupType,
    pub priority: i32,
    pub requested_by: Option<String>,
}

impl Runner {
    /// Starts the dispatch loop (and the scheduler); stops with `shutdown`.
    pub fn start(db: DatabaseConnection, events: broadcast::Sender<ServerMessage>, shutdown: CancellationToken, limits: Limits) -> Runner {
        let runner = Runner {
            inner: Arc::new(Inner {
                alerts: crate::alerts::AlertCenter::new(db.clone(), events.clone()),
                db,
                events,
                wake: Notify::new(),
                active: Mutex::default(),
                limits,
                read_limit_bps: Default::default(),
                shutdown,
                stats: Arc::default(),
                gc_grace_secs: std::sync::atomic::AtomicU64::new(maintenance_job::DEFAULT_GC_GRACE_SECS),
                housekeeping: Mutex::default(),
                data_dir: Default::default(),
            }),
        };
        let r = runner.clone();
        tokio::spawn(async move { r.dispatch_loop().await });
        let r = runner.clone();
        tokio::spawn(async move { scheduler::run(r).await });
        runner
    }

    /// Caps how fast jobs that start from now on read their sources.
    pub fn set_read_limit(&self, bytes_per_second: u64) {
        self.inner.read_limit_bps.store(bytes_per_second, std::sync::atomic::Ordering::Relaxed);
    }

    /// The read cap each job gets, in bytes per second (0: none).
    pub fn read_limit(&self) -> u64 {
        self.inner.read_limit_bps.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The repository statistics cache (shared with the API).
    pub fn repo_stats(&self) -> Arc<crate::engine::stats::StatsCache> {
        self.inner.stats.clone()
    }

    /// Sets the grace period GC jobs give recently written packs.
    pub fn set_gc_grace_secs(&self, secs: u64) {
        self.inner.gc_grace_secs.store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn gc_grace_secs(&self) -> u64 {
        self.inner.gc_grace_secs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets what the daily catalog pruning keeps.
    pub fn set_catalog_retention(&self, retention: crate::catalog::housekeeping::Retention) {
        if let Ok(mut r) = self.inner.housekeeping.lock() {
            *r = retention;
        }
    }

    pub fn catalog_retention(&self) -> crate::catalog::housekeeping::Retention {
        self.inner.housekeeping.lock().map(|r| *r).unwrap_or_default()
    }

    /// Tells the runner the server's data directory (once, at start).
    pub fn set_data_dir(&self, dir: std::path::PathBuf) {
        let _ = self.inner.data_dir.set(dir);
    }

    /// The server's data directory, where jobs find repository keys.
    pub fn data_dir(&self) -> Result<std::path::PathBuf, String> {
        self.inner.data_dir.get().cloned().ok_or_else(|| "the job runner was not told the data directory".to_string())
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The alert center jobs raise and resolve alerts through.
    pub fn alerts(&self) -> &crate::alerts::AlertCenter {
        &self.inner.alerts
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<ServerMessage> {
        &self.inner.events
    }

    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Marks jobs a previous run of the server left running or paused as
    /// failed (nothing of theirs was committed); returns how many.
    pub async fn recover(db: &DatabaseConnection) -> Result<u64, sea_orm::DbErr> {
        let now = Utc::now();
        let res = jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, sea_orm::sea_query::Expr::value(JobStatus::Failed.as_str()))
            .col_expr(
                jobs::Column::Error,
                sea_orm::sea_query::Expr::value("interrupted by a server restart; nothing of it was committed, run it again"),
            )
            .col_expr(jobs::Column::FinishedAt, sea_orm::sea_query::Expr::value(now))
            .col_expr(jobs::Column::UpdatedAt, sea_orm::sea_query::Expr::value(now))
            .filter(jobs::Column::Status.is_in([JobStatus::Running.as_str(), JobStatus::Paused.as_str()]))
            .exec(db)
            .await?;
        if res.rows_affected > 0 {
            tracing::warn!(jobs = res.rows_affected, "marked jobs interrupted by the restart as failed");
        }
        backup_job::settle_flows(db).await?;
        Ok(res.rows_affected)
    }

    /// Queues a backup of one VM; refused while that VM has one queued or running.
    pub async fn enqueue_backup(&self, req: BackupRequest) -> Result<jobs::Model, RunnerError> {
        let db = &self.inner.db;
        let vm = vm_contexts::Entity::find_by_id(req.vm_context_id.clone())
            .one(db)
            .await?
            .ok_or_else(|| RunnerError::NotFound(format!("managed VM '{}' not found", req.vm_context_id)))?;
        let busy = jobs::Entity::find()
            .filter(jobs::Column::VmContextId.eq(Some(vm.id.clone())))
            .filter(jobs::Column::Kind.eq(JobKind::Backup.as_str()))
            .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
            .one(db)
            .await?;
        if let Some(j) = busy {
            return Err(RunnerError::Conflict(format!(
                "VM '{}' is already being backed up (job {} is {}); wait for it or stop it first",
                vm.name, j.id, j.status
            )));
        }
        let repo = repositories::Entity::find_by_id(req.repository_id.clone())
            .one(db)
            .await?
            .ok_or_else(|| RunnerError::NotFound(format!("repository '{}' not found", req.repository_id)))?;
        if let Some(why) = crate::catalog::repositories::refusal(&repo) {
            return Err(RunnerError::Conflict(why));
        }
        let mut row = queued_row(JobKind::Backup, &vm.id, &req.repository_id, req.priority, req.requested_by.clone());
        row.flow_id = Set(req.flow_id.clone());
        row.backup_type = Set(Some(req.backup_type.as_str().to_owned()));
        let job = row.insert(db).await?;
        telemetry::job_changed(self, &job).await;
        if let Some(flow) = &req.flow_id {
            backup_job::set_flow_state(db, flow, shared_types::flow::FlowState::Queued, None).await?;
        }
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Queues a full VM restore; refused while another restore to the same
    /// target with the same VM name is queued or running.
    pub async fn enqueue_restore(&self, req: restore_job::RestoreJobRequest) -> Result<jobs::Model, RunnerError> {
        let db = &self.inner.db;
        let active = jobs::Entity::find()
            .filter(jobs::Column::Kind.eq(JobKind::Restore.as_str()))
            .filter(jobs::Column::TargetPlatformId.eq(req.target_platform_id.clone()))
            .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
            .all(db)
            .await?;
        for j in active {
            let same = j.options.as_deref().and_then(|o| serde_json::from_str::<restore_job::RestoreOptions>(o).ok()).is_some_and(|o| o.name == req.options.name);
            if same {
                return Err(RunnerError::Conflict(format!(
                    "a restore to '{}' on that platform is already {} (job {}); wait for it or stop it first",
                    req.options.name, j.status, j.id
                )));
            }
        }
        let options = serde_json::to_string(&req.options).map_err(|e| RunnerError::Conflict(format!("restore options: {e}")))?;
        let mut row = queued_row(JobKind::Restore, &req.vm_context_id, &req.repository_id, req.priority, req.requested_by.clone());
        row.backup_id = Set(Some(req.backup_id.clone()));
        row.target_platform_id = Set(Some(req.target_platform_id.clone()));
        row.options = Set(Some(options));
        let job = row.insert(db).await?;
        telemetry::job_changed(self, &job).await;
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Looks at the queue again (e.g. a repository left maintenance).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Pauses a running job at its next chunk-run boundary.
    pub async fn pause(&self, job_id: &str) -> Result<jobs::Model, RunnerError> {
        let job = self.job(job_id).await?;
        let progress = self.progress_of(job_id);
        match (JobStatus::parse(&job.status), progress) {
            (Some(JobStatus::Running), Some(p)) => {
                p.control.pause();
                self.set_status(job, JobStatus::Paused).await
            }
            (Some(s), _) => Err(RunnerError::Conflict(format!("job {job_id} is {}: only a running job can be paused", s.as_str()))),
            (None, _) => Err(RunnerError::Conflict(format!("job {job_id} has an unknown status"))),
        }
    }

    pub async fn resume(&self, job_id: &str) -> Result<jobs::Model, RunnerError> {
        let job = self.job(job_id).await?;
        match (JobStatus::parse(&job.status), self.progress_of(job_id)) {
            (Some(JobStatus::Paused), Some(p)) => {
                p.control.resume();
                self.set_status(job, JobStatus::Running).await
            }
            (Some(s), _) => Err(RunnerError::Conflict(format!("job {job_id} is {}: only a paused job can be resumed", s.as_str()))),
            (None, _) => Err(RunnerError::Conflict(format!("job {job_id} has an unknown status"))),
        }
    }

    /// Stops a job: a queued one is cancelled at once, a running or paused
    /// one at its next chunk-run boundary (no snapshot is committed).
    pub async fn stop(&self, job_id: &str, why: &str) -> Result<jobs::Model, RunnerError> {
        let job = self.job(job_id).await?;
        match JobStatus::parse(&job.status) {
            Some(JobStatus::Queued) => {
                // Dispatched a moment ago but not yet marked running: stop that run too.
                if let Some(p) = self.progress_of(job_id) {
                    p.control.cancel();
                }
                let job = backup_job::finish_row(&self.inner.db, job, JobStatus::Cancelled, Some(why.to_string()), None).await?;
                telemetry::job_changed(self, &job).await;
                if let Some(flow) = &job.flow_id {
                    backup_job::settle_flow(&self.inner.db, flow).await?;
                }
                replication_job::unqueued(self, &job).await?;
                file_restore_job::forget(&job.id);
                Ok(job)
            }
            Some(JobStatus::Running | JobStatus::Paused) => {
                if let Some(p) = self.progress_of(job_id) {
                    p.control.cancel();
                }
                Ok(job)
            }
            Some(s) => Err(RunnerError::Conflict(format!("job {job_id} already ended ({})", s.as_str()))),
            None => Err(RunnerError::Conflict(format!("job {job_id} has an unknown status"))),
        }
    }

    /// Pauses every running job; returns how many.
    pub async fn pause_all(&self) -> Result<usize, RunnerError> {
        let ids: Vec<String> = self.active_ids();
        let mut n = 0;
        for id in ids {
            if self.pause(&id).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Cancels every queued job and stops every running or paused one.
    pub async fn emergency_stop(&self, by: &str) -> Result<usize, RunnerError> {
        let why = format!("emergency stop by {by}");
        let queued = jobs::Entity::find().filter(jobs::Column::Status.eq(JobStatus::Queued.as_str())).all(&self.inner.db).await?;
        let mut n = 0;
        for j in queued {
            if self.stop(&j.id, &why).await.is_ok() {
                n += 1;
            }
        }
        for id in self.active_ids() {
            if self.stop(&id, &why).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn active_ids(&self) -> Vec<String> {
        self.inner.active.lock().map(|a| a.keys().cloned().collect()).unwrap_or_default()
    }

    fn progress_of(&self, job_id: &str) -> Option<Arc<Progress>> {
        self.inner.active.lock().ok()?.get(job_id).map(|a| a.progress.clone())
    }

    async fn job(&self, job_id: &str) -> Result<jobs::Model, RunnerError> {
        jobs::Entity::find_by_id(job_id.to_owned())
            .one(&self.inner.db)
            .await?
            .ok_or_else(|| RunnerError::NotFound(format!("job '{job_id}' not found")))
    }

    async fn set_status(&self, job: jobs::Model, status: JobStatus) -> Result<jobs::Model, RunnerError> {
        let flow = job.flow_id.clone();
        let mut a: jobs::ActiveModel = job.into();
        a.status = Set(status.as_str().to_owned());
        a.updated_at = Set(Utc::now());
        let job = a.update(&self.inner.db).await?;
        telemetry::job_changed(self, &job).await;
        if let Some(flow) = flow {
            let state = if status == JobStatus::Paused { shared_types::flow::FlowState::Paused } else { shared_types::flow::FlowState::Running };
            backup_job::set_flow_state(&self.inner.db, &flow, state, None).await?;
        }
        Ok(job)
    }

    /// Starts queued jobs while slots are free; wakes on enqueue, on a job's
    /// end, and every few seconds.
    async fn dispatch_loop(self) {
        if let Err(e) = Runner::recover(&self.inner.db).await {
            tracing::error!(error = %e, "marking interrupted jobs");
        }
        if let Err(e) = replication_job::recover(&self.inner.db, &self.inner.events).await {
            tracing::error!(error = %e, "settling replication flows after a restart");
        }
        loop {
            if let Err(e) = self.dispatch().await {
                tracing::error!(error = %e, "job dispatch");
            }
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => {
                    for id in self.active_ids() {
                        if let Some(p) = self.progress_of(&id) {
                            p.control.cancel();
                        }
                    }
                    return;
                }
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            }
        }
    }

    async fn dispatch(&self) -> Result<(), sea_orm::DbErr> {
        let queued = jobs::Entity::find()
            .filter(jobs::Column::Status.eq(JobStatus::Queued.as_str()))
            .order_by_desc(jobs::Column::Priority)
            .order_by_asc(jobs::Column::CreatedAt)
            .all(&self.inner.db)
            .await?;
        // Queued jobs of a repository in maintenance wait for its end.
        let waiting: std::collections::HashSet<String> = repositories::Entity::find()
            .filter(repositories::Column::MaintenanceReason.is_not_null())
            .all(&self.inner.db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        for job in queued {
            if job.repository_id.as_ref().is_some_and(|r| waiting.contains(r)) {
                continue;
            }
            let Some(vm_id) = job.vm_context_id.clone() else {
                self.dispatch_repository_job(job).await?;
                continue;
            };
            let Some(vm) = vm_contexts::Entity::find_by_id(vm_id).one(&self.inner.db).await? else {
                let job = backup_job::finish_row(&self.inner.db, job, JobStatus::Failed, Some("the managed VM was removed".into()), None).await?;
                telemetry::job_changed(self, &job).await;
                continue;
            };
            let progress = {
                let Ok(mut active) = self.inner.active.lock() else { return Ok(()) };
                if active.contains_key(&job.id) {
                    continue; // started, not yet marked running
                }
                let l = self.inner.limits;
                let same_repo = active.values().filter(|a| a.repository_id.is_some() && a.repository_id == job.repository_id).count();
                // A restore loads the platform it writes to.
                // A copy reads repositories, not the VM's platform.
                let platform_id = if job.kind == JobKind::Copy.as_str() {
                    format!("copy:{}", job.repository_id.as_deref().unwrap_or("-"))
                } else {
                    job.target_platform_id.clone().unwrap_or_else(|| vm.platform_id.clone())
                };
                let same_platform = active.values().filter(|a| a.platform_id == platform_id).count();
                if active.len() >= l.total || same_repo >= l.per_repository || same_platform >= l.per_platform {
                    continue;
                }
                let progress = Arc::new(Progress::new());
                progress.set_read_limit(self.inner.read_limit_bps.load(std::sync::atomic::Ordering::Relaxed));
                active.insert(
                    job.id.clone(),
                    Active { progress: progress.clone(), repository_id: job.repository_id.clone(), platform_id },
                );
                progress
            };
            let runner = self.clone();
            let span = tracing::info_span!("job", id = %job.id, vm = %vm.name);
            tokio::spawn(
                async move {
                    let id = job.id.clone();
                    if job.kind == JobKind::Restore.as_str() {
                        restore_job::run(&runner, job, vm, progress).await;
                    } else if job.kind == JobKind::FileRestore.as_str() {
                        file_restore_job::run(&runner, job, vm, progress).await;
                    } else if job.kind == JobKind::Replication.as_str() {
                        replication_job::run(&runner, job, vm, progress).await;
                    } else if job.kind == JobKind::InstantRecovery.as_str() {
                        instant_job::run(&runner, job, vm, progress).await;
                    } else if job.kind == JobKind::Copy.as_str() {
                        copy_job::run(&runner, job, vm, progress).await;
                    } else {
                        backup_job::run(&runner, job, vm, progress).await;
                    }
                    if let Ok(mut active) = runner.inner.active.lock() {
                        active.remove(&id);
                    }
                    runner.inner.wake.notify_one();
                }
                .instrument(span),
            );
        }
        Ok(())
    }

    /// Starts a queued verify, GC or prune job when its repository has a free slot.
    async fn dispatch_repository_job(&self, job: jobs::Model) -> Result<(), sea_orm::DbErr> {
        let repo = match &job.repository_id {
            Some(id) => repositories::Entity::find_by_id(id.clone()).one(&self.inner.db).await?,
            None => None,
        };
        let Some(repo) = repo else {
            let job = backup_job::finish_row(&self.inner.db, job, JobStatus::Failed, Some("the repository was removed".into()), None).await?;
            telemetry::job_changed(self, &job).await;
            return Ok(());
        };
        let progress = {
            let Ok(mut active) = self.inner.active.lock() else { return Ok(()) };
            if active.contains_key(&job.id) {
                return Ok(());
            }
            let l = self.inner.limits;
            let same_repo = active.values().filter(|a| a.repository_id.as_deref() == Some(repo.id.as_str())).count();
            if active.len() >= l.total || same_repo >= l.per_repository {
                return Ok(());
            }
            let progress = Arc::new(Progress::new());
            // Maintenance reads the repository, not a VM: no platform to spare.
            let platform_id = format!("repository:{}", repo.id);
            active.insert(job.id.clone(), Active { progress: progress.clone(), repository_id: Some(repo.id.clone()), platform_id });
            progress
        };
        let runner = self.clone();
        let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, repository = %repo.name);
        tokio::spawn(
            async move {
                let id = job.id.clone();
                maintenance_job::run(&runner, job, repo, progress).await;
                if let Ok(mut active) = runner.inner.active.lock() {
                    active.remove(&id);
                }
                runner.inner.wake.notify_one();
            }
            .instrument(span),
        );
        Ok(())
    }
}

/// A new queued job row of `kind`; callers set what is specific to it.
fn queued_row(kind: JobKind, vm_context_id: &str, repository_id: &str, priority: i32, requested_by: Option<String>) -> jobs::ActiveModel {
    let now = Utc::now();
    jobs::ActiveModel {
        id: Set(new_id()),
        flow_id: Set(None),
        vm_context_id: Set(Some(vm_context_id.to_owned())),
        repository_id: Set(Some(repository_id.to_owned())),
        kind: Set(kind.as_str().to_owned()),
        backup_type: Set(None),
        status: Set(JobStatus::Queued.as_str().to_owned()),
        priority: Set(priority),
        bytes_total: Set(0),
        bytes_read: Set(0),
        bytes_written: Set(0),
        error: Set(None),
        requested_by: Set(requested_by),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        updated_at: Set(now),
        backup_id: Set(None),
        target_platform_id: Set(None),
        options: Set(None),
        replication_id: Set(None),
        operation: Set(None),
    }
}
