//! File-level restore: `POST /restore/mount` opens a session on a restore
//! point (its partitions and filesystems read straight from the store),
//! `GET /restore/{mount_id}/files?path=` lists a directory page by page,
//! `GET /restore/{mount_id}/download?path=` streams a file or a directory
//! (tar), `DELETE /restore/{mount_id}` closes, `GET /restore/mounts` lists.
//! Sessions close by themselves when idle (`restore::sessions`).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sea_orm::EntityTrait;
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::restore::{FileListing, Mount, MountRequest, FILES_PAGE_MAX};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, noted};
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::new_id;
use crate::db::entities::{backups, repositories, vm_contexts};
use crate::restore::sessions::{self, ChannelWriter, Session, SessionError, Target};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mount))
        .routes(routes!(list_mounts))
        .routes(routes!(get_mount, close_mount))
        .routes(routes!(list_files))
        .routes(routes!(download))
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        use guest_fs::Error as G;
        let m = e.to_string();
        match &e {
            SessionError::Unknown(_) => ApiError::not_found("mount_not_found", m),
            SessionError::Expired(_) => ApiError::Gone { code: "mount_expired", message: m },
            SessionError::TooMany => ApiError::conflict("too_many_mounts", m),
            SessionError::NoVolume(_) => ApiError::not_found("volume_not_found", m),
            SessionError::NotBrowsable { .. } => ApiError::unprocessable("volume_not_browsable", m),
            SessionError::RootIsNotAFile(_) => ApiError::bad_request("invalid_path", m),
            SessionError::Engine(_) => ApiError::unprocessable("restore_point_unreadable", format!("{m}; verify the repository")),
            SessionError::Guest(g) => match g {
                G::InvalidPath { .. } => ApiError::bad_request("invalid_path", m),
                G::NotFound { .. } => ApiError::not_found("path_not_found", m),
                G::NotADirectory { .. } => ApiError::unprocessable("not_a_directory", m),
                G::NotAFile { .. } => ApiError::unprocessable("not_a_file", m),
                G::Symlink { .. } => ApiError::unprocessable("symlink", m),
                G::Io { .. } => ApiError::unprocessable("restore_point_unreadable", format!("{m}; the restore point's data cannot be read, verify the repository")),
                _ => ApiError::unprocessable("filesystem_unreadable", m),
            },
        }
    }
}

/// Runs blocking session work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, SessionError> + Send + 'static) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!("file-level restore task stopped: {e}"))),
    }
}

/// Opens a file-level restore session on a restore point: every disk's
/// partition table and filesystems are read from the repository (nothing
/// is written or mounted). Closed after 15 idle minutes.
#[utoipa::path(post, path = "/restore/mount", tag = "restore", request_body = MountRequest, responses(
    (status = 201, body = Mount), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn mount(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<MountRequest>) -> Result<Response, ApiError> {
    check_id("backup_id", &req.backup_id)?;
    let backup = backups::Entity::find_by_id(req.backup_id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::invalid_value("backup_id", format!("no restore point has the id '{}' (GET /api/v1/backup/list lists them)", req.backup_id))
    })?;
    let repo = repositories::Entity::find_by_id(backup.repository_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::unprocessable("repository_gone", "the restore point's repository is no longer in the catalog"))?;
    let vm_name = vm_contexts::Entity::find_by_id(backup.vm_context_id.clone())
        .one(&state.db)
        .await?
        .map(|v| v.name)
        .unwrap_or_else(|| backup.snapshot_name.clone());
    state.restore_sessions.check_room()?;
    let now = Utc::now();
    let info = Mount {
        id: new_id(),
        backup_id: backup.id.clone(),
        vm_name: vm_name.clone(),
        backup_created_at: backup.created_at,
        opened_at: now,
        opened_by: me.username.clone(),
        last_used_at: now,
        expires_at: now + state.restore_sessions.idle(),
        volumes: Vec::new(),
        open_ms: 0,
    };
    let (name, id, path) = (backup.snapshot_name.clone(), backup.snapshot_id.clone(), repo.path.clone());
    let started = Instant::now();
    let session = blocking(move || {
        let ds = crate::engine::datastore::Datastore::open(std::path::Path::new(&path), None)?;
        let mut s = Session::open(&ds, &name, &id, info)?;
        s.set_open_ms(started.elapsed().as_millis() as u64);
        Ok(s)
    })
    .await?;
    let session = state.restore_sessions.insert(session)?;
    let info = session.info();
    tracing::info!(mount = %info.id, vm = %vm_name, volumes = info.volumes.len(), ms = info.open_ms, "file-level restore session opened");
    let target = format!("{vm_name} restore point {}", backup.id);
    Ok(noted((StatusCode::CREATED, ApiJson(info)), AuditNote::new("restore.mount", target)))
}

/// The open file-level restore sessions.
#[utoipa::path(get, path = "/restore/mounts", tag = "restore", responses((status = 200, body = Vec<Mount>)))]
async fn list_mounts(State(state): State<AppState>) -> ApiJson<Vec<Mount>> {
    ApiJson(state.restore_sessions.list())
}

