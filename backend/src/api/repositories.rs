//! `/api/v1/repositories`: where backups live, with filesystem capacity and
//! the engine's real deduplication and compression figures.

use std::collections::HashMap;

use axum::extract::{Path, State};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::error::ErrorBody;
use shared_types::repositories::Repository;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson};
use crate::catalog::{repositories as repo_logic, to_u64};
use crate::db::entities::{backups, repositories};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_repositories)).routes(routes!(get_repository))
}

async fn counts(state: &AppState, ids: Vec<String>) -> Result<HashMap<String, i64>, ApiError> {
    Ok(backups::Entity::find()
        .select_only()
        .column(backups::Column::RepositoryId)
        .column_as(Expr::col(backups::Column::Id).count(), "n")
        .filter(backups::Column::RepositoryId.is_in(ids))
        .group_by(backups::Column::RepositoryId)
        .into_tuple::<(String, i64)>()
        .all(&state.db)
        .await?
        .into_iter()
        .collect())
}

/// Every repository, by name, with capacity and statistics.
#[utoipa::path(get, path = "/repositories", tag = "repositories", responses((status = 200, body = Vec<Repository>)))]
async fn list_repositories(State(state): State<AppState>) -> Result<ApiJson<Vec<Repository>>, ApiError> {
    let rows = repositories::Entity::find().order_by_asc(repositories::Column::Name).all(&state.db).await?;
    let counts = counts(&state, rows.iter().map(|r| r.id.clone()).collect()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = counts.get(&r.id).copied().map(to_u64).unwrap_or(0);
        out.push(repo_logic::describe(r, n).await);
    }
    Ok(ApiJson(out))
}

#[utoipa::path(get, path = "/repositories/{id}", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = Repository), (status = 404, body = ErrorBody)))]
async fn get_repository(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<Repository>, ApiError> {
    let row = repositories::Entity::find_by_id(id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::not_found("repository_not_found", format!("No repository has the id '{id}'. GET /api/v1/repositories lists them."))
    })?;
    let n = counts(&state, vec![row.id.clone()]).await?.get(&row.id).copied().map(to_u64).unwrap_or(0);
    Ok(ApiJson(repo_logic::describe(row, n).await))
}
