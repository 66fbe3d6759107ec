//! Running and steering jobs: `POST /backup/start`, backup now on a flow,
//! pause / resume / stop / retry one job, pause all, emergency stop. The job runner
//! does the work; this module checks input and maps its refusals to 4xx.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sea_orm::EntityTrait;
use shared_types::error::ErrorBody;
use shared_types::jobs::{Job, JobsAffected, QueuedJobs, StartBackupRequest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::noted;
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::convert;
use crate::catalog::repositories::default_repository;
use crate::db::entities::{flows, jobs, repositories};
use crate::runner::{scheduler, BackupRequest, RunnerError};
use crate::state::AppState;

/// Most VMs one start request names.
const START_VMS_MAX: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_backup))
        .routes(routes!(run_flow))
        .routes(routes!(pause_job))
        .routes(routes!(resume_job))
        .routes(routes!(stop_job))
        .routes(routes!(retry_job))
        .routes(routes!(pause_all))
        .routes(routes!(emergency_stop))
}

impl From<RunnerError> for ApiError {
    fn from(e: RunnerError) -> Self {
        match e {
            RunnerError::NotFound(m) => ApiError::not_found("not_found", m),
            RunnerError::Conflict(m) => ApiError::conflict("conflict", m),
            RunnerError::Db(e) => e.into(),
        }
    }
}

async fn one_job(state: &AppState, row: jobs::Model) -> Result<Job, ApiError> {
    convert::jobs(&state.db, vec![row])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("job_not_found", "the job vanished"))
}

/// Queues a backup of each VM (incremental where change tracking allows,
/// or full). Refused (409) for a VM that is already being backed up.
#[utoipa::path(post, path = "/backup/start", tag = "jobs", request_body = StartBackupRequest,
    responses((status = 202, body = QueuedJobs), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_backup(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<StartBackupRequest>) -> Result<Response, ApiError> {
    if req.vm_ids.is_empty() || req.vm_ids.len() > START_VMS_MAX {
        return Err(ApiError::invalid_field("vm_ids", format!("name 1 to {START_VMS_MAX} VM ids (GET /api/v1/vm-contexts lists them)")));
    }
    if !(-100..=100).contains(&req.priority) {
        return Err(ApiError::invalid_field("priority", "use a priority from -100 to 100"));
    }
    let repo = match &req.repository_id {
        Some(id) => repositories::Entity::find_by_id(id.clone()).one(&state.db).await?.ok_or_else(|| {
            ApiError::invalid_value("repository_id", format!("no repository has the id '{id}' (GET /api/v1/repositories lists them)"))
        })?,
        None => default_repository(&state.db)
            .await?
            .ok_or_else(|| ApiError::unprocessable("no_repository", "there is no repository: add one (POST /api/v1/repositories) or name one with repository_id"))?,
    };
    let mut queued = Vec::new();
    for vm in &req.vm_ids {
        let job = state
            .runner
            .enqueue_backup(BackupRequest {
                vm_context_id: vm.clone(),
                repository_id: repo.id.clone(),
                flow_id: None,
                backup_type: req.backup_type,
                priority: req.priority,
                requested_by: Some(me.username.clone()),
            })
            .await?;
        queued.push(job);
    }
    let target = format!("{} VM(s), {}", queued.len(), req.backup_type.as_str());
    let jobs = convert::jobs(&state.db, queued).await?;
    Ok(noted((StatusCode::ACCEPTED, ApiJson(QueuedJobs { jobs })), AuditNote::new("backup.start", target)))
}

/// Backup now: a job for every VM of the flow (refused by the flow's state rule).
#[utoipa::path(post, path = "/flows/{id}/run", tag = "flows", params(("id" = String, Path, description = "Flow id")),
    responses((status = 202, body = JobsAffected), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn run_flow(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    let flow = flows::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("flow_not_found", format!("No flow has the id '{id}'. GET /api/v1/flows lists them.")))?;
    let n = scheduler::run_flow(&state.runner, &flow, &me.username).await?;
    Ok(noted((StatusCode::ACCEPTED, ApiJson(JobsAffected { count: n as u64 })), AuditNote::new("flow.run", flow.name)))
}

/// Pauses a running job at its next chunk-run boundary.
#[utoipa::path(post, path = "/jobs/{id}/pause", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pause_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = state.runner.pause(&id).await?;
    Ok(noted(ApiJson(one_job(&state, job).await?), AuditNote::new("job.pause", id)))
}

#[utoipa::path(post, path = "/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume_job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = state.runner.resume(&id).await?;
    Ok(noted(ApiJson(one_job(&state, job).await?), AuditNote::new("job.resume", id)))
}

/// Stops a job: a queued one at once, a running one at its next chunk-run
/// boundary (no restore point is written; change tracking keeps its changes).
#[utoipa::path(post, path = "/jobs/{id}/stop", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn stop_job(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = state.runner.stop(&id, &format!("stopped by {}", me.username)).await?;
    Ok(noted(ApiJson(one_job(&state, job).await?), AuditNote::new("job.stop", id)))
}

/// Queues a failed or cancelled backup, restore, verify, GC or prune again
/// with what it was asked to do; answers the new job. Refused (409) for a
/// job that did not fail or was not cancelled, or whose kind is run again
/// from elsewhere (the message says where).
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path, description = "Job id")),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn retry_job(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = state.runner.retry(&id, &me.username).await?;
    let target = format!("{id} as {}", job.id);
    Ok(noted((StatusCode::ACCEPTED, ApiJson(one_job(&state, job).await?)), AuditNote::new("job.retry", target)))
}

/// Pauses every running job.
#[utoipa::path(post, path = "/jobs/pause-all", tag = "jobs", responses((status = 200, body = JobsAffected)))]
async fn pause_all(State(state): State<AppState>) -> Result<Response, ApiError> {
    let n = state.runner.pause_all().await?;
    Ok(noted(ApiJson(JobsAffected { count: n as u64 }), AuditNote::new("job.pause_all", format!("{n} job(s)"))))
}

/// Emergency stop: cancels every queued job and stops every running or
/// paused one at its next chunk-run boundary; nothing half-written is kept.
#[utoipa::path(post, path = "/jobs/emergency-stop", tag = "jobs", responses((status = 200, body = JobsAffected)))]
async fn emergency_stop(State(state): State<AppState>, me: AuthUser) -> Result<Response, ApiError> {
    let n = state.runner.emergency_stop(&me.username).await?;
    Ok(noted(ApiJson(JobsAffected { count: n as u64 }), AuditNote::new("job.emergency_stop", format!("{n} job(s)"))))
}
