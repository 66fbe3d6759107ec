//! `/api/v1/discovery`: discover a platform's VMs (and which are managed
//! already), bring VMs under management in bulk (idempotent), list the
//! managed VMs that are in no group.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;
use shared_types::discovery::{
    AlreadyManaged, BulkAddRequest, BulkAddResponse, DiscoverVmsRequest, DiscoverVmsResponse, DiscoveredVm, DiscoveryPhase,
    BULK_ADD_MAX,
};
use shared_types::ws::{DiscoveryProgress, ServerMessage};
use shared_types::error::ErrorBody;
use shared_types::platform::PlatformKind;
use shared_types::vms::{VmContextPage, VmStatus};
use shared_types::NamedRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, id_list, is_unique_violation, noted, page};
use super::{groups, platforms, ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::catalog::vm_list::{self, VmFilter};
use crate::catalog::{from_wire, inventory};
use crate::db::entities::{platforms as platform_rows, protection_groups, vm_contexts};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discover_vms))
        .routes(routes!(bulk_add))
        .routes(routes!(ungrouped_vms))
}

/// Reads the platform's inventory, applies it to the catalog and says which
/// VMs are managed. A platform that cannot be read is recorded as failing
/// and answered with 503 naming the problem.
pub async fn discover(state: &AppState, row: platform_rows::Model) -> Result<DiscoverVmsResponse, ApiError> {
    let started = Instant::now();
    let kind: PlatformKind = from_wire(&row.kind).unwrap_or(PlatformKind::Kvm);
    let progress = ProgressEvents::new(state, &row);
    progress.send(DiscoveryPhase::Connecting, 0, 0);
    let reading = progress.clone();
    let last_sent = std::sync::Mutex::new(None::<Instant>);
    let inv = match inventory::read_with_progress(kind, row.address.clone(), move |done, total| {
        // At most every 100 ms, and always the first and the last count.
        let Ok(mut last) = last_sent.lock() else { return };
        if done == 0 || done == total || last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            *last = Some(Instant::now());
            reading.send(DiscoveryPhase::Reading, done as u64, total as u64);
        }
    })
    .await
    {
        Ok(inv) => inv,
        Err(m) => {
            progress.send(DiscoveryPhase::Failed, 0, 0);
            let name = row.name.clone();
            inventory::record_failure(&state.db, row, &m).await?;
            return Err(ApiError::unavailable(
                "platform_unreachable",
                format!("Platform '{name}' cannot be read: {m}. Fix the host, then rediscover."),
            ));
        }
    };
    let total = inv.vms.len() as u64;
    progress.send(DiscoveryPhase::Applying, total, total);
    let (row, missing) = inventory::apply(&state.db, row, &inv).await?;
    progress.send(DiscoveryPhase::Done, total, total);
    let managed = vm_contexts::Entity::find().filter(vm_contexts::Column::PlatformId.eq(row.id.clone())).all(&state.db).await?;
    let group_ids: Vec<String> = managed.iter().filter_map(|m| m.group_id.clone()).collect();
    let group_names: HashMap<String, String> = if group_ids.is_empty() {
        HashMap::new()
    } else {
        protection_groups::Entity::find()
            .filter(protection_groups::Column::Id.is_in(group_ids))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|g| (g.id, g.name))
            .collect()
    };
    let by_vm: HashMap<String, vm_contexts::Model> = managed.into_iter().map(|m| (m.platform_vm_id.clone(), m)).collect();
    let refused = inv.refused.clone();
    let storage_pools = inv.storage_pools.clone();
    for r in &refused {
        tracing::warn!(platform = %row.name, vm = %r.name, reason = %r.reason, "VM refused at discovery");
    }
    let vms = inv
        .vms
        .into_iter()
        .map(|vm| {
            let ctx = by_vm.get(&vm.id);
            DiscoveredVm {
                managed: ctx.is_some(),
                vm_context_id: ctx.map(|c| c.id.clone()),
                group: ctx.and_then(|c| c.group_id.as_ref()).map(|g| NamedRef {
                    id: g.clone(),
                    name: group_names.get(g).cloned().unwrap_or_default(),
                }),
                vm,
            }
        })
        .collect();
    Ok(DiscoverVmsResponse {
        platform: platforms::one_to_api(&state.db, row).await?,
        vms,
        missing,
        refused,
        storage_pools,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Least time between two `discovery_progress` events of one discovery.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Sends a discovery's `discovery_progress` events on the WebSocket.
#[derive(Clone)]
struct ProgressEvents {
    events: tokio::sync::broadcast::Sender<ServerMessage>,
    platform_id: String,
    platform_name: String,
}

impl ProgressEvents {
    fn new(state: &AppState, row: &platform_rows::Model) -> Self {
        ProgressEvents { events: state.events.clone(), platform_id: row.id.clone(), platform_name: row.name.clone() }
    }

    fn send(&self, phase: DiscoveryPhase, done: u64, total: u64) {
        // No receiver (no cockpit open) is fine.
        let _ = self.events.send(ServerMessage::DiscoveryProgress(DiscoveryProgress {
            platform_id: self.platform_id.clone(),
            platform_name: self.platform_name.clone(),
            phase,
            done,
            total,
            at: Utc::now(),
        }));
    }
}

/// Discovers a platform's VMs now; each says whether it is managed already.
/// Progress is pushed on the WebSocket as `discovery_progress` events.
#[utoipa::path(post, path = "/discovery/discover-vms", tag = "discovery", request_body = DiscoverVmsRequest, responses(
    (status = 200, body = DiscoverVmsResponse), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody),
    (status = 503, body = ErrorBody)))]
