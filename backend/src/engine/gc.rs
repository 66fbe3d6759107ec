//! Garbage collection: mark, then sweep through the two-phase plan of
//! [`gc_plan`] (no decision compares this machine's clock with an object's
//! time). See the rules in the `engine` module documentation.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::datastore::Datastore;
use super::digest::Digest;
use super::error::{EngineError, Result};
use super::fixed_index::INDEX_PREFIX;
use super::gc_plan::{self, Action, GcPlan, PackNow};
use super::index_log;
use super::lease::{self, Lease, LeaseInfo, ServerClock, GC_LOCK_KEY};
use super::pack::{self, PackBuilder, PackEntry, PACK_INDEX_PREFIX, PACK_PREFIX};
use super::progress::Progress;
use super::repository::Repository;
use std::sync::atomic::Ordering;

#[derive(Debug, Default)]
pub struct GcReport {
    pub snapshots: usize,
    pub chunks_marked: usize,
    pub packs_kept: usize,
    pub packs_removed: usize,
    pub bytes_removed: u64,
    pub indexes_removed: usize,
    /// Candidates kept for a later GC (named in this run's plan; a backup
    /// may still use them, or the grace period has not passed).
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
    /// Index log segments deleted by compaction (all but the newest
    /// [`index_log::keep_segments`]).
    pub log_segments_removed: usize,
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

/// Filesystem and object-store timestamps are coarse: the age cutoff of
/// `tmp/` files keeps this much slack.
pub const MTIME_SLACK: Duration = Duration::from_secs(1);

pub fn gc(ds: &Datastore, grace: Duration) -> Result<GcReport> {
    gc_with(ds, grace, &Progress::new())
}

/// [`gc`] reporting to `progress` (see [`gc_opts`]).
pub fn gc_with(ds: &Datastore, grace: Duration, progress: &Progress) -> Result<GcReport> {
    gc_opts(ds, &GcOptions { grace, expected_manifests: None }, progress)
}

#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// A candidate is acted on by a GC at least this long (storage clock)
    /// after the plan that named it; zero lets a run act on its own plan
    /// when no backup was running.
    pub grace: Duration,
    /// Snapshots (`name`, `id`) the caller knows exist (the catalog's restore
    /// points in this repository): GC refuses to run when its listing of
    /// `snapshots/` misses one, since it would delete the chunks they need.
    pub expected_manifests: Option<Vec<(String, String)>>,
}

