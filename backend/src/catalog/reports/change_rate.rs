//! Change rate per VM: the bytes its incremental backups found changed
//! through the platform's changed-block tracking.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use shared_types::jobs::{BackupType, JobKind, JobStatus};
use shared_types::reports::{ChangeDay, ChangeRateReport, ChangeRateRow};

use super::{finished_jobs, name_of, vm_names, Days};
use crate::catalog::to_u64;
use crate::db::entities::{jobs, vm_contexts};

pub const METHOD: &str = "Completed incremental backups, by the day they finished. Changed = the blocks the platform's \
    changed-block tracking reported changed since the previous restore point, in whole chunks (what the backup had \
    to look at); read = those of them holding data. Changed per day = changed ÷ the days from the period's start \
    (or the VM's first backup, if later) to now; per day of capacity = that ÷ the VM's disk capacity.";

pub async fn report(db: &DatabaseConnection, days: u32, now: DateTime<Utc>) -> Result<ChangeRateReport, DbErr> {
    let d = Days::new(days, now);
    let jobs = finished_jobs(db, &[JobKind::Backup], d.start).await?;
    let completed: Vec<&jobs::Model> = jobs.iter().filter(|j| j.status == JobStatus::Completed.as_str()).collect();
    // VMs backed up before the period: their rate covers the whole period.
    let before: HashSet<String> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::VmContextId)
        .distinct()
        .filter(jobs::Column::Kind.eq(JobKind::Backup.as_str()))
        .filter(jobs::Column::Status.eq(JobStatus::Completed.as_str()))
        .filter(jobs::Column::FinishedAt.lt(d.start))
        .filter(jobs::Column::VmContextId.is_not_null())
        .into_tuple::<Option<String>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let mut first: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for j in &completed {
        if let (Some(vm), Some(f)) = (j.vm_context_id.as_deref(), j.finished_at) {
            let e = first.entry(vm).or_insert(f);
            *e = (*e).min(f);
        }
    }
    let names = vm_names(db).await?;
    let capacity: HashMap<String, i64> = vm_contexts::Entity::find()
        .select_only()
        .column(vm_contexts::Column::Id)
        .column(vm_contexts::Column::CapacityBytes)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();

    let mut per_day = vec![0u64; d.n];
    let mut per_vm: HashMap<String, (u64, u64, u64)> = HashMap::new();
    for j in completed.iter().filter(|j| j.backup_type.as_deref() == Some(BackupType::Incremental.as_str())) {
        let (Some(vm), Some(i)) = (&j.vm_context_id, j.finished_at.and_then(|f| d.index(f))) else { continue };
        let changed = to_u64(j.bytes_total);
        per_day[i] += changed;
        let e = per_vm.entry(vm.clone()).or_default();
        e.0 += 1;
        e.1 += changed;
        e.2 += to_u64(j.bytes_read);
    }
    let mut vms: Vec<ChangeRateRow> = per_vm
        .into_iter()
        .map(|(id, (incrementals, changed_bytes, bytes_read))| {
            let from = if before.contains(&id) { d.start } else { first.get(id.as_str()).copied().unwrap_or(d.start).max(d.start) };
            let covered_days = ((now - from).num_seconds() as f64 / 86_400.0).max(1.0);
            let bytes_per_day = (changed_bytes as f64 / covered_days).round() as u64;
            let capacity_bytes = capacity.get(&id).copied().map(to_u64).unwrap_or(0);
            ChangeRateRow {
                name: name_of(&names, &id),
                id,
                incrementals,
                changed_bytes,
                bytes_read,
                bytes_per_day,
                capacity_bytes,
                percent_per_day: (capacity_bytes > 0).then(|| bytes_per_day as f64 * 100.0 / capacity_bytes as f64),
            }
        })
        .collect();
    vms.sort_by(|a, b| b.bytes_per_day.cmp(&a.bytes_per_day).then_with(|| a.name.cmp(&b.name)));
    Ok(ChangeRateReport {
        window: d.window(),
        method: METHOD.into(),
        days: per_day.into_iter().enumerate().map(|(i, changed_bytes)| ChangeDay { day: d.day(i), changed_bytes }).collect(),
        vms,
    })
}
