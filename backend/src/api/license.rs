//! `GET /license/features`: the server's licence tier (`--license-tier`) and
//! which features it includes, by the rule in `shared_types::recovery`
//! that the server enforces and the cockpit shows.

use axum::extract::State;
use shared_types::recovery::LicenseFeatures;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(features))
}

/// The licence tier and every feature with whether it is enabled and, if
/// not, the tier it needs.
#[utoipa::path(get, path = "/license/features", tag = "license", responses((status = 200, body = LicenseFeatures)))]
async fn features(State(state): State<AppState>) -> ApiJson<LicenseFeatures> {
    ApiJson(LicenseFeatures::for_tier(state.license_tier))
}
