//! The storage trait under the engine. Shaped for object stores (S3, Azure
//! Blob) as much as for a local directory: objects are put and got whole (or
//! read by byte range), never appended to; `put_if_absent` is the
//! create-if-absent primitive (S3 `If-None-Match: *`, Azure `If-None-Match`);
//! listing is by key prefix. Keys are `/`-separated relative names.

use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::error::{EngineError, Result};

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// How a storage-enforced retention (S3 Object Lock) guards an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Deletable before the date only with the bypass permission.
    Governance,
    /// Nobody can delete the object version before the date.
    Compliance,
}

impl LockMode {
    /// `GOVERNANCE` / `COMPLIANCE`, as S3 spells them.
    pub fn as_s3(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn from_s3(s: &str) -> Option<LockMode> {
        match s.to_ascii_uppercase().as_str() {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        })
    }
}

/// An object's retention: not deletable (its version) before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}

/// What a version sweep removed and kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Non-current versions deleted (their retention ended or they had none).
    pub versions_removed: u64,
    pub bytes_removed: u64,
    /// Delete markers that hid nothing any more, deleted.
    pub markers_removed: u64,
    /// Non-current versions kept: still under retention.
    pub retained: u64,
    /// Non-current versions kept: superseded too recently (the grace, time to undelete).
    pub recent: u64,
}

/// Whether the storage itself can refuse deletes ([`Repository::retain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockSupport {
    /// Immutability is Sendense's only (local directories, Azure here, an
    /// S3 bucket without Object Lock).
    None,
    /// Object versions can be given a retention the storage enforces.
    Storage,
}

