//! Backup of one or more disk images into a snapshot.
//!
//! Pipeline (bounded `sync_channel`s, so memory does not grow with the image):
//! a reader thread reads runs of up to 16 consecutive chunks → hash/compress
//! workers (one per core) detect zero chunks, digest, and compress+encrypt only
//! chunks the store does not already hold → this thread (the writer) fills the
//! fixed index and appends new chunks to an in-memory pack → uploader
//! threads (2 on a local directory, so one pack's fsync overlaps the next
//! pack's write; up to 4 on an object store; each with its own pack) write
//! each full pack and then its pack index, create-if-absent, and hand the
//! pack's buffer back to the writer (no fresh 8 MiB to fault in per pack).
//! The fixed indexes are written while the last packs upload. Pack indexes
//! and fixed indexes are published with `put_if_absent_deferred` (their bytes
//! synced, their directories not yet) and made durable together by one
//! `sync_published`: only after every pack, pack index and fixed index is
//! durable is the manifest put (atomic replace), which makes the snapshot
//! visible.

use std::collections::HashSet;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use super::block_source::BlockSource;
use super::changed_ranges;
use super::chunk_codec;
use super::chunk_dict::{self, Trainer};
use super::chunk_store::ChunkStore;
use super::crypto::CryptConfig;
use super::datastore::Datastore;
use super::digest::{is_all_zero, Digest};
use super::error::{EngineError, Result};
use super::fixed_index::{self, FixedIndex};
use super::gc_plan::{self, Avoid};
use super::lease::Lease;
use super::manifest::{self, BackupStats, DiskEntry, Manifest};
use super::object_lock::{self, Locking};
use super::pack::{self, PackBuilder, PackEntry};
use super::progress::Progress;
use super::repository::{LockMode, Repository};

/// One disk to back up.
#[derive(Clone)]
pub struct DiskSource {
    /// Disk name inside the snapshot (`disk0`, ...).
    pub name: String,
    pub source: Arc<dyn BlockSource>,
    /// Changed ranges since the parent snapshot (CBT); `None` reads everything.
    pub changed_ranges: Option<Vec<(u64, u64)>>,
    /// The platform's changed-block-tracking token this read ends at; kept in
    /// the manifest so the next incremental asks for changes since it.
    pub cbt_token: Option<String>,
}

impl std::fmt::Debug for DiskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSource")
            .field("name", &self.name)
            .field("source", &self.source.label())
            .field("changed_ranges", &self.changed_ranges.as_ref().map(|r| r.len()))
            .field("cbt_token", &self.cbt_token)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub name: String,
    /// Parent snapshot id; `None` uses the latest snapshot of `name`.
    pub parent: Option<String>,
    pub immutable_days: Option<u32>,
    /// With `immutable_days`: have the storage itself refuse deletes of the
    /// restore point's objects (S3 Object Lock in this mode), see
    /// [`object_lock`]. The caller takes it from the repository's
    /// settings (`repositories.object_lock_mode`); `None`: immutability is
    /// Sendense's only.
    pub object_lock: Option<LockMode>,
    pub workers: usize,
    /// The VM the disks belong to, recorded in the manifest.
    pub vm: Option<shared_types::platform::VmInfo>,
    /// The VM's definition in its platform's terms, recorded in the manifest.
    pub vm_definition: Option<String>,
}

impl BackupOptions {
    pub fn new(name: &str) -> Self {
        BackupOptions {
            name: name.into(),
            parent: None,
            immutable_days: None,
            object_lock: None,
            vm: None,
            vm_definition: None,
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        }
    }
}

const RUN_CHUNKS: usize = 16;

struct Batch {
    first: usize,
    lens: Vec<usize>,
    data: Vec<u8>,
}

enum Outcome {
    Zero,
    Known(Digest),
    New { digest: Digest, stored: Vec<u8>, flags: u8, raw_len: u32 },
}

struct PackJob {
    data: Vec<u8>,
    entries: Vec<PackEntry>,
}

struct Plan {
    source: DiskSource,
    index: FixedIndex,
    chunks: Vec<usize>,
}

/// How often a backup starts over when a garbage collection swept a pack it
/// had reused (see the module docs: the final check refuses such a snapshot).
const VANISHED_PACK_ATTEMPTS: usize = 5;

