//! A KVM host reached through its host directory: discovery, creating VMs
//! from images in any format, replacing a VM (built beside it, switched at
//! the end: [`super::replace`]), power state, deletion, replacing a disk.

use std::path::{Path, PathBuf};

use shared_types::platform::{DiskFormat, DiskInfo, HostInfo, HostInventory, PlatformKind, PowerState, RefusedVm, VmInfo};

use crate::platforms::error::{PlatformError, Result};
use crate::platforms::nbd::{self, NbdError, QemuNbd, QemuNbdOptions};
use crate::platforms::{DiskRead, DiskSpace, DiskWrite, NewVm, Platform};

use super::definition::{self, DiskDefinition, HostDefinition, VmDefinition};
use super::{cbt, disk_read, qcow2_header, qemu_img, replace};

pub struct KvmHost {
    dir: PathBuf,
    def: HostDefinition,
}

impl KvmHost {
    /// Adds a host: the directory must exist, be readable and hold a `host.json`.
    pub fn open(dir: &Path) -> Result<KvmHost> {
        let meta = std::fs::metadata(dir).map_err(|e| PlatformError::HostDir {
            path: dir.into(),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => "does not exist".into(),
                std::io::ErrorKind::PermissionDenied => "is not readable (permission denied)".into(),
                _ => e.to_string(),
            },
        })?;
        if !meta.is_dir() {
            return Err(PlatformError::HostDir { path: dir.into(), reason: "is not a directory".into() });
        }
        std::fs::read_dir(dir).map_err(|e| PlatformError::HostDir { path: dir.into(), reason: format!("is not readable: {e}") })?;
        let def = definition::read_host(dir)?;
        Ok(KvmHost { dir: dir.to_path_buf(), def })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The definition of a VM named `vm` or with uuid `vm`.
    pub fn definition(&self, vm: &str) -> Result<VmDefinition> {
        match definition::read_vm(&self.dir, vm) {
            Err(PlatformError::VmNotFound(_)) => {
                for name in definition::list_vms(&self.dir)? {
                    let def = definition::read_vm(&self.dir, &name)?;
                    if def.uuid == vm {
                        return Ok(def);
                    }
                }
                Err(PlatformError::VmNotFound(vm.into()))
            }
            other => other,
        }
    }

    pub fn disk_file(&self, def: &VmDefinition, disk: &str) -> Result<(DiskDefinition, PathBuf)> {
        let d = def
            .disks
            .iter()
            .find(|d| d.name == disk)
            .ok_or_else(|| PlatformError::DiskNotFound { vm: def.name.clone(), disk: disk.into() })?;
        let path = definition::disk_path(&self.dir, &def.name, d);
        self.inside(&def.name, d, &path)?;
        Ok((d.clone(), path))
    }

    /// Refuses a disk file that resolves (through `..` or links) outside
    /// the host directory: a VM definition must not make Sendense read or
    /// write any other file of the server.
    fn inside(&self, vm: &str, d: &DiskDefinition, path: &Path) -> Result<()> {
        if crate::confinement::file_within(path, &self.dir) {
            return Ok(());
        }
        Err(PlatformError::Disk {
            path: path.to_path_buf(),
            reason: format!(
                "disk '{}' of VM '{vm}' (file \"{}\") resolves outside the host directory {}; only files inside it are read or written",
                d.name,
                d.file.escape_default(),
                self.dir.display()
            ),
        })
    }

    /// Every disk of `def` inside the host directory.
    fn confined(&self, def: &VmDefinition) -> Result<()> {
        for d in &def.disks {
            self.inside(&def.name, d, &definition::disk_path(&self.dir, &def.name, d))?;
        }
        Ok(())
    }

    fn vm_info(&self, def: &VmDefinition) -> Result<VmInfo> {
        let mut disks = Vec::new();
        for d in &def.disks {
            let path = definition::disk_path(&self.dir, &def.name, d);
            let (capacity, allocated, tracked) = if d.format == DiskFormat::Qcow2 {
                // Read the header in-process: a thousand disks in well under a second.
                let meta = std::fs::metadata(&path).map_err(|e| PlatformError::Disk { path: path.clone(), reason: e.to_string() })?;
                let h = qcow2_header::read(&path).map_err(|reason| PlatformError::Disk { path: path.clone(), reason })?;
                (h.virtual_size, std::os::unix::fs::MetadataExt::blocks(&meta) * 512, cbt::is_tracking(&h.bitmaps))
            } else {
                let info = qemu_img::info(&path, Some(d.format))?;
                (info.virtual_size, info.actual_size, false)
            };
            disks.push(DiskInfo { name: d.name.clone(), capacity_bytes: capacity, allocated_bytes: allocated, format: d.format, cbt: tracked });
        }
        Ok(VmInfo {
            id: def.uuid.clone(),
            name: def.name.clone(),
            vcpus: def.vcpus,
            memory_mib: def.memory_mib,
            power: def.power,
            firmware: def.firmware,
            os: def.os,
            role: def.role.clone(),
            disks,
            nics: def.nics.clone(),
        })
    }

