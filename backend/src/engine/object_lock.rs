//! Immutability enforced by the storage (S3 Object Lock) for a backup's
//! restore point.
//!
//! A backup asks for it with [`BackupOptions::object_lock`] (the
//! repository's Object Lock mode, set by the caller from the catalog's
//! repository row) together with `immutable_days`. Before anything is
//! written the storage must say it can lock ([`Repository::lock_support`]):
//! a bucket without Object Lock fails the backup with the repository named,
//! nothing written.
//!
//! What is locked, in this order, before the restore point counts:
//! 1. every object the backup wrote or found already there under a
//!    content-addressed key (packs, pack indexes, fixed indexes, the chunk
//!    dictionary), recorded by a thin wrapper around the repository
//!    ([`Recorder`]);
//! 2. every pack (and its pack index) the restore point reuses, found from
//!    its fixed indexes and the chunk map (chunks of this backup and the
//!    ones copied from the parent), the dictionary when one exists, and the
//!    repository's `config.json` (no restore point opens without it);
//! 3. then the manifest is written and locked, last.
//!
//! Packs, indexes and the dictionary are locked to `until + immutable_days`
//! (a band, design §4.3): a pack reused by the next backups needs no new
//! request until its retention falls short of a new restore point's
//! `until`; an object found already locked long enough is left alone (one
//! HEAD). The manifest is locked to `until` exactly. When any lock fails the
//! backup fails with the object and the cause named; a manifest whose own
//! lock failed is removed again, so no restore point claims a lock it does
//! not have (on a versioned bucket the removal is a delete marker over an
//! unlocked version).
//!
//! Afterwards: [`restore_point_lock`] reads the lock the storage holds on a
//! restore point (its manifest's retention, what the catalog shows), and
//! [`ensure_retention`] repairs what a crash between a PUT and its
//! retention request (or a failed lock) left unlocked.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::backup::BackupOptions;
use super::chunk_dict::DICT_KEY;
use super::chunk_store::ChunkStore;
use super::datastore::{Datastore, CONFIG_KEY};
use super::error::{EngineError, Result};
use super::fixed_index::{FixedIndex, INDEX_PREFIX};
use super::manifest::{self, Manifest};
use super::pack::{self, PACK_INDEX_PREFIX, PACK_PREFIX};
use super::repository::{LockMode, LockSupport, Repository, Retention, WriteObserver, WriteTap};

/// Concurrent retention requests.
const LOCK_WORKERS: usize = 4;

/// A backup that locks its restore point: the datastore it writes through
/// (recording what it writes) and the lock asked.
pub(crate) struct Locking {
    pub ds: Datastore,
    recorder: Arc<WriteTap<Recorder>>,
    mode: LockMode,
    days: u32,
}

/// `None` when the backup asks no storage lock; an error (nothing written)
/// when it asks one the storage cannot give.
pub(crate) fn prepare(ds: &Datastore, opts: &BackupOptions) -> Result<Option<Locking>> {
    let (Some(mode), Some(days)) = (opts.object_lock, opts.immutable_days.filter(|&d| d > 0)) else {
        return Ok(None);
    };
    match ds.repo.lock_support()? {
        LockSupport::Storage => {}
        LockSupport::None => {
            return Err(EngineError::Pipeline(format!(
                "repository {}: immutable restore points locked by the storage ({mode}, {days} days) were asked, \
                 but the storage has no Object Lock (an S3 bucket must be created with Object Lock enabled); \
                 nothing was written",
                ds.repo.describe()
            )))
        }
    }
    let recorder = Arc::new(WriteTap { inner: ds.repo.clone(), observer: Recorder::default() });
    let ds = Datastore { repo: recorder.clone(), config: ds.config.clone(), crypt: ds.crypt.clone(), hasher: ds.hasher.clone() };
    Ok(Some(Locking { ds, recorder, mode, days }))
}

