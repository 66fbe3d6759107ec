//! Garbage collection: mark and sweep with a grace period. See the rules in
//! the `engine` module documentation.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::datastore::Datastore;
use super::digest::Digest;
use super::error::{EngineError, Result};
use super::fixed_index::INDEX_PREFIX;
use super::lease::{self, Lease, GC_LOCK_KEY};
use super::pack::{self, PACK_INDEX_PREFIX, PACK_PREFIX};
use super::progress::Progress;
use std::sync::atomic::Ordering;

#[derive(Debug, Default)]
pub struct GcReport {
    pub snapshots: usize,
    pub chunks_marked: usize,
    pub packs_kept: usize,
    pub packs_removed: usize,
    pub bytes_removed: u64,
    pub indexes_removed: usize,
    /// Packs kept because they are younger than the cutoff.
    pub packs_in_grace: usize,
    /// Bytes of unreferenced chunks inside packs that are still partly used.
    pub bytes_unreferenced_in_kept_packs: u64,
    pub temp_files_removed: usize,
    pub stale_leases_removed: usize,
}

/// Filesystem timestamps come from a coarse clock (and object-store clocks
/// from another host): the cutoff keeps this much slack below the GC start.
pub const MTIME_SLACK: Duration = Duration::from_secs(1);

pub fn gc(ds: &Datastore, grace: Duration) -> Result<GcReport> {
    gc_with(ds, grace, &Progress::new())
}

/// [`gc`] reporting to `progress`: `bytes_total` is the bytes of the packs
/// to look at, `bytes_read` grows as each is decided, `bytes_written` counts
/// the bytes removed. Between two packs (each removed index first, then
/// pack, as at any crash) it obeys the control: pause holds, stop ends with
/// `Cancelled`, leaving a consistent repository with less reclaimed.
pub fn gc_with(ds: &Datastore, grace: Duration, progress: &Progress) -> Result<GcReport> {
    let repo = ds.repo.as_ref();
    let _lock = Lease::acquire_gc(repo)?;
    let mut report = GcReport::default();
    let start = SystemTime::now();

    // Cutoff: older than the grace period and than every live backup.
    let mut cutoff = start.checked_sub(grace + MTIME_SLACK).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut pinned_indexes = HashSet::new();
    for (key, info) in lease::list_leases(repo)? {
        if key == GC_LOCK_KEY {
            continue;
        }
        match info {
            Some(l) if l.is_live() => {
                cutoff = cutoff.min(l.started() - MTIME_SLACK);
                pinned_indexes.extend(l.pinned_indexes);
            }
            _ => {
                repo.delete(&key)?;
                report.stale_leases_removed += 1;
            }
        }
    }

    // Mark. A manifest or index that cannot be read stops GC: we could not
    // know what it references.
    let mut index_keys: HashSet<String> = pinned_indexes;
    for (name, id) in ds.list_snapshots(None)? {
        let m = ds.load_manifest(&name, &id)?;
        report.snapshots += 1;
        index_keys.extend(m.disks.into_iter().map(|d| d.index));
    }
    let mut marked: HashSet<Digest> = HashSet::new();
    for key in &index_keys {
        progress.control.checkpoint()?;
        let idx = ds.load_index("(gc)", key)?;
        marked.extend(idx.digests.into_iter().filter(|d| !d.is_zero_marker()));
    }
    report.chunks_marked = marked.len();

    // Sweep packs.
    let packs: HashMap<String, (u64, SystemTime)> =
        repo.list(PACK_PREFIX)?.into_iter().map(|o| (o.key, (o.size, o.modified))).collect();
    progress.bytes_total.store(packs.values().map(|(s, _)| s).sum(), Ordering::Relaxed);
    let mut indexed = HashSet::new();
    for obj in repo.list(PACK_INDEX_PREFIX)? {
        progress.control.checkpoint()?;
        let Some(id) = pack::id_from_key(&obj.key) else { continue };
        let pkey = pack::pack_key(&id);
        indexed.insert(pkey.clone());
        let entries = pack::open_index(&id, &repo.get(&obj.key)?, ds.crypt.as_deref())
            .map_err(|reason| EngineError::CorruptPackIndex { key: obj.key.clone(), reason })?;
        let used = entries.iter().any(|e| marked.contains(&e.digest));
        if let Some(&(size, _)) = packs.get(&pkey) {
            Progress::add(&progress.bytes_read, size);
        }
        let Some(&(size, _)) = packs.get(&pkey) else {
            // Index of a pack that is gone: useless.
            if obj.modified < cutoff {
                repo.delete(&obj.key)?;
            }
            continue;
        };
        if used {
            report.packs_kept += 1;
            report.bytes_unreferenced_in_kept_packs += entries
                .iter()
                .filter(|e| !marked.contains(&e.digest))
                .map(|e| e.stored_len as u64)
                .sum::<u64>();
            continue;
        }
        // Re-read the time right before deciding: a backup may just have touched it.
        match repo.stat(&pkey)? {
            Some(info) if info.modified < cutoff => {
                repo.delete(&obj.key)?;
                repo.delete(&pkey)?;
                report.packs_removed += 1;
                report.bytes_removed += size;
                Progress::add(&progress.bytes_written, size);
            }
            Some(_) => {
                report.packs_in_grace += 1;
                report.packs_kept += 1;
            }
            None => repo.delete(&obj.key)?,
        }
    }
    // Packs without an index: a backup died between the two puts.
    for (key, (size, modified)) in &packs {
        if !indexed.contains(key) && *modified < cutoff {
            progress.control.checkpoint()?;
            repo.delete(key)?;
            Progress::add(&progress.bytes_read, *size);
            Progress::add(&progress.bytes_written, *size);
            report.packs_removed += 1;
            report.bytes_removed += size;
        }
    }
    // Fixed indexes no snapshot uses.
    for obj in repo.list(INDEX_PREFIX)? {
        if !index_keys.contains(&obj.key) && obj.modified < cutoff {
            repo.delete(&obj.key)?;
            report.indexes_removed += 1;
        }
    }
    // Temporary files of interrupted writes.
    for obj in repo.list("tmp/")? {
        if obj.modified < cutoff {
            repo.delete(&obj.key)?;
            report.temp_files_removed += 1;
        }
    }
    Ok(report)
}