    /// Refuses a spec the host cannot build: bad names, no disk, unknown networks.
    fn check_spec(&self, spec: &NewVm) -> Result<()> {
        if !definition::valid_name(&spec.name) {
            return Err(PlatformError::Invalid(format!("VM name '{}' (use letters, digits, '.', '_', '-')", spec.name)));
        }
        if spec.disks.is_empty() {
            return Err(PlatformError::Invalid(format!("VM '{}' has no disk", spec.name)));
        }
        self.check_networks(spec)
    }

    /// Builds the VM of `spec` in `staging` (a hidden directory under `vms/`):
    /// every disk converted, then `vm.json` written last, so a directory with
    /// a `vm.json` holds a complete VM. On failure `staging` is removed.
    pub(super) fn build_vm(&self, spec: &NewVm, staging: &Path) -> Result<VmDefinition> {
        std::fs::create_dir_all(staging).map_err(|e| PlatformError::io(format!("creating {}", staging.display()), e))?;
        let built = (|| -> Result<VmDefinition> {
            let mut disks = Vec::new();
            for nd in &spec.disks {
                if !definition::valid_name(&nd.name) {
                    return Err(PlatformError::Invalid(format!("disk name '{}'", nd.name)));
                }
                let format = nd.format.unwrap_or(DiskFormat::Qcow2);
                let file = format!("{}.{}", nd.name, format.extension());
                let dst = staging.join(&file);
                qemu_img::expect_format(&nd.image, nd.image_format)?;
                qemu_img::convert(&nd.image, nd.image_format, &dst, format)?;
                if format == DiskFormat::Qcow2 {
                    cbt::enable_tracking(&dst)?;
                }
                disks.push(DiskDefinition { name: nd.name.clone(), file, format, bus: "virtio".into() });
            }
            let def = new_definition(spec, disks);
            let body = serde_json::to_vec_pretty(&def).map_err(|e| PlatformError::Invalid(e.to_string()))?;
            std::fs::write(staging.join(definition::VM_FILE), body)
                .map_err(|e| PlatformError::io(format!("writing {}", staging.join(definition::VM_FILE).display()), e))?;
            Ok(def)
        })();
        if built.is_err() {
            let _ = std::fs::remove_dir_all(staging);
        }
        built
    }

    /// A VM on images already in its folder (`vms/<name>/`): only its
    /// definition is written. NICs on no network stay unconnected.
    fn define_in_place(&self, spec: &NewVm) -> Result<VmInfo> {
        let dir = definition::vm_dir(&self.dir, &spec.name);
        if dir.join(definition::VM_FILE).exists() {
            return Err(PlatformError::VmExists(spec.name.clone()));
        }
        let networks = definition::read_host(&self.dir)?.networks;
        let mut disks = Vec::new();
        for nd in &spec.disks {
            let file = match nd.image.strip_prefix(&dir).ok().and_then(|f| f.to_str()) {
                Some(f) if !f.contains('/') && nd.in_place => f.to_string(),
                _ => return Err(PlatformError::Invalid(format!("disk '{}' of VM '{}' is not an image in {}", nd.name, spec.name, dir.display()))),
            };
            disks.push(DiskDefinition { name: nd.name.clone(), file, format: nd.image_format, bus: "virtio".into() });
        }
        for nic in spec.nics.iter().filter(|n| !n.network.is_empty()) {
            if !networks.iter().any(|n| n.name == nic.network) {
                return Err(PlatformError::Invalid(format!("network '{}' does not exist on host '{}'", nic.network, self.def.name)));
            }
        }
        let def = new_definition(spec, disks);
        definition::write_vm(&self.dir, &def)?;
        self.vm_info(&def)
    }

