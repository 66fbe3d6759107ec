//! `/api/v1/replication`: replication flows (a managed VM kept as a replica
//! on a standby KVM host): CRUD, one route per action, and site failover of
//! a protection group. Every action goes through
//! [`replication_job::act`], which applies the state rule of
//! `shared_types::replication` (409 with its sentence otherwise) and queues
//! the action's job; the answer is 202 with the flow and the job.


use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::jobs::JobStatus;
use shared_types::networks::{BulkMappingRequest, MappingPurpose};
use shared_types::platform::PlatformKind;
use shared_types::recovery::{LicenseFeature, LicenseTier};
use shared_types::replication::{
    check_confirmation, CreateReplicationRequest, FailoverRequest, ReplicationAccepted, ReplicationDetails, ReplicationFlow, ReplicationState, TestVmStatus,
    RollbackRequest, SiteFailoverMode, SiteFailoverRefusal, SiteFailoverRequest, SiteFailoverResult, TestFailoverRequest, UpdateReplicationRequest,
    DEFAULT_INTERVAL_SECONDS, DEFAULT_KEEP_POINTS, validate_boot_order, ScheduledStage,
};
use shared_types::ws::ServerMessage;
use shared_types::NamedRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, is_unique_violation, noted};
use super::networks::mapping_error;
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::replication::{self as rules, spec};
use crate::catalog::{convert, from_wire, network_mapping, new_id};
use crate::db::entities::{job_logs, jobs, network_mappings, platforms, protection_groups, replication_flows, vm_contexts};
use crate::replication::{self, default_replica_name, Ctx};
use crate::runner::replication_job::{self, Act, ActError};
use crate::runner::site_failover::{self, Plan, PlanStage};
use crate::runner::RunnerError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_replications, create_replication))
        .routes(routes!(start_replication))
        .routes(routes!(site_failover))
        .routes(routes!(get_replication, update_replication, delete_replication))
        .routes(routes!(sync_now))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(test_failover))
        .routes(routes!(end_test))
        .routes(routes!(failover))
        .routes(routes!(rollback))
        .routes(routes!(cleanup))
}

async fn find(state: &AppState, id: &str) -> Result<replication_flows::Model, ApiError> {
    replication_flows::Entity::find_by_id(id.to_owned()).one(&state.db).await?.ok_or_else(|| {
        ApiError::not_found("replication_not_found", format!("No replication flow has the id '{id}'. GET /api/v1/replication lists them."))
    })
}

async fn one(state: &AppState, row: replication_flows::Model) -> Result<ReplicationFlow, ApiError> {
    rules::to_api(&state.db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("replication row vanished")))
}

async fn source_vm(state: &AppState, row: &replication_flows::Model) -> Result<vm_contexts::Model, ApiError> {
    vm_contexts::Entity::find_by_id(row.vm_context_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::conflict("vm_not_managed", format!("The source VM of '{}' is no longer managed.", row.name)))
}

fn act_error(e: ActError) -> ApiError {
    match e {
        ActError::Refused(m) => ApiError::conflict("invalid_state", m),
        ActError::Network(e) => mapping_error(e),
        ActError::Invalid(m) => ApiError::unprocessable("invalid_request", m),
        ActError::Runner(RunnerError::NotFound(m)) => ApiError::not_found("not_found", m),
        ActError::Runner(RunnerError::Conflict(m)) => ApiError::conflict("job_active", m),
        ActError::Runner(RunnerError::Db(e)) | ActError::Db(e) => e.into(),
    }
}

async fn accepted(state: &AppState, row: replication_flows::Model, job: Option<jobs::Model>) -> Result<ReplicationAccepted, ApiError> {
    let job = match job {
        Some(j) => convert::jobs(&state.db, vec![j]).await?.pop(),
        None => None,
    };
    Ok(ReplicationAccepted { flow: one(state, row).await?, job })
}

/// Runs `act` on flow `id`: 202 with the flow and its job, audited as `what`.
async fn run_action(state: &AppState, me: &AuthUser, id: &str, act: Act, what: &'static str) -> Result<Response, ApiError> {
    let row = find(state, id).await?;
    let name = row.name.clone();
    let (row, job) = replication_job::act(&state.runner, row, act, &me.username).await.map_err(act_error)?;
    let body = accepted(state, row, job).await?;
    Ok(noted((StatusCode::ACCEPTED, ApiJson(body)), AuditNote::new(what, name)))
}

