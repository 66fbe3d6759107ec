//! Defining a host layout on a libvirt host: the networks of a layout
//! directory's `host.json` and each of its VMs as a shut-off domain whose
//! disks are the layout's image files, used in place (see
//! [`crate::platforms::kvm::definition`] for the layout). This is how the
//! demo lab's builder output and the tests' hand-made VMs become VMs of a
//! real KVM host; Sendense itself only ever talks to the host through
//! libvirt. Linux VMs boot the lab's guest kit (when it is there), which
//! mounts their filesystems read-only (`sendense.ro=1`: the guest writes
//! nothing, so the disks stay as their maker left them) and prints a boot
//! line on the console logged beside the VM's definition (`console.log`).
//!
//! The directory of each VM's disks becomes a directory storage pool
//! (`layout-<n>`). Bridges get names unique on this machine (`<tag><n>`),
//! the VMs' tap devices too ([`slot::tap_names`]). A network keeps its
//! subnet when no other interface here routes it and it is none of the
//! demo labs' ([`slot::RESERVED_OCTETS`]), else it gets a free
//! `10.x.y.0/24`: several hosts built from one layout can run side by side.
//! VLAN tags are not carried over (a Linux bridge network has none in
//! libvirt).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use shared_types::platform::{Firmware, GuestOs, NetworkInfo};
use virt::connect::Connect;

use super::guest;
use super::slot;
use crate::platforms::kvm::definition::{self, VmDefinition};
use crate::platforms::libvirt::domain_xml::escape;

/// A VM defined from the layout: its libvirt uuid and each disk's target
/// (`vda`, `sdb`, …: the disk's name in Sendense) with its image.
#[derive(Debug, Clone)]
pub struct ImportedVm {
    pub name: String,
    pub uuid: String,
    pub disks: Vec<(String, PathBuf)>,
}

impl ImportedVm {
    /// The image behind disk `target`.
    pub fn disk(&self, target: &str) -> &Path {
        self.disks.iter().find(|(t, _)| t == target).map(|(_, p)| p.as_path()).unwrap_or_else(|| panic!("{} has no disk {target}", self.name))
    }
}

/// Defines (and starts) the layout's networks and defines its VMs, shut
/// off, on `conn`. `tag` (letters and digits, at most 12) prefixes the
/// bridges' names.
pub fn define(conn: &Connect, layout: &Path, tag: &str) -> Result<Vec<ImportedVm>> {
    if tag.is_empty() || tag.len() > 12 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("bridge tag '{tag}': 1 to 12 letters or digits");
    }
    let host = definition::read_host(layout)?;
    for (i, net) in host.networks.iter().enumerate() {
        define_network(conn, net, &format!("{tag}{i}"))?;
    }
    let mut vms = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for name in definition::list_vms(layout)? {
        let def = definition::read_vm(layout, &name)?;
        let vm = define_vm(conn, layout, &def)?;
        for (_, image) in &vm.disks {
            if let Some(dir) = image.parent().filter(|d| !dirs.iter().any(|x| x == d)) {
                dirs.push(dir.to_path_buf());
            }
        }
        vms.push(vm);
    }
    // Every disk is a volume of a storage pool, as on a managed host (what
    // Sendense writes into a disk goes through the pool's volume).
    for (i, dir) in dirs.iter().enumerate() {
        let xml = format!("<pool type='dir'><name>layout-{i}</name><target><path>{}</path></target></pool>", escape(&dir.to_string_lossy()));
        let pool = conn.define_storage_pool_xml(&xml, 0).with_context(|| format!("defining a storage pool on {}", dir.display()))?;
        pool.create(0).with_context(|| format!("starting the storage pool on {}", dir.display()))?;
    }
    Ok(vms)
}

