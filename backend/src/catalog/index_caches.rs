//! The engine's index caches of catalog repositories
//! ([`crate::engine::index_cache`]): a repository leaving the catalog takes
//! its caches with it, and at start the server removes the caches under its
//! own cache directory (`DATA_DIR/cache`) that no catalog repository owns.
//! Caches are never authoritative: removing one only costs the next open
//! reading the pack indexes again. Both rules go through the engine's one
//! removal ([`index_cache::remove_where`], which keeps caches in use); the
//! command line sweeps its root by age instead ([`index_cache::sweep_unused`]).

use std::collections::HashSet;
use std::path::Path;

use sea_orm::{DbErr, EntityTrait};

use super::repositories::spec;
use crate::db::entities::repositories;
use crate::engine::index_cache;

/// The location a repository's caches record (how the engine describes it;
/// never a secret).
pub fn location(row: &repositories::Model) -> String {
    spec(row, None).describe()
}

/// After `row` left the catalog: removes its caches, unless another catalog
/// repository has the same location. Returns how many were removed.
pub async fn forget(db: &impl sea_orm::ConnectionTrait, row: &repositories::Model) -> Result<usize, DbErr> {
    let here = location(row);
    if repositories::Entity::find().all(db).await?.iter().any(|r| location(r) == here) {
        return Ok(0);
    }
    Ok(tokio::task::spawn_blocking(move || index_cache::remove_for(&here)).await.unwrap_or(0))
}

/// Removes the caches under `root` that no catalog repository owns (and those
/// that name no repository). Only the server's own root is swept: a root
/// named by `SENDENSE_CACHE_DIR` may hold the command line's caches too.
pub async fn remove_stale(db: &impl sea_orm::ConnectionTrait, root: &Path) -> Result<usize, DbErr> {
    let keep: HashSet<String> = repositories::Entity::find().all(db).await?.iter().map(location).collect();
    let root = root.to_path_buf();
    Ok(tokio::task::spawn_blocking(move || index_cache::remove_stale(&root, &keep)).await.unwrap_or(0))
}

/// Whether the engine's cache root is the server's own `DATA_DIR/cache`.
pub fn root_is_own(data_dir: &Path) -> bool {
    let own = std::path::absolute(data_dir.join("cache")).ok();
    own.is_some_and(|own| std::path::absolute(index_cache::root()).ok().as_ref() == Some(&own))
}
