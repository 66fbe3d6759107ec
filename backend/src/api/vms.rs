//! Managed VMs: `/api/v1/vm-contexts` (the list with backup status, one
//! VM, unmanage) and `/api/v1/vms` (the same list by platform id or name,
//! and one VM with its disks, NICs, flows, restore points and jobs).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::jobs::JobStatus;
use shared_types::platform::{PowerAction, PowerRequest, PowerState};
use shared_types::vms::{ProtectionStatus, VmConsole, VmContextPage, VmDetails, VmStatus};
use shared_types::NamedRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{noted, page};
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::catalog::convert;
use crate::catalog::vm_list::{self, VmFilter};
use crate::db::entities::{backups, flow_vms, flows, jobs, platforms, vm_contexts, vm_disks, vm_nics};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_vm_contexts))
        .routes(routes!(get_vm_context, unmanage))
        .routes(routes!(list_vms))
        .routes(routes!(get_vm))
        .routes(routes!(power))
        .routes(routes!(console))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VmQuery {
    /// Only VMs of this platform (its id; `/vms` also takes its name).
    platform: Option<String>,
    /// Only VMs of this protection group (id).
    group: Option<String>,
    /// `true`: only VMs in no group.
    ungrouped: Option<bool>,
    /// `active` or `missing`.
    status: Option<VmStatus>,
    /// `protected`, `partial` or `unprotected`.
    protection: Option<ProtectionStatus>,
    /// `running`, `stopped` or `suspended` (as last seen).
    power: Option<PowerState>,
    /// Part of the VM name, any case.
    search: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

fn filter(q: VmQuery) -> VmFilter {
    VmFilter {
        platform_id: q.platform,
        group_id: q.group,
        ungrouped: q.ungrouped.unwrap_or(false),
        status: q.status,
        protection: q.protection,
        power: q.power,
        search: q.search.map(|s| s.chars().take(255).collect()),
        ids: None,
    }
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<vm_contexts::Model, ApiError> {
    vm_contexts::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("vm_not_found", format!("No managed VM has the id '{id}'. GET /api/v1/vm-contexts lists them.")))
}

/// Managed VMs by name, with last backup, restore point count and sizes, and protection.
#[utoipa::path(get, path = "/vm-contexts", tag = "vms", params(VmQuery), responses(
    (status = 200, body = VmContextPage), (status = 400, body = ErrorBody)))]
async fn list_vm_contexts(State(state): State<AppState>, ApiQuery(q): ApiQuery<VmQuery>) -> Result<ApiJson<VmContextPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let (items, total) = vm_list::page(&state.db, &filter(q), limit, offset).await?;
    Ok(ApiJson(VmContextPage { items, total }))
}

/// Managed VMs by name; `platform` may be a platform's id or its name.
#[utoipa::path(get, path = "/vms", tag = "vms", params(VmQuery), responses(
    (status = 200, body = VmContextPage), (status = 400, body = ErrorBody)))]
async fn list_vms(State(state): State<AppState>, ApiQuery(mut q): ApiQuery<VmQuery>) -> Result<ApiJson<VmContextPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    if let Some(p) = q.platform.clone() {
        let by_name = platforms::Entity::find()
            .filter(Condition::any().add(platforms::Column::Id.eq(p.clone())).add(platforms::Column::Name.eq(p)))
            .one(&state.db)
            .await?;
        if let Some(found) = by_name {
            q.platform = Some(found.id);
        }
    }
    let (items, total) = vm_list::page(&state.db, &filter(q), limit, offset).await?;
    Ok(ApiJson(VmContextPage { items, total }))
}

