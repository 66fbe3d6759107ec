//! The on-disk layout of a KVM host directory, the way a KVM host keeps its
//! VMs: a host file, and a directory per VM with its definition and disks.
//!
//! ```text
//! HOST/host.json            {"name", "cpu_cores", "memory_mib", "networks": [{"name", "bridge", "cidr", "vlan", "isolated"}]}
//! HOST/vms/<vm>/vm.json     the VM definition (below)
//! HOST/vms/<vm>/<disk>.qcow2 its disks (any qemu-img format; `file` is relative to the VM directory)
//! HOST/vms/<vm>/<disk>.lock  advisory lock held by whoever writes the disk (see `disk_lock`)
//! ```
//!
//! A network's `vlan` (1 to 4094) and `isolated` (no uplink, for test
//! failovers) are optional: older host files read as untagged and not
//! isolated.
//!
//! Definitions are written atomically (temporary file + rename), so a reader
//! never sees half a file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState, VLAN_MAX};

use crate::platforms::error::{PlatformError, Result};

pub const HOST_FILE: &str = "host.json";
pub const VMS_DIR: &str = "vms";
pub const VM_FILE: &str = "vm.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostDefinition {
    pub name: String,
    pub cpu_cores: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub networks: Vec<NetworkInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmDefinition {
    pub name: String,
    pub uuid: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub os: GuestOs,
    pub power: PowerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub nics: Vec<NicInfo>,
    pub disks: Vec<DiskDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskDefinition {
    /// Name within the VM (`disk0`, ...).
    pub name: String,
    /// Image file, relative to the VM directory (or absolute).
    pub file: String,
    pub format: DiskFormat,
    /// Bus the guest sees (`virtio`, `sata`, `ide`).
    #[serde(default = "default_bus")]
    pub bus: String,
}

fn default_bus() -> String {
    "virtio".into()
}

/// A VM and disk name: letters, digits, `.`, `_`, `-`; not starting with `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub fn vm_dir(host: &Path, vm: &str) -> PathBuf {
    host.join(VMS_DIR).join(vm)
}

pub fn disk_path(host: &Path, vm: &str, disk: &DiskDefinition) -> PathBuf {
    let p = Path::new(&disk.file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        vm_dir(host, vm).join(p)
    }
}

pub fn read_host(host: &Path) -> Result<HostDefinition> {
    let path = host.join(HOST_FILE);
    let body = std::fs::read(&path).map_err(|e| PlatformError::HostDir {
        path: host.into(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound if !host.exists() => "does not exist".into(),
            std::io::ErrorKind::NotFound => format!("no {HOST_FILE}: not a Sendense KVM host directory (create one with `sendense lab init`)"),
            std::io::ErrorKind::PermissionDenied => "is not readable (permission denied)".into(),
            _ => e.to_string(),
        },
    })?;
    let def: HostDefinition = serde_json::from_slice(&body).map_err(|e| PlatformError::Definition { path: path.clone(), reason: e.to_string() })?;
    for n in &def.networks {
        if let Some(vlan) = n.vlan.filter(|v| !(1..=VLAN_MAX).contains(v)) {
            return Err(PlatformError::Definition {
                path,
                reason: format!("network '{}': {vlan} is not a VLAN id (1 to {VLAN_MAX}); correct or remove \"vlan\"", n.name),
            });
        }
    }
    Ok(def)
}

pub fn read_vm(host: &Path, vm: &str) -> Result<VmDefinition> {
    if !valid_name(vm) {
        return Err(PlatformError::VmNotFound(vm.into()));
    }
    let path = vm_dir(host, vm).join(VM_FILE);
    let body = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PlatformError::VmNotFound(vm.into()),
        _ => PlatformError::io(format!("reading {}", path.display()), e),
    })?;
    let def: VmDefinition =
        serde_json::from_slice(&body).map_err(|e| PlatformError::Definition { path: path.clone(), reason: e.to_string() })?;
    if def.name != vm {
        return Err(PlatformError::Definition { path, reason: format!("names the VM '{}', but lives in directory '{vm}'", def.name) });
    }
    Ok(def)
}

