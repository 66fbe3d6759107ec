//! `/api/v1/flows`: backup flows (VMs or a protection group → a repository,
//! cron schedule, retention, immutability): CRUD, enable / disable, what is
//! active now and the history of runs. Every change is checked against the
//! flow state rule in `shared_types::flow` (409 with the reason otherwise).
//! Running a flow (backup now, pause, resume, stop) belongs to the job runner.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::flow::{
    ActiveFlow, ActiveFlows, CreateFlowRequest, Flow, FlowAction, FlowDetails, FlowKind, FlowSource, FlowState, RetentionPolicy,
    UpdateFlowRequest, IMMUTABLE_DAYS_MAX,
};
use shared_types::jobs::{JobPage, JobStatus};
use shared_types::validate_name;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, id_list, is_unique_violation, noted, page, quote_list};
use super::{ApiError, ApiJson, ApiQuery};
use crate::auth::audit::AuditNote;
use crate::catalog::vm_list::{self, VmFilter};
use crate::catalog::{backup_locations, convert, flows as flow_logic, new_id, policies as policy_logic, schedule};
use crate::db::entities::{flow_vms, flows, jobs, policies, protection_groups, repositories, vm_contexts};
use crate::state::AppState;

/// Most VMs a VM-sourced flow lists.
const FLOW_VMS_MAX: usize = 5000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flows, create_flow))
        .routes(routes!(active_flows))
        .routes(routes!(flow_history))
        .routes(routes!(get_flow, update_flow, delete_flow))
        .routes(routes!(enable_flow))
        .routes(routes!(disable_flow))
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<flows::Model, ApiError> {
    flows::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("flow_not_found", format!("No flow has the id '{id}'. GET /api/v1/flows lists them.")))
}

/// 409 with the state rule's message when the flow's state does not allow `action`.
pub fn require(flow: &flows::Model, action: FlowAction) -> Result<(), ApiError> {
    flow_logic::check(flow, action).map_err(|m| ApiError::conflict("action_not_allowed", m))
}

async fn one(db: &impl ConnectionTrait, row: flows::Model) -> Result<Flow, ApiError> {
    flow_logic::to_api(db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("flow row vanished")))
}

/// A checked source: `(group id, VM ids)`.
async fn check_source(db: &impl ConnectionTrait, source: &FlowSource) -> Result<(Option<String>, Vec<String>), ApiError> {
    match source {
        FlowSource::Group { group_id } => {
            check_id("source.group_id", group_id)?;
            if protection_groups::Entity::find_by_id(group_id.clone()).one(db).await?.is_none() {
                return Err(ApiError::invalid_value(
                    "source.group_id",
                    format!("No protection group has the id '{group_id}'. GET /api/v1/protection-groups lists them."),
                ));
            }
            Ok((Some(group_id.clone()), Vec::new()))
        }
        FlowSource::Vms { vm_ids } => {
            let ids = id_list("source.vm_ids", vm_ids, FLOW_VMS_MAX)?;
            let known: Vec<String> = vm_contexts::Entity::find()
                .select_only()
                .column(vm_contexts::Column::Id)
                .filter(vm_contexts::Column::Id.is_in(ids.clone()))
                .into_tuple()
                .all(db)
                .await?;
            let unknown: Vec<String> = ids.iter().filter(|id| !known.contains(id)).cloned().collect();
            if !unknown.is_empty() {
                return Err(ApiError::invalid_value(
                    "source.vm_ids",
                    format!("No managed VM has the id {}. Add VMs with POST /api/v1/discovery/bulk-add first.", quote_list(&unknown)),
                ));
            }
            Ok((None, ids))
        }
    }
}

async fn check_repository(db: &impl ConnectionTrait, id: &str) -> Result<(), ApiError> {
    check_id("repository_id", id)?;
    if repositories::Entity::find_by_id(id.to_owned()).one(db).await?.is_none() {
        return Err(ApiError::invalid_value("repository_id", format!("No repository has the id '{id}'. GET /api/v1/repositories lists them.")));
    }
    Ok(())
}

