//! Messages the server pushes on the `/api/v1/ws` WebSocket.
//!
//! Each WebSocket text frame carries one [`ServerMessage`] as JSON, tagged by
//! `type` (`{"type":"heartbeat", ...}`), so clients can ignore types they do
//! not know yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::SystemHealth;
use crate::jobs::{Job, JobLogLine};

/// A message from the server to a connected client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every connection.
    Hello {
        version: String,
        server_time: DateTime<Utc>,
        uptime_seconds: u64,
    },
    /// Sent every second: proves the link is alive and carries system health.
    Heartbeat {
        server_time: DateTime<Utc>,
        uptime_seconds: u64,
        health: SystemHealth,
    },
    /// A job was queued, started, paused, resumed or finished.
    JobUpdate { job: Job },
    /// A running job's figures, at least twice a second, from the bytes the
    /// engine really moved.
    JobProgress(JobProgress),
    /// A line of a job's log.
    JobLog { job_id: String, line: JobLogLine },
    /// Something an operator should look at (a failed job, ...): raised
    /// or raised again; `id` is the alert center's record.
    Alert(Alert),
    /// The bell's counts after an alert was raised, acknowledged or resolved.
    AlertCount(crate::alerts::AlertCount),
    /// How far a running discovery of a platform has got.
    DiscoveryProgress(DiscoveryProgress),
    /// A replication flow changed (state, lag, points, settings), or was
    /// created; `ReplicationRemoved` when deleted.
    ReplicationUpdate { flow: Box<crate::replication::ReplicationFlow> },
    ReplicationRemoved { id: String },
    /// A managed VM's power changed on its platform (started, paused,
    /// stopped: by Sendense, the host's own tools or the guest).
    VmPower { vm_id: String, power: crate::platform::PowerState },
}

/// A discovery's phase and count of VM definitions read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveryProgress {
    pub platform_id: String,
    pub platform_name: String,
    pub phase: crate::discovery::DiscoveryPhase,
    /// VM definitions read so far.
    pub done: u64,
    /// VM definitions found on the platform (0 while still connecting).
    pub total: u64,
    pub at: DateTime<Utc>,
}

/// Live figures of one running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    pub vm_name: String,
    pub at: DateTime<Utc>,
    /// Bytes the job will go through (read or skipped as holes).
    pub bytes_total: u64,
    /// Bytes gone through so far (read + skipped).
    pub bytes_done: u64,
    /// Bytes really read from the source.
    pub bytes_read: u64,
    /// Bytes written to the repository.
    pub bytes_written: u64,
    /// Over the last sample interval, bytes really read per second (skipped
    /// holes are not throughput).
    pub throughput_bps: u64,
    /// Seconds left at the recent pace of `bytes_done` (holes skipped count
    /// as progress); `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    pub paused: bool,
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: String,
    pub severity: AlertSeverity,
    pub title: String,
    pub message: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_by_type() {
        let msg = ServerMessage::Hello { version: "0.1.0".into(), server_time: Utc::now(), uptime_seconds: 3 };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["type"], "hello");
        assert_eq!(json["version"], "0.1.0");
        let back: ServerMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, msg);
    }
}