/// Defines one VM of the layout (its networks must be defined).
pub fn define_vm(conn: &Connect, layout: &Path, def: &VmDefinition) -> Result<ImportedVm> {
    let mut disks = Vec::new();
    let mut disk_xml = String::new();
    let mut counts = std::collections::HashMap::new();
    for d in &def.disks {
        let (prefix, bus) = match d.bus.as_str() {
            "sata" => ("sd", "sata"),
            "scsi" => ("sd", "scsi"),
            "ide" => ("hd", "ide"),
            _ => ("vd", "virtio"),
        };
        let n: &mut u8 = counts.entry(prefix).or_default();
        let target = format!("{prefix}{}", (b'a' + *n) as char);
        *n += 1;
        let image = definition::disk_path(layout, &def.name, d);
        let image = std::fs::canonicalize(&image).with_context(|| format!("disk {} of {}: {}", d.name, def.name, image.display()))?;
        disk_xml.push_str(&format!(
            "<disk type='file' device='disk'><driver name='qemu' type='{}'/><source file='{}'/><target dev='{target}' bus='{bus}'/></disk>",
            d.format.qemu_name(),
            escape(&image.to_string_lossy()),
        ));
        disks.push((target, image));
    }
    // Tap devices named here, not vnetN by the daemon (see lab::slot).
    let nics: String = def
        .nics
        .iter()
        .zip(super::slot::tap_names(def.nics.len()))
        .map(|(n, tap)| {
            let mac = if n.mac.is_empty() { String::new() } else { format!("<mac address='{}'/>", escape(&n.mac)) };
            format!(
                "<interface type='network'>{mac}<source network='{}'/><target dev='{tap}'/><model type='{}'/></interface>",
                escape(&n.network),
                escape(if n.model.is_empty() { "virtio" } else { &n.model })
            )
        })
        .collect();
    let (firmware, machine) = match def.firmware {
        Firmware::Uefi => (" firmware='efi'", "q35"),
        Firmware::Bios => ("", "pc"),
    };
    // A Linux VM boots the guest kit's kernel, which mounts the VM's own
    // filesystems and prints its boot line; anything else boots its disk.
    let boot = match (def.os, guest::kit_dir()) {
        (GuestOs::Linux, Ok(kit)) => guest::kernel_boot(&kit, &def.name, def.role.as_deref(), true),
        _ => "<boot dev='hd'/>".into(),
    };
    let os = format!("<os{firmware}><type arch='x86_64' machine='{machine}'>hvm</type>{boot}</os>");
    let console_log = definition::vm_dir(layout, &def.name).join("console.log");
    let uuid = uuid::Uuid::parse_str(&def.uuid).map(|u| format!("<uuid>{u}</uuid>")).unwrap_or_default();
    let guest_os = match def.os {
        GuestOs::Windows => " os='windows'",
        _ => "",
    };
    let role = def.role.as_deref().map(|r| format!(" role='{}'", escape(r))).unwrap_or_default();
    let xml = format!(
        "<domain type='qemu'><name>{}</name>{uuid}<metadata><s:vm xmlns:s='https://sendense.io/xmlns/domain/1'{role}{guest_os}/></metadata>\
<memory unit='MiB'>{}</memory><vcpu>{}</vcpu>{os}<features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>\
<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{disk_xml}{nics}\
<serial type='pty'><log file='{}' append='off'/><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>\
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel><memballoon model='none'/></devices></domain>",
        escape(&def.name),
        def.memory_mib.max(16),
        def.vcpus.max(1),
        escape(&console_log.to_string_lossy()),
    );
    let dom = conn.define_domain_xml(&xml).with_context(|| format!("defining VM {}", def.name))?;
    let uuid = dom.uuid_string().with_context(|| format!("reading the uuid of {}", def.name))?;
    Ok(ImportedVm { name: def.name.clone(), uuid, disks })
}

/// Defines and starts a network: NAT unless isolated, on its own subnet.
fn define_network(conn: &Connect, net: &NetworkInfo, bridge: &str) -> Result<()> {
    let mut subnet = net.cidr.as_deref().and_then(parse_24).filter(|s| !slot::RESERVED_OCTETS.contains(&s.0) && !routed(*s));
    let mut last = String::new();
    for _ in 0..8 {
        let (a, b) = subnet.unwrap_or_else(random_subnet);
        let forward = if net.isolated { "" } else { "<forward mode='nat'/>" };
        let xml = format!(
            "<network><name>{}</name>{forward}<bridge name='{}' stp='off' delay='0'/><ip address='10.{a}.{b}.1' netmask='255.255.255.0'/></network>",
            escape(&net.name),
            escape(bridge)
        );
        let n = conn.define_network_xml(&xml).with_context(|| format!("defining network {}", net.name))?;
        match n.create() {
            Ok(_) => return Ok(()),
            Err(e) => {
                // Another network here took the subnet since it was checked.
                last = e.message().to_string();
                let _ = n.undefine();
                subnet = None;
            }
        }
    }
    bail!("starting network {}: {last}", net.name)
}

/// `10.a.b.0/24` as (a, b); other subnets are not kept.
fn parse_24(cidr: &str) -> Option<(u8, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let o: Vec<u8> = addr.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    (len == "24" && o.len() == 4 && o[0] == 10).then(|| (o[1], o[2]))
}

/// A `10.a.b.0/24` with `a` in 64..128, outside the demo labs' and the
/// tests' own subnets ([`slot::RESERVED_OCTETS`]).
fn random_subnet() -> (u8, u8) {
    let r = uuid::Uuid::new_v4();
    let b = r.as_bytes();
    let free: Vec<u8> = (64..128).filter(|a| !slot::RESERVED_OCTETS.contains(a)).collect();
    (free[b[0] as usize % free.len()], b[1])
}

/// Whether an interface of this machine already routes `10.a.b.0/24`.
fn routed((a, b): (u8, u8)) -> bool {
    let out = std::process::Command::new("ip").args(["-4", "route", "show", &format!("10.{a}.{b}.0/24")]).output();
    out.map(|o| !o.stdout.is_empty()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ten_dot_slash_24_subnets_are_kept() {
        assert_eq!(parse_24("10.20.30.0/24"), Some((20, 30)));
        assert_eq!(parse_24("10.20.30.0/16"), None);
        assert_eq!(parse_24("192.168.1.0/24"), None);
        assert_eq!(parse_24("nonsense"), None);
        for _ in 0..200 {
            let (a, _) = random_subnet();
            assert!((64..128).contains(&a) && !slot::RESERVED_OCTETS.contains(&a), "10.{a}: the labs' and the tests' subnets are kept free");
        }
    }
}
