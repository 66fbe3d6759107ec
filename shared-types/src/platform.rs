//! Platforms and their inventory: what a connector discovers on a host (VMs
//! with CPU, memory and power state, disks, NICs, networks), and the disk
//! formats a restore or replica can be written in.
//!
//! These shapes are the same for every platform kind; a connector fills what
//! its platform knows (a KVM host has no datastore clusters, an AWS region has
//! no storage pools of files) and leaves optional fields empty.

use serde::{Deserialize, Serialize};

/// The kinds of platform Sendense can protect or restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// A KVM/QEMU host, reached through libvirt.
    Kvm,
    Vmware,
    Cloudstack,
    Hyperv,
    Aws,
    Azure,
    Nutanix,
}

impl PlatformKind {
    pub fn label(self) -> &'static str {
        match self {
            PlatformKind::Kvm => "KVM/QEMU",
            PlatformKind::Vmware => "VMware vSphere",
            PlatformKind::Cloudstack => "CloudStack",
            PlatformKind::Hyperv => "Hyper-V",
            PlatformKind::Aws => "AWS EC2",
            PlatformKind::Azure => "Azure",
            PlatformKind::Nutanix => "Nutanix AHV",
        }
    }

    /// The disk format this platform's VMs use natively.
    pub fn native_disk_format(self) -> DiskFormat {
        match self {
            PlatformKind::Kvm | PlatformKind::Cloudstack | PlatformKind::Nutanix => DiskFormat::Qcow2,
            PlatformKind::Vmware => DiskFormat::Vmdk,
            PlatformKind::Hyperv => DiskFormat::Vhdx,
            PlatformKind::Azure => DiskFormat::Vpc,
            PlatformKind::Aws => DiskFormat::Raw,
        }
    }
}

/// Disk image formats (the names are `qemu-img`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Qcow2,
    Vmdk,
    Vhdx,
    /// VHD (Azure).
    Vpc,
    Raw,
}

impl DiskFormat {
    pub const ALL: [DiskFormat; 5] = [DiskFormat::Qcow2, DiskFormat::Vmdk, DiskFormat::Vhdx, DiskFormat::Vpc, DiskFormat::Raw];

    /// The name `qemu-img -f/-O` takes.
    pub fn qemu_name(self) -> &'static str {
        match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vmdk => "vmdk",
            DiskFormat::Vhdx => "vhdx",
            DiskFormat::Vpc => "vpc",
            DiskFormat::Raw => "raw",
        }
    }

    /// File extension of a disk in this format.
    pub fn extension(self) -> &'static str {
        match self {
            DiskFormat::Vpc => "vhd",
            other => other.qemu_name(),
        }
    }

    pub fn parse(s: &str) -> Option<DiskFormat> {
        match s.to_ascii_lowercase().as_str() {
            "qcow2" => Some(DiskFormat::Qcow2),
            "vmdk" => Some(DiskFormat::Vmdk),
            "vhdx" => Some(DiskFormat::Vhdx),
            "vpc" | "vhd" => Some(DiskFormat::Vpc),
            "raw" | "img" => Some(DiskFormat::Raw),
            _ => None,
        }
    }
}

/// Whether a VM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    Running,
    Stopped,
    Suspended,
}

/// A power action an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PowerAction {
    /// Power on.
    Start,
    /// Ask the guest to shut down (ACPI); stopped hard after the timeout.
    Shutdown,
    /// Stop at once, like pulling the plug.
    Stop,
    /// Ask the guest to restart.
    Reboot,
}

/// `POST /api/v1/vms/{id}/power`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PowerRequest {
    pub action: PowerAction,
    /// Seconds a shutdown may take before the VM is stopped hard (default 60, at most 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// Firmware a VM boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

/// Guest operating system family, as the platform records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GuestOs {
    Linux,
    Windows,
    Other,
}

/// One host (or region, or cluster) and everything discovered on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostInventory {
    pub host: HostInfo,
    pub networks: Vec<NetworkInfo>,
    pub vms: Vec<VmInfo>,
    /// VMs the host has that cannot be protected (not in `vms`), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedVm>,
    /// Where the host keeps disks (libvirt storage pools), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_pools: Vec<StoragePoolInfo>,
}