/// Every replication flow, by name, with its state, lag against its RPO and
/// the actions its state allows.
#[utoipa::path(get, path = "/replication", tag = "replication", responses((status = 200, body = Vec<ReplicationFlow>)))]
async fn list_replications(State(state): State<AppState>) -> Result<ApiJson<Vec<ReplicationFlow>>, ApiError> {
    let rows = replication_flows::Entity::find().order_by_asc(replication_flows::Column::Name).all(&state.db).await?;
    Ok(ApiJson(rules::to_api(&state.db, rows).await?))
}

/// Checks a create request and stores the flow (paused when `enabled` is
/// false, else idle with its first sync due now); stores the flow's own
/// failover mapping when given.
async fn create(state: &AppState, me: &AuthUser, req: &CreateReplicationRequest) -> Result<replication_flows::Model, ApiError> {
    req.validate().map_err(|(field, m)| ApiError::invalid_field(&field, m))?;
    if !state.license_tier.allows(LicenseFeature::Replication) {
        return Err(ApiError::ForbiddenCode {
            code: "license_required",
            message: format!(
                "Replication needs the {} licence; this server runs the {} tier.",
                LicenseTier::needed_for(LicenseFeature::Replication).label(),
                state.license_tier.label()
            ),
        });
    }
    check_id("vm_id", &req.vm_id)?;
    check_id("target_platform_id", &req.target_platform_id)?;
    let vm = vm_contexts::Entity::find_by_id(req.vm_id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::invalid_value("vm_id", format!("No managed VM has the id '{}'. Add it with POST /api/v1/discovery/bulk-add first.", req.vm_id))
    })?;
    let target = platforms::Entity::find_by_id(req.target_platform_id.clone())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::invalid_value("target_platform_id", format!("No platform has the id '{}'. GET /api/v1/platforms lists them.", req.target_platform_id)))?;
    if from_wire::<PlatformKind>(&target.kind) != Some(PlatformKind::Kvm) {
        return Err(ApiError::invalid_value("target_platform_id", format!("'{}' is not a KVM host: replicas live on KVM hosts.", target.name)));
    }
    if target.id == vm.platform_id {
        return Err(ApiError::invalid_value(
            "target_platform_id",
            format!("'{}' is the host '{}' runs on: choose a standby host (a replica on its own host protects nothing).", target.name, vm.name),
        ));
    }
    let replica_name = default_replica_name(&vm.name);
    let clash = vm_contexts::Entity::find()
        .filter(vm_contexts::Column::PlatformId.eq(target.id.clone()))
        .filter(vm_contexts::Column::Name.eq(replica_name.clone()))
        .count(&state.db)
        .await?;
    let ours = replication_flows::Entity::find()
        .filter(replication_flows::Column::TargetPlatformId.eq(target.id.clone()))
        .filter(replication_flows::Column::ReplicaName.eq(replica_name.clone()))
        .count(&state.db)
        .await?;
    if ours > 0 || clash > 0 {
        return Err(ApiError::conflict(
            "already_replicated",
            format!("'{}' already has a VM '{replica_name}' (a replica of '{}'); GET /api/v1/replication lists the flows.", target.name, vm.name),
        ));
    }
    let name = req.name.clone().unwrap_or_else(|| format!("{} to {}", vm.name, target.name));
    if replication_flows::Entity::find().filter(replication_flows::Column::Name.eq(name.clone())).count(&state.db).await? > 0 {
        return Err(ApiError::conflict("replication_name_taken", format!("A replication flow named '{name}' exists already; choose another name.")));
    }
    let now = Utc::now();
    let enabled = req.enabled.unwrap_or(true);
    let id = new_id();
    let row = replication_flows::ActiveModel {
        id: Set(id.clone()),
        name: Set(name),
        vm_context_id: Set(vm.id.clone()),
        target_platform_id: Set(target.id.clone()),
        replica_name: Set(replica_name),
        interval_seconds: Set(req.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS) as i64),
        keep_points: Set(req.keep_points.unwrap_or(DEFAULT_KEEP_POINTS) as i32),
        state: Set(if enabled { ReplicationState::Idle } else { ReplicationState::Paused }.as_str().to_owned()),
        failure_reason: Set(None),
        last_consistent_at: Set(None),
        point_count: Set(0),
        last_sync: Set(None),
        test_vm_name: Set(None),
        next_sync_at: Set(None),
        rpo_alerted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("already_replicated", "Another request created this replication meanwhile; GET /api/v1/replication lists the flows.")
        } else {
            e.into()
        }
    })?;
    if !req.network_mapping.is_empty() {
        let bulk = BulkMappingRequest {
            source_platform_id: vm.platform_id.clone(),
            target_platform_id: target.id.clone(),
            flow_id: Some(id.clone()),
            mappings: req.network_mapping.clone(),
            purpose: MappingPurpose::Failover,
        };
        if let Err(e) = super::network_mappings::store_bulk(&state.db, &me.username, &bulk).await {
            // All or nothing: the flow goes with its mapping.
            replication_flows::Entity::delete_by_id(id.clone()).exec(&state.db).await?;
            return Err(e);
        }
    }
    Ok(row)
}

