//! `GET /api/v1/jobs` and `GET /api/v1/jobs/{id}`: jobs with their bytes,
//! throughput samples and log. Creating and steering jobs belongs to the
//! job runner.

use axum::extract::{Path, State};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::jobs::{JobDetails, JobKind, JobPage, JobStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::page;
use super::{ApiError, ApiJson, ApiQuery};
use crate::catalog::convert;
use crate::db::entities::{job_logs, job_samples, jobs};
use crate::state::AppState;

/// Samples `GET /jobs/{id}` returns at most (the newest): 10 minutes at 2 Hz.
const SAMPLES_MAX: u64 = 1200;
/// Log lines `GET /jobs/{id}` returns at most (the newest).
const LOG_LINES_MAX: u64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_jobs)).routes(routes!(get_job))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JobQuery {
    status: Option<JobStatus>,
    kind: Option<JobKind>,
    /// Only jobs of this flow (id).
    flow: Option<String>,
    /// Only jobs of this VM (VM context id).
    vm: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobQuery), responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
async fn list_jobs(State(state): State<AppState>, ApiQuery(q): ApiQuery<JobQuery>) -> Result<ApiJson<JobPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let mut find = jobs::Entity::find();
    if let Some(s) = q.status {
        find = find.filter(jobs::Column::Status.eq(s.as_str()));
    }
    if let Some(k) = q.kind {
        find = find.filter(jobs::Column::Kind.eq(k.as_str()));
    }
    if let Some(f) = q.flow {
        find = find.filter(jobs::Column::FlowId.eq(f));
    }
    if let Some(v) = q.vm {
        find = find.filter(jobs::Column::VmContextId.eq(v));
    }
    let total = find.clone().count(&state.db).await?;
    let rows = find.order_by_desc(jobs::Column::CreatedAt).order_by_desc(jobs::Column::Id).offset(offset).limit(limit).all(&state.db).await?;
    Ok(ApiJson(JobPage { items: convert::jobs(&state.db, rows).await?, total }))
}

/// A job with its newest throughput samples and log lines, oldest first.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobDetails), (status = 404, body = ErrorBody)))]
async fn get_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<JobDetails>, ApiError> {
    let row = jobs::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("job_not_found", format!("No job has the id '{id}'. GET /api/v1/jobs lists them.")))?;
    let mut samples = job_samples::Entity::find()
        .filter(job_samples::Column::JobId.eq(id.clone()))
        .order_by_desc(job_samples::Column::At)
        .order_by_desc(job_samples::Column::Id)
        .limit(SAMPLES_MAX)
        .all(&state.db)
        .await?;
    samples.reverse();
    let mut logs = job_logs::Entity::find()
        .filter(job_logs::Column::JobId.eq(id))
        .order_by_desc(job_logs::Column::Id)
        .limit(LOG_LINES_MAX)
        .all(&state.db)
        .await?;
    logs.reverse();
    let file_restore = crate::runner::file_restore_job::result_of(&row);
    let job = convert::jobs(&state.db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("job row vanished")))?;
    Ok(ApiJson(JobDetails {
        job,
        samples: samples.into_iter().map(convert::sample).collect(),
        logs: logs.into_iter().map(convert::log_line).collect(),
        file_restore,
    }))
}
