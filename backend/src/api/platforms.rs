//! `/api/v1/platforms`: add a KVM host by its libvirt URI, list, show, test
//! a connection without saving, rename or reach it another way (checked to be
//! the same host), rediscover, remove.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::discovery::{AddPlatformRequest, DiscoverVmsResponse, Platform, PlatformStatus, PlatformTest, TestPlatformRequest, UpdatePlatformRequest};
use shared_types::error::ErrorBody;
use shared_types::jobs::JobStatus;
use shared_types::platform::{HostInventory, PlatformKind};
use shared_types::validate_name;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{is_unique_violation, noted};
use super::{discovery, ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::catalog::{convert, from_wire, inventory, to_u64};
use crate::db::entities::{backups, jobs, networks, platforms, vm_contexts};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_platforms, add_platform))
        .routes(routes!(test_platform))
        .routes(routes!(get_platform, update_platform, delete_platform))
        .routes(routes!(rediscover))
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<platforms::Model, ApiError> {
    platforms::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("platform_not_found", format!("No platform has the id '{id}'. GET /api/v1/platforms lists them.")))
}

/// Platforms as the API shows them: managed VM counts and networks loaded once.
pub async fn to_api(db: &impl ConnectionTrait, rows: Vec<platforms::Model>) -> Result<Vec<Platform>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|p| p.id.clone()).collect();
    let managed: HashMap<String, i64> = vm_contexts::Entity::find()
        .select_only()
        .column(vm_contexts::Column::PlatformId)
        .column_as(Expr::col(vm_contexts::Column::Id).count(), "n")
        .filter(vm_contexts::Column::PlatformId.is_in(ids.clone()))
        .group_by(vm_contexts::Column::PlatformId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut nets: HashMap<String, Vec<networks::Model>> = HashMap::new();
    for n in networks::Entity::find()
        .filter(networks::Column::PlatformId.is_in(ids))
        .order_by_asc(networks::Column::Name)
        .all(db)
        .await?
    {
        nets.entry(n.platform_id.clone()).or_default().push(n);
    }
    Ok(rows
        .into_iter()
        .map(|p| Platform {
            kind: from_wire(&p.kind).unwrap_or(PlatformKind::Kvm),
            status: PlatformStatus::parse(&p.status).unwrap_or(PlatformStatus::Error),
            managed_vms: managed.get(&p.id).copied().map(to_u64).unwrap_or(0),
            networks: nets.remove(&p.id).unwrap_or_default().into_iter().map(convert::network).collect(),
            discovered_vms: to_u64(p.discovered_vms),
            id: p.id,
            name: p.name,
            address: p.address,
            last_discovery_at: p.last_discovery_at,
            last_error: p.last_error,
            created_at: p.created_at,
        })
        .collect())
}

pub async fn one_to_api(db: &impl ConnectionTrait, row: platforms::Model) -> Result<Platform, ApiError> {
    to_api(db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("platform row vanished")))
}

/// Checks kind and address before anything touches the platform.
fn check_target(kind: PlatformKind, address: &str) -> Result<(), ApiError> {
    if kind != PlatformKind::Kvm {
        return Err(ApiError::invalid_value(
            "kind",
            format!("{} platforms cannot be added yet; only KVM/QEMU hosts (kind 'kvm') can.", kind.label()),
        ));
    }
    if address.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "address",
            "Enter the libvirt URI of the KVM host (qemu:///system, qemu+ssh://user@host/system, qemu+unix:///system?socket=/path/to/libvirt-sock).",
        ));
    }
    if address.len() > 1024 || address.chars().any(char::is_control) {
        return Err(ApiError::invalid_field("address", "A libvirt URI has at most 1024 characters and no control characters."));
    }
    if !crate::platforms::libvirt::is_uri(address) {
        return Err(ApiError::invalid_field("address", crate::platforms::libvirt::not_a_uri(address)));
    }
    crate::platforms::libvirt::check_uri(address).map(|_| ()).map_err(|m| ApiError::invalid_field("address", m))
}