/// A flow's copy target (its column) must name an existing second
/// repository, not `repository_id` the flow writes to; `field` is what the
/// 422 names.
async fn check_copy_target(db: &impl ConnectionTrait, column: Option<&str>, repository_id: &str, field: &str) -> Result<(), ApiError> {
    let Some(target) = backup_locations::parse_target(column) else { return Ok(()) };
    if let Some((f, message)) = backup_locations::check_target(db, &target, Some(repository_id)).await? {
        let f = if field == "copy_target.repository_id" { f } else { field.to_owned() };
        return Err(ApiError::invalid_value(&f, message));
    }
    Ok(())
}

pub(super) fn check_schedule(s: &Option<String>) -> Result<Option<String>, ApiError> {
    match s {
        None => Ok(None),
        Some(p) => {
            schedule::parse(p).map_err(|m| ApiError::invalid_value("schedule", m))?;
            Ok(Some(p.trim().to_owned()))
        }
    }
}

pub(super) fn check_retention(r: &RetentionPolicy) -> Result<String, ApiError> {
    r.validate().map_err(|(field, m)| ApiError::invalid_field(&field, m))?;
    serde_json::to_string(r).map_err(|e| ApiError::Internal(e.into()))
}

pub(super) fn check_immutable(days: u32) -> Result<i32, ApiError> {
    if days > IMMUTABLE_DAYS_MAX {
        return Err(ApiError::invalid_field("immutable_days", format!("At most {IMMUTABLE_DAYS_MAX} days (ten years).")));
    }
    Ok(days as i32)
}

async fn name_free(db: &impl ConnectionTrait, name: &str) -> Result<(), ApiError> {
    if flows::Entity::find().filter(flows::Column::Name.eq(name)).count(db).await? > 0 {
        return Err(ApiError::conflict("flow_name_taken", format!("A flow named '{name}' exists already.")));
    }
    Ok(())
}

fn taken(e: sea_orm::DbErr) -> ApiError {
    if is_unique_violation(&e) {
        ApiError::conflict("flow_name_taken", "Another flow took that name meanwhile; choose another.")
    } else {
        e.into()
    }
}

async fn set_vms(txn: &DatabaseTransaction, flow_id: &str, vm_ids: Vec<String>) -> Result<(), ApiError> {
    flow_vms::Entity::delete_many().filter(flow_vms::Column::FlowId.eq(flow_id)).exec(txn).await?;
    let rows: Vec<flow_vms::ActiveModel> = vm_ids
        .into_iter()
        .map(|vm| flow_vms::ActiveModel { flow_id: Set(flow_id.to_owned()), vm_context_id: Set(vm) })
        .collect();
    crate::catalog::inventory::insert_batched(txn, rows).await?;
    Ok(())
}

/// Applies `changes` only if the flow is still in `expected` state; 409 otherwise.
async fn update_if_state(txn: &DatabaseTransaction, flow: &flows::Model, changes: flows::ActiveModel) -> Result<(), ApiError> {
    let done = flows::Entity::update_many()
        .set(changes)
        .filter(flows::Column::Id.eq(flow.id.clone()))
        .filter(flows::Column::State.eq(flow.state.clone()))
        .exec(txn)
        .await
        .map_err(taken)?;
    if done.rows_affected != 1 {
        return Err(ApiError::conflict("flow_changed", format!("The flow '{}' changed state meanwhile; reload and try again.", flow.name)));
    }
    Ok(())
}

