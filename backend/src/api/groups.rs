//! `/api/v1/protection-groups`: named sets of managed VMs. A VM is in at
//! most one group; a group that a flow protects cannot be removed.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use shared_types::error::ErrorBody;
use shared_types::groups::{CreateGroupRequest, GroupDetails, GroupVmsRequest, ProtectionGroup, UpdateGroupRequest, DESCRIPTION_MAX};
use shared_types::{validate_name, NamedRef};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{id_list, is_unique_violation, noted, quote_list};
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::catalog::vm_list::{self, VmFilter};
use crate::catalog::{new_id, to_u64};
use crate::db::entities::{flows, group_policies, protection_groups, vm_contexts};
use crate::state::AppState;

/// Most VMs one request adds to a group.
const GROUP_VMS_MAX: usize = 5000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(add_vms))
        .routes(routes!(remove_vm))
}

pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<protection_groups::Model, ApiError> {
    protection_groups::Entity::find_by_id(id.to_owned()).one(db).await?.ok_or_else(|| {
        ApiError::not_found("group_not_found", format!("No protection group has the id '{id}'. GET /api/v1/protection-groups lists them."))
    })
}

async fn to_api(db: &impl ConnectionTrait, rows: Vec<protection_groups::Model>) -> Result<Vec<ProtectionGroup>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|g| g.id.clone()).collect();
    let vms = crate::catalog::vm_list::group_sizes(db, ids.clone()).await?;
    let flows: HashMap<String, i64> = flows::Entity::find()
        .select_only()
        .column(flows::Column::GroupId)
        .column_as(Expr::col(flows::Column::Id).count(), "n")
        .filter(flows::Column::GroupId.is_in(ids.clone()))
        .group_by(flows::Column::GroupId)
        .into_tuple::<(Option<String>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(g, n)| g.map(|g| (g, n)))
        .collect();
    let links: HashMap<String, String> =
        group_policies::Entity::find().filter(group_policies::Column::GroupId.is_in(ids.clone())).all(db).await?.into_iter().map(|l| (l.group_id, l.policy_id)).collect();
    let policy_names = crate::catalog::policies::names(db, links.values().cloned()).await?;
    Ok(rows
        .into_iter()
        .map(|g| ProtectionGroup {
            vm_count: vms.get(&g.id).copied().map(to_u64).unwrap_or(0),
            flow_count: flows.get(&g.id).copied().map(to_u64).unwrap_or(0),
            policy: links.get(&g.id).map(|p| policy_names.named(p)),
            id: g.id,
            name: g.name,
            description: g.description,
            created_at: g.created_at,
            updated_at: g.updated_at,
        })
        .collect())
}

async fn details(db: &impl ConnectionTrait, row: protection_groups::Model) -> Result<GroupDetails, ApiError> {
    let vms = vm_list::all(db, &VmFilter { group_id: Some(row.id.clone()), ..Default::default() }).await?;
    let flows = flows::Entity::find()
        .filter(flows::Column::GroupId.eq(row.id.clone()))
        .order_by_asc(flows::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(|f| NamedRef { id: f.id, name: f.name })
        .collect();
    let group = to_api(db, vec![row]).await?.pop().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("group row vanished")))?;
    Ok(GroupDetails { group, vms, flows })
}

fn check_description(d: &Option<String>) -> Result<(), ApiError> {
    if let Some(d) = d {
        if d.chars().count() > DESCRIPTION_MAX {
            return Err(ApiError::invalid_field("description", format!("A description has at most {DESCRIPTION_MAX} characters.")));
        }
        if d.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
            return Err(ApiError::invalid_field("description", "A description must not contain control characters."));
        }
    }
    Ok(())
}

/// Puts VMs into a group inside `txn`: each must exist and be in no other group.
async fn join<C: ConnectionTrait>(txn: &C, group: &protection_groups::Model, ids: &[String]) -> Result<(), ApiError> {
    let rows = vm_contexts::Entity::find().filter(vm_contexts::Column::Id.is_in(ids.to_vec())).all(txn).await?;
    let unknown: Vec<String> = ids.iter().filter(|id| !rows.iter().any(|r| &r.id == *id)).cloned().collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid_value(
            "vm_ids",
            format!("No managed VM has the id {}. GET /api/v1/vm-contexts lists them.", quote_list(&unknown)),
        ));
    }
    let elsewhere: Vec<&vm_contexts::Model> = rows.iter().filter(|r| r.group_id.as_ref().is_some_and(|g| g != &group.id)).collect();
    if !elsewhere.is_empty() {
        let names: Vec<String> = elsewhere.iter().map(|r| r.name.clone()).collect();
        return Err(ApiError::conflict(
            "vm_in_other_group",
            format!(
                "{} already in another protection group; a VM is in one group at most. Remove {} from {} first.",
                quote_list(&names),
                if names.len() == 1 { "it" } else { "them" },
                if names.len() == 1 { "that group" } else { "their groups" }
            ),
        ));
    }
    let free: Vec<String> = rows.iter().filter(|r| r.group_id.is_none()).map(|r| r.id.clone()).collect();
    if free.is_empty() {
        return Ok(());
    }
    let done = vm_contexts::Entity::update_many()
        .col_expr(vm_contexts::Column::GroupId, Expr::value(group.id.clone()))
        .filter(vm_contexts::Column::Id.is_in(free.clone()))
        .filter(vm_contexts::Column::GroupId.is_null())
        .exec(txn)
        .await?;
    if done.rows_affected != free.len() as u64 {
        return Err(ApiError::conflict("group_changed", "Some of these VMs were put in a group meanwhile; reload and try again."));
    }
    Ok(())
}