    fn check_networks(&self, spec: &NewVm) -> Result<()> {
        for nic in &spec.nics {
            if !self.def.networks.iter().any(|n| n.name == nic.network) {
                let known: Vec<&str> = self.def.networks.iter().map(|n| n.name.as_str()).collect();
                return Err(PlatformError::Invalid(format!(
                    "network '{}' does not exist on host '{}' (its networks: {})",
                    nic.network,
                    self.def.name,
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )));
            }
        }
        Ok(())
    }
}

/// The definition of a new VM of `spec` (a new UUID) on `disks`.
fn new_definition(spec: &NewVm, disks: Vec<DiskDefinition>) -> VmDefinition {
    VmDefinition {
        name: spec.name.clone(),
        uuid: uuid::Uuid::new_v4().to_string(),
        vcpus: spec.vcpus,
        memory_mib: spec.memory_mib,
        firmware: spec.firmware,
        os: spec.os,
        power: spec.power,
        role: spec.role.clone(),
        nics: spec.nics.clone(),
        disks,
    }
}

impl Platform for KvmHost {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Kvm
    }

    fn inventory_with_progress(&self, progress: &dyn Fn(usize, usize)) -> Result<HostInventory> {
        let names = definition::list_vms(&self.dir)?;
        progress(0, names.len());
        let mut vms = Vec::with_capacity(names.len());
        let mut refused = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let def = definition::read_vm(&self.dir, name)?;
            match self.confined(&def) {
                Ok(()) => vms.push(self.vm_info(&def)?),
                Err(e) => refused.push(RefusedVm { name: def.name.clone(), reason: e.to_string() }),
            }
            progress(i + 1, names.len());
        }
        Ok(HostInventory {
            storage_pools: Vec::new(),
            host: HostInfo {
                name: self.def.name.clone(),
                kind: PlatformKind::Kvm,
                address: self.dir.display().to_string(),
                cpu_cores: self.def.cpu_cores,
                memory_mib: self.def.memory_mib,
            },
            networks: self.def.networks.clone(),
            vms,
            refused,
        })
    }

    fn vm(&self, vm: &str) -> Result<VmInfo> {
        let def = self.definition(vm)?;
        self.confined(&def)?;
        self.vm_info(&def)
    }

    fn open_disk(&self, vm: &str, disk: &str, since: Option<&str>, owner: &str) -> Result<DiskRead> {
        let tracker = cbt::Tracker::backup_of(owner, disk)?;
        let def = self.definition(vm)?;
        let (d, path) = self.disk_file(&def, disk)?;
        disk_read::open_for(&def.name, &d, &path, since, &tracker)
    }

    fn open_disk_for(&self, vm: &str, disk: &str, since: Option<&str>, consumer: &str) -> Result<DiskRead> {
        let tracker = cbt::Tracker::consumer(consumer)?;
        let def = self.definition(vm)?;
        let (d, path) = self.disk_file(&def, disk)?;
        disk_read::open_for(&def.name, &d, &path, since, &tracker)
    }

    fn stop_tracking(&self, vm: &str, consumer: &str) -> Result<()> {
        let tracker = cbt::Tracker::consumer(consumer)?;
        let def = self.definition(vm)?;
        for d in def.disks.iter().filter(|d| d.format == DiskFormat::Qcow2) {
            let path = definition::disk_path(&self.dir, &def.name, d);
            self.inside(&def.name, d, &path)?;
            let _lock = definition::disk_lock(&path)?;
            cbt::stop_tracking(&path, &tracker)?;
        }
        Ok(())
    }

    fn image_dir(&self) -> Result<Option<PathBuf>> {
        Ok(Some(self.dir.join(definition::VMS_DIR)))
    }

    fn networks(&self) -> Result<Vec<shared_types::platform::NetworkInfo>> {
        Ok(definition::read_host(&self.dir)?.networks)
    }

    fn add_isolated_network(&self, name: &str) -> Result<bool> {
        let mut host = definition::read_host(&self.dir)?;
        if host.networks.iter().any(|n| n.name == name) {
            return Ok(false);
        }
        host.networks.push(shared_types::platform::NetworkInfo { name: name.into(), bridge: None, cidr: None, vlan: None, isolated: true, inactive: false });
        definition::write_host(&self.dir, &host)?;
        Ok(true)
    }

    fn set_nics(&self, vm: &str, nics: &[shared_types::platform::NicInfo]) -> Result<()> {
        let mut def = self.definition(vm)?;
        def.nics = nics.to_vec();
        definition::write_vm(&self.dir, &def)
    }

    fn create_vm(&self, spec: &NewVm) -> Result<VmInfo> {
        if !spec.disks.is_empty() && spec.disks.iter().all(|d| d.in_place) {
            if !definition::valid_name(&spec.name) {
                return Err(PlatformError::Invalid(format!("VM name '{}' (use letters, digits, '.', '_', '-')", spec.name)));
            }
            return self.define_in_place(spec);
        }
        self.check_spec(spec)?;
        let dir = definition::vm_dir(&self.dir, &spec.name);
        if dir.exists() {
            return Err(PlatformError::VmExists(spec.name.clone()));
        }
        // Build in a hidden directory, publish by rename: never half a VM.
        let staging = self.dir.join(definition::VMS_DIR).join(format!(".creating-{}-{}", spec.name, uuid::Uuid::new_v4()));
        let def = self.build_vm(spec, &staging)?;
        std::fs::rename(&staging, &dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            PlatformError::io(format!("publishing VM {}", dir.display()), e)
        })?;
        self.vm_info(&def)
    }

    fn replace_vm(&self, spec: &NewVm, go_on: &dyn Fn() -> bool) -> Result<VmInfo> {
        self.check_spec(spec)?;
        if !definition::vm_dir(&self.dir, &spec.name).exists() {
            return self.create_vm(spec);
        }
        let def = replace::replace(self, spec, go_on)?;
        self.vm_info(&def)
    }

    fn open_disk_write(&self, vm: &str, disk: &str, work_dir: &Path) -> Result<DiskWrite> {
        let stopped = |def: &VmDefinition| -> Result<()> {
            if def.power != PowerState::Stopped {
                return Err(PlatformError::VmNotStopped { vm: def.name.clone(), power: format!("{:?}", def.power).to_lowercase() });
            }
            Ok(())
        };
        let def = self.definition(vm)?;
        stopped(&def)?;
        let (d, path) = self.disk_file(&def, disk)?;
        // The lock backups and the lab's writers take, held to the end; the
        // VM is checked again under it.
        let lock = definition::disk_lock(&path)?;
        stopped(&self.definition(vm)?)?;
        let server = QemuNbd::start(&path, &QemuNbdOptions::new(d.format).runtime_dir(work_dir)).map_err(|e| match e {
            NbdError::DiskLocked { .. } => PlatformError::DiskBusy { vm: def.name.clone(), disk: disk.to_string() },
            e => PlatformError::Disk { path: path.clone(), reason: e.to_string() },
        })?;
        let client = server.connect(&[nbd::BASE_ALLOCATION]).map_err(|e| PlatformError::Disk { path: path.clone(), reason: e.to_string() })?;
        // Writes land in the image as they are made: finishing closes the export.
        Ok(DiskWrite::new(
            client,
            Box::new(move |_commit| {
                let closed = server.close().map_err(|e| PlatformError::Disk { path: path.clone(), reason: format!("closing its export: {e}") });
                drop(lock);
                closed
            }),
        ))
    }

    fn disk_space(&self) -> Result<DiskSpace> {
        let free = crate::catalog::compatibility::free_bytes(&self.dir).map_err(|e| PlatformError::io(format!("reading the free space of {}", self.dir.display()), e))?;
        Ok(DiskSpace { free_bytes: free, local_dir: Some(self.dir.clone()) })
    }

    fn set_power(&self, vm: &str, power: PowerState) -> Result<VmInfo> {
        let mut def = self.definition(vm)?;
        def.power = power;
        definition::write_vm(&self.dir, &def)?;
        self.vm_info(&def)
    }

    fn delete_vm(&self, vm: &str) -> Result<()> {
        let def = self.definition(vm)?;
        if def.power != PowerState::Stopped {
            return Err(PlatformError::Invalid(format!("VM '{}' is not stopped: power it off before deleting it", def.name)));
        }
        let dir = definition::vm_dir(&self.dir, &def.name);
        // Unpublish first (rename), then remove: a reader never sees half a VM.
        let trash = self.dir.join(definition::VMS_DIR).join(format!(".deleting-{}-{}", def.name, uuid::Uuid::new_v4()));
        std::fs::rename(&dir, &trash).map_err(|e| PlatformError::io(format!("deleting {}", dir.display()), e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| PlatformError::io(format!("deleting {}", trash.display()), e))
    }
}
