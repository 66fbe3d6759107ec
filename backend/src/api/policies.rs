//! `/api/v1/policies`: named policies (retention, immutability, an encrypted
//! repository required, a verify schedule) that backup flows and protection
//! groups follow (`shared_types::policies` says how). A change of a policy
//! is written to every flow that follows it in the same transaction; a
//! policy in use cannot be removed (409 naming its flows and groups). The
//! preview says which restore points a candidate retention would delete.
//! Flows and groups take a policy through their own `PATCH` (`policy_id`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Set, TransactionTrait};
use shared_types::error::ErrorBody;
use shared_types::flow::{CopyTarget, FlowKind};
use shared_types::bulk::{BulkOutcome, BulkReport, BulkVmResult, BULK_VMS_MAX};
use shared_types::policies::{
    AssignVmsReport, AssignVmsRequest, CreatePolicyRequest, Policy, PolicyPreview, PolicyPreviewRequest, UpdatePolicyRequest, POLICY_DESCRIPTION_MAX,
    PREVIEW_FLOWS_MAX,
};
use shared_types::NamedRef;
use shared_types::validate_name;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, id_list, is_unique_violation, noted, quote_list};
use super::flows::{check_immutable, check_retention};
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::catalog::{backup_locations, new_id, policies as policy_logic, schedule};
use crate::db::entities::{flow_vms, flows, policies, repositories, vm_contexts};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(preview_policy))
        .routes(routes!(get_policy, update_policy, delete_policy))
        .routes(routes!(assign_vms))
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<policies::Model, ApiError> {
    policies::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found("policy_not_found", format!("No policy has the id '{id}'. GET /api/v1/policies lists them.")))
}

/// A policy named in another request (a flow's or group's `policy_id`): 422 when unknown.
pub async fn named(db: &impl ConnectionTrait, field: &str, id: &str) -> Result<policies::Model, ApiError> {
    check_id(field, id)?;
    policies::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::invalid_value(field, format!("No policy has the id '{id}'. GET /api/v1/policies lists them.")))
}

/// 422 (`field`) when `policy` requires encryption and one of `repository_ids` is not encrypted.
pub async fn check_encryption(db: &impl ConnectionTrait, field: &str, policy: &policies::Model, repository_ids: Vec<String>) -> Result<(), ApiError> {
    if !policy.require_encryption {
        return Ok(());
    }
    let plain = policy_logic::unencrypted(db, repository_ids).await?;
    if plain.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_value(
        field,
        format!(
            "The policy '{}' requires an encrypted repository, and the repository {} is not encrypted. Choose an encrypted repository or another policy.",
            policy.name,
            plain.join(", ")
        ),
    ))
}

/// 422 (`field`) when `policy` copies to the repository one of `flows`
/// writes to (a copy must go to a second repository), naming the
/// repository and those flows.
pub async fn check_copy_target_of(db: &impl ConnectionTrait, field: &str, policy: &policies::Model, flows: &[flows::Model]) -> Result<(), ApiError> {
    let Some(t) = backup_locations::parse_target(policy.copy_target.as_deref()) else { return Ok(()) };
    let same: Vec<String> = flows.iter().filter(|f| f.repository_id == t.repository_id).map(|f| f.name.clone()).collect();
    if same.is_empty() {
        return Ok(());
    }
    let repo = repositories::Entity::find_by_id(t.repository_id.clone()).one(db).await?.map(|r| r.name).unwrap_or(t.repository_id);
    Err(ApiError::invalid_value(
        field,
        format!(
            "The policy '{}' copies restore points to '{repo}', the repository the flow{} {} already write{} to; a copy must go to a second repository. Choose another policy, or point {} to another repository first.",
            policy.name,
            if same.len() == 1 { "" } else { "s" },
            quote_list(&same),
            if same.len() == 1 { "s" } else { "" },
            if same.len() == 1 { "that flow" } else { "those flows" },
        ),
    ))
}

/// A policy's copy target as its column, or a 4xx naming what is wrong:
/// the repository must exist and differ from the repository of every flow
/// that follows the policy (`policy_id`).
async fn check_copy_target(db: &impl ConnectionTrait, target: Option<&CopyTarget>, policy_id: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(t) = target else { return Ok(None) };
    if let Some((field, message)) = backup_locations::check_target(db, t, None).await? {
        return Err(ApiError::invalid_value(&field, message));
    }
    if let Some(id) = policy_id {
        let same: Vec<String> = flows::Entity::find()
            .filter(flows::Column::PolicyId.eq(id))
            .filter(flows::Column::RepositoryId.eq(t.repository_id.clone()))
            .all(db)
            .await?
            .into_iter()
            .map(|f| f.name)
            .collect();
        if !same.is_empty() {
            return Err(ApiError::invalid_value(
                "copy_target.repository_id",
                format!("the flows {} that follow this policy already write to that repository; a copy must go to a second repository", same.join(", ")),
            ));
        }
    }
    Ok(backup_locations::target_column(Some(t)))
}

