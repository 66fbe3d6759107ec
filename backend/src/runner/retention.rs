//! Retention of one managed VM's restore points in one repository. The
//! candidates are the catalog's rows of that VM, chosen by its stable id, so
//! retention of one VM can never touch another VM's restore points, even one
//! with the same name (snapshot names in the repository are not consulted).
//! Restore points inside their immutability window are kept.

use std::path::Path;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};

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

/// What retention decides for one restore point before the repository is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Keep,
    /// The rules would remove it, but it is immutable until its `immutable_until`.
    KeepImmutable,
    Remove,
}

/// The restore points of VM `vm_context_id` in repository `repository_id`,
/// newest first: the candidates of [`apply_for_vm`] (and of the policy preview).
pub async fn candidates(db: &impl ConnectionTrait, repository_id: &str, vm_context_id: &str) -> Result<Vec<backups::Model>, DbErr> {
    backups::Entity::find()
        .filter(backups::Column::VmContextId.eq(vm_context_id))
        .filter(backups::Column::RepositoryId.eq(repository_id))
        .order_by_desc(backups::Column::CreatedAt)
        .order_by_desc(backups::Column::SnapshotId)
        .all(db)
        .await
}

/// The fate of each of `rows` (newest first) under `rules` at `now`. No
/// rules: every one is kept. A restore point removed here may still be kept
/// by the repository (pinned by an instant recovery).
pub fn decide(rows: &[backups::Model], rules: &KeepRules, now: DateTime<Utc>) -> Vec<Fate> {
    if rules.is_empty() {
        return vec![Fate::Keep; rows.len()];
    }
    let list: Vec<_> = rows.iter().map(|r| (r.id.clone(), r.created_at)).collect();
    prune::select(&list, rules)
        .into_iter()
        .zip(rows)
        .map(|(keep, row)| match keep {
            true => Fate::Keep,
            false if row.immutable_until.is_some_and(|u| u > now) => Fate::KeepImmutable,
            false => Fate::Remove,
        })
        .collect()
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
    let rows = candidates(db, &repo.id, vm_context_id).await.map_err(|e| e.to_string())?;
    let fates = decide(&rows, rules, Utc::now());
    let mut doomed = Vec::new();
    for (row, fate) in rows.into_iter().zip(fates) {
        match fate {
            Fate::Keep => {}
            Fate::KeepImmutable => out.kept_immutable += 1,
            Fate::Remove => doomed.push(row),
        }
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