/// One session with its volumes.
#[utoipa::path(get, path = "/restore/{mount_id}", tag = "restore", params(("mount_id" = String, Path, description = "Session id")),
    responses((status = 200, body = Mount), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
async fn get_mount(State(state): State<AppState>, Path(mount_id): Path<String>) -> Result<ApiJson<Mount>, ApiError> {
    Ok(ApiJson(state.restore_sessions.get(&mount_id)?.info()))
}

/// Closes a session.
#[utoipa::path(delete, path = "/restore/{mount_id}", tag = "restore", params(("mount_id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
async fn close_mount(State(state): State<AppState>, Path(mount_id): Path<String>) -> Result<Response, ApiError> {
    state.restore_sessions.remove(&mount_id)?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("restore.unmount", mount_id)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FilesQuery {
    /// `/` (the volumes), `/disk0-p1`, `/disk0-p1/etc`...
    path: Option<String>,
    offset: Option<u64>,
    /// 1 to 1000 (default 200).
    limit: Option<u64>,
}

/// A page of a directory, sorted by name. Links are shown with their
/// target, never followed.
#[utoipa::path(get, path = "/restore/{mount_id}/files", tag = "restore", params(("mount_id" = String, Path, description = "Session id"), FilesQuery),
    responses((status = 200, body = FileListing), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn list_files(State(state): State<AppState>, Path(mount_id): Path<String>, ApiQuery(q): ApiQuery<FilesQuery>) -> Result<ApiJson<FileListing>, ApiError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=FILES_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid_field("limit", format!("use 1 to {FILES_PAGE_MAX} entries per page")));
    }
    let session = state.restore_sessions.get(&mount_id)?;
    let path = q.path.unwrap_or_else(|| "/".into());
    let offset = q.offset.unwrap_or(0);
    Ok(ApiJson(blocking(move || session.list(&mount_id, &path, offset, limit)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DownloadQuery {
    /// A file (sent as is) or a directory (sent as a tar archive).
    path: String,
}

/// A file name safe in a `Content-Disposition` header.
fn attachment_name(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' { c } else { '_' }).collect();
    if clean.is_empty() { "download".into() } else { clean }
}

/// Streams a file, or a directory and everything below it as a tar
/// archive (relative paths, links stored as links).
#[utoipa::path(get, path = "/restore/{mount_id}/download", tag = "restore", params(("mount_id" = String, Path, description = "Session id"), DownloadQuery),
    responses((status = 200, description = "The file, or a tar archive of the directory", content_type = "application/octet-stream"),
    (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn download(State(state): State<AppState>, Path(mount_id): Path<String>, ApiQuery(q): ApiQuery<DownloadQuery>) -> Result<Response, ApiError> {
    let session = state.restore_sessions.get(&mount_id)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(4);
    let path = q.path.clone();
    // Checked and opened before the answer starts, so errors get a status.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(String, Option<u64>, bool), SessionError>>();
    tokio::task::spawn_blocking(move || {
        let target = match session.resolve(&path) {
            Ok(Target::Root) => Err(SessionError::RootIsNotAFile(session.info().volumes.first().map(|v| v.id.clone()).unwrap_or_default())),
            Ok(t) => Ok(t),
            Err(e) => Err(e),
        };
        let (fs, volume, inner) = match target {
            Ok(Target::Volume { fs, volume, path }) => (fs.clone(), volume.to_string(), path),
            Ok(Target::Root) => unreachable!("refused above"),
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let entry = match fs.stat(&inner) {
            Ok(e) => e,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        let name = inner.file_name().map(str::to_string).unwrap_or_else(|| volume.clone());
        let mut out = ChannelWriter::new(tx);
        match entry.kind {
            guest_fs::EntryKind::File => {
                let reader = match fs.open_file(&inner) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((name, Some(entry.size), false)));
                let mut reader = reader;
                if let Err(e) = std::io::copy(&mut reader, &mut out).and_then(|_| std::io::Write::flush(&mut out)) {
                    tracing::warn!(error = %e, "file download stopped");
                    out.fail(e);
                }
            }
            guest_fs::EntryKind::Dir => {
                let _ = ready_tx.send(Ok((format!("{name}.tar"), None, true)));
                if let Err(e) = sessions::tar_directory(fs.as_ref(), &inner, &name, out) {
                    tracing::warn!(error = %e, "directory download stopped");
                }
            }
            _ => {
                let _ = ready_tx.send(Err(SessionError::Guest(guest_fs::Error::NotAFile { path: sessions::session_path(&volume, &inner) })));
            }
        }
    });
    let (name, size, archive) = match ready_rx.await {
        Ok(r) => r?,
        Err(_) => return Err(ApiError::Internal(anyhow::anyhow!("the download task stopped before starting"))),
    };
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    let kind = if archive { "application/x-tar" } else { "application/octet-stream" };
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{}\"", attachment_name(&name))) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(n) = size {
        headers.insert(header::CONTENT_LENGTH, n.into());
    }
    Ok(noted(response, AuditNote::new("restore.download", format!("{mount_id}:{}", q.path))))
}