/// A place a host keeps VM disks (a libvirt storage pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoragePoolInfo {
    pub name: String,
    /// The pool's type in the platform's terms (`dir`, `logical`, `netfs`, …).
    pub kind: String,
    pub active: bool,
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

/// A VM a platform has but Sendense refuses to protect (e.g. one whose
/// definition cannot be read), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusedVm {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostInfo {
    pub name: String,
    pub kind: PlatformKind,
    /// Where the connector reaches the host (a directory, a URL, a region).
    pub address: String,
    pub cpu_cores: u32,
    pub memory_mib: u64,
}

/// A network a platform offers. Older host files and clients leave out
/// `vlan` and `isolated`: no VLAN known, not isolated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkInfo {
    pub name: String,
    /// Bridge or port group the network maps to on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// 802.1Q VLAN id (1 to 4094) the network is tagged with, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// No uplink: nothing on it reaches another network. Test failovers
    /// use only isolated networks; live failovers never do.
    #[serde(default)]
    pub isolated: bool,
    /// Defined on the host but not started: no NIC can join it until it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inactive: bool,
}

/// Highest 802.1Q VLAN id (0 and 4095 are reserved).
pub const VLAN_MAX: u16 = 4094;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmInfo {
    /// The platform's stable id of the VM (a UUID on KVM and VMware).
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub power: PowerState,
    pub firmware: Firmware,
    pub os: GuestOs,
    /// What the VM is for (web, database, ...), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub disks: Vec<DiskInfo>,
    pub nics: Vec<NicInfo>,
}

impl VmInfo {
    /// Sum of the disks' virtual sizes.
    pub fn capacity_bytes(&self) -> u64 {
        self.disks.iter().map(|d| d.capacity_bytes).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskInfo {
    /// Disk name within the VM (`disk0`, ...).
    pub name: String,
    pub capacity_bytes: u64,
    /// Bytes the disk occupies on the host (sparse and thin disks use less).
    pub allocated_bytes: u64,
    pub format: DiskFormat,
    /// Whether changed-block tracking is available for the disk.
    pub cbt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NicInfo {
    pub mac: String,
    /// Name of the network the NIC is attached to.
    pub network: String,
    /// Device model (`virtio`, `e1000`, `vmxnet3`).
    pub model: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_through_their_names() {
        for f in DiskFormat::ALL {
            assert_eq!(DiskFormat::parse(f.qemu_name()), Some(f));
            assert_eq!(DiskFormat::parse(f.extension()), Some(f));
        }
        assert_eq!(DiskFormat::parse("ova"), None);
    }

    #[test]
    fn networks_of_older_files_read_as_untagged_and_not_isolated() {
        let n: NetworkInfo = serde_json::from_str(r#"{"name":"lan","bridge":"br-lan","cidr":"10.0.0.0/24"}"#).unwrap();
        assert_eq!((n.vlan, n.isolated), (None, false));
        let n: NetworkInfo = serde_json::from_str(r#"{"name":"iso","vlan":99,"isolated":true}"#).unwrap();
        assert_eq!((n.vlan, n.isolated), (Some(99), true));
        let json = serde_json::to_string(&NetworkInfo { name: "lan".into(), ..Default::default() }).unwrap();
        assert_eq!(json, r#"{"name":"lan","isolated":false}"#);
    }

    #[test]
    fn inventory_serializes_with_lowercase_enums() {
        let vm = VmInfo {
            id: "u".into(),
            name: "web-01".into(),
            vcpus: 2,
            memory_mib: 2048,
            power: PowerState::Running,
            firmware: Firmware::Uefi,
            os: GuestOs::Linux,
            role: None,
            disks: vec![DiskInfo { name: "disk0".into(), capacity_bytes: 10, allocated_bytes: 5, format: DiskFormat::Vpc, cbt: true }],
            nics: vec![],
        };
        let json = serde_json::to_string(&vm).unwrap();
        assert!(json.contains(r#""power":"running""#) && json.contains(r#""format":"vpc""#), "{json}");
        assert_eq!(serde_json::from_str::<VmInfo>(&json).unwrap(), vm);
        assert_eq!(vm.capacity_bytes(), 10);
    }
}
