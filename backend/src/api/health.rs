//! `GET /api/v1/health`: version, uptime and whether the catalog answers.
//! Open to everyone: load balancers and monitoring call it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use shared_types::health::{CatalogHealth, HealthResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// Version, uptime and catalog state: 200 when the catalog answers, 503
/// (same body) when it does not. No sign-in needed.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses(
    (status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
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
