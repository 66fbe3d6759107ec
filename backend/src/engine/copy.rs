//! Copy of one restore point from one repository to another (3-2-1 copies):
//! only the chunks the target lacks are sent, and the copy is checked at the
//! target before it becomes visible there.
//!
//! The target gets the snapshot under the same name and id (catalog ids stay
//! stable). A copy is a write like a backup and follows the same rules:
//!
//! * it holds a backup lease on the target from before it loads the target's
//!   chunk map until its manifest is written, and reads the newest GC plan
//!   after putting the lease ([`super::gc_plan`]): it never counts a chunk of
//!   a GC candidate as present, and no pack or fixed index it writes lands on
//!   a candidate's key. Before the manifest every target pack it relied on
//!   must still exist, checked when a GC made a plan since
//!   ([`super::gc_plan::check_reused`]; else the attempt starts over, at
//!   most 5 times);
//! * packs, then their pack indexes, then the fixed indexes, and the manifest
//!   last: a copy killed at any point leaves no snapshot at the target, only
//!   orphans a GC of the target removes, and the next copy completes;
//! * before the manifest is published every chunk of the snapshot is read
//!   back from the target, decoded and re-hashed, and its fixed indexes
//!   checked ([`verify::verify_manifest`]); after it, the manifest is read
//!   back. Any problem fails the copy with no snapshot visible.
//!
//! Keys: chunk ids are keyed BLAKE3 in an encrypted repository
//! ([`super::digest`]), so the ids of the same data differ between two
//! repositories with different keys (or one without). When both have no key,
//! or the same key, chunks keep their ids and their stored bytes are copied
//! as they are (after being decoded and checked at the source), unless they
//! were compressed with a chunk dictionary the target does not share. When
//! the keys differ every chunk is decoded at the source, hashed with the
//! target's id key, and compressed and encrypted for the target; the fixed
//! indexes are rewritten with the target's ids. The target is a
//! self-contained repository readable with only its own key. To avoid reading
//! every chunk again for the next restore point of the same VM, the previous
//! restore point present in both repositories gives the mapping from source
//! to target ids of the chunks it holds.
//!
//! A target without a chunk dictionary adopts the source's (stored sealed
//! with the target's key), so dictionary-compressed chunks copy as they are.
//!
//! The source snapshot is pinned ([`lease::pin`]) while it is read, so a
//! prune or GC at the source cannot take it away mid-copy.
//!
//! With [`CopyOptions::object_lock`] the target storage locks every object
//! of the copy, then its manifest, as a backup does ([`object_lock`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backup::{put_index_avoiding, BackupOptions};
use super::chunk_codec::{self, FLAG_DICT, FLAG_ZSTD};
use super::chunk_dict::{self, ChunkDict, Trainer};
use super::chunk_store::{coalesce, ChunkLoc, ChunkStore, Span};
use super::datastore::Datastore;
use super::digest::Digest;
use super::error::{EngineError, Result};
use super::fixed_index::FixedIndex;
use super::gc_plan::{self, Avoid};
use super::lease::{self, Lease, LOCK_PREFIX};
use super::manifest::{self, Manifest};
use super::object_lock::{self, Locking};
use super::pack::{self, PackBuilder};
use super::progress::Progress;
use super::repository::{LockMode, Repository, WriteObserver, WriteTap};
use super::verify;

/// What a copy is asked to do besides copying.
#[derive(Clone, Default)]
pub struct CopyOptions {
    /// The copy's `immutable_until` (Sendense refuses prune and forget
    /// before). `None` keeps the source manifest's value.
    pub immutable_until: Option<DateTime<Utc>>,
    /// Have the target storage lock the copy's objects until
    /// `immutable_until` (S3 Object Lock in this mode): the target
    /// repository's lock mode, from the catalog.
    pub object_lock: Option<LockMode>,
    /// Decode/encode threads (0: one per core).
    pub workers: usize,
    /// Told when the copy enters a phase (for progress reports).
    pub on_phase: Option<Arc<dyn Fn(CopyPhase) + Send + Sync>>,
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("immutable_until", &self.immutable_until)
            .field("object_lock", &self.object_lock)
            .field("workers", &self.workers)
            .finish()
    }
}