async fn one(db: &impl ConnectionTrait, row: policies::Model) -> Result<Policy, ApiError> {
    policy_logic::to_api(db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("policy row vanished")))
}

fn check_description(d: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(d) = d else { return Ok(None) };
    if d.chars().count() > POLICY_DESCRIPTION_MAX {
        return Err(ApiError::invalid_field("description", format!("A description has at most {POLICY_DESCRIPTION_MAX} characters.")));
    }
    if d.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(ApiError::invalid_field("description", "A description must not contain control characters."));
    }
    Ok(Some(d.trim().to_owned()).filter(|d| !d.is_empty()))
}

fn check_verify(s: &Option<String>) -> Result<Option<String>, ApiError> {
    match s {
        None => Ok(None),
        Some(p) => {
            schedule::parse(p).map_err(|m| ApiError::invalid_value("verify_schedule", m))?;
            Ok(Some(p.trim().to_owned()))
        }
    }
}

async fn name_free(db: &impl ConnectionTrait, name: &str) -> Result<(), ApiError> {
    if policies::Entity::find().filter(policies::Column::Name.eq(name)).count(db).await? > 0 {
        return Err(ApiError::conflict("policy_name_taken", format!("A policy named '{name}' exists already.")));
    }
    Ok(())
}

fn taken(e: sea_orm::DbErr) -> ApiError {
    if is_unique_violation(&e) {
        ApiError::conflict("policy_name_taken", "Another policy took that name meanwhile; choose another.")
    } else {
        e.into()
    }
}

/// Every policy, by name, with what it keeps and the flows and groups that follow it.
#[utoipa::path(get, path = "/policies", tag = "policies", responses((status = 200, body = Vec<Policy>)))]
async fn list_policies(State(state): State<AppState>) -> Result<ApiJson<Vec<Policy>>, ApiError> {
    let rows = policies::Entity::find().order_by_asc(policies::Column::Name).all(&state.db).await?;
    Ok(ApiJson(policy_logic::to_api(&state.db, rows).await?))
}

/// Creates a policy; flows and groups follow it once their `policy_id` names it.
#[utoipa::path(post, path = "/policies", tag = "policies", request_body = CreatePolicyRequest, responses(
    (status = 201, body = Policy), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_policy(State(state): State<AppState>, ApiJson(req): ApiJson<CreatePolicyRequest>) -> Result<Response, ApiError> {
    validate_name("policy", &req.name).map_err(|m| ApiError::invalid_field("name", m))?;
    let description = check_description(&req.description)?;
    let retention = check_retention(&req.retention)?;
    let immutable_days = check_immutable(req.immutable_days)?;
    let verify_schedule = check_verify(&req.verify_schedule)?;
    let copy_target = check_copy_target(&state.db, req.copy_target.as_ref(), None).await?;
    name_free(&state.db, &req.name).await?;
    let now = Utc::now();
    let row = policies::ActiveModel {
        id: Set(new_id()),
        name: Set(req.name.clone()),
        description: Set(description),
        retention: Set(retention),
        immutable_days: Set(immutable_days),
        require_encryption: Set(req.require_encryption),
        verify_schedule: Set(verify_schedule),
        copy_target: Set(copy_target),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await
    .map_err(taken)?;
    let policy = one(&state.db, row).await?;
    let target = format!("{} ({})", policy.name, policy.keeps);
    Ok(noted((StatusCode::CREATED, ApiJson(policy)), AuditNote::new("policy.create", target)))
}

/// A policy with what it keeps and where it applies.
#[utoipa::path(get, path = "/policies/{id}", tag = "policies", params(("id" = String, Path, description = "Policy id")),
    responses((status = 200, body = Policy), (status = 404, body = ErrorBody)))]
