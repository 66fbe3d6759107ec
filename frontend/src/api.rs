//! Typed calls to the Sendense REST API, with the shared types.

use gloo_net::http::Request;
use shared_types::health::HealthResponse;

/// `GET /api/v1/health`. A 503 (catalog down) still carries a health body.
pub async fn health() -> Result<HealthResponse, String> {
    let resp = Request::get("/api/v1/health").send().await.map_err(|e| e.to_string())?;
    resp.json::<HealthResponse>().await.map_err(|e| e.to_string())
}