/// Creates a replication flow. With `enabled` (default) its initial full
/// sync is queued at once; later syncs follow every `interval_seconds`.
#[utoipa::path(post, path = "/replication", tag = "replication", request_body = CreateReplicationRequest, responses(
    (status = 201, body = ReplicationFlow), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_replication(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<CreateReplicationRequest>) -> Result<Response, ApiError> {
    let row = create(&state, &me, &req).await?;
    let row = if req.enabled.unwrap_or(true) {
        // Announced by `act` with its new state.
        replication_job::act(&state.runner, row, Act::ReplicateNow, &me.username).await.map_err(act_error)?.0
    } else {
        replication_job::publish(&state.runner, row.clone()).await;
        row
    };
    let flow = one(&state, row).await?;
    let text = format!("{} ({} → {})", flow.name, flow.source_vm.name, flow.target_platform.name);
    Ok(noted((StatusCode::CREATED, ApiJson(flow)), AuditNote::new("replication.create", text)))
}

/// Creates a replication flow and queues its initial sync (the seed's
/// "transcend"); `enabled` is ignored.
#[utoipa::path(post, path = "/replication/start", tag = "replication", request_body = CreateReplicationRequest, responses(
    (status = 201, body = ReplicationAccepted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_replication(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<CreateReplicationRequest>) -> Result<Response, ApiError> {
    let req = CreateReplicationRequest { enabled: Some(true), ..req };
    let row = create(&state, &me, &req).await?;
    let (row, job) = replication_job::act(&state.runner, row, Act::ReplicateNow, &me.username).await.map_err(act_error)?;
    let body = accepted(&state, row, job).await?;
    let text = format!("{} ({} → {})", body.flow.name, body.flow.source_vm.name, body.flow.target_platform.name);
    Ok(noted((StatusCode::CREATED, ApiJson(body)), AuditNote::new("replication.start", text)))
}

/// A flow with its replica's points (newest first), the bytes the replica
/// takes on the target, its running job and its 20 most recent jobs.
#[utoipa::path(get, path = "/replication/{id}", tag = "replication", params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 200, body = ReplicationDetails), (status = 404, body = ErrorBody)))]
async fn get_replication(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<ReplicationDetails>, ApiError> {
    let row = find(&state, &id).await?;
    let target = platforms::Entity::find_by_id(row.target_platform_id.clone()).one(&state.db).await?;
    let target_address = target.as_ref().map(|t| t.address.clone());
    let (points, replica_bytes) = match target {
        Some(t) => {
            let address = t.address.clone();
            let name = row.replica_name.clone();
            tokio::task::spawn_blocking(move || replica_view(&address, &name)).await.unwrap_or_default()
        }
        None => (Vec::new(), 0),
    };
    let active = jobs::Entity::find()
        .filter(jobs::Column::ReplicationId.eq(row.id.clone()))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .one(&state.db)
        .await?;
    let recent = jobs::Entity::find()
        .filter(jobs::Column::ReplicationId.eq(row.id.clone()))
        .filter(jobs::Column::Status.is_in(JobStatus::FINISHED.map(|s| s.as_str())))
        .order_by_desc(jobs::Column::CreatedAt)
        .limit(20)
        .all(&state.db)
        .await?;
    let flow = one(&state, row).await?;
    let test_vm = match (&flow.test_vm_name, target_address) {
        (Some(name), Some(address)) => {
            let test_job = recent.iter().find(|j| j.operation.as_deref() == Some("test_failover") && j.status == JobStatus::Completed.as_str());
            let report = match test_job {
                Some(j) => job_report(&state, &j.id).await?,
                None => None,
            };
            let name = name.clone();
            let live = tokio::task::spawn_blocking(move || -> Option<(shared_types::platform::PowerState, Vec<String>)> {
                let host = crate::catalog::inventory::connect(PlatformKind::Kvm, &address).ok()?;
                let vm = host.vm(&name).ok()?;
                Some((vm.power, host.console_tail(&name, 12).ok().flatten().unwrap_or_default()))
            });
            let name = flow.test_vm_name.clone().unwrap_or_default();
            live.await.ok().flatten().map(|(power, console_tail)| TestVmStatus {
                name,
                power,
                up_ms: report.as_ref().and_then(|r| r["boot_ms"].as_u64()),
                boot_line: report.as_ref().and_then(|r| r["boot_line"].as_str().map(str::to_owned)),
                console_tail,
            })
        }
        _ => None,
    };
    Ok(ApiJson(ReplicationDetails {
        flow,
        points,
        replica_bytes,
        active_job: match active {
            Some(j) => convert::jobs(&state.db, vec![j]).await?.pop(),
            None => None,
        },
        recent_jobs: convert::jobs(&state.db, recent).await?,
        test_vm,
    }))
}

/// The report a replication job logged when it ended (`report {json}`).
async fn job_report(state: &AppState, job: &str) -> Result<Option<serde_json::Value>, ApiError> {
    let line = job_logs::Entity::find()
        .filter(job_logs::Column::JobId.eq(job))
        .filter(job_logs::Column::Message.starts_with("report "))
        .order_by_desc(job_logs::Column::Id)
        .one(&state.db)
        .await?;
    Ok(line.and_then(|l| serde_json::from_str(&l.message["report ".len()..]).ok()))
}

/// The replica's points and the bytes its files take (allocated blocks).
fn replica_view(address: &str, name: &str) -> (Vec<shared_types::replication::ReplicaPoint>, u64) {
    let Ok(host) = crate::catalog::inventory::connect(PlatformKind::Kvm, address) else { return (Vec::new(), 0) };
    let points = replication::status(host.as_ref(), name).ok().flatten().map(|s| replication::points(&s)).unwrap_or_default();
    let Some(dir) = host.image_dir().ok().flatten().map(|d| d.join(name)) else { return (points, 0) };
    let bytes = std::fs::read_dir(&dir)
        .map(|entries| {
            use std::os::unix::fs::MetadataExt;
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.blocks() * 512).sum()
        })
        .unwrap_or(0);
    (points, bytes)
}

/// Changes a flow's name, interval (RPO), points kept or its own failover
/// mapping (replaced whole; an empty list removes it).
#[utoipa::path(patch, path = "/replication/{id}", tag = "replication", request_body = UpdateReplicationRequest,
    params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 200, body = ReplicationFlow), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_replication(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateReplicationRequest>,
) -> Result<Response, ApiError> {
    req.validate().map_err(|(field, m)| ApiError::invalid_field(&field, m))?;
    let row = find(&state, &id).await?;
    if let Some(n) = &req.name {
        let taken = replication_flows::Entity::find()
            .filter(replication_flows::Column::Name.eq(n.clone()))
            .filter(replication_flows::Column::Id.ne(row.id.clone()))
            .count(&state.db)
            .await?;
        if taken > 0 {
            return Err(ApiError::conflict("replication_name_taken", format!("A replication flow named '{n}' exists already; choose another name.")));
        }
    }
    if let Some(pairs) = &req.network_mapping {
        let vm = source_vm(&state, &row).await?;
        network_mappings::Entity::delete_many()
            .filter(network_mappings::Column::FlowId.eq(row.id.clone()))
            .filter(network_mappings::Column::Purpose.eq(MappingPurpose::Failover.as_str()))
            .exec(&state.db)
            .await?;
        if !pairs.is_empty() {
            let bulk = BulkMappingRequest {
                source_platform_id: vm.platform_id.clone(),
                target_platform_id: row.target_platform_id.clone(),
                flow_id: Some(row.id.clone()),
                mappings: pairs.clone(),
                purpose: MappingPurpose::Failover,
            };
            super::network_mappings::store_bulk(&state.db, &me.username, &bulk).await?;
        }
    }
    let name = row.name.clone();
    let mut a: replication_flows::ActiveModel = row.into();
    if let Some(n) = &req.name {
        a.name = Set(n.clone());
    }
    if let Some(s) = req.interval_seconds {
        a.interval_seconds = Set(s as i64);
    }
    if let Some(k) = req.keep_points {
        a.keep_points = Set(k as i32);
    }
    a.updated_at = Set(Utc::now());
    let row = a.update(&state.db).await?;
    replication_job::publish(&state.runner, row.clone()).await;
    Ok(noted(ApiJson(one(&state, row).await?), AuditNote::new("replication.update", name)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Also delete the replica (its VM definition, disks and points) from
    /// the target and the source's change tracking for it. Default true.
    remove_replica: Option<bool>,
}

/// Deletes a flow. Refused while a job of it runs, a test runs or
/// production runs on the replica (end the test or roll back first).
#[utoipa::path(delete, path = "/replication/{id}", tag = "replication", params(("id" = String, Path, description = "Replication flow id"), DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_replication(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let st = rules::state(&row);
    let why = match st {
        s if s.is_busy() => Some("an operation of it runs; wait for it to finish"),
        ReplicationState::Testing => Some("a test failover runs; end the test first"),
        ReplicationState::FailedOver => Some("production runs on the replica; roll back first"),
        _ => None,
    };
    if let Some(why) = why {
        return Err(ApiError::conflict("invalid_state", format!("The replication flow '{}' is {}: it cannot be deleted now ({why}).", row.name, st.label().to_lowercase())));
    }
    if let Some(j) = replication_job::active_job(&state.db, &row.id).await? {
        return Err(ApiError::conflict("job_active", format!("Job {} of '{}' is {}; stop it or wait for it first.", j.id, row.name, j.status)));
    }
    if q.remove_replica.unwrap_or(true) {
        let vm = source_vm(&state, &row).await?;
        let source = platforms::Entity::find_by_id(vm.platform_id.clone()).one(&state.db).await?;
        let target = platforms::Entity::find_by_id(row.target_platform_id.clone()).one(&state.db).await?;
        if let (Some(source), Some(target)) = (source, target) {
            let spec = spec(&row, &vm);
            let removed = tokio::task::spawn_blocking(move || -> Result<(), String> {
                let progress = crate::engine::progress::Progress::new();
                let log = |line: String| tracing::info!("{line}");
                let ctx = Ctx::new(&progress, &log);
                let kind: PlatformKind = from_wire(&source.kind).ok_or("unknown source platform kind")?;
                let src = crate::catalog::inventory::connect(kind, &source.address).map_err(|e| e.to_string())?;
                let kind: PlatformKind = from_wire(&target.kind).ok_or("unknown target platform kind")?;
                let tgt = crate::catalog::inventory::connect(kind, &target.address).map_err(|e| e.to_string())?;
                replication::remove(src.as_ref(), tgt.as_ref(), &spec, &ctx).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("replica removal thread: {e}")))?;
            if let Err(m) = removed {
                return Err(ApiError::conflict(
                    "replica_not_removed",
                    format!("The replica of '{}' could not be removed ({m}); nothing was deleted. Fix that, or delete with remove_replica=false to keep the replica.", row.name),
                ));
            }
        }
    }
    network_mapping::forget_flow(&state.db, &row.id).await?;
    replication_flows::Entity::delete_by_id(row.id.clone()).exec(&state.db).await?;
    let _ = state.events.send(ServerMessage::ReplicationRemoved { id: row.id.clone() });
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("replication.delete", row.name)))
}

