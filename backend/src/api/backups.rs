//! `/api/v1/backup`: restore points: list with filters, one, a VM's chain,
//! one restore point's chain, delete (refused inside the immutability window; the repository snapshot
//! goes through the engine's forget, then the catalog row). Starting a
//! backup belongs to the job runner.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, Utc};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use shared_types::backups::{LocationRole, LocationState, Backup, BackupChain, BackupPage, BackupStatus, ChainLink, CopyRestorePointRequest, PointChain};
use shared_types::flow::IMMUTABLE_DAYS_MAX;
use shared_types::jobs::Job;
use shared_types::error::ErrorBody;
use shared_types::jobs::BackupType;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, not_audited, noted, page};
use super::{vms, ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::backup_locations::{self, ChooseError};
use crate::catalog::{backups as backup_logic, convert, repositories as repo_logic};
use crate::runner::copy_job::CopyJobOptions;
use crate::db::entities::{backups, repositories};
use crate::engine::EngineError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backups))
        .routes(routes!(backup_chain))
        .routes(routes!(point_chain))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(copy_restore_point))
        .routes(routes!(delete_location))
        .routes(routes!(check_locations))
}

async fn find(state: &AppState, id: &str) -> Result<backups::Model, ApiError> {
    backups::Entity::find_by_id(id.to_owned()).one(&state.db).await?.ok_or_else(|| {
        ApiError::not_found("backup_not_found", format!("No restore point has the id '{id}'. GET /api/v1/backup/list lists them."))
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct BackupQuery {
    /// Only restore points of this VM (VM context id).
    vm: Option<String>,
    /// `full` or `incremental`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    backup_type: Option<BackupType>,
    /// `available`, `verified` or `corrupt`.
    status: Option<BackupStatus>,
    /// Only restore points in this repository (id): written there or copied there.
    repository: Option<String>,
    /// `true`: only restore points inside their immutability window now;
    /// `false`: only those that can be deleted.
    immutable: Option<bool>,
    /// Only restore points taken at or after this instant (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Only restore points taken before this instant (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

/// Restore points, newest first, filtered by VM, repository, type, status,
/// immutability and when they were taken; paged.
#[utoipa::path(get, path = "/backup/list", tag = "backups", params(BackupQuery), responses(
    (status = 200, body = BackupPage), (status = 400, body = ErrorBody)))]
async fn list_backups(State(state): State<AppState>, ApiQuery(q): ApiQuery<BackupQuery>) -> Result<ApiJson<BackupPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    for (field, at) in [("from", q.from), ("to", q.to)] {
        if at.is_some_and(|t| !(1970..=9999).contains(&t.year())) {
            return Err(ApiError::invalid_field(field, format!("Give '{field}' as an RFC 3339 instant between the years 1970 and 9999.")));
        }
    }
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Err(ApiError::invalid_field("from", format!("'from' ({}) must come before 'to' ({}).", from.to_rfc3339(), to.to_rfc3339())));
        }
    }
    for (field, id) in [("vm", &q.vm), ("repository", &q.repository)] {
        if let Some(id) = id {
            check_id(field, id)?;
        }
    }
    let mut find = backups::Entity::find();
    if let Some(v) = q.vm {
        find = find.filter(backups::Column::VmContextId.eq(v));
    }
    let now = Utc::now();
    match q.immutable {
        Some(true) => find = find.filter(backups::Column::ImmutableUntil.gt(now)),
        Some(false) => {
            find = find.filter(Condition::any().add(backups::Column::ImmutableUntil.is_null()).add(backups::Column::ImmutableUntil.lte(now)))
        }
        None => {}
    }
    if let Some(from) = q.from {
        find = find.filter(backups::Column::CreatedAt.gte(from));
    }
    if let Some(to) = q.to {
        find = find.filter(backups::Column::CreatedAt.lt(to));
    }
    if let Some(t) = q.backup_type {
        find = find.filter(backups::Column::BackupType.eq(t.as_str()));
    }
    if let Some(s) = q.status {
        find = find.filter(backups::Column::Status.eq(s.as_str()));
    }
    if let Some(r) = q.repository {
        find = find.filter(backup_locations::held_in(&r));
    }
    let total = find.clone().count(&state.db).await?;
    let rows = find
        .order_by_desc(backups::Column::CreatedAt)
        .order_by_desc(backups::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(&state.db)
        .await?;
    Ok(ApiJson(BackupPage { items: convert::backups(&state.db, rows).await?, total }))
}

