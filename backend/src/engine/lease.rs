//! Leases: small objects under `locks/` that say "an operation is running".
//! A backup holds a `backup-<uuid>` lease from before it loads the chunk map
//! until its manifest is written; the lease lists the parent snapshot's index
//! objects it references without re-reading them. Garbage collection holds
//! the single `gc.lock` (create-if-absent, with a random token: an
//! "already exists" answer to our own retried write is recognised as ours).
//! A *pin* (`pin-<uuid>`) holds one snapshot while something outside the
//! repository reads it for a long time (an instant recovery runs a VM on
//! its disks): prune and forget refuse that snapshot and GC keeps its
//! chunks, until the pin is released or its process is gone.
//!
//! Liveness never compares the caller's clock with an object's time: every
//! lease is rewritten by a heartbeat every [`HEARTBEAT`], and a lease is live
//! while the storage's clock ([`Repository::server_now`]) is less than
//! [`LEASE_TTL`] past the lease object's own modification time (both read
//! from the storage). On the lease's own host, a dead pid makes it stale at
//! once (a fast path; a live pid with a stale heartbeat is a reused pid).

use std::collections::HashMap;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};
use super::repository::{Repository, CLOCK_PROBE_PREFIX};

pub const LOCK_PREFIX: &str = "locks/";
pub const GC_LOCK_KEY: &str = "locks/gc.lock";
/// How often a held lease is rewritten.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A lease not rewritten for this long (by the storage's clock) is stale.
pub const LEASE_TTL: Duration = Duration::from_secs(600);
/// A holder that could not refresh its lease for this long (by its own
/// monotonic clock) stops before it commits anything: others may already
/// consider the lease stale.
pub const LEASE_SAFE_AGE: Duration = Duration::from_secs(420);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub kind: String,
    pub pid: u32,
    pub host: String,
    /// When the holder started, by its own clock: for people, never compared.
    pub started_unix_ms: u64,
    #[serde(default)]
    pub pinned_indexes: Vec<String>,
    /// The snapshot (`name/id`) a pin holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Random, per holder: the GC lock's owner recognises its own object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Rewritten every [`HEARTBEAT`] (leases of older versions are not).
    #[serde(default)]
    pub heartbeat: bool,
}

impl LeaseInfo {
    pub fn new(kind: &str, pinned_indexes: Vec<String>) -> Self {
        LeaseInfo {
            kind: kind.into(),
            pid: std::process::id(),
            host: hostname(),
            started_unix_ms: unix_ms(SystemTime::now()),
            pinned_indexes,
            snapshot: None,
            token: Some(random_token()),
            heartbeat: true,
        }
    }
    pub fn started(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.started_unix_ms)
    }
    /// Whether the lease is live, its object last written at `modified` and
    /// the storage's clock at `server_now` (both storage times).
    pub fn is_live(&self, modified: SystemTime, server_now: SystemTime) -> bool {
        judge(self, modified, server_now, &hostname(), pid_alive)
    }
}

/// The liveness rule, with the host and pid check given (unit-tested).
pub fn judge(l: &LeaseInfo, modified: SystemTime, server_now: SystemTime, this_host: &str, alive: impl Fn(u32) -> bool) -> bool {
    // A time in the future (another second of the same clock) is fresh.
    let fresh = server_now.duration_since(modified).map(|age| age < LEASE_TTL).unwrap_or(true);
    if l.host == this_host {
        // A live pid of an older version (no heartbeat) is trusted as before.
        alive(l.pid) && (fresh || !l.heartbeat)
    } else {
        fresh
    }
}

/// The storage's clock, asked once and only when needed.
pub struct ServerClock<'a> {
    repo: &'a dyn Repository,
    now: Option<SystemTime>,
}

impl<'a> ServerClock<'a> {
    pub fn new(repo: &'a dyn Repository) -> Self {
        ServerClock { repo, now: None }
    }
    pub fn known(repo: &'a dyn Repository, now: SystemTime) -> Self {
        ServerClock { repo, now: Some(now) }
    }
    pub fn now(&mut self) -> Result<SystemTime> {
        if let Some(t) = self.now {
            return Ok(t);
        }
        let t = self.repo.server_now()?;
        self.now = Some(t);
        Ok(t)
    }
    /// Liveness of a lease (the clock is asked only for another host's lease).
    pub fn is_live(&mut self, l: &LeaseInfo, modified: SystemTime) -> Result<bool> {
        if l.host == hostname() && !pid_alive(l.pid) {
            return Ok(false);
        }
        Ok(l.is_live(modified, self.now()?))
    }
}