/// The phases of a copy; the progress counters restart with each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyPhase {
    /// Chunks read at the source and sent to the target.
    Copy,
    /// Every chunk of the copy read back from the target and re-hashed.
    Verify,
}

/// What a copy did (the CLI's `--json` line, see `engine::command`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CopyStats {
    pub name: String,
    pub snapshot: String,
    /// The target had the snapshot already: nothing was sent, it was verified.
    pub already_present: bool,
    /// Distinct non-zero chunks of the snapshot.
    pub chunks_total: u64,
    /// Chunks this copy stored at the target.
    pub chunks_sent: u64,
    /// Chunks the target held already (not sent).
    pub chunks_present: u64,
    /// All-zero chunk positions (never stored).
    pub chunks_zero: u64,
    /// Sum of the disks' sizes.
    pub bytes_logical: u64,
    /// Stored bytes read from the source.
    pub bytes_read: u64,
    /// Bytes of the objects written to the target (packs, pack indexes,
    /// fixed indexes, dictionary, manifest).
    pub bytes_sent: u64,
    pub objects_written: u64,
    /// Chunks were decoded and encoded again for the target's key.
    pub reencoded: bool,
    /// The copy's `immutable_until` (RFC 3339).
    pub immutable_until: Option<String>,
    /// Retention requests sent to the target storage.
    pub objects_locked: u64,
    /// Requests sent to the source and to the target storage by this copy
    /// (verify included); `null` for a local directory.
    pub requests_source: Option<u64>,
    pub requests_target: Option<u64>,
    /// Chunks and plain bytes read back from the target and re-hashed.
    pub verified_chunks: u64,
    pub verified_bytes: u64,
    pub duration_ms: u64,
}

/// How often a copy starts over when a GC at the target swept a pack it
/// counted on (see the module docs).
const VANISHED_PACK_ATTEMPTS: usize = 5;
/// Uploaders at once on an object store (as a backup).
const MAX_UPLOADS: usize = 4;

