//! Retention of one managed VM's restore points in one repository. The
//! candidates are the catalog's rows of that VM, chosen by its stable id, so
//! retention of one VM can never touch another VM's restore points, even one
//! with the same name (snapshot names in the repository are not consulted).
//! Restore points inside their immutability window are kept.

use std::path::Path;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};

use shared_types::backups::{LocationRole, LocationState};

use crate::catalog::backup_locations as locations;
use crate::db::entities::{backup_locations, backups, repositories};
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

/// The restore points of VM `vm_context_id` written to repository
/// `repository_id` and still there (their primary location), newest first:
/// the candidates of [`apply_for_vm`] (and of the policy preview).
pub async fn candidates(db: &impl ConnectionTrait, repository_id: &str, vm_context_id: &str) -> Result<Vec<backups::Model>, DbErr> {
    candidates_at(db, repository_id, vm_context_id, LocationRole::Primary).await
}

/// The restore points of VM `vm_context_id` in repository `repository_id`
/// in `role` (primaries written there, or copies made there), newest first,
/// each as it is there (snapshot and immutability at that repository).
pub async fn candidates_at(db: &impl ConnectionTrait, repository_id: &str, vm_context_id: &str, role: LocationRole) -> Result<Vec<backups::Model>, DbErr> {
    let rows = match role {
        LocationRole::Primary => {
            backups::Entity::find()
                .filter(backups::Column::VmContextId.eq(vm_context_id))
                .filter(backups::Column::RepositoryId.eq(repository_id))
                .order_by_desc(backups::Column::CreatedAt)
                .order_by_desc(backups::Column::SnapshotId)
                .all(db)
                .await?
        }
        LocationRole::Copy => {
            let ids: Vec<String> = backup_locations::Entity::find()
                .filter(backup_locations::Column::RepositoryId.eq(repository_id))
                .filter(backup_locations::Column::Role.eq(LocationRole::Copy.as_str()))
                .filter(backup_locations::Column::State.eq(LocationState::Present.as_str()))
                .all(db)
                .await?
                .into_iter()
                .map(|l| l.backup_id)
                .collect();
            let mut out = Vec::new();
            for chunk in ids.chunks(500) {
                out.extend(
                    backups::Entity::find()
                        .filter(backups::Column::VmContextId.eq(vm_context_id))
                        .filter(backups::Column::Id.is_in(chunk.to_vec()))
                        .all(db)
                        .await?,
                );
            }
            out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.snapshot_id.cmp(&a.snapshot_id)));
            out
        }
    };
    let locations = locations::of_many(db, &rows).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let here = locations.get(&r.id)?.iter().find(|l| l.repository_id == repository_id && l.role == role.as_str())?;
            Some(locations::located(r, here))
        })
        .collect())
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

/// Applies `rules` to the restore points of VM `vm_context_id` written to `repo`.
/// Each removal deletes the manifest first, then the catalog row (chunks go
/// at the next garbage collection). No rules: nothing is removed.
pub async fn apply_for_vm(
    db: &DatabaseConnection,
    data_dir: &Path,
    repo: &repositories::Model,
    vm_context_id: &str,
    rules: &KeepRules,
) -> Result<RetentionOutcome, String> {
    apply_for_vm_at(db, data_dir, repo, vm_context_id, rules, LocationRole::Primary).await
}

/// [`apply_for_vm`] over the restore points in `repo` in `role`: the
/// primaries written there, or the copies made there (a copy target's
/// retention touches copies only). A removal takes the restore point out of
/// that repository; the restore point itself goes with its last location.
pub async fn apply_for_vm_at(
    db: &DatabaseConnection,
    data_dir: &Path,
    repo: &repositories::Model,
    vm_context_id: &str,
    rules: &KeepRules,
    role: LocationRole,
) -> Result<RetentionOutcome, String> {
    let mut out = RetentionOutcome::default();
    if rules.is_empty() {
        return Ok(out);
    }
    let rows = candidates_at(db, &repo.id, vm_context_id, role).await.map_err(|e| e.to_string())?;
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
                locations::remove(db, &row, &repo.id).await.map_err(|e| e.to_string())?;
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
