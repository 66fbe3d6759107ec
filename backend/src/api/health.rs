//! `GET /api/v1/health`: version, uptime and whether the catalog answers.
//! Open to everyone: load balancers and monitoring call it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use shared_types::health::{CatalogHealth, HealthResponse};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

/// 200 when the catalog answers, 503 (same body) when it does not.
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthResponse>) {
    let ping = state.db.ping().await;
    let catalog = CatalogHealth {
        ok: ping.is_ok(),
        backend: state.catalog_kind.as_str().to_owned(),
        error: ping.err().map(|e| {
            tracing::warn!(error = %e, "catalog health check failed");
            "the catalog database does not answer; see the server log".to_owned()
        }),
    };
    let status = if catalog.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = HealthResponse {
        version: crate::VERSION.to_owned(),
        uptime_seconds: state.uptime_seconds(),
        server_time: chrono::Utc::now(),
        catalog,
    };
    (status, Json(body))
}
