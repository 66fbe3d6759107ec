//! Repositories in the catalog: the local one the server creates on first
//! start (encrypted, its key in `DATA_DIR/keys`: [`super::repository_keys`]),
//! opening a repository's datastore, its capacity and engine stats.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use shared_types::repositories::{Capacity, Maintenance, Repository, RepositoryKind, RepositoryStats, RepositoryStatus};

use super::new_id;
use super::repository_keys;
use crate::db::entities::repositories;
use crate::engine::datastore::{Datastore, CONFIG_KEY};
use crate::engine::stats::StatsCache;

/// Name of the repository every install has.
pub const LOCAL_NAME: &str = "local";

/// Where the local repository lives in the data directory.
pub fn local_path(data_dir: &Path) -> PathBuf {
    data_dir.join("repos").join("local")
}

/// Creates the local repository (engine and catalog row) when the catalog
/// has none by that name: encrypted, with a new key in `DATA_DIR/keys`.
/// Never re-creates one whose directory vanished: that shows as unavailable
/// instead. A repository already in the directory (a catalog reset) is
/// adopted as it is.
pub async fn ensure_local(db: &DatabaseConnection, data_dir: &Path) -> anyhow::Result<repositories::Model> {
    if let Some(row) = repositories::Entity::find().filter(repositories::Column::Name.eq(LOCAL_NAME)).one(db).await? {
        return Ok(row);
    }
    let id = new_id();
    let path = local_path(data_dir);
    let (init_path, init_id, init_data) = (path.clone(), id.clone(), data_dir.to_path_buf());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        if !init_path.join(CONFIG_KEY).exists() {
            repository_keys::init_encrypted(&init_data, &init_id, &init_path)
                .with_context(|| format!("unable to create the local repository in '{}'", init_path.display()))?;
        }
        Ok(())
    })
    .await??;
    let row = repositories::ActiveModel {
        id: Set(id),
        name: Set(LOCAL_NAME.to_owned()),
        kind: Set(RepositoryKind::Local.as_str().to_owned()),
        path: Set(path.display().to_string()),
        created_at: Set(Utc::now()),
        maintenance_reason: Set(None),
        maintenance_since: Set(None),
        maintenance_by: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    tracing::info!(path = %path.display(), "created the local repository");
    Ok(row)
}

/// The directories of every repository in the catalog (destinations of
/// restored files must never touch them).
pub async fn local_paths(db: &DatabaseConnection) -> Result<Vec<std::path::PathBuf>, sea_orm::DbErr> {
    Ok(repositories::Entity::find().all(db).await?.into_iter().filter(|r| r.path.starts_with('/')).map(|r| std::path::PathBuf::from(r.path)).collect())
}

/// Opens a repository's datastore, with its key when it is encrypted: the
/// one way the server (API, jobs, restore sessions) opens a repository.
/// Blocking.
pub fn open_datastore(data_dir: &Path, row: &repositories::Model) -> crate::engine::Result<Datastore> {
    repository_keys::open_datastore(data_dir, &row.id, Path::new(&row.path))
}

/// A repository with live capacity and engine statistics (read on a
/// blocking thread, statistics cached until the repository changes); a repository that cannot be read is reported
/// unavailable with the reason, not as an error.
/// The filesystem's capacity under `path` (blocking: a `statvfs`).
pub fn capacity(path: &Path) -> Option<Capacity> {
    rustix::fs::statvfs(path).ok().map(|st| Capacity {
        total_bytes: st.f_blocks * st.f_frsize,
        free_bytes: st.f_bavail * st.f_frsize,
        used_bytes: st.f_blocks.saturating_sub(st.f_bfree) * st.f_frsize,
    })
}

pub async fn describe(data_dir: &Path, row: repositories::Model, backup_count: u64, cache: &Arc<StatsCache>) -> Repository {
    let path = row.path.clone();
    let probe = row.clone();
    let cache = Arc::clone(cache);
    let data_dir = data_dir.to_path_buf();
    let measured = tokio::task::spawn_blocking(move || {
        let capacity = capacity(Path::new(&path));
        let fingerprint = repository_keys::fingerprint(Path::new(&probe.path)).ok().flatten();
        let stats = open_datastore(&data_dir, &probe).and_then(|ds| cache.stats(Path::new(&probe.path), &ds)).map(|s| RepositoryStats {
            snapshots: s.snapshots as u64,
            logical_bytes: s.logical_bytes,
            unique_bytes: s.unique_bytes,
            stored_bytes: s.unique_stored_bytes,
            repository_bytes: s.repository_bytes,
            dedup_ratio: s.dedup_ratio,
            compression_ratio: s.compression_ratio,
        });
        (capacity, stats.map_err(|e| e.to_string()), fingerprint)
    })
    .await;
    let (capacity, stats, key_fingerprint) = match measured {
        Ok(m) => m,
        Err(e) => (None, Err(format!("reading the repository stopped unexpectedly: {e}")), None),
    };
    let maintenance = maintenance(&row);
    let (status, error, stats) = match stats {
        Ok(s) if maintenance.is_some() => (RepositoryStatus::Maintenance, None, Some(s)),
        Ok(s) => (RepositoryStatus::Online, None, Some(s)),
        Err(e) => (RepositoryStatus::Unavailable, Some(e), None),
    };
    let upkeep = super::upkeep::describe(&row, Utc::now());
    Repository {
        kind: RepositoryKind::parse(&row.kind).unwrap_or(RepositoryKind::Local),
        id: row.id,
        name: row.name,
        path: row.path,
        status,
        error,
        maintenance,
        backup_count,
        capacity,
        stats,
        upkeep,
        encrypted: key_fingerprint.is_some(),
        key_fingerprint,
        created_at: row.created_at,
    }
}

/// The repository's maintenance, when it is in maintenance.
pub fn maintenance(row: &repositories::Model) -> Option<Maintenance> {
    row.maintenance_reason.as_ref().map(|reason| Maintenance {
        reason: reason.clone(),
        since: row.maintenance_since.unwrap_or(row.created_at),
        by: row.maintenance_by.clone(),
    })
}

/// Why a backup to this repository cannot start now, if it cannot.
pub fn refusal(row: &repositories::Model) -> Option<String> {
    row.maintenance_reason.as_ref().map(|reason| {
        format!(
            "repository '{}' is in maintenance ({reason}); backups to it resume when an operator ends maintenance (PUT /api/v1/repositories/{}/maintenance)",
            row.name, row.id
        )
    })
}