impl Locking {
    /// A new attempt of the backup: what an earlier one wrote is not its.
    pub fn restart(&self) {
        self.recorder.observer.written.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The restore point's `until` (its manifest's `immutable_until`).
    fn until(m: &Manifest) -> Result<DateTime<Utc>> {
        m.immutable_until
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .ok_or_else(|| EngineError::Pipeline(format!("snapshot {}/{}: no immutable_until to lock to", m.name, m.id)))
    }

    /// Steps 1 and 2 of the module docs: everything `m` uses but its
    /// manifest. Returns how many objects got a retention request.
    pub fn lock_objects(&self, store: &ChunkStore, indexes: &[&FixedIndex], m: &Manifest) -> Result<usize> {
        let until = Self::until(m)?;
        let band = until + Duration::days(i64::from(self.days));
        let written = std::mem::take(&mut *self.recorder.observer.written.lock().unwrap_or_else(|e| e.into_inner()));
        let mut jobs: Vec<Job> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (key, created) in written {
            if seen.insert(key.clone()) {
                jobs.push(if created { Job::Set(key) } else { Job::Ensure(vec![key]) });
            }
        }
        // Reused packs: the pack's retention stands for its pack index too
        // (the index is extended first, the pack last).
        let mut packs: HashSet<u32> = HashSet::new();
        for index in indexes {
            for d in &index.digests {
                if !d.is_zero_marker() {
                    if let Some(loc) = store.get(d) {
                        packs.insert(loc.pack);
                    }
                }
            }
        }
        let mut packs: Vec<u32> = packs.into_iter().collect();
        packs.sort_unstable();
        for p in packs {
            let id = &store.packs[p as usize];
            let (pk, ik) = (pack::pack_key(id), pack::pack_index_key(id));
            if !seen.contains(&pk) {
                seen.insert(pk.clone());
                jobs.push(Job::Ensure(vec![pk, ik]));
            }
        }
        if !seen.contains(DICT_KEY) {
            jobs.push(Job::EnsureIfPresent(DICT_KEY.to_string()));
        }
        // Without its config (chunk size, wrapped key check) no restore point opens.
        jobs.push(Job::EnsureIfPresent(CONFIG_KEY.to_string()));
        let repo = self.recorder.inner.as_ref();
        let jobs = jobs.into_iter().map(|j| (j, until, band)).collect();
        run_pool(repo, jobs, self.mode).map_err(|e| lock_failed(repo, m, &e))
    }

    /// Step 3: the manifest (already written) locked to `until`; on
    /// failure it is removed again and the backup fails.
    pub fn lock_manifest(&self, m: &Manifest) -> Result<()> {
        let until = Self::until(m)?;
        let repo = self.recorder.inner.as_ref();
        let key = manifest::manifest_key(&m.name, &m.id);
        if let Err(e) = repo.retain(&key, until, self.mode) {
            let withdrawn = match repo.delete(&key) {
                Ok(()) => "the restore point was withdrawn".to_string(),
                Err(d) => format!("withdrawing the restore point failed too ({d}): forget it by hand"),
            };
            return Err(EngineError::Pipeline(format!("{}; {withdrawn}", lock_failed(repo, m, &e))));
        }
        Ok(())
    }
}

