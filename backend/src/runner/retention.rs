//! Retention of one managed VM's restore points in one repository. The
//! candidates are the catalog's rows of that VM, chosen by its stable id, so
//! retention of one VM can never touch another VM's restore points, even one
//! with the same name (snapshot names in the repository are not consulted).
//! Restore points inside their immutability window are kept.

use std::path::Path;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::db::entities::{backups, repositories};
use crate::catalog::repositories::open_datastore;
use crate::engine::prune::{self, KeepRules};
use crate::engine::EngineError;

/// What retention did to one VM's restore points.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// `group/id` of each restore point removed (manifest and catalog row).
    pub removed: Vec<String>,
    /// Restore points the rules would remove but that are immutable.
    pub kept_immutable: usize,
}

/// Applies `rules` to the restore points of VM `vm_context_id` in `repo`.
/// Each removal deletes the manifest first, then the catalog row (chunks go
/// at the next garbage collection). No rules: nothing is removed.
pub async fn apply_for_vm(
    db: &DatabaseConnection,
    data_dir: &Path,
    repo: &repositories::Model,
    vm_context_id: &str,
    rules: &KeepRules,
) -> Result<RetentionOutcome, String> {
    let mut out = RetentionOutcome::default();
    if rules.is_empty() {
        return Ok(out);
    }
    let rows = backups::Entity::find()
        .filter(backups::Column::VmContextId.eq(vm_context_id))
        .filter(backups::Column::RepositoryId.eq(repo.id.clone()))
        .order_by_desc(backups::Column::CreatedAt)
        .order_by_desc(backups::Column::SnapshotId)
        .all(db)
        .await
        .map_err(|e| e.to_string())?;
    let list: Vec<_> = rows.iter().map(|r| (r.id.clone(), r.created_at)).collect();
    let keep = prune::select(&list, rules);
    let now = Utc::now();
    let mut doomed = Vec::new();
    for (row, k) in rows.into_iter().zip(keep) {
        if k {
            continue;
        }
        if row.immutable_until.is_some_and(|u| u > now) {
            out.kept_immutable += 1;
            continue;
        }
        doomed.push(row);
    }
    if doomed.is_empty() {
        return Ok(out);
    }
    let (row, data_dir) = (repo.clone(), data_dir.to_path_buf());
    let targets: Vec<(String, String)> = doomed.iter().map(|r| (r.snapshot_name.clone(), r.snapshot_id.clone())).collect();
    // Per restore point: Ok(true) removed, Ok(false) immutable or pinned in the repository.
    let results = tokio::task::spawn_blocking(move || -> Result<Vec<Result<bool, String>>, String> {
        let ds = open_datastore(&data_dir, &row).map_err(|e| e.to_string())?;
        Ok(targets
            .iter()
            .map(|(name, id)| match prune::forget(&ds, name, id) {
                Ok(()) | Err(EngineError::SnapshotNotFound(_)) => Ok(true),
                // Kept for now; removed by a later run once free.
                Err(EngineError::Immutable { .. } | EngineError::Pinned { .. }) => Ok(false),
                Err(e) => Err(e.to_string()),
            })
            .collect())
    })
    .await
    .map_err(|e| e.to_string())??;
    let mut first_error = None;
    for (row, result) in doomed.into_iter().zip(results) {
        match result {
            Ok(true) => {
                backups::Entity::delete_by_id(row.id.clone()).exec(db).await.map_err(|e| e.to_string())?;
                out.removed.push(format!("{}/{}", row.snapshot_name, row.snapshot_id));
            }
            Ok(false) => out.kept_immutable += 1,
            Err(e) => {
                first_error.get_or_insert(format!("removing {}/{}: {e}", row.snapshot_name, row.snapshot_id));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