/// Refuses an address outside the platform roots (`--platform-root`): a
/// 422 naming the roots, the same whether the path exists or not.
fn check_root(state: &AppState, address: &str) -> Result<(), ApiError> {
    // A libvirt URI is checked by the unix socket it names, if any.
    let path = if crate::platforms::libvirt::is_uri(address) {
        match crate::platforms::libvirt::check_uri(address) {
            Ok(Some(socket)) => socket.display().to_string(),
            _ => return Ok(()),
        }
    } else {
        address.trim().to_string()
    };
    state.roots.check_platform(&path).map(|_| ()).map_err(|r| ApiError::Unprocessable {
        code: "address_not_allowed",
        message: r.0.clone(),
        details: vec![shared_types::error::FieldError { field: "address".into(), message: r.0 }],
    })
}

/// Opens the platform (the error names what is wrong with it), then reads
/// its inventory. `Ok((canonical address, inventory or why not))`.
async fn probe(kind: PlatformKind, address: &str) -> Result<(String, Result<HostInventory, String>), String> {
    let address = address.trim().to_owned();
    tokio::task::spawn_blocking(move || {
        let platform = inventory::connect(kind, &address).map_err(|e| e.to_string())?;
        // A libvirt host that does not answer now is not added.
        crate::platforms::libvirt::open(&address).map_err(|e| e.to_string())?;
        Ok((address, platform.inventory().map_err(|e| e.to_string())))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the connection test stopped unexpectedly: {e}")))
}

/// Every platform, by name.
#[utoipa::path(get, path = "/platforms", tag = "platforms", responses((status = 200, body = Vec<Platform>)))]
async fn list_platforms(State(state): State<AppState>) -> Result<ApiJson<Vec<Platform>>, ApiError> {
    let rows = platforms::Entity::find().order_by_asc(platforms::Column::Name).all(&state.db).await?;
    Ok(ApiJson(to_api(&state.db, rows).await?))
}

/// Adds a platform (a KVM host by its libvirt URI) and discovers it. The
/// URI is checked first: a malformed one is a 400, a unix socket outside
/// the platform roots (`--platform-root`) or a host that does not answer a
/// 422 naming the problem.
#[utoipa::path(post, path = "/platforms", tag = "platforms", request_body = AddPlatformRequest, responses(
    (status = 201, body = Platform), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_platform(State(state): State<AppState>, ApiJson(req): ApiJson<AddPlatformRequest>) -> Result<Response, ApiError> {
    check_target(req.kind, &req.address)?;
    check_root(&state, &req.address)?;
    if let Some(name) = &req.name {
        validate_name("platform", name).map_err(|m| ApiError::invalid_field("name", m))?;
    }
    let (address, inv) = probe(req.kind, &req.address)
        .await
        .map_err(|m| ApiError::invalid_value("address", format!("{m}. Check the address and try again.")))?;
    let kind = crate::catalog::wire(&req.kind);
    if let Some(existing) = platforms::Entity::find()
        .filter(platforms::Column::Kind.eq(kind.clone()))
        .filter(platforms::Column::Address.eq(address.clone()))
        .one(&state.db)
        .await?
    {
        return Err(ApiError::conflict(
            "platform_exists",
            format!("'{address}' is already added as platform '{}' (id {}).", existing.name, existing.id),
        ));
    }
    let name = match (&req.name, &inv) {
        (Some(n), _) => n.clone(),
        (None, Ok(inv)) => inv.host.name.clone(),
        (None, Err(_)) => Path::new(&address).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| address.clone()),
    };
    validate_name("platform", &name).map_err(|m| ApiError::invalid_field("name", m))?;
    if platforms::Entity::find().filter(platforms::Column::Name.eq(name.clone())).count(&state.db).await? > 0 {
        return Err(ApiError::conflict("platform_name_taken", format!("A platform named '{name}' exists already; give another 'name'.")));
    }
    let row = inventory::insert_platform(&state.db, &name, req.kind, &address).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("platform_exists", format!("A platform named '{name}' or at '{address}' was just added; reload the list."))
        } else {
            e.into()
        }
    })?;
    state.power_watches.watch(&state.db, &state.events, &row.id, &row.address);
    let row = match inv {
        Ok(inv) => inventory::apply(&state.db, row, &inv).await?.0,
        Err(m) => inventory::record_failure(&state.db, row, &m).await?,
    };
    let platform = one_to_api(&state.db, row).await?;
    let target = format!("{} ({})", platform.name, platform.address);
    Ok(noted((StatusCode::CREATED, ApiJson(platform)), AuditNote::new("platform.add", target)))
}