#[utoipa::path(get, path = "/backup/{id}", tag = "backups", params(("id" = String, Path, description = "Restore point id")),
    responses((status = 200, body = Backup), (status = 404, body = ErrorBody)))]
async fn get_backup(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<Backup>, ApiError> {
    let row = find(&state, &id).await?;
    let mut out = convert::backups(&state.db, vec![row]).await?;
    out.pop().map(ApiJson).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("backup row vanished")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ChainQuery {
    /// The VM (VM context id).
    vm: String,
}

/// A VM's restore points, oldest first, with how many are full and incremental.
#[utoipa::path(get, path = "/backup/chain", tag = "backups", params(ChainQuery), responses(
    (status = 200, body = BackupChain), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn backup_chain(State(state): State<AppState>, ApiQuery(q): ApiQuery<ChainQuery>) -> Result<ApiJson<BackupChain>, ApiError> {
    check_id("vm", &q.vm)?;
    let vm = vms::find(&state.db, &q.vm).await?;
    let rows = backups::Entity::find()
        .filter(backups::Column::VmContextId.eq(vm.id.clone()))
        .order_by_asc(backups::Column::CreatedAt)
        .order_by_asc(backups::Column::Id)
        .all(&state.db)
        .await?;
    let backups = convert::backups(&state.db, rows).await?;
    let full_count = backups.iter().filter(|b| b.backup_type == BackupType::Full).count() as u64;
    Ok(ApiJson(BackupChain {
        vm_context_id: vm.id,
        vm_name: vm.name,
        full_count,
        incremental_count: backups.len() as u64 - full_count,
        bytes_written_total: backups.iter().map(|b| b.bytes_written).sum(),
        backups,
    }))
}

/// A restore point's chain, oldest first: the points it reads unchanged
/// blocks from back to its full, itself, and the points that read from it
/// (the catalog's parent links). Each is a whole image in the repository:
/// deleting one leaves the others restorable.
#[utoipa::path(get, path = "/backup/{id}/chain", tag = "backups", params(("id" = String, Path, description = "Restore point id")),
    responses((status = 200, body = PointChain), (status = 404, body = ErrorBody)))]
async fn point_chain(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<PointChain>, ApiError> {
    let row = find(&state, &id).await?;
    let (links, missing_parent) = backup_logic::chain(&state.db, &row).await?;
    let relations: Vec<_> = links.iter().map(|(r, _)| *r).collect();
    let backups = convert::backups(&state.db, links.into_iter().map(|(_, m)| m).collect()).await?;
    Ok(ApiJson(PointChain {
        backup_id: row.id,
        links: relations.into_iter().zip(backups).map(|(relation, backup)| ChainLink { relation, backup }).collect(),
        missing_parent,
    }))
}

/// Deletes a restore point from every repository it is in (its primary and
/// its copies): each snapshot leaves its repository (the engine forgets its
/// manifest; the chunks go at the next garbage collection), then the catalog
/// rows. Refused with 409 while any location is inside its immutability
/// window (the message names the latest end and the repository). A
/// repository that cannot be written answers 503 after the others were
/// done; deleting again finishes. The points that read from it stay
/// restorable: each restore point is a whole image, its chunks shared, not
/// borrowed.
#[utoipa::path(delete, path = "/backup/{id}", tag = "backups", params(("id" = String, Path, description = "Restore point id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_backup(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let label = format!("{}/{}", row.snapshot_name, row.snapshot_id);
    let locations = backup_locations::of(&state.db, &row).await?;
    if let Some(until) = row.immutable_until.filter(|u| *u > Utc::now()) {
        return Err(immutable(&label, &until.to_rfc3339()));
    }
    if let Some((until, repo_id)) = backup_locations::immutable_until(&locations, Utc::now()) {
        let name = repositories::Entity::find_by_id(repo_id.clone()).one(&state.db).await?.map(|r| r.name).unwrap_or(repo_id);
        return Err(immutable(&format!("{label} (in repository '{name}')"), &until.to_rfc3339()));
    }
    let mut unreachable = None;
    for loc in &locations {
        let Some(repo) = repositories::Entity::find_by_id(loc.repository_id.clone()).one(&state.db).await? else {
            // Its repository left the catalog: nothing to forget there.
            backup_locations::remove(&state.db, &row, &loc.repository_id).await?;
            continue;
        };
        let here = format!("{}/{}", loc.snapshot_name, loc.snapshot_id);
        match forget_at(&state, &repo, &loc.snapshot_name, &loc.snapshot_id).await? {
            Ok(()) => {}
            Err(EngineError::SnapshotNotFound(_)) => {
                tracing::warn!(snapshot = %here, repository = %repo.name, "snapshot already gone from the repository; removing the catalog row");
            }
            Err(EngineError::Immutable { until, .. }) => return Err(immutable(&format!("{here} (in repository '{}')", repo.name), &until)),
            Err(e @ EngineError::Pinned { .. }) => {
                return Err(ApiError::conflict("backup_pinned", format!("The restore point {here} cannot be deleted from '{}': {e}.", repo.name)))
            }
            Err(e @ (EngineError::NotARepository { .. } | EngineError::File { .. } | EngineError::Object { .. })) => {
                unreachable.get_or_insert(format!("The repository '{}' cannot be written: {e}. Fix it, then delete again.", repo.name));
                continue;
            }
            Err(e) => return Err(ApiError::Internal(anyhow::Error::new(e).context(format!("forgetting snapshot {here} in '{}'", repo.name)))),
        }
        backup_locations::remove(&state.db, &row, &loc.repository_id).await?;
    }
    if let Some(message) = unreachable {
        return Err(ApiError::unavailable("repository_unavailable", message));
    }
    // A restore point with no location rows was only at its own repository.
    backups::Entity::delete_by_id(row.id.clone()).exec(&state.db).await?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("backup.delete", label)))
}

