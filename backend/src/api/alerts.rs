//! `/api/v1/alerts`: the alert center's history with filters, the bell's
//! count, and acknowledgement (by the signed-in user; operators).

use axum::extract::{Path, State};
use axum::response::Response;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use serde::Deserialize;
use shared_types::alerts::{AlertCount, AlertPage, AlertRecord, AlertSeverity, AlertSourceKind, AlertState};
use shared_types::error::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, noted, page};
use super::{ApiError, ApiJson, ApiQuery};
use crate::alerts::center::{to_api, AckError};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::db::entities::alerts;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_alerts)).routes(routes!(alert_count)).routes(routes!(get_alert)).routes(routes!(acknowledge))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AlertQuery {
    /// `open`, `acknowledged` or `resolved`.
    state: Option<AlertState>,
    /// Only alerts of exactly this severity: `info`, `warning`, `critical`.
    severity: Option<AlertSeverity>,
    /// `flow`, `replication`, `vm`, `repository`, `group` or `system`.
    source_kind: Option<AlertSourceKind>,
    /// Only alerts about this object (its id).
    source_id: Option<String>,
    /// Alerts per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// Alerts to skip (default 0).
    offset: Option<u64>,
}

fn filtered(q: &AlertQuery) -> Select<alerts::Entity> {
    let mut find = alerts::Entity::find();
    match q.state {
        Some(AlertState::Open) => find = find.filter(alerts::Column::ResolvedAt.is_null()).filter(alerts::Column::AcknowledgedAt.is_null()),
        Some(AlertState::Acknowledged) => find = find.filter(alerts::Column::ResolvedAt.is_null()).filter(alerts::Column::AcknowledgedAt.is_not_null()),
        Some(AlertState::Resolved) => find = find.filter(alerts::Column::ResolvedAt.is_not_null()),
        None => {}
    }
    if let Some(s) = q.severity {
        find = find.filter(alerts::Column::Severity.eq(s.as_str()));
    }
    if let Some(k) = q.source_kind {
        find = find.filter(alerts::Column::SourceKind.eq(k.as_str()));
    }
    if let Some(id) = &q.source_id {
        find = find.filter(alerts::Column::SourceId.eq(id.clone()));
    }
    find
}

/// Alerts, most recently seen first, filtered by state, severity and source.
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertQuery), responses(
    (status = 200, body = AlertPage), (status = 400, body = ErrorBody)))]
async fn list_alerts(State(state): State<AppState>, ApiQuery(q): ApiQuery<AlertQuery>) -> Result<ApiJson<AlertPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(id) = &q.source_id {
        check_id("source_id", id)?;
    }
    let total = filtered(&q).count(&state.db).await?;
    let rows = filtered(&q)
        .order_by_desc(alerts::Column::LastSeen)
        .order_by_asc(alerts::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(&state.db)
        .await?;
    Ok(ApiJson(AlertPage { alerts: rows.into_iter().map(to_api).collect(), total }))
}

/// Open alerts nobody acknowledged (the bell), and how many are critical.
#[utoipa::path(get, path = "/alerts/count", tag = "alerts", responses((status = 200, body = AlertCount)))]
async fn alert_count(State(state): State<AppState>) -> Result<ApiJson<AlertCount>, ApiError> {
    Ok(ApiJson(state.alerts.count().await?))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("alert_not_found", format!("No alert has the id '{id}'. GET /api/v1/alerts lists them."))
}

/// One alert.
#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts", params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = AlertRecord), (status = 404, body = ErrorBody)))]
async fn get_alert(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<AlertRecord>, ApiError> {
    check_id("id", &id)?;
    let row = alerts::Entity::find_by_id(id.clone()).one(&state.db).await?.ok_or_else(|| not_found(&id))?;
    Ok(ApiJson(to_api(row)))
}

/// Records that the signed-in user took the alert on. The first
/// acknowledgement stands (who and when); acknowledging again changes
/// nothing. A resolved alert can still be acknowledged for the record.
#[utoipa::path(post, path = "/alerts/{id}/acknowledge", tag = "alerts", params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = AlertRecord), (status = 404, body = ErrorBody)))]
async fn acknowledge(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    check_id("id", &id)?;
    let record = state.alerts.acknowledge(&id, &me.username).await.map_err(|e| match e {
        AckError::NotFound(id) => not_found(&id),
        AckError::Db(e) => e.into(),
    })?;
    let text = format!("{} ({})", record.title, record.id);
    Ok(noted(ApiJson(record), AuditNote::new("alert.acknowledge", text)))
}
