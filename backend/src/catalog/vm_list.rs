//! The managed-VM list: filters, paging and each VM's backup aggregates
//! (count, sizes, last backup) and flow coverage, in a fixed number of
//! queries whatever the page size (never one query per VM).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query, SimpleExpr};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::platform::{Firmware, GuestOs, PlatformKind, PowerState};
use shared_types::vms::{ProtectionStatus, VmContext, VmStatus};
use shared_types::NamedRef;

use super::{from_wire, to_u64, wire};
use crate::db::entities::{backups, flow_vms, flows, platforms, protection_groups, vm_contexts};

/// Which VMs to list.
#[derive(Debug, Clone, Default)]
pub struct VmFilter {
    pub platform_id: Option<String>,
    pub group_id: Option<String>,
    /// Only VMs in no group.
    pub ungrouped: bool,
    pub status: Option<VmStatus>,
    pub protection: Option<ProtectionStatus>,
    /// Only VMs in this power state (as last seen).
    pub power: Option<PowerState>,
    /// Case-insensitive part of the name.
    pub search: Option<String>,
    /// Only these VM contexts.
    pub ids: Option<Vec<String>>,
}

/// `EXISTS` a restore point of the outer VM.
fn has_backup() -> SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(backups::Entity)
            .and_where(Expr::col((backups::Entity, backups::Column::VmContextId)).equals((vm_contexts::Entity, vm_contexts::Column::Id)))
            .to_owned(),
    )
}

/// The outer VM is in an enabled flow, directly or through its group.
fn covered() -> SimpleExpr {
    let direct = Query::select()
        .expr(Expr::val(1))
        .from(flow_vms::Entity)
        .inner_join(
            flows::Entity,
            Expr::col((flows::Entity, flows::Column::Id)).equals((flow_vms::Entity, flow_vms::Column::FlowId)),
        )
        .and_where(Expr::col((flow_vms::Entity, flow_vms::Column::VmContextId)).equals((vm_contexts::Entity, vm_contexts::Column::Id)))
        .and_where(Expr::col((flows::Entity, flows::Column::Enabled)).eq(true))
        .to_owned();
    let by_group = Query::select()
        .expr(Expr::val(1))
        .from(flows::Entity)
        .and_where(Expr::col((flows::Entity, flows::Column::GroupId)).equals((vm_contexts::Entity, vm_contexts::Column::GroupId)))
        .and_where(Expr::col((flows::Entity, flows::Column::Enabled)).eq(true))
        .to_owned();
    Expr::exists(direct).or(Expr::exists(by_group))
}

fn condition(f: &VmFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(p) = &f.platform_id {
        c = c.add(vm_contexts::Column::PlatformId.eq(p.clone()));
    }
    if let Some(g) = &f.group_id {
        c = c.add(vm_contexts::Column::GroupId.eq(g.clone()));
    }
    if f.ungrouped {
        c = c.add(vm_contexts::Column::GroupId.is_null());
    }
    if let Some(s) = f.status {
        c = c.add(vm_contexts::Column::Status.eq(s.as_str()));
    }
    if let Some(p) = f.power {
        c = c.add(vm_contexts::Column::Power.eq(wire(&p)));
    }
    if let Some(ids) = &f.ids {
        c = c.add(vm_contexts::Column::Id.is_in(ids.clone()));
    }
    if let Some(q) = f.search.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = format!("%{}%", q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        c = c.add(Expr::expr(Func::lower(Expr::col((vm_contexts::Entity, vm_contexts::Column::Name)))).like(
            sea_orm::sea_query::LikeExpr::new(pattern).escape('\\'),
        ));
    }
    match f.protection {
        None => {}
        Some(ProtectionStatus::Protected) => c = c.add(has_backup()).add(covered()),
        Some(ProtectionStatus::Unprotected) => c = c.add(has_backup().not()).add(covered().not()),
        Some(ProtectionStatus::Partial) => {
            c = c.add(
                Condition::any()
                    .add(Condition::all().add(has_backup()).add(covered().not()))
                    .add(Condition::all().add(has_backup().not()).add(covered())),
            )
        }
    }
    c
}

#[derive(Debug, FromQueryResult)]
struct BackupAgg {
    vm_context_id: String,
    n: i64,
    logical: Option<i64>,
    written: Option<i64>,
    last_at: Option<DateTime<Utc>>,
}

/// One page of VMs by name, and how many match in all.
pub async fn page(db: &impl ConnectionTrait, f: &VmFilter, limit: u64, offset: u64) -> Result<(Vec<VmContext>, u64), DbErr> {
    let total = vm_contexts::Entity::find().filter(condition(f)).count(db).await?;
    let rows = vm_contexts::Entity::find()
        .filter(condition(f))
        .order_by_asc(vm_contexts::Column::Name)
        .order_by_asc(vm_contexts::Column::Id)
        .offset(offset)
        .limit(limit)
        .all(db)
        .await?;
    Ok((enrich(db, rows).await?, total))
}

