//! `GET /api/v1/telemetry/health` and `GET /api/v1/telemetry/performance`:
//! the live state of the server and its jobs, and the throughput history
//! kept in the catalog (per-minute figures from the jobs' samples).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::{CatalogHealth, SystemHealth};

/// The server and its work, now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetryHealth {
    pub server_time: DateTime<Utc>,
    pub uptime_seconds: u64,
    pub catalog: CatalogHealth,
    /// The latest one-second sample; `None` in the first second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemHealth>,
    pub jobs: JobCounts,
}

/// Jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub paused: u64,
    /// Finished since midnight UTC.
    pub completed_today: u64,
    pub failed_today: u64,
    pub cancelled_today: u64,
}

/// Throughput history and today's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Performance {
    /// One point per minute of the window, oldest first; minutes without
    /// a running job are 0.
    pub per_minute: Vec<MinuteThroughput>,
    /// Bytes the jobs read and wrote since midnight UTC.
    pub bytes_read_today: u64,
    pub bytes_written_today: u64,
    /// The highest one-second throughput sampled in the window.
    pub peak_bps: u64,
    pub jobs: JobCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteThroughput {
    pub minute: DateTime<Utc>,
    /// Mean of the jobs' summed throughput over the samples of that minute.
    pub throughput_bps: u64,
}

/// The windows of `GET /api/v1/telemetry/history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HistoryWindow {
    /// The last 24 hours, in hours.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, in 6-hour steps.
    #[serde(rename = "7d")]
    Week,
}

impl HistoryWindow {
    pub const ALL: [HistoryWindow; 2] = [HistoryWindow::Day, HistoryWindow::Week];

    pub fn key(self) -> &'static str {
        match self {
            HistoryWindow::Day => "24h",
            HistoryWindow::Week => "7d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            HistoryWindow::Day => "Last 24 hours",
            HistoryWindow::Week => "Last 7 days",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            HistoryWindow::Day => 24 * 3600,
            HistoryWindow::Week => 7 * 24 * 3600,
        }
    }

    pub fn bucket_seconds(self) -> i64 {
        match self {
            HistoryWindow::Day => 3600,
            HistoryWindow::Week => 6 * 3600,
        }
    }
}

/// Job outcomes and the bytes they moved: of one time step, one repository
/// or one platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobTally {
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Bytes the jobs read and wrote: per time step from their samples (what
    /// moved in that step), per repository or platform from the finished
    /// jobs' totals.
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl JobTally {
    /// Failed among the jobs that ended completed or failed (a cancel is
    /// neither); `None` when no job ended so.
    pub fn error_rate(&self) -> Option<f64> {
        let ended = self.completed + self.failed;
        (ended > 0).then(|| self.failed as f64 / ended as f64)
    }
}

/// One time step of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryStep {
    pub start: DateTime<Utc>,
    /// Jobs that finished in this step, and the bytes all jobs moved in it.
    pub jobs: JobTally,
    /// Mean of the jobs' summed throughput over the sampled seconds with a
    /// job running; 0 without one.
    pub mean_bps: u64,
    /// The highest one-second throughput of the step.
    pub peak_bps: u64,
}

/// The jobs of one repository or platform over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryShare {
    pub id: String,
    pub name: String,
    pub jobs: JobTally,
}

/// `GET /api/v1/telemetry/history`: throughput, job counts and error rates
/// over a window, per time step, per repository and per platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetryHistory {
    pub window: HistoryWindow,
    pub bucket_seconds: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Oldest first, every step of the window (empty ones too).
    pub steps: Vec<HistoryStep>,
    /// The whole window.
    pub totals: JobTally,
    /// Jobs that wrote to or read from each repository, busiest first.
    pub repositories: Vec<HistoryShare>,
    /// Jobs per platform (the VM's platform; a restore's or replication's
    /// target platform), busiest first.
    pub platforms: Vec<HistoryShare>,
}