/// Reaches a platform without saving it: `ok: false` with the reason when it
/// cannot be used. An address outside the platform roots is a 422 (without
/// looking whether it exists).
#[utoipa::path(post, path = "/platforms/test", tag = "platforms", request_body = TestPlatformRequest, responses(
    (status = 200, body = PlatformTest), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn test_platform(State(state): State<AppState>, ApiJson(req): ApiJson<TestPlatformRequest>) -> Result<Response, ApiError> {
    check_target(req.kind, &req.address)?;
    check_root(&state, &req.address)?;
    let started = Instant::now();
    let result = probe(req.kind, &req.address).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let test = match result {
        Ok((_, Ok(inv))) => PlatformTest {
            ok: true,
            message: format!("Reached '{}': {} VMs, {} networks.", inv.host.name, inv.vms.len(), inv.networks.len()),
            vm_count: inv.vms.len() as u64,
            host: Some(inv.host),
            networks: inv.networks,
            duration_ms,
        },
        Ok((address, Err(m))) => PlatformTest {
            ok: false,
            message: format!("'{address}' opens, but its VMs cannot be read: {m}"),
            host: None,
            vm_count: 0,
            networks: Vec::new(),
            duration_ms,
        },
        Err(m) => PlatformTest { ok: false, message: m, host: None, vm_count: 0, networks: Vec::new(), duration_ms },
    };
    let target = format!("{} ({})", req.address.trim(), if test.ok { "ok" } else { "failed" });
    Ok(noted(ApiJson(test), AuditNote::new("platform.test", target)))
}

#[utoipa::path(get, path = "/platforms/{id}", tag = "platforms", params(("id" = String, Path, description = "Platform id")),
    responses((status = 200, body = Platform), (status = 404, body = ErrorBody)))]
async fn get_platform(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<ApiJson<Platform>, ApiError> {
    let row = find(&state.db, &id).await?;
    Ok(ApiJson(one_to_api(&state.db, row).await?))
}

/// Renames a platform, or changes how it is reached (its libvirt URI: a
/// user, key file, socket or host name). A new address is tested first and
/// must reach the same host: every VM under management there must be on it
/// (by the platform's stable VM id), else 409 and nothing changes. The
/// platform is then discovered through the new address.
#[utoipa::path(patch, path = "/platforms/{id}", tag = "platforms", params(("id" = String, Path, description = "Platform id")),
    request_body = UpdatePlatformRequest, responses((status = 200, body = Platform), (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_platform(State(state): State<AppState>, UrlPath(id): UrlPath<String>, ApiJson(req): ApiJson<UpdatePlatformRequest>) -> Result<Response, ApiError> {
    let mut row = find(&state.db, &id).await?;
    let before = format!("{} ({})", row.name, row.address);
    if let Some(name) = &req.name {
        validate_name("platform", name).map_err(|m| ApiError::invalid_field("name", m))?;
        let taken = platforms::Entity::find()
            .filter(platforms::Column::Name.eq(name.clone()))
            .filter(platforms::Column::Id.ne(row.id.clone()))
            .count(&state.db)
            .await?;
        if taken > 0 {
            return Err(ApiError::conflict("platform_name_taken", format!("A platform named '{name}' exists already; give another 'name'.")));
        }
    }
    let mut inventory_now = None;
    if let Some(address) = req.address.as_deref().map(str::trim).filter(|a| *a != row.address) {
        let kind = from_wire(&row.kind).unwrap_or(PlatformKind::Kvm);
        check_target(kind, address)?;
        check_root(&state, address)?;
        let (address, inv) = probe(kind, address)
            .await
            .map_err(|m| ApiError::invalid_value("address", format!("{m}. The platform keeps its address '{}'.", row.address)))?;
        let inv = inv.map_err(|m| ApiError::invalid_value("address", format!("'{address}' opens, but its VMs cannot be read: {m}")))?;
        let other = platforms::Entity::find()
            .filter(platforms::Column::Address.eq(address.clone()))
            .filter(platforms::Column::Id.ne(row.id.clone()))
            .one(&state.db)
            .await?;
        if let Some(other) = other {
            return Err(ApiError::conflict("platform_exists", format!("'{address}' is platform '{}' already (id {}).", other.name, other.id)));
        }
        let managed: Vec<(String, String)> = vm_contexts::Entity::find()
            .select_only()
            .column(vm_contexts::Column::PlatformVmId)
            .column(vm_contexts::Column::Name)
            .filter(vm_contexts::Column::PlatformId.eq(row.id.clone()))
            .into_tuple()
            .all(&state.db)
            .await?;
        let there: std::collections::HashSet<&str> = inv.vms.iter().map(|v| v.id.as_str()).collect();
        let missing: Vec<&str> = managed.iter().filter(|(uuid, _)| !there.contains(uuid.as_str())).map(|(_, name)| name.as_str()).collect();
        if !missing.is_empty() {
            return Err(ApiError::conflict(
                "platform_identity",
                format!(
                    "'{address}' reaches host '{}', which does not have {} of the {} VMs managed on '{}' (for example '{}'): \
                     it is not the same host, so the platform keeps its address. Add it as a platform of its own instead.",
                    inv.host.name,
                    missing.len(),
                    managed.len(),
                    row.name,
                    missing[0]
                ),
            ));
        }
        inventory_now = Some((address, inv));
    }
    let mut update: platforms::ActiveModel = row.clone().into();
    if let Some(name) = req.name.clone() {
        update.name = sea_orm::Set(name);
    }
    if let Some((address, _)) = &inventory_now {
        update.address = sea_orm::Set(address.clone());
    }
    update.updated_at = sea_orm::Set(chrono::Utc::now());
    row = sea_orm::ActiveModelTrait::update(update, &state.db).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("platform_exists", "Another platform just took that name or address; reload the list.")
        } else {
            e.into()
        }
    })?;
    if let Some((_, inv)) = inventory_now {
        state.power_watches.unwatch(&row.id);
        state.power_watches.watch(&state.db, &state.events, &row.id, &row.address);
        row = inventory::apply(&state.db, row, &inv).await?.0;
    }
    let platform = one_to_api(&state.db, row).await?;
    let target = format!("{before} -> {} ({})", platform.name, platform.address);
    Ok(noted(ApiJson(platform), AuditNote::new("platform.update", target)))
}

