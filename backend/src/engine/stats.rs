//! Repository statistics: logical bytes (sum of every snapshot's disk sizes),
//! distinct chunk bytes, stored bytes, and the dedup and compression ratios.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::datastore::Datastore;
use super::digest::Digest;
use super::error::Result;
use super::repository::ObjectInfo;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RepoStats {
    pub snapshots: usize,
    pub logical_bytes: u64,
    /// Logical bytes in all-zero chunks (never stored).
    pub zero_bytes: u64,
    pub unique_chunks: u64,
    /// Plain bytes of the distinct chunks referenced by snapshots.
    pub unique_bytes: u64,
    /// Stored (compressed/encrypted) bytes of those chunks.
    pub unique_stored_bytes: u64,
    pub pack_bytes: u64,
    /// Pack index objects (`pack-index/`).
    pub pack_index_bytes: u64,
    /// Fixed index objects (`indexes/`).
    pub index_bytes: u64,
    /// Manifests (`snapshots/`).
    pub manifest_bytes: u64,
    /// Everything in the repository: packs, indexes, manifests, config.
    pub repository_bytes: u64,
    /// logical / unique (zero chunks count as deduplicated).
    pub dedup_ratio: f64,
    /// unique / unique stored.
    pub compression_ratio: f64,
}

pub fn stats(ds: &Datastore) -> Result<RepoStats> {
    let objects = ds.repo.list("")?;
    stats_of(ds, &objects)
}

fn stats_of(ds: &Datastore, objects: &[ObjectInfo]) -> Result<RepoStats> {
    let store = ds.load_chunk_store()?;
    let mut s = RepoStats::default();
    let mut seen: HashSet<Digest> = HashSet::new();
    for (name, id) in ds.list_snapshots(None)? {
        let m = ds.load_manifest(&name, &id)?;
        s.snapshots += 1;
        for disk in &m.disks {
            s.logical_bytes += disk.size;
            let idx = ds.load_index(&format!("{name}/{id}"), &disk.index)?;
            for (i, d) in idx.digests.iter().enumerate() {
                if d.is_zero_marker() {
                    s.zero_bytes += idx.chunk_range(i).1 as u64;
                } else if seen.insert(*d) {
                    if let Some(loc) = store.map.get(d) {
                        s.unique_chunks += 1;
                        s.unique_bytes += loc.raw_len as u64;
                        s.unique_stored_bytes += loc.stored_len as u64;
                    }
                }
            }
        }
    }
    for o in objects {
        let k = o.key.as_str();
        if k.starts_with(super::pack::PACK_PREFIX) {
            s.pack_bytes += o.size;
        } else if k.starts_with(super::pack::PACK_INDEX_PREFIX) {
            s.pack_index_bytes += o.size;
        } else if k.starts_with(super::fixed_index::INDEX_PREFIX) {
            s.index_bytes += o.size;
        } else if k.starts_with(super::manifest::SNAPSHOT_PREFIX) {
            s.manifest_bytes += o.size;
        }
        s.repository_bytes += o.size;
    }
    s.dedup_ratio = if s.unique_bytes > 0 { s.logical_bytes as f64 / s.unique_bytes as f64 } else { 0.0 };
    s.compression_ratio =
        if s.unique_stored_bytes > 0 { s.unique_bytes as f64 / s.unique_stored_bytes as f64 } else { 0.0 };
    Ok(s)
}

/// Statistics remembered per repository. A request only reads them: they
/// are computed the first time a repository is asked for, then again only
/// by [`StatsCache::refresh`], which the operations that change a repository
/// (backup, retention, forget, prune, GC) call once they committed. So a
/// request never lists or reads the repository, whatever its size.
#[derive(Debug, Default)]
pub struct StatsCache {
    entries: Mutex<HashMap<PathBuf, RepoStats>>,
}

impl StatsCache {
    /// The repository's statistics as last computed (computed now if never).
    pub fn stats(&self, root: &Path, ds: &Datastore) -> Result<RepoStats> {
        if let Some(s) = self.cached(root) {
            return Ok(s);
        }
        self.refresh(root, ds)
    }

    /// The cached statistics, if any, without touching the repository.
    pub fn cached(&self, root: &Path) -> Option<RepoStats> {
        self.lock().get(root).cloned()
    }

    /// Recomputes the repository's statistics after it changed.
    pub fn refresh(&self, root: &Path, ds: &Datastore) -> Result<RepoStats> {
        let s = stats(ds)?;
        self.lock().insert(root.to_path_buf(), s.clone());
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, RepoStats>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