/// The policy a new flow follows: the one it names, else its group's. Its
/// repository must be encrypted when the policy requires it; retention or
/// immutability given besides must be the policy's (400 otherwise).
async fn creation_policy(db: &impl ConnectionTrait, req: &CreateFlowRequest, group_id: Option<&str>) -> Result<Option<policies::Model>, ApiError> {
    let (policy, why) = match (&req.policy_id, group_id) {
        (Some(p), _) => (Some(super::policies::named(db, "policy_id", p).await?), String::new()),
        (None, Some(g)) => match policy_logic::of_group(db, g).await? {
            Some(p) => (Some(p), " (the policy its group gives its flows; name another with policy_id, or detach it later)".to_string()),
            None => (None, String::new()),
        },
        (None, None) => (None, String::new()),
    };
    let Some(policy) = policy else { return Ok(None) };
    let given = (!req.retention.keeps_everything() && req.retention != policy_logic::retention(&policy), req.immutable_days != 0 && req.immutable_days != policy_logic::immutable_days(&policy));
    if given.0 || given.1 {
        let field = if given.0 { "retention" } else { "immutable_days" };
        return Err(ApiError::invalid_field(
            field,
            format!(
                "The flow follows the policy '{}'{why}, which sets its retention and immutability ({}); leave {field} out.",
                policy.name,
                shared_types::policies::summary(&policy_logic::retention(&policy), policy_logic::immutable_days(&policy), policy.require_encryption)
            ),
        ));
    }
    super::policies::check_encryption(db, "repository_id", &policy, vec![req.repository_id.clone()]).await?;
    Ok(Some(policy))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FlowQuery {
    kind: Option<FlowKind>,
    state: Option<FlowState>,
    enabled: Option<bool>,
}

/// Every flow, by name, with its state and the actions the state allows.
#[utoipa::path(get, path = "/flows", tag = "flows", params(FlowQuery), responses((status = 200, body = Vec<Flow>), (status = 400, body = ErrorBody)))]
async fn list_flows(State(state): State<AppState>, ApiQuery(q): ApiQuery<FlowQuery>) -> Result<ApiJson<Vec<Flow>>, ApiError> {
    let mut find = flows::Entity::find().order_by_asc(flows::Column::Name);
    if let Some(k) = q.kind {
        find = find.filter(flows::Column::Kind.eq(k.as_str()));
    }
    if let Some(s) = q.state {
        find = find.filter(flows::Column::State.eq(s.as_str()));
    }
    if let Some(e) = q.enabled {
        find = find.filter(flows::Column::Enabled.eq(e));
    }
    let rows = find.all(&state.db).await?;
    Ok(ApiJson(flow_logic::to_api(&state.db, rows).await?))
}

/// Creates a backup flow. The schedule is a five-field cron pattern in UTC
/// (422 when it does not parse); without one the flow runs only when asked.
#[utoipa::path(post, path = "/flows", tag = "flows", request_body = CreateFlowRequest, responses(
    (status = 201, body = Flow), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_flow(State(state): State<AppState>, ApiJson(req): ApiJson<CreateFlowRequest>) -> Result<Response, ApiError> {
    validate_name("flow", &req.name).map_err(|m| ApiError::invalid_field("name", m))?;
    let schedule = check_schedule(&req.schedule)?;
    let retention = check_retention(&req.retention)?;
    let immutable_days = check_immutable(req.immutable_days)?;
    let (group_id, vm_ids) = check_source(&state.db, &req.source).await?;
    check_repository(&state.db, &req.repository_id).await?;
    let policy = creation_policy(&state.db, &req, group_id.as_deref()).await?;
    if policy.is_some() && req.copy_target.is_some() {
        return Err(ApiError::invalid_field("copy_target", "The flow follows a policy, which sets its copy target; leave copy_target out."));
    }
    let (retention, immutable_days, copy_target) = match &policy {
        Some(p) => (p.retention.clone(), p.immutable_days, p.copy_target.clone()),
        None => (retention, immutable_days, backup_locations::target_column(req.copy_target.as_ref())),
    };
    let field = if policy.is_some() { "policy_id" } else { "copy_target.repository_id" };
    check_copy_target(&state.db, copy_target.as_deref(), &req.repository_id, field).await?;
    name_free(&state.db, &req.name).await?;
    let enabled = req.enabled.unwrap_or(true);
    let now = Utc::now();
    let id = new_id();
    let txn = state.db.begin().await?;
    let row = flows::ActiveModel {
        id: Set(id.clone()),
        name: Set(req.name.clone()),
        kind: Set(req.kind.as_str().to_owned()),
        group_id: Set(group_id),
        repository_id: Set(req.repository_id.clone()),
        schedule: Set(schedule),
        retention: Set(retention),
        immutable_days: Set(immutable_days),
        policy_id: Set(policy.as_ref().map(|p| p.id.clone())),
        copy_target: Set(copy_target),
        enabled: Set(enabled),
        state: Set(if enabled { FlowState::Idle } else { FlowState::Disabled }.as_str().to_owned()),
        last_run_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(taken)?;
    set_vms(&txn, &id, vm_ids).await?;
    txn.commit().await?;
    let flow = one(&state.db, row).await?;
    let target = format!("{} ({} VMs → {})", flow.name, flow.vm_count, flow.repository.name);
    Ok(noted((StatusCode::CREATED, ApiJson(flow)), AuditNote::new("flow.create", target)))
}

/// A flow with its machines, active jobs and its 20 most recent finished runs.
#[utoipa::path(get, path = "/flows/{id}", tag = "flows", params(("id" = String, Path, description = "Flow id")),
    responses((status = 200, body = FlowDetails), (status = 404, body = ErrorBody)))]
