//! `/api/v1/notification-targets`: webhooks and SMTP mailboxes alerts are
//! sent to, by minimum severity; `POST .../{id}/test` sends a test now and
//! answers with the outcome. Secrets are written, sealed in the catalog,
//! and never read back. Reading needs a viewer, changes an admin (a target
//! makes the server connect to an address of the caller's choosing).

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use shared_types::alerts::{NotificationTarget, TargetRequest, TestResult, WebhookPayload};
use shared_types::error::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, is_unique_violation, noted};
use super::{ApiError, ApiJson};
use crate::alerts::delivery::{self, EVENT_TEST};
use crate::alerts::secrets;
use crate::alerts::targets::{config_json, to_api};
use crate::auth::audit::AuditNote;
use crate::catalog::new_id;
use crate::db::entities::{notification_deliveries, notification_targets};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_targets, create_target))
        .routes(routes!(get_target, update_target, delete_target))
        .routes(routes!(test_target))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("target_not_found", format!("No notification target has the id '{id}'. GET /api/v1/notification-targets lists them."))
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict("target_exists", format!("A notification target is already named '{name}': choose another name."))
}

async fn find(state: &AppState, id: &str) -> Result<notification_targets::Model, ApiError> {
    check_id("id", id)?;
    notification_targets::Entity::find_by_id(id.to_owned()).one(&state.db).await?.ok_or_else(|| not_found(id))
}

fn seal(state: &AppState, id: &str, secret: &str) -> Result<String, ApiError> {
    secrets::seal(&state.data_dir, id, secret).map_err(|e| {
        tracing::error!(error = %e, "sealing a notification target's secret");
        ApiError::unavailable("secret_store_unavailable", format!("The secret could not be stored: {e}"))
    })
}

/// Notification targets by name, with their latest delivery.
#[utoipa::path(get, path = "/notification-targets", tag = "alerts", responses((status = 200, body = Vec<NotificationTarget>)))]
async fn list_targets(State(state): State<AppState>) -> Result<ApiJson<Vec<NotificationTarget>>, ApiError> {
    let rows = notification_targets::Entity::find().order_by_asc(notification_targets::Column::Name).all(&state.db).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(to_api(&state.db, row).await?);
    }
    Ok(ApiJson(out))
}

/// One notification target.
#[utoipa::path(get, path = "/notification-targets/{id}", tag = "alerts", params(("id" = String, Path, description = "Target id")),
    responses((status = 200, body = NotificationTarget), (status = 404, body = ErrorBody)))]
async fn get_target(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<NotificationTarget>, ApiError> {
    let row = find(&state, &id).await?;
    Ok(ApiJson(to_api(&state.db, row).await?))
}

/// Adds a webhook (`webhook.url`, `secret`: the HMAC signing secret) or an
/// SMTP mailbox (`smtp`: host, port, security, username, from, to, ca_pem;
/// `secret`: the password). 409: the name is taken; 422: what to change.
#[utoipa::path(post, path = "/notification-targets", tag = "alerts", request_body = TargetRequest, responses(
    (status = 201, body = NotificationTarget), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_target(State(state): State<AppState>, ApiJson(req): ApiJson<TargetRequest>) -> Result<Response, ApiError> {
    req.validate(false).map_err(|(field, m)| ApiError::invalid_value(&field, m))?;
    let id = new_id();
    let secret = match req.secret.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(seal(&state, &id, s)?),
        None => None,
    };
    let now = Utc::now();
    let row = notification_targets::ActiveModel {
        id: Set(id),
        name: Set(req.name.clone()),
        kind: Set(req.kind.as_str().to_owned()),
        enabled: Set(req.enabled),
        min_severity: Set(req.min_severity.as_str().to_owned()),
        config: Set(config_json(req.kind, req.webhook.as_ref(), req.smtp.as_ref())),
        secret: Set(secret),
        last_at: Set(None),
        last_ok: Set(None),
        last_error: Set(None),
        last_event: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await
    .map_err(|e| if is_unique_violation(&e) { name_taken(&req.name) } else { e.into() })?;
    let text = format!("{} ({})", row.name, row.kind);
    Ok(noted((StatusCode::CREATED, ApiJson(to_api(&state.db, row).await?)), AuditNote::new("notification_target.create", text)))
}

/// Replaces a target's settings; `secret` left out keeps the stored one,
/// `""` removes it. The kind cannot change (422): add a new target.
#[utoipa::path(put, path = "/notification-targets/{id}", tag = "alerts", params(("id" = String, Path, description = "Target id")),
    request_body = TargetRequest, responses(
    (status = 200, body = NotificationTarget), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_target(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<TargetRequest>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    if row.kind != req.kind.as_str() {
        return Err(ApiError::invalid_value("kind", format!("This target is a {}; the kind cannot change: add a new target instead.", row.kind)));
    }
    req.validate(row.secret.is_some()).map_err(|(field, m)| ApiError::invalid_value(&field, m))?;
    let secret = match req.secret.as_deref() {
        None => row.secret.clone(),
        Some("") => None,
        Some(s) => Some(seal(&state, &row.id, s)?),
    };
    let mut a: notification_targets::ActiveModel = row.into();
    a.name = Set(req.name.clone());
    a.enabled = Set(req.enabled);
    a.min_severity = Set(req.min_severity.as_str().to_owned());
    a.config = Set(config_json(req.kind, req.webhook.as_ref(), req.smtp.as_ref()));
    a.secret = Set(secret);
    a.updated_at = Set(Utc::now());
    let row = a.update(&state.db).await.map_err(|e| if is_unique_violation(&e) { name_taken(&req.name) } else { e.into() })?;
    let text = format!("{} ({})", row.name, row.kind);
    Ok(noted(ApiJson(to_api(&state.db, row).await?), AuditNote::new("notification_target.update", text)))
}

/// Removes a target and its queued deliveries.
#[utoipa::path(delete, path = "/notification-targets/{id}", tag = "alerts", params(("id" = String, Path, description = "Target id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_target(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    notification_deliveries::Entity::delete_many().filter(notification_deliveries::Column::TargetId.eq(row.id.clone())).exec(&state.db).await?;
    notification_targets::Entity::delete_by_id(row.id.clone()).exec(&state.db).await?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("notification_target.delete", format!("{} ({})", row.name, row.kind))))
}

/// Sends a test notification now (one attempt, not retried) and answers
/// with the outcome, which the target also keeps as its latest delivery.
#[utoipa::path(post, path = "/notification-targets/{id}/test", tag = "alerts", params(("id" = String, Path, description = "Target id")),
    responses((status = 200, body = TestResult), (status = 404, body = ErrorBody)))]
async fn test_target(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let payload = WebhookPayload { event: EVENT_TEST.to_owned(), delivery_id: new_id(), sent_at: Utc::now(), alert: None };
    let started = Instant::now();
    let outcome = delivery::send(&state.data_dir, &row, &payload).await;
    let millis = started.elapsed().as_millis() as u64;
    delivery::record_outcome(&state.alerts, &row.id, EVENT_TEST, &outcome).await?;
    let text = format!("{} ({}): {}", row.name, row.kind, if outcome.is_ok() { "delivered" } else { "failed" });
    let result = TestResult { delivered: outcome.is_ok(), error: outcome.err(), millis };
    Ok(noted(ApiJson(result), AuditNote::new("notification_target.test", text)))
}
