//! Catalog rows written straight into the catalog, for tests about what the
//! API makes of history (jobs that ended hours or days ago, their samples).
//! Only tests do this: the product records real jobs only.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use sendense::db::entities::{backups, job_samples, jobs, platforms, vm_contexts};

pub async fn platform(db: &DatabaseConnection, id: &str, name: &str) {
    let now = Utc::now();
    platforms::ActiveModel {
        id: Set(id.into()),
        name: Set(name.into()),
        kind: Set("kvm".into()),
        address: Set(format!("qemu:///{name}")),
        status: Set("online".into()),
        last_discovery_at: Set(None),
        last_error: Set(None),
        discovered_vms: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
}

pub async fn vm(db: &DatabaseConnection, id: &str, platform_id: &str, name: &str) {
    let now = Utc::now();
    vm_contexts::ActiveModel {
        id: Set(id.into()),
        platform_id: Set(platform_id.into()),
        platform_vm_id: Set(format!("uuid-{id}")),
        name: Set(name.into()),
        vcpus: Set(1),
        memory_mib: Set(512),
        power: Set("running".into()),
        power_since: Set(None),
        os: Set("linux".into()),
        firmware: Set("bios".into()),
        role: Set(None),
        capacity_bytes: Set(1 << 30),
        group_id: Set(None),
        status: Set("active".into()),
        created_at: Set(now),
        last_seen_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
}

/// A job as it ended (or runs): `kind` and `status` are the catalog's words.
pub struct Job<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    /// Read, written.
    pub bytes: (i64, i64),
    pub repository: Option<&'a str>,
    pub vm: Option<&'a str>,
    pub target_platform: Option<&'a str>,
    pub backup_type: Option<&'a str>,
    pub flow: Option<&'a str>,
}

pub async fn job(db: &DatabaseConnection, j: Job<'_>) {
    jobs::ActiveModel {
        id: Set(j.id.into()),
        flow_id: Set(j.flow.map(Into::into)),
        vm_context_id: Set(j.vm.map(Into::into)),
        repository_id: Set(j.repository.map(Into::into)),
        kind: Set(j.kind.into()),
        backup_type: Set(j.backup_type.map(Into::into)),
        status: Set(j.status.into()),
        priority: Set(0),
        bytes_total: Set(j.bytes.0),
        bytes_read: Set(j.bytes.0),
        bytes_written: Set(j.bytes.1),
        error: Set((j.status == "failed").then(|| "the disk could not be read".into())),
        requested_by: Set(None),
        created_at: Set(j.started),
        started_at: Set(Some(j.started)),
        finished_at: Set(j.finished),
        updated_at: Set(j.finished.unwrap_or(j.started)),
        backup_id: Set(None),
        target_platform_id: Set(j.target_platform.map(Into::into)),
        options: Set(None),
        replication_id: Set(None),
        operation: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
}

pub async fn sample(db: &DatabaseConnection, job: &str, at: DateTime<Utc>, read: i64, written: i64, bps: i64) {
    job_samples::ActiveModel {
        id: sea_orm::NotSet,
        job_id: Set(job.into()),
        at: Set(at),
        bytes_read: Set(read),
        bytes_written: Set(written),
        throughput_bps: Set(bps),
    }
    .insert(db)
    .await
    .unwrap();
}

/// A restore point row as the runner records it (its snapshot id is
/// `snap-<id>`); `Point::new` gives a full, available point taken now.
pub struct Point<'a> {
    pub id: &'a str,
    pub vm: &'a str,
    pub repo: &'a str,
    /// The snapshot name (`vm-<vm>` by default).
    pub name: String,
    /// The parent point's id: an incremental.
    pub parent: Option<&'a str>,
    pub status: &'a str,
    pub at: DateTime<Utc>,
    pub immutable_until: Option<DateTime<Utc>>,
    pub logical_bytes: i64,
    /// Read, written.
    pub bytes: (i64, i64),
}

impl<'a> Point<'a> {
    pub fn new(id: &'a str, vm: &'a str, repo: &'a str) -> Self {
        Point {
            id,
            vm,
            repo,
            name: format!("vm-{vm}"),
            parent: None,
            status: "available",
            at: Utc::now(),
            immutable_until: None,
            logical_bytes: 1 << 30,
            bytes: (1 << 20, 1 << 20),
        }
    }
}

pub async fn point(db: &DatabaseConnection, p: Point<'_>) {
    backups::ActiveModel {
        id: Set(p.id.into()),
        vm_context_id: Set(p.vm.into()),
        job_id: Set(None),
        repository_id: Set(p.repo.into()),
        snapshot_name: Set(p.name),
        snapshot_id: Set(format!("snap-{}", p.id)),
        parent_snapshot_id: Set(p.parent.map(|x| format!("snap-{x}"))),
        backup_type: Set(if p.parent.is_some() { "incremental" } else { "full" }.into()),
        status: Set(p.status.into()),
        logical_bytes: Set(p.logical_bytes),
        bytes_read: Set(p.bytes.0),
        bytes_written: Set(p.bytes.1),
        created_at: Set(p.at),
        immutable_until: Set(p.immutable_until),
        verified_at: Set(None),
        verify_reason: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
}
