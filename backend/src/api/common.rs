//! Small helpers the resource modules share: audit notes on responses,
//! paging bounds, id lists in request bodies, unique-key races.

use axum::response::{IntoResponse, Response};
use sea_orm::{DbErr, SqlErr};
use shared_types::{PAGE_DEFAULT, PAGE_MAX};

use super::ApiError;
use crate::auth::audit::{AuditNote, NotAudited};

/// A response carrying what the handler did, for the audit log.
pub fn noted(response: impl IntoResponse, note: AuditNote) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(note);
    response
}

/// `response` of a mutating request that changed nothing: the audit log
/// gets no entry for it ([`NotAudited`]).
pub fn not_audited(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(NotAudited);
    response
}

/// `(limit, offset)` from a query, checked.
pub fn page(limit: Option<u64>, offset: Option<u64>) -> Result<(u64, u64), ApiError> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("Ask for 1 to {PAGE_MAX} items per page.")));
    }
    let offset = offset.unwrap_or(0);
    if offset > i64::MAX as u64 {
        return Err(ApiError::invalid_field("offset", "The offset is too large."));
    }
    Ok((limit, offset))
}

/// A list of ids from a request body: not empty, at most `max`, each a
/// plausible id; duplicates dropped, order kept.
pub fn id_list(field: &str, ids: &[String], max: usize) -> Result<Vec<String>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::invalid_field(field, "Give at least one id."));
    }
    if ids.len() > max {
        return Err(ApiError::invalid_field(field, format!("Give at most {max} ids per request.")));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        check_id(field, id)?;
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// An id given in a body or a query: 1 to 255 visible characters.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(field, format!("'{}' is not an id.", id.chars().take(64).collect::<String>())));
    }
    Ok(())
}

/// Whether a write failed on a unique key (a concurrent request won a race).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Whether a write failed on a foreign key (a referenced row vanished or a
/// referencing row appeared meanwhile).
pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
}

/// The short list of names a message quotes: `'a', 'b' and 3 more`.
pub fn quote_list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names.iter().take(SHOWN).map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}
