//! `/api/v1/repositories`: where backups live, with filesystem capacity and
//! the engine's real deduplication and compression figures.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QueryOrder, Set};
use shared_types::error::ErrorBody;
use axum::http::StatusCode;
use shared_types::jobs::{Job, JobKind};
use shared_types::repository_setup::{RepositoryImport, RepositoryTest, TestCheck, TestCheckResult};
use shared_types::repositories::{RepositoryKind, StorageFailureCause, MaintenanceScheduleRequest, Repository, SetMaintenanceRequest, UndeleteReport, UndeleteRequest, MAINTENANCE_REASON_MAX};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::noted;
use super::repository_setup as setup;
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::repository_import::ImportError;
use crate::catalog::undelete::{self as undelete_logic, UndeleteError};
use crate::catalog::{backup_locations, convert, repositories as repo_logic, repository_health, upkeep};
use crate::runner::maintenance_job;
use crate::db::entities::repositories;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_repositories, setup::create_repository))
        .routes(routes!(setup::test_repository))
        .routes(routes!(test_saved))
        .routes(routes!(get_repository, setup::update_repository, setup::delete_repository))
        .routes(routes!(setup::set_default))
        .routes(routes!(set_maintenance))
        .routes(routes!(start_verify))
        .routes(routes!(start_gc))
        .routes(routes!(start_prune))
        .routes(routes!(set_maintenance_schedule))
        .routes(routes!(download_key))
        .routes(routes!(undelete))
        .routes(routes!(import_restore_points))
}

/// Records the repository's restore points the catalog lacks (admins): for
/// each snapshot the VM it belongs to, found by the catalog id its
/// snapshots are named by or by the platform's id of the VM (its UUID),
/// never by name; a snapshot of a restore point held in another repository
/// is recorded as a copy here. VMs this server does not manage are listed
/// in `unmatched`: add their platform, discover, and import again. Adding a
/// repository that holds restore points does this once by itself.
#[utoipa::path(post, path = "/repositories/{id}/import", tag = "repositories",
    params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = RepositoryImport), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn import_restore_points(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let report = match crate::catalog::repository_import::import(&state.db, &state.data_dir, &row).await {
        Ok(r) => r,
        Err(ImportError::Storage(m)) => {
            return Err(ApiError::unavailable("repository_unavailable", format!("The restore points of repository '{}' could not be read: {m}. Fix the storage, then try again.", row.name)))
        }
        Err(ImportError::Catalog(e)) => return Err(e.into()),
    };
    let target = format!("{}: {} recorded, {} copies, {} known, {} VM(s) unmatched", row.name, report.recorded, report.copies, report.known, report.unmatched.len());
    Ok(noted(ApiJson(report), AuditNote::new("repository.import", target)))
}

/// Undelete (admins): on an S3 bucket with versioning (Object Lock), removes
/// the delete markers made at or after `since` that hide the repository's
/// objects (someone with the storage's credentials deleted them: the
/// versions stayed), then brings the catalog back in line: restore points
/// whose manifest verify had found missing are available again, ones the
/// catalog lost are recorded again. 422 on a repository that keeps no
/// deleted versions (a local directory, Azure, a bucket without versioning).
#[utoipa::path(post, path = "/repositories/{id}/undelete", tag = "repositories", request_body = UndeleteRequest,
    params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = UndeleteReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn undelete(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<UndeleteRequest>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let target = format!("{} since {}", row.name, req.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    if row.kind != shared_types::repositories::RepositoryKind::S3.as_str() {
        return Err(ApiError::unprocessable(
            "repository_not_versioned",
            format!(
                "Repository '{}' is a {} repository: it keeps no deleted versions, so there is nothing to undelete. Undelete works on S3 buckets with versioning (Object Lock).",
                row.name, row.kind
            ),
        ));
    }
    let report = match undelete_logic::undelete(&state.db, &state.data_dir, &row, req.since).await {
        Ok(r) => r,
        Err(UndeleteError::NotVersioned(m)) => return Err(ApiError::unprocessable("repository_not_versioned", m)),
        Err(UndeleteError::Storage(m)) => {
            return Err(ApiError::unavailable("repository_unavailable", format!("Undelete in repository '{}' failed: {m}. Fix the storage, then try again.", row.name)))
        }
        Err(UndeleteError::Catalog(e)) => return Err(e.into()),
    };
    if report.objects_restored > 0 {
        refresh_stats_after_undelete(&state, &row).await;
    }
    Ok(noted(ApiJson(report), AuditNote::new("repository.undelete", target)))
}

/// The repository's cached statistics after objects came back.
async fn refresh_stats_after_undelete(state: &AppState, row: &repositories::Model) {
    let (cache, d, repo) = (state.repo_stats.clone(), state.data_dir.clone(), row.clone());
    let done = tokio::task::spawn_blocking(move || {
        let ds = repo_logic::open_datastore(&d, &repo)?;
        cache.refresh(std::path::Path::new(&repo.path), &ds)
    })
    .await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "refreshing the repository's statistics after an undelete");
    }
}

