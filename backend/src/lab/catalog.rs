//! What the lab is made of: the two hosts, their networks, and the six VMs
//! of the production host with their disks, partitions, filesystems and
//! the kind of content each filesystem gets.

use shared_types::platform::{Firmware, GuestOs, NetworkInfo, PowerState};

use super::filesystem::FsKind;
use super::partition::{PartType, TableKind};

pub const PROD_HOST: &str = "kvm-prod-01";
pub const DR_HOST: &str = "kvm-dr-01";

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub struct HostSpec {
    pub name: &'static str,
    pub role: &'static str,
    pub cpu_cores: u32,
    pub memory_mib: u64,
    pub networks: Vec<NetworkInfo>,
    pub vms: Vec<VmSpec>,
}

pub struct VmSpec {
    pub name: &'static str,
    pub role: &'static str,
    pub os: GuestOs,
    pub firmware: Firmware,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub power: PowerState,
    /// NICs: network name, device model, the guest's address on it (last octet).
    pub nics: Vec<(&'static str, &'static str, u8)>,
    pub bus: &'static str,
    pub disks: Vec<DiskSpec>,
}

pub struct DiskSpec {
    pub name: &'static str,
    pub size: u64,
    pub table: TableKind,
    pub partitions: Vec<PartitionSpec>,
}

pub struct PartitionSpec {
    pub ptype: PartType,
    /// Bytes; `None` is the rest of the disk.
    pub size: Option<u64>,
    pub name: &'static str,
    pub bootable: bool,
    pub fs: Option<FsSpec>,
}

pub struct FsSpec {
    pub kind: FsKind,
    pub label: &'static str,
    pub mount: &'static str,
    pub content: Content,
}

/// What goes into a filesystem (see [`super::content`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A Debian 12 root filesystem with the VM's role on top (web server,
    /// database server, Samba, an application service).
    LinuxRoot,
    /// A Debian EFI system partition (shim, GRUB).
    DebianEsp,
    /// PostgreSQL 15's data directory: heap and index files, WAL, CSV exports.
    PostgresData,
    /// A department file share.
    FileShare,
    /// A Windows EFI system partition (boot manager, BCD store).
    WindowsEsp,
    /// A Windows Server system volume: Windows, Program Files, Users.
    WindowsSystem,
    /// Nothing (swap).
    Empty,
}

fn net(name: &str, bridge: &str, cidr: &str, vlan: u16) -> NetworkInfo {
    NetworkInfo { name: name.into(), bridge: Some(bridge.into()), cidr: Some(cidr.into()), vlan: Some(vlan), isolated: false, inactive: false }
}

/// The DR host's network for test failovers: a bridge with no uplink.
fn isolated(name: &str, bridge: &str) -> NetworkInfo {
    NetworkInfo { name: name.into(), bridge: Some(bridge.into()), cidr: None, vlan: None, isolated: true, inactive: false }
}

fn part(ptype: PartType, size: Option<u64>, name: &'static str, fs: Option<FsSpec>) -> PartitionSpec {
    PartitionSpec { ptype, size, name, bootable: false, fs }
}

fn fs(kind: FsKind, label: &'static str, mount: &'static str, content: Content) -> Option<FsSpec> {
    Some(FsSpec { kind, label, mount, content })
}

/// A BIOS Linux system disk: MBR, a bootable ext4 root, swap at the end.
fn bios_linux_disk(size: u64, swap: u64) -> DiskSpec {
    let mut root = part(PartType::LinuxFilesystem, Some(size - MIB - swap), "", fs(FsKind::Ext4, "root", "/", Content::LinuxRoot));
    root.bootable = true;
    DiskSpec {
        name: "disk0",
        size,
        table: TableKind::Mbr,
        partitions: vec![root, part(PartType::LinuxSwap, None, "", fs(FsKind::Swap, "swap", "swap", Content::Empty))],
    }
}

