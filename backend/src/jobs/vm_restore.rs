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
    /// The target's storage pool for the disks (`None`: its default).
    pub storage_pool: Option<String>,
}

/// What a caller can add to a restore: replacing a VM of the same name,
/// and a log line per step (start, each disk, convert, VM created, powered on).
pub struct RestoreHooks<'a> {
    /// Replace a VM already named `new_name` on the target: the new VM is
    /// built beside it and switched in only once complete
    /// ([`Platform::replace_vm`]), so a failed or stopped restore leaves the
    /// old VM as it was.
    pub replace_existing: bool,
    pub log: &'a (dyn Fn(String) + Sync),
}

impl Default for RestoreHooks<'_> {
    fn default() -> Self {
        RestoreHooks { replace_existing: false, log: &|_| {} }
    }
}

/// Restores into `target`, staging raw images under `staging` (removed after).
pub fn restore_vm(ds: &Datastore, target: &dyn Platform, req: &RestoreRequest, staging: &Path, workers: usize, progress: &Progress) -> Result<VmInfo, JobError> {
    restore_vm_with(ds, target, req, staging, workers, progress, &RestoreHooks::default())
}

/// [`restore_vm`] with hooks. Whatever fails or is cancelled, no VM of this
/// restore stays on the target: the platform publishes a VM only once its
/// disks are converted, the VM is created stopped, and it is deleted again
/// if the restore is cancelled or powering it on fails. An overwrite never
/// loses both VMs: the old one stays untouched until the new one, complete
/// and in its final power state, takes its place.
pub fn restore_vm_with(
    ds: &Datastore,
    target: &dyn Platform,
    req: &RestoreRequest,
    staging: &Path,
    workers: usize,
    progress: &Progress,
    hooks: &RestoreHooks<'_>,
) -> Result<VmInfo, JobError> {
    let _span = tracing::info_span!("vm_restore", vm = %req.source_vm, to = %req.new_name).entered();
    let m = ds.resolve(&req.source_vm, &req.snapshot)?;
    let dir = tempfile::Builder::new()
        .prefix("sendense-restore-")
        .tempdir_in(staging)
        .map_err(|e| JobError::Io { what: format!("staging directory in {}", staging.display()), source: e })?;
    let format = req.format.unwrap_or_else(|| target.kind().native_disk_format());
    (hooks.log)(format!(
        "restoring {}/{} ({} disk(s)) as '{}' in {} format, staging in {}",
        m.name,
        m.id,
        m.disks.len(),
        req.new_name,
        format.qemu_name(),
        dir.path().display()
    ));
    let mut disks = Vec::new();
    for d in &m.disks {
        let raw = dir.path().join(format!("{}.raw", d.name));
        let started = std::time::Instant::now();
        restore::restore(ds, &m.name, &m.id, Some(&d.name), &raw, workers, progress)?;
        (hooks.log)(format!("{}: {} bytes restored from the repository in {:.1} s", d.name, d.size, started.elapsed().as_secs_f64()));
        disks.push(NewDisk { name: d.name.clone(), image: raw, image_format: DiskFormat::Raw, format: Some(format), in_place: false });
    }
    progress.control.checkpoint()?;
    let replacing = hooks.replace_existing
        && match target.vm(&req.new_name) {
            Ok(_) => true,
            Err(crate::platforms::PlatformError::VmNotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
    let mut spec = NewVm {
        name: req.new_name.clone(),
        vcpus: req.vcpus,
        memory_mib: req.memory_mib,
        firmware: req.firmware,
        os: req.os,
        role: None,
        nics: req.nics.clone(),
        disks,
        power: PowerState::Stopped,
        definition: m.vm_definition.clone(),
        pool: req.storage_pool.clone(),
    };
    if replacing {
        // Published in its final power state: nothing can fail after the switch.
        spec.power = if req.power_on { PowerState::Running } else { PowerState::Stopped };
        (hooks.log)(format!(
            "building the new '{}' beside the existing VM ({} disk(s) to {}); the existing VM stays untouched until the new one is complete",
            req.new_name,
            spec.disks.len(),
            format.qemu_name()
        ));
        let started = std::time::Instant::now();
        let go_on = || progress.control.checkpoint().is_ok();
        let replaced = match target.replace_vm(&spec, &go_on) {
            Ok(vm) => vm,
            Err(e) => {
                progress.control.checkpoint()?;
                return Err(e.into());
            }
        };
        (hooks.log)(format!(
            "replaced: VM '{}' (id {}) took the place of the existing VM, which was powered off and removed, in {:.1} s",
            replaced.name,
            replaced.id,
            started.elapsed().as_secs_f64()
        ));
        return Ok(replaced);
    }
    (hooks.log)(format!("converting {} disk(s) to {} on the target", spec.disks.len(), format.qemu_name()));
    let started = std::time::Instant::now();
    let created = target.create_vm(&spec)?;
    (hooks.log)(format!("VM '{}' created (id {}) in {:.1} s", created.name, created.id, started.elapsed().as_secs_f64()));
    let undo = |why: JobError| -> JobError {
        if let Err(e) = target.delete_vm(&created.name) {
            tracing::error!(error = %e, vm = %created.name, "removing a VM whose restore did not finish");
            (hooks.log)(format!("the VM '{}' could not be removed: {e}", created.name));
        } else {
            (hooks.log)(format!("the VM '{}' was removed again: the restore did not finish", created.name));
        }
        why
    };
    if let Err(e) = progress.control.checkpoint() {
        return Err(undo(e.into()));
    }
    if !req.power_on {
        return Ok(created);
    }
    match target.set_power(&created.name, PowerState::Running) {
        Ok(vm) => {
            (hooks.log)(format!("VM '{}' powered on", vm.name));
            Ok(vm)
        }
        Err(e) => Err(undo(e.into())),
    }
}
