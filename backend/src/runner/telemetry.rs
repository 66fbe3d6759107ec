//! What a job tells the world: state changes, live figures twice a second
//! (from the engine's [`Progress`] counters, nothing estimated but the ETA),
//! throughput samples and byte counts kept in the catalog every second, log
//! lines, and alerts (through the alert center, `crate::alerts`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use shared_types::jobs::{JobLogLine, LogLevel};
use shared_types::alerts::AlertSourceKind;
use shared_types::ws::{Alert, AlertSeverity, JobProgress, ServerMessage};

use super::Runner;
use crate::alerts::{keys, Raise};
use crate::catalog::{convert, new_id, to_i64};
use crate::db::entities::{job_logs, job_samples, jobs};
use crate::engine::progress::Progress;

/// How often live figures go out.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// Pushes the job as it now is.
pub async fn job_changed(runner: &Runner, job: &jobs::Model) {
    crate::telemetry::metrics::METRICS.job_changed(job);
    match convert::jobs(runner.db(), vec![job.clone()]).await {
        Ok(mut v) => {
            if let Some(job) = v.pop() {
                let _ = runner.events().send(ServerMessage::JobUpdate { job });
            }
        }
        Err(e) => tracing::warn!(error = %e, "describing a job for the WebSocket"),
    }
}

/// Appends a line to the job's log (catalog and WebSocket).
pub async fn log(runner: &Runner, job_id: &str, level: LogLevel, message: String) {
    let at = Utc::now();
    let row = job_logs::ActiveModel {
        id: sea_orm::NotSet,
        job_id: Set(job_id.to_owned()),
        at: Set(at),
        level: Set(level.as_str().to_owned()),
        message: Set(message.clone()),
    };
    if let Err(e) = row.insert(runner.db()).await {
        tracing::warn!(error = %e, "storing a job log line");
    }
    let _ = runner.events().send(ServerMessage::JobLog { job_id: job_id.to_owned(), line: JobLogLine { at, level, message } });
}

/// A sender for a blocking job step's log lines (info level), written in
/// order by a task that ends once every sender is dropped; await it then.
pub fn spawn_logger(runner: Runner, job_id: String) -> (tokio::sync::mpsc::UnboundedSender<String>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            log(&runner, &job_id, LogLevel::Info, line).await;
        }
    });
    (tx, task)
}

/// Raises (or folds into) the alert of a failed job: critical, about the
/// job's flow, replication, VM or repository (see `alerts::keys`).
pub async fn alert(runner: &Runner, job: &jobs::Model, vm: &str, message: &str) {
    let what = match shared_types::jobs::JobKind::parse(&job.kind) {
        Some(shared_types::jobs::JobKind::Restore) => "Restore",
        Some(shared_types::jobs::JobKind::FileRestore) => "File restore",
        Some(shared_types::jobs::JobKind::InstantRecovery) => "Instant recovery",
        _ => "Backup",
    };
    job_alert(runner, job, AlertSeverity::Critical, &format!("{what} of {vm} failed"), message).await;
}

/// Raises the failure alert of `job` with this title.
pub async fn job_alert(runner: &Runner, job: &jobs::Model, severity: AlertSeverity, title: &str, message: &str) {
    let (source_kind, source_id) = keys::job_source(job);
    raise(runner, Raise {
        key: keys::job_failed(job),
        severity,
        source_kind,
        source_id,
        title: title.to_owned(),
        message: message.to_owned(),
        job_id: Some(job.id.clone()),
    })
    .await;
}

/// A job completed: its source's failure alert of the same kind (and a
/// flow's skipped-schedule alert) is resolved.
pub async fn job_succeeded(runner: &Runner, job: &jobs::Model) {
    let mut keys = vec![keys::job_failed(job)];
    if let Some(f) = &job.flow_id {
        keys.push(keys::schedule_skipped(f));
    }
    let reason = format!("job {} ({}) completed", job.id, job.kind);
    if let Err(e) = runner.alerts().resolve(&keys, &reason).await {
        tracing::warn!(error = %e, "resolving the alerts of a job that completed");
    }
}

/// Raises an alert through the alert center (logged when the catalog
/// cannot take it: a failing alert must not fail the work that raised it).
pub async fn raise(runner: &Runner, r: Raise) {
    if let Err(e) = runner.alerts().raise(r.clone()).await {
        tracing::error!(error = %e, title = %r.title, "storing an alert; broadcasting it only");
        let _ = runner.events().send(ServerMessage::Alert(Alert {
            id: new_id(),
            severity: r.severity,
            title: r.title,
            message: r.message,
            at: Utc::now(),
            job_id: r.job_id,
        }));
    }
}