/// A data disk: GPT with one ext4 partition.
fn data_disk(size: u64, label: &'static str, mount: &'static str, content: Content) -> DiskSpec {
    DiskSpec {
        name: "disk1",
        size,
        table: TableKind::Gpt,
        partitions: vec![part(PartType::LinuxFilesystem, None, label, fs(FsKind::Ext4, label, mount, content))],
    }
}

pub fn hosts() -> Vec<HostSpec> {
    vec![
        HostSpec {
            name: PROD_HOST,
            role: "production",
            cpu_cores: 32,
            memory_mib: 256 * 1024,
            networks: vec![net("lan", "br-lan", "10.10.0.0/24", 10), net("dmz", "br-dmz", "10.20.0.0/24", 20), net("storage", "br-storage", "10.30.0.0/24", 30)],
            vms: production_vms(),
        },
        HostSpec {
            name: DR_HOST,
            role: "disaster-recovery",
            cpu_cores: 16,
            memory_mib: 128 * 1024,
            // The same VLANs as production, other subnets, and an isolated
            // network (no uplink) for test failovers.
            networks: vec![
                net("lan", "br-lan", "10.110.0.0/24", 10),
                net("dmz", "br-dmz", "10.120.0.0/24", 20),
                net("storage", "br-storage", "10.130.0.0/24", 30),
                isolated("isolated", "br-isolated"),
            ],
            vms: Vec::new(),
        },
    ]
}

fn production_vms() -> Vec<VmSpec> {
    let linux = |name, role, vcpus, memory_mib, power, nics, disks| VmSpec {
        name,
        role,
        os: GuestOs::Linux,
        firmware: Firmware::Bios,
        vcpus,
        memory_mib,
        power,
        nics,
        bus: "virtio",
        disks,
    };
    vec![
        linux("web-01", "web", 2, 2048, PowerState::Running, vec![("dmz", "virtio", 11), ("lan", "virtio", 11)], vec![bios_linux_disk(6 * GIB, GIB)]),
        // Drained for maintenance: stopped, so `lab activity` leaves it alone.
        linux("web-02", "web", 2, 2048, PowerState::Stopped, vec![("dmz", "virtio", 12), ("lan", "virtio", 12)], vec![bios_linux_disk(4 * GIB, 512 * MIB)]),
        linux(
            "db-01",
            "database",
            4,
            8192,
            PowerState::Running,
            vec![("lan", "virtio", 21), ("storage", "virtio", 21)],
            vec![bios_linux_disk(4 * GIB, GIB), data_disk(8 * GIB, "pgdata", "/var/lib/postgresql", Content::PostgresData)],
        ),
        linux(
            "files-01",
            "file-server",
            2,
            4096,
            PowerState::Running,
            vec![("lan", "virtio", 31), ("storage", "virtio", 31)],
            vec![bios_linux_disk(3 * GIB, 512 * MIB), data_disk(8 * GIB, "share", "/srv/share", Content::FileShare)],
        ),
        VmSpec {
            name: "app-01",
            role: "application",
            os: GuestOs::Linux,
            firmware: Firmware::Uefi,
            vcpus: 4,
            memory_mib: 4096,
            power: PowerState::Running,
            nics: vec![("lan", "virtio", 41), ("dmz", "virtio", 41)],
            bus: "virtio",
            disks: vec![DiskSpec {
                name: "disk0",
                size: 6 * GIB,
                table: TableKind::Gpt,
                partitions: vec![
                    part(PartType::EfiSystem, Some(512 * MIB), "EFI System Partition", fs(FsKind::Vfat, "EFI", "/boot/efi", Content::DebianEsp)),
                    part(PartType::LinuxFilesystem, Some(4 * GIB + 512 * MIB), "root", fs(FsKind::Ext4, "root", "/", Content::LinuxRoot)),
                    part(PartType::LinuxSwap, None, "swap", fs(FsKind::Swap, "swap", "swap", Content::Empty)),
                ],
            }],
        },
        VmSpec {
            name: "win-01",
            role: "windows",
            os: GuestOs::Windows,
            firmware: Firmware::Uefi,
            vcpus: 4,
            memory_mib: 8192,
            power: PowerState::Running,
            nics: vec![("lan", "e1000e", 51)],
            bus: "sata",
            disks: vec![DiskSpec {
                name: "disk0",
                size: 8 * GIB,
                table: TableKind::Gpt,
                partitions: vec![
                    part(PartType::EfiSystem, Some(100 * MIB), "EFI system partition", fs(FsKind::Vfat, "SYSTEM", "EFI", Content::WindowsEsp)),
                    part(PartType::MicrosoftReserved, Some(16 * MIB), "Microsoft reserved partition", None),
                    part(PartType::MicrosoftBasicData, None, "Basic data partition", fs(FsKind::Ntfs, "Windows", "C:", Content::WindowsSystem)),
                ],
            }],
        },
    ]
}