async fn details(state: &AppState, row: vm_contexts::Model) -> Result<VmDetails, ApiError> {
    let db = &state.db;
    let disks = vm_disks::Entity::find()
        .filter(vm_disks::Column::VmContextId.eq(row.id.clone()))
        .order_by_asc(vm_disks::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(convert::disk)
        .collect();
    let nics = vm_nics::Entity::find()
        .filter(vm_nics::Column::VmContextId.eq(row.id.clone()))
        .order_by_asc(vm_nics::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(convert::nic)
        .collect();
    let direct = Query::select()
        .column(flow_vms::Column::FlowId)
        .from(flow_vms::Entity)
        .and_where(Expr::col(flow_vms::Column::VmContextId).eq(row.id.clone()))
        .to_owned();
    let mut covering = Condition::any().add(flows::Column::Id.in_subquery(direct));
    if let Some(g) = &row.group_id {
        covering = covering.add(flows::Column::GroupId.eq(g.clone()));
    }
    let flows = flows::Entity::find()
        .filter(covering)
        .order_by_asc(flows::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(|f| NamedRef { id: f.id, name: f.name })
        .collect();
    let recent_backups = backups::Entity::find()
        .filter(backups::Column::VmContextId.eq(row.id.clone()))
        .order_by_desc(backups::Column::CreatedAt)
        .limit(20)
        .all(db)
        .await?;
    let recent_jobs = jobs::Entity::find()
        .filter(jobs::Column::VmContextId.eq(row.id.clone()))
        .order_by_desc(jobs::Column::CreatedAt)
        .limit(20)
        .all(db)
        .await?;
    let vm = vm_list::enrich(db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("VM row vanished")))?;
    Ok(VmDetails {
        vm,
        disks,
        nics,
        flows,
        recent_backups: convert::backups(db, recent_backups).await?,
        recent_jobs: convert::jobs(db, recent_jobs).await?,
    })
}

/// One managed VM with its disks, NICs, covering flows, newest restore points and jobs.
#[utoipa::path(get, path = "/vms/{id}", tag = "vms", params(("id" = String, Path, description = "VM context id")),
    responses((status = 200, body = VmDetails), (status = 404, body = ErrorBody)))]
async fn get_vm(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<VmDetails>, ApiError> {
    let row = find(&state.db, &id).await?;
    Ok(ApiJson(details(&state, row).await?))
}

/// The same as `GET /vms/{id}`.
#[utoipa::path(get, path = "/vm-contexts/{id}", tag = "vms", params(("id" = String, Path, description = "VM context id")),
    responses((status = 200, body = VmDetails), (status = 404, body = ErrorBody)))]
async fn get_vm_context(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<VmDetails>, ApiError> {
    let row = find(&state.db, &id).await?;
    Ok(ApiJson(details(&state, row).await?))
}

/// Stops managing a VM (the VM itself is untouched). Refused while it has
/// restore points or active jobs.
#[utoipa::path(delete, path = "/vm-contexts/{id}", tag = "vms", params(("id" = String, Path, description = "VM context id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn unmanage(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let points = backups::Entity::find().filter(backups::Column::VmContextId.eq(row.id.clone())).count(&state.db).await?;
    if points > 0 {
        return Err(ApiError::conflict(
            "vm_has_backups",
            format!("'{}' has {points} restore points; delete them first (DELETE /api/v1/backup/{{id}}) to stop managing it.", row.name),
        ));
    }
    let active = jobs::Entity::find()
        .filter(jobs::Column::VmContextId.eq(row.id.clone()))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .count(&state.db)
        .await?;
    if active > 0 {
        return Err(ApiError::conflict("vm_busy", format!("'{}' has {active} queued or running jobs; stop them first.", row.name)));
    }
    vm_contexts::Entity::delete_by_id(row.id.clone()).exec(&state.db).await.map_err(|e| {
        if super::common::is_foreign_key_violation(&e) {
            ApiError::conflict("vm_has_backups", format!("A restore point of '{}' was just recorded; it stays managed.", row.name))
        } else {
            e.into()
        }
    })?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("vm.unmanage", row.name)))
}

