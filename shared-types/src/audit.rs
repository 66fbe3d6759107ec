//! The audit log: who did what to which object, when, and how it ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The signed-in user, or the username tried at a failed sign-in.
    pub actor: Option<String>,
    /// What was done, e.g. `user.create`, `auth.login`.
    pub action: String,
    /// What it was done to, e.g. a username or a path.
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub result: String,
    /// The HTTP status the action answered with.
    pub status: u16,
    pub address: Option<String>,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub total: u64,
}