/// Every protection group, by name, with VM and flow counts.
#[utoipa::path(get, path = "/protection-groups", tag = "protection-groups", responses((status = 200, body = Vec<ProtectionGroup>)))]
async fn list_groups(State(state): State<AppState>) -> Result<ApiJson<Vec<ProtectionGroup>>, ApiError> {
    let rows = protection_groups::Entity::find().order_by_asc(protection_groups::Column::Name).all(&state.db).await?;
    Ok(ApiJson(to_api(&state.db, rows).await?))
}

/// Creates a group, optionally with its first VMs (which must be in no group).
#[utoipa::path(post, path = "/protection-groups", tag = "protection-groups", request_body = CreateGroupRequest, responses(
    (status = 201, body = GroupDetails), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_group(State(state): State<AppState>, ApiJson(req): ApiJson<CreateGroupRequest>) -> Result<Response, ApiError> {
    validate_name("group", &req.name).map_err(|m| ApiError::invalid_field("name", m))?;
    check_description(&req.description)?;
    let vm_ids = if req.vm_ids.is_empty() { Vec::new() } else { id_list("vm_ids", &req.vm_ids, GROUP_VMS_MAX)? };
    let taken = protection_groups::Entity::find().filter(protection_groups::Column::Name.eq(req.name.clone())).count(&state.db).await?;
    if taken > 0 {
        return Err(ApiError::conflict("group_name_taken", format!("A protection group named '{}' exists already.", req.name)));
    }
    let now = Utc::now();
    let txn = state.db.begin().await?;
    let row = protection_groups::ActiveModel {
        id: Set(new_id()),
        name: Set(req.name.clone()),
        description: Set(req.description.clone().filter(|d| !d.trim().is_empty())),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("group_name_taken", format!("A protection group named '{}' was just created.", req.name))
        } else {
            e.into()
        }
    })?;
    if !vm_ids.is_empty() {
        join(&txn, &row, &vm_ids).await?;
    }
    txn.commit().await?;
    let body = details(&state.db, row).await?;
    let target = format!("{} ({} VMs)", body.group.name, body.vms.len());
    Ok(noted((StatusCode::CREATED, ApiJson(body)), AuditNote::new("group.create", target)))
}

/// A group with its VMs and the flows that protect it.
#[utoipa::path(get, path = "/protection-groups/{id}", tag = "protection-groups", params(("id" = String, Path, description = "Group id")),
    responses((status = 200, body = GroupDetails), (status = 404, body = ErrorBody)))]
async fn get_group(State(state): State<AppState>, Path(id): Path<String>) -> Result<ApiJson<GroupDetails>, ApiError> {
    let row = find(&state.db, &id).await?;
    Ok(ApiJson(details(&state.db, row).await?))
}

