//! Rows to API types. Names of related objects (a job's VM and flow, a
//! restore point's repository) are passed in by the caller, who loads them
//! for a whole page at once ([`Names`]).

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use shared_types::backups::{Backup, BackupStatus};
use shared_types::jobs::{BackupType, Job, JobKind, JobLogLine, JobSample, JobStatus, LogLevel};
use shared_types::platform::{DiskFormat, DiskInfo, NetworkInfo, NicInfo};
use shared_types::NamedRef;

use super::to_u64;
use crate::db::entities::{backups, flows, job_logs, job_samples, jobs, networks, replication_flows, repositories, vm_contexts, vm_disks, vm_nics};

/// Names by id for one kind of object.
#[derive(Debug, Default)]
pub struct Names(pub HashMap<String, String>);

impl Names {
    pub fn get(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| format!("(removed {id})"))
    }

    pub fn named(&self, id: &str) -> NamedRef {
        NamedRef { id: id.to_owned(), name: self.get(id) }
    }

    /// VM names for these ids.
    pub async fn vms(db: &impl ConnectionTrait, ids: impl IntoIterator<Item = String>) -> Result<Names, DbErr> {
        let ids = dedup(ids);
        if ids.is_empty() {
            return Ok(Names::default());
        }
        let rows: Vec<(String, String)> = vm_contexts::Entity::find()
            .select_only()
            .columns([vm_contexts::Column::Id, vm_contexts::Column::Name])
            .filter(vm_contexts::Column::Id.is_in(ids))
            .into_tuple()
            .all(db)
            .await?;
        Ok(Names(rows.into_iter().collect()))
    }

    /// Flow names for these ids.
    pub async fn flows(db: &impl ConnectionTrait, ids: impl IntoIterator<Item = String>) -> Result<Names, DbErr> {
        let ids = dedup(ids);
        if ids.is_empty() {
            return Ok(Names::default());
        }
        let rows: Vec<(String, String)> = flows::Entity::find()
            .select_only()
            .columns([flows::Column::Id, flows::Column::Name])
            .filter(flows::Column::Id.is_in(ids))
            .into_tuple()
            .all(db)
            .await?;
        Ok(Names(rows.into_iter().collect()))
    }

    /// Replication flow names for these ids.
    pub async fn replications(db: &impl ConnectionTrait, ids: impl IntoIterator<Item = String>) -> Result<Names, DbErr> {
        let ids = dedup(ids);
        if ids.is_empty() {
            return Ok(Names::default());
        }
        let rows: Vec<(String, String)> = replication_flows::Entity::find()
            .select_only()
            .columns([replication_flows::Column::Id, replication_flows::Column::Name])
            .filter(replication_flows::Column::Id.is_in(ids))
            .into_tuple()
            .all(db)
            .await?;
        Ok(Names(rows.into_iter().collect()))
    }

    /// Every repository's name (there are few).
    pub async fn repositories(db: &impl ConnectionTrait) -> Result<Names, DbErr> {
        let rows: Vec<(String, String)> = repositories::Entity::find()
            .select_only()
            .columns([repositories::Column::Id, repositories::Column::Name])
            .into_tuple()
            .all(db)
            .await?;
        Ok(Names(rows.into_iter().collect()))
    }
}

