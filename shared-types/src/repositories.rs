//! Repositories: where backups live (a local directory, also an NFS/CIFS
//! mount; an S3-compatible bucket; an Azure Blob container), with capacity
//! and the deduplication and compression the engine really achieved. Adding
//! and changing them: [`crate::repository_setup`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::repository_setup::{Immutability, ObjectLockMode};

wire_enum! {
    /// Storage behind a repository.
    pub enum RepositoryKind {
        /// A directory on the server (also an NFS/CIFS mount).
        Local = "local",
        /// An S3-compatible bucket (AWS, MinIO, Ceph RGW…), optionally with Object Lock.
        S3 = "s3",
        /// An Azure Blob Storage container.
        Azure = "azure",
    }
}

wire_enum! {
    /// Whether the repository can be used.
    pub enum RepositoryStatus {
        Online = "online",
        /// The directory is missing, unreadable or not a repository: see `error`.
        Unavailable = "unavailable",
        /// An operator took it out of service: new backups are refused and
        /// queued ones wait until maintenance ends (see `maintenance`).
        Maintenance = "maintenance",
        /// It opens, but the storage failed the last write to it (full, over
        /// quota, refusing writes or the credentials): see `storage_failure`.
        /// The next successful backup or copy to it, or a successful test
        /// (`POST /api/v1/repositories/{id}/test`), clears it.
        Degraded = "degraded",
    }
}

wire_enum! {
    /// What the storage behind a repository did when a write failed.
    pub enum StorageFailureCause {
        /// Full or over its quota: it refuses new objects (507, QuotaExceeded, ENOSPC).
        Full = "full",
        /// It refuses this server's writes or credentials (403, 401).
        Refused = "refused",
        /// The endpoint or directory did not answer (connection refused, timeout).
        Unreachable = "unreachable",
        /// Any other storage error (5xx after retries, kept throttling, I/O errors).
        Failed = "failed",
    }
}

/// The last failure of the storage behind a repository: what a job (or a
/// test) met when writing there, kept until a write there succeeds again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageFailure {
    pub at: DateTime<Utc>,
    pub cause: StorageFailureCause,
    /// The storage's answer in words (the failed job's error).
    pub message: String,
    /// The job that met it; none when a test found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// Where an S3 or Azure repository lives: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default)]
    pub virtual_hosted: bool,
    /// S3: the access key id (not secret; the secret key is never returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Azure: which credential is stored (`account_key` or `sas`), never its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Filesystem capacity under the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Capacity {
    pub total_bytes: u64,
    /// Available to the server (excludes blocks reserved for root).
    pub free_bytes: u64,
    pub used_bytes: u64,
}

/// What the engine measured in the repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryStats {
    pub snapshots: u64,
    /// Sum of every snapshot's disk sizes.
    pub logical_bytes: u64,
    /// Plain bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Stored (compressed, encrypted) bytes of those chunks.
    pub stored_bytes: u64,
    /// Everything in the repository: packs, indexes, manifests.
    pub repository_bytes: u64,
    /// logical / unique.
    pub dedup_ratio: f64,
    /// unique / stored.
    pub compression_ratio: f64,
}

/// A repository with its capacity and statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repository {
    pub id: String,
    pub name: String,
    pub kind: RepositoryKind,
    /// local: the directory; s3/azure: the location in words
    /// (`s3://bucket/prefix`, `azure://account/container/prefix`).
    pub path: String,
    /// Where an object-store repository lives (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ObjectLocation>,
    /// New flows go to the default repository unless they name another.
    #[serde(default)]
    pub is_default: bool,
    /// Restore points stay undeletable this many days (0 = off).
    #[serde(default)]
    pub immutable_days: u32,
    /// Who enforces that: the storage (S3 Object Lock), Sendense only
    /// (Azure, local directories) or nobody (`immutable_days` 0).
    pub immutability: Immutability,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<ObjectLockMode>,
    pub status: RepositoryStatus,
    /// Why the repository is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The storage failed the last write there (status `degraded` unless
    /// unavailable or in maintenance); gone once a write there succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_failure: Option<StorageFailure>,
    /// Set while the repository is in maintenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// Restore points the catalog holds in this repository.
    pub backup_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<RepositoryStats>,
    /// Verify and GC: schedules, last results and next runs.
    pub upkeep: Upkeep,
    /// Chunks, indexes and manifests are encrypted (AES-256-GCM) with a key
    /// kept outside the repository (`DATA_DIR/keys/<id>.key`); export it
    /// with `GET /api/v1/repositories/{id}/key` (admin).
    #[serde(default)]
    pub encrypted: bool,
    /// Identifies the key (start of its check value) when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    pub created_at: DateTime<Utc>,
}

wire_enum! {
    /// How a repository's last verify ended.
    pub enum VerifyOutcome {
        /// Every restore point read back whole.
        Ok = "ok",
        /// At least one restore point is damaged (see `damaged`).
        Damaged = "damaged",
        /// The verify itself could not run to its end (see the job's log).
        Failed = "failed",
    }
}

/// A repository's last verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastVerify {
    pub at: DateTime<Utc>,
    pub outcome: VerifyOutcome,
    /// Restore points found damaged.
    pub damaged: u64,
}

/// A repository's last garbage collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastGc {
    pub at: DateTime<Utc>,
    /// Bytes of unreferenced packs it removed.
    pub reclaimed_bytes: u64,
}

/// Scheduled maintenance of a repository: verify re-reads every restore
/// point, GC gives back the space retention freed. Schedules are five-field
/// cron patterns in UTC; `None` when that schedule is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Upkeep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verify: Option<LastVerify>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_gc: Option<LastGc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_verify_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_gc_at: Option<DateTime<Utc>>,
}

/// Weekly, Sunday 03:00 UTC.
pub const DEFAULT_VERIFY_SCHEDULE: &str = "0 3 * * 0";
/// Daily at 04:30 UTC, after the night's backups applied their retention.
pub const DEFAULT_GC_SCHEDULE: &str = "30 4 * * *";

/// `PATCH /api/v1/repositories/{id}/maintenance-schedule`: a field left out
/// stays as it is; `""` turns that schedule off; `"default"` restores the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaintenanceScheduleRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_schedule: Option<String>,
}

/// Why and since when a repository is in maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Maintenance {
    pub reason: String,
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `PUT /api/v1/repositories/{id}/maintenance`: enter (with a reason) or end maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetMaintenanceRequest {
    pub enabled: bool,
    /// Required when entering maintenance, e.g. "disk replacement".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Longest maintenance reason, in characters.
pub const MAINTENANCE_REASON_MAX: usize = 200;

/// `POST /api/v1/repositories/{id}/undelete` (admins): on a versioned S3
/// bucket (Object Lock), remove the delete markers made at or after `since`
/// that hide the repository's objects (someone with the storage's
/// credentials deleted them; the locked versions stayed), then bring the
/// catalog back in line with the snapshots that reappear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UndeleteRequest {
    /// Delete markers made at or after this instant (the storage's clock) are removed.
    pub since: DateTime<Utc>,
}

/// A snapshot an undelete made visible again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UndeletedSnapshot {
    pub snapshot_name: String,
    pub snapshot_id: String,
    /// Its restore point in the catalog (none: a snapshot of no known VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The catalog had lost it and it was recorded again now.
    pub recorded: bool,
}

/// What an undelete brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UndeleteReport {
    /// Objects whose delete marker was removed.
    pub objects_restored: u64,
    pub snapshots: Vec<UndeletedSnapshot>,
}