/// Replicate now: an incremental sync of what changed since the newest
/// point (the first sync copies everything).
#[utoipa::path(post, path = "/replication/{id}/sync", tag = "replication", params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn sync_now(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    run_action(&state, &me, &id, Act::ReplicateNow, "replication.sync").await
}

/// Pauses the flow: no syncs run; a running sync stops at its next chunk
/// and the next sync picks up from the replica's last point.
#[utoipa::path(post, path = "/replication/{id}/pause", tag = "replication", params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pause(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    run_action(&state, &me, &id, Act::Pause, "replication.pause").await
}

/// Resumes a paused flow with a sync at once.
#[utoipa::path(post, path = "/replication/{id}/resume", tag = "replication", params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    run_action(&state, &me, &id, Act::Resume, "replication.resume").await
}

/// Starts a test VM from a point (`{}`: the newest) on the target's
/// isolated network (or the flow's test mappings, isolated networks only);
/// the replica and production are untouched.
#[utoipa::path(post, path = "/replication/{id}/test-failover", tag = "replication", request_body = TestFailoverRequest,
    params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn test_failover(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>, ApiJson(req): ApiJson<TestFailoverRequest>) -> Result<Response, ApiError> {
    let point = match &req.point_id {
        Some(p) => Some(
            replication::replica::parse_point_id(p)
                .ok_or_else(|| ApiError::invalid_value("point_id", format!("'{p}' is not a point id (they read rp-<number>).")))?,
        ),
        None => None,
    };
    run_action(&state, &me, &id, Act::TestFailover { point }, "replication.test_failover").await
}

