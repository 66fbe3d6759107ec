//! Restoring a VM from a snapshot onto a platform: each disk restored from
//! the repository to a sparse raw image in a staging directory, then the
//! platform creates the VM from those images in the format it wants
//! (`qemu-img convert` to qcow2, vmdk, vhdx, vpc or raw).

use std::path::Path;

use shared_types::platform::{DiskFormat, NicInfo, PowerState, VmInfo};

use crate::engine::datastore::Datastore;
use crate::engine::progress::Progress;
use crate::engine::restore;
use crate::platforms::{NewDisk, NewVm, Platform};

use super::JobError;

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Snapshot name (the VM's name at backup time) and `latest` or an id.
    pub source_vm: String,
    pub snapshot: String,
    /// Name of the VM to create on the target.
    pub new_name: String,
    /// Disk format on the target (`None`: the target platform's native one).
    pub format: Option<DiskFormat>,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: shared_types::platform::Firmware,
    pub os: shared_types::platform::GuestOs,
    pub nics: Vec<NicInfo>,
    pub power_on: bool,
}

/// Restores into `target`, staging raw images under `staging` (removed after).
pub fn restore_vm(ds: &Datastore, target: &dyn Platform, req: &RestoreRequest, staging: &Path, workers: usize, progress: &Progress) -> Result<VmInfo, JobError> {
    let _span = tracing::info_span!("vm_restore", vm = %req.source_vm, to = %req.new_name).entered();
    let m = ds.resolve(&req.source_vm, &req.snapshot)?;
    let dir = tempfile::Builder::new()
        .prefix("sendense-restore-")
        .tempdir_in(staging)
        .map_err(|e| JobError::Io { what: format!("staging directory in {}", staging.display()), source: e })?;
    let format = req.format.unwrap_or_else(|| target.kind().native_disk_format());
    let mut disks = Vec::new();
    for d in &m.disks {
        let raw = dir.path().join(format!("{}.raw", d.name));
        restore::restore(ds, &m.name, &m.id, Some(&d.name), &raw, workers, progress)?;
        disks.push(NewDisk { name: d.name.clone(), image: raw, image_format: DiskFormat::Raw, format: Some(format) });
    }
    let spec = NewVm {
        name: req.new_name.clone(),
        vcpus: req.vcpus,
        memory_mib: req.memory_mib,
        firmware: req.firmware,
        os: req.os,
        role: None,
        nics: req.nics.clone(),
        disks,
        power: if req.power_on { PowerState::Running } else { PowerState::Stopped },
    };
    Ok(target.create_vm(&spec)?)
}
