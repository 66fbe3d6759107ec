//! Full VM restore: `POST /restore/check` judges a restore (format,
//! firmware, drivers, resources and space at the target, estimated time)
//! and `POST /restore/start` queues it as a restore job (202 with the job)
//! once the request is valid, the licence tier allows it and the check has
//! no blocker.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::error::ErrorBody;
use shared_types::jobs::{Job, JobKind, JobStatus};
use shared_types::networks::{place_nic, recommend, MappingPurpose};
use shared_types::platform::{Firmware, GuestOs, HostInventory, NetworkInfo, NicInfo, PlatformKind, PowerState, VmInfo};
use shared_types::recovery::{
    required_feature, CompatibilityNote, CompatibilityReport, LicenseTier, NetworkSuggestion, NicPlacement, NoteSeverity, ReadFrom, RestoreVmRequest, SuggestionReason,
};
use shared_types::backups::{LocationRole, LocationState};
use shared_types::NamedRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, noted};
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::compatibility::{self, Facts};
use crate::catalog::{backup_locations, convert, from_wire, inventory, network_mapping};
use crate::db::entities::{backups, jobs, platforms, repositories, vm_contexts};
use crate::runner::restore_job::{RestoreJobRequest, RestoreOptions};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check)).routes(routes!(start))
}

/// Everything a valid request resolves to.
pub(super) struct Prepared {
    pub backup: backups::Model,
    pub target: platforms::Model,
    pub report: CompatibilityReport,
    pub options: RestoreOptions,
    /// A VM of that name is on the target and no confirmed overwrite replaces it.
    pub name_taken: bool,
    /// The licence tier lacks what this restore needs: the message.
    pub license: Option<String>,
}

/// What the restore point says about its VM and how much it holds.
struct PointFacts {
    vm: Option<VmInfo>,
    required_bytes: u64,
}

fn read_point(data_dir: &Path, repo: &repositories::Model, name: &str, id: &str) -> Result<PointFacts, crate::engine::EngineError> {
    let ds = crate::catalog::repositories::open_datastore(data_dir, repo)?;
    let m = ds.resolve(name, id)?;
    let required_bytes = crate::engine::restore::allocated_bytes(&ds, name, id)?;
    Ok(PointFacts { vm: m.vm, required_bytes })
}

/// Throughput of earlier jobs in bytes per second: restores if any
/// finished, else backups; and whether it came from restores.
async fn history(db: &sea_orm::DatabaseConnection) -> Result<Option<(f64, bool)>, ApiError> {
    for kind in [JobKind::Restore, JobKind::Backup] {
        let rows = jobs::Entity::find()
            .filter(jobs::Column::Kind.eq(kind.as_str()))
            .filter(jobs::Column::Status.eq(JobStatus::Completed.as_str()))
            .filter(jobs::Column::BytesRead.gt(0))
            .order_by_desc(jobs::Column::FinishedAt)
            .limit(20)
            .all(db)
            .await?;
        let (mut bytes, mut secs) = (0f64, 0f64);
        for j in rows {
            if let (Some(s), Some(f)) = (j.started_at, j.finished_at) {
                let d = (f - s).num_milliseconds() as f64 / 1000.0;
                if d > 0.0 {
                    bytes += j.bytes_read as f64;
                    secs += d;
                }
            }
        }
        if secs > 0.0 {
            return Ok(Some((bytes / secs, kind == JobKind::Restore)));
        }
    }
    Ok(None)
}

