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
