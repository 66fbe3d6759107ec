//! The demo lab: real VMs to protect on a fresh install.
//!
//! `sendense lab init --dir DIR` ([`init`]) lays out two KVM host directories
//! in the format of [`crate::platforms::kvm::definition`]:
//!
//! ```text
//! DIR/lab.json                      what was made (see [`manifest`])
//! DIR/hosts/kvm-prod-01/host.json   production host: networks lan, dmz, storage (VLANs 10, 20, 30)
//! DIR/hosts/kvm-prod-01/vms/<vm>/   vm.json + qcow2 disks, six VMs
//! DIR/hosts/kvm-dr-01/host.json     the DR site: an empty host; lan, dmz, storage on the same VLANs
//!                                   in other subnets, and `isolated` (no uplink) for test failovers
//! ```
//!
//! Every disk is a qcow2 image with a real partition table (MBR on BIOS VMs,
//! GPT on UEFI ones, see [`partition`]) holding real filesystems (ext4,
//! FAT32, NTFS, swap; see [`filesystem`]) filled with generated but
//! plausible files ([`content`]): web sites and access logs, database heap
//! files, a department file share, a Windows system volume. Disks are sparse:
//! gigabytes of virtual size, tens of MiB of data. Each carries the Sendense
//! dirty bitmap ([`image::add_activity_bitmap`]).
//!
//! `sendense lab activity --dir DIR` ([`activity::round`]) then changes the
//! running VMs the way their guests would: log lines appended, files
//! created and rewritten, database pages overwritten in place. Every change
//! reaches the qcow2 through `qemu-io`, so the dirty bitmaps record it:
//! a partition is extracted to a raw file, edited there with the filesystem
//! tools, compared with the extract in 64 KiB blocks, and only the blocks
//! that differ are written back ([`image`]). Writers hold the disk's lock
//! ([`crate::platforms::kvm::definition::disk_lock`]) for the whole cycle.
//!
//! Nothing is mounted and nothing needs root. The tools come from Debian
//! packages (`qemu-utils`, `e2fsprogs`, `dosfstools`, `mtools`, `ntfs-3g`,
//! `wimtools`); a missing one is an error naming its package.

pub mod activity;
pub mod background;
pub mod catalog;
pub mod command;
pub mod content;
pub mod filesystem;
pub mod image;
pub mod guest;
pub mod guest_console;
pub mod host_import;
pub mod init;
pub mod libvirt_host;
pub mod guest_activity;
pub mod libvirt_lab;
pub mod manifest;
pub mod partition;
pub mod rng;
pub mod slot;
pub mod tool;

use std::path::PathBuf;

use crate::platforms::PlatformError;

pub use activity::{round, ActivityReport};
pub use init::{init, InitOptions, InitOutcome};
pub use manifest::LabManifest;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("'{dir}' is not empty and holds no Sendense lab (no lab.json): choose a new or empty directory for `sendense lab init`")]
    NotEmpty { dir: PathBuf },
    #[error("'{dir}' is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("'{dir}' holds a lab whose `lab init` did not finish: run `sendense lab init --force --dir {dir}` to build it again")]
    Incomplete { dir: PathBuf },
    #[error("'{dir}' is not a Sendense lab (no lab.json): create one with `sendense lab init --dir {dir}`")]
    NotALab { dir: PathBuf },
    #[error("lab manifest '{path}': {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("lab disk '{path}': {reason}")]
    Disk { path: PathBuf, reason: String },
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("{what}: {source}")]
    Io { what: String, #[source] source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io { what: what.into(), source }
    }
}

/// Bytes the files under `path` occupy on disk (allocated blocks, as `du`).
pub fn allocated_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            total += allocated_bytes(&entry?.path())?;
        }
    }
    Ok(total)
}

/// `12.3 MiB`-style sizes for reports.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
