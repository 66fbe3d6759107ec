//! File-level restore: a session ("mount") opened on a restore point reads
//! its disks' partition tables and filesystems straight from the
//! deduplicated store (nothing is mounted by the kernel, no image is
//! written), lists directories page by page and downloads files or whole
//! directories as a tar stream.
//!
//! Paths inside a session start with the volume: `/` lists the volumes
//! (`disk0-p1`, ...), `/disk0-p1/etc/hosts` is a file on that volume.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Minutes a session stays open without a request.
pub const MOUNT_IDLE_MINUTES: i64 = 15;
/// Most sessions open at once.
pub const MOUNTS_MAX: usize = 16;
/// Largest page of a directory listing.
pub const FILES_PAGE_MAX: u64 = 1000;

/// `POST /api/v1/restore/mount`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// The restore point (`GET /api/v1/backup/list`).
    pub backup_id: String,
    /// Read the restore point from this repository (one of its locations);
    /// left out: the primary when it is reachable, otherwise a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
}

/// One partition (or a whole unpartitioned disk) of a restore point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Volume {
    /// First path component inside the session: `disk0-p1`, or `disk0` for a disk without a table.
    pub id: String,
    pub disk: String,
    /// Partition number in the table (1-based), if the disk has a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// `gpt`, `mbr` or `none`.
    pub table: String,
    pub start_bytes: u64,
    pub size_bytes: u64,
    /// Partition type as the table names it (e.g. `Linux filesystem`, `0x83`).
    pub partition_type: String,
    /// The filesystem found by its signature: `ext4`, `ntfs`, `fat32`, `swap`, `unknown`...
    pub filesystem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether its files can be browsed.
    pub browsable: bool,
    /// Why not, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An open file-level restore session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mount {
    pub id: String,
    pub backup_id: String,
    pub vm_name: String,
    /// When the restore point was taken.
    pub backup_created_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    pub last_used_at: DateTime<Utc>,
    /// Closed automatically when idle until then.
    pub expires_at: DateTime<Utc>,
    pub volumes: Vec<Volume>,
    /// Milliseconds it took to open (partition tables and filesystems read).
    pub open_ms: u64,
}

wire_enum! {
    /// What a directory entry is.
    pub enum FileKind {
        Directory = "directory",
        File = "file",
        /// Shown with its target, never followed.
        Symlink = "symlink",
        /// Devices, sockets, FIFOs, reparse points...
        Other = "other",
    }
}

/// One entry of a directory in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileEntry {
    pub name: String,
    /// Full path inside the session (`/disk0-p1/etc/hosts`).
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<DateTime<Utc>>,
    /// Unix permission bits (ext), e.g. `0o644` as 420.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Windows attributes (NTFS, FAT): `read-only`, `hidden`, `system`, `archive`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

/// `GET /api/v1/restore/{mount_id}/files?path=&offset=&limit=`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileListing {
    pub mount_id: String,
    pub path: String,
    /// Entries in the directory in all.
    pub total: u64,
    pub offset: u64,
    /// Sorted by name.
    pub entries: Vec<FileEntry>,
}

/// Most paths one file restore takes.
pub const RESTORE_FILES_MAX_PATHS: usize = 1000;
/// Most skipped entries a file restore's result lists.
pub const RESTORE_FILES_SKIPPED_LISTED: usize = 1000;

wire_enum! {
    /// What a file restore does when the destination already holds a file
    /// of the same name.
    pub enum ConflictPolicy {
        /// Leave the existing file and report it as skipped.
        Skip = "skip",
        /// Replace it with the restore point's version.
        Overwrite = "overwrite",
        /// Keep both: the restored copy gets a `.restored-YYYYMMDD-HHMMSS` suffix.
        KeepBoth = "keep_both",
    }
}

/// Where restored files go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileRestoreDestination {
    /// A directory on the Sendense server's host (absolute path; created if
    /// missing). Each selected path lands under it by its name, directories
    /// with everything inside.
    HostDirectory { path: String },
    /// Back into a VM's disk, into the filesystem of one of its volumes.
    /// The VM must be powered off. `directory` is the directory inside that
    /// volume; without it every file goes back to where it was.
    VmDisk {
        vm_id: String,
        /// Volume id as a session names it (`disk0-p1`).
        volume: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        directory: Option<String>,
    },
}

/// `POST /api/v1/restore/{mount_id}/restore-files`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileRestoreRequest {
    /// Session paths of the files and directories to restore
    /// (`/disk0-p1/etc/nginx`), all on the same volume.
    pub paths: Vec<String>,
    pub destination: FileRestoreDestination,
    pub conflict: ConflictPolicy,
}

/// One path a file restore did not write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkippedFile {
    /// Session path.
    pub path: String,
    pub reason: String,
}

/// What a file restore wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRestoreResult {
    pub mount_id: String,
    /// Where the files went, in words (`/srv/restore on the Sendense host`,
    /// `web-01 disk0-p1:/etc`).
    pub destination: String,
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// What was not written and why: the first [`RESTORE_FILES_SKIPPED_LISTED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedFile>,
    /// Entries not written in all (`skipped` may list fewer).
    #[serde(default)]
    pub skipped_total: u64,
    pub duration_ms: u64,
}
