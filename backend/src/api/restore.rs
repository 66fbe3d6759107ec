//! File-level restore: `POST /restore/mount` opens a session on a restore
//! point (its partitions and filesystems read straight from the store),
//! `GET /restore/{mount_id}/files?path=` lists a directory page by page,
//! `GET /restore/{mount_id}/download?path=` streams a file or a directory
//! (tar), `POST /restore/{mount_id}/restore-files` writes selected files
//! into a directory on the server's host or back into a VM's disk,
//! `DELETE /restore/{mount_id}` closes, `GET /restore/mounts` lists.
//! Sessions close by themselves when idle (`restore::sessions`).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sea_orm::EntityTrait;
use serde::Deserialize;
use shared_types::error::{ErrorBody, FieldError};
use shared_types::platform::PlatformKind;
use shared_types::jobs::Job;
use shared_types::restore::{FileListing, FileRestoreDestination, FileRestoreRequest, Mount, MountRequest, FILES_PAGE_MAX, RESTORE_FILES_MAX_PATHS};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, noted};
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::new_id;
use crate::catalog::from_wire;
use crate::db::entities::{backups, platforms, vm_contexts};
use crate::platforms::PlatformError;
use crate::restore::file_restore::{self, FileRestoreError};
use crate::runner::file_restore_job::{FileRestoreJobRequest, FileRestoreOptions, WriteTo};
use crate::restore::into_disk::{self, DiskDestination};
use crate::restore::sessions::{self, ChannelWriter, Session, SessionError, Target};
use crate::restore::to_directory;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mount))
        .routes(routes!(list_mounts))
        .routes(routes!(get_mount, close_mount))
        .routes(routes!(list_files))
        .routes(routes!(download))
        .routes(routes!(restore_files))
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

