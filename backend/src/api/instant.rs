//! Instant recovery: `POST /restore/instant` boots a VM on a libvirt host
//! straight from a restore point (202; its start job completes when the
//! guest is up), `GET /restore/instant[/{id}]` lists and shows them,
//! `POST /restore/instant/{id}/finalize` copies the rest onto the host
//! while the guest runs, `DELETE /restore/instant/{id}` discards one (or
//! forgets a finalized one, whose VM stays).

use std::collections::HashMap;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use shared_types::error::ErrorBody;
use shared_types::instant::{FinalizeRequest, InstantRecovery, InstantRecoveryRequest, InstantState, FINALIZE_BANDWIDTH_MAX};
use shared_types::jobs::JobStatus;
use shared_types::platform::PlatformKind;
use shared_types::recovery::RestoreVmRequest;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, noted};
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::{from_wire, inventory, new_id};
use crate::db::entities::{instant_recoveries, jobs, platforms, vm_contexts};
use crate::restore::{export_process, instant};
use crate::runner::instant_job::{self, InstantOptions};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start, list)).routes(routes!(get_one, discard)).routes(routes!(finalize))
}

/// The API view of rows, with platform and VM names and live progress.
async fn describe(state: &AppState, rows: Vec<instant_recoveries::Model>) -> Result<Vec<InstantRecovery>, ApiError> {
    let platforms: HashMap<String, String> = platforms::Entity::find().all(&state.db).await?.into_iter().map(|p| (p.id, p.name)).collect();
    let vms: HashMap<String, String> = vm_contexts::Entity::find().all(&state.db).await?.into_iter().map(|v| (v.id, v.name)).collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let st = InstantState::parse(&r.state).unwrap_or(InstantState::Failed);
        let (mut done, mut total) = (r.finalize_done.max(0) as u64, r.finalize_total.max(0) as u64);
        if st == InstantState::Finalizing {
            if let Some(j) = match &r.job_id {
                Some(id) => jobs::Entity::find_by_id(id.clone()).one(&state.db).await?,
                None => None,
            } {
                (done, total) = (j.bytes_read.max(0) as u64, j.bytes_total.max(0) as u64);
            }
        }
        let pinned = st.uses_restore_point() && r.export_pid.is_some_and(|p| export_process::is_serving(p as u32, std::path::Path::new(&r.socket)));
        out.push(InstantRecovery {
            id: r.id.clone(),
            backup_id: r.backup_id.clone(),
            vm_context_id: r.vm_context_id.clone(),
            source_vm_name: vms.get(&r.vm_context_id).cloned().unwrap_or_default(),
            target_platform_id: r.target_platform_id.clone(),
            target_platform_name: platforms.get(&r.target_platform_id).cloned().unwrap_or_default(),
            name: r.name,
            vm_id: r.vm_id,
            state: st,
            pinned,
            up_ms: r.up_ms.map(|m| m.max(0) as u64),
            boot_line: r.boot_line,
            finalize_done: done,
            finalize_total: total,
            job_id: r.job_id,
            error: r.error,
            created_by: r.created_by,
            created_at: r.created_at,
            finalized_at: r.finalized_at,
        });
    }
    Ok(out)
}

async fn one(state: &AppState, id: &str) -> Result<instant_recoveries::Model, ApiError> {
    check_id("id", id)?;
    instant_recoveries::Entity::find_by_id(id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("instant_recovery_not_found", format!("no instant recovery has the id '{id}' (GET /api/v1/restore/instant lists them)")))
}

async fn described(state: &AppState, row: instant_recoveries::Model) -> Result<InstantRecovery, ApiError> {
    describe(state, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("an instant recovery vanished")))
}