/// Forgets snapshot `name`/`snap` in `repo` and refreshes its cached statistics.
async fn forget_at(state: &AppState, repo: &repositories::Model, name: &str, snap: &str) -> Result<Result<(), EngineError>, ApiError> {
    let (repo, name, snap) = (repo.clone(), name.to_owned(), snap.to_owned());
    let cache = state.repo_stats.clone();
    let data_dir = state.data_dir.clone();
    let label = format!("{name}/{snap}");
    tokio::task::spawn_blocking(move || {
        let ds = repo_logic::open_datastore(&data_dir, &repo)?;
        let r = crate::engine::prune::forget(&ds, &name, &snap);
        if r.is_ok() {
            // Requests read the statistics from the cache: the change shows now.
            if let Err(e) = cache.refresh(std::path::Path::new(&repo.path), &ds) {
                tracing::warn!(error = %e, "refreshing the repository's statistics");
            }
        }
        r
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("deleting snapshot {label}: {e}")))
}

/// Copies a restore point to another repository (3-2-1): a copy job reads
/// it from an available location, sends only the chunks the target lacks,
/// verifies them there and records the copy as a location of the restore
/// point (202 with the job). Refused (409) when it is there already, while
/// the same copy is queued or running, or while the target is in maintenance.
#[utoipa::path(post, path = "/restore-points/{id}/copy", tag = "backups", params(("id" = String, Path, description = "Restore point id")),
    request_body = CopyRestorePointRequest, responses(
    (status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn copy_restore_point(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CopyRestorePointRequest>,
) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    check_id("repository_id", &req.repository_id)?;
    if req.immutable_days > IMMUTABLE_DAYS_MAX {
        return Err(ApiError::invalid_field("immutable_days", format!("At most {IMMUTABLE_DAYS_MAX} days (ten years).")));
    }
    let target = repositories::Entity::find_by_id(req.repository_id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::invalid_value("repository_id", format!("No repository has the id '{}'. GET /api/v1/repositories lists them.", req.repository_id))
    })?;
    let options = CopyJobOptions { immutable_days: req.immutable_days, ..Default::default() };
    let job = state.runner.enqueue_copy(&row, &target, options, Some(me.username.clone())).await?;
    let job: Job = convert::jobs(&state.db, vec![job]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the queued job vanished")))?;
    let note = AuditNote::new("backup.copy", format!("{}/{} to {} (job {})", row.snapshot_name, row.snapshot_id, target.name, job.id));
    Ok(noted((StatusCode::ACCEPTED, ApiJson(job)), note))
}

/// Removes one location of a restore point (3-2-1): its snapshot leaves
/// that repository (the engine forgets the manifest there; its chunks go
/// at that repository's next garbage collection) and the catalog forgets
/// the location; the restore point stays in its other repositories (200
/// with it as it now is). Refused (409, with the reason) while that copy is
/// inside its immutability there (Sendense's date or the storage's Object
/// Lock), while it is the restore point's last readable location (delete
/// the restore point instead: `DELETE /api/v1/backup/{id}`), while a copy
/// to it is being made, while a job reads it there, or while an instant
/// recovery runs from it. A primary location may go too once a copy holds
/// the restore point. 503 when the repository cannot be written.
#[utoipa::path(delete, path = "/restore-points/{id}/locations/{repository_id}", tag = "backups",
    params(("id" = String, Path, description = "Restore point id"), ("repository_id" = String, Path, description = "The repository to remove it from")),
    responses((status = 200, body = Backup), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_location(State(state): State<AppState>, Path((id, repository_id)): Path<(String, String)>) -> Result<Response, ApiError> {
    check_id("id", &id)?;
    check_id("repository_id", &repository_id)?;
    let row = find(&state, &id).await?;
    let locations = backup_locations::of(&state.db, &row).await?;
    let repo = repositories::Entity::find_by_id(repository_id.clone()).one(&state.db).await?;
    let repo_name = repo.as_ref().map(|r| r.name.clone()).unwrap_or_else(|| repository_id.clone());
    let Some(loc) = locations.iter().find(|l| l.repository_id == repository_id) else {
        let names = location_names(&state, &locations).await?;
        return Err(ApiError::not_found(
            "location_not_found",
            format!("Restore point '{}' is not in repository '{repo_name}' (it is in: {}).", row.id, names.join(", ")),
        ));
    };
    let here = format!("{}/{}", loc.snapshot_name, loc.snapshot_id);
    let what = if loc.role == LocationRole::Primary.as_str() { "primary location" } else { "copy" };
    // Another location that holds it now (a missing one may be gone for good).
    let readable = |l: &&crate::db::entities::backup_locations::Model| l.repository_id != repository_id && l.state == LocationState::Present.as_str();
    if loc.state == LocationState::Copying.as_str() {
        return Err(ApiError::conflict(
            "location_busy",
            format!("The copy of restore point {here} to '{repo_name}' is being made (job {}): stop that job or wait for it to end first.", loc.job_id.as_deref().unwrap_or("?")),
        ));
    }
    let counts = loc.state != LocationState::Failed.as_str();
    if locations.len() == 1 || (counts && !locations.iter().any(|l| readable(&l))) {
        let others: Vec<String> = locations.iter().filter(|l| l.repository_id != repository_id).map(|l| format!("'{}' ({})", l.repository_id, l.state)).collect();
        return Err(ApiError::conflict(
            "last_location",
            format!(
                "'{repo_name}' holds the last readable location of restore point {here}{}: removing it would lose the restore point. Delete the restore point instead (DELETE /api/v1/backup/{}).",
                if others.is_empty() { String::new() } else { format!(" (the others are not readable: {})", others.join(", ")) },
                row.id
            ),
        ));
    }
    // Inside immutability there: Sendense's date, and the storage's lock it last read.
    let now = Utc::now();
    let storage_lock = crate::db::entities::backup_storage_locks::Entity::find_by_id((row.id.clone(), repository_id.clone())).one(&state.db).await?;
    if let Some(s) = storage_lock.as_ref().filter(|s| s.locked_until > now) {
        return Err(ApiError::conflict(
            "location_immutable",
            format!(
                "The {what} of restore point {here} in '{repo_name}' is locked by the storage (S3 Object Lock, {} mode) until {}: the storage refuses to delete it before then.",
                s.mode,
                s.locked_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    if let Some(until) = loc.immutable_until.filter(|u| *u > now) {
        return Err(ApiError::conflict(
            "location_immutable",
            format!("The {what} of restore point {here} in '{repo_name}' is immutable until {}: it can be removed after that.", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ));
    }
    let busy = crate::db::entities::jobs::Entity::find()
        .filter(crate::db::entities::jobs::Column::BackupId.eq(row.id.clone()))
        .filter(crate::db::entities::jobs::Column::RepositoryId.eq(repository_id.clone()))
        .filter(crate::db::entities::jobs::Column::Status.is_in(shared_types::jobs::JobStatus::ACTIVE.map(|s| s.as_str())))
        .one(&state.db)
        .await?;
    if let Some(j) = busy {
        return Err(ApiError::conflict("location_busy", format!("Job {} ({}, {}) uses restore point {here} in '{repo_name}': wait for it to end first.", j.id, j.kind, j.status)));
    }
    let target = format!("{here} from '{repo_name}' ({what})");
    if let (Some(repo), true) = (repo.as_ref(), counts) {
        match forget_at(&state, repo, &loc.snapshot_name, &loc.snapshot_id).await? {
            Ok(()) => {}
            Err(EngineError::SnapshotNotFound(_)) => {
                tracing::warn!(snapshot = %here, repository = %repo.name, "snapshot already gone from the repository; removing the location");
            }
            Err(EngineError::Immutable { until, .. }) => {
                return Err(ApiError::conflict("location_immutable", format!("The {what} of restore point {here} in '{}' is immutable until {until}: it can be removed after that.", repo.name)))
            }
            Err(e @ EngineError::Pinned { .. }) => {
                return Err(ApiError::conflict("backup_pinned", format!("The {what} of restore point {here} cannot be removed from '{}': {e}.", repo.name)))
            }
            Err(e @ (EngineError::NotARepository { .. } | EngineError::File { .. } | EngineError::Object { .. } | EngineError::KeyFileMissing { .. })) => {
                return Err(ApiError::unavailable("repository_unavailable", format!("The repository '{}' cannot be written: {e}. Fix it, then remove the {what} again.", repo.name)))
            }
            Err(e) => return Err(ApiError::Internal(anyhow::Error::new(e).context(format!("forgetting snapshot {here} in '{}'", repo.name)))),
        }
    }
    if backup_locations::remove(&state.db, &row, &repository_id).await? {
        // Only a failed copy's row was left: nothing else held it.
        return Err(ApiError::Internal(anyhow::anyhow!("restore point {} lost its last location while removing '{repository_id}'", row.id)));
    }
    let row = find(&state, &id).await?;
    let out = convert::backups(&state.db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("backup row vanished")))?;
    Ok(noted(ApiJson(out), AuditNote::new("backup.location.delete", target)))
}

/// Reads the restore point's manifest in each repository it is in (present
/// or missing there, not copies being made or failed) and records what was
/// met: a location that cannot be read now is marked missing with the
/// reason, one that reads again present. 200 with the restore point as it
/// now is; what the restore wizard asks when it opens, so "Read from"
/// shows where the restore point can really be read. Audited only when it
/// changed a location's state (missing, or readable again): a check that
/// finds everything as the catalog had it writes no audit entry.
#[utoipa::path(post, path = "/restore-points/{id}/locations/check", tag = "backups", params(("id" = String, Path, description = "Restore point id")),
    responses((status = 200, body = Backup), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn check_locations(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    check_id("id", &id)?;
    let row = find(&state, &id).await?;
    let mut changed = Vec::new();
    for loc in backup_locations::of(&state.db, &row).await? {
        if loc.state != LocationState::Present.as_str() && loc.state != LocationState::Missing.as_str() {
            continue;
        }
        if let Some(repo) = repositories::Entity::find_by_id(loc.repository_id.clone()).one(&state.db).await? {
            // The outcome is recorded on the location; the answer shows it.
            let readable = backup_locations::probe(&state.db, &state.data_dir, &row, &loc, &repo).await?;
            let now = if readable.is_ok() { LocationState::Present } else { LocationState::Missing };
            if loc.state != now.as_str() {
                changed.push(format!("'{}' ({}) {} -> {}", repo.name, loc.role, loc.state, now.as_str()));
            }
        }
    }
    let row = find(&state, &id).await?;
    let label = format!("{}/{}", row.snapshot_name, row.snapshot_id);
    let out = convert::backups(&state.db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("backup row vanished")))?;
    if changed.is_empty() {
        return Ok(not_audited(ApiJson(out)));
    }
    Ok(noted(ApiJson(out), AuditNote::new("backup.location.check", format!("{label}: {}", changed.join(", ")))))
}

/// The repositories of `locations` by name (id when it left the catalog).
async fn location_names(state: &AppState, locations: &[crate::db::entities::backup_locations::Model]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for l in locations {
        let name = repositories::Entity::find_by_id(l.repository_id.clone()).one(&state.db).await?.map(|r| r.name).unwrap_or_else(|| l.repository_id.clone());
        out.push(format!("'{name}' ({}, {})", l.role, l.state));
    }
    Ok(out)
}

/// The location a restore reads `backup` from (`wanted`: a repository id
/// the request names), as the restore point there and its repository.
pub(super) async fn locate(state: &AppState, backup: &backups::Model, wanted: Option<&str>) -> Result<(backups::Model, repositories::Model), ApiError> {
    if let Some(id) = wanted {
        super::common::check_id("repository_id", id)?;
    }
    backup_locations::choose(&state.db, &state.data_dir, backup, wanted).await.map_err(|e| match e {
        ChooseError::NotThere(m) => ApiError::invalid_value("repository_id", m),
        ChooseError::Unavailable(m) => ApiError::unprocessable("restore_point_unavailable", m),
        ChooseError::Unreadable(m) => ApiError::unprocessable("restore_point_unreadable", m),
        ChooseError::Db(e) => e.into(),
    })
}

fn immutable(label: &str, until: &str) -> ApiError {
    ApiError::conflict(
        "backup_immutable",
        format!("The restore point {label} is immutable until {until}; it can be deleted after that."),
    )
}
