//! Backups (restore points): one snapshot of one VM in a repository. Thanks
//! to deduplication every restore point is a full image; the chain only
//! tells which restore point an incremental read its unchanged blocks from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::jobs::BackupType;
use crate::NamedRef;

wire_enum! {
    /// What is known about a restore point's data.
    pub enum BackupStatus {
        /// Written and committed; not verified since.
        Available = "available",
        /// Every chunk was re-read and matched its digest.
        Verified = "verified",
        /// A verify found missing or damaged chunks.
        Corrupt = "corrupt",
    }
}

wire_enum! {
    /// A restore point's place in a repository.
    pub enum LocationRole {
        /// Where the backup wrote it.
        Primary = "primary",
        /// A copy in a second repository (3-2-1).
        Copy = "copy",
    }
}

wire_enum! {
    /// Whether a restore point is in a repository.
    pub enum LocationState {
        /// A copy job is writing it there.
        Copying = "copying",
        /// It is there (verified at the target for a copy).
        Present = "present",
        /// The copy failed (the job's log says why).
        Failed = "failed",
        /// It was expected there but is gone (repository unreachable or snapshot missing).
        Missing = "missing",
    }
}

/// One repository a restore point is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestorePointLocation {
    pub repository_id: String,
    pub repository_name: String,
    pub role: LocationRole,
    pub state: LocationState,
    /// Before this instant it cannot be deleted from that repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_until: Option<DateTime<Utc>>,
    /// When the copy was completed (copies only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_at: Option<DateTime<Utc>>,
    /// The lock there: the storage's (S3 Object Lock, as it last reported
    /// on the manifest in that repository) when it holds one, else
    /// Sendense's own `immutable_until` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<RestorePointLock>,
}

/// `POST /api/v1/restore-points/{id}/copy`: copy a restore point to another repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CopyRestorePointRequest {
    pub repository_id: String,
    /// Days the copy cannot be deleted at the target (0: none).
    #[serde(default)]
    pub immutable_days: u32,
}

/// One restore point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backup {
    pub id: String,
    pub vm_context_id: String,
    pub vm_name: String,
    /// The job that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    pub repository: NamedRef,
    /// Snapshot name and id in the repository (`sendense snapshots` shows them).
    pub snapshot_name: String,
    pub snapshot_id: String,
    /// The snapshot an incremental read its unchanged blocks from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_snapshot_id: Option<String>,
    pub backup_type: BackupType,
    pub status: BackupStatus,
    /// Sum of the disks' sizes: what a restore writes.
    pub logical_bytes: u64,
    /// Bytes the backup read from the VM.
    pub bytes_read: u64,
    /// Bytes the backup added to the repository.
    pub bytes_written: u64,
    pub created_at: DateTime<Utc>,
    /// Who refuses to delete it and until when: the storage (S3 Object
    /// Lock, the retention the storage reports on its manifest) or Sendense
    /// alone (`immutable_until`). None when it was never immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<RestorePointLock>,
    /// Before this instant the restore point cannot be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_until: Option<DateTime<Utc>>,
    /// When a verify job last checked it (`status` says how it went).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// What the last verify found wrong (a `corrupt` restore point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_reason: Option<String>,
    /// Every repository the restore point is in (the primary first).
    #[serde(default)]
    pub locations: Vec<RestorePointLocation>,
}

impl Backup {
    /// Whether the restore point is inside its immutability window at `now`.
    pub fn is_immutable_at(&self, now: DateTime<Utc>) -> bool {
        self.immutable_until.is_some_and(|u| u > now)
    }
}

wire_enum! {
    /// Who refuses a locked restore point's deletion.
    pub enum LockEnforcer {
        /// The storage itself (S3 Object Lock): not even the storage's own
        /// credentials can delete it before the date (compliance mode).
        Storage = "storage",
        /// Sendense refuses to delete or prune it; someone with the
        /// storage's credentials still could.
        Sendense = "sendense",
    }
}

/// A restore point's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestorePointLock {
    pub enforced_by: LockEnforcer,
    /// The storage's retention mode (`storage` only).
    #[serde(default)]
    pub mode: Option<crate::repository_setup::ObjectLockMode>,
    /// Before this instant it cannot be deleted.
    pub until: DateTime<Utc>,
    /// When the storage was last asked (`storage` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/backup/list`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupPage {
    pub items: Vec<Backup>,
    /// Restore points matching the filters, over every page.
    pub total: u64,
}

/// `GET /api/v1/backup/chain?vm=`: a VM's restore points, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupChain {
    pub vm_context_id: String,
    pub vm_name: String,
    pub backups: Vec<Backup>,
    pub full_count: u64,
    pub incremental_count: u64,
    /// Sum of the restore points' bytes_written: what the chain costs in the repository.
    pub bytes_written_total: u64,
}

wire_enum! {
    /// How a restore point relates to the one whose chain is shown.
    pub enum ChainRelation {
        /// An older point it reads unchanged blocks from (directly or through others).
        Ancestor = "ancestor",
        /// The point asked about.
        This = "this",
        /// A newer point that reads unchanged blocks from it (directly or through others).
        Descendant = "descendant",
    }
}

/// One restore point of a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainLink {
    pub relation: ChainRelation,
    pub backup: Backup,
}

/// `GET /api/v1/backup/{id}/chain`: a restore point's chain from the
/// catalog's parent links, oldest first: the points it reads from back to
/// its full, itself, and the points that read from it. Every restore point
/// is a whole image in the repository: deleting one leaves the others
/// restorable (the chunks they share stay until garbage collection finds
/// no point using them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointChain {
    pub backup_id: String,
    pub links: Vec<ChainLink>,
    /// The snapshot the oldest link names as its parent when that point is
    /// no longer in the catalog (deleted or pruned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_parent: Option<String>,
}