async fn get_policy(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<Policy>, ApiError> {
    let row = find(&state.db, &id).await?;
    Ok(ApiJson(one(&state.db, row).await?))
}

/// Changes a policy and, in the same transaction, every flow that follows it
/// (their retention and immutability). Requiring encryption is refused (409)
/// while a flow that follows the policy writes to an unencrypted repository.
#[utoipa::path(patch, path = "/policies/{id}", tag = "policies", params(("id" = String, Path, description = "Policy id")),
    request_body = UpdatePolicyRequest, responses(
    (status = 200, body = Policy), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn update_policy(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<UpdatePolicyRequest>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let mut active = row.clone().into_active_model();
    let mut changed = Vec::new();
    if let Some(name) = &req.name {
        validate_name("policy", name).map_err(|m| ApiError::invalid_field("name", m))?;
        if name != &row.name {
            name_free(&state.db, name).await?;
        }
        active.name = Set(name.clone());
        changed.push("name");
    }
    if req.description.is_some() {
        active.description = Set(check_description(&req.description)?);
        changed.push("description");
    }
    if let Some(r) = &req.retention {
        active.retention = Set(check_retention(r)?);
        changed.push("retention");
    }
    if let Some(d) = req.immutable_days {
        active.immutable_days = Set(check_immutable(d)?);
        changed.push("immutable_days");
    }
    if let Some(s) = &req.verify_schedule {
        active.verify_schedule = Set(check_verify(s)?);
        changed.push("verify_schedule");
    }
    if let Some(t) = &req.copy_target {
        active.copy_target = Set(check_copy_target(&state.db, t.as_ref(), Some(&row.id)).await?);
        changed.push("copy_target");
    }
    if let Some(e) = req.require_encryption {
        if e && !row.require_encryption {
            let repos: Vec<String> = flows::Entity::find()
                .filter(flows::Column::PolicyId.eq(row.id.clone()))
                .all(&state.db)
                .await?
                .into_iter()
                .map(|f| f.repository_id)
                .collect();
            let plain = policy_logic::unencrypted(&state.db, repos).await?;
            if !plain.is_empty() {
                return Err(ApiError::conflict(
                    "policy_encryption",
                    format!(
                        "Flows that follow the policy '{}' write to the unencrypted repository {}; move them to an encrypted repository or to another policy first.",
                        row.name,
                        plain.join(", ")
                    ),
                ));
            }
        }
        active.require_encryption = Set(e);
        changed.push("require_encryption");
    }
    active.updated_at = Set(Utc::now());
    let txn = state.db.begin().await?;
    let updated = active.update(&txn).await.map_err(taken)?;
    let followers = policy_logic::sync_followers(&txn, &updated).await?;
    txn.commit().await?;
    let policy = one(&state.db, updated).await?;
    let what = if changed.is_empty() { "nothing".to_string() } else { changed.join(", ") };
    let target = format!("{} ({what}; {followers} flow(s) follow it; keeps {})", policy.name, policy.keeps);
    Ok(noted(ApiJson(policy), AuditNote::new("policy.update", target)))
}

/// Removes a policy. Refused (409) while flows follow it or groups give it
/// to their flows: the answer names them.
#[utoipa::path(delete, path = "/policies/{id}", tag = "policies", params(("id" = String, Path, description = "Policy id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_policy(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let (flow_names, group_names) = policy_logic::usage(&state.db, &row.id).await?;
    if !flow_names.is_empty() || !group_names.is_empty() {
        let mut users = Vec::new();
        if !flow_names.is_empty() {
            users.push(format!("the flow{} {}", if flow_names.len() == 1 { "" } else { "s" }, quote_list(&flow_names)));
        }
        if !group_names.is_empty() {
            users.push(format!("the group{} {}", if group_names.len() == 1 { "" } else { "s" }, quote_list(&group_names)));
        }
        return Err(ApiError::conflict(
            "policy_in_use",
            format!(
                "The policy '{}' is used by {}; give them another policy or none first (their retention stays as it is).",
                row.name,
                users.join(" and ")
            ),
        ));
    }
    let done = policies::Entity::delete_by_id(row.id.clone()).exec(&state.db).await.map_err(|e| {
        if super::common::is_foreign_key_violation(&e) {
            ApiError::conflict("policy_in_use", format!("A group was just given the policy '{}'; reload.", row.name))
        } else {
            e.into()
        }
    })?;
    if done.rows_affected != 1 {
        return Err(ApiError::not_found("policy_not_found", format!("The policy '{}' was removed meanwhile.", row.name)));
    }
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("policy.delete", row.name)))
}

