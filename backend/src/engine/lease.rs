//! Leases: small objects under `locks/` that say "an operation is running".
//! A backup holds a `backup-<uuid>` lease from before it loads the chunk map
//! until its manifest is written; the lease lists the parent snapshot's index
//! objects it references without re-reading them. Garbage collection holds
//! the single `gc.lock` (create-if-absent). A lease whose process is gone
//! (same host, pid dead) or older than a day (other host) is stale and ignored.
//! A *pin* (`pin-<uuid>`) holds one snapshot while something outside the
//! repository reads it for a long time (an instant recovery runs a VM on
//! its disks): prune and forget refuse that snapshot and GC keeps its
//! chunks, until the pin is released or its process is gone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};
use super::repository::Repository;

pub const LOCK_PREFIX: &str = "locks/";
pub const GC_LOCK_KEY: &str = "locks/gc.lock";
const STALE_OTHER_HOST: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub kind: String,
    pub pid: u32,
    pub host: String,
    pub started_unix_ms: u64,
    #[serde(default)]
    pub pinned_indexes: Vec<String>,
    /// The snapshot (`name/id`) a pin holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
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
        }
    }
    pub fn started(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.started_unix_ms)
    }
    pub fn is_live(&self) -> bool {
        if self.host == hostname() {
            pid_alive(self.pid)
        } else {
            SystemTime::now().duration_since(self.started()).unwrap_or_default() < STALE_OTHER_HOST
        }
    }
}

/// A held lease; dropping it removes the object.
pub struct Lease<'a> {
    repo: &'a dyn Repository,
    key: String,
    pub info: LeaseInfo,
}

impl<'a> Lease<'a> {
    pub fn acquire_backup(repo: &'a dyn Repository, pinned_indexes: Vec<String>) -> Result<Lease<'a>> {
        let info = LeaseInfo::new("backup", pinned_indexes);
        let key = format!("{LOCK_PREFIX}backup-{}.json", uuid::Uuid::new_v4());
        repo.put(&key, &serde_json::to_vec(&info).expect("serialize lease"))?;
        Ok(Lease { repo, key, info })
    }

    /// The exclusive GC lock; a stale one is taken over.
    pub fn acquire_gc(repo: &'a dyn Repository) -> Result<Lease<'a>> {
        let info = LeaseInfo::new("gc", Vec::new());
        let body = serde_json::to_vec(&info).expect("serialize lease");
        for _ in 0..2 {
            if repo.put_if_absent(GC_LOCK_KEY, &body)? {
                return Ok(Lease { repo, key: GC_LOCK_KEY.into(), info });
            }
            let held = repo.get(GC_LOCK_KEY).ok().and_then(|b| serde_json::from_slice::<LeaseInfo>(&b).ok());
            match held {
                Some(h) if h.is_live() => break,
                _ => repo.delete(GC_LOCK_KEY)?,
            }
        }
        Err(EngineError::GcLocked { key: GC_LOCK_KEY.into() })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let _ = self.repo.delete(&self.key);
    }
}

/// The key of the pin named `pin_id`.
pub fn pin_key(pin_id: &str) -> String {
    format!("{LOCK_PREFIX}pin-{pin_id}.json")
}

/// Pins `name/id` (its manifest must exist) under `pin_id` (letters,
/// digits, '-'): returns the pin's key, to pass to [`unpin`]. The pin lives
/// until then or until this process ends.
pub fn pin(ds: &super::datastore::Datastore, name: &str, id: &str, pin_id: &str) -> Result<String> {
    if pin_id.is_empty() || !pin_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(EngineError::Invalid(format!("'{pin_id}' cannot name a pin: use letters, digits and '-'")));
    }
    let m = ds.load_manifest(name, id)?;
    let mut info = LeaseInfo::new("pin", m.disks.into_iter().map(|d| d.index).collect());
    info.snapshot = Some(format!("{name}/{id}"));
    let key = pin_key(pin_id);
    ds.repo.put(&key, &serde_json::to_vec(&info).expect("serialize pin"))?;
    Ok(key)
}

/// Releases a pin made by [`pin`] (gone already: nothing to do).
pub fn unpin(repo: &dyn Repository, key: &str) -> Result<()> {
    if !key.starts_with(LOCK_PREFIX) || !key.contains("/pin-") {
        return Err(EngineError::Invalid(format!("'{key}' is not a pin")));
    }
    repo.delete(key)
}

/// The snapshots (`name/id`) live pins hold.
pub fn pinned_snapshots(repo: &dyn Repository) -> Result<std::collections::HashSet<String>> {
    Ok(list_leases(repo)?
        .into_iter()
        .filter_map(|(_, info)| info.filter(|l| l.kind == "pin" && l.is_live()).and_then(|l| l.snapshot))
        .collect())
}

/// Every lease object with its parsed content (unparsable ones: `None`).
pub fn list_leases(repo: &dyn Repository) -> Result<Vec<(String, Option<LeaseInfo>)>> {
    Ok(repo
        .list(LOCK_PREFIX)?
        .into_iter()
        .map(|o| {
            let info = repo.get(&o.key).ok().and_then(|b| serde_json::from_slice(&b).ok());
            (o.key, info)
        })
        .collect())
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
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

    #[test]
    fn own_lease_is_live_dead_pid_is_not() {
        assert!(LeaseInfo::new("backup", vec![]).is_live());
        let mut l = LeaseInfo::new("backup", vec![]);
        l.pid = u32::MAX - 1;
        assert!(!l.is_live());
    }
}
