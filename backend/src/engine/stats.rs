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
    Ok(computed(ds)?.stats)
}

/// Statistics and the distinct chunks they counted (what lets a new
/// snapshot be added without reading the others again).
#[derive(Debug, Default)]
struct Counted {
    stats: RepoStats,
    seen: HashSet<Digest>,
}

fn computed(ds: &Datastore) -> Result<Counted> {
    let store = ds.load_chunk_store()?;
    let mut c = Counted::default();
    for (name, id) in ds.list_snapshots(None)? {
        count_snapshot(ds, &store, &mut c, &name, &id)?;
    }
    c.stats = with_objects(c.stats, &ds.repo.list("")?);
    Ok(c)
}

/// Adds snapshot `name/id`'s disks to `c` (chunks already seen count once).
fn count_snapshot(ds: &Datastore, store: &super::chunk_store::ChunkStore, c: &mut Counted, name: &str, id: &str) -> Result<()> {
    let m = ds.load_manifest(name, id)?;
    let s = &mut c.stats;
    s.snapshots += 1;
    for disk in &m.disks {
        s.logical_bytes += disk.size;
        let idx = ds.load_index(&format!("{name}/{id}"), &disk.index)?;
        for (i, d) in idx.digests.iter().enumerate() {
            if d.is_zero_marker() {
                s.zero_bytes += idx.chunk_range(i).1 as u64;
            } else if !c.seen.contains(d) {
                if let Some(loc) = store.get(d) {
                    c.seen.insert(*d);
                    s.unique_chunks += 1;
                    s.unique_bytes += loc.raw_len as u64;
                    s.unique_stored_bytes += loc.stored_len as u64;
                }
            }
        }
    }
    Ok(())
}

/// The object byte counts (a listing, nothing read) and the ratios.
fn with_objects(mut s: RepoStats, objects: &[ObjectInfo]) -> RepoStats {
    s.pack_bytes = 0;
    s.pack_index_bytes = 0;
    s.index_bytes = 0;
    s.manifest_bytes = 0;
    s.repository_bytes = 0;
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
    s
}

/// Statistics remembered per repository. A request only reads them: they
/// are computed the first time a repository is asked for, then again only
/// by [`StatsCache::refresh`], which the operations that change a repository
/// (retention, forget, prune, GC) call once they committed, or updated
/// incrementally by [`StatsCache::add_snapshot`] after a backup (only the new
/// snapshot's manifest and indexes are read). So a request never lists or
/// reads the repository, whatever its size.
#[derive(Debug, Default)]
pub struct StatsCache {
    entries: Mutex<HashMap<PathBuf, Counted>>,
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
        self.lock().get(root).map(|c| c.stats.clone())
    }

    /// Recomputes the repository's statistics after it changed.
    pub fn refresh(&self, root: &Path, ds: &Datastore) -> Result<RepoStats> {
        let c = computed(ds)?;
        let s = c.stats.clone();
        self.lock().insert(root.to_path_buf(), c);
        Ok(s)
    }

    /// Adds the committed snapshot `name/id` to the cached statistics (a
    /// full computation when none are cached yet).
    pub fn add_snapshot(&self, root: &Path, ds: &Datastore, name: &str, id: &str) -> Result<RepoStats> {
        let Some(mut c) = self.lock().remove(root) else {
            return self.refresh(root, ds);
        };
        let store = ds.load_chunk_store()?;
        if let Err(e) = count_snapshot(ds, &store, &mut c, name, id) {
            // The entry was taken out: the next request computes it afresh.
            return Err(e);
        }
        c.stats = with_objects(c.stats, &ds.repo.list("")?);
        let s = c.stats.clone();
        self.lock().insert(root.to_path_buf(), c);
        Ok(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Counted>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::backup::{backup, BackupOptions, DiskSource};
    use crate::engine::block_source::FileSource;
    use crate::engine::progress::Progress;

    fn back_up(ds: &Datastore, dir: &Path, name: &str, seed: u8) -> String {
        let img = dir.join(format!("{name}-{seed}.raw"));
        // One 64 KiB block every snapshot shares, one of its own, one of zeros.
        let mut data = vec![7u8; 65536];
        data.extend((0..65536u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        data.extend(vec![0u8; 65536]);
        std::fs::write(&img, &data).unwrap();
        let source = Arc::new(FileSource::open(&img).unwrap());
        let disks = [DiskSource { name: "disk0".into(), source, changed_ranges: None, cbt_token: None }];
        backup(ds, &BackupOptions::new(name), &disks, &Progress::new()).unwrap().id
    }

    #[test]
    fn a_snapshot_added_to_the_cache_gives_what_a_full_computation_gives() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        Datastore::init(&root, None).unwrap();
        let ds = Datastore::open(&root, None).unwrap();
        let cache = StatsCache::default();
        let first = back_up(&ds, dir.path(), "vm-a", 1);
        let id = back_up(&ds, dir.path(), "vm-a", 1);
        // No entry yet: adding computes everything.
        let s = cache.add_snapshot(&root, &ds, "vm-a", &id).unwrap();
        assert_eq!(s.snapshots, 2);
        assert_ne!(first, id);
        for (name, seed) in [("vm-b", 2), ("vm-a", 3), ("vm-b", 2)] {
            let id = back_up(&ds, dir.path(), name, seed);
            let added = cache.add_snapshot(&root, &ds, name, &id).unwrap();
            let full = stats(&ds).unwrap();
            assert_eq!(
                (added.snapshots, added.logical_bytes, added.zero_bytes, added.unique_chunks, added.unique_bytes, added.unique_stored_bytes),
                (full.snapshots, full.logical_bytes, full.zero_bytes, full.unique_chunks, full.unique_bytes, full.unique_stored_bytes),
            );
            assert_eq!((added.repository_bytes, added.pack_bytes, added.manifest_bytes), (full.repository_bytes, full.pack_bytes, full.manifest_bytes));
            assert_eq!(cache.cached(&root).unwrap().snapshots, full.snapshots);
        }
        assert_eq!(cache.cached(&root).unwrap().unique_chunks, 4, "shared block, and the own blocks of seeds 1, 2 and 3");
    }
}