/// Boots a VM on a libvirt host straight from a restore point: nothing is
/// copied first; the restore point is served from the repository (and
/// pinned) under local overlays that take the guest's writes. Answers 202
/// with the instant recovery (`starting`); its job completes when the
/// guest's console shows its boot line.
#[utoipa::path(post, path = "/restore/instant", tag = "restore", request_body = InstantRecoveryRequest, responses(
    (status = 202, body = InstantRecovery), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn start(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<InstantRecoveryRequest>) -> Result<Response, ApiError> {
    let as_restore = RestoreVmRequest {
        backup_id: req.backup_id.clone(),
        target_platform_id: req.target_platform_id.clone(),
        name: req.name.clone(),
        overwrite: false,
        confirm_overwrite: None,
        disk_format: None,
        network_mapping: req.network_mapping.clone(),
        power_on: true,
        storage_pool: req.storage_pool.clone(),
        repository_id: req.repository_id.clone(),
    };
    let p = super::recovery::prepare(&state, &as_restore).await?;
    if let Some(message) = p.license {
        return Err(ApiError::ForbiddenCode { code: "license_required", message });
    }
    if p.name_taken {
        return Err(ApiError::conflict("vm_exists", format!("a VM named '{}' already exists on '{}': choose another name", req.name, p.target.name)));
    }
    // The instant VM needs the target's room only once finalized: the
    // other blockers (firmware, resources) hold as for a restore.
    let blockers: Vec<String> = p.report.blockers().filter(|n| !n.message.contains("not enough space")).map(|n| n.message.clone()).collect();
    if !blockers.is_empty() {
        return Err(ApiError::conflict("restore_blocked", format!("the compatibility check found blockers: {}", blockers.join("; "))));
    }
    let kind: PlatformKind = from_wire(&p.target.kind).unwrap_or(PlatformKind::Kvm);
    if !crate::platforms::libvirt::is_uri(&p.target.address) {
        return Err(ApiError::unprocessable(
            "target_unsupported",
            format!("instant recovery runs VMs on libvirt hosts; '{}' is not one", p.target.name),
        ));
    }
    let (address, name, vm, pool) = (p.target.address.clone(), p.target.name.clone(), req.name.clone(), req.storage_pool.clone());
    tokio::task::spawn_blocking(move || -> Result<PathBuf, String> {
        let target = inventory::connect(kind, &address).map_err(|e| e.to_string())?;
        instant::folder(target.as_ref(), pool.as_deref(), &vm).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("checking the target: {e}")))?
    .map_err(|e| ApiError::unprocessable("target_unsupported", format!("host '{name}' cannot run an instant recovery: {e}")))?;
    let busy = instant_recoveries::Entity::find()
        .filter(instant_recoveries::Column::TargetPlatformId.eq(p.target.id.clone()))
        .filter(instant_recoveries::Column::Name.eq(req.name.clone()))
        .filter(instant_recoveries::Column::State.is_in(InstantState::ACTIVE.map(|s| s.as_str())))
        .one(&state.db)
        .await?;
    if let Some(b) = busy {
        return Err(ApiError::conflict("instant_recovery_exists", format!("an instant recovery named '{}' is {} on that host (id {})", b.name, b.state, b.id)));
    }
    let o = &p.options;
    let options = InstantOptions { vcpus: o.vcpus, memory_mib: o.memory_mib, firmware: o.firmware, os: o.os, nics: o.nics.clone(), storage_pool: req.storage_pool.clone() };
    let id = new_id();
    let now = Utc::now();
    let row = instant_recoveries::ActiveModel {
        id: Set(id.clone()),
        backup_id: Set(p.backup.id.clone()),
        vm_context_id: Set(p.backup.vm_context_id.clone()),
        repository_id: Set(p.backup.repository_id.clone()),
        target_platform_id: Set(p.target.id.clone()),
        name: Set(req.name.clone()),
        vm_id: Set(None),
        state: Set(InstantState::Starting.as_str().into()),
        options: Set(serde_json::to_string(&options).map_err(|e| ApiError::Internal(e.into()))?),
        dir: Set(None),
        socket: Set(instant_job::socket_path(&id).display().to_string()),
        export_pid: Set(None),
        up_ms: Set(None),
        boot_line: Set(None),
        finalize_done: Set(0),
        finalize_total: Set(0),
        error: Set(None),
        job_id: Set(None),
        created_by: Set(Some(me.username.clone())),
        created_at: Set(now),
        updated_at: Set(now),
        finalized_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    state.runner.enqueue_instant(&row, instant_job::START, 0, Some(me.username.clone())).await?;
    let row = one(&state, &id).await?;
    let target = format!("{} from restore point {} on {}", req.name, p.backup.id, p.target.name);
    Ok(noted((StatusCode::ACCEPTED, ApiJson(described(&state, row).await?)), AuditNote::new("restore.instant", target)))
}

/// Instant recoveries, newest first (finalized and failed ones too, until
/// deleted).
#[utoipa::path(get, path = "/restore/instant", tag = "restore", responses((status = 200, body = Vec<InstantRecovery>)))]
async fn list(State(state): State<AppState>) -> Result<ApiJson<Vec<InstantRecovery>>, ApiError> {
    let rows = instant_recoveries::Entity::find().order_by_desc(instant_recoveries::Column::CreatedAt).all(&state.db).await?;
    Ok(ApiJson(describe(&state, rows).await?))
}

/// One instant recovery.
#[utoipa::path(get, path = "/restore/instant/{id}", tag = "restore", params(("id" = String, Path, description = "Instant recovery id")),
    responses((status = 200, body = InstantRecovery), (status = 404, body = ErrorBody)))]
