//! A snapshot's manifest: `snapshots/<name>/<id>.json`. It is the last object
//! a backup writes (atomic replace-put after every pack, pack index and fixed
//! index is durable), so a snapshot is visible if and only if it is complete.

use serde::{Deserialize, Serialize};

pub const SNAPSHOT_PREFIX: &str = "snapshots/";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiskEntry {
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    /// Key of the disk's fixed index object.
    pub index: String,
    /// The platform's changed-block-tracking token the disk was read up to
    /// (a KVM bitmap generation, an EBS snapshot id): the next incremental
    /// asks the platform for changes since it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cbt_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupStats {
    /// Bytes really read from the source.
    pub bytes_read: u64,
    /// Bytes known to be zeros (holes, unallocated clusters), not read.
    #[serde(default)]
    pub bytes_skipped: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub chunks_zero: u64,
    /// Plain bytes of the new chunks.
    pub bytes_new: u64,
    /// Bytes of objects this backup wrote (packs, pack indexes, fixed indexes).
    pub bytes_written: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub version: u32,
    pub id: String,
    /// The VM or image name the snapshot belongs to (`--id NAME`).
    pub name: String,
    /// RFC 3339, UTC.
    pub created: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// RFC 3339; before this instant the snapshot cannot be deleted or pruned.
    #[serde(default)]
    pub immutable_until: Option<String>,
    pub disks: Vec<DiskEntry>,
    #[serde(default)]
    pub stats: BackupStats,
    /// The VM as the platform described it at backup time (CPU, memory,
    /// firmware, NICs), so a restore can rebuild it on any platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<shared_types::platform::VmInfo>,
    /// The VM's definition in its platform's own terms (a libvirt domain
    /// XML), so a restore onto that kind of platform rebuilds it as it was
    /// (boot, devices) with new identity, disks and networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_definition: Option<String>,
}

pub fn manifest_key(name: &str, id: &str) -> String {
    format!("{SNAPSHOT_PREFIX}{name}/{id}.json")
}

/// (name, id) from a manifest key.
pub fn parse_manifest_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(SNAPSHOT_PREFIX)?.strip_suffix(".json")?;
    let (name, id) = rest.split_once('/')?;
    if id.contains('/') {
        return None;
    }
    Some((name.to_string(), id.to_string()))
}

/// Names and ids: letters, digits, `.`, `_`, `-`; not starting with `.`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Manifest {
    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.created).ok().map(|d| d.with_timezone(&chrono::Utc))
    }
    pub fn immutable_at(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.immutable_until
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|u| u > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names() {
        let k = manifest_key("vm-1", "20261121T223000.123Z-ab12");
        assert_eq!(parse_manifest_key(&k), Some(("vm-1".into(), "20261121T223000.123Z-ab12".into())));
        assert!(valid_name("vm_1.a-b"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
    }
}
