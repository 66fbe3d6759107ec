//! Recording restore points: the job runner calls [`record`] once a
//! snapshot's manifest is committed, so the catalog and the repository
//! agree on what exists.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};
use shared_types::backups::BackupStatus;
use shared_types::jobs::BackupType;

use super::{new_id, to_i64};
use crate::db::entities::backups;
use crate::engine::manifest::Manifest;

/// What the catalog records about a committed snapshot.
pub struct NewBackup<'a> {
    pub vm_context_id: &'a str,
    pub job_id: Option<&'a str>,
    pub repository_id: &'a str,
    pub manifest: &'a Manifest,
    /// Days the restore point cannot be deleted (the flow's `immutable_days`).
    pub immutable_days: u32,
    /// How the engine read the VM (`None`: incremental when the snapshot has a parent).
    pub backup_type: Option<BackupType>,
}

/// Inserts the restore point of a committed snapshot. Incremental when the
/// snapshot has a parent; sizes come from the manifest (what the engine
/// really read and wrote).
pub async fn record(db: &impl ConnectionTrait, b: NewBackup<'_>) -> Result<backups::Model, DbErr> {
    let m = b.manifest;
    let created: DateTime<Utc> = m.created_at().unwrap_or_else(Utc::now);
    let immutable_until = match m.immutable_until.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
        Some(u) => Some(u.with_timezone(&Utc)),
        None if b.immutable_days > 0 => Some(created + Duration::days(i64::from(b.immutable_days))),
        None => None,
    };
    backups::ActiveModel {
        id: Set(new_id()),
        vm_context_id: Set(b.vm_context_id.to_owned()),
        job_id: Set(b.job_id.map(str::to_owned)),
        repository_id: Set(b.repository_id.to_owned()),
        snapshot_name: Set(m.name.clone()),
        snapshot_id: Set(m.id.clone()),
        parent_snapshot_id: Set(m.parent.clone()),
        backup_type: Set(b.backup_type.unwrap_or(if m.parent.is_some() { BackupType::Incremental } else { BackupType::Full }).as_str().to_owned()),
        status: Set(BackupStatus::Available.as_str().to_owned()),
        logical_bytes: Set(to_i64(m.disks.iter().map(|d| d.size).sum())),
        bytes_read: Set(to_i64(m.stats.bytes_read)),
        bytes_written: Set(to_i64(m.stats.bytes_written)),
        created_at: Set(created),
        immutable_until: Set(immutable_until),
        verified_at: Set(None),
        verify_reason: Set(None),
    }
    .insert(db)
    .await
}