/// Powers a managed VM on, shuts it down (ACPI, then a hard stop after
/// `timeout_seconds`), stops it hard or reboots it, on its platform; the
/// catalog takes the power state the platform then reports. Audited.
#[utoipa::path(post, path = "/vms/{id}/power", tag = "vms", params(("id" = String, Path, description = "VM context id")),
    request_body = PowerRequest,
    responses((status = 200, body = VmDetails), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn power(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<PowerRequest>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let timeout = req.timeout_seconds.unwrap_or(60);
    if timeout == 0 || timeout > 3600 {
        return Err(ApiError::invalid_field("timeout_seconds", "A shutdown timeout is 1 to 3600 seconds."));
    }
    let (platform, kind) = platform_of(&state, &row).await?;
    let (address, vm_ref, action) = (platform.address.clone(), row.platform_vm_id.clone(), req.action);
    let result = tokio::task::spawn_blocking(move || {
        crate::catalog::inventory::connect(kind, &address)
            .and_then(|p| p.power(&vm_ref, action, std::time::Duration::from_secs(timeout.into())))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the power thread failed: {e}")))?;
    let vm = result.map_err(|e| ApiError::Unprocessable {
        code: "power_failed",
        message: format!("{} of '{}' on {} failed: {e}", action_label(action), row.name, platform.name),
        details: Vec::new(),
    })?;
    crate::catalog::power_watch::record_power(&state.db, &row.id, vm.power).await?;
    let row = find(&state.db, &id).await?;
    let name = row.name.clone();
    let body = details(&state, row).await?;
    Ok(noted(ApiJson(body), AuditNote::new(audit_action(action), name)))
}

fn audit_action(a: PowerAction) -> &'static str {
    match a {
        PowerAction::Start => "vm.power.start",
        PowerAction::Shutdown => "vm.power.shutdown",
        PowerAction::Stop => "vm.power.stop",
        PowerAction::Reboot => "vm.power.reboot",
    }
}

fn action_label(a: PowerAction) -> &'static str {
    match a {
        PowerAction::Start => "start",
        PowerAction::Shutdown => "shutdown",
        PowerAction::Stop => "stop",
        PowerAction::Reboot => "reboot",
    }
}

/// The platform row a managed VM lives on, and its kind.
async fn platform_of(state: &AppState, row: &vm_contexts::Model) -> Result<(platforms::Model, shared_types::platform::PlatformKind), ApiError> {
    let platform = platforms::Entity::find_by_id(row.platform_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("platform_not_found", format!("The platform of '{}' is gone.", row.name)))?;
    let kind = crate::catalog::from_wire(&platform.kind)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("platform kind '{}' unknown", platform.kind)))?;
    Ok((platform, kind))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ConsoleQuery {
    /// Lines to return, newest last (default 40, at most 500).
    lines: Option<usize>,
}

/// The last lines a VM printed on its serial console (where its host keeps
/// a log this server can read: a libvirt host on this machine).
#[utoipa::path(get, path = "/vms/{id}/console", tag = "vms", params(("id" = String, Path, description = "VM context id"), ConsoleQuery),
    responses((status = 200, body = VmConsole), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn console(State(state): State<AppState>, Path(id): Path<String>, ApiQuery(q): ApiQuery<ConsoleQuery>) -> Result<ApiJson<VmConsole>, ApiError> {
    let lines = q.lines.unwrap_or(40);
    if lines == 0 || lines > 500 {
        return Err(ApiError::invalid_field("lines", "Ask for 1 to 500 lines."));
    }
    let row = find(&state.db, &id).await?;
    let (platform, kind) = platform_of(&state, &row).await?;
    let (address, vm_ref) = (platform.address.clone(), row.platform_vm_id.clone());
    let tail = tokio::task::spawn_blocking(move || crate::catalog::inventory::connect(kind, &address).and_then(|p| p.console_tail(&vm_ref, lines)))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the console thread failed: {e}")))?
        .map_err(|e| ApiError::Unprocessable { code: "console_unavailable", message: format!("'{}': {e}", row.name), details: Vec::new() })?;
    match tail {
        Some(lines) => Ok(ApiJson(VmConsole { lines })),
        None => Err(ApiError::not_found(
            "no_console_log",
            format!("'{}' has no serial console log this server can read (its platform keeps none, or the host is remote).", row.name),
        )),
    }
}
