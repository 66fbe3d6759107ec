//! `/api/v1/vm-contexts/bulk/…`: actions on a selection of managed VMs
//! (ASSETS), each VM with its own outcome: add to a protection group, back
//! up now through the VM's backup flow. A refusal for one VM (in another
//! group, in no flow, already being backed up) does not stop the others.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use shared_types::bulk::{BulkGroupRequest, BulkOutcome, BulkReport, BulkVmResult, BulkVmsRequest, BULK_VMS_MAX};
use shared_types::error::ErrorBody;
use shared_types::flow::{FlowAction, FlowKind};
use shared_types::jobs::BackupType;
use shared_types::NamedRef;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_id, id_list, noted};
use super::{groups, ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::AuthUser;
use crate::catalog::flows as flow_rules;
use crate::db::entities::{flow_vms, flows, protection_groups, vm_contexts};
use crate::runner::{BackupRequest, RunnerError};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add_to_group)).routes(routes!(backup_now))
}

fn result(vm_id: &str, vm: Option<&vm_contexts::Model>, outcome: BulkOutcome, message: impl Into<String>) -> BulkVmResult {
    BulkVmResult {
        vm_id: vm_id.to_owned(),
        vm_name: vm.map(|v| v.name.clone()).unwrap_or_default(),
        outcome,
        message: message.into(),
        job_id: None,
        flow: None,
    }
}

fn unknown(vm_id: &str) -> BulkVmResult {
    result(vm_id, None, BulkOutcome::Refused, format!("No managed VM has the id '{vm_id}' (it may have been unmanaged); reload the list."))
}

/// The managed VMs of `ids`, by id.
async fn load(db: &impl ConnectionTrait, ids: &[String]) -> Result<HashMap<String, vm_contexts::Model>, ApiError> {
    Ok(vm_contexts::Entity::find()
        .filter(vm_contexts::Column::Id.is_in(ids.to_vec()))
        .all(db)
        .await?
        .into_iter()
        .map(|v| (v.id.clone(), v))
        .collect())
}

/// Puts each VM into the group: VMs already in it stay (unchanged), VMs in
/// another group are refused with that group's name (a VM is in one group
/// at most), the others join.
#[utoipa::path(post, path = "/vm-contexts/bulk/add-to-group", tag = "vms", request_body = BulkGroupRequest, responses(
    (status = 200, body = BulkReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_to_group(State(state): State<AppState>, ApiJson(req): ApiJson<BulkGroupRequest>) -> Result<Response, ApiError> {
    let ids = id_list("vm_ids", &req.vm_ids, BULK_VMS_MAX)?;
    check_id("group_id", &req.group_id)?;
    let group = groups::find(&state.db, &req.group_id).await?;
    let vms = load(&state.db, &ids).await?;
    let other_groups: HashMap<String, String> = {
        let others: Vec<String> = vms.values().filter_map(|v| v.group_id.clone()).filter(|g| g != &group.id).collect();
        protection_groups::Entity::find()
            .filter(protection_groups::Column::Id.is_in(others))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|g| (g.id, g.name))
            .collect()
    };
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(vm) = vms.get(id) else {
            items.push(unknown(id));
            continue;
        };
        let r = match vm.group_id.as_deref() {
            Some(g) if g == group.id => result(id, Some(vm), BulkOutcome::Unchanged, format!("Already in '{}'.", group.name)),
            Some(g) => {
                let name = other_groups.get(g).cloned().unwrap_or_else(|| g.to_owned());
                result(
                    id,
                    Some(vm),
                    BulkOutcome::Refused,
                    format!("In the group '{name}'; a VM is in one group at most. Remove it from '{name}' first."),
                )
            }
            None => {
                let done = vm_contexts::Entity::update_many()
                    .col_expr(vm_contexts::Column::GroupId, Expr::value(group.id.clone()))
                    .filter(vm_contexts::Column::Id.eq(id.clone()))
                    .filter(vm_contexts::Column::GroupId.is_null())
                    .exec(&state.db)
                    .await?;
                if done.rows_affected == 1 {
                    result(id, Some(vm), BulkOutcome::Done, format!("Added to '{}'.", group.name))
                } else {
                    result(id, Some(vm), BulkOutcome::Refused, "It was put in a group or unmanaged meanwhile; reload and try again.")
                }
            }
        };
        items.push(r);
    }
    let report = BulkReport::new(items);
    let target = format!("{} (+{} of {} VMs)", group.name, report.done, ids.len());
    Ok(noted(ApiJson(report), AuditNote::new("group.add_vms", target)))
}

