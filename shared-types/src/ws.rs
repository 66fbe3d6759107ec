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

/// The `type` of a message alone (its other fields skipped unread): the
/// first of two passes over a frame, see [`ServerMessage::deserialize_as`].
#[derive(Debug, Deserialize)]
pub struct MessageType {
    #[serde(rename = "type")]
    pub kind: String,
}

/// The fields of the struct-like variants, read on their own.
mod payload {
    use super::*;

    #[derive(Deserialize)]
    pub struct Hello {
        pub version: String,
        pub server_time: DateTime<Utc>,
        pub uptime_seconds: u64,
    }
    #[derive(Deserialize)]
    pub struct Heartbeat {
        pub server_time: DateTime<Utc>,
        pub uptime_seconds: u64,
        pub health: SystemHealth,
    }
    #[derive(Deserialize)]
    pub struct JobUpdate {
        pub job: Job,
    }
    #[derive(Deserialize)]
    pub struct JobLog {
        pub job_id: String,
        pub line: JobLogLine,
    }
    #[derive(Deserialize)]
    pub struct ReplicationUpdate {
        pub flow: Box<crate::replication::ReplicationFlow>,
    }
    #[derive(Deserialize)]
    pub struct ReplicationRemoved {
        pub id: String,
    }
    #[derive(Deserialize)]
    pub struct VmPower {
        pub vm_id: String,
        pub power: crate::platform::PowerState,
    }
}

