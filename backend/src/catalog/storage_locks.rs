//! Restore points locked by the storage (S3 Object Lock): the retention
//! the storage reports on each restore point's manifest
//! (`engine::object_lock::restore_point_lock`, GetObjectRetention), recorded
//! after the backup and refreshed by every verify of the repository, and the
//! [`RestorePointLock`] the API shows: the storage's date and mode when it
//! holds one, else Sendense's own `immutable_until`.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use shared_types::backups::{LockEnforcer, RestorePointLock};
use shared_types::repository_setup::ObjectLockMode;

use crate::db::entities::{backup_storage_locks, backups, repositories};
use crate::engine::object_lock::restore_point_lock;
use crate::engine::repository::{LockMode, Retention};
use crate::engine::EngineError;

fn mode_word(m: LockMode) -> &'static str {
    match m {
        LockMode::Governance => ObjectLockMode::Governance.as_str(),
        LockMode::Compliance => ObjectLockMode::Compliance.as_str(),
    }
}

/// Records what the storage said about restore point `backup_id` in
/// `repository_id` (`None`: no retention there, the row goes).
pub async fn record(db: &impl ConnectionTrait, backup_id: &str, repository_id: &str, lock: Option<Retention>, checked_at: DateTime<Utc>) -> Result<(), DbErr> {
    backup_storage_locks::Entity::delete_many()
        .filter(backup_storage_locks::Column::BackupId.eq(backup_id))
        .filter(backup_storage_locks::Column::RepositoryId.eq(repository_id))
        .exec(db)
        .await?;
    if let Some(r) = lock {
        backup_storage_locks::ActiveModel {
            backup_id: Set(backup_id.to_owned()),
            repository_id: Set(repository_id.to_owned()),
            mode: Set(mode_word(r.mode).to_owned()),
            locked_until: Set(r.until),
            checked_at: Set(checked_at),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Every storage lock recorded for restore points `backup_ids`, in any
/// repository, by (backup id, repository id): the locks of their copies too.
pub async fn of_locations(db: &impl ConnectionTrait, backup_ids: &[String]) -> Result<HashMap<(String, String), backup_storage_locks::Model>, DbErr> {
    let mut out = HashMap::new();
    for chunk in backup_ids.chunks(500) {
        for l in backup_storage_locks::Entity::find().filter(backup_storage_locks::Column::BackupId.is_in(chunk.to_vec())).all(db).await? {
            out.insert((l.backup_id.clone(), l.repository_id.clone()), l);
        }
    }
    Ok(out)
}

/// The lock the API shows for restore point `row`.
pub fn lock_of(row: &backups::Model, storage: Option<&backup_storage_locks::Model>) -> Option<RestorePointLock> {
    lock_at(row.immutable_until, storage)
}

/// The lock in one repository: the storage's when it holds one, else
/// Sendense's `immutable_until` there.
pub fn lock_at(immutable_until: Option<DateTime<Utc>>, storage: Option<&backup_storage_locks::Model>) -> Option<RestorePointLock> {
    match storage {
        Some(s) => Some(RestorePointLock {
            enforced_by: LockEnforcer::Storage,
            mode: ObjectLockMode::parse(&s.mode),
            until: s.locked_until,
            checked_at: Some(s.checked_at),
        }),
        None => immutable_until.map(|until| RestorePointLock { enforced_by: LockEnforcer::Sendense, mode: None, until, checked_at: None }),
    }
}

/// Reads and records the storage's lock of one restore point (after its
/// backup). Blocking part on a blocking thread; a storage that cannot lock
/// answers without a request. The lock read, `None` when there is none.
pub async fn refresh_one(db: &impl ConnectionTrait, data_dir: &Path, repo: &repositories::Model, row: &backups::Model) -> Result<Option<Retention>, String> {
    let (d, r, name, id) = (data_dir.to_path_buf(), repo.clone(), row.snapshot_name.clone(), row.snapshot_id.clone());
    let lock = tokio::task::spawn_blocking(move || {
        let ds = super::repositories::open_datastore(&d, &r)?;
        restore_point_lock(&ds, &name, &id)
    })
    .await
    .map_err(|e| format!("the lock reading thread failed: {e}"))?
    .map_err(|e| e.to_string())?;
    record(db, &row.id, &repo.id, lock, Utc::now()).await.map_err(|e| e.to_string())?;
    Ok(lock)
}

/// What [`refresh_repository`] read.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Restore points the storage locks.
    pub locked: usize,
    /// Restore points whose lock could not be read: (label, why).
    pub failed: Vec<(String, String)>,
}

/// Re-reads the storage's lock of every restore point in `repo` (a verify
/// does): the ones written there and the copies held there; records each.
/// Nothing (no request) on a repository whose storage cannot lock.
pub async fn refresh_repository(db: &impl ConnectionTrait, data_dir: &Path, repo: &repositories::Model) -> Result<Refreshed, String> {
    let rows: Vec<backups::Model> =
        super::backup_locations::in_repository(db, &repo.id).await.map_err(|e| e.to_string())?.into_iter().map(|(b, _)| b).collect();
    let (d, r) = (data_dir.to_path_buf(), repo.clone());
    let labels: Vec<(String, String, String)> = rows.iter().map(|b| (b.id.clone(), b.snapshot_name.clone(), b.snapshot_id.clone())).collect();
    let read = tokio::task::spawn_blocking(move || {
        let ds = super::repositories::open_datastore(&d, &r)?;
        if ds.repo.lock_support()? == crate::engine::repository::LockSupport::None {
            return Ok::<_, EngineError>(None);
        }
        Ok(Some(labels.into_iter().map(|(bid, name, id)| (bid, format!("{name}/{id}"), restore_point_lock(&ds, &name, &id))).collect::<Vec<_>>()))
    })
    .await
    .map_err(|e| format!("the lock reading thread failed: {e}"))?
    .map_err(|e| e.to_string())?;
    let mut out = Refreshed::default();
    let Some(read) = read else { return Ok(out) };
    let now = Utc::now();
    for (bid, label, lock) in read {
        match lock {
            Ok(lock) => {
                out.locked += usize::from(lock.is_some());
                record(db, &bid, &repo.id, lock, now).await.map_err(|e| e.to_string())?;
            }
            Err(e) => out.failed.push((label, e.to_string())),
        }
    }
    Ok(out)
}
