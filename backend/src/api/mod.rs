//! The HTTP API under `/api/v1`: one file per resource, each with its
//! `router()`, merged here.

pub mod error;
pub mod health;
pub mod json;
pub mod ws;

use axum::extract::OriginalUri;
use axum::http::Method;
use axum::Router;

pub use error::ApiError;
pub use json::ApiJson;

use crate::state::AppState;

/// Every route below `/api/v1`. Unknown paths and wrong methods answer in the
/// error shape, never with the cockpit's HTML.
pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .merge(health::router())
        .merge(ws::router())
        .fallback(|OriginalUri(uri): OriginalUri| async move { ApiError::route_not_found(uri.path()) })
        .method_not_allowed_fallback(|method: Method, OriginalUri(uri): OriginalUri| async move {
            ApiError::method_not_allowed(&method, uri.path())
        });
    Router::new().nest(shared_types::API_PREFIX, v1)
}
