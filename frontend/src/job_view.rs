//! What the cockpit shows of a job: its figures from the newest source (the
//! live link while it runs, the catalog once it is done) and its throughput
//! history as graph points.

use shared_types::jobs::{Job, JobSample, JobStatus};

use crate::format::format_bytes;
use crate::live::{LiveJob, JOB_WINDOW_S};

/// Figures of one job, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub status: JobStatus,
    /// Bytes gone through (read or skipped as holes).
    pub done: u64,
    pub total: u64,
    pub read: u64,
    pub written: u64,
    pub throughput_bps: Option<u64>,
    pub eta_seconds: Option<u64>,
    /// Server time of the live event the figures come from (ms since the epoch).
    pub at_ms: Option<f64>,
    /// `performance.now()` when that event arrived.
    pub received_perf_ms: Option<f64>,
}

impl Figures {
    pub fn percent(&self) -> f64 {
        if self.status == JobStatus::Completed {
            return 100.0;
        }
        Job::percent(self.done, self.total).unwrap_or(0.0)
    }
}

/// Live figures while the job is active and the link has them; the
/// catalog's afterwards.
pub fn figures(job: &Job, live: Option<&LiveJob>) -> Figures {
    match live {
        Some(l) if job.status.is_active() => Figures {
            status: if l.progress.paused { JobStatus::Paused } else { job.status },
            done: l.progress.bytes_done,
            total: l.progress.bytes_total,
            read: l.progress.bytes_read,
            written: l.progress.bytes_written,
            throughput_bps: (!l.progress.paused).then_some(l.progress.throughput_bps),
            eta_seconds: l.progress.eta_seconds,
            at_ms: Some(l.progress.at.timestamp_millis() as f64),
            received_perf_ms: Some(l.received_perf_ms),
        },
        _ => Figures {
            status: job.status,
            done: if job.status == JobStatus::Completed { job.bytes_total } else { job.bytes_read },
            total: job.bytes_total,
            read: job.bytes_read,
            written: job.bytes_written,
            throughput_bps: None,
            eta_seconds: None,
            at_ms: None,
            received_perf_ms: None,
        },
    }
}

/// Graph points `(seconds before end_ms, bytes per second)` within the window.
pub fn points(history: &[(f64, f64)], end_ms: f64) -> Vec<(f64, f64)> {
    history
        .iter()
        .map(|(t, v)| ((t - end_ms) / 1000.0, *v))
        .filter(|(x, _)| *x >= -JOB_WINDOW_S && *x <= 1.0)
        .map(|(x, v)| (x.min(0.0), v))
        .collect()
}

/// The catalog's samples as history.
pub fn sample_history(samples: &[JobSample]) -> Vec<(f64, f64)> {
    samples.iter().map(|s| (s.at.timestamp_millis() as f64, s.throughput_bps as f64)).collect()
}

/// `12.3 MiB/s`
pub fn rate(bps: f64) -> String {
    format!("{}/s", format_bytes(bps.max(0.0) as u64))
}

/// Status pill class of a job status.
pub fn status_class(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Running | JobStatus::Completed => "operational",
        JobStatus::Queued | JobStatus::Paused => "caution",
        JobStatus::Failed => "warning",
        JobStatus::Cancelled => "offline",
    }
}

/// Duration of a finished job in seconds.
pub fn duration_s(job: &Job) -> Option<f64> {
    let (s, f) = (job.started_at?, job.finished_at?);
    Some(((f - s).num_milliseconds() as f64 / 1000.0).max(0.001))
}