/// Runs retention jobs (each with the `until` it must reach and the
/// `band` it is extended to) on [`LOCK_WORKERS`] threads; the first failure
/// stops the others. The number of retention requests sent.
fn run_pool(repo: &dyn Repository, jobs: Vec<(Job, DateTime<Utc>, DateTime<Utc>)>, mode: LockMode) -> Result<usize> {
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let next = Mutex::new(jobs.into_iter());
    let failed: Mutex<Option<EngineError>> = Mutex::default();
    std::thread::scope(|s| {
        for _ in 0..LOCK_WORKERS {
            s.spawn(|| loop {
                if failed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    return;
                }
                let Some((job, until, band)) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else { return };
                match job.run(repo, until, band, mode) {
                    Ok(n) => {
                        sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(sent.into_inner())
}

/// The lock the storage holds on restore point `name/id`: the retention of
/// its manifest as the storage records it (S3 GetObjectRetention), `None`
/// when the storage cannot lock (no request then) or the manifest has no
/// retention. Blocking.
pub fn restore_point_lock(ds: &Datastore, name: &str, id: &str) -> Result<Option<Retention>> {
    if ds.repo.lock_support()? == LockSupport::None {
        return Ok(None);
    }
    match ds.repo.object_retention(&manifest::manifest_key(name, id)) {
        Err(EngineError::NotFound { .. }) => Err(EngineError::SnapshotNotFound(format!("{name}/{id}"))),
        r => r,
    }
}

/// What [`ensure_retention`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnsureReport {
    /// Restore points still inside their immutability window.
    pub snapshots: usize,
    /// Objects whose retention was read.
    pub objects: usize,
    /// Objects whose retention was missing or too short, now extended.
    pub extended: Vec<String>,
    /// Objects a locked restore point needs that are not there (verify says more).
    pub missing: Vec<String>,
}

/// The "ensure retention" repair (design §4.2): for every restore point
/// whose `immutable_until` is still ahead (by the storage's clock), every
/// object it needs (its manifest, fixed indexes, the packs and pack indexes
/// holding its chunks, the dictionary, `config.json`) must be locked at
/// least until then in `mode` (or compliance); an object whose retention is
/// missing or shorter (a crash between a PUT and its PutObjectRetention, a
/// failed lock) is extended: the manifest to its `immutable_until`, the
/// others to the band `until + window` as backups do (window: from the
/// snapshot's creation to its `until`). Every object is checked by itself
/// (a pack locked does not vouch for its index). Nothing when the storage
/// cannot lock. Blocking.
pub fn ensure_retention(ds: &Datastore, mode: LockMode) -> Result<EnsureReport> {
    let mut report = EnsureReport::default();
    if ds.repo.lock_support()? == LockSupport::None {
        return Ok(report);
    }
    let now: DateTime<Utc> = ds.repo.server_now()?.into();
    // key -> (needed until, extend to)
    let mut need: std::collections::BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> = std::collections::BTreeMap::new();
    let mut add = |key: String, until: DateTime<Utc>, band: DateTime<Utc>| {
        let e = need.entry(key).or_insert((until, band));
        e.0 = e.0.max(until);
        e.1 = e.1.max(band);
    };
    let mut store: Option<ChunkStore> = None;
    for (name, id) in ds.list_snapshots(None)? {
        let m = match ds.load_manifest(&name, &id) {
            Ok(m) => m,
            Err(EngineError::SnapshotNotFound(_)) => continue, // forgotten meanwhile
            Err(e) => return Err(e),
        };
        let Some(until) = m.immutable_until.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc)) else {
            continue;
        };
        if until <= now {
            continue;
        }
        report.snapshots += 1;
        let window = m.created_at().map(|c| until - c).filter(|w| *w > Duration::zero()).unwrap_or_else(Duration::zero);
        let band = until + window;
        let label = format!("{name}/{id}");
        add(manifest::manifest_key(&name, &id), until, until);
        add(DICT_KEY.to_string(), until, band);
        add(CONFIG_KEY.to_string(), until, band);
        if store.is_none() {
            // Every pack of every restore point: not the index log alone.
            store = Some(ds.load_chunk_store_listed()?);
        }
        let chunks = store.as_ref().expect("loaded above");
        let mut packs: HashSet<u32> = HashSet::new();
        for disk in &m.disks {
            add(disk.index.clone(), until, band);
            let index = match ds.load_index(&label, &disk.index) {
                Ok(i) => i,
                Err(EngineError::CorruptIndex { .. }) => continue, // missing or damaged: checked below / by verify
                Err(e) => return Err(e),
            };
            for d in index.digests.iter().filter(|d| !d.is_zero_marker()) {
                if let Some(loc) = chunks.get(d) {
                    packs.insert(loc.pack);
                }
            }
        }
        for p in packs {
            let pid = &chunks.packs[p as usize];
            add(pack::pack_index_key(pid), until, band);
            add(pack::pack_key(pid), until, band);
        }
    }
    let repo = ds.repo.as_ref();
    let extended: Mutex<Vec<String>> = Mutex::default();
    let missing: Mutex<Vec<String>> = Mutex::default();
    let optional = |k: &str| k == DICT_KEY;
    let jobs: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = need.into_iter().map(|(k, (u, b))| (k, u, b)).collect();
    report.objects = jobs.len();
    let next = Mutex::new(jobs.into_iter());
    let failed: Mutex<Option<EngineError>> = Mutex::default();
    std::thread::scope(|s| {
        for _ in 0..LOCK_WORKERS {
            s.spawn(|| loop {
                if failed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                    return;
                }
                let Some((key, until, band)) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else { return };
                let r = match repo.retention(&key) {
                    Err(EngineError::NotFound { .. }) => {
                        if !optional(&key) {
                            missing.lock().unwrap_or_else(|e| e.into_inner()).push(key);
                        }
                        continue;
                    }
                    Ok(r) if long_enough(r, until, mode) => continue,
                    Ok(_) => repo.retain(&key, band, mode),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(_) => extended.lock().unwrap_or_else(|e| e.into_inner()).push(key),
                    Err(EngineError::NotFound { .. }) => missing.lock().unwrap_or_else(|e| e.into_inner()).push(key),
                    Err(e) => {
                        failed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(EngineError::Pipeline(format!("repository {}: ensuring the retention of locked restore points: {e}", repo.describe())));
    }
    report.extended = extended.into_inner().unwrap_or_else(|e| e.into_inner());
    report.missing = missing.into_inner().unwrap_or_else(|e| e.into_inner());
    report.extended.sort();
    report.missing.sort();
    Ok(report)
}

fn lock_failed(repo: &dyn Repository, m: &Manifest, e: &EngineError) -> EngineError {
    EngineError::Pipeline(format!(
        "repository {}: snapshot {}/{} could not be locked by the storage ({e}); the backup failed: \
         a restore point must not claim a lock it does not have",
        repo.describe(),
        m.name,
        m.id
    ))
}

enum Job {
    /// Written by this backup: set the band's retention.
    Set(String),
    /// Already there: extend to the band when its retention ends before
    /// `until`. With several keys the first one's retention decides and it
    /// is extended last (a pack and its pack index).
    Ensure(Vec<String>),
    /// Like `Ensure`, for an object that may not exist.
    EnsureIfPresent(String),
}

impl Job {
    /// The number of retention requests sent.
    fn run(self, repo: &dyn Repository, until: DateTime<Utc>, band: DateTime<Utc>, mode: LockMode) -> Result<usize> {
        match self {
            Job::Set(key) => repo.retain(&key, band, mode).map(|_| 1),
            Job::Ensure(keys) => {
                if long_enough(repo.retention(&keys[0])?, until, mode) {
                    return Ok(0);
                }
                for k in keys.iter().rev() {
                    repo.retain(k, band, mode)?;
                }
                Ok(keys.len())
            }
            Job::EnsureIfPresent(key) => match repo.retention(&key) {
                Err(EngineError::NotFound { .. }) => Ok(0),
                Err(e) => Err(e),
                Ok(r) if long_enough(r, until, mode) => Ok(0),
                Ok(_) => repo.retain(&key, band, mode).map(|_| 1),
            },
        }
    }
}

/// A retention that already reaches `until` in a mode at least as strict
/// as `mode` (a compliance restore point needs compliance objects).
fn long_enough(r: Option<Retention>, until: DateTime<Utc>, mode: LockMode) -> bool {
    r.is_some_and(|r| r.until >= until && (r.mode == mode || r.mode == LockMode::Compliance))
}

/// The content-addressed objects written through a [`WriteTap`] (key, and
/// whether this write created it).
#[derive(Default)]
struct Recorder {
    written: Mutex<Vec<(String, bool)>>,
}

impl WriteObserver for Recorder {
    fn written(&self, key: &str, _len: usize, created: bool) {
        if [PACK_PREFIX, PACK_INDEX_PREFIX, INDEX_PREFIX].iter().any(|p| key.starts_with(p)) || key == DICT_KEY {
            self.written.lock().unwrap_or_else(|e| e.into_inner()).push((key.to_string(), created));
        }
    }
}
