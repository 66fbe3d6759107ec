//! Garbage collection: mark and sweep with a grace period. See the rules in
//! the `engine` module documentation.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::datastore::Datastore;
use super::digest::Digest;
use super::error::{EngineError, Result};
use super::fixed_index::INDEX_PREFIX;
use super::lease::{self, Lease, GC_LOCK_KEY};
use super::pack::{self, PackBuilder, PackEntry, PACK_INDEX_PREFIX, PACK_PREFIX};
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
    /// Bytes of unreferenced chunks inside packs kept partly used (below the
    /// repack threshold, or in their grace period).
    pub bytes_unreferenced_in_kept_packs: u64,
    /// Partly used packs rewritten: their chunks in use were copied into new
    /// packs and the old packs removed (counted in `packs_removed` and
    /// `bytes_removed` too).
    pub packs_repacked: usize,
    /// New packs written by repacking, and their bytes (pack + index).
    pub packs_written: usize,
    pub bytes_written: u64,
    pub temp_files_removed: usize,
    pub stale_leases_removed: usize,
}

impl GcReport {
    /// Space given back: bytes removed less the bytes repacking wrote.
    pub fn reclaimed(&self) -> u64 {
        self.bytes_removed.saturating_sub(self.bytes_written)
    }
}

/// A pack in use is repacked when at least this share of its bytes (in
/// percent) belongs to chunks nothing references any more.
pub const REPACK_MIN_UNUSED_PERCENT: u64 = 10;

/// Filesystem timestamps come from a coarse clock (and object-store clocks
/// from another host): the cutoff keeps this much slack below the GC start.
pub const MTIME_SLACK: Duration = Duration::from_secs(1);

pub fn gc(ds: &Datastore, grace: Duration) -> Result<GcReport> {
    gc_with(ds, grace, &Progress::new())
}