/// Copies snapshot `name`/`which` (an id or `latest`) from `src` to `dst`
/// and verifies it there; see the module docs. `progress.control` pauses
/// (between chunks) and cancels (no snapshot is written at the target).
pub fn copy_snapshot(
    src: &Datastore,
    dst: &Datastore,
    name: &str,
    which: &str,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<CopyStats> {
    let started = Instant::now();
    if !manifest::valid_name(name) || (which != "latest" && !manifest::valid_name(which)) {
        return Err(EngineError::Invalid(format!("snapshot '{name}/{which}' (use letters, digits, '.', '_', '-')")));
    }
    let m = src.resolve(name, which)?;
    let workers = if opts.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    } else {
        opts.workers
    };
    let mut stats = CopyStats {
        name: m.name.clone(),
        snapshot: m.id.clone(),
        bytes_logical: m.disks.iter().map(|d| d.size).sum(),
        reencoded: !same_ids(src, dst),
        ..Default::default()
    };
    let requests = |r: &dyn Repository| r.request_counts().map(|c| c.total());
    let (src_before, dst_before) = (requests(src.repo.as_ref()), requests(dst.repo.as_ref()));
    let count_requests = |stats: &mut CopyStats| {
        stats.requests_source = requests(src.repo.as_ref()).zip(src_before).map(|(a, b)| a - b);
        stats.requests_target = requests(dst.repo.as_ref()).zip(dst_before).map(|(a, b)| a - b);
    };
    let phase = |p: CopyPhase| {
        if let Some(f) = &opts.on_phase {
            f(p);
        }
    };

    // Already there: nothing to send, check it.
    match dst.load_manifest(&m.name, &m.id) {
        Ok(there) => {
            phase(CopyPhase::Verify);
            progress.reset_counters();
            let r = verify::verify_snapshot(dst, &m.name, &m.id, workers, progress)?;
            fail_on_problems(dst, &there, &r, "is at the target already but")?;
            stats.already_present = true;
            stats.immutable_until = there.immutable_until.clone();
            stats.verified_chunks = r.chunks_checked as u64;
            stats.verified_bytes = r.bytes_checked;
            let (total, zero) = count_chunks(src, &m)?;
            stats.chunks_total = total;
            stats.chunks_present = total;
            stats.chunks_zero = zero;
            count_requests(&mut stats);
            stats.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(stats);
        }
        Err(EngineError::SnapshotNotFound(_)) => {}
        Err(e) => return Err(e),
    }

    let until = opts.immutable_until.or_else(|| parse_time(m.immutable_until.as_deref()));
    if let Some(mode) = opts.object_lock {
        if until.is_none_or(|u| u <= Utc::now()) {
            return Err(EngineError::Invalid(format!(
                "a copy locked by the target storage ({mode}) needs an immutable-until date in the future"
            )));
        }
    }
    stats.immutable_until = until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));

    // Every object written to the target is counted; storage locks, when
    // asked, record them too (`object_lock::prepare` wraps the repository).
    let counting = Arc::new(WriteTap { inner: dst.repo.clone(), observer: Counting::default() });
    let counted = Datastore { repo: counting.clone(), config: dst.config.clone(), crypt: dst.crypt.clone(), hasher: dst.hasher.clone() };
    let mut bopts = BackupOptions::new(&m.name);
    bopts.object_lock = opts.object_lock;
    bopts.immutable_days = until.filter(|_| opts.object_lock.is_some()).map(|u| {
        let secs = (u - Utc::now()).num_seconds().max(1);
        ((secs + 86_399) / 86_400) as u32
    });
    let locking = object_lock::prepare(&counted, &bopts)?;
    let target = locking.as_ref().map_or(&counted, |l| &l.ds);

    // The source snapshot stays while it is read.
    let pin_id = format!("copy-{}", uuid::Uuid::new_v4());
    let pin = match lease::pin(src, &m.name, &m.id, &pin_id) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(snapshot = %format!("{}/{}", m.name, m.id), error = %e, "could not pin the source snapshot; copying without");
            None
        }
    };
    let mut attempt = 1;
    let result = loop {
        if let Some(l) = &locking {
            l.restart();
        }
        phase(CopyPhase::Copy);
        match copy_once(src, target, locking.as_ref(), &m, until, workers, progress, &phase, &mut stats) {
            Err(EngineError::PackVanished { pack }) if attempt < VANISHED_PACK_ATTEMPTS => {
                tracing::warn!(%pack, attempt, "a GC at the target swept a pack this copy counted on; starting over");
                progress.reset_counters();
                attempt += 1;
            }
            r => break r,
        }
    };
    if let Some(key) = pin {
        if let Err(e) = lease::unpin(src.repo.as_ref(), &key) {
            tracing::warn!(%key, error = %e, "releasing the source snapshot's pin");
        }
    }
    result?;
    stats.objects_written = counting.observer.objects.load(Ordering::Relaxed);
    stats.bytes_sent = counting.observer.bytes.load(Ordering::Relaxed);
    count_requests(&mut stats);
    stats.duration_ms = started.elapsed().as_millis() as u64;
    Ok(stats)
}

/// Whether chunks have the same ids in both repositories (no key in
/// either, or the same key).
fn same_ids(src: &Datastore, dst: &Datastore) -> bool {
    match (&src.crypt, &dst.crypt) {
        (None, None) => true,
        (Some(a), Some(b)) => a.check_value() == b.check_value(),
        _ => false,
    }
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc))
}

/// Distinct non-zero chunks and zero chunk positions of `m`'s disks.
fn count_chunks(ds: &Datastore, m: &Manifest) -> Result<(u64, u64)> {
    let label = format!("{}/{}", m.name, m.id);
    let mut seen = HashSet::new();
    let mut zero = 0;
    for d in &m.disks {
        for digest in ds.load_index(&label, &d.index)?.digests {
            if digest.is_zero_marker() {
                zero += 1;
            } else {
                seen.insert(digest);
            }
        }
    }
    Ok((seen.len() as u64, zero))
}