/// The target network proposed for each source network of `nics`, as the
/// Networks page proposes it: the mapping saved for the platform pair
/// (failover, default scope) when the target has that network started,
/// else the recommendation ([`recommend`], from the networks discovery
/// recorded), else a started network of the same name.
async fn suggest_networks(
    state: &AppState,
    source_platform_id: Option<&str>,
    target_platform_id: &str,
    nics: &[NicInfo],
    target_networks: &[NetworkInfo],
) -> Result<HashMap<String, NetworkSuggestion>, ApiError> {
    let started = |name: &str| target_networks.iter().any(|n| n.name == name && !n.inactive);
    let (saved, recorded) = match source_platform_id {
        Some(source) => (
            network_mapping::effective(&state.db, source, target_platform_id, None, MappingPurpose::Failover).await?,
            network_mapping::networks_of(&state.db, source).await?,
        ),
        None => Default::default(),
    };
    // The NICs' networks, with what discovery recorded of each (VLAN, subnet).
    let mut source_networks: Vec<NetworkInfo> = Vec::new();
    for nic in nics {
        if !source_networks.iter().any(|n| n.name == nic.network) {
            let known = recorded.iter().find(|n| n.name == nic.network).cloned();
            source_networks.push(known.unwrap_or_else(|| NetworkInfo { name: nic.network.clone(), ..Default::default() }));
        }
    }
    let recommended = recommend(&source_networks, target_networks, MappingPurpose::Failover);
    let mut out = HashMap::new();
    for net in &source_networks {
        let saved = saved.get(&net.name).map(|(to, _)| to.as_str()).filter(|to| started(to));
        let suggestion = match (saved, recommended.iter().find(|r| r.source_network == net.name && started(&r.target_network))) {
            (Some(to), _) => Some(NetworkSuggestion { network: to.to_owned(), reason: SuggestionReason::SavedMapping, score: None }),
            (None, Some(r)) => Some(NetworkSuggestion { network: r.target_network.clone(), reason: SuggestionReason::Recommended, score: Some(r.score) }),
            (None, None) => started(&net.name).then(|| NetworkSuggestion { network: net.name.clone(), reason: SuggestionReason::SameName, score: None }),
        };
        if let Some(s) = suggestion {
            out.insert(net.name.clone(), s);
        }
    }
    Ok(out)
}

/// Where the restore reads `backup` from (`repo`, as chosen), and, when a
/// copy is read because the primary could not be (`automatic`: no
/// repository asked for), what was met at the primary.
async fn read_from(state: &AppState, backup: &backups::Model, repo: &repositories::Model, automatic: bool) -> Result<ReadFrom, ApiError> {
    let rows = backup_locations::of(&state.db, backup).await?;
    let role = rows.iter().find(|r| r.repository_id == repo.id).and_then(|r| from_wire::<LocationRole>(&r.role)).unwrap_or(LocationRole::Primary);
    let mut fallback_reason = None;
    if automatic && role == LocationRole::Copy {
        if let Some(p) = rows.iter().find(|r| r.role == LocationRole::Primary.as_str()) {
            let name = match repositories::Entity::find_by_id(p.repository_id.clone()).one(&state.db).await? {
                Some(r) => r.name,
                None => p.repository_id.clone(),
            };
            fallback_reason = Some(match &p.error {
                Some(e) => format!("the primary '{name}' cannot be read: {e}"),
                None => format!("the primary '{name}' is {}", p.state),
            });
        }
    }
    Ok(ReadFrom { repository: NamedRef { id: repo.id.clone(), name: repo.name.clone() }, role, fallback_reason })
}