/// [`gc`] reporting to `progress`: `bytes_total` is the bytes of the packs
/// to look at, `bytes_read` grows as each is decided, `bytes_written` counts
/// the bytes reclaimed (removed less written by repacking). Between two packs (each removed index first, then
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
                // A pin writes nothing: only its snapshot's chunks are kept.
                if l.kind != "pin" {
                    cutoff = cutoff.min(l.started() - MTIME_SLACK);
                }
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
    let mut to_repack = Vec::new();
    for obj in repo.list(PACK_INDEX_PREFIX)? {
        progress.control.checkpoint()?;
        let Some(id) = pack::id_from_key(&obj.key) else { continue };
        let pkey = pack::pack_key(&id);
        indexed.insert(pkey.clone());
        let entries = pack::open_index(&id, &repo.get(&obj.key)?, ds.crypt.as_deref())
            .map_err(|reason| EngineError::CorruptPackIndex { key: obj.key.clone(), reason })?;
        let Some(&(size, modified)) = packs.get(&pkey) else {
            // Index of a pack that is gone: useless.
            if obj.modified < cutoff {
                repo.delete(&obj.key)?;
            }
            continue;
        };
        let unused: u64 =
            entries.iter().filter(|e| !marked.contains(&e.digest)).map(|e| e.stored_len as u64).sum();
        let used = entries.iter().any(|e| marked.contains(&e.digest));
        if used {
            if modified < cutoff && unused * 100 >= size * REPACK_MIN_UNUSED_PERCENT {
                // Its progress counts when it is repacked below.
                to_repack.push(Candidate { id, size, entries });
            } else {
                Progress::add(&progress.bytes_read, size);
                report.packs_kept += 1;
                report.bytes_unreferenced_in_kept_packs += unused;
            }
            continue;
        }
        Progress::add(&progress.bytes_read, size);
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
    repack(ds, to_repack, &marked, cutoff, progress, &mut report)?;
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

struct Candidate {
    id: Digest,
    size: u64,
    entries: Vec<PackEntry>,
}

/// Rewrites partly used packs: the stored bytes of their chunks in use
/// (compressed and encrypted as they are: a chunk's encryption is bound to
/// its digest, not to its pack) are copied into new packs of the usual size,
/// and once a new pack and its index are durable, the old packs whose chunks
/// it holds are removed, each only if its time, re-read just before, is
/// still older than the cutoff (a backup that touched it keeps it).
///
/// Safe beside everything that runs without the GC lock. A backup reusing a
/// chunk of a removed pack finds the pack gone at its final check and starts
/// over on a fresh chunk map (the backup rule above). Readers holding an old
/// chunk map look a chunk up again in the pack indexes they have not seen
/// when its pack has gone ([`ChunkStore::read_chunk`](super::chunk_store)).
/// A stop between two packs drops what was copied but not yet written: the
/// old packs are all still there.
fn repack(
    ds: &Datastore,
    candidates: Vec<Candidate>,
    marked: &HashSet<Digest>,
    cutoff: SystemTime,
    progress: &Progress,
    report: &mut GcReport,
) -> Result<()> {
    let repo = ds.repo.as_ref();
    let pack_size = ds.config.pack_size as usize;
    let mut builder = PackBuilder::with_capacity(pack_size + ds.config.chunk_size as usize);
    let mut sources: Vec<(Digest, u64)> = Vec::new();
    let mut copied: HashSet<Digest> = HashSet::new();
    for c in candidates {
        progress.control.checkpoint()?;
        let key = pack::pack_key(&c.id);
        let data = match repo.get(&key) {
            Ok(d) => d,
            Err(EngineError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        for e in c.entries.iter().filter(|e| marked.contains(&e.digest)) {
            if !copied.insert(e.digest) {
                continue;
            }
            let range = usize::try_from(e.offset).ok().and_then(|o| Some(o..o.checked_add(e.stored_len as usize)?));
            let Some(stored) = range.and_then(|r| data.get(r)) else {
                return Err(EngineError::CorruptChunk {
                    digest: e.digest.to_hex(),
                    pack: c.id.to_hex(),
                    offset: e.offset,
                    reason: format!("lies beyond the end of its {}-byte pack", data.len()),
                });
            };
            builder.add(e.digest, stored, e.raw_len, e.flags);
        }
        sources.push((c.id, c.size));
        Progress::add(&progress.bytes_read, c.size);
        if builder.len() >= pack_size {
            let full = std::mem::replace(&mut builder, PackBuilder::with_capacity(pack_size + ds.config.chunk_size as usize));
            retire(ds, full, std::mem::take(&mut sources), cutoff, progress, report)?;
        }
    }
    if !sources.is_empty() {
        retire(ds, builder, sources, cutoff, progress, report)?;
    }
    Ok(())
}

/// Writes one repacked pack, then removes the old packs it replaces.
fn retire(
    ds: &Datastore,
    new: PackBuilder,
    sources: Vec<(Digest, u64)>,
    cutoff: SystemTime,
    progress: &Progress,
    report: &mut GcReport,
) -> Result<()> {
    let repo = ds.repo.as_ref();
    let mut written = 0;
    if !new.is_empty() {
        written = pack::write(repo, ds.crypt.as_deref(), &new.data, &new.entries)?.1;
        report.packs_written += 1;
        report.bytes_written += written;
    }
    let mut removed = 0;
    for (id, size) in sources {
        let key = pack::pack_key(&id);
        match repo.stat(&key)? {
            Some(info) if info.modified < cutoff => {
                repo.delete(&pack::pack_index_key(&id))?;
                repo.delete(&key)?;
                report.packs_removed += 1;
                report.packs_repacked += 1;
                report.bytes_removed += size;
                removed += size;
            }
            // Touched by a backup since: kept (its chunks are now in two packs).
            Some(_) => report.packs_kept += 1,
            None => {}
        }
    }
    Progress::add(&progress.bytes_written, removed.saturating_sub(written));
    Ok(())
}