/// Tests a saved repository (operators): it opens (reachable, credentials,
/// its config and key) and a probe object is written, read back and
/// deleted there. After a backup failed at the storage (full, over quota,
/// refusing writes), a passing test clears the repository's
/// `storage_failure` (status back to online); a failing one records it.
#[utoipa::path(post, path = "/repositories/{id}/test", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = RepositoryTest), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn test_saved(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let (data_dir, probe) = (state.data_dir.clone(), row.clone());
    let tested = tokio::time::timeout(SAVED_TEST_TIMEOUT, tokio::task::spawn_blocking(move || crate::catalog::repository_setup::test_saved(&data_dir, &probe))).await;
    let test = match tested {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(ApiError::Internal(anyhow::anyhow!("testing repository {}: {e}", row.id))),
        Err(_) => RepositoryTest {
            ok: false,
            checks: vec![TestCheckResult {
                check: TestCheck::Reachable,
                ok: false,
                message: format!("{}: the storage did not answer within {} s", row.path, SAVED_TEST_TIMEOUT.as_secs()),
            }],
            attaches: true,
            immutability: shared_types::repository_setup::immutability(
                RepositoryKind::parse(&row.kind).unwrap_or(RepositoryKind::Local),
                u32::try_from(row.immutable_days).unwrap_or(0),
            ),
        },
    };
    match test.checks.iter().find(|c| !c.ok) {
        None => {
            repository_health::clear(&state.db, &row.id).await?;
        }
        Some(failed) => {
            let cause = match failed.check {
                TestCheck::Credentials => StorageFailureCause::Refused,
                TestCheck::Reachable => StorageFailureCause::Unreachable,
                _ if failed.message.contains("full or over its quota") => StorageFailureCause::Full,
                _ if failed.message.contains("refused") || failed.message.contains("access denied") => StorageFailureCause::Refused,
                _ => StorageFailureCause::Failed,
            };
            let message = format!("test of repository '{}': {}", row.name, failed.message);
            repository_health::record(&state.db, &row.id, cause, &message, None, Utc::now()).await?;
        }
    }
    let target = format!("{}: {}", row.name, if test.ok { "passed" } else { "failed" });
    Ok(noted(ApiJson(test), AuditNote::new("repository.test", target)))
}