/// Every VM matching `f` (for small sets: a group's or a flow's VMs).
pub async fn all(db: &impl ConnectionTrait, f: &VmFilter) -> Result<Vec<VmContext>, DbErr> {
    let rows = vm_contexts::Entity::find()
        .filter(condition(f))
        .order_by_asc(vm_contexts::Column::Name)
        .order_by_asc(vm_contexts::Column::Id)
        .all(db)
        .await?;
    enrich(db, rows).await
}

/// Adds platform and group names, backup aggregates and coverage to rows.
pub async fn enrich(db: &impl ConnectionTrait, rows: Vec<vm_contexts::Model>) -> Result<Vec<VmContext>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let group_ids: Vec<String> = {
        let set: HashSet<&String> = rows.iter().filter_map(|r| r.group_id.as_ref()).collect();
        set.into_iter().cloned().collect()
    };

    let platforms: HashMap<String, platforms::Model> =
        platforms::Entity::find().all(db).await?.into_iter().map(|p| (p.id.clone(), p)).collect();
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

    let aggs: HashMap<String, BackupAgg> = backups::Entity::find()
        .select_only()
        .column(backups::Column::VmContextId)
        .column_as(Expr::col(backups::Column::Id).count(), "n")
        .column_as(SimpleExpr::from(Func::cast_as(Func::sum(Expr::col(backups::Column::LogicalBytes)), Alias::new("BIGINT"))), "logical")
        .column_as(SimpleExpr::from(Func::cast_as(Func::sum(Expr::col(backups::Column::BytesWritten)), Alias::new("BIGINT"))), "written")
        .column_as(Expr::col(backups::Column::CreatedAt).max(), "last_at")
        .filter(backups::Column::VmContextId.is_in(ids.clone()))
        .group_by(backups::Column::VmContextId)
        .into_model::<BackupAgg>()
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.vm_context_id.clone(), a))
        .collect();

    let direct: HashSet<String> = flow_vms::Entity::find()
        .select_only()
        .column(flow_vms::Column::VmContextId)
        .inner_join(flows::Entity)
        .filter(flow_vms::Column::VmContextId.is_in(ids))
        .filter(flows::Column::Enabled.eq(true))
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let covered_groups: HashSet<String> = if group_ids.is_empty() {
        HashSet::new()
    } else {
        flows::Entity::find()
            .select_only()
            .column(flows::Column::GroupId)
            .filter(flows::Column::GroupId.is_in(group_ids))
            .filter(flows::Column::Enabled.eq(true))
            .into_tuple::<Option<String>>()
            .all(db)
            .await?
            .into_iter()
            .flatten()
            .collect()
    };

    Ok(rows
        .into_iter()
        .map(|r| {
            let agg = aggs.get(&r.id);
            let count = agg.map(|a| to_u64(a.n)).unwrap_or(0);
            let is_covered = direct.contains(&r.id) || r.group_id.as_ref().is_some_and(|g| covered_groups.contains(g));
            let protection = match (count > 0, is_covered) {
                (true, true) => ProtectionStatus::Protected,
                (false, false) => ProtectionStatus::Unprotected,
                _ => ProtectionStatus::Partial,
            };
            let platform = platforms.get(&r.platform_id);
            VmContext {
                platform_name: platform.map(|p| p.name.clone()).unwrap_or_default(),
                platform_kind: platform.and_then(|p| from_wire(&p.kind)).unwrap_or(PlatformKind::Kvm),
                group: r.group_id.as_ref().map(|g| NamedRef {
                    id: g.clone(),
                    name: groups.get(g).cloned().unwrap_or_default(),
                }),
                status: VmStatus::parse(&r.status).unwrap_or(VmStatus::Active),
                protection,
                backup_count: count,
                backup_logical_bytes: agg.and_then(|a| a.logical).map(to_u64).unwrap_or(0),
                backup_written_bytes: agg.and_then(|a| a.written).map(to_u64).unwrap_or(0),
                last_backup_at: agg.and_then(|a| a.last_at),
                vcpus: u32::try_from(r.vcpus).unwrap_or(0),
                memory_mib: to_u64(r.memory_mib),
                power: from_wire(&r.power).unwrap_or(PowerState::Stopped),
                power_since: r.power_since,
                os: from_wire(&r.os).unwrap_or(GuestOs::Other),
                firmware: from_wire(&r.firmware).unwrap_or(Firmware::Bios),
                capacity_bytes: to_u64(r.capacity_bytes),
                id: r.id,
                platform_id: r.platform_id,
                platform_vm_id: r.platform_vm_id,
                name: r.name,
                role: r.role,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
            }
        })
        .collect())
}

/// How many managed VMs each of these protection groups holds (a group
/// without VMs is absent).
pub async fn group_sizes(db: &impl ConnectionTrait, group_ids: Vec<String>) -> Result<HashMap<String, i64>, DbErr> {
    if group_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(vm_contexts::Entity::find()
        .select_only()
        .column(vm_contexts::Column::GroupId)
        .column_as(Expr::col(vm_contexts::Column::Id).count(), "n")
        .filter(vm_contexts::Column::GroupId.is_in(group_ids))
        .group_by(vm_contexts::Column::GroupId)
        .into_tuple::<(Option<String>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(g, n)| g.map(|g| (g, n)))
        .collect())
}