fn fail_on_problems(dst: &Datastore, m: &Manifest, r: &verify::VerifyReport, what: &str) -> Result<()> {
    if r.errors.is_empty() {
        return Ok(());
    }
    let first: Vec<&str> = r.errors.iter().take(3).map(|s| s.as_str()).collect();
    Err(EngineError::Pipeline(format!(
        "copy of snapshot {}/{} to {}: the copy {what} fails verification ({} problems: {})",
        m.name,
        m.id,
        dst.repo.describe(),
        r.errors.len(),
        first.join("; ")
    )))
}

/// A chunk to fetch from the source.
struct Want {
    digest: Digest,
    loc: ChunkLoc,
}

/// What a worker made of one source chunk.
enum Out {
    /// The target holds it already under `dst` (in target pack `pack`).
    Present { src: Digest, dst: Digest, pack: u32 },
    /// Stored bytes for the target.
    New { src: Digest, dst: Digest, stored: Vec<u8>, flags: u8, raw_len: u32 },
}

/// How chunks become the target's (shared by the workers).
struct Codec<'a> {
    src_store: &'a ChunkStore,
    dst_store: &'a ChunkStore,
    target: &'a Datastore,
    same_ids: bool,
    same_dict: bool,
    trainer: &'a Trainer,
}

impl Codec<'_> {
    fn convert(&self, w: &Want, stored: Option<&[u8]>, label: &str) -> Result<Out> {
        let raw = match stored {
            Some(s) => self.src_store.decode_at(&w.digest, &w.loc, s)?,
            // The pack went (a GC at the source repacked it): find the chunk again.
            None => self.src_store.read_chunk(&w.digest, label)?,
        };
        let dst_digest = if self.same_ids { w.digest } else { self.target.hasher.digest(&raw) };
        if let Some(loc) = self.dst_store.get(&dst_digest) {
            return Ok(Out::Present { src: w.digest, dst: dst_digest, pack: loc.pack });
        }
        let raw_len = raw.len() as u32;
        if let Some(s) = stored.filter(|_| self.same_ids && (w.loc.flags & FLAG_DICT == 0 || self.same_dict)) {
            return Ok(Out::New { src: w.digest, dst: dst_digest, stored: s.to_vec(), flags: w.loc.flags, raw_len });
        }
        let dict = self.trainer.current();
        let (stored, flags) = chunk_codec::encode(&raw, &dst_digest, self.target.crypt.as_deref(), dict)
            .map_err(|reason| EngineError::Pipeline(format!("chunk {dst_digest}: {reason}")))?;
        if dict.is_none() && flags & FLAG_ZSTD != 0 {
            self.trainer.offer(&raw, self.target.repo.as_ref(), self.target.crypt.as_deref())?;
        }
        Ok(Out::New { src: w.digest, dst: dst_digest, stored, flags, raw_len })
    }
}