/// Ends a test failover: the test VM is powered off and removed with its overlays.
#[utoipa::path(post, path = "/replication/{id}/end-test", tag = "replication", params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end_test(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    run_action(&state, &me, &id, Act::EndTest, "replication.end_test").await
}

/// Live failover: a final sync (unless `final_sync` is false), the source
/// powered off, the replica powered on with the failover network mapping.
/// Needs the source VM's name typed in `confirm`, and every NIC mapped.
#[utoipa::path(post, path = "/replication/{id}/failover", tag = "replication", request_body = FailoverRequest,
    params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn failover(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>, ApiJson(req): ApiJson<FailoverRequest>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let vm = source_vm(&state, &row).await?;
    check_confirmation(&vm.name, &req.confirm).map_err(|m| ApiError::invalid_value("confirm", m))?;
    if req.shutdown_timeout_seconds.is_some_and(|t| !(1..=3600).contains(&t)) {
        return Err(ApiError::invalid_field("shutdown_timeout_seconds", "A shutdown timeout is 1 to 3600 seconds."));
    }
    let act = Act::Failover { final_sync: req.final_sync.unwrap_or(true), shutdown_timeout_seconds: req.shutdown_timeout_seconds };
    run_action(&state, &me, &id, act, "replication.failover").await
}