impl From<FileRestoreError> for ApiError {
    fn from(e: FileRestoreError) -> Self {
        use FileRestoreError as E;
        let m = e.to_string();
        let field = |code: &'static str, field: &str| ApiError::Unprocessable {
            code,
            message: m.clone(),
            details: vec![FieldError { field: field.into(), message: m.clone() }],
        };
        match e {
            E::Session(s) => s.into(),
            E::NoPaths | E::TooManyPaths(_) => ApiError::BadRequest { code: "invalid_field", message: m.clone(), details: vec![FieldError { field: "paths".into(), message: m }] },
            E::Traversal(_) | E::VolumeRoot(_) => ApiError::bad_request("invalid_path", m),
            E::MixedVolumes(..) => ApiError::bad_request("mixed_volumes", m),
            E::RelativeDestination(_) => ApiError::BadRequest { code: "invalid_field", message: m.clone(), details: vec![FieldError { field: "destination.path".into(), message: m }] },
            E::BadDirectory(_) => ApiError::BadRequest { code: "invalid_field", message: m.clone(), details: vec![FieldError { field: "destination.directory".into(), message: m }] },
            E::DestinationNotADirectory(_) => field("destination_not_a_directory", "destination.path"),
            E::DestinationUnusable { .. } => field("destination_unusable", "destination.path"),
            E::DirectoryIsAFile(_) => field("not_a_directory", "destination.directory"),
            E::UnknownVolume { .. } => field("volume_not_found", "destination.volume"),
            E::UnsupportedFilesystem { .. } => field("unsupported_filesystem", "destination.volume"),
            E::VmRunning { .. } => ApiError::conflict("vm_running", m),
            E::DiskBusy { .. } => ApiError::conflict("disk_in_use", m),
            E::NeedsRepair { .. } => ApiError::conflict("filesystem_needs_repair", m),
            E::NoSpace { .. } | E::Full(_) => ApiError::unprocessable("insufficient_space", m),
            E::CheckFailed { .. } => ApiError::unprocessable("filesystem_check_failed", m),
            E::Unsupported(_) => ApiError::unprocessable("unsupported", m),
            E::Platform(PlatformError::VmNotFound(_)) => field("vm_not_found", "destination.vm_id"),
            E::Platform(PlatformError::HostDir { .. }) => ApiError::unprocessable("platform_unreachable", m),
            E::Platform(PlatformError::ToolMissing { .. }) => ApiError::unavailable("tool_missing", m),
            E::Platform(PlatformError::ToolTimedOut { .. }) => ApiError::unavailable("tool_timed_out", m),
            E::Platform(p) => ApiError::Internal(anyhow::Error::new(p).context("file restore into a VM disk")),
            E::Io { ref source, .. } if matches!(source.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem) => {
                ApiError::unprocessable("permission_denied", format!("{m}; the Sendense server's user cannot write there"))
            }
            e @ E::Io { .. } => ApiError::Internal(anyhow::Error::new(e).context("file restore")),
            E::Stopped => ApiError::conflict("stopped", m),
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
    // Read from the location asked for, else the primary, else a copy.
    let (backup, repo) = super::backups::locate(&state, &backup, req.repository_id.as_deref()).await?;
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
    let (name, id, data_dir) = (backup.snapshot_name.clone(), backup.snapshot_id.clone(), state.data_dir.clone());
    let started = Instant::now();
    let session = blocking(move || {
        let ds = crate::catalog::repositories::open_datastore(&data_dir, &repo)?;
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

/// Restores selected files and directories of a session (all on one
/// volume) into a directory under a restore root on the Sendense host, or
/// into a volume of a powered-off VM's disk (nothing mounted; the disk is
/// unchanged unless the filesystem checks clean afterwards). `conflict`
/// decides what happens to names that exist; links are recreated, never
/// followed. The selection and the destination are checked here; the
/// writing is a `file_restore` job (202 with the job): follow it with
/// `GET /api/v1/jobs/{id}`, whose `file_restore` holds the result.
#[utoipa::path(post, path = "/restore/{mount_id}/restore-files", tag = "restore", params(("mount_id" = String, Path, description = "Session id")),
    request_body = FileRestoreRequest,
    responses((status = 202, body = Job), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn restore_files(State(state): State<AppState>, me: AuthUser, Path(mount_id): Path<String>, ApiJson(req): ApiJson<FileRestoreRequest>) -> Result<Response, ApiError> {
    if req.paths.is_empty() {
        return Err(FileRestoreError::NoPaths.into());
    }
    if req.paths.len() > RESTORE_FILES_MAX_PATHS {
        return Err(FileRestoreError::TooManyPaths(req.paths.len()).into());
    }
    let session = state.restore_sessions.get(&mount_id)?;
    let info = session.info();
    let backup = backups::Entity::find_by_id(info.backup_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::unprocessable("restore_point_gone", format!("the session's restore point '{}' was deleted; close the session", info.backup_id)))?;
    let (target, words, target_platform_id) = match &req.destination {
        FileRestoreDestination::HostDirectory { path } => {
            if !path.starts_with('/') {
                return Err(FileRestoreError::RelativeDestination(path.clone()).into());
            }
            let repositories = crate::catalog::repositories::local_paths(&state.db).await?;
            let dest = state.roots.check_destination(path, &repositories).map_err(|r| ApiError::Unprocessable {
                code: "destination_not_allowed",
                message: r.0.clone(),
                details: vec![FieldError { field: "destination.path".into(), message: r.0 }],
            })?;
            // Nothing is created yet: only what exists is checked.
            let check = dest.clone();
            tokio::task::spawn_blocking(move || to_directory::open_destination(&check, false).map(|_| ()))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("checking the destination stopped: {e}")))??;
            let words = format!("{} on the Sendense host", dest.path().display());
            (WriteTo::Host(dest), words, None)
        }
        FileRestoreDestination::VmDisk { vm_id, volume, directory } => {
            check_id("destination.vm_id", vm_id)?;
            let vm = vm_contexts::Entity::find_by_id(vm_id.clone()).one(&state.db).await?.ok_or_else(|| {
                ApiError::invalid_value("destination.vm_id", format!("no managed VM has the id '{vm_id}' (GET /api/v1/vm-contexts lists them)"))
            })?;
            let platform = platforms::Entity::find_by_id(vm.platform_id.clone())
                .one(&state.db)
                .await?
                .ok_or_else(|| ApiError::unprocessable("platform_gone", format!("the platform of VM '{}' is no longer in the catalog", vm.name)))?;
            let kind = match from_wire::<PlatformKind>(&platform.kind) {
                Some(k @ PlatformKind::Kvm) => k,
                _ => return Err(ApiError::unprocessable("unsupported", format!("files can be written into the disks of KVM VMs only; '{}' is on a {} platform", vm.name, platform.kind))),
            };
            let d = DiskDestination { kind, address: platform.address, vm: vm.platform_vm_id, volume: volume.clone(), directory: directory.clone() };
            // What can be told at once (the VM's power, the directory's form) is answered here.
            let check = d.clone();
            tokio::task::spawn_blocking(move || into_disk::precheck(&check))
                .await
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("checking the VM stopped: {e}")))??;
            let words = format!("{} {}", vm.name, volume);
            (WriteTo::Disk(d), words, Some(platform.id))
        }
    };
    let paths = req.paths.clone();
    let select_from = session.clone();
    let selection = tokio::task::spawn_blocking(move || file_restore::select(&select_from, &paths))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("checking the selection stopped: {e}")))??;
    let request = FileRestoreJobRequest {
        vm_context_id: backup.vm_context_id.clone(),
        repository_id: backup.repository_id.clone(),
        backup_id: backup.id.clone(),
        target_platform_id,
        options: FileRestoreOptions { mount_id: mount_id.clone(), paths: req.paths.clone(), destination: req.destination.clone(), conflict: req.conflict, result: None },
        selection,
        target,
        staging_dir: crate::runner::restore_job::staging_dir(&state.data_dir),
        requested_by: Some(me.username.clone()),
    };
    let row = state.runner.enqueue_file_restore(request).await?;
    let job = crate::catalog::convert::jobs(&state.db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("job row vanished")))?;
    tracing::info!(job = %job.id, mount = %mount_id, paths = req.paths.len(), destination = %words, "file restore queued");
    let note = AuditNote::new("restore.files", format!("{mount_id}: {} path(s) to {words} (job {})", req.paths.len(), job.id));
    Ok(noted((StatusCode::ACCEPTED, ApiJson(job)), note))
}