async fn get_flow(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<FlowDetails>, ApiError> {
    let row = find(&state.db, &id).await?;
    let ids = flow_logic::vm_ids(&state.db, &row).await?;
    let vms = vm_list::all(&state.db, &VmFilter { ids: Some(ids), ..Default::default() }).await?;
    let active = jobs::Entity::find()
        .filter(jobs::Column::FlowId.eq(row.id.clone()))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .order_by_asc(jobs::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let recent = jobs::Entity::find()
        .filter(jobs::Column::FlowId.eq(row.id.clone()))
        .filter(jobs::Column::Status.is_in(JobStatus::FINISHED.map(|s| s.as_str())))
        .order_by_desc(jobs::Column::CreatedAt)
        .limit(20)
        .all(&state.db)
        .await?;
    Ok(ApiJson(FlowDetails {
        flow: one(&state.db, row).await?,
        vms,
        active_jobs: convert::jobs(&state.db, active).await?,
        recent_jobs: convert::jobs(&state.db, recent).await?,
    }))
}

/// Changes a flow. Allowed when the state allows `edit` (not while a run is queued, running or paused).
#[utoipa::path(patch, path = "/flows/{id}", tag = "flows", params(("id" = String, Path, description = "Flow id")),
    request_body = UpdateFlowRequest, responses(
    (status = 200, body = Flow), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn update_flow(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<UpdateFlowRequest>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    require(&row, FlowAction::Edit)?;
    let mut changes = flows::ActiveModel { updated_at: Set(Utc::now()), ..Default::default() };
    let mut changed = Vec::new();
    if let Some(name) = &req.name {
        validate_name("flow", name).map_err(|m| ApiError::invalid_field("name", m))?;
        if name != &row.name {
            name_free(&state.db, name).await?;
        }
        changes.name = Set(name.clone());
        changed.push("name");
    }
    if let Some(s) = &req.schedule {
        changes.schedule = Set(check_schedule(s)?);
        changed.push("schedule");
    }
    // The policy the flow follows after this change.
    let policy = match &req.policy_id {
        Some(Some(p)) => Some(super::policies::named(&state.db, "policy_id", p).await?),
        Some(None) => None,
        None => match &row.policy_id {
            Some(p) => policies::Entity::find_by_id(p.clone()).one(&state.db).await?,
            None => None,
        },
    };
    if let Some(p) = &policy {
        if req.retention.is_some() || req.immutable_days.is_some() || req.copy_target.is_some() {
            let field = if req.retention.is_some() {
                "retention"
            } else if req.immutable_days.is_some() {
                "immutable_days"
            } else {
                "copy_target"
            };
            return Err(ApiError::conflict(
                "flow_follows_policy",
                format!(
                    "The flow '{}' follows the policy '{}', which sets its retention, immutability and copy target; change the policy, or detach the flow from it (policy_id: null) to set {field} here.",
                    row.name, p.name
                ),
            ));
        }
    }
    if let Some(r) = &req.retention {
        changes.retention = Set(check_retention(r)?);
        changed.push("retention");
    }
    if let Some(d) = req.immutable_days {
        changes.immutable_days = Set(check_immutable(d)?);
        changed.push("immutable_days");
    }
    if let Some(r) = &req.repository_id {
        check_repository(&state.db, r).await?;
        changes.repository_id = Set(r.clone());
        changed.push("repository");
    }
    if let Some(p) = &policy {
        if req.policy_id.is_some() || req.repository_id.is_some() {
            let repo = req.repository_id.clone().unwrap_or_else(|| row.repository_id.clone());
            let field = if req.repository_id.is_some() { "repository_id" } else { "policy_id" };
            super::policies::check_encryption(&state.db, field, p, vec![repo]).await?;
        }
    }
    // The copy target after this change must name a second repository.
    let copy_target = match (&req.policy_id, &policy, &req.copy_target) {
        (Some(_), Some(p), _) => Some(p.copy_target.clone()),
        (_, _, Some(t)) => Some(backup_locations::target_column(t.as_ref())),
        _ => None,
    };
    if copy_target.is_some() || req.repository_id.is_some() {
        let target = copy_target.clone().unwrap_or_else(|| row.copy_target.clone());
        let repo = req.repository_id.clone().unwrap_or_else(|| row.repository_id.clone());
        let field = match (&copy_target, &req.policy_id) {
            (Some(_), Some(_)) => "policy_id",
            (Some(_), None) => "copy_target.repository_id",
            (None, _) => "repository_id",
        };
        check_copy_target(&state.db, target.as_deref(), &repo, field).await?;
    }
    if let Some(t) = copy_target {
        changes.copy_target = Set(t);
        if req.copy_target.is_some() {
            changed.push("copy_target");
        }
    }
    match (&req.policy_id, &policy) {
        (Some(_), Some(p)) => {
            changes.policy_id = Set(Some(p.id.clone()));
            changes.retention = Set(p.retention.clone());
            changes.immutable_days = Set(p.immutable_days);
            changed.push("policy");
        }
        (Some(_), None) => {
            changes.policy_id = Set(None);
            changed.push("policy (detached)");
        }
        (None, _) => {}
    }
    let mut new_vms = None;
    if let Some(source) = &req.source {
        let (group_id, vm_ids) = check_source(&state.db, source).await?;
        changes.group_id = Set(group_id);
        new_vms = Some(vm_ids);
        changed.push("source");
    }
    let txn = state.db.begin().await?;
    update_if_state(&txn, &row, changes).await?;
    if let Some(vm_ids) = new_vms {
        set_vms(&txn, &row.id, vm_ids).await?;
    }
    txn.commit().await?;
    let flow = one(&state.db, find(&state.db, &id).await?).await?;
    let target = format!("{} ({})", flow.name, if changed.is_empty() { "nothing".to_string() } else { changed.join(", ") });
    Ok(noted(ApiJson(flow), AuditNote::new("flow.update", target)))
}

/// Deletes a flow; its restore points and job history stay.
#[utoipa::path(delete, path = "/flows/{id}", tag = "flows", params(("id" = String, Path, description = "Flow id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_flow(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    require(&row, FlowAction::Delete)?;
    let done = flows::Entity::delete_many()
        .filter(flows::Column::Id.eq(row.id.clone()))
        .filter(flows::Column::State.eq(row.state.clone()))
        .exec(&state.db)
        .await?;
    if done.rows_affected != 1 {
        return Err(ApiError::conflict("flow_changed", format!("The flow '{}' changed state meanwhile; reload and try again.", row.name)));
    }
    crate::catalog::network_mapping::forget_flow(&state.db, &row.id).await?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("flow.delete", row.name)))
}