impl ServerMessage {
    /// Every `type`, as the server writes it.
    pub const TYPES: &'static [&'static str] = &[
        "hello",
        "heartbeat",
        "job_update",
        "job_progress",
        "job_log",
        "alert",
        "alert_count",
        "discovery_progress",
        "replication_update",
        "replication_removed",
        "vm_power",
    ];

    /// Its `type` (a new variant fails to compile here until it also has
    /// its arm in [`ServerMessage::deserialize_as`] and its name in [`TYPES`](Self::TYPES)).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Hello { .. } => "hello",
            ServerMessage::Heartbeat { .. } => "heartbeat",
            ServerMessage::JobUpdate { .. } => "job_update",
            ServerMessage::JobProgress(_) => "job_progress",
            ServerMessage::JobLog { .. } => "job_log",
            ServerMessage::Alert(_) => "alert",
            ServerMessage::AlertCount(_) => "alert_count",
            ServerMessage::DiscoveryProgress(_) => "discovery_progress",
            ServerMessage::ReplicationUpdate { .. } => "replication_update",
            ServerMessage::ReplicationRemoved { .. } => "replication_removed",
            ServerMessage::VmPower { .. } => "vm_power",
        }
    }

    /// Reads the message of type `kind` (from [`MessageType`]) straight from
    /// `d`, the whole frame again (its `type` field ignored): the same JSON
    /// as the derived `Deserialize`, without serde's buffering of every
    /// payload in a `Content` tree first (for internally tagged enums), which
    /// costs the cockpit's wasm the buffering code and a copy per message.
    pub fn deserialize_as<'de, D: serde::Deserializer<'de>>(kind: &str, d: D) -> Result<ServerMessage, D::Error> {
        use payload as p;
        Ok(match kind {
            "hello" => {
                let m = p::Hello::deserialize(d)?;
                ServerMessage::Hello { version: m.version, server_time: m.server_time, uptime_seconds: m.uptime_seconds }
            }
            "heartbeat" => {
                let m = p::Heartbeat::deserialize(d)?;
                ServerMessage::Heartbeat { server_time: m.server_time, uptime_seconds: m.uptime_seconds, health: m.health }
            }
            "job_update" => ServerMessage::JobUpdate { job: p::JobUpdate::deserialize(d)?.job },
            "job_progress" => ServerMessage::JobProgress(JobProgress::deserialize(d)?),
            "job_log" => {
                let m = p::JobLog::deserialize(d)?;
                ServerMessage::JobLog { job_id: m.job_id, line: m.line }
            }
            "alert" => ServerMessage::Alert(Alert::deserialize(d)?),
            "alert_count" => ServerMessage::AlertCount(crate::alerts::AlertCount::deserialize(d)?),
            "discovery_progress" => ServerMessage::DiscoveryProgress(DiscoveryProgress::deserialize(d)?),
            "replication_update" => ServerMessage::ReplicationUpdate { flow: p::ReplicationUpdate::deserialize(d)?.flow },
            "replication_removed" => ServerMessage::ReplicationRemoved { id: p::ReplicationRemoved::deserialize(d)?.id },
            "vm_power" => {
                let m = p::VmPower::deserialize(d)?;
                ServerMessage::VmPower { vm_id: m.vm_id, power: m.power }
            }
            other => return Err(serde::de::Error::unknown_variant(other, Self::TYPES)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-pass read of a frame, as the cockpit does it.
    fn two_pass(text: &str) -> serde_json::Result<ServerMessage> {
        let kind = serde_json::from_str::<MessageType>(text)?.kind;
        let mut de = serde_json::Deserializer::from_str(text);
        let msg = ServerMessage::deserialize_as(&kind, &mut de)?;
        de.end()?;
        Ok(msg)
    }

    #[test]
    fn the_two_pass_read_gives_what_the_derive_gives_for_every_type() {
        let at = Utc::now();
        let health = SystemHealth {
            cpu_percent: 12.5,
            cpu_cores: 2,
            memory_total_bytes: 2,
            memory_used_bytes: 1,
            process_rss_bytes: 5,
            data_dir_free_bytes: 3,
            data_dir_total_bytes: 4,
        };
        let progress = JobProgress {
            job_id: "j1".into(),
            flow_id: None,
            vm_name: "web-01".into(),
            at,
            bytes_total: 10,
            bytes_done: 5,
            bytes_read: 4,
            bytes_written: 3,
            throughput_bps: 2,
            eta_seconds: Some(9),
            paused: false,
        };
        let messages = vec![
            ServerMessage::Hello { version: "0.1.0".into(), server_time: at, uptime_seconds: 3 },
            ServerMessage::Heartbeat { server_time: at, uptime_seconds: 4, health },
            ServerMessage::JobProgress(progress),
            ServerMessage::Alert(Alert { id: "a1".into(), severity: AlertSeverity::Critical, title: "t".into(), message: "m".into(), at, job_id: Some("j".into()) }),
            ServerMessage::ReplicationRemoved { id: "r1".into() },
            ServerMessage::VmPower { vm_id: "vm".into(), power: crate::platform::PowerState::Running },
        ];
        let mut seen = std::collections::BTreeSet::new();
        for msg in messages {
            let text = serde_json::to_string(&msg).unwrap();
            let kind = serde_json::from_str::<MessageType>(&text).unwrap().kind;
            assert_eq!(kind, msg.kind());
            assert!(ServerMessage::TYPES.contains(&msg.kind()));
            seen.insert(kind);
            assert_eq!(two_pass(&text).unwrap(), msg, "{text}");
            assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), msg);
        }
        // The type can come anywhere in the object; unknown types and trailing bytes are refused.
        assert_eq!(two_pass(r#"{"id":"r2","type":"replication_removed"}"#).unwrap(), ServerMessage::ReplicationRemoved { id: "r2".into() });
        assert!(two_pass(r#"{"type":"no_such_type"}"#).is_err());
        assert!(two_pass(r#"{"type":"replication_removed","id":"r"} x"#).is_err());
        assert!(two_pass(r#"{"type":"replication_removed"}"#).is_err());
        assert_eq!(seen.len(), 6);
        // Every variant's type is in TYPES (the derive's names).
        for kind in ServerMessage::TYPES {
            let refused = two_pass(&format!(r#"{{"type":"{kind}"}}"#)).unwrap_err().to_string();
            assert!(!refused.contains("unknown variant"), "{kind}: {refused}");
        }
    }

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