pub(super) async fn prepare(state: &AppState, req: &RestoreVmRequest) -> Result<Prepared, ApiError> {
    check_id("backup_id", &req.backup_id)?;
    check_id("target_platform_id", &req.target_platform_id)?;
    if !RestoreVmRequest::valid_name(&req.name) {
        return Err(ApiError::invalid_field(
            "name",
            format!("'{}' cannot name a VM: use 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'", req.name.chars().take(80).collect::<String>()),
        ));
    }
    let backup = backups::Entity::find_by_id(req.backup_id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::invalid_value("backup_id", format!("no restore point has the id '{}' (GET /api/v1/backup/list lists them)", req.backup_id))
    })?;
    let target = platforms::Entity::find_by_id(req.target_platform_id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::invalid_value("target_platform_id", format!("no platform has the id '{}' (GET /api/v1/platforms lists them)", req.target_platform_id))
    })?;
    // Read from the location asked for, else the primary, else a copy.
    let (here, repo) = super::backups::locate(state, &backup, req.repository_id.as_deref()).await?;
    let read_from = read_from(state, &backup, &repo, req.repository_id.is_none()).await?;
    let backup = here;
    let target_kind: PlatformKind = from_wire(&target.kind)
        .ok_or_else(|| ApiError::unprocessable("platform_unusable", format!("platform '{}' has an unknown kind", target.name)))?;
    let inv: HostInventory = inventory::read(target_kind, target.address.clone())
        .await
        .map_err(|e| ApiError::unprocessable("target_unreachable", format!("target platform '{}' cannot be read: {e}", target.name)))?;
    let context = vm_contexts::Entity::find_by_id(backup.vm_context_id.clone()).one(&state.db).await?;
    let source_kind = match &context {
        Some(c) => platforms::Entity::find_by_id(c.platform_id.clone()).one(&state.db).await?.and_then(|p| from_wire(&p.kind)),
        None => None,
    }
    .unwrap_or(PlatformKind::Kvm);
    let (data_dir, name, id) = (state.data_dir.clone(), backup.snapshot_name.clone(), backup.snapshot_id.clone());
    let (repo_id, repo_name) = (repo.id.clone(), repo.name.clone());
    let read = tokio::task::spawn_blocking(move || read_point(&data_dir, &repo, &name, &id))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading a restore point: {e}")))?;
    let point = match read {
        Ok(p) => p,
        Err(e) => {
            // Say where else it can be read from (3-2-1), if anywhere.
            let mut elsewhere = Vec::new();
            for loc in backup_locations::of(&state.db, &backup).await? {
                if loc.repository_id != repo_id && loc.state == LocationState::Present.as_str() {
                    if let Some(r) = repositories::Entity::find_by_id(loc.repository_id.clone()).one(&state.db).await? {
                        elsewhere.push(format!("'{}'", r.name));
                    }
                }
            }
            let hint = if elsewhere.is_empty() {
                "verify the repository".to_string()
            } else {
                format!("it is also in {}: read it from there (Read from), or let the server choose", elsewhere.join(", "))
            };
            return Err(ApiError::unprocessable("restore_point_unreadable", format!("restore point '{}' cannot be read from '{repo_name}': {e}; {hint}", backup.id)));
        }
    };
    let source = match (point.vm, &context) {
        (Some(vm), _) => vm,
        (None, Some(c)) => VmInfo {
            id: c.platform_vm_id.clone(),
            name: c.name.clone(),
            vcpus: c.vcpus.max(1) as u32,
            memory_mib: c.memory_mib.max(1) as u64,
            power: PowerState::Stopped,
            firmware: from_wire(&c.firmware).unwrap_or(Firmware::Bios),
            os: from_wire(&c.os).unwrap_or(GuestOs::Other),
            role: c.role.clone(),
            disks: vec![],
            nics: vec![],
        },
        (None, None) => return Err(ApiError::unprocessable("restore_point_unreadable", "the restore point records no VM shape (CPU, memory, NICs)")),
    };
    let format = req.disk_format.unwrap_or_else(|| target_kind.native_disk_format());

    // Networks: every mapping names a target network; every NIC lands somewhere.
    let has = |n: &str| inv.networks.iter().any(|x| x.name == n);
    let known = inv.networks.iter().filter(|n| !n.inactive).map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");
    for (from, to) in &req.network_mapping {
        if !has(to) {
            return Err(ApiError::invalid_value(
                "network_mapping",
                format!("'{from}' maps to network '{to}', which host '{}' does not have (its networks: {known})", inv.host.name),
            ));
        }
    }
    let suggestions = suggest_networks(state, context.as_ref().map(|c| c.platform_id.as_str()), &target.id, &source.nics, &inv.networks).await?;
    let mut nics = Vec::new();
    let mut placements = Vec::new();
    let mut unplaced = Vec::new();
    for nic in &source.nics {
        // The rule failover validation uses too, with the same-name fallback a restore allows.
        let to = match place_nic(&nic.network, req.network_mapping.get(&nic.network).map(String::as_str), true, &inv.networks) {
            Ok(to) => Some(to.name.clone()),
            Err(shared_types::networks::Unplaced::Inactive(to)) => {
                unplaced.push(format!(
                    "NIC {} would join network '{to}' of host '{}', which is not started: start it there (virsh net-start {to}) or map '{}' to one of {known}",
                    nic.mac, inv.host.name, nic.network
                ));
                None
            }
            Err(_) => {
                unplaced.push(format!(
                    "NIC {} is on network '{}', which host '{}' does not have: map it to one of {known}",
                    nic.mac, nic.network, inv.host.name
                ));
                None
            }
        };
        placements.push(NicPlacement {
            mac: nic.mac.clone(),
            model: nic.model.clone(),
            source_network: nic.network.clone(),
            target_network: to.clone(),
            suggestion: suggestions.get(&nic.network).cloned(),
        });
        if let Some(to) = to {
            nics.push(NicInfo { network: to, ..nic.clone() });
        }
    }

    // Name on the target, overwrite and its confirmation.
    let exists = inv.vms.iter().any(|v| v.name == req.name);
    if req.overwrite && req.confirm_overwrite.as_deref() != Some(req.name.as_str()) {
        return Err(ApiError::invalid_value(
            "confirm_overwrite",
            format!("to replace '{}', type its name exactly in confirm_overwrite", req.name),
        ));
    }
    let name_taken = exists && !req.overwrite;

    // Storage pool: an active one of the target's, when chosen.
    if let Some(pool) = &req.storage_pool {
        let active = inv.storage_pools.iter().filter(|p| p.active).map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        match inv.storage_pools.iter().find(|p| &p.name == pool) {
            Some(p) if p.active => {}
            Some(_) => {
                return Err(ApiError::invalid_value("storage_pool", format!("storage pool '{pool}' of host '{}' is not started (active pools: {active})", inv.host.name)))
            }
            None => return Err(ApiError::invalid_value("storage_pool", format!("host '{}' has no storage pool '{pool}' (its active pools: {active})", inv.host.name))),
        }
    }

    let tier = state.license_tier;
    let feature = required_feature(source_kind, target_kind, format);
    let license = (!tier.allows(feature)).then(|| {
        format!(
            "restoring a {} VM to {} as {} is a {} restore: it needs the {} licence tier, this server runs {}",
            source_kind.label(),
            target_kind.label(),
            format.qemu_name(),
            feature.as_str().replace('_', "-").trim_end_matches("-restore"),
            LicenseTier::needed_for(feature).label(),
            tier.label()
        )
    });

    let (kind, address) = (from_wire::<PlatformKind>(&target.kind).unwrap_or(PlatformKind::Kvm), target.address.clone());
    let pool = req.storage_pool.clone();
    let free = tokio::task::spawn_blocking(move || inventory::connect(kind, &address).and_then(|p| p.disk_space_in(pool.as_deref())).map(|s| s.free_bytes).unwrap_or(0))
        .await
        .unwrap_or(0);
    // Jobs count the data they really read (holes are skipped), so the rate applies to the data.
    let hist = history(&state.db).await?.map(|(bps, _from_restores)| (bps, point.required_bytes));
    let mut report = compatibility::check(&Facts {
        source: &source,
        source_kind,
        target: &inv.host,
        format,
        required_bytes: point.required_bytes,
        free_bytes: free,
        history: hist,
    });
    if exists && req.overwrite {
        report.notes.push(CompatibilityNote { severity: NoteSeverity::Warning, message: format!("the VM '{}' on host '{}' will be deleted and replaced", req.name, inv.host.name) });
    }
    if name_taken {
        report.notes.push(CompatibilityNote {
            severity: NoteSeverity::Blocker,
            message: format!("a VM named '{}' already exists on host '{}': choose another name or overwrite it with confirmation", req.name, inv.host.name),
        });
    }
    if let Some(m) = &license {
        report.notes.push(CompatibilityNote { severity: NoteSeverity::Blocker, message: m.clone() });
    }
    // A NIC without a network stops the restore until the request maps it.
    report.notes.extend(unplaced.into_iter().map(|message| CompatibilityNote { severity: NoteSeverity::Blocker, message }));
    report.ok = !report.notes.iter().any(|n| n.severity == NoteSeverity::Blocker);
    report.storage_pools = inv.storage_pools.clone();
    report.nics = placements;
    report.target_networks = inv.networks.iter().filter(|n| !n.inactive).cloned().collect();
    report.read_from = Some(read_from);
    let options = RestoreOptions {
        name: req.name.clone(),
        overwrite: req.overwrite && exists,
        disk_format: format,
        nics,
        power_on: req.power_on,
        vcpus: source.vcpus,
        memory_mib: source.memory_mib,
        firmware: source.firmware,
        os: source.os,
        staging_dir: crate::runner::restore_job::staging_dir(&state.data_dir),
        storage_pool: req.storage_pool.clone(),
    };
    Ok(Prepared { backup, target, report, options, name_taken, license })
}

