//! Fleet health for the COMMAND overview: every managed VM filed under
//! protected / attention / critical by `shared_types::overview::fleet_health`,
//! from a fixed number of queries whatever the fleet size.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::overview::{fleet_health, FleetCounts, FleetFacts, FleetHealth, FleetIssue, PlatformShare, OVERVIEW_ISSUES_MAX};
use shared_types::platform::PlatformKind;
use shared_types::vms::VmStatus;
use shared_types::NamedRef;

use super::{from_wire, schedule};
use crate::db::entities::{backups, flow_vms, flows, jobs, platforms, vm_contexts};

/// How late a scheduled run may produce its restore point before it counts as missed.
pub const SCHEDULE_GRACE: Duration = Duration::hours(1);

/// The fleet by health, the VMs that need a look, and the VMs per platform.
pub struct Fleet {
    pub counts: FleetCounts,
    pub issues: Vec<FleetIssue>,
    pub platforms: Vec<PlatformShare>,
}

/// Files every managed VM under a health.
pub async fn fleet(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<Fleet, DbErr> {
    let vms: Vec<(String, String, String, Option<String>, String)> = vm_contexts::Entity::find()
        .select_only()
        .column(vm_contexts::Column::Id)
        .column(vm_contexts::Column::Name)
        .column(vm_contexts::Column::PlatformId)
        .column(vm_contexts::Column::GroupId)
        .column(vm_contexts::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let last_backup: HashMap<String, DateTime<Utc>> = backups::Entity::find()
        .select_only()
        .column(backups::Column::VmContextId)
        .column_as(Expr::col(backups::Column::CreatedAt).max(), "last")
        .group_by(backups::Column::VmContextId)
        .into_tuple::<(String, Option<DateTime<Utc>>)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(vm, last)| last.map(|l| (vm, l)))
        .collect();
    let last_failure: HashMap<String, DateTime<Utc>> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::VmContextId)
        .column_as(Expr::col(jobs::Column::FinishedAt).max(), "last")
        .filter(jobs::Column::Kind.eq(JobKind::Backup.as_str()))
        .filter(jobs::Column::Status.eq(JobStatus::Failed.as_str()))
        .group_by(jobs::Column::VmContextId)
        .into_tuple::<(String, Option<DateTime<Utc>>)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(vm, last)| last.map(|l| (vm, l)))
        .collect();
    let enabled = flows::Entity::find().filter(flows::Column::Enabled.eq(true)).all(db).await?;
    let flow_by_id: HashMap<&str, &flows::Model> = enabled.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut by_group: HashMap<&str, Vec<&flows::Model>> = HashMap::new();
    for f in &enabled {
        if let Some(g) = &f.group_id {
            by_group.entry(g.as_str()).or_default().push(f);
        }
    }
    let members: Vec<(String, String)> = flow_vms::Entity::find()
        .select_only()
        .column(flow_vms::Column::VmContextId)
        .column(flow_vms::Column::FlowId)
        .into_tuple()
        .all(db)
        .await?;
    let mut direct: HashMap<String, Vec<&flows::Model>> = HashMap::new();
    for (vm, flow) in &members {
        if let Some(f) = flow_by_id.get(flow.as_str()) {
            direct.entry(vm.clone()).or_default().push(f);
        }
    }
    let platform_rows = platforms::Entity::find().all(db).await?;
    let platform_names: HashMap<&str, &str> = platform_rows.iter().map(|p| (p.id.as_str(), p.name.as_str())).collect();

    let mut counts = FleetCounts::default();
    let mut issues = Vec::new();
    let mut per_platform: HashMap<&str, (u64, u64)> = HashMap::new();
    for (id, name, platform_id, group_id, status) in &vms {
        let covering: Vec<&flows::Model> = direct
            .get(id)
            .into_iter()
            .flatten()
            .copied()
            .chain(group_id.as_deref().and_then(|g| by_group.get(g)).into_iter().flatten().copied())
            .collect();
        let last = last_backup.get(id).copied();
        let facts = FleetFacts {
            missing: VmStatus::parse(status) == Some(VmStatus::Missing),
            last_backup_failed: match (last_failure.get(id), last) {
                (Some(failed), Some(ok)) => *failed > ok,
                (Some(_), None) => true,
                _ => false,
            },
            has_restore_point: last.is_some(),
            in_enabled_flow: !covering.is_empty(),
            schedule_missed: last.is_some_and(|last| covering.iter().any(|f| missed(f, last, now))),
        };
        let (health, reason) = fleet_health(&facts);
        counts.total += 1;
        let share = per_platform.entry(platform_id.as_str()).or_default();
        share.0 += 1;
        match health {
            FleetHealth::Protected => {
                counts.protected += 1;
                share.1 += 1;
            }
            FleetHealth::Attention => counts.attention += 1,
            FleetHealth::Critical => counts.critical += 1,
        }
        if let Some(reason) = reason {
            issues.push(FleetIssue {
                vm: NamedRef { id: id.clone(), name: name.clone() },
                platform_name: platform_names.get(platform_id.as_str()).copied().unwrap_or_default().to_owned(),
                health,
                reason: reason.to_owned(),
            });
        }
    }
    issues.sort_by(|a, b| (a.health != FleetHealth::Critical, &a.vm.name).cmp(&(b.health != FleetHealth::Critical, &b.vm.name)));
    issues.truncate(OVERVIEW_ISSUES_MAX);
    let mut platforms: Vec<PlatformShare> = platform_rows
        .iter()
        .map(|p| {
            let (vms, protected) = per_platform.get(p.id.as_str()).copied().unwrap_or_default();
            PlatformShare {
                id: p.id.clone(),
                name: p.name.clone(),
                kind: from_wire(&p.kind).unwrap_or(PlatformKind::Kvm),
                vms,
                protected,
            }
        })
        .collect();
    platforms.sort_by(|a, b| b.vms.cmp(&a.vms).then_with(|| a.name.cmp(&b.name)));
    Ok(Fleet { counts, issues, platforms })
}

/// A scheduled run of `flow` after the later of the VM's last restore point
/// and the flow's creation should have produced a restore point by now.
fn missed(flow: &flows::Model, last_backup: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let Some(pattern) = &flow.schedule else { return false };
    let after = last_backup.max(flow.created_at);
    schedule::next_run(pattern, after).is_some_and(|due| due + SCHEDULE_GRACE < now)
}
