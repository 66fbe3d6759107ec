//! Undelete of an S3 repository with versions (Object Lock): the engine
//! removes the delete markers made since a time (`Repository::undelete`),
//! then the catalog follows the snapshots that reappear: a restore point it
//! still has is marked available again when a verify had found its manifest
//! missing; one it lost (with the snapshot's VM known: names are
//! `vm-<context id>`) is recorded again from its manifest.

use std::path::Path;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, Set};
use shared_types::backups::BackupStatus;
use shared_types::repositories::{UndeleteReport, UndeletedSnapshot};

use super::backups::{record, NewBackup};
use crate::db::entities::{backups, repositories, vm_contexts};
use crate::engine::manifest::{parse_manifest_key, Manifest};
use crate::engine::EngineError;

/// Why an undelete did not happen.
#[derive(Debug)]
pub enum UndeleteError {
    /// The storage keeps no deleted versions (a 4xx for the caller).
    NotVersioned(String),
    /// The storage could not be reached or refused.
    Storage(String),
    Catalog(sea_orm::DbErr),
}

impl From<sea_orm::DbErr> for UndeleteError {
    fn from(e: sea_orm::DbErr) -> Self {
        UndeleteError::Catalog(e)
    }
}

/// Removes the delete markers of `repo` made since `since`, then resyncs
/// the catalog with the snapshots that came back.
pub async fn undelete(db: &DatabaseConnection, data_dir: &Path, repo: &repositories::Model, since: DateTime<Utc>) -> Result<UndeleteReport, UndeleteError> {
    let (d, row) = (data_dir.to_path_buf(), repo.clone());
    let done = tokio::task::spawn_blocking(move || -> Result<(usize, Vec<Result<Manifest, (String, String)>>), EngineError> {
        let ds = super::repositories::open_datastore(&d, &row)?;
        let keys = ds.repo.undelete(since)?;
        let manifests = keys
            .iter()
            .filter_map(|k| parse_manifest_key(k))
            .map(|(name, id)| ds.load_manifest(&name, &id).map_err(|_| (name, id)))
            .collect();
        Ok((keys.len(), manifests))
    })
    .await
    .map_err(|e| UndeleteError::Storage(format!("the undelete thread failed: {e}")))?;
    let (objects, manifests) = match done {
        Ok(d) => d,
        Err(EngineError::Invalid(m)) => return Err(UndeleteError::NotVersioned(m)),
        Err(e) => return Err(UndeleteError::Storage(e.to_string())),
    };
    let mut snapshots = Vec::new();
    for m in manifests {
        let (name, id, manifest) = match m {
            Ok(m) => (m.name.clone(), m.id.clone(), Some(m)),
            Err((name, id)) => (name, id, None),
        };
        let known = backups::Entity::find()
            .filter(backups::Column::RepositoryId.eq(repo.id.clone()))
            .filter(backups::Column::SnapshotName.eq(name.clone()))
            .filter(backups::Column::SnapshotId.eq(id.clone()))
            .one(db)
            .await?;
        let (backup_id, recorded) = match (known, manifest) {
            (Some(row), _) => {
                let id = row.id.clone();
                if row.status == BackupStatus::Corrupt.as_str() {
                    // Verify found its manifest gone; it is back: verify judges it again.
                    let mut a = row.into_active_model();
                    a.status = Set(BackupStatus::Available.as_str().to_owned());
                    a.verify_reason = Set(None);
                    a.update(db).await?;
                }
                (Some(id), false)
            }
            (None, Some(m)) => match vm_of(db, &name).await? {
                Some(vm) => {
                    let row = record(
                        db,
                        NewBackup { vm_context_id: &vm, job_id: None, repository_id: &repo.id, manifest: &m, immutable_days: 0, backup_type: None },
                    )
                    .await?;
                    (Some(row.id), true)
                }
                None => (None, false),
            },
            (None, None) => (None, false),
        };
        snapshots.push(UndeletedSnapshot { snapshot_name: name, snapshot_id: id, backup_id, recorded });
    }
    // Restore points locked by the storage show its dates again.
    if repo.object_lock_mode.is_some() {
        for s in &snapshots {
            let Some(bid) = &s.backup_id else { continue };
            if let Some(row) = backups::Entity::find_by_id(bid.clone()).one(db).await? {
                if let Err(e) = super::storage_locks::refresh_one(db, data_dir, repo, &row).await {
                    tracing::warn!(error = %e, backup = %bid, "reading an undeleted restore point's lock");
                }
            }
        }
    }
    Ok(UndeleteReport { objects_restored: objects as u64, snapshots })
}

/// The VM context a snapshot name (`vm-<id>`) belongs to, when it exists.
async fn vm_of(db: &DatabaseConnection, name: &str) -> Result<Option<String>, sea_orm::DbErr> {
    let Some(id) = name.strip_prefix("vm-") else { return Ok(None) };
    Ok(vm_contexts::Entity::find_by_id(id.to_owned()).one(db).await?.map(|v| v.id))
}