/// What a candidate retention would delete now, before it is saved: for the
/// flows that follow `policy_id` and the flows `flow_ids`, VM by VM in each
/// flow's repository, the restore points deleted at the flow's next
/// retention run (after its next backup, or a prune), and those kept only
/// because they are immutable or an instant recovery holds them. Decided by
/// the same code as the runner's retention. Nothing is changed.
#[utoipa::path(post, path = "/policies/preview", tag = "policies", request_body = PolicyPreviewRequest, responses(
    (status = 200, body = PolicyPreview), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preview_policy(State(state): State<AppState>, ApiJson(req): ApiJson<PolicyPreviewRequest>) -> Result<Response, ApiError> {
    check_retention(&req.retention)?;
    let ids = if req.flow_ids.is_empty() { Vec::new() } else { id_list("flow_ids", &req.flow_ids, PREVIEW_FLOWS_MAX)? };
    let mut rows = Vec::new();
    if let Some(p) = &req.policy_id {
        let policy = named(&state.db, "policy_id", p).await?;
        rows = flows::Entity::find()
            .filter(flows::Column::PolicyId.eq(policy.id.clone()))
            .filter(flows::Column::Kind.eq(FlowKind::Backup.as_str()))
            .order_by_asc(flows::Column::Name)
            .all(&state.db)
            .await?;
    }
    if !ids.is_empty() {
        let more = flows::Entity::find().filter(flows::Column::Id.is_in(ids.clone())).order_by_asc(flows::Column::Name).all(&state.db).await?;
        let unknown: Vec<String> = ids.iter().filter(|id| !more.iter().any(|f| &f.id == *id)).cloned().collect();
        if !unknown.is_empty() {
            return Err(ApiError::invalid_value("flow_ids", format!("No flow has the id {}. GET /api/v1/flows lists them.", quote_list(&unknown))));
        }
        for f in more {
            if !rows.iter().any(|r: &flows::Model| r.id == f.id) {
                rows.push(f);
            }
        }
    }
    let data_dir = state.data_dir.clone();
    let preview = policy_logic::preview(&state.db, &data_dir, &req.retention, rows).await?;
    let target = format!("keeps {}: {} restore point(s) of {} flow(s) would be deleted", preview.keeps, preview.deleted_total, preview.flows.len());
    Ok(noted(ApiJson(preview), AuditNote::new("policy.preview", target)))
}

