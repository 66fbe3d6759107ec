//! The HTTP API under `/api/v1`: one file per resource, each with its
//! `router()`, merged here with their OpenAPI descriptions. Every route sits
//! behind the authentication layer (`crate::auth`).

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod common;
pub mod discovery;
pub mod error;
pub mod flows;
pub mod groups;
pub mod health;
pub mod instant;
pub mod job_control;
pub mod jobs;
pub mod schedules;
pub mod telemetry;
pub mod json;
pub mod license;
pub mod metrics;
pub mod network_mappings;
pub mod networks;
pub mod notification_targets;
pub mod platforms;
pub mod policies;
pub mod query;
pub mod recovery;
pub mod replication;
pub mod reports;
pub mod repositories;
pub mod repository_setup;
pub mod restore;
pub mod search;
pub mod settings;
pub mod users;
pub mod vm_bulk;
pub mod vms;
pub mod ws;

use axum::extract::OriginalUri;
use axum::http::Method;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use json::ApiJson;
pub use query::ApiQuery;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Sendense API", description = "VM backup, restore and replication."),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The routes below `/api/v1` (paths relative to it) and their OpenAPI document.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(ws::router())
        .merge(platforms::router())
        .merge(discovery::router())
        .merge(vms::router())
        .merge(vm_bulk::router())
        .merge(groups::router())
        .merge(flows::router())
        .merge(policies::router())
        .merge(backups::router())
        .merge(repositories::router())
        .merge(jobs::router())
        .merge(job_control::router())
        .merge(telemetry::router())
        .merge(schedules::router())
        .merge(reports::router())
        .merge(restore::router())
        .merge(recovery::router())
        .merge(instant::router())
        .merge(license::router())
        .merge(settings::router())
        .merge(network_mappings::router())
        .merge(networks::router())
        .merge(replication::router())
        .merge(search::router())
        .merge(alerts::router())
        .merge(notification_targets::router())
        .split_for_parts()
}

/// A NUL character (`%00`) in a path or query string: no id, name or
/// filter holds one, and PostgreSQL text cannot store one.
async fn reject_nul(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let uri = req.uri();
    let has_nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        use axum::response::IntoResponse;
        return ApiError::bad_request("invalid_character", "The path or query string contains a NUL character (%00); remove it.")
            .into_response();
    }
    next.run(req).await
}

/// Every route below `/api/v1`, behind authentication. Unknown paths and
/// wrong methods answer in the error shape, never with the cockpit's HTML.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = routes();
    let v1 = routes
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .route_layer(axum::middleware::from_fn(crate::telemetry::metrics::track))
        .fallback(|OriginalUri(uri): OriginalUri| async move { ApiError::route_not_found(uri.path()) })
        .method_not_allowed_fallback(|method: Method, OriginalUri(uri): OriginalUri| async move {
            ApiError::method_not_allowed(&method, uri.path())
        });
    Router::new()
        .nest(shared_types::API_PREFIX, v1)
        .layer(axum::middleware::from_fn(reject_nul))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::middleware::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::origin::refuse_cross_origin))
        .with_state(state)
}