async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<InstantRecovery>, ApiError> {
    let row = one(&state, &id).await?;
    Ok(ApiJson(described(&state, row).await?))
}

/// Copies the rest of the restore point onto the host while the guest
/// runs (a job with live progress); afterwards the VM no longer needs the
/// repository and the restore point is no longer pinned.
#[utoipa::path(post, path = "/restore/instant/{id}/finalize", tag = "restore", params(("id" = String, Path, description = "Instant recovery id")),
    request_body = FinalizeRequest, responses((status = 202, body = InstantRecovery), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn finalize(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>, ApiJson(req): ApiJson<FinalizeRequest>) -> Result<Response, ApiError> {
    let bw = req.bandwidth_mib_s.unwrap_or(0);
    if bw > FINALIZE_BANDWIDTH_MAX {
        return Err(ApiError::invalid_value("bandwidth_mib_s", format!("{bw} MiB/s is more than the {FINALIZE_BANDWIDTH_MAX} allowed; leave it unset for no cap")));
    }
    let row = one(&state, &id).await?;
    if InstantState::parse(&row.state) != Some(InstantState::Running) {
        return Err(ApiError::conflict("instant_recovery_not_running", format!("instant recovery '{}' is {}: only a running one can be finalized", row.name, row.state)));
    }
    state.runner.enqueue_instant(&row, instant_job::FINALIZE, bw, Some(me.username.clone())).await?;
    let row = one(&state, &id).await?;
    let name = row.name.clone();
    Ok(noted((StatusCode::ACCEPTED, ApiJson(described(&state, row).await?)), AuditNote::new("restore.instant.finalize", name)))
}

/// Discards an instant recovery: its VM is stopped and removed with its
/// overlays (what the guest wrote is lost), the export ends and the
/// restore point is free again. A finalized one is only forgotten: its VM
/// stays as an ordinary VM. Refused while its start or finalize job runs.
#[utoipa::path(delete, path = "/restore/instant/{id}", tag = "restore", params(("id" = String, Path, description = "Instant recovery id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn discard(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = one(&state, &id).await?;
    if let Some(job_id) = &row.job_id {
        if let Some(j) = jobs::Entity::find_by_id(job_id.clone()).one(&state.db).await? {
            if JobStatus::parse(&j.status).is_some_and(|s| s.is_active()) {
                return Err(ApiError::conflict(
                    "instant_recovery_busy",
                    format!("instant recovery '{}' has its {} job {} (job {}): stop it first", row.name, j.operation.as_deref().unwrap_or(""), j.status, j.id),
                ));
            }
        }
    }
    instant_job::discard(&state.runner, &row)
        .await
        .map_err(|e| ApiError::unprocessable("discard_failed", format!("instant recovery '{}' could not be discarded: {e}", row.name)))?;
    let name = row.name.clone();
    instant_recoveries::Entity::delete_by_id(row.id).exec(&state.db).await?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("restore.instant.discard", name)))
}
