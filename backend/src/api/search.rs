//! Global search: `GET /api/v1/search?q=&limit=`, the top bar's search.
//! The catalog side is [`crate::catalog::search`]; the cockpit's pages are
//! searched by the cockpit itself and merged with these hits.

use axum::extract::State;
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::search::{check_query, SearchResults, DEFAULT_LIMIT, MAX_LIMIT};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery};
use crate::catalog;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// What to look for: part of a name (any case), or the start of a
    /// restore point's or job's id; 1 to 100 characters.
    q: Option<String>,
    /// Hits to answer, 1 to 50 (default 20).
    limit: Option<u64>,
}

/// VMs, flows, groups, platforms, repositories, restore points and jobs
/// whose name contains `q`, best match first: exact, then starting with
/// it, then a word starting with it, then anywhere; ties by kind, newest
/// first. Each hit names the cockpit route that opens it.
#[utoipa::path(get, path = "/search", tag = "search", params(SearchQuery), responses(
    (status = 200, body = SearchResults), (status = 400, body = ErrorBody)))]
async fn search(State(state): State<AppState>, ApiQuery(q): ApiQuery<SearchQuery>) -> Result<ApiJson<SearchResults>, ApiError> {
    let text = check_query(q.q.as_deref().unwrap_or_default()).map_err(|m| ApiError::invalid_field("q", m))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("Ask for 1 to {MAX_LIMIT} hits.")));
    }
    let hits = catalog::search::search(&state.db, text, limit).await?;
    Ok(ApiJson(SearchResults { query: text.to_owned(), hits }))
}