/// One attempt: everything but the retries of [`copy_snapshot`].
#[allow(clippy::too_many_arguments)]
fn copy_once(
    src: &Datastore,
    target: &Datastore,
    locking: Option<&Locking>,
    m: &Manifest,
    until: Option<DateTime<Utc>>,
    workers: usize,
    progress: &Progress,
    phase: &dyn Fn(CopyPhase),
    stats: &mut CopyStats,
) -> Result<()> {
    let label = format!("{}/{}", m.name, m.id);
    let mut src_indexes = Vec::with_capacity(m.disks.len());
    for d in &m.disks {
        let idx = src.load_index(&label, &d.index)?;
        if idx.size != d.size {
            return Err(EngineError::CorruptIndex {
                snapshot: label,
                key: d.index.clone(),
                reason: format!("index covers {} bytes, manifest says {}", idx.size, d.size),
            });
        }
        src_indexes.push(idx);
    }
    let mut distinct: Vec<Digest> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut zero = 0u64;
    for idx in &src_indexes {
        for d in &idx.digests {
            if d.is_zero_marker() {
                zero += 1;
            } else if seen.insert(*d) {
                distinct.push(*d);
            }
        }
    }
    drop(seen);
    stats.chunks_total = distinct.len() as u64;
    stats.chunks_zero = zero;
    stats.chunks_sent = 0;
    stats.chunks_present = 0;
    stats.bytes_read = 0;
    Progress::add(&progress.chunks_zero, zero);
    let same_ids = !stats.reencoded;

    // From here on the target is written: lease first, then the newest GC
    // plan, then the chunk map without the plan's candidates.
    let repo: &dyn Repository = target.repo.as_ref();
    let lease = Lease::acquire_backup(target.repo.clone(), Vec::new())?;
    let newest = gc_plan::newest_plan(repo)?;
    let plan_read = newest.as_ref().map(|(p, _)| p.seq);
    let avoid = newest.map(|(p, _)| Avoid::of(&p)).unwrap_or_default();
    let mut dst_store = target.load_chunk_store_after_plan(plan_read)?;
    let dst_dict = chunk_dict::load_for_backup(repo, target.crypt.as_deref(), &dst_store)?;
    dst_store.avoid_packs(&avoid.packs);
    let mut src_store = src.load_chunk_store()?;
    // Every chunk to copy in the source's cache, or every pack index listed first.
    src_store.relist_unless_all_known(&distinct)?;
    let src_dict = chunk_dict::load(src.repo.as_ref(), src.crypt.as_deref())?;
    // A target without a dictionary adopts the source's.
    let dst_dict: Option<Arc<ChunkDict>> = match (dst_dict, &src_dict) {
        (Some(d), _) => Some(d),
        (None, Some(s)) => Some(chunk_dict::store(repo, target.crypt.as_deref(), s.bytes.clone())?),
        (None, None) => None,
    };
    let same_dict = match (&src_dict, &dst_dict) {
        (Some(a), Some(b)) => a.id == b.id,
        _ => false,
    };
    let trainer = Trainer::new(dst_dict);

    // Source id -> target id of the chunks the target holds already.
    // Source id -> target id; with the same ids only the chunks sent (an
    // id the target neither holds nor got is a bug, caught below).
    let mut mapping: HashMap<Digest, Digest> = HashMap::with_capacity(if same_ids { 0 } else { distinct.len() });
    let mut touched: HashSet<u32> = HashSet::new();
    let known = if same_ids { HashMap::new() } else { known_mapping(src, target, m, &dst_store) };
    let mut wants = Vec::new();
    for d in &distinct {
        let dst_digest = if same_ids { Some(*d) } else { known.get(d).copied() };
        if let Some(loc) = dst_digest.and_then(|x| dst_store.get(&x).map(|l| (x, l.pack))) {
            if !same_ids {
                mapping.insert(*d, loc.0);
            }
            touched.insert(loc.1);
            stats.chunks_present += 1;
            continue;
        }
        let loc = src_store
            .get(d)
            .ok_or_else(|| EngineError::MissingChunk { snapshot: format!("{label} in {}", src.repo.describe()), digest: d.to_hex() })?;
        wants.push(Want { digest: *d, loc });
    }
    drop(known);
    Progress::add(&progress.chunks_reused, stats.chunks_present);
    Progress::add(&progress.bytes_total, wants.iter().map(|w| w.loc.raw_len as u64).sum());
    let spans = plan_spans(&mut wants);
    stage("leased");

    let codec = Codec { src_store: &src_store, dst_store: &dst_store, target, same_ids, same_dict, trainer: &trainer };
    let sent = transfer(&codec, &wants, &spans, &label, &avoid, workers, progress, &mut mapping, &mut touched, stats)?;
    tracing::debug!(bytes = sent, "packs written");

    // Target packs counted on must still exist (the GC plan's safety net,
    // looked at only when a GC made a plan since).
    let mut reused: Vec<Digest> = touched.into_iter().map(|p| dst_store.packs[p as usize]).collect();
    reused.sort_unstable_by_key(|d| d.0);
    if let Err(e) = gc_plan::check_reused(repo, plan_read, &reused, dst_store.packs.len()) {
        if matches!(e, EngineError::PackVanished { .. }) {
            dst_store.distrust_cache();
        }
        return Err(e);
    }
    // The packs sent are durable: the index log segment naming them.
    dst_store.publish_written();

    // The fixed indexes in the target's ids, then the manifest.
    let mut copy = m.clone();
    let mut dst_indexes = Vec::with_capacity(src_indexes.len());
    for (disk, idx) in copy.disks.iter_mut().zip(&src_indexes) {
        let mut out = FixedIndex { chunk_size: idx.chunk_size, size: idx.size, digests: Vec::with_capacity(idx.digests.len()) };
        for d in &idx.digests {
            if d.is_zero_marker() {
                out.digests.push(*d);
            } else {
                let t = if same_ids && !mapping.contains_key(d) { dst_store.contains(d).then_some(d) } else { mapping.get(d) };
                let t = t.ok_or_else(|| {
                    EngineError::Pipeline(format!("copy of {label}: chunk {d} was neither found at the target nor sent"))
                })?;
                out.digests.push(*t);
            }
        }
        let (key, _) = put_index_avoiding(target, &out, &avoid)?;
        disk.index = key;
        dst_indexes.push(out);
    }
    copy.immutable_until = until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));

    // Everything but the manifest is at the target: read it all back.
    phase(CopyPhase::Verify);
    progress.reset_counters();
    let r = verify::verify_manifest(target, &copy, workers, progress)?;
    fail_on_problems(target, &copy, &r, "written (no snapshot was published)")?;
    stats.verified_chunks = r.chunks_checked as u64;
    stats.verified_bytes = r.bytes_checked;

    if let Some(l) = locking {
        let indexes: Vec<&FixedIndex> = dst_indexes.iter().collect();
        let n = l.lock_objects(&dst_store, &indexes, &copy)?;
        stats.objects_locked = n as u64;
    }
    progress.control.checkpoint()?;
    lease.check_fresh()?;
    stage("before-manifest");
    target.put_manifest(&copy)?;
    if let Some(l) = locking {
        l.lock_manifest(&copy)?;
        stats.objects_locked += 1;
    }
    let back = target.load_manifest(&copy.name, &copy.id)?;
    if back != copy {
        return Err(EngineError::Pipeline(format!(
            "copy of {label} to {}: the manifest read back differs from the one written",
            repo.describe()
        )));
    }
    drop(lease);
    Ok(())
}

