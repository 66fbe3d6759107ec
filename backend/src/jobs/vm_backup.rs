//! Backing up one VM from a platform into a repository: every disk read
//! through the connector (point in time, changed ranges since the previous
//! snapshot's CBT token), one snapshot in the VM's own snapshot group, and
//! the disks' change tracking told whether the snapshot was committed.
//!
//! Identity: the caller names the snapshot group (`BackupOptions::name`)
//! after the managed VM's stable id ([`snapshot_group`]), never after its
//! name, which two VMs can share. The group is also the owner of the disks'
//! change tokens, and a parent restore point is only ever taken from the
//! same group and only when it describes the same platform VM.

use std::sync::Arc;

use crate::engine::backup::{self, BackupOptions, DiskSource};
use crate::engine::datastore::Datastore;
use crate::engine::manifest::Manifest;
use crate::engine::progress::Progress;
use crate::engine::EngineError;
use crate::platforms::{DiskRead, Platform, Quiesce};

use super::JobError;

/// How one disk was read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskReport {
    pub disk: String,
    pub size: u64,
    /// `true`: only changed ranges were read.
    pub incremental: bool,
    /// Bytes the changed ranges cover (incremental reads).
    pub changed_bytes: u64,
    pub full_read_reason: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VmBackupReport {
    pub vm: String,
    pub snapshot: String,
    pub parent: Option<String>,
    pub disks: Vec<DiskReport>,
    /// Whether the guest was quiesced for the point in time (platforms
    /// that read whole VMs say).
    pub quiesce: Option<Quiesce>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub duration_ms: u64,
    /// The committed snapshot's manifest.
    #[serde(skip)]
    pub manifest: Manifest,
}

/// The snapshot group (and change-token owner) of the managed VM `vm_id`.
pub fn snapshot_group(vm_id: &str) -> String {
    format!("vm-{vm_id}")
}

/// Backs up `vm` (name or platform id) into `ds` as a snapshot of the group
/// `opts.name`, incremental where change tracking allows.
pub fn backup_vm(platform: &dyn Platform, vm: &str, ds: &Datastore, opts: &BackupOptions, progress: &Progress) -> Result<VmBackupReport, JobError> {
    backup_vm_with(platform, vm, ds, opts, false, progress)
}

/// [`backup_vm`]; `full`: read every allocated block even where change
/// tracking could tell what changed (still stores only new chunks).
pub fn backup_vm_with(
    platform: &dyn Platform,
    vm: &str,
    ds: &Datastore,
    opts: &BackupOptions,
    full: bool,
    progress: &Progress,
) -> Result<VmBackupReport, JobError> {
    let info = platform.vm(vm)?;
    let group = opts.name.clone();
    let _span = tracing::info_span!("vm_backup", vm = %info.name, group = %group).entered();
    let latest: Option<Manifest> = match ds.resolve(&group, "latest") {
        Ok(m) => Some(m),
        Err(EngineError::NoSnapshots(_)) => None,
        Err(e) => return Err(e.into()),
    };
    // A parent from another platform VM (the group reused by hand, a VM
    // replaced under the same id) would lend its blocks: read in full.
    let foreign = latest.as_ref().and_then(|p| p.vm.as_ref()).filter(|v| v.id != info.id).map(|v| {
        format!("the previous restore point of this group describes VM '{}' ({}), not '{}' ({})", v.name, v.id, info.name, info.id)
    });
    let parent = latest.filter(|_| foreign.is_none());
    let mut reads: Vec<DiskRead> = Vec::new();
    let mut reports = Vec::new();
    // Platforms that read a whole VM at one point in time open every disk at once.
    let mut whole = if platform.reads_whole_vms() {
        let since = parent.as_ref().filter(|_| !full).and_then(|p| p.disks.iter().find_map(|d| d.cbt_token.clone()));
        Some(platform.open_vm_disks(&info.id, since.as_deref(), &group)?.into_iter())
    } else {
        None
    };
    for disk in &info.disks {
        let since = parent.as_ref().filter(|_| !full).and_then(|p| p.disks.iter().find(|d| d.name == disk.name)).and_then(|d| d.cbt_token.clone());
        let mut read = match whole.as_mut() {
            Some(opened) => opened.next().ok_or_else(|| {
                crate::platforms::PlatformError::Invalid(format!("VM '{}' changed its disks while it was opened", info.name))
            })?,
            None => platform.open_disk(&info.id, &disk.name, since.as_deref(), &group)?,
        };
        if read.changed_ranges.is_none() {
            if full {
                read.full_read_reason = Some("a full backup was requested".into());
            } else if let Some(reason) = &foreign {
                read.full_read_reason = Some(reason.clone());
            }
        }
        let changed_bytes = read.changed_ranges.as_ref().map(|r| r.iter().map(|&(_, l)| l).sum()).unwrap_or(0);
        if let Some(reason) = &read.full_read_reason {
            tracing::info!(disk = %disk.name, reason = %reason, "full read");
        }
        reports.push(DiskReport {
            disk: disk.name.clone(),
            size: read.source.size(),
            incremental: read.changed_ranges.is_some(),
            changed_bytes,
            full_read_reason: read.full_read_reason.clone(),
        });
        reads.push(read);
    }
    let quiesce = reads.iter().find_map(|r| r.quiesce.clone());
    if let Some(q) = &quiesce {
        tracing::info!(consistency = %q, "point in time");
    }
    let sources: Vec<DiskSource> = reads
        .iter()
        .zip(&info.disks)
        .map(|(r, disk)| DiskSource {
            name: disk.name.clone(),
            source: Arc::clone(&r.source),
            changed_ranges: r.changed_ranges.clone(),
            cbt_token: r.token.clone(),
        })
        .collect();
    let mut opts = opts.clone();
    opts.parent = parent.as_ref().map(|p| p.id.clone());
    opts.vm = Some(info.clone());
    opts.vm_definition = platform.vm_definition(&info.id)?;
    let result = backup::backup(ds, &opts, &sources, progress);
    drop(sources);
    let ok = result.is_ok();
    let mut finish_error = None;
    for read in reads {
        if let Err(e) = read.finish(ok) {
            tracing::error!(error = %e, "ending a disk read");
            finish_error.get_or_insert(e);
        }
    }
    let m = result?;
    if let Some(e) = finish_error {
        // The snapshot is committed; the disk's tracking could not be
        // advanced, so its next backup reads it in full. Say so, keep the snapshot.
        tracing::warn!(error = %e, "change tracking not advanced: the next backup of this VM reads in full");
    }
    Ok(VmBackupReport {
        vm: info.name,
        snapshot: m.id.clone(),
        parent: m.parent.clone(),
        disks: reports,
        quiesce,
        bytes_read: m.stats.bytes_read,
        bytes_written: m.stats.bytes_written,
        duration_ms: m.stats.duration_ms,
        manifest: m,
    })
}
