//! `GET /api/v1/audit` (admin): the audit log, newest first.

use axum::extract::State;
use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder, QuerySelect};
use serde::Deserialize;
use shared_types::audit::{AuditEntry, AuditPage};
use shared_types::error::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery};
use crate::db::entities::audit_log;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct PageQuery {
    /// Entries per page, 1 to 500 (default 100).
    limit: Option<u64>,
    /// Entries to skip (default 0).
    offset: Option<u64>,
}

#[utoipa::path(get, path = "/audit", tag = "audit", params(PageQuery), responses(
    (status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_audit(State(state): State<AppState>, ApiQuery(q): ApiQuery<PageQuery>) -> Result<ApiJson<AuditPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "Ask for 1 to 500 entries."));
    }
    let total = audit_log::Entity::find().count(&state.db).await?;
    let rows = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .offset(q.offset.unwrap_or(0))
        .limit(limit)
        .all(&state.db)
        .await?;
    Ok(ApiJson(AuditPage { entries: rows.into_iter().map(AuditEntry::from).collect(), total }))
}
