//! Messages the server pushes on the `/api/v1/ws` WebSocket.
//!
//! Each WebSocket text frame carries one [`ServerMessage`] as JSON, tagged by
//! `type` (`{"type":"heartbeat", ...}`), so clients can ignore types they do
//! not know yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::SystemHealth;

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