/// Discovers the platform again: its record, networks and managed VMs are refreshed.
#[utoipa::path(post, path = "/platforms/{id}/rediscover", tag = "platforms", params(("id" = String, Path, description = "Platform id")),
    responses((status = 200, body = DiscoverVmsResponse), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn rediscover(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let name = row.name.clone();
    let found = discovery::discover(&state, row).await?;
    let target = format!("{name} ({} VMs)", found.vms.len());
    Ok(noted(ApiJson(found), AuditNote::new("platform.rediscover", target)))
}

/// Removes a platform and its managed VMs. Refused while restore points of
/// its VMs exist or jobs of its VMs are active.
#[utoipa::path(delete, path = "/platforms/{id}", tag = "platforms", params(("id" = String, Path, description = "Platform id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_platform(State(state): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let of_platform = Query::select()
        .column(vm_contexts::Column::Id)
        .from(vm_contexts::Entity)
        .and_where(Expr::col(vm_contexts::Column::PlatformId).eq(row.id.clone()))
        .to_owned();
    let restore_points = backups::Entity::find()
        .filter(backups::Column::VmContextId.in_subquery(of_platform.clone()))
        .count(&state.db)
        .await?;
    if restore_points > 0 {
        return Err(ApiError::conflict(
            "platform_has_backups",
            format!(
                "{restore_points} restore points of VMs on '{}' exist; delete them first (DELETE /api/v1/backup/{{id}}) or keep the platform.",
                row.name
            ),
        ));
    }
    let active = jobs::Entity::find()
        .filter(jobs::Column::VmContextId.in_subquery(of_platform))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .count(&state.db)
        .await?;
    if active > 0 {
        return Err(ApiError::conflict(
            "platform_busy",
            format!("{active} jobs of VMs on '{}' are queued or running; stop them or wait, then remove the platform.", row.name),
        ));
    }
    platforms::Entity::delete_by_id(row.id.clone()).exec(&state.db).await.map_err(|e| {
        if super::common::is_foreign_key_violation(&e) {
            ApiError::conflict("platform_has_backups", format!("A backup of a VM on '{}' was just recorded; it cannot be removed now.", row.name))
        } else {
            e.into()
        }
    })?;
    state.power_watches.unwatch(&row.id);
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("platform.delete", row.name)))
}