/// A held lease, rewritten by a heartbeat thread; dropping it stops the
/// heartbeat and removes the object.
pub struct Lease {
    repo: Arc<dyn Repository>,
    key: String,
    pub info: LeaseInfo,
    beat: Option<Heartbeat>,
    last_ok: Arc<Mutex<Instant>>,
}

struct Heartbeat {
    stop: Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Lease {
    pub fn acquire_backup(repo: Arc<dyn Repository>, pinned_indexes: Vec<String>) -> Result<Lease> {
        let info = LeaseInfo::new("backup", pinned_indexes);
        let key = format!("{LOCK_PREFIX}backup-{}.json", uuid::Uuid::new_v4());
        // Not synced: after a crash the backup is gone and its lease stale
        // (an unreadable one counts as stale).
        repo.put_volatile(&key, &serde_json::to_vec(&info).expect("serialize lease"))?;
        Ok(Lease::held(repo, key, info))
    }

    /// The exclusive GC lock (create-if-absent); a stale one is taken over.
    /// "Already exists" can be the answer to our own write retried after a
    /// lost reply: the token in the object tells.
    pub fn acquire_gc(repo: Arc<dyn Repository>) -> Result<Lease> {
        let info = LeaseInfo::new("gc", Vec::new());
        let body = serde_json::to_vec(&info).expect("serialize lease");
        for _ in 0..2 {
            if repo.put_if_absent(GC_LOCK_KEY, &body)? {
                return Ok(Lease::held(repo, GC_LOCK_KEY.into(), info));
            }
            let held = read_lease(repo.as_ref(), GC_LOCK_KEY)?;
            let Some((h, modified)) = held else { continue }; // released meanwhile
            if h.as_ref().is_some_and(|h| h.token.is_some() && h.token == info.token) {
                return Ok(Lease::held(repo, GC_LOCK_KEY.into(), info));
            }
            let live = match &h {
                Some(h) => ServerClock::new(repo.as_ref()).is_live(h, modified)?,
                None => false,
            };
            if live {
                break;
            }
            // Stale: remove it unless someone took it over since we read it.
            let again = read_lease(repo.as_ref(), GC_LOCK_KEY)?;
            if again.map(|(a, _)| a.and_then(|a| a.token)) == Some(h.and_then(|h| h.token)) {
                repo.delete(GC_LOCK_KEY)?;
            }
        }
        Err(EngineError::GcLocked { key: GC_LOCK_KEY.into() })
    }

    fn held(repo: Arc<dyn Repository>, key: String, info: LeaseInfo) -> Lease {
        let last_ok = Arc::new(Mutex::new(Instant::now()));
        let (stop, rx) = channel::<()>();
        let body = serde_json::to_vec(&info).expect("serialize lease");
        let thread = {
            let (repo, key, last_ok) = (repo.clone(), key.clone(), last_ok.clone());
            std::thread::Builder::new().name("sendense-lease".into()).spawn(move || loop {
                match rx.recv_timeout(heartbeat_interval()) {
                    Err(RecvTimeoutError::Timeout) => match repo.put(&key, &body) {
                        Ok(()) => *last_ok.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now(),
                        Err(e) => tracing::warn!(%key, error = %e, "refreshing a lease"),
                    },
                    _ => return,
                }
            })
        };
        let beat = match thread {
            Ok(thread) => Some(Heartbeat { stop, thread }),
            Err(e) => {
                tracing::warn!(%key, error = %e, "no heartbeat thread for a lease");
                None
            }
        };
        Lease { repo, key, info, beat, last_ok }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Refuses when the heartbeat has not landed for [`LEASE_SAFE_AGE`]
    /// (measured on this process's monotonic clock): a GC elsewhere may
    /// already treat the lease as stale, so nothing may be committed.
    pub fn check_fresh(&self) -> Result<()> {
        let age = self.last_ok.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        if self.beat.is_none() || age > LEASE_SAFE_AGE {
            return Err(EngineError::Pipeline(format!(
                "{}: the lease '{}' could not be refreshed for {} s (the storage refused or did not answer); nothing was committed",
                self.repo.describe(),
                self.key,
                age.as_secs()
            )));
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(b) = self.beat.take() {
            drop(b.stop);
            let _ = b.thread.join();
        }
        if self.key == GC_LOCK_KEY {
            // Only our own lock (a takeover after a long outage is someone else's).
            match read_lease(self.repo.as_ref(), GC_LOCK_KEY) {
                Ok(Some((Some(h), _))) if h.token != self.info.token => return,
                Ok(None) => return,
                _ => {}
            }
        }
        let _ = self.repo.delete(&self.key);
    }
}

/// The heartbeat period; `SENDENSE_LEASE_HEARTBEAT_MS` shortens it in tests.
fn heartbeat_interval() -> Duration {
    static I: OnceLock<Duration> = OnceLock::new();
    *I.get_or_init(|| {
        std::env::var("SENDENSE_LEASE_HEARTBEAT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms >= 10)
            .map(Duration::from_millis)
            .unwrap_or(HEARTBEAT)
    })
}

/// A lease object and its modification time; `None` when absent, an
/// unparsable body as `Some((None, _))`.
fn read_lease(repo: &dyn Repository, key: &str) -> Result<Option<(Option<LeaseInfo>, SystemTime)>> {
    let Some(info) = repo.stat(key)? else { return Ok(None) };
    let body = match repo.get(key) {
        Ok(b) => b,
        Err(EngineError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some((serde_json::from_slice(&body).ok(), info.modified)))
}

/// The key of the pin named `pin_id`.
pub fn pin_key(pin_id: &str) -> String {
    format!("{LOCK_PREFIX}pin-{pin_id}.json")
}

/// Pins `name/id` (its manifest must exist) under `pin_id` (letters,
/// digits, '-'): returns the pin's key, to pass to [`unpin`]. The pin lives
/// until then or until this process ends; this process rewrites it every
/// [`HEARTBEAT`] meanwhile.
pub fn pin(ds: &super::datastore::Datastore, name: &str, id: &str, pin_id: &str) -> Result<String> {
    if pin_id.is_empty() || !pin_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(EngineError::Invalid(format!("'{pin_id}' cannot name a pin: use letters, digits and '-'")));
    }
    let m = ds.load_manifest(name, id)?;
    let mut info = LeaseInfo::new("pin", m.disks.into_iter().map(|d| d.index).collect());
    info.snapshot = Some(format!("{name}/{id}"));
    let key = pin_key(pin_id);
    let body = serde_json::to_vec(&info).expect("serialize pin");
    ds.repo.put(&key, &body)?;
    pin_beats().register(ds.repo.clone(), &key, body);
    Ok(key)
}

/// Releases a pin made by [`pin`] (gone already: nothing to do).
pub fn unpin(repo: &dyn Repository, key: &str) -> Result<()> {
    if !key.starts_with(LOCK_PREFIX) || !key.contains("/pin-") {
        return Err(EngineError::Invalid(format!("'{key}' is not a pin")));
    }
    pin_beats().release(repo, key);
    repo.delete(key)
}

/// The pins of this process and the one thread that rewrites them.
struct PinBeats {
    pins: Mutex<HashMap<(String, String), (Arc<dyn Repository>, Vec<u8>)>>,
    started: OnceLock<()>,
}

fn pin_beats() -> &'static PinBeats {
    static P: OnceLock<PinBeats> = OnceLock::new();
    P.get_or_init(|| PinBeats { pins: Mutex::default(), started: OnceLock::new() })
}

impl PinBeats {
    fn register(&'static self, repo: Arc<dyn Repository>, key: &str, body: Vec<u8>) {
        self.pins.lock().unwrap_or_else(|e| e.into_inner()).insert((repo.describe(), key.to_string()), (repo, body));
        self.started.get_or_init(|| {
            let _ = std::thread::Builder::new().name("sendense-pins".into()).spawn(move || loop {
                std::thread::sleep(heartbeat_interval());
                let pins: Vec<_> = self
                    .pins
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|((_, k), (r, b))| (k.clone(), r.clone(), b.clone()))
                    .collect();
                for (key, repo, body) in pins {
                    // Released meanwhile: not written back.
                    let still = self.pins.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&(repo.describe(), key.clone()));
                    if still {
                        if let Err(e) = repo.put(&key, &body) {
                            tracing::warn!(%key, error = %e, "refreshing a pin");
                        }
                    }
                }
            });
        });
    }
    fn release(&self, repo: &dyn Repository, key: &str) {
        self.pins.lock().unwrap_or_else(|e| e.into_inner()).remove(&(repo.describe(), key.to_string()));
    }
}

/// The snapshots (`name/id`) live pins hold.
pub fn pinned_snapshots(repo: &dyn Repository) -> Result<std::collections::HashSet<String>> {
    let mut clock = ServerClock::new(repo);
    let mut out = std::collections::HashSet::new();
    for l in list_leases(repo)? {
        if let Some(info) = l.info.filter(|i| i.kind == "pin") {
            if clock.is_live(&info, l.modified)? {
                out.extend(info.snapshot);
            }
        }
    }
    Ok(out)
}

/// One object under `locks/`.
#[derive(Debug, Clone)]
pub struct LeaseObject {
    pub key: String,
    /// Storage time of its last write (heartbeat).
    pub modified: SystemTime,
    /// Its content; `None` when unparsable.
    pub info: Option<LeaseInfo>,
}

/// Every lease object (not the clock probes) with its parsed content; one
/// removed between list and read is left out.
pub fn list_leases(repo: &dyn Repository) -> Result<Vec<LeaseObject>> {
    let mut out = Vec::new();
    for o in repo.list(LOCK_PREFIX)? {
        if o.key.starts_with(CLOCK_PROBE_PREFIX) {
            continue;
        }
        let body = match repo.get(&o.key) {
            Ok(b) => b,
            Err(EngineError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        out.push(LeaseObject { key: o.key, modified: o.modified, info: serde_json::from_slice(&body).ok() });
    }
    Ok(out)
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn random_token() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        return uuid::Uuid::new_v4().simple().to_string();
    }
    hex::encode(b)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Whether process `pid` of this machine runs (a zombie does not).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; a zombie has exited.
        Ok(stat) => !matches!(stat.rsplit(')').next().map(str::trim_start).and_then(|s| s.chars().next()), Some('Z') | Some('X')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::local_repository::LocalRepository;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn liveness_is_judged_by_storage_times_and_the_pid_on_its_host() {
        let mut l = LeaseInfo::new("backup", vec![]);
        l.host = "other".into();
        // Another host: only the storage's two times count, never this clock.
        assert!(judge(&l, at(0), at(599), "here", |_| false));
        assert!(!judge(&l, at(0), at(600), "here", |_| true));
        assert!(judge(&l, at(10), at(3), "here", |_| false), "a write in the clock's next second is fresh");
        // Its own host: a dead pid is stale at once, a live one with a fresh heartbeat is live.
        l.host = "here".into();
        assert!(!judge(&l, at(0), at(1), "here", |_| false));
        assert!(judge(&l, at(0), at(1), "here", |_| true));
        assert!(!judge(&l, at(0), at(700), "here", |_| true), "live pid, no heartbeat for 700 s: a reused pid");
        l.heartbeat = false;
        assert!(judge(&l, at(0), at(90_000), "here", |_| true), "an older version's lease on a live pid");
    }

    #[test]
    fn own_lease_is_live_dead_pid_is_not() {
        let now = SystemTime::now();
        assert!(LeaseInfo::new("backup", vec![]).is_live(now, now));
        let mut l = LeaseInfo::new("backup", vec![]);
        l.pid = u32::MAX - 1;
        assert!(!l.is_live(now, now));
    }

    #[test]
    fn gc_lock_is_exclusive_and_our_own_retried_write_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let repo: Arc<dyn Repository> = Arc::new(LocalRepository::new(dir.path()));
        let a = Lease::acquire_gc(repo.clone()).unwrap();
        assert!(matches!(Lease::acquire_gc(repo.clone()), Err(EngineError::GcLocked { .. })));
        // "Already exists" for a write of ours that landed: recognised by its token.
        let token = a.info.token.clone();
        let mine = LeaseInfo { token: token.clone(), ..a.info.clone() };
        assert!(!repo.put_if_absent(GC_LOCK_KEY, &serde_json::to_vec(&mine).unwrap()).unwrap());
        let held = read_lease(repo.as_ref(), GC_LOCK_KEY).unwrap().unwrap().0.unwrap();
        assert_eq!(held.token, token);
        drop(a);
        assert!(repo.stat(GC_LOCK_KEY).unwrap().is_none(), "released");
        // A dead holder's lock is taken over.
        let mut dead = LeaseInfo::new("gc", vec![]);
        dead.pid = u32::MAX - 1;
        repo.put(GC_LOCK_KEY, &serde_json::to_vec(&dead).unwrap()).unwrap();
        let b = Lease::acquire_gc(repo.clone()).unwrap();
        assert_ne!(b.info.token, dead.token);
        // Someone else's lock is not removed by our drop.
        repo.put(GC_LOCK_KEY, &serde_json::to_vec(&dead).unwrap()).unwrap();
        drop(b);
        assert!(repo.stat(GC_LOCK_KEY).unwrap().is_some());
    }

    #[test]
    fn clock_probes_are_not_leases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let repo = LocalRepository::new(dir.path());
        repo.put(&format!("{CLOCK_PROBE_PREFIX}x"), b"clock probe").unwrap();
        let _lease = Lease::acquire_backup(Arc::new(LocalRepository::new(dir.path())), vec![]).unwrap();
        let leases = list_leases(&repo).unwrap();
        assert_eq!(leases.len(), 1, "{leases:?}");
        assert!(leases[0].key.contains("/backup-"));
        let now = repo.server_now().unwrap();
        assert!(now.duration_since(SystemTime::now() - Duration::from_secs(5)).is_ok());
    }
}