pub trait Repository: Send + Sync {
    /// Human-readable location, for messages.
    fn describe(&self) -> String;
    /// Whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset` (ranged GET).
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// How many requests are worth having in flight at once. 0: a local
    /// directory (reads about as fast as chunks decode: one reader per core;
    /// one pack written at a time). An object store, where every request
    /// waits on the network, says more: restore runs that many ranged reads
    /// in parallel and backup uploads up to 4 packs at once.
    fn parallel_requests(&self) -> usize {
        0
    }
    /// The requests this handle sent so far, by method (object stores);
    /// `None` where nothing is counted (a local directory).
    fn request_counts(&self) -> Option<crate::repos::http::RequestCounts> {
        None
    }
    /// Write or replace an object atomically: readers see the old or the new
    /// object, never a part. Durable when it returns.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Create the object only if no object has this key; `Ok(false)` when it
    /// already existed (content-addressed objects: same key, same content).
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool>;
    /// [`Repository::put_if_absent`] whose publication need only be durable
    /// after the next [`Repository::sync_published`]: the object's bytes are
    /// durable before anyone can see it (a crash leaves no object or the
    /// whole object, never a part), but a crash before that sync may lose
    /// the object. For objects nothing references until the caller has
    /// synced (a backup's pack indexes and fixed indexes, made durable at
    /// once before its manifest). Defaults to `put_if_absent`.
    fn put_if_absent_deferred(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.put_if_absent(key, data)
    }
    /// Makes durable every object this handle published with
    /// [`Repository::put_if_absent_deferred`] so far (a local directory:
    /// one fsync per directory they went into, instead of one per object).
    fn sync_published(&self) -> Result<()> {
        Ok(())
    }
    /// [`Repository::put`] of an object that matters only while this process
    /// runs (a backup's lease: after a crash it is stale anyway): visible to
    /// others when this returns, but a crash of the machine may lose it or
    /// leave it unreadable, which readers of it take as stale. A local
    /// directory skips the fsyncs. Defaults to `put`.
    fn put_volatile(&self, key: &str, data: &[u8]) -> Result<()> {
        self.put(key, data)
    }
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Objects whose key starts with `prefix` (a folder-like prefix ending in `/`).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Size and modification time, `None` when absent.
    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// Refresh the modification time (GC grace rule); `Ok(false)` when absent.
    /// Object stores do this with a copy-onto-itself or a metadata update.
    fn touch(&self, key: &str) -> Result<bool>;
    /// Whether this storage can lock objects ([`Repository::retain`]); an
    /// S3 bucket asks its Object Lock configuration.
    fn lock_support(&self) -> Result<LockSupport> {
        Ok(LockSupport::None)
    }
    /// The retention of the object's current version (`None`: none);
    /// `NotFound` when absent.
    fn retention(&self, key: &str) -> Result<Option<Retention>> {
        let _ = key;
        Ok(None)
    }
    /// The storage's own record of the object's retention (S3:
    /// GetObjectRetention), for what the catalog shows as a restore point's
    /// lock date; `NotFound` when absent. Defaults to [`Repository::retention`].
    fn object_retention(&self, key: &str) -> Result<Option<Retention>> {
        self.retention(key)
    }
    /// Removes the delete markers made at or after `since` (the storage's
    /// clock) that hide objects of a versioned store, so deleted objects
    /// whose versions were kept are back; the keys brought back. A store
    /// without versions refuses ([`EngineError::Invalid`]).
    fn undelete(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        let _ = since;
        Err(EngineError::Invalid(format!(
            "repository {}: undelete needs an S3 bucket with versioning (Object Lock turns it on); this storage deletes objects for good",
            self.describe()
        )))
    }
    /// Versioned stores: deletes the old (non-current) versions that stopped
    /// being current before `superseded_before` and whose retention ended by
    /// `now` (the storage's clock); current objects are never touched. A
    /// store without versions has none: an empty report.
    fn sweep_versions(&self, superseded_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<SweepReport> {
        let _ = (superseded_before, now);
        Ok(SweepReport::default())
    }
    /// Gives the object's current version a retention until `until` (or
    /// extends it): the storage refuses to delete that version before.
    /// `NotFound` when absent.
    fn retain(&self, key: &str, until: DateTime<Utc>, mode: LockMode) -> Result<Retention> {
        let _ = (until, mode);
        Err(EngineError::object(
            key,
            std::io::Error::other(format!("{}: this storage cannot lock objects (no Object Lock)", self.describe())),
        ))
    }
    /// The storage's own clock: a probe object is written, its modification
    /// time read back, and the probe removed. Every decision that compares
    /// object times (lease liveness, plan age in GC) compares them with this,
    /// never with the caller's clock.
    fn server_now(&self) -> Result<SystemTime> {
        let key = format!("{CLOCK_PROBE_PREFIX}{}", uuid::Uuid::new_v4());
        self.put(&key, b"clock probe")?;
        let info = self.stat(&key);
        let _ = self.delete(&key);
        match info? {
            Some(info) => Ok(info.modified),
            None => Err(super::error::EngineError::Pipeline(format!(
                "{}: the clock probe '{key}' vanished right after it was written",
                self.describe()
            ))),
        }
    }
}

/// What a [`WriteTap`] is told of each object written through it.
pub trait WriteObserver: Send + Sync {
    /// `key` was written with `len` bytes; `created` is false when
    /// `put_if_absent` found it there already.
    fn written(&self, key: &str, len: usize, created: bool);
}

/// A repository that tells `observer` of every object written through it
/// and passes every call on to `inner` unchanged (copies count what they
/// send, Object Lock records what a backup wrote).
pub struct WriteTap<O> {
    pub inner: Arc<dyn Repository>,
    pub observer: O,
}

impl<O: WriteObserver> Repository for WriteTap<O> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }
    fn parallel_requests(&self) -> usize {
        self.inner.parallel_requests()
    }
    fn request_counts(&self) -> Option<crate::repos::http::RequestCounts> {
        self.inner.request_counts()
    }
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)?;
        self.observer.written(key, data.len(), true);
        Ok(())
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let created = self.inner.put_if_absent(key, data)?;
        self.observer.written(key, data.len(), created);
        Ok(created)
    }
    fn put_if_absent_deferred(&self, key: &str, data: &[u8]) -> Result<bool> {
        let created = self.inner.put_if_absent_deferred(key, data)?;
        self.observer.written(key, data.len(), created);
        Ok(created)
    }
    fn sync_published(&self) -> Result<()> {
        self.inner.sync_published()
    }
    fn put_volatile(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put_volatile(key, data)?;
        self.observer.written(key, data.len(), true);
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.inner.stat(key)
    }
    fn touch(&self, key: &str) -> Result<bool> {
        self.inner.touch(key)
    }
    fn lock_support(&self) -> Result<LockSupport> {
        self.inner.lock_support()
    }
    fn retention(&self, key: &str) -> Result<Option<Retention>> {
        self.inner.retention(key)
    }
    fn object_retention(&self, key: &str) -> Result<Option<Retention>> {
        self.inner.object_retention(key)
    }
    fn undelete(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        self.inner.undelete(since)
    }
    fn sweep_versions(&self, superseded_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<SweepReport> {
        self.inner.sweep_versions(superseded_before, now)
    }
    fn retain(&self, key: &str, until: DateTime<Utc>, mode: LockMode) -> Result<Retention> {
        self.inner.retain(key, until, mode)
    }
    fn server_now(&self) -> Result<SystemTime> {
        self.inner.server_now()
    }
}

/// A repository that remembers the last error about one of its objects
/// ([`EngineError::Object`]: the storage's) it returned, and passes every
/// call on to `inner` unchanged. A copy holds two repositories: the job
/// asks both taps which one returned the error the copy failed with, to
/// mark that repository's storage as failing.
pub struct ErrorTap {
    inner: Arc<dyn Repository>,
    /// Shared by the taps compared: orders their errors.
    clock: Arc<std::sync::atomic::AtomicU64>,
    /// (order, key, the storage's words) of the last error.
    last: std::sync::Mutex<Option<(u64, String, String)>>,
}

