//! Flows in the catalog: rows to API types (with group, repository, VM
//! count, schedule and the actions the state allows), the state rule, the
//! VMs a flow covers now, and retention for the engine.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::flow::{allowed_actions, refusal, Flow, FlowAction, FlowKind, FlowSource, FlowState, RetentionPolicy};
use shared_types::jobs::JobStatus;

use super::convert::Names;
use super::{schedule, to_u64};
use crate::db::entities::{flow_vms, flows, jobs, protection_groups, vm_contexts};
use crate::engine::prune::KeepRules;

pub fn kind(m: &flows::Model) -> FlowKind {
    FlowKind::parse(&m.kind).unwrap_or(FlowKind::Backup)
}

/// The stored state; an unknown word reads as idle.
pub fn state(m: &flows::Model) -> FlowState {
    FlowState::parse(&m.state).unwrap_or(FlowState::Idle)
}

pub fn retention(m: &flows::Model) -> RetentionPolicy {
    serde_json::from_str(&m.retention).unwrap_or_else(|e| {
        tracing::error!(flow = %m.id, error = %e, "unreadable retention; keeping everything");
        RetentionPolicy::default()
    })
}

/// Retention as the engine's prune rules.
pub fn keep_rules(r: &RetentionPolicy) -> KeepRules {
    let n = |v: Option<u32>| v.map(|v| v as usize);
    KeepRules {
        last: n(r.keep_last),
        hourly: n(r.keep_hourly),
        daily: n(r.keep_daily),
        weekly: n(r.keep_weekly),
        monthly: n(r.keep_monthly),
        yearly: n(r.keep_yearly),
    }
}

/// `Err(message)` when the flow's state does not allow `action`.
pub fn check(m: &flows::Model, action: FlowAction) -> Result<(), String> {
    match refusal(&m.name, kind(m), state(m), action) {
        Some(msg) => Err(msg),
        None => Ok(()),
    }
}

/// The state a flow returns to when enabled: from its last finished run.
pub async fn state_after_enable(db: &impl ConnectionTrait, flow_id: &str) -> Result<FlowState, DbErr> {
    let last = jobs::Entity::find()
        .filter(jobs::Column::FlowId.eq(flow_id))
        .filter(jobs::Column::Status.is_in(JobStatus::FINISHED.map(|s| s.as_str())))
        .order_by_desc(jobs::Column::CreatedAt)
        .one(db)
        .await?;
    Ok(match last.as_ref().and_then(|j| JobStatus::parse(&j.status)) {
        Some(JobStatus::Completed) => FlowState::Healthy,
        Some(JobStatus::Failed) => FlowState::Failed,
        _ => FlowState::Idle,
    })
}

/// The VM context ids a flow covers now: its group's members or its list.
pub async fn vm_ids(db: &impl ConnectionTrait, m: &flows::Model) -> Result<Vec<String>, DbErr> {
    match &m.group_id {
        Some(g) => vm_contexts::Entity::find()
            .select_only()
            .column(vm_contexts::Column::Id)
            .filter(vm_contexts::Column::GroupId.eq(g.clone()))
            .order_by_asc(vm_contexts::Column::Name)
            .into_tuple()
            .all(db)
            .await,
        None => flow_vms::Entity::find()
            .select_only()
            .column(flow_vms::Column::VmContextId)
            .filter(flow_vms::Column::FlowId.eq(m.id.clone()))
            .into_tuple()
            .all(db)
            .await,
    }
}

/// Flows as the API shows them, in a fixed number of queries.
pub async fn to_api(db: &impl ConnectionTrait, rows: Vec<flows::Model>) -> Result<Vec<Flow>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let repos = Names::repositories(db).await?;
    let group_ids: Vec<String> = rows.iter().filter_map(|f| f.group_id.clone()).collect();
    let groups: HashMap<String, String> = if group_ids.is_empty() {
        HashMap::new()
    } else {
        protection_groups::Entity::find()
            .filter(protection_groups::Column::Id.is_in(group_ids.clone()))
            .all(db)
            .await?
            .into_iter()
            .map(|g| (g.id, g.name))
            .collect()
    };
    let group_sizes = super::vm_list::group_sizes(db, group_ids).await?;
    let flow_ids: Vec<String> = rows.iter().map(|f| f.id.clone()).collect();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for (flow, vm) in flow_vms::Entity::find()
        .select_only()
        .columns([flow_vms::Column::FlowId, flow_vms::Column::VmContextId])
        .filter(flow_vms::Column::FlowId.is_in(flow_ids))
        .into_tuple::<(String, String)>()
        .all(db)
        .await?
    {
        members.entry(flow).or_default().push(vm);
    }
    let policies = super::policies::names(db, rows.iter().filter_map(|f| f.policy_id.clone())).await?;
    let now = Utc::now();
    Ok(rows
        .into_iter()
        .map(|m| {
            let kind = kind(&m);
            let state = state(&m);
            let (source, group, vm_count) = match &m.group_id {
                Some(g) => (
                    FlowSource::Group { group_id: g.clone() },
                    Some(shared_types::NamedRef { id: g.clone(), name: groups.get(g).cloned().unwrap_or_default() }),
                    group_sizes.get(g).copied().map(to_u64).unwrap_or(0),
                ),
                None => {
                    let mut vm_ids = members.remove(&m.id).unwrap_or_default();
                    vm_ids.sort();
                    let n = vm_ids.len() as u64;
                    (FlowSource::Vms { vm_ids }, None, n)
                }
            };
            let next_run_at = match (&m.schedule, m.enabled) {
                (Some(s), true) => schedule::next_run(s, now),
                _ => None,
            };
            Flow {
                retention: retention(&m),
                repository: repos.named(&m.repository_id),
                schedule_description: m.schedule.as_deref().and_then(schedule::describe),
                next_run_at,
                immutable_days: u32::try_from(m.immutable_days).unwrap_or(0),
                policy: m.policy_id.as_deref().map(|p| policies.named(p)),
                copy_target: super::backup_locations::parse_target(m.copy_target.as_deref()),
                allowed_actions: allowed_actions(kind, state),
                id: m.id,
                name: m.name,
                kind,
                source,
                group,
                vm_count,
                schedule: m.schedule,
                enabled: m.enabled,
                state,
                last_run_at: m.last_run_at,
                created_at: m.created_at,
                updated_at: m.updated_at,
            }
        })
        .collect())
}