/// ASSETS bulk action: the backup flows that protect these VMs follow the
/// policy (a flow covers all its VMs, so its other VMs get it too). Each VM
/// answers on its own: done, unchanged (its flows followed it already) or
/// refused (no backup flow protects it; a flow writes to an unencrypted
/// repository while the policy requires encryption: that flow is left as
/// it is). With `preview`, nothing changes: the answer says what would, and
/// what the policy's retention would delete from those flows.
#[utoipa::path(post, path = "/policies/{id}/assign-vms", tag = "policies", params(("id" = String, Path, description = "Policy id")),
    request_body = AssignVmsRequest, responses(
    (status = 200, body = AssignVmsReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn assign_vms(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<AssignVmsRequest>) -> Result<Response, ApiError> {
    let policy = find(&state.db, &id).await?;
    let ids = id_list("vm_ids", &req.vm_ids, BULK_VMS_MAX)?;
    let vms = vm_contexts::Entity::find().filter(vm_contexts::Column::Id.is_in(ids.clone())).all(&state.db).await?;
    let group_ids: Vec<String> = vms.iter().filter_map(|v| v.group_id.clone()).collect();
    let listed = flow_vms::Entity::find().filter(flow_vms::Column::VmContextId.is_in(ids.clone())).all(&state.db).await?;
    let mut covering = flows::Entity::find().filter(flows::Column::Kind.eq(FlowKind::Backup.as_str()));
    let mut cond = sea_orm::Condition::any().add(flows::Column::Id.is_in(listed.iter().map(|l| l.flow_id.clone())));
    if !group_ids.is_empty() {
        cond = cond.add(flows::Column::GroupId.is_in(group_ids));
    }
    covering = covering.filter(cond);
    let flow_rows = covering.order_by_asc(flows::Column::Name).all(&state.db).await?;
    // Flows that cannot follow the policy: their repository is not encrypted.
    let mut refused_flows: Vec<String> = Vec::new();
    if policy.require_encryption {
        let repos: Vec<String> = flow_rows.iter().map(|f| f.repository_id.clone()).collect();
        let plain = policy_logic::unencrypted(&state.db, repos.clone()).await?;
        if !plain.is_empty() {
            for f in &flow_rows {
                if !policy_logic::unencrypted(&state.db, vec![f.repository_id.clone()]).await?.is_empty() {
                    refused_flows.push(f.id.clone());
                }
            }
        }
    }
    // Flows that cannot follow the policy: they write to its copy target.
    let copy_repo = backup_locations::parse_target(policy.copy_target.as_deref()).map(|t| t.repository_id);
    let copy_refused: Vec<String> = flow_rows.iter().filter(|f| Some(&f.repository_id) == copy_repo.as_ref()).map(|f| f.id.clone()).collect();
    let copy_repo_name = match &copy_repo {
        Some(r) if !copy_refused.is_empty() => repositories::Entity::find_by_id(r.clone()).one(&state.db).await?.map(|r| r.name).unwrap_or_else(|| r.clone()),
        _ => String::new(),
    };
    refused_flows.extend(copy_refused.iter().cloned());
    let follows = |f: &flows::Model| f.policy_id.as_deref() == Some(policy.id.as_str());
    let to_assign: Vec<&flows::Model> = flow_rows.iter().filter(|f| !follows(f) && !refused_flows.contains(&f.id)).collect();
    let items: Vec<BulkVmResult> = ids
        .iter()
        .map(|vm_id| {
            let vm = vms.iter().find(|v| &v.id == vm_id);
            let name = vm.map(|v| v.name.clone()).unwrap_or_default();
            let result = |outcome, message: String| BulkVmResult { vm_id: vm_id.clone(), vm_name: name.clone(), outcome, message, job_id: None, flow: None };
            let Some(vm) = vm else {
                return result(BulkOutcome::Refused, format!("No managed VM has the id '{vm_id}'."));
            };
            let mine: Vec<&flows::Model> = flow_rows
                .iter()
                .filter(|f| match &f.group_id {
                    Some(g) => vm.group_id.as_deref() == Some(g.as_str()),
                    None => listed.iter().any(|l| l.flow_id == f.id && &l.vm_context_id == vm_id),
                })
                .collect();
            let names = |list: &[&flows::Model]| quote_list(&list.iter().map(|f| f.name.clone()).collect::<Vec<_>>());
            if mine.is_empty() {
                return result(BulkOutcome::Refused, format!("No backup flow protects {name}: add it to a flow or to a protected group first (FLOWS)."));
            }
            let refused: Vec<&flows::Model> = mine.iter().copied().filter(|f| refused_flows.contains(&f.id)).collect();
            let new: Vec<&flows::Model> = mine.iter().copied().filter(|f| !follows(f) && !refused_flows.contains(&f.id)).collect();
            if !refused.is_empty() {
                let also = if new.is_empty() { String::new() } else { format!(" The flow {} follow{} it.", names(&new), if req.preview { "s would" } else { "s" }) };
                let (same, plain): (Vec<&flows::Model>, Vec<&flows::Model>) = refused.iter().copied().partition(|f| copy_refused.contains(&f.id));
                let mut why = Vec::new();
                if !plain.is_empty() {
                    why.push(format!("The policy '{}' requires an encrypted repository; the flow {} writes to an unencrypted one.", policy.name, names(&plain)));
                }
                if !same.is_empty() {
                    why.push(format!(
                        "The policy '{}' copies restore points to '{copy_repo_name}', where the flow {} writes; a copy must go to a second repository.",
                        policy.name,
                        names(&same)
                    ));
                }
                return result(BulkOutcome::Refused, format!("{}{also}", why.join(" ")));
            }
            if new.is_empty() {
                return result(BulkOutcome::Unchanged, format!("The flow {} follows '{}' already.", names(&mine), policy.name));
            }
            let verb = if req.preview { "would follow" } else { "follows now" };
            result(BulkOutcome::Done, format!("The flow {} {verb} '{}' ({}).", names(&new), policy.name, policy_logic::describe(&policy)))
        })
        .collect();
    let flow_refs: Vec<NamedRef> = to_assign.iter().map(|f| NamedRef { id: f.id.clone(), name: f.name.clone() }).collect();
    let data_dir = state.data_dir.clone();
    let preview =
        policy_logic::preview(&state.db, &data_dir, &policy_logic::retention(&policy), to_assign.iter().map(|f| (*f).clone()).collect()).await?;
    let report = BulkReport::new(items);
    if req.preview {
        let target = format!("{} (preview for {} VM(s): {} flow(s))", policy.name, ids.len(), flow_refs.len());
        return Ok(noted(ApiJson(AssignVmsReport { report, flows: flow_refs, preview, preview_only: true }), AuditNote::new("policy.assign_vms_preview", target)));
    }
    let txn = state.db.begin().await?;
    policy_logic::follow(&txn, &policy, flow_refs.iter().map(|f| f.id.clone()).collect()).await?;
    txn.commit().await?;
    let target = format!(
        "{} → {} flow(s) of {} VM(s): {}",
        policy.name,
        flow_refs.len(),
        ids.len(),
        flow_refs.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(noted(ApiJson(AssignVmsReport { report, flows: flow_refs, preview, preview_only: false }), AuditNote::new("policy.assign_vms", target)))
}
