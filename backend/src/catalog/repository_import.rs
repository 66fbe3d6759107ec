//! Recording the restore points a repository holds that the catalog does
//! not know: after attaching an existing repository (a new server after the
//! old one was lost, or a repository removed from the catalog and added
//! again), and on demand (`POST /api/v1/repositories/{id}/import`) once the
//! VMs' platform has been added.
//!
//! Data safety: a snapshot is recorded only for the VM it belongs to, found
//! by a stable id: the catalog id its snapshots are named by (`vm-<id>`),
//! else the platform's id of the VM (its UUID) kept in the manifest, and
//! only when exactly one managed VM has it. Never by name: two VMs may share
//! one. A snapshot the catalog has in another repository (the same snapshot
//! id under the same name) is a copy held here, not a second restore point.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use shared_types::backups::{LocationRole, LocationState};
use shared_types::repository_setup::{RepositoryImport, UnmatchedVm};

use super::backups::{record, NewBackup};
use crate::db::entities::{backup_locations, backups, repositories, vm_contexts};
use crate::engine::manifest::Manifest;

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The repository could not be opened or listed.
    #[error("{0}")]
    Storage(String),
    #[error(transparent)]
    Catalog(#[from] sea_orm::DbErr),
}

/// The snapshots of a repository, each read or the reason it could not be.
type Read = Vec<Result<Manifest, (String, String, String)>>;

fn read_all(data_dir: &Path, repo: &repositories::Model) -> Result<Read, ImportError> {
    let ds = super::repositories::open_datastore(data_dir, repo).map_err(|e| ImportError::Storage(e.to_string()))?;
    let names = ds.list_snapshots(None).map_err(|e| ImportError::Storage(e.to_string()))?;
    Ok(names.into_iter().map(|(name, id)| ds.load_manifest(&name, &id).map_err(|e| (name, id, e.to_string()))).collect())
}

/// The managed VM a snapshot belongs to, by stable id only.
async fn owner(db: &DatabaseConnection, m: &Manifest) -> Result<Option<String>, sea_orm::DbErr> {
    if let Some(ctx) = m.name.strip_prefix("vm-") {
        if let Some(vm) = vm_contexts::Entity::find_by_id(ctx.to_owned()).one(db).await? {
            return Ok(Some(vm.id));
        }
    }
    let Some(uuid) = m.vm.as_ref().map(|v| v.id.trim()).filter(|u| !u.is_empty()) else { return Ok(None) };
    let mut same = vm_contexts::Entity::find().filter(vm_contexts::Column::PlatformVmId.eq(uuid.to_owned())).all(db).await?;
    Ok(if same.len() == 1 { same.pop().map(|v| v.id) } else { None })
}

/// Records the restore points of `repo` the catalog lacks (see the module
/// documentation). Blocking storage reads run off the async threads.
pub async fn import(db: &DatabaseConnection, data_dir: &Path, repo: &repositories::Model) -> Result<RepositoryImport, ImportError> {
    let (d, row) = (data_dir.to_path_buf(), repo.clone());
    let read = tokio::task::spawn_blocking(move || read_all(&d, &row))
        .await
        .map_err(|e| ImportError::Storage(format!("reading the repository stopped unexpectedly: {e}")))??;
    let mut report = RepositoryImport { snapshots: read.len() as u32, ..Default::default() };
    let mut manifests = Vec::new();
    for r in read {
        match r {
            Ok(m) => manifests.push(m),
            Err((name, id, why)) => report.unreadable.push(format!("{name}/{id}: {why}")),
        }
    }
    // Oldest first: a chain's full before its incrementals.
    manifests.sort_by(|a, b| (a.created_at(), &a.id).cmp(&(b.created_at(), &b.id)));
    let mut unmatched: BTreeMap<(String, Option<String>), u32> = BTreeMap::new();
    for m in &manifests {
        let same = backups::Entity::find()
            .filter(backups::Column::SnapshotName.eq(m.name.clone()))
            .filter(backups::Column::SnapshotId.eq(m.id.clone()))
            .all(db)
            .await?;
        if same.iter().any(|b| b.repository_id == repo.id) {
            report.known += 1;
            continue;
        }
        if let Some(primary) = same.first() {
            if backup_locations::Entity::find_by_id((primary.id.clone(), repo.id.clone())).one(db).await?.is_some() {
                report.known += 1;
                continue;
            }
            backup_locations::ActiveModel {
                backup_id: Set(primary.id.clone()),
                repository_id: Set(repo.id.clone()),
                role: Set(LocationRole::Copy.as_str().to_owned()),
                state: Set(LocationState::Present.as_str().to_owned()),
                snapshot_name: Set(m.name.clone()),
                snapshot_id: Set(m.id.clone()),
                immutable_until: Set(m.immutable_until.as_deref().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|u| u.with_timezone(&Utc))),
                copied_at: Set(m.created_at()),
                bytes_sent: Set(0),
                job_id: Set(None),
                error: Set(None),
                updated_at: Set(Utc::now()),
            }
            .insert(db)
            .await?;
            report.copies += 1;
            continue;
        }
        match owner(db, m).await? {
            Some(vm) => {
                let row = record(db, NewBackup { vm_context_id: &vm, job_id: None, repository_id: &repo.id, manifest: m, immutable_days: 0, backup_type: None }).await?;
                report.recorded += 1;
                // Locked by the storage: the cockpit shows its date, as for a backup.
                if repo.object_lock_mode.is_some() {
                    if let Err(e) = super::storage_locks::refresh_one(db, data_dir, repo, &row).await {
                        tracing::warn!(error = %e, backup = %row.id, "reading an imported restore point's lock");
                    }
                }
            }
            None => {
                let name = m.vm.as_ref().map(|v| v.name.clone()).unwrap_or_else(|| m.name.clone());
                let uuid = m.vm.as_ref().map(|v| v.id.clone()).filter(|u| !u.is_empty());
                *unmatched.entry((name, uuid)).or_default() += 1;
            }
        }
    }
    report.unmatched = unmatched.into_iter().map(|((name, platform_vm_id), restore_points)| UnmatchedVm { name, platform_vm_id, restore_points }).collect();
    tracing::info!(
        repository = %repo.name,
        snapshots = report.snapshots,
        recorded = report.recorded,
        copies = report.copies,
        known = report.known,
        unmatched = report.unmatched.len(),
        unreadable = report.unreadable.len(),
        "imported the repository's restore points"
    );
    Ok(report)
}