/// Raises an alert about a repository (damaged restore points), folded by
/// `key`, tied to the job that found it.
pub async fn repository_alert(runner: &Runner, job: &jobs::Model, repository_id: &str, key: String, severity: AlertSeverity, title: &str, message: &str) {
    raise(runner, Raise {
        key,
        severity,
        source_kind: AlertSourceKind::Repository,
        source_id: Some(repository_id.to_owned()),
        title: title.to_owned(),
        message: message.to_owned(),
        job_id: Some(job.id.clone()),
    })
    .await;
}

/// Raises a warning about a protection group not tied to one job (a site
/// failover's later stage that could not start a flow).
pub async fn group_warning(runner: &Runner, group_id: &str, title: &str, message: &str) {
    raise(runner, Raise {
        key: keys::site_failover_stage(group_id),
        severity: AlertSeverity::Warning,
        source_kind: AlertSourceKind::Group,
        source_id: Some(group_id.to_owned()),
        title: title.to_owned(),
        message: message.to_owned(),
        job_id: None,
    })
    .await;
}

/// Raises an alert for a scheduled run that could not start (e.g. its
/// repository is in maintenance); the flow's next good run resolves it.
pub async fn schedule_alert(runner: &Runner, flow_id: &str, flow: &str, message: &str) {
    raise(runner, Raise {
        key: keys::schedule_skipped(flow_id),
        severity: AlertSeverity::Warning,
        source_kind: AlertSourceKind::Flow,
        source_id: Some(flow_id.to_owned()),
        title: format!("Scheduled run of flow {flow} skipped"),
        message: message.to_owned(),
        job_id: None,
    })
    .await;
}

/// Streams `progress` until aborted: a [`JobProgress`] every
/// [`PROGRESS_INTERVAL`], a catalog sample and byte counts every second.
pub fn spawn_sampler(runner: Runner, job: jobs::Model, vm_name: String, progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // (when, bytes done, bytes read) at the previous tick.
        let mut last = (Instant::now(), 0u64, 0u64);
        let mut tick = 0u64;
        let mut interval = tokio::time::interval(PROGRESS_INTERVAL);
        loop {
            interval.tick().await;
            tick += 1;
            let s = progress.snapshot();
            let done = s.bytes_read + s.bytes_skipped;
            let now = Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64();
            let per_second = |now: u64, before: u64| if dt > 0.0 { now.saturating_sub(before) as f64 / dt } else { 0.0 };
            // Throughput is what was really read; skipped holes only speed up progress.
            let rate = per_second(s.bytes_read, last.2);
            let progress_rate = per_second(done, last.1);
            last = (now, done, s.bytes_read);
            let remaining = s.bytes_total.saturating_sub(done);
            let eta = (progress_rate > 0.0).then(|| (remaining as f64 / progress_rate).ceil() as u64);
            let paused = progress.control.is_paused();
            let _ = runner.events().send(ServerMessage::JobProgress(JobProgress {
                job_id: job.id.clone(),
                flow_id: job.flow_id.clone(),
                vm_name: vm_name.clone(),
                at: Utc::now(),
                bytes_total: s.bytes_total,
                bytes_done: done,
                bytes_read: s.bytes_read,
                bytes_written: s.bytes_written,
                throughput_bps: rate as u64,
                eta_seconds: if paused { None } else { eta },
                paused,
            }));
            if tick % 2 == 0 {
                let sample = job_samples::ActiveModel {
                    id: sea_orm::NotSet,
                    job_id: Set(job.id.clone()),
                    at: Set(Utc::now()),
                    bytes_read: Set(to_i64(s.bytes_read)),
                    bytes_written: Set(to_i64(s.bytes_written)),
                    throughput_bps: Set(rate as i64),
                };
                if let Err(e) = sample.insert(runner.db()).await {
                    tracing::warn!(error = %e, "storing a job sample");
                }
                let update = jobs::Entity::update_many()
                    .col_expr(jobs::Column::BytesTotal, sea_orm::sea_query::Expr::value(to_i64(s.bytes_total)))
                    .col_expr(jobs::Column::BytesRead, sea_orm::sea_query::Expr::value(to_i64(s.bytes_read)))
                    .col_expr(jobs::Column::BytesWritten, sea_orm::sea_query::Expr::value(to_i64(s.bytes_written)))
                    .filter(jobs::Column::Id.eq(job.id.clone()))
                    .exec(runner.db())
                    .await;
                if let Err(e) = update {
                    tracing::warn!(error = %e, "updating a job's byte counts");
                }
            }
        }
    })
}