/// Source id -> target id of chunks in the newest restore point of the same
/// name present in both repositories (copied before), position by
/// position, for target ids the target's chunk map holds. Empty when there
/// is none or it cannot be read (the chunks are then read and hashed).
fn known_mapping(src: &Datastore, dst: &Datastore, m: &Manifest, dst_store: &ChunkStore) -> HashMap<Digest, Digest> {
    let mut out = HashMap::new();
    let both = || -> Result<Option<String>> {
        let at_dst: HashSet<String> = dst.list_snapshots(Some(&m.name))?.into_iter().map(|(_, id)| id).collect();
        Ok(src.list_snapshots(Some(&m.name))?.into_iter().map(|(_, id)| id).rev().find(|id| *id != m.id && at_dst.contains(id)))
    };
    let base = match both() {
        Ok(Some(id)) => id,
        Ok(None) => return out,
        Err(e) => {
            tracing::info!(error = %e, "no earlier copy to map chunk ids from");
            return out;
        }
    };
    let pairs = || -> Result<Vec<(FixedIndex, FixedIndex)>> {
        let (a, b) = (src.load_manifest(&m.name, &base)?, dst.load_manifest(&m.name, &base)?);
        let label = format!("{}/{base}", m.name);
        let mut v = Vec::new();
        for da in &a.disks {
            let Some(db) = b.disks.iter().find(|x| x.name == da.name) else { continue };
            let (ia, ib) = (src.load_index(&label, &da.index)?, dst.load_index(&label, &db.index)?);
            if ia.size == ib.size && ia.chunk_size == ib.chunk_size {
                v.push((ia, ib));
            }
        }
        Ok(v)
    };
    match pairs() {
        Ok(v) => {
            for (a, b) in v {
                for (x, y) in a.digests.iter().zip(&b.digests) {
                    if !x.is_zero_marker() && !y.is_zero_marker() && dst_store.contains(y) {
                        out.insert(*x, *y);
                    }
                }
            }
        }
        Err(e) => tracing::info!(error = %e, base = %base, "earlier copy unreadable; chunk ids are computed again"),
    }
    out
}