/// Renames a group, changes its description, or sets the policy its backup
/// flows follow (all of them now, and flows created from it later).
#[utoipa::path(patch, path = "/protection-groups/{id}", tag = "protection-groups", params(("id" = String, Path, description = "Group id")),
    request_body = UpdateGroupRequest, responses(
    (status = 200, body = GroupDetails), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_group(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<UpdateGroupRequest>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    check_description(&req.description)?;
    let mut active = row.clone().into_active_model();
    if let Some(name) = &req.name {
        validate_name("group", name).map_err(|m| ApiError::invalid_field("name", m))?;
        if name != &row.name {
            let taken = protection_groups::Entity::find().filter(protection_groups::Column::Name.eq(name.clone())).count(&state.db).await?;
            if taken > 0 {
                return Err(ApiError::conflict("group_name_taken", format!("A protection group named '{name}' exists already.")));
            }
        }
        active.name = Set(name.clone());
    }
    if let Some(d) = &req.description {
        active.description = Set(Some(d.clone()).filter(|d| !d.trim().is_empty()));
    }
    let policy = match &req.policy_id {
        Some(Some(p)) => Some(super::policies::named(&state.db, "policy_id", p).await?),
        _ => None,
    };
    let flow_ids = crate::catalog::policies::group_flow_ids(&state.db, &row.id).await?;
    if let Some(p) = &policy {
        let group_flows = flows::Entity::find().filter(flows::Column::Id.is_in(flow_ids.clone())).all(&state.db).await?;
        super::policies::check_copy_target_of(&state.db, "policy_id", p, &group_flows).await?;
        let repos: Vec<String> = group_flows.into_iter().map(|f| f.repository_id).collect();
        super::policies::check_encryption(&state.db, "policy_id", p, repos).await?;
    }
    active.updated_at = Set(Utc::now());
    let txn = state.db.begin().await?;
    match (&req.policy_id, &policy) {
        (Some(_), Some(p)) => {
            group_policies::Entity::delete_by_id(row.id.clone()).exec(&txn).await?;
            group_policies::ActiveModel { group_id: Set(row.id.clone()), policy_id: Set(p.id.clone()) }.insert(&txn).await?;
            crate::catalog::policies::follow(&txn, p, flow_ids.clone()).await?;
        }
        (Some(_), None) => {
            group_policies::Entity::delete_by_id(row.id.clone()).exec(&txn).await?;
        }
        (None, _) => {}
    }
    let updated = active.update(&txn).await.map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict("group_name_taken", "Another group took that name meanwhile; choose another.")
        } else {
            e.into()
        }
    })?;
    txn.commit().await?;
    let body = details(&state.db, updated).await?;
    let target = match (&req.policy_id, &policy) {
        (Some(_), Some(p)) => format!("{} (policy '{}' for {} flow(s))", body.group.name, p.name, flow_ids.len()),
        (Some(_), None) => format!("{} (no policy)", body.group.name),
        (None, _) => body.group.name.clone(),
    };
    Ok(noted(ApiJson(body), AuditNote::new("group.update", target)))
}

/// Removes a group; its VMs become ungrouped. Refused while a flow protects it.
#[utoipa::path(delete, path = "/protection-groups/{id}", tag = "protection-groups", params(("id" = String, Path, description = "Group id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_group(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let flow_names: Vec<String> =
        flows::Entity::find().filter(flows::Column::GroupId.eq(row.id.clone())).all(&state.db).await?.into_iter().map(|f| f.name).collect();
    if !flow_names.is_empty() {
        return Err(ApiError::conflict(
            "group_in_use",
            format!("The group '{}' is the source of the flow {}; delete those flows or give them another source first.", row.name, quote_list(&flow_names)),
        ));
    }
    let txn = state.db.begin().await?;
    group_policies::Entity::delete_by_id(row.id.clone()).exec(&txn).await?;
    vm_contexts::Entity::update_many()
        .col_expr(vm_contexts::Column::GroupId, Expr::value(Option::<String>::None))
        .filter(vm_contexts::Column::GroupId.eq(row.id.clone()))
        .exec(&txn)
        .await?;
    protection_groups::Entity::delete_by_id(row.id.clone()).exec(&txn).await.map_err(|e| {
        if super::common::is_foreign_key_violation(&e) {
            ApiError::conflict("group_in_use", format!("A flow was just given the group '{}' as its source; reload.", row.name))
        } else {
            e.into()
        }
    })?;
    txn.commit().await?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("group.delete", row.name)))
}

/// Adds managed VMs to a group. VMs already in it stay; VMs in another group are refused.
#[utoipa::path(post, path = "/protection-groups/{id}/vms", tag = "protection-groups", params(("id" = String, Path, description = "Group id")),
    request_body = GroupVmsRequest, responses(
    (status = 200, body = GroupDetails), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 422, body = ErrorBody)))]
async fn add_vms(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<GroupVmsRequest>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let ids = id_list("vm_ids", &req.vm_ids, GROUP_VMS_MAX)?;
    let txn = state.db.begin().await?;
    join(&txn, &row, &ids).await?;
    txn.commit().await?;
    let body = details(&state.db, row).await?;
    let target = format!("{} (+{} VMs)", body.group.name, ids.len());
    Ok(noted(ApiJson(body), AuditNote::new("group.add_vms", target)))
}

/// Takes one VM out of a group.
#[utoipa::path(delete, path = "/protection-groups/{id}/vms/{vm_id}", tag = "protection-groups", params(
    ("id" = String, Path, description = "Group id"), ("vm_id" = String, Path, description = "VM context id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_vm(State(state): State<AppState>, Path((id, vm_id)): Path<(String, String)>) -> Result<Response, ApiError> {
    let row = find(&state.db, &id).await?;
    let done = vm_contexts::Entity::update_many()
        .col_expr(vm_contexts::Column::GroupId, Expr::value(Option::<String>::None))
        .filter(vm_contexts::Column::Id.eq(vm_id.clone()))
        .filter(vm_contexts::Column::GroupId.eq(row.id.clone()))
        .exec(&state.db)
        .await?;
    if done.rows_affected == 0 {
        return Err(ApiError::not_found("vm_not_in_group", format!("The group '{}' has no VM with the id '{vm_id}'.", row.name)));
    }
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("group.remove_vm", format!("{} (-{vm_id})", row.name))))
}