/// Names of the VMs on the host, sorted.
pub fn list_vms(host: &Path) -> Result<Vec<String>> {
    let dir = host.join(VMS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PlatformError::HostDir { path: host.into(), reason: format!("{}: {e}", dir.display()) }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PlatformError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if valid_name(&name) && entry.path().join(VM_FILE).is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

pub fn write_host(host: &Path, def: &HostDefinition) -> Result<()> {
    std::fs::create_dir_all(host.join(VMS_DIR)).map_err(|e| PlatformError::io(format!("creating {}", host.display()), e))?;
    write_json(&host.join(HOST_FILE), def)
}

pub fn write_vm(host: &Path, def: &VmDefinition) -> Result<()> {
    let dir = vm_dir(host, &def.name);
    std::fs::create_dir_all(&dir).map_err(|e| PlatformError::io(format!("creating {}", dir.display()), e))?;
    write_json(&dir.join(VM_FILE), def)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| PlatformError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body).map_err(|e| PlatformError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| PlatformError::io(format!("writing {}", path.display()), e))
}

/// An exclusive advisory lock on one disk, held while its image is changed
/// (a write, a bitmap rotation). Everything Sendense does to a lab disk takes
/// it, so a backup's bitmap rotation never interleaves with a write.
pub struct DiskLock {
    _file: std::fs::File,
}

pub fn disk_lock(image: &Path) -> Result<DiskLock> {
    let path = image.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| PlatformError::io(format!("opening lock {}", path.display()), e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| PlatformError::io(format!("locking {}", path.display()), e.into()))?;
    Ok(DiskLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str) -> VmDefinition {
        VmDefinition {
            name: name.into(),
            uuid: "3f2c".into(),
            vcpus: 2,
            memory_mib: 1024,
            firmware: Firmware::Bios,
            os: GuestOs::Linux,
            power: PowerState::Stopped,
            role: Some("web".into()),
            nics: vec![NicInfo { mac: "52:54:00:00:00:01".into(), network: "lan".into(), model: "virtio".into() }],
            disks: vec![DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: DiskFormat::Qcow2, bus: "virtio".into() }],
        }
    }

    #[test]
    fn definitions_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path();
        write_host(host, &HostDefinition { name: "h".into(), cpu_cores: 8, memory_mib: 32768, networks: vec![] }).unwrap();
        write_vm(host, &vm("web-01")).unwrap();
        write_vm(host, &vm("db-01")).unwrap();
        assert_eq!(list_vms(host).unwrap(), vec!["db-01", "web-01"]);
        assert_eq!(read_vm(host, "web-01").unwrap(), vm("web-01"));
        assert_eq!(disk_path(host, "web-01", &vm("web-01").disks[0]), host.join("vms/web-01/disk0.qcow2"));
        assert!(matches!(read_vm(host, "gone"), Err(PlatformError::VmNotFound(_))));
        assert!(matches!(read_vm(host, "../etc"), Err(PlatformError::VmNotFound(_))));
    }

    #[test]
    fn a_missing_or_foreign_host_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_host(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("does not exist"), "{err}");
        let err = read_host(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a Sendense KVM host directory"), "{err}");
        std::fs::write(dir.path().join(HOST_FILE), b"{").unwrap();
        let err = read_host(dir.path()).unwrap_err().to_string();
        assert!(err.contains("host.json"), "{err}");
    }

    #[test]
    fn host_files_without_vlans_still_read_and_bad_vlans_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"name":"h","cpu_cores":2,"memory_mib":1024,"networks":[{"name":"lan","bridge":"br-lan","cidr":"10.0.0.0/24"}]}"#;
        std::fs::write(dir.path().join(HOST_FILE), old).unwrap();
        let h = read_host(dir.path()).unwrap();
        assert_eq!((h.networks[0].vlan, h.networks[0].isolated), (None, false));
        let tagged = r#"{"name":"h","cpu_cores":2,"memory_mib":1024,"networks":[{"name":"iso","vlan":99,"isolated":true}]}"#;
        std::fs::write(dir.path().join(HOST_FILE), tagged).unwrap();
        let h = read_host(dir.path()).unwrap();
        assert_eq!((h.networks[0].vlan, h.networks[0].isolated), (Some(99), true));
        std::fs::write(dir.path().join(HOST_FILE), tagged.replace("99", "5000")).unwrap();
        let err = read_host(dir.path()).unwrap_err().to_string();
        assert!(err.contains("network 'iso': 5000 is not a VLAN id"), "{err}");
    }
}