/// Checks a full VM restore without starting it: the format written, notes
/// on firmware, drivers and resources, space needed and free, and an
/// estimated time from earlier jobs. Blockers make `ok` false.
#[utoipa::path(post, path = "/restore/check", tag = "restore", request_body = RestoreVmRequest, responses(
    (status = 200, body = CompatibilityReport), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn check(State(state): State<AppState>, ApiJson(req): ApiJson<RestoreVmRequest>) -> Result<ApiJson<CompatibilityReport>, ApiError> {
    Ok(ApiJson(prepare(&state, &req).await?.report))
}

/// Queues a full VM restore of a restore point onto a platform as a restore
/// job (watch it with `GET /api/v1/jobs/{id}`, pause, resume or stop it like
/// any job). Refused when the name is taken without a confirmed overwrite
/// (409), the licence tier lacks cross-platform restore (403
/// `license_required`) or the compatibility check has a blocker (409).
#[utoipa::path(post, path = "/restore/start", tag = "restore", request_body = RestoreVmRequest, responses(
    (status = 202, body = Job), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn start(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<RestoreVmRequest>) -> Result<Response, ApiError> {
    let p = prepare(&state, &req).await?;
    if let Some(message) = p.license {
        return Err(ApiError::ForbiddenCode { code: "license_required", message });
    }
    if p.name_taken {
        return Err(ApiError::conflict(
            "vm_exists",
            format!(
                "a VM named '{}' already exists on '{}': choose another name, or set overwrite with confirm_overwrite set to the name",
                req.name, p.target.name
            ),
        ));
    }
    let blockers: Vec<String> = p.report.blockers().map(|n| n.message.clone()).collect();
    if !blockers.is_empty() {
        return Err(ApiError::conflict("restore_blocked", format!("the compatibility check found blockers: {}", blockers.join("; "))));
    }
    let job = state
        .runner
        .enqueue_restore(RestoreJobRequest {
            vm_context_id: p.backup.vm_context_id.clone(),
            repository_id: p.backup.repository_id.clone(),
            backup_id: p.backup.id.clone(),
            target_platform_id: p.target.id.clone(),
            options: p.options,
            priority: 0,
            requested_by: Some(me.username.clone()),
        })
        .await?;
    let job: Job = convert::jobs(&state.db, vec![job]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the queued job vanished")))?;
    let target = format!("{} from restore point {} to {}", req.name, p.backup.id, p.target.name);
    Ok(noted((StatusCode::ACCEPTED, ApiJson(job)), AuditNote::new("restore.start", target)))
}