fn dedup(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = ids.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

/// `flows`: names of backup flows and replication flows by id.
pub fn job(m: jobs::Model, vms: &Names, flows: &Names) -> Job {
    let status = JobStatus::parse(&m.status).unwrap_or(JobStatus::Failed);
    let bytes_total = to_u64(m.bytes_total);
    let bytes_read = to_u64(m.bytes_read);
    Job {
        kind: JobKind::parse(&m.kind).unwrap_or(JobKind::Backup),
        status,
        backup_type: m.backup_type.as_deref().and_then(BackupType::parse),
        flow_name: m.flow_id.as_deref().or(m.replication_id.as_deref()).map(|f| flows.get(f)),
        flow_id: m.flow_id,
        // A repository job (verify, GC, prune) is named by its repository.
        vm_name: match (&m.vm_context_id, &m.repository_id) {
            (Some(vm), _) => vms.get(vm),
            (None, Some(repo)) => vms.get(repo),
            (None, None) => String::new(),
        },
        vm_context_id: m.vm_context_id.unwrap_or_default(),
        repository_id: m.repository_id,
        backup_id: m.backup_id,
        target_platform_id: m.target_platform_id,
        replication_id: m.replication_id,
        operation: m.operation.as_deref().and_then(shared_types::replication::ReplicationOperation::parse),
        priority: m.priority,
        bytes_total,
        bytes_read,
        bytes_written: to_u64(m.bytes_written),
        progress_percent: if status == JobStatus::Completed { Some(100.0) } else { Job::percent(bytes_read, bytes_total) },
        error: m.error,
        requested_by: m.requested_by,
        created_at: m.created_at,
        started_at: m.started_at,
        finished_at: m.finished_at,
        id: m.id,
    }
}

/// Jobs with their VM and flow names, loaded once for the whole list.
pub async fn jobs(db: &impl ConnectionTrait, rows: Vec<jobs::Model>) -> Result<Vec<Job>, DbErr> {
    let mut vms = Names::vms(db, rows.iter().filter_map(|j| j.vm_context_id.clone())).await?;
    if rows.iter().any(|j| j.vm_context_id.is_none()) {
        vms.0.extend(Names::repositories(db).await?.0);
    }
    let mut flows = Names::flows(db, rows.iter().filter_map(|j| j.flow_id.clone())).await?;
    flows.0.extend(Names::replications(db, rows.iter().filter_map(|j| j.replication_id.clone())).await?.0);
    Ok(rows.into_iter().map(|j| job(j, &vms, &flows)).collect())
}

pub fn sample(m: job_samples::Model) -> JobSample {
    JobSample {
        at: m.at,
        bytes_read: to_u64(m.bytes_read),
        bytes_written: to_u64(m.bytes_written),
        throughput_bps: to_u64(m.throughput_bps),
    }
}

pub fn log_line(m: job_logs::Model) -> JobLogLine {
    JobLogLine { at: m.at, level: LogLevel::parse(&m.level).unwrap_or(LogLevel::Info), message: m.message }
}

pub fn backup(m: backups::Model, vms: &Names, repos: &Names) -> Backup {
    Backup {
        lock: super::storage_locks::lock_of(&m, None),
        vm_name: vms.get(&m.vm_context_id),
        vm_context_id: m.vm_context_id,
        job_id: m.job_id,
        repository: repos.named(&m.repository_id),
        snapshot_name: m.snapshot_name,
        snapshot_id: m.snapshot_id,
        parent_snapshot_id: m.parent_snapshot_id,
        backup_type: BackupType::parse(&m.backup_type).unwrap_or(BackupType::Full),
        status: BackupStatus::parse(&m.status).unwrap_or(BackupStatus::Available),
        logical_bytes: to_u64(m.logical_bytes),
        bytes_read: to_u64(m.bytes_read),
        bytes_written: to_u64(m.bytes_written),
        created_at: m.created_at,
        immutable_until: m.immutable_until,
        verified_at: m.verified_at,
        verify_reason: m.verify_reason,
        locations: Vec::new(),
        id: m.id,
    }
}

/// Restore points with their VM and repository names.
pub async fn backups(db: &impl ConnectionTrait, rows: Vec<backups::Model>) -> Result<Vec<Backup>, DbErr> {
    let vms = Names::vms(db, rows.iter().map(|b| b.vm_context_id.clone())).await?;
    let repos = Names::repositories(db).await?;
    // Storage locks in every repository (the primary's and the copies').
    let locks = super::storage_locks::of_locations(db, &rows.iter().map(|b| b.id.clone()).collect::<Vec<_>>()).await?;
    let lock_of = |b: &backups::Model| super::storage_locks::lock_of(b, locks.get(&(b.id.clone(), b.repository_id.clone())));
    let mut locations = super::backup_locations::of_many(db, &rows).await?;
    Ok(rows
        .into_iter()
        .map(|b| {
            let here = locations.remove(&b.id).unwrap_or_default();
            let lock = lock_of(&b);
            let mut out = backup(b, &vms, &repos);
            out.lock = lock;
            out.locations = super::backup_locations::describe(&here, &repos.0, &locks);
            out
        })
        .collect())
}

pub fn disk(m: vm_disks::Model) -> DiskInfo {
    DiskInfo {
        name: m.name,
        capacity_bytes: to_u64(m.capacity_bytes),
        allocated_bytes: to_u64(m.allocated_bytes),
        format: DiskFormat::parse(&m.format).unwrap_or(DiskFormat::Raw),
        cbt: m.cbt,
    }
}

pub fn nic(m: vm_nics::Model) -> NicInfo {
    NicInfo { mac: m.mac, network: m.network, model: m.model }
}

pub fn network(m: networks::Model) -> NetworkInfo {
    NetworkInfo { name: m.name, bridge: m.bridge, cidr: m.cidr, vlan: m.vlan.and_then(|v| u16::try_from(v).ok()), isolated: m.isolated, inactive: false }
}