/// A stable MAC for a VM's NIC, in QEMU's 52:54:00 range.
pub fn mac(vm: &str, index: usize) -> String {
    let mut rng = super::rng::Rng::seeded(&format!("mac/{vm}/{index}"));
    let b = rng.bytes(3);
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The address of a NIC: the network's /24 with the VM's last octet.
pub fn address(cidr: &str, last: u8) -> Option<String> {
    let (base, prefix) = cidr.split_once('/')?;
    let octets: Vec<&str> = base.split('.').collect();
    if octets.len() != 4 || prefix != "24" {
        return None;
    }
    Some(format!("{}.{}.{}.{last}", octets[0], octets[1], octets[2]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::kvm::definition::valid_name;

    #[test]
    fn the_catalog_is_consistent() {
        let hosts = hosts();
        assert_eq!(hosts.len(), 2);
        let vms = &hosts[0].vms;
        assert_eq!(vms.len(), 6);
        for vm in vms {
            assert!(valid_name(vm.name), "{}", vm.name);
            for (network, _, _) in &vm.nics {
                assert!(hosts[0].networks.iter().any(|n| &n.name == network), "{} on {network}", vm.name);
            }
            for disk in &vm.disks {
                assert!(disk.size >= 1 << 30 && disk.size <= 8 << 30, "{} {}", vm.name, disk.name);
                let specs: Vec<_> = disk
                    .partitions
                    .iter()
                    .map(|p| super::super::partition::PartSpec { ptype: p.ptype, size: p.size, name: p.name.into(), bootable: p.bootable })
                    .collect();
                super::super::partition::layout(disk.table, disk.size, &specs).unwrap();
                // UEFI VMs boot from GPT, BIOS VMs from MBR.
                if disk.name == "disk0" {
                    assert_eq!(disk.table == TableKind::Gpt, vm.firmware == Firmware::Uefi, "{}", vm.name);
                }
            }
        }
        assert_eq!(vms.iter().filter(|v| v.power == PowerState::Stopped).count(), 1);
        assert!(hosts[1].vms.is_empty());
        // Every production network has a DR network of the same name and
        // VLAN, and the DR host has one isolated network for tests.
        for n in &hosts[0].networks {
            assert!(!n.isolated && n.vlan.is_some(), "{}", n.name);
            assert!(hosts[1].networks.iter().any(|d| d.name == n.name && d.vlan == n.vlan && d.cidr != n.cidr && !d.isolated), "{}", n.name);
        }
        let isolated: Vec<&str> = hosts[1].networks.iter().filter(|n| n.isolated).map(|n| n.name.as_str()).collect();
        assert_eq!(isolated, ["isolated"]);
    }

    #[test]
    fn macs_are_stable_and_distinct() {
        assert_eq!(mac("web-01", 0), mac("web-01", 0));
        assert_ne!(mac("web-01", 0), mac("web-01", 1));
        assert!(mac("db-01", 0).starts_with("52:54:00:"));
        assert_eq!(address("10.10.0.0/24", 21).as_deref(), Some("10.10.0.21"));
        assert_eq!(address("10.10.0.0/16", 21), None);
    }
}