impl ErrorTap {
    /// Taps on `a` and `b` whose errors are ordered against each other.
    pub fn pair(a: Arc<dyn Repository>, b: Arc<dyn Repository>) -> (Arc<ErrorTap>, Arc<ErrorTap>) {
        let clock = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tap = |inner| Arc::new(ErrorTap { inner, clock: clock.clone(), last: std::sync::Mutex::new(None) });
        (tap(a), tap(b))
    }

    /// When (in the pair's order) this repository last returned `e`, if
    /// its last error is `e` (the same object, the same words).
    pub fn returned(&self, e: &EngineError) -> Option<u64> {
        let EngineError::Object { key, source } = e else { return None };
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().filter(|(_, k, words)| k == key && *words == source.to_string()).map(|(at, _, _)| *at)
    }

    fn watch<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(EngineError::Object { key, source }) = &r {
            let at = self.clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, key.clone(), source.to_string()));
        }
        r
    }
}

impl Repository for ErrorTap {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.watch(self.inner.get(key))
    }
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.watch(self.inner.get_range(key, offset, len))
    }
    fn parallel_requests(&self) -> usize {
        self.inner.parallel_requests()
    }
    fn request_counts(&self) -> Option<crate::repos::http::RequestCounts> {
        self.inner.request_counts()
    }
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.watch(self.inner.put(key, data))
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.watch(self.inner.put_if_absent(key, data))
    }
    fn put_if_absent_deferred(&self, key: &str, data: &[u8]) -> Result<bool> {
        self.watch(self.inner.put_if_absent_deferred(key, data))
    }
    fn sync_published(&self) -> Result<()> {
        self.watch(self.inner.sync_published())
    }
    fn put_volatile(&self, key: &str, data: &[u8]) -> Result<()> {
        self.watch(self.inner.put_volatile(key, data))
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.watch(self.inner.delete(key))
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.watch(self.inner.list(prefix))
    }
    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.watch(self.inner.stat(key))
    }
    fn touch(&self, key: &str) -> Result<bool> {
        self.watch(self.inner.touch(key))
    }
    fn lock_support(&self) -> Result<LockSupport> {
        self.watch(self.inner.lock_support())
    }
    fn retention(&self, key: &str) -> Result<Option<Retention>> {
        self.watch(self.inner.retention(key))
    }
    fn object_retention(&self, key: &str) -> Result<Option<Retention>> {
        self.watch(self.inner.object_retention(key))
    }
    fn undelete(&self, since: DateTime<Utc>) -> Result<Vec<String>> {
        self.watch(self.inner.undelete(since))
    }
    fn sweep_versions(&self, superseded_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<SweepReport> {
        self.watch(self.inner.sweep_versions(superseded_before, now))
    }
    fn retain(&self, key: &str, until: DateTime<Utc>, mode: LockMode) -> Result<Retention> {
        self.watch(self.inner.retain(key, until, mode))
    }
    fn server_now(&self) -> Result<SystemTime> {
        self.watch(self.inner.server_now())
    }
}

/// Keys of [`Repository::server_now`]'s probes (not leases).
pub const CLOCK_PROBE_PREFIX: &str = "locks/clock-";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::local_repository::LocalRepository;

    #[test]
    fn an_error_tap_tells_which_repository_returned_an_error() {
        let t = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (t.path().join("a"), t.path().join("b"));
        for d in [&a_dir, &b_dir] {
            std::fs::create_dir_all(d.join("dir")).unwrap();
        }
        let (a, b) = ErrorTap::pair(Arc::new(LocalRepository::new(&a_dir)), Arc::new(LocalRepository::new(&b_dir)));
        // Not found is no storage failure: nothing recorded.
        assert!(matches!(a.get("nothing"), Err(EngineError::NotFound { .. })));
        // Reading a directory as an object: an error about that object.
        let from_a = a.get("dir").unwrap_err();
        assert!(matches!(from_a, EngineError::Object { .. }), "{from_a:?}");
        assert_eq!((a.returned(&from_a), b.returned(&from_a)), (Some(1), None));
        // The same object and words from b, later: both match, b's is the newer.
        let from_b = b.get("dir").unwrap_err();
        assert_eq!((a.returned(&from_b), b.returned(&from_b)), (Some(1), Some(2)));
        // Another error of a is not b's.
        std::fs::create_dir_all(a_dir.join("other")).unwrap();
        let other = a.get("other").unwrap_err();
        assert_eq!((a.returned(&other), b.returned(&other)), (Some(3), None));
        assert_eq!(a.returned(&from_a), None, "a's last error is another now");
        assert_eq!(b.returned(&EngineError::Cancelled), None);
        // Successes pass through.
        std::fs::write(b_dir.join("k"), b"v").unwrap();
        assert_eq!(b.get("k").unwrap(), b"v");
        assert_eq!(b.returned(&from_b), Some(2), "a success records nothing");
    }
}