/// Backs up `disks` as one snapshot. The GC plan protocol ([`gc_plan`])
/// keeps a concurrent GC off the packs this backup reuses; should one still
/// vanish (a lease judged stale, a storage without the consistency the
/// protocol needs), the final check sees it, the backup writes no manifest
/// and starts over (the source is still there, and the swept pack is no
/// longer in the chunk map), at most [`VANISHED_PACK_ATTEMPTS`] times.
pub fn backup(ds: &Datastore, opts: &BackupOptions, disks: &[DiskSource], progress: &Progress) -> Result<Manifest> {
    let locking = object_lock::prepare(ds, opts)?;
    let ds = locking.as_ref().map_or(ds, |l| &l.ds);
    let mut attempt = 1;
    loop {
        if let Some(l) = &locking {
            l.restart();
        }
        match backup_once(ds, opts, disks, progress, locking.as_ref()) {
            Err(EngineError::PackVanished { pack }) if attempt < VANISHED_PACK_ATTEMPTS => {
                tracing::warn!(%pack, attempt, "a concurrent GC swept a pack this backup reused; starting over");
                progress.reset_counters();
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn backup_once(
    ds: &Datastore,
    opts: &BackupOptions,
    disks: &[DiskSource],
    progress: &Progress,
    locking: Option<&Locking>,
) -> Result<Manifest> {
    let started = Instant::now();
    if !manifest::valid_name(&opts.name) {
        return Err(EngineError::Invalid(format!("snapshot name '{}' (use letters, digits, '.', '_', '-')", opts.name)));
    }
    if disks.is_empty() {
        return Err(EngineError::Invalid("no disk to back up".into()));
    }
    let mut seen = HashSet::new();
    for d in disks {
        if !manifest::valid_name(&d.name) || !seen.insert(d.name.clone()) {
            return Err(EngineError::Invalid(format!("disk name '{}' is invalid or repeated", d.name)));
        }
    }
    let chunk_size = ds.config.chunk_size;
    let parent = match &opts.parent {
        Some(id) => Some(ds.load_manifest(&opts.name, id)?),
        None => match ds.resolve(&opts.name, "latest") {
            Ok(m) => Some(m),
            Err(EngineError::NoSnapshots(_)) => None,
            Err(e) => return Err(e),
        },
    };
    let parent_label = parent.as_ref().map(|p| format!("{}/{}", p.name, p.id));

    // Plan every disk before writing anything: bad input leaves the repository as it was.
    let mut plans = Vec::new();
    let mut pinned = Vec::new();
    for d in disks {
        let size = d.source.size();
        let parent_disk = parent.as_ref().and_then(|p| p.disks.iter().find(|x| x.name == d.name && x.chunk_size == chunk_size));
        let parent_index = match (parent_disk, &d.changed_ranges) {
            (Some(pd), Some(_)) => {
                let idx = ds.load_index(parent_label.as_deref().unwrap_or(""), &pd.index)?;
                pinned.push(pd.index.clone());
                Some(idx)
            }
            _ => None,
        };
        if let Some(ranges) = &d.changed_ranges {
            let end = changed_ranges::extent(ranges);
            if end > size {
                return Err(EngineError::ImageTooShort { path: d.source.label().into(), actual: size, claimed: end });
            }
        }
        let (index, chunks) = match (parent_index, &d.changed_ranges) {
            (Some(pidx), Some(ranges)) => {
                let mut idx = FixedIndex::new(size, chunk_size);
                let keep = pidx.digests.len().min(idx.digests.len());
                idx.digests[..keep].copy_from_slice(&pidx.digests[..keep]);
                let mut chunks = changed_ranges::chunks_touched(ranges, chunk_size);
                // A size change re-reads the old last chunk and everything after it.
                if pidx.size != size {
                    let from = (pidx.size.min(size) / chunk_size as u64) as usize;
                    chunks.extend(from..idx.digests.len());
                    chunks.sort_unstable();
                    chunks.dedup();
                }
                chunks.retain(|&c| c < idx.digests.len());
                (idx, chunks)
            }
            _ => {
                let idx = FixedIndex::new(size, chunk_size);
                let n = idx.digests.len();
                (idx, (0..n).collect())
            }
        };
        plans.push(Plan { source: d.clone(), index, chunks });
    }

    // From here on the repository is written: hold a backup lease first,
    // then read the newest GC plan and avoid its candidates (see `gc_plan`).
    let repo: &dyn Repository = ds.repo.as_ref();
    let lease = Lease::acquire_backup(ds.repo.clone(), pinned)?;
    let newest = gc_plan::newest_plan(repo)?;
    let plan_read = newest.as_ref().map(|(p, _)| p.seq);
    let avoid = Arc::new(newest.map(|(p, _)| Avoid::of(&p)).unwrap_or_default());
    let mut store = ds.load_chunk_store_after_plan(plan_read)?;
    let trainer = Trainer::new(chunk_dict::load_for_backup(repo, ds.crypt.as_deref(), &store)?);
    store.avoid_packs(&avoid.packs);
    // Packs this backup reuses (checked again before the manifest).
    let touched: Arc<Mutex<HashSet<u32>>> = Arc::default();
    // Chunks an incremental copies from its parent's index are reused too:
    // one no pack holds any more (or only a GC candidate) is read again,
    // once the index cache, if it read only the index log, has listed
    // every pack index (a pack whose log segment it never saw).
    let parent_chunks = |store: &ChunkStore, p: &Plan, used: &mut HashSet<u32>| -> Vec<usize> {
        let mut again = Vec::new();
        if p.chunks.len() == p.index.digests.len() {
            return again;
        }
        let mut read: Vec<bool> = vec![false; p.index.digests.len()];
        for &c in &p.chunks {
            read[c] = true;
        }
        for (c, d) in p.index.digests.iter().enumerate() {
            if read[c] || d.is_zero_marker() {
                continue;
            }
            match store.get(d) {
                Some(loc) => {
                    used.insert(loc.pack);
                }
                None => again.push(c),
            }
        }
        again
    };
    let mut relisted = false;
    let agains: Vec<Vec<usize>> = loop {
        let mut used = touched.lock().unwrap();
        used.clear();
        let agains: Vec<Vec<usize>> = plans.iter().map(|p| parent_chunks(&store, p, &mut used)).collect();
        drop(used);
        // Chunks in a GC candidate's pack are known, only avoided: no listing for them.
        let unknown = plans.iter().zip(&agains).any(|(p, a)| a.iter().any(|&c| !store.known(&p.index.digests[c])));
        if relisted || !unknown || !store.relist()? {
            break agains;
        }
        relisted = true;
        store.avoid_packs(&avoid.packs);
    };
    for (p, again) in plans.iter_mut().zip(agains) {
        if !again.is_empty() {
            tracing::info!(disk = %p.source.name, chunks = again.len(), "chunks of the parent no usable pack holds are read again");
            p.chunks.extend(again);
            p.chunks.sort_unstable();
        }
    }
    for p in &plans {
        let bytes: u64 = p.chunks.iter().map(|&c| p.index.chunk_range(c).1 as u64).sum();
        Progress::add(&progress.bytes_total, bytes);
    }
    let store = Arc::new(store);
    stage("leased");

    // Each uploader writes a pack, then its index. On a local directory
    // two, with one pack queued (a pack waits on its fsync most of its
    // upload time); on an object store up to MAX_UPLOADS PUTs at once.
    let (uploads, queued) = match ds.repo.parallel_requests() {
        0 => (LOCAL_UPLOADS, 1),
        n => (n.clamp(1, MAX_UPLOADS), n.clamp(1, MAX_UPLOADS)),
    };
    let (pack_tx, pack_rx) = sync_channel::<PackJob>(queued);
    let spare_packs: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let queue = Arc::new(UploadQueue {
        rx: Mutex::new(pack_rx),
        failed: AtomicBool::new(false),
        spare: spare_packs.clone(),
        keep_spare: uploads + queued,
    });
    let written = Arc::new(Written { list: Mutex::default(), store: store.clone() });
    let mut uploaders = Vec::with_capacity(uploads);
    for i in 0..uploads {
        let repo = ds.repo.clone();
        let crypt = ds.crypt.clone();
        let avoid = avoid.clone();
        let queue = queue.clone();
        let sink = written.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sendense-upload-{i}"))
            .spawn(move || upload_packs(repo.as_ref(), crypt.as_deref(), &avoid, &queue, &sink))
            .map_err(|e| EngineError::Pipeline(format!("spawn uploader: {e}")))?;
        uploaders.push(spawned);
    }
    // The uploaders hold the queue: when all have stopped, sends fail.
    drop(queue);
    let pack_size = ds.config.pack_size as usize;
    let mut writer = Writer {
        pack: PackBuilder::with_capacity(pack_size + chunk_size as usize),
        pack_size,
        chunk_size: chunk_size as usize,
        new_chunks: HashSet::new(),
        pack_tx: Some(pack_tx),
        spare: spare_packs,
        stats: BackupStats::default(),
    };

    let mut result: Result<Vec<DiskEntry>> = Ok(Vec::new());
    for plan in plans.iter_mut() {
        match run_disk(ds, &store, &trainer, &touched, plan, opts.workers.max(1), &mut writer, progress) {
            Ok(()) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Flush the last pack and wait for every upload, even after an error.
    if result.is_ok() {
        if let Err(e) = writer.flush_pack() {
            result = Err(e);
        }
    }
    drop(writer.pack_tx.take());
    // The fixed indexes are whole: written while the last packs upload.
    let mut entries = Vec::new();
    if result.is_ok() {
        for plan in &plans {
            match put_index_with(ds, &plan.index, &avoid, true) {
                Ok((key, written)) => {
                    writer.stats.bytes_written += written;
                    entries.push(DiskEntry {
                        name: plan.source.name.clone(),
                        size: plan.index.size,
                        chunk_size,
                        index: key,
                        cbt_token: plan.source.cbt_token.clone(),
                    });
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
    }
    let mut upload = Ok(0u64);
    for u in uploaders {
        let r = u.join().map_err(|_| EngineError::Pipeline("uploader thread panicked".into()))?;
        upload = match (upload, r) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(a), Ok(b)) => Ok(a + b),
        };
    }
    written.flush_written();
    let bytes_uploaded = match (upload, &result) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(_)) => return Err(result.unwrap_err()),
        (Ok(n), Ok(_)) => n,
    };
    writer.stats.bytes_written += bytes_uploaded;

    // Packs we deduplicated against must still exist: the safety net under
    // the GC plan, looked at only when a GC made a plan since (see `gc_plan`).
    let mut reused: Vec<Digest> = touched.lock().unwrap().iter().map(|&p| store.packs[p as usize]).collect();
    reused.sort_unstable_by_key(|d| d.0);
    if let Err(e) = gc_plan::check_reused(repo, plan_read, &reused, store.packs.len()) {
        if matches!(e, EngineError::PackVanished { .. }) {
            store.distrust_cache();
        }
        return Err(e);
    }

    // Every pack index and fixed index durable before anything refers to
    // them; then the index log segment naming the packs written.
    repo.sync_published()?;
    store.publish_written();
    let now = chrono::Utc::now();
    let mut rnd = [0u8; 2];
    getrandom::fill(&mut rnd).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
    let id = format!("{}-{}", now.format("%Y%m%dT%H%M%S%.3fZ"), hex::encode(rnd));
    writer.stats.duration_ms = started.elapsed().as_millis() as u64;
    let m = Manifest {
        version: 1,
        id: id.clone(),
        name: opts.name.clone(),
        created: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        parent: parent.as_ref().map(|p| p.id.clone()),
        immutable_until: opts
            .immutable_days
            .filter(|&d| d > 0)
            .map(|d| (now + chrono::Duration::days(d as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        disks: entries,
        stats: writer.stats.clone(),
        vm: opts.vm.clone(),
        vm_definition: opts.vm_definition.clone(),
    };
    // Storage locks on everything the restore point uses, its manifest last.
    if let Some(l) = locking {
        let indexes: Vec<&FixedIndex> = plans.iter().map(|p| &p.index).collect();
        let sent = l.lock_objects(&store, &indexes, &m)?;
        tracing::info!(snapshot = %m.id, requests = sent, "objects of the restore point locked by the storage");
    }
    // Nothing is committed under a lease others may consider stale.
    lease.check_fresh()?;
    stage("before-manifest");
    ds.put_manifest(&m)?;
    if let Some(l) = locking {
        l.lock_manifest(&m)?;
    }
    drop(lease);
    Ok(m)
}

/// Writes a fixed index (create-if-absent) whose key is not a GC
/// candidate: an index with the same bytes as a candidate (the same disk
/// backed up again after its snapshot was forgotten) is sealed with a
/// different salt, since the candidate may be deleted under this backup.
pub(crate) fn put_index_avoiding(ds: &Datastore, index: &FixedIndex, avoid: &Avoid) -> Result<(String, u64)> {
    put_index_with(ds, index, avoid, false)
}

/// [`put_index_avoiding`]; `deferred`: published with
/// [`Repository::put_if_absent_deferred`] (durable after `sync_published`).
fn put_index_with(ds: &Datastore, index: &FixedIndex, avoid: &Avoid, deferred: bool) -> Result<(String, u64)> {
    let mut body = index.seal(ds.crypt.as_deref())?;
    let mut key = fixed_index::index_key(&body);
    while avoid.indexes.contains(&key) {
        let mut salt = [0u8; 4];
        getrandom::fill(&mut salt).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
        body = index.seal_salted(ds.crypt.as_deref(), u32::from_le_bytes(salt) | 1)?;
        key = fixed_index::index_key(&body);
    }
    let created = if deferred { ds.repo.put_if_absent_deferred(&key, &body)? } else { ds.repo.put_if_absent(&key, &body)? };
    Ok((key, if created { body.len() as u64 } else { 0 }))
}

/// Test hook: called with the stage a backup reached (`leased`: lease held,
/// plan read, chunk map loaded; `before-manifest`: everything but the
/// manifest written and checked). Tests block in it to run a GC at exactly
/// that point.
#[doc(hidden)]
pub fn set_stage_hook(hook: Option<Arc<dyn Fn(&str) + Send + Sync>>) {
    *stage_hook().lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

fn stage_hook() -> &'static Mutex<Option<Arc<dyn Fn(&str) + Send + Sync>>> {
    static H: OnceLock<Mutex<Option<Arc<dyn Fn(&str) + Send + Sync>>>> = OnceLock::new();
    H.get_or_init(Mutex::default)
}

fn stage(name: &str) {
    let hook = stage_hook().lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(h) = hook {
        h(name);
    }
}

struct Writer {
    pack: PackBuilder,
    pack_size: usize,
    chunk_size: usize,
    new_chunks: HashSet<Digest>,
    pack_tx: Option<SyncSender<PackJob>>,
    /// Buffers of packs written, handed back by the uploaders.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    stats: BackupStats,
}

impl Writer {
    fn flush_pack(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let next = match self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            Some(data) => PackBuilder { data, entries: Vec::new() },
            None => PackBuilder::with_capacity(self.pack_size + self.chunk_size),
        };
        let full = std::mem::replace(&mut self.pack, next);
        let tx = self.pack_tx.as_ref().expect("uploader open");
        tx.send(PackJob { data: full.data, entries: full.entries })
            .map_err(|_| EngineError::Pipeline("uploader stopped".into()))
    }
}

/// Uploaders at once on an object store ([`Repository::parallel_requests`]).
const MAX_UPLOADS: usize = 4;
/// Uploaders on a local directory.
const LOCAL_UPLOADS: usize = 2;

/// The packs to upload, shared by the uploaders; `failed` stops the others
/// when one fails (the backup then ends with that error).
struct UploadQueue {
    rx: Mutex<Receiver<PackJob>>,
    failed: AtomicBool,
    /// Written packs' buffers (emptied) for the writer's next packs.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    /// At most this many are kept.
    keep_spare: usize,
}

/// Packs the uploaders wrote (id, entries), for the index cache (the next
/// backup then reads none of their indexes back); handed over every
/// [`WRITTEN_BATCH`] entries and at the end.
struct Written {
    list: Mutex<(Vec<(Digest, Vec<PackEntry>)>, usize)>,
    store: Arc<ChunkStore>,
}

/// Entries of written packs held before they go to the index cache.
const WRITTEN_BATCH: usize = 1 << 18;

impl Written {
    fn wrote(&self, id: Digest, entries: Vec<PackEntry>) {
        let full = {
            let mut w = self.list.lock().unwrap_or_else(|e| e.into_inner());
            w.1 += entries.len();
            w.0.push((id, entries));
            if w.1 < WRITTEN_BATCH {
                return;
            }
            w.1 = 0;
            std::mem::take(&mut w.0)
        };
        self.store.remember_written(&full);
    }

    fn flush_written(&self) {
        let rest = std::mem::take(&mut self.list.lock().unwrap_or_else(|e| e.into_inner()).0);
        self.store.remember_written(&rest);
    }
}

fn upload_packs(repo: &dyn Repository, crypt: Option<&CryptConfig>, avoid: &Avoid, queue: &UploadQueue, sink: &Written) -> Result<u64> {
    let r = upload_from(repo, crypt, avoid, queue, sink);
    if r.is_err() {
        queue.failed.store(true, AtomicOrdering::Relaxed);
    }
    r
}

fn upload_from(repo: &dyn Repository, crypt: Option<&CryptConfig>, avoid: &Avoid, queue: &UploadQueue, sink: &Written) -> Result<u64> {
    let mut written = 0u64;
    loop {
        if queue.failed.load(AtomicOrdering::Relaxed) {
            return Ok(written);
        }
        let next = queue.rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(mut job) = next else { return Ok(written) };
        // A pack with the bytes of a GC candidate (the same chunks stored
        // again in the same order) would land on a key a GC may delete:
        // trailing bytes no entry covers give it another id.
        while !avoid.packs.is_empty() && avoid.packs.contains(&Digest(*blake3::hash(&job.data).as_bytes())) {
            let mut pad = [0u8; 16];
            getrandom::fill(&mut pad).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
            job.data.extend_from_slice(&pad);
        }
        let (id, n) = pack::write_deferred(repo, crypt, &job.data, &job.entries)?;
        written += n;
        sink.wrote(id, job.entries);
        let mut data = job.data;
        data.clear();
        let mut spare = queue.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < queue.keep_spare {
            spare.push(data);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_disk(
    ds: &Datastore,
    store: &Arc<ChunkStore>,
    trainer: &Trainer,
    touched: &Arc<Mutex<HashSet<u32>>>,
    plan: &mut Plan,
    workers: usize,
    writer: &mut Writer,
    progress: &Progress,
) -> Result<()> {
    let (batch_tx, batch_rx) = sync_channel::<Batch>(workers * 2);
    let (res_tx, res_rx) = sync_channel::<Result<Vec<(usize, Outcome)>>>(workers * 2);
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    let index_geom = plan.index.clone_geometry();
    let source = plan.source.source.as_ref();
    let chunks = &plan.chunks;
    // Read buffers go back to the reader: no zeroing or page faults per batch.
    let spare: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let spare = &spare;

    std::thread::scope(|s| -> Result<()> {
        let reader = s.spawn(move || -> Result<()> {
            let mut i = 0;
            while i < chunks.len() {
                progress.control.checkpoint()?;
                // A run: consecutive chunks that are all holes or all data.
                let first = chunks[i];
                let hole = |c: usize| {
                    let (o, l) = index_geom.chunk_range(c);
                    source.is_hole(o, l as u64)
                };
                let first_hole = hole(first);
                let mut n = 1;
                while i + n < chunks.len() && n < RUN_CHUNKS && chunks[i + n] == first + n && hole(first + n) == first_hole {
                    n += 1;
                }
                let lens: Vec<usize> = (first..first + n).map(|c| index_geom.chunk_range(c).1).collect();
                let total: usize = lens.iter().sum();
                let (off, _) = index_geom.chunk_range(first);
                if first_hole {
                    // Unallocated: zeros without reading them (empty data = all zero).
                    Progress::add(&progress.bytes_skipped, total as u64);
                    if batch_tx.send(Batch { first, lens, data: Vec::new() }).is_err() {
                        return Ok(());
                    }
                    i += n;
                    continue;
                }
                let mut data = spare.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
                data.resize(total, 0);
                let read_started = std::time::Instant::now();
                source.read_exact_at(&mut data, off)?;
                progress.pace(total as u64, read_started.elapsed());
                Progress::add(&progress.bytes_read, total as u64);
                if batch_tx.send(Batch { first, lens, data }).is_err() {
                    return Ok(()); // the writer stopped; its error is reported
                }
                i += n;
            }
            Ok(())
        });
        for _ in 0..workers {
            let rx = batch_rx.clone();
            let tx = res_tx.clone();
            let store = store.clone();
            let touched = touched.clone();
            s.spawn(move || loop {
                let batch = match rx.lock().unwrap().recv() {
                    Ok(b) => b,
                    Err(_) => return,
                };
                let out = process_batch(ds, &store, trainer, &touched, &batch);
                if batch.data.capacity() > 0 {
                    let mut pool = spare.lock().unwrap_or_else(|e| e.into_inner());
                    if pool.len() < workers * 2 + 2 {
                        pool.push(batch.data);
                    }
                }
                if tx.send(out).is_err() {
                    return;
                }
            });
        }
        drop(res_tx);
        let written = {
            let res_rx = res_rx;
            let mut r = Ok(());
            for batch in res_rx.iter() {
                match batch.and_then(|b| accept(writer, &mut plan.index, b, progress)) {
                    Ok(()) => {}
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r
        };
        let read = reader.join().map_err(|_| EngineError::Pipeline("reader thread panicked".into()))?;
        read?;
        written
    })
}

impl FixedIndex {
    fn clone_geometry(&self) -> FixedIndex {
        FixedIndex { chunk_size: self.chunk_size, size: self.size, digests: Vec::new() }
    }
}

fn process_batch(
    ds: &Datastore,
    store: &ChunkStore,
    trainer: &Trainer,
    touched: &Mutex<HashSet<u32>>,
    batch: &Batch,
) -> Result<Vec<(usize, Outcome)>> {
    let mut out = Vec::with_capacity(batch.lens.len());
    if batch.data.is_empty() {
        out.extend((0..batch.lens.len()).map(|k| (batch.first + k, Outcome::Zero)));
        return Ok(out);
    }
    let mut pos = 0;
    for (k, &len) in batch.lens.iter().enumerate() {
        let raw = &batch.data[pos..pos + len];
        pos += len;
        let n = batch.first + k;
        if is_all_zero(raw) {
            out.push((n, Outcome::Zero));
            continue;
        }
        let digest = ds.hasher.digest(raw);
        if let Some(loc) = store.get(&digest) {
            // Reused: no GC candidate (the map holds none, see `gc_plan`);
            // the pack is checked once more before the manifest.
            touched.lock().unwrap().insert(loc.pack);
            out.push((n, Outcome::Known(digest)));
            continue;
        }
        let dict = trainer.current();
        let (stored, flags) = chunk_codec::encode(raw, &digest, ds.crypt.as_deref(), dict)
            .map_err(|reason| EngineError::Pipeline(format!("chunk {digest}: {reason}")))?;
        if dict.is_none() && flags & chunk_codec::FLAG_ZSTD != 0 {
            trainer.offer(raw, ds.repo.as_ref(), ds.crypt.as_deref())?;
        }
        out.push((n, Outcome::New { digest, stored, flags, raw_len: len as u32 }));
    }
    Ok(out)
}

fn accept(writer: &mut Writer, index: &mut FixedIndex, results: Vec<(usize, Outcome)>, progress: &Progress) -> Result<()> {
    for (n, outcome) in results {
        match outcome {
            Outcome::Zero => {
                index.digests[n] = Digest::ZERO_CHUNK;
                writer.stats.chunks_zero += 1;
                Progress::add(&progress.chunks_zero, 1);
            }
            Outcome::Known(d) => {
                index.digests[n] = d;
                writer.stats.chunks_reused += 1;
                Progress::add(&progress.chunks_reused, 1);
            }
            Outcome::New { digest, stored, flags, raw_len } => {
                index.digests[n] = digest;
                if writer.new_chunks.insert(digest) {
                    writer.pack.add(digest, &stored, raw_len, flags);
                    writer.stats.chunks_new += 1;
                    writer.stats.bytes_new += raw_len as u64;
                    Progress::add(&progress.chunks_new, 1);
                    Progress::add(&progress.bytes_written, stored.len() as u64);
                    if writer.pack.len() >= writer.pack_size {
                        writer.flush_pack()?;
                    }
                } else {
                    writer.stats.chunks_reused += 1;
                    Progress::add(&progress.chunks_reused, 1);
                }
            }
        }
    }
    writer.stats.bytes_read = progress.bytes_read.load(std::sync::atomic::Ordering::Relaxed);
    writer.stats.bytes_skipped = progress.bytes_skipped.load(std::sync::atomic::Ordering::Relaxed);
    Ok(())
}