/// The backup flows covering each VM (directly or through its group), by name.
async fn covering_flows(db: &impl ConnectionTrait, vms: &HashMap<String, vm_contexts::Model>) -> Result<HashMap<String, Vec<flows::Model>>, ApiError> {
    let ids: Vec<String> = vms.keys().cloned().collect();
    let group_ids: Vec<String> = vms.values().filter_map(|v| v.group_id.clone()).collect();
    let direct: Vec<(String, String)> = flow_vms::Entity::find()
        .filter(flow_vms::Column::VmContextId.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|fv| (fv.flow_id, fv.vm_context_id))
        .collect();
    let flow_ids: Vec<String> = direct.iter().map(|(f, _)| f.clone()).collect();
    let rows = flows::Entity::find()
        .filter(Condition::any().add(flows::Column::Id.is_in(flow_ids)).add(flows::Column::GroupId.is_in(group_ids)))
        .order_by_asc(flows::Column::Name)
        .all(db)
        .await?;
    let mut out: HashMap<String, Vec<flows::Model>> = HashMap::new();
    for f in rows.into_iter().filter(|f| flow_rules::kind(f) == FlowKind::Backup) {
        for vm in vms.values() {
            let by_group = f.group_id.is_some() && f.group_id == vm.group_id;
            let listed = direct.iter().any(|(fid, v)| fid == &f.id && v == &vm.id);
            if by_group || listed {
                out.entry(vm.id.clone()).or_default().push(f.clone());
            }
        }
    }
    Ok(out)
}

/// Backs up each VM now through its backup flow (to the flow's repository,
/// incremental where change tracking allows): the first enabled flow, by
/// name, whose state allows Backup now. A VM in no backup flow is refused
/// with that said (`POST /backup/start` makes a one-off backup to a chosen
/// repository); so is one already being backed up.
#[utoipa::path(post, path = "/vm-contexts/bulk/backup-now", tag = "vms", request_body = BulkVmsRequest, responses(
    (status = 200, body = BulkReport), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn backup_now(State(state): State<AppState>, me: AuthUser, ApiJson(req): ApiJson<BulkVmsRequest>) -> Result<Response, ApiError> {
    let ids = id_list("vm_ids", &req.vm_ids, BULK_VMS_MAX)?;
    let vms = load(&state.db, &ids).await?;
    let covering = covering_flows(&state.db, &vms).await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(vm) = vms.get(id) else {
            items.push(unknown(id));
            continue;
        };
        let flows = covering.get(id).map(Vec::as_slice).unwrap_or_default();
        if flows.is_empty() {
            items.push(result(
                id,
                Some(vm),
                BulkOutcome::Refused,
                "In no backup flow: nothing queued. Protect it with a flow, or start a one-off backup to a repository you choose (One-off backup… on ASSETS).",
            ));
            continue;
        }
        let Some(flow) = flows.iter().find(|f| f.enabled && flow_rules::check(f, FlowAction::BackupNow).is_ok()) else {
            let why: Vec<String> = flows
                .iter()
                .map(|f| match flow_rules::check(f, FlowAction::BackupNow) {
                    Err(m) => m,
                    Ok(()) => format!("the flow '{}' is disabled", f.name),
                })
                .collect();
            items.push(result(id, Some(vm), BulkOutcome::Refused, format!("Nothing queued: {}.", why.join("; "))));
            continue;
        };
        let queued = state
            .runner
            .enqueue_backup(BackupRequest {
                vm_context_id: vm.id.clone(),
                repository_id: flow.repository_id.clone(),
                flow_id: Some(flow.id.clone()),
                backup_type: BackupType::Incremental,
                priority: 0,
                requested_by: Some(me.username.clone()),
            })
            .await;
        let flow_ref = NamedRef { id: flow.id.clone(), name: flow.name.clone() };
        let mut r = match queued {
            Ok(job) => {
                let mut r = result(id, Some(vm), BulkOutcome::Done, format!("Queued through the flow '{}'.", flow.name));
                r.job_id = Some(job.id);
                r
            }
            Err(RunnerError::Conflict(m) | RunnerError::NotFound(m)) => result(id, Some(vm), BulkOutcome::Refused, format!("Nothing queued: {m}.")),
            Err(RunnerError::Db(e)) => return Err(e.into()),
        };
        r.flow = Some(flow_ref);
        items.push(r);
    }
    let report = BulkReport::new(items);
    let target = format!("{} of {} VM(s) queued", report.done, ids.len());
    Ok(noted(ApiJson(report), AuditNote::new("backup.start", target)))
}