/// Garbage collection with the two-phase plan ([`gc_plan`]): mark every
/// chunk of every snapshot and live lease, write this run's plan (candidates,
/// then the live backups), and delete or repack the candidates of the
/// previous plan (or of this one, see [`GcOptions::grace`]) that are still
/// unused. `progress`: `bytes_total` is the bytes of the packs to look at,
/// `bytes_read` grows as each is decided, `bytes_written` counts the bytes
/// reclaimed (removed less written by repacking). Between two packs (each
/// removed index first, then pack, as at any crash) it obeys the control:
/// pause holds, stop ends with `Cancelled`, leaving a consistent repository
/// with less reclaimed.
pub fn gc_opts(ds: &Datastore, opts: &GcOptions, progress: &Progress) -> Result<GcReport> {
    let repo = ds.repo.as_ref();
    let lock = Lease::acquire_gc(ds.repo.clone())?;
    let mut report = GcReport::default();
    let now = repo.server_now()?;
    let mut clock = ServerClock::known(repo, now);

    // Leases: live ones keep their indexes; stale ones go.
    let mut pinned_indexes = HashSet::new();
    for l in lease::list_leases(repo)? {
        if l.key == GC_LOCK_KEY {
            continue;
        }
        match &l.info {
            Some(info) if clock.is_live(info, l.modified)? => pinned_indexes.extend(info.pinned_indexes.iter().cloned()),
            _ => {
                repo.delete(&l.key)?;
                report.stale_leases_removed += 1;
            }
        }
    }

    // Mark. A manifest or index that cannot be read stops GC: we could not
    // know what it references. Nor can a listing that misses a snapshot.
    let snapshots = ds.list_snapshots(None)?;
    if let Some(expected) = &opts.expected_manifests {
        let listed: HashSet<&(String, String)> = snapshots.iter().collect();
        let missing: Vec<String> = expected.iter().filter(|s| !listed.contains(s)).map(|(n, i)| format!("{n}/{i}")).collect();
        if let Some(first) = missing.first() {
            return Err(EngineError::ListingIncomplete { repository: repo.describe(), count: missing.len(), first: first.clone() });
        }
    }
    let mut index_keys: HashSet<String> = pinned_indexes;
    for (name, id) in &snapshots {
        let m = ds.load_manifest(name, id)?;
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

    // Every pack as it is now.
    let packs: HashMap<String, u64> = repo.list(PACK_PREFIX)?.into_iter().map(|o| (o.key, o.size)).collect();
    progress.bytes_total.store(packs.values().sum(), Ordering::Relaxed);
    let mut state: HashMap<Digest, (PackNow, u64, Vec<PackEntry>)> = HashMap::new();
    let mut indexed = HashSet::new();
    for obj in repo.list(PACK_INDEX_PREFIX)? {
        progress.control.checkpoint()?;
        let Some(id) = pack::id_from_key(&obj.key) else { continue };
        let pkey = pack::pack_key(&id);
        indexed.insert(pkey.clone());
        let body = match repo.get(&obj.key) {
            Ok(b) => b,
            Err(EngineError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let entries = pack::open_index(&id, &body, ds.crypt.as_deref())
            .map_err(|reason| EngineError::CorruptPackIndex { key: obj.key.clone(), reason })?;
        let Some(&size) = packs.get(&pkey) else {
            // Index of a pack that is gone (or not listed yet): checked again before acting.
            state.insert(id, (PackNow::Unused, 0, entries));
            continue;
        };
        let now_ = classify(&entries, size, &marked);
        if now_ == PackNow::Keep {
            report.bytes_unreferenced_in_kept_packs += unused_bytes(&entries, &marked);
        }
        state.insert(id, (now_, size, entries));
    }
    // Packs without an index: a backup died between the two puts (or is between them).
    for (key, &size) in &packs {
        if !indexed.contains(key) {
            if let Some(id) = pack::id_from_key(key) {
                state.insert(id, (PackNow::Unused, size, Vec::new()));
            }
        }
    }
    let unused_indexes: Vec<String> =
        repo.list(INDEX_PREFIX)?.into_iter().map(|o| o.key).filter(|k| !index_keys.contains(k)).collect();

    // Phase 1: this run's plan, claimed with the candidates, then the live
    // backups recorded (after the plan is visible: store, then load).
    let previous = gc_plan::newest_plan(repo)?;
    let mut plan = GcPlan {
        version: 1,
        seq: 0,
        token: lock.info.token.clone().unwrap_or_default(),
        packs: sorted_hex(state.iter().filter(|(_, s)| s.0 == PackNow::Unused).map(|(id, _)| id)),
        repack: sorted_hex(state.iter().filter(|(_, s)| s.0 == PackNow::Repack).map(|(id, _)| id)),
        indexes: unused_indexes.clone(),
        leases: None,
    };
    gc_plan::claim(repo, &mut plan)?;
    // From here on, whatever happens, the index log records what this GC
    // removed and added, with its plan's number (see `index_log`).
    let mut log = LogRecord::default();
    let outcome = (|| -> Result<()> {
        let mut running = Vec::new();
        for l in lease::list_leases(repo)? {
            if let Some(info) = &l.info {
                if info.kind == "backup" && clock.is_live(info, l.modified)? {
                    running.push(l.key);
                }
            }
        }
        plan.leases = Some(running.clone());
        gc_plan::record(repo, &plan)?;

        // Phase 2: which candidates may go now.
        let mut actionable_packs: HashSet<Digest> = HashSet::new();
        let mut actionable_indexes: HashSet<String> = HashSet::new();
        if let Some((prev, info)) = &previous {
            let wait = gc_plan::may_act(prev, info.modified, now, opts.grace, |key| lease_live(repo, &mut clock, key))?;
            match wait {
                None => {
                    actionable_packs.extend(gc_plan::Avoid::of(prev).packs);
                    actionable_indexes.extend(prev.indexes.iter().cloned());
                }
                Some(w) => tracing::info!(plan = prev.seq, reason = ?w, "the previous GC plan waits"),
            }
        }
        if opts.grace.is_zero() && running.is_empty() {
            // No backup can be using this run's candidates (see `gc_plan`).
            actionable_packs.extend(gc_plan::Avoid::of(&plan).packs);
            actionable_indexes.extend(plan.indexes.iter().cloned());
        }

        // Mark again: snapshots committed since the first mark, by backups that
        // may have ended (their leases gone) after it. Only now, with the
        // recorded backups known to be gone, is "still unused" decided.
        for (name, id) in ds.list_snapshots(None)? {
            if snapshots.contains(&(name.clone(), id.clone())) {
                continue;
            }
            let m = ds.load_manifest(&name, &id)?;
            for d in m.disks {
                if index_keys.insert(d.index.clone()) {
                    let idx = ds.load_index("(gc)", &d.index)?;
                    marked.extend(idx.digests.into_iter().filter(|d| !d.is_zero_marker()));
                }
            }
        }

        let mut to_repack = Vec::new();
        let mut ids: Vec<&Digest> = state.keys().collect();
        ids.sort_unstable_by_key(|d| d.0);
        for id in ids {
            progress.control.checkpoint()?;
            let (first, size, entries) = &state[id];
            let mut entries = entries.clone();
            let mut size = *size;
            let actionable = actionable_packs.contains(id);
            let mut now_ = *first;
            if actionable && now_ != PackNow::Keep {
                // As it is now: a pack listed without its index (or an index
                // without its pack) may have been completed since.
                if entries.is_empty() {
                    match repo.get(&pack::pack_index_key(id)) {
                        Ok(body) => {
                            entries = pack::open_index(id, &body, ds.crypt.as_deref())
                                .map_err(|reason| EngineError::CorruptPackIndex { key: pack::pack_index_key(id), reason })?
                        }
                        Err(EngineError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                if size == 0 {
                    size = repo.stat(&pack::pack_key(id))?.map_or(0, |o| o.size);
                }
                if size > 0 && !entries.is_empty() {
                    now_ = classify(&entries, size, &marked);
                }
            }
            let (now_, size, entries) = (&now_, &size, &entries);
            match gc_plan::decide(*now_, actionable) {
                Action::Keep => {
                    Progress::add(&progress.bytes_read, *size);
                    report.packs_kept += 1;
                }
                Action::Wait => {
                    Progress::add(&progress.bytes_read, *size);
                    report.packs_kept += 1;
                    report.packs_in_grace += 1;
                    if *now_ == PackNow::Repack {
                        report.bytes_unreferenced_in_kept_packs +=
                            entries.iter().filter(|e| !marked.contains(&e.digest)).map(|e| e.stored_len as u64).sum::<u64>();
                    }
                }
                Action::Delete => {
                    log.removed.push(*id);
                    // Index first: a pack without index is still an orphan GC finds.
                    repo.delete(&pack::pack_index_key(id))?;
                    repo.delete(&pack::pack_key(id))?;
                    Progress::add(&progress.bytes_read, *size);
                    Progress::add(&progress.bytes_written, *size);
                    if *size > 0 {
                        report.packs_removed += 1;
                        report.bytes_removed += size;
                    }
                }
                // Its progress counts when it is repacked below.
                Action::Repack => to_repack.push(Candidate { id: *id, size: *size, entries: entries.clone() }),
            }
        }
        repack(ds, to_repack, &marked, progress, &mut report, &mut log)?;
        // Fixed indexes no snapshot uses.
        for key in &unused_indexes {
            if actionable_indexes.contains(key) && !index_keys.contains(key) {
                repo.delete(key)?;
                report.indexes_removed += 1;
            }
        }
        // Temporary files of interrupted writes (local directories), by age on
        // the storage's clock, and only while no backup runs (its writes in
        // flight are there).
        if running.is_empty() {
            let cutoff = now.checked_sub(opts.grace + MTIME_SLACK).unwrap_or(SystemTime::UNIX_EPOCH);
            for obj in repo.list("tmp/")? {
                if obj.modified < cutoff {
                    repo.delete(&obj.key)?;
                    report.temp_files_removed += 1;
                }
            }
        }
        // Plans before the previous one are of no use any more.
        if let Some((prev, _)) = &previous {
            for seq in gc_plan::plan_seqs(repo)?.into_iter().filter(|&s| s < prev.seq) {
                repo.delete(&gc_plan::plan_key(seq))?;
            }
        }
        Ok(())
    })();
    let mut seg = index_log::Segment {
        version: 1,
        removed: sorted_hex(log.removed.iter()),
        added: sorted_hex(log.added.iter()),
        gc_plan: Some(plan.seq),
        ..index_log::Segment::default()
    };
    match index_log::append(repo, None, &mut seg) {
        // Compaction (under the GC lock): the segments older than the
        // newest `keep_segments()` go, in ascending order; a cache behind
        // them lists every pack index (see `index_log::compact`).
        Ok(Some(record)) => {
            let upto = record.saturating_sub(index_log::keep_segments());
            if upto > 0 {
                match index_log::compact(repo, upto) {
                    Ok(n) => report.log_segments_removed = n,
                    Err(e) => tracing::warn!(plan = plan.seq, error = %e, "compacting the index log"),
                }
            }
        }
        Ok(None) => {}
        // Caches then list every pack index once the next GC has run.
        Err(e) => tracing::warn!(plan = plan.seq, error = %e, "this GC's index log record was not written"),
    }
    outcome?;
    drop(lock);
    Ok(report)
}

/// What a GC did to packs, for its index log record.
#[derive(Default)]
struct LogRecord {
    removed: Vec<Digest>,
    added: Vec<Digest>,
}

fn unused_bytes(entries: &[PackEntry], marked: &HashSet<Digest>) -> u64 {
    entries.iter().filter(|e| !marked.contains(&e.digest)).map(|e| e.stored_len as u64).sum()
}

/// What a pack of `size` bytes with `entries` is under the mark `marked`.
fn classify(entries: &[PackEntry], size: u64, marked: &HashSet<Digest>) -> PackNow {
    if !entries.iter().any(|e| marked.contains(&e.digest)) {
        PackNow::Unused
    } else if unused_bytes(entries, marked) * 100 >= size * REPACK_MIN_UNUSED_PERCENT {
        PackNow::Repack
    } else {
        PackNow::Keep
    }
}

/// Whether the lease at `key` is still live (gone or unreadable: no).
fn lease_live(repo: &dyn Repository, clock: &mut ServerClock<'_>, key: &str) -> Result<bool> {
    let Some(info) = repo.stat(key)? else { return Ok(false) };
    let body = match repo.get(key) {
        Ok(b) => b,
        Err(EngineError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    match serde_json::from_slice::<LeaseInfo>(&body) {
        Ok(l) => clock.is_live(&l, info.modified),
        Err(_) => Ok(false),
    }
}

fn sorted_hex<'a>(ids: impl Iterator<Item = &'a Digest>) -> Vec<String> {
    let mut v: Vec<String> = ids.map(|d| d.to_hex()).collect();
    v.sort_unstable();
    v
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
    progress: &Progress,
    report: &mut GcReport,
    log: &mut LogRecord,
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
            retire(ds, full, std::mem::take(&mut sources), progress, report, log)?;
        }
    }
    if !sources.is_empty() {
        retire(ds, builder, sources, progress, report, log)?;
    }
    Ok(())
}

/// Writes one repacked pack, then removes the old packs it replaces.
fn retire(
    ds: &Datastore,
    new: PackBuilder,
    sources: Vec<(Digest, u64)>,
    progress: &Progress,
    report: &mut GcReport,
    log: &mut LogRecord,
) -> Result<()> {
    let repo = ds.repo.as_ref();
    let mut written = 0;
    if !new.is_empty() {
        let (id, n) = pack::write(repo, ds.crypt.as_deref(), &new.data, &new.entries)?;
        log.added.push(id);
        written = n;
        report.packs_written += 1;
        report.bytes_written += written;
    }
    let mut removed = 0;
    for (id, size) in sources {
        let key = pack::pack_key(&id);
        // No backup can be using it (it was a candidate of a plan GC may act on).
        if repo.stat(&key)?.is_some() {
            log.removed.push(id);
            repo.delete(&pack::pack_index_key(&id))?;
            repo.delete(&key)?;
            report.packs_removed += 1;
            report.packs_repacked += 1;
            report.bytes_removed += size;
            removed += size;
        }
    }
    Progress::add(&progress.bytes_written, removed.saturating_sub(written));
    Ok(())
}