/// Sorts `wants` by source pack and offset and groups neighbours into reads.
fn plan_spans(wants: &mut [Want]) -> Vec<Span> {
    wants.sort_unstable_by_key(|w| (w.loc.pack, w.loc.offset));
    coalesce(wants.iter().map(|w| &w.loc))
}

/// Reads the spans on worker threads (decode, check, convert), packs the
/// new chunks on this thread and uploads full packs (each pack, then its
/// index) on up to [`MAX_UPLOADS`] threads. Returns the pack bytes written.
#[allow(clippy::too_many_arguments)]
fn transfer(
    codec: &Codec,
    wants: &[Want],
    spans: &[Span],
    label: &str,
    avoid: &Avoid,
    workers: usize,
    progress: &Progress,
    mapping: &mut HashMap<Digest, Digest>,
    touched: &mut HashSet<u32>,
    stats: &mut CopyStats,
) -> Result<u64> {
    if spans.is_empty() {
        return Ok(0);
    }
    let target = codec.target;
    let threads = workers.max(codec.src_store.repo.parallel_requests()).clamp(1, spans.len());
    let uploads = target.repo.parallel_requests().clamp(1, MAX_UPLOADS);
    let pack_size = target.config.pack_size as usize;
    let stop = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let read = AtomicU64::new(0);
    let (res_tx, res_rx) = sync_channel::<Result<Vec<Out>>>(threads * 2);
    let (pack_tx, pack_rx) = sync_channel::<PackBuilder>(uploads);
    let pack_rx = Mutex::new(pack_rx);
    let (stop, next, read, pack_rx) = (&stop, &next, &read, &pack_rx);

    let result = std::thread::scope(|s| -> Result<u64> {
        let mut uploaders = Vec::with_capacity(uploads);
        for _ in 0..uploads {
            let dst_store = codec.dst_store;
            uploaders.push(s.spawn(move || upload_packs(target.repo.as_ref(), target.crypt.as_deref(), dst_store, avoid, pack_rx, stop)));
        }
        for _ in 0..threads {
            let tx = res_tx.clone();
            s.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(sp) = spans.get(i) else { return };
                let r = convert_span(codec, sp, &wants[sp.first..sp.end], label, progress, read);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    return;
                }
            });
        }
        drop(res_tx);
        let mut pack = PackBuilder::with_capacity(pack_size + target.config.chunk_size as usize);
        let mut sent: HashSet<Digest> = HashSet::new();
        let mut failure: Option<EngineError> = None;
        for batch in res_rx.iter() {
            let outs = match batch {
                Ok(o) => o,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            for out in outs {
                match out {
                    Out::Present { src, dst, pack: p } => {
                        if src != dst {
                            mapping.insert(src, dst);
                        }
                        touched.insert(p);
                        stats.chunks_present += 1;
                        Progress::add(&progress.chunks_reused, 1);
                    }
                    Out::New { src, dst, stored, flags, raw_len } => {
                        mapping.insert(src, dst);
                        if sent.insert(dst) {
                            pack.add(dst, &stored, raw_len, flags);
                            stats.chunks_sent += 1;
                            Progress::add(&progress.chunks_new, 1);
                            Progress::add(&progress.bytes_written, stored.len() as u64);
                        }
                    }
                }
            }
            if pack.len() >= pack_size {
                let full = std::mem::replace(&mut pack, PackBuilder::with_capacity(pack_size + target.config.chunk_size as usize));
                if pack_tx.send(full).is_err() || stop.load(Ordering::Relaxed) {
                    failure = Some(EngineError::Pipeline("uploader stopped".into()));
                    break;
                }
            }
        }
        if failure.is_none() && !pack.is_empty() && pack_tx.send(pack).is_err() {
            failure = Some(EngineError::Pipeline("uploader stopped".into()));
        }
        if failure.is_some() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(res_rx);
        drop(pack_tx);
        let mut written = 0u64;
        let mut upload_err = None;
        for u in uploaders {
            match u.join() {
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => {
                    upload_err.get_or_insert(e);
                }
                Err(_) => {
                    upload_err.get_or_insert(EngineError::Pipeline("uploader thread panicked".into()));
                }
            }
        }
        // The uploader's own error says more than "uploader stopped".
        match (upload_err, failure) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(written),
        }
    });
    stats.bytes_read = read.load(Ordering::Relaxed);
    result
}