async fn discover_vms(State(state): State<AppState>, ApiJson(req): ApiJson<DiscoverVmsRequest>) -> Result<Response, ApiError> {
    check_id("platform_id", &req.platform_id)?;
    let row = platforms::find(&state.db, &req.platform_id).await.map_err(|_| unknown_platform(&req.platform_id))?;
    let name = row.name.clone();
    let found = discover(&state, row).await?;
    let target = format!("{name} ({} VMs)", found.vms.len());
    Ok(noted(ApiJson(found), AuditNote::new("discovery.discover", target)))
}

fn unknown_platform(id: &str) -> ApiError {
    ApiError::invalid_value("platform_id", format!("No platform has the id '{id}'. GET /api/v1/platforms lists them."))
}

/// Brings VMs of a platform under management, optionally into a group.
/// VMs managed already are reported, not added twice; ids the platform does
/// not report are listed in `not_found`.
#[utoipa::path(post, path = "/discovery/bulk-add", tag = "discovery", request_body = BulkAddRequest, responses(
    (status = 200, body = BulkAddResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn bulk_add(State(state): State<AppState>, ApiJson(req): ApiJson<BulkAddRequest>) -> Result<Response, ApiError> {
    check_id("platform_id", &req.platform_id)?;
    let wanted = id_list("vm_ids", &req.vm_ids, BULK_ADD_MAX)?;
    let platform = platforms::find(&state.db, &req.platform_id).await.map_err(|_| unknown_platform(&req.platform_id))?;
    let group = match &req.group_id {
        Some(g) => {
            check_id("group_id", g)?;
            Some(groups::find(&state.db, g).await.map_err(|_| {
                ApiError::invalid_value("group_id", format!("No protection group has the id '{g}'. GET /api/v1/protection-groups lists them."))
            })?)
        }
        None => None,
    };
    let platform_name = platform.name.clone();
    let platform_id = platform.id.clone();
    let kind: PlatformKind = from_wire(&platform.kind).unwrap_or(PlatformKind::Kvm);
    let inv = match inventory::read(kind, platform.address.clone()).await {
        Ok(inv) => inv,
        Err(m) => {
            inventory::record_failure(&state.db, platform, &m).await?;
            return Err(ApiError::unavailable(
                "platform_unreachable",
                format!("Platform '{platform_name}' cannot be read: {m}. Fix the host, then try again."),
            ));
        }
    };
    inventory::apply(&state.db, platform, &inv).await?;

    let existing: HashMap<String, vm_contexts::Model> = vm_contexts::Entity::find()
        .filter(vm_contexts::Column::PlatformId.eq(platform_id.clone()))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|c| (c.platform_vm_id.clone(), c))
        .collect();
    let reported: HashMap<&str, &shared_types::platform::VmInfo> = inv.vms.iter().map(|v| (v.id.as_str(), v)).collect();
    let now = Utc::now();
    let mut new = Vec::new();
    let mut added_ids = Vec::new();
    let mut already_managed = Vec::new();
    let mut not_found = Vec::new();
    for id in &wanted {
        if let Some(ctx) = existing.get(id) {
            already_managed.push(AlreadyManaged { vm_id: id.clone(), vm_context_id: ctx.id.clone(), name: ctx.name.clone() });
        } else if let Some(vm) = reported.get(id.as_str()) {
            let n = inventory::new_context(&platform_id, vm, group.as_ref().map(|g| g.id.clone()), now);
            added_ids.push(n.context.id.as_ref().clone());
            new.push(n);
        } else {
            not_found.push(id.clone());
        }
    }
    if !new.is_empty() {
        let txn = state.db.begin().await?;
        inventory::insert_contexts(&txn, new).await.map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::conflict("bulk_add_race", "Another request added some of these VMs at the same moment; send the request again.")
            } else {
                e.into()
            }
        })?;
        txn.commit().await?;
    }
    let added = vm_list::all(&state.db, &VmFilter { ids: Some(added_ids), ..Default::default() }).await?;
    let target = format!(
        "{platform_name}: {} added, {} already managed, {} not found{}",
        added.len(),
        already_managed.len(),
        not_found.len(),
        group.map(|g| format!(", group {}", g.name)).unwrap_or_default()
    );
    Ok(noted(ApiJson(BulkAddResponse { added, already_managed, not_found }), AuditNote::new("discovery.bulk_add", target)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UngroupedQuery {
    /// Only VMs of this platform (id).
    platform: Option<String>,
    /// `active` or `missing`.
    status: Option<VmStatus>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

/// Managed VMs in no protection group, by name.
#[utoipa::path(get, path = "/discovery/ungrouped-vms", tag = "discovery", params(UngroupedQuery), responses(
    (status = 200, body = VmContextPage), (status = 400, body = ErrorBody)))]
async fn ungrouped_vms(State(state): State<AppState>, ApiQuery(q): ApiQuery<UngroupedQuery>) -> Result<ApiJson<VmContextPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let filter = VmFilter { platform_id: q.platform, ungrouped: true, status: q.status, ..Default::default() };
    let (items, total) = vm_list::page(&state.db, &filter, limit, offset).await?;
    Ok(ApiJson(VmContextPage { items, total }))
}