/// Rollback: production goes back to the source, with the replica's
/// changes since the failover synced back or discarded. Needs the source
/// VM's name typed in `confirm`.
#[utoipa::path(post, path = "/replication/{id}/rollback", tag = "replication", request_body = RollbackRequest,
    params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn rollback(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>, ApiJson(req): ApiJson<RollbackRequest>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let vm = source_vm(&state, &row).await?;
    check_confirmation(&vm.name, &req.confirm).map_err(|m| ApiError::invalid_value("confirm", m))?;
    run_action(&state, &me, &id, Act::Rollback { sync_back: req.sync_back }, "replication.rollback").await
}

/// Removes what failed actions left (test VMs, half-made files, an
/// interrupted sync or failover), never production.
#[utoipa::path(post, path = "/replication/{id}/cleanup", tag = "replication", params(("id" = String, Path, description = "Replication flow id")),
    responses((status = 202, body = ReplicationAccepted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cleanup(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    run_action(&state, &me, &id, Act::Cleanup, "replication.cleanup").await
}

/// Site failover: a test or live failover of every replication flow of
/// the protection group's VMs, at once or in the `boot_order`'s stages
/// (stage 1 now, each next one after the previous one's guests are up and
/// its delay; VMs in no stage last). Each flow is judged on its own
/// (state, networks): what cannot start is listed with the reason. A live
/// site failover needs the group's name typed in `confirm`.
#[utoipa::path(post, path = "/replication/site-failover", tag = "replication", request_body = SiteFailoverRequest, responses(
    (status = 200, body = SiteFailoverResult), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn site_failover(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<SiteFailoverRequest>) -> Result<Response, ApiError> {
    check_id("group_id", &req.group_id)?;
    let group = protection_groups::Entity::find_by_id(req.group_id.clone()).one(&state.db).await?.ok_or_else(|| {
        ApiError::invalid_value("group_id", format!("No protection group has the id '{}'. GET /api/v1/protection-groups lists them.", req.group_id))
    })?;
    if req.mode == SiteFailoverMode::Live {
        check_confirmation(&group.name, &req.confirm).map_err(|m| ApiError::invalid_value("confirm", m.replace("VM name", "group name")))?;
    }
    let vms = vm_contexts::Entity::find()
        .filter(vm_contexts::Column::GroupId.eq(group.id.clone()))
        .order_by_asc(vm_contexts::Column::Name)
        .all(&state.db)
        .await?;
    let flows = replication_flows::Entity::find()
        .filter(replication_flows::Column::VmContextId.is_in(vms.iter().map(|v| v.id.clone())))
        .order_by_asc(replication_flows::Column::Name)
        .all(&state.db)
        .await?;
    let unreplicated: Vec<NamedRef> = vms
        .iter()
        .filter(|v| !flows.iter().any(|f| f.vm_context_id == v.id))
        .map(|v| NamedRef { id: v.id.clone(), name: v.name.clone() })
        .collect();
    // The boot order: stages of flows, the flows of VMs in no stage last.
    let group_vm_ids: Vec<&str> = vms.iter().map(|v| v.id.as_str()).collect();
    validate_boot_order(&req.boot_order, &group_vm_ids).map_err(|m| ApiError::invalid_field("boot_order", m))?;
    let mut stages: Vec<(Vec<replication_flows::Model>, bool, u32)> = Vec::new();
    let mut rest = flows;
    for s in &req.boot_order {
        let (these, others): (Vec<_>, Vec<_>) = rest.into_iter().partition(|f| s.vm_ids.contains(&f.vm_context_id));
        rest = others;
        if !these.is_empty() {
            stages.push((these, s.wait_for_boot, s.delay_seconds));
        }
    }
    if !rest.is_empty() {
        stages.push((rest, true, 0));
    }
    let first = if stages.is_empty() { Vec::new() } else { std::mem::take(&mut stages[0].0) };
    let final_sync = req.final_sync.unwrap_or(true);
    let mut started = Vec::new();
    let mut refused = Vec::new();
    let mut first_jobs = Vec::new();
    for f in first {
        let named = NamedRef { id: f.id.clone(), name: f.name.clone() };
        let act = match req.mode {
            SiteFailoverMode::Test => Act::TestFailover { point: None },
            SiteFailoverMode::Live => Act::Failover { final_sync, shutdown_timeout_seconds: None },
        };
        match replication_job::act(&state.runner, f, act, &me.username).await {
            Ok((row, job)) => {
                first_jobs.extend(job.as_ref().map(|j| j.id.clone()));
                started.push(accepted(&state, row, job).await?)
            }
            Err(ActError::Db(e)) => return Err(e.into()),
            Err(e) => refused.push(SiteFailoverRefusal { flow: named, reason: e.to_string() }),
        }
    }
    let named = |fs: &[replication_flows::Model]| fs.iter().map(|f| NamedRef { id: f.id.clone(), name: f.name.clone() }).collect::<Vec<_>>();
    let mut scheduled = Vec::new();
    if stages.len() > 1 {
        // What comes before stage i+1 is stage i's wait and delay.
        for (i, w) in stages.windows(2).enumerate() {
            scheduled.push(ScheduledStage { stage: i as u32 + 2, flows: named(&w[1].0), wait_for_boot: w[0].1, delay_seconds: w[0].2 });
        }
        let plan_stages = stages.iter().map(|(fs, wait, delay)| PlanStage { flows: named(fs), wait_for_boot: *wait, delay_seconds: *delay }).collect();
        let plan = Plan {
            id: crate::catalog::new_id(),
            group: NamedRef { id: group.id.clone(), name: group.name.clone() },
            mode: req.mode,
            final_sync,
            requested_by: me.username.clone(),
            stages: plan_stages,
            next: 1,
            waiting_on: first_jobs,
            updated_at: chrono::Utc::now(),
        };
        site_failover::schedule(&state.runner, plan).map_err(|e| ApiError::Internal(anyhow::anyhow!("recording the site failover's boot order: {e}")))?;
    }
    let text = format!(
        "{} ({}): {} started, {} refused{}",
        group.name,
        req.mode,
        started.len(),
        refused.len(),
        if scheduled.is_empty() { String::new() } else { format!(", {} later stage(s)", scheduled.len()) }
    );
    let body = SiteFailoverResult { group: NamedRef { id: group.id, name: group.name }, mode: req.mode, started, refused, unreplicated, scheduled };
    Ok(noted(ApiJson(body), AuditNote::new("replication.site_failover", text)))
}
