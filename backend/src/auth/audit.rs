//! Writing the audit log. Handlers describe what they did with an
//! [`AuditNote`] in their response; the middleware records every mutating
//! request with that note (or the method and path) and the outcome, but
//! for a successful one whose handler said it changed nothing
//! ([`NotAudited`]).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};

use crate::db::entities::audit_log;

/// What a handler did, attached to its response's extensions.
#[derive(Debug, Clone)]
pub struct AuditNote {
    pub action: &'static str,
    pub target: String,
    /// Overrides the signed-in user (a sign-in names the username tried).
    pub actor: Option<String>,
}

impl AuditNote {
    pub fn new(action: &'static str, target: impl Into<String>) -> Self {
        Self { action, target: target.into(), actor: None }
    }
}

/// Attached to a response by a handler whose mutating request changed
/// nothing (a check that found everything as the catalog had it): the
/// middleware writes no audit entry for it. Only successful answers carry
/// it; a refused or failed request is audited as ever.
#[derive(Debug, Clone, Copy)]
pub struct NotAudited;

pub fn result_word(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        401 | 403 | 429 => "denied",
        _ => "failed",
    }
}

pub struct Record<'a> {
    pub actor: Option<String>,
    pub action: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub address: Option<String>,
}

/// Writes one entry; a failure is logged, never raised (the action is done).
pub async fn record(db: &DatabaseConnection, r: Record<'_>) {
    let row = audit_log::ActiveModel {
        at: Set(Utc::now()),
        actor: Set(r.actor),
        action: Set(r.action.chars().take(64).collect()),
        target: Set(r.target.to_owned()),
        result: Set(result_word(r.status).to_owned()),
        status: Set(i32::from(r.status)),
        address: Set(r.address),
        ..Default::default()
    };
    if let Err(err) = row.insert(db).await {
        tracing::error!(error = %err, action = r.action, "unable to write the audit log");
    }
}