/// How long testing a saved repository waits for its storage: a storage
/// refusing the probe with a 5xx (full, failing) is retried by the client
/// for up to about a minute before it gives up.
const SAVED_TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Queues a repository job of `kind` (202 with the job; 409 while one of
/// the same kind is queued or running on that repository).
async fn start(state: &AppState, me: &AuthUser, id: &str, kind: JobKind) -> Result<Response, ApiError> {
    let row = find(state, id).await?;
    let job = maintenance_job::enqueue(&state.runner, &row.id, kind, &me.username).await?;
    let job: Job = convert::jobs(&state.db, vec![job]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the queued job vanished")))?;
    Ok(noted((StatusCode::ACCEPTED, ApiJson(job)), AuditNote::new(
        match kind {
            JobKind::Verify => "repository.verify",
            JobKind::Gc => "repository.gc",
            _ => "repository.prune",
        },
        row.name,
    )))
}

/// Re-reads and re-hashes every restore point of the repository; each is
/// then marked `verified` or `corrupt` (with the reason), and damage raises
/// an alert. Progress, log, pause and stop as for any job.
#[utoipa::path(post, path = "/repositories/{id}/verify", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_verify(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    start(&state, &me, &id, JobKind::Verify).await
}

/// Garbage collection: removes the packs no restore point references (safe
/// beside running backups) and reports the bytes given back.
#[utoipa::path(post, path = "/repositories/{id}/gc", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_gc(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    start(&state, &me, &id, JobKind::Gc).await
}

/// Applies each backup flow's retention to the restore points of the VMs it
/// protects in this repository (their chunks go at the next GC).
#[utoipa::path(post, path = "/repositories/{id}/prune", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_prune(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    start(&state, &me, &id, JobKind::Prune).await
}

/// Changes the verify and GC schedules (five-field cron patterns in UTC; a
/// field left out stays, `""` turns it off, `"default"` restores the default).
#[utoipa::path(patch, path = "/repositories/{id}/maintenance-schedule", tag = "repositories", request_body = MaintenanceScheduleRequest,
    params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = Repository), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_maintenance_schedule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MaintenanceScheduleRequest>,
) -> Result<Response, ApiError> {
    let verify = upkeep::schedule_value(req.verify_schedule.as_deref()).map_err(|m| ApiError::invalid_value("verify_schedule", m))?;
    let gc = upkeep::schedule_value(req.gc_schedule.as_deref()).map_err(|m| ApiError::invalid_value("gc_schedule", m))?;
    let row = find(&state, &id).await?;
    let name = row.name.clone();
    let mut active = row.into_active_model();
    if let Some(v) = verify {
        active.verify_schedule = Set(v);
    }
    if let Some(g) = gc {
        active.gc_schedule = Set(g);
    }
    let row = active.update(&state.db).await?;
    let n = counts(&state, vec![row.id.clone()]).await?.get(&row.id).copied().unwrap_or(0);
    let r = repo_logic::describe(&state.data_dir, row, n, &state.repo_stats).await;
    let target = format!(
        "{name}: verify {}, gc {}",
        r.upkeep.verify_schedule.as_deref().unwrap_or("off"),
        r.upkeep.gc_schedule.as_deref().unwrap_or("off")
    );
    Ok(noted(ApiJson(r), AuditNote::new("repository.maintenance_schedule", target)))
}

/// Restore points each repository holds: written there and copies held there.
async fn counts(state: &AppState, ids: Vec<String>) -> Result<HashMap<String, u64>, ApiError> {
    Ok(backup_locations::held(&state.db, &ids).await?.into_iter().map(|(id, h)| (id, h.total())).collect())
}

/// Every repository, by name, with capacity and statistics.
#[utoipa::path(get, path = "/repositories", tag = "repositories", responses((status = 200, body = Vec<Repository>)))]
async fn list_repositories(State(state): State<AppState>) -> Result<ApiJson<Vec<Repository>>, ApiError> {
    let rows = repositories::Entity::find().order_by_asc(repositories::Column::Name).all(&state.db).await?;
    let counts = counts(&state, rows.iter().map(|r| r.id.clone()).collect()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = counts.get(&r.id).copied().unwrap_or(0);
        out.push(repo_logic::describe(&state.data_dir, r, n, &state.repo_stats).await);
    }
    Ok(ApiJson(out))
}