/// Turns the schedule back on; the state returns to what the last run left.
#[utoipa::path(post, path = "/flows/{id}/enable", tag = "flows", params(("id" = String, Path, description = "Flow id")),
    responses((status = 200, body = Flow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn enable_flow(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    require(&row, FlowAction::Enable)?;
    let next = flow_logic::state_after_enable(&state.db, &row.id).await?;
    let changes = flows::ActiveModel { enabled: Set(true), state: Set(next.as_str().to_owned()), updated_at: Set(Utc::now()), ..Default::default() };
    let txn = state.db.begin().await?;
    update_if_state(&txn, &row, changes).await?;
    txn.commit().await?;
    let flow = one(&state.db, find(&state.db, &id).await?).await?;
    Ok(noted(ApiJson(flow), AuditNote::new("flow.enable", row.name)))
}

/// Turns the schedule off; nothing runs until the flow is enabled.
#[utoipa::path(post, path = "/flows/{id}/disable", tag = "flows", params(("id" = String, Path, description = "Flow id")),
    responses((status = 200, body = Flow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn disable_flow(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    require(&row, FlowAction::Disable)?;
    let changes = flows::ActiveModel {
        enabled: Set(false),
        state: Set(FlowState::Disabled.as_str().to_owned()),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    let txn = state.db.begin().await?;
    update_if_state(&txn, &row, changes).await?;
    txn.commit().await?;
    let flow = one(&state.db, find(&state.db, &id).await?).await?;
    Ok(noted(ApiJson(flow), AuditNote::new("flow.disable", row.name)))
}

/// What is queued, running or paused now, by flow; jobs outside any flow apart.
#[utoipa::path(get, path = "/flows/active", tag = "flows", responses((status = 200, body = ActiveFlows)))]
async fn active_flows(State(state): State<AppState>) -> Result<ApiJson<ActiveFlows>, ApiError> {
    let rows = jobs::Entity::find()
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .order_by_desc(jobs::Column::Priority)
        .order_by_asc(jobs::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let flow_ids: Vec<String> = rows.iter().filter_map(|j| j.flow_id.clone()).collect();
    let all = convert::jobs(&state.db, rows).await?;
    let mut by_flow: BTreeMap<String, Vec<shared_types::jobs::Job>> = BTreeMap::new();
    let mut adhoc_jobs = Vec::new();
    for j in all {
        match j.flow_id.clone() {
            Some(f) => by_flow.entry(f).or_default().push(j),
            None => adhoc_jobs.push(j),
        }
    }
    let flow_rows = if flow_ids.is_empty() {
        Vec::new()
    } else {
        flows::Entity::find().filter(flows::Column::Id.is_in(flow_ids)).order_by_asc(flows::Column::Name).all(&state.db).await?
    };
    let flows = flow_logic::to_api(&state.db, flow_rows)
        .await?
        .into_iter()
        .map(|flow| ActiveFlow { jobs: by_flow.remove(&flow.id).unwrap_or_default(), flow })
        .collect();
    Ok(ApiJson(ActiveFlows { flows, adhoc_jobs }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only runs of this flow (id).
    flow: Option<String>,
    /// Only runs of this VM (VM context id).
    vm: Option<String>,
    /// `completed`, `failed` or `cancelled`.
    status: Option<JobStatus>,
    /// Items per page, 1 to 1000 (default 100).
    limit: Option<u64>,
    /// Items to skip (default 0).
    offset: Option<u64>,
}

/// Finished runs (completed, failed, cancelled), newest first.
#[utoipa::path(get, path = "/flows/history", tag = "flows", params(HistoryQuery), responses(
    (status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
async fn flow_history(State(state): State<AppState>, ApiQuery(q): ApiQuery<HistoryQuery>) -> Result<ApiJson<JobPage>, ApiError> {
    let (limit, offset) = page(q.limit, q.offset)?;
    let statuses: Vec<&str> = match q.status {
        Some(s) if s.is_finished() => vec![s.as_str()],
        Some(s) => {
            return Err(ApiError::invalid_field("status", format!("History holds finished runs only; '{s}' runs are in GET /api/v1/flows/active.")))
        }
        None => JobStatus::FINISHED.map(|s| s.as_str()).to_vec(),
    };
    let mut find = jobs::Entity::find().filter(jobs::Column::Status.is_in(statuses));
    if let Some(f) = q.flow {
        find = find.filter(jobs::Column::FlowId.eq(f));
    }
    if let Some(v) = q.vm {
        find = find.filter(jobs::Column::VmContextId.eq(v));
    }
    let total = find.clone().count(&state.db).await?;
    let rows = find.order_by_desc(jobs::Column::CreatedAt).order_by_desc(jobs::Column::Id).offset(offset).limit(limit).all(&state.db).await?;
    Ok(ApiJson(JobPage { items: convert::jobs(&state.db, rows).await?, total }))
}