/// One coalesced read of a source pack; each chunk decoded, checked and
/// converted. A pause holds before each chunk.
fn convert_span(codec: &Codec, sp: &Span, wants: &[Want], label: &str, progress: &Progress, read: &AtomicU64) -> Result<Vec<Out>> {
    progress.control.checkpoint()?;
    let buf = match codec.src_store.read_span(sp.pack, sp.offset, sp.len as usize) {
        Ok(b) => {
            read.fetch_add(b.len() as u64, Ordering::Relaxed);
            Some(b)
        }
        Err(EngineError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(wants.len());
    for w in wants {
        progress.control.checkpoint()?;
        let stored = buf.as_ref().map(|b| {
            let at = (w.loc.offset - sp.offset) as usize;
            &b[at..at + w.loc.stored_len as usize]
        });
        out.push(codec.convert(w, stored, label)?);
        Progress::add(&progress.bytes_read, w.loc.raw_len as u64);
    }
    Ok(out)
}

fn upload_packs(
    repo: &dyn Repository,
    crypt: Option<&super::crypto::CryptConfig>,
    dst_store: &ChunkStore,
    avoid: &Avoid,
    rx: &Mutex<Receiver<PackBuilder>>,
    stop: &AtomicBool,
) -> Result<u64> {
    let mut written = 0u64;
    let mut failed = None;
    // Receives until the writer hangs up, even after a failure (the writer
    // may be waiting to hand over a pack); packs after a failure are dropped.
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(mut job) = next else { break };
        if failed.is_some() || stop.load(Ordering::Relaxed) {
            continue;
        }
        let r = (|| -> Result<u64> {
            // Never onto a GC candidate's key: trailing bytes no entry
            // covers give the pack another id (as a backup does).
            while !avoid.packs.is_empty() && avoid.packs.contains(&Digest(*blake3::hash(&job.data).as_bytes())) {
                let mut pad = [0u8; 16];
                getrandom::fill(&mut pad).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
                job.data.extend_from_slice(&pad);
            }
            let (id, n) = pack::write(repo, crypt, &job.data, &job.entries)?;
            dst_store.note_written(id);
            Ok(n)
        })();
        match r {
            Ok(n) => written += n,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                failed = Some(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(written),
    }
}

/// Test hook, like [`super::backup::set_stage_hook`]: `leased` (lease held,
/// plan and chunk maps loaded, nothing sent yet) and `before-manifest`.
#[doc(hidden)]
pub fn set_stage_hook(hook: Option<StageHook>) {
    *stage_hook().lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

/// What [`set_stage_hook`] takes.
pub type StageHook = Arc<dyn Fn(&str) + Send + Sync>;

fn stage_hook() -> &'static Mutex<Option<StageHook>> {
    static H: std::sync::OnceLock<Mutex<Option<StageHook>>> = std::sync::OnceLock::new();
    H.get_or_init(Mutex::default)
}

fn stage(name: &str) {
    let hook = stage_hook().lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(h) = hook {
        h(name);
    }
}

/// Counts the objects written to the target (not leases or probes) and
/// their bytes, through a [`WriteTap`].
#[derive(Default)]
struct Counting {
    objects: AtomicU64,
    bytes: AtomicU64,
}

impl WriteObserver for Counting {
    fn written(&self, key: &str, len: usize, created: bool) {
        if created && !key.starts_with(LOCK_PREFIX) {
            self.objects.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
    }
}