#[utoipa::path(get, path = "/repositories/{id}", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = Repository), (status = 404, body = ErrorBody)))]
async fn get_repository(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<Repository>, ApiError> {
    let row = find(&state, &id).await?;
    let n = counts(&state, vec![row.id.clone()]).await?.get(&row.id).copied().unwrap_or(0);
    Ok(ApiJson(repo_logic::describe(&state.data_dir, row, n, &state.repo_stats).await))
}

async fn find(state: &AppState, id: &str) -> Result<repositories::Model, ApiError> {
    repositories::Entity::find_by_id(id.to_owned()).one(&state.db).await?.ok_or_else(|| {
        ApiError::not_found("repository_not_found", format!("No repository has the id '{id}'. GET /api/v1/repositories lists them."))
    })
}

/// Enters maintenance (with a reason) or ends it. While in maintenance, new
/// backups to the repository are refused (409) and queued ones wait; jobs
/// already running finish.
#[utoipa::path(put, path = "/repositories/{id}/maintenance", tag = "repositories", request_body = SetMaintenanceRequest,
    params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = Repository), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_maintenance(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetMaintenanceRequest>,
) -> Result<Response, ApiError> {
    let reason = req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let reason = match (req.enabled, reason) {
        (true, None) => return Err(ApiError::invalid_field("reason", "say why the repository goes into maintenance (e.g. \"disk replacement\")")),
        (true, Some(r)) if r.chars().count() > MAINTENANCE_REASON_MAX => {
            return Err(ApiError::invalid_field("reason", format!("a reason has at most {MAINTENANCE_REASON_MAX} characters")))
        }
        (true, Some(r)) if r.chars().any(char::is_control) => {
            return Err(ApiError::invalid_field("reason", "a reason is one line of text without control characters"))
        }
        (true, Some(r)) => Some(r.to_owned()),
        (false, _) => None,
    };
    let row = find(&state, &id).await?;
    let name = row.name.clone();
    let mut active = row.into_active_model();
    active.maintenance_since = Set(reason.as_ref().map(|_| Utc::now()));
    active.maintenance_by = Set(reason.as_ref().map(|_| me.username.clone()));
    active.maintenance_reason = Set(reason.clone());
    let row = active.update(&state.db).await?;
    // Jobs that waited for the end of maintenance may start now.
    state.runner.wake();
    let n = counts(&state, vec![row.id.clone()]).await?.get(&row.id).copied().unwrap_or(0);
    let (action, target) = match &reason {
        Some(r) => ("repository.maintenance.enter", format!("{name}: {r}")),
        None => ("repository.maintenance.end", name),
    };
    Ok(noted(ApiJson(repo_logic::describe(&state.data_dir, row, n, &state.repo_stats).await), AuditNote::new(action, target)))
}

/// Downloads the repository's encryption key for safekeeping (admins only;
/// every download is in the audit log). Whoever holds the key and the
/// repository can read every backup in it; without the key nothing in it can
/// be restored once the server's data directory is lost.
#[utoipa::path(get, path = "/repositories/{id}/key", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, description = "The key file (JSON), as an attachment", content_type = "application/json"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn download_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let (data_dir, probe) = (state.data_dir.clone(), row.clone());
    let exported = tokio::task::spawn_blocking(move || crate::catalog::repositories::export_key(&data_dir, &probe))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading the key of repository {}: {e}", row.id)))?;
    let body = match exported {
        Ok(Some(body)) => body,
        Ok(None) => {
            return Err(ApiError::conflict(
                "repository_not_encrypted",
                format!("Repository '{}' is not encrypted: it has no key to download.", row.name),
            ))
        }
        Err(e) => {
            return Err(ApiError::conflict(
                "key_unavailable",
                format!("The key of repository '{}' cannot be exported: {e}.", row.name),
            ))
        }
    };
    let label: String = row.name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect();
    let file = format!("sendense-{label}-{}.key", row.id);
    let response = (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response();
    Ok(noted(response, AuditNote::new("repository.key.export", row.name)))
}
