//! Reading libvirt's XML: a domain's definition (CPUs, memory, firmware,
//! disks, NICs, serial console), a network's (bridge, subnet, forward mode,
//! VLAN) and a checkpoint's parent. Only what Sendense needs; anything else
//! in the document is ignored.

use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo};

use crate::platforms::error::{PlatformError, Result};

/// A disk of a domain as its definition gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDisk {
    /// Target device (`vda`): the disk's name in Sendense and in libvirt's
    /// backup and checkpoint XML.
    pub target: String,
    pub bus: String,
    /// `file` source path, or `pool/volume` for a volume source.
    pub source: Option<String>,
    pub format: DiskFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDef {
    pub uuid: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub disks: Vec<DomainDisk>,
    pub nics: Vec<NicInfo>,
    /// The serial console's pty while the domain runs.
    pub console_pty: Option<String>,
    /// The serial console's log file, when it has one.
    pub console_log: Option<String>,
    /// `<metadata>` role Sendense wrote, if any.
    pub role: Option<String>,
    /// The guest OS from Sendense's `<metadata>` (`os='windows'`); Linux
    /// when it says nothing.
    pub os: GuestOs,
}

fn parse<'a>(xml: &'a str, what: &str) -> Result<roxmltree::Document<'a>> {
    roxmltree::Document::parse(xml).map_err(|e| PlatformError::Invalid(format!("libvirt returned {what} XML that does not parse: {e}")))
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn memory_mib(node: roxmltree::Node) -> u64 {
    let value: u64 = node.text().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    let unit = node.attribute("unit").unwrap_or("KiB");
    match unit {
        "b" | "bytes" => value >> 20,
        "KiB" | "k" | "K" => value >> 10,
        "MiB" | "M" => value,
        "GiB" | "G" => value << 10,
        "TiB" | "T" => value << 20,
        _ => value >> 10,
    }
}

pub fn parse_domain(xml: &str) -> Result<DomainDef> {
    let doc = parse(xml, "domain")?;
    let root = doc.root_element();
    let text = |name: &str| child(root, name).and_then(|n| n.text()).map(|t| t.trim().to_string());
    let os = child(root, "os");
    let uefi = os.is_some_and(|os| {
        os.attribute("firmware") == Some("efi") || child(os, "loader").is_some_and(|l| l.attribute("type") == Some("pflash"))
    });
    let mut disks = Vec::new();
    let mut nics = Vec::new();
    let (mut console_pty, mut console_log) = (None, None);
    if let Some(devices) = child(root, "devices") {
        for d in devices.children().filter(|n| n.is_element()) {
            match d.tag_name().name() {
                "disk" if d.attribute("device").unwrap_or("disk") == "disk" => {
                    let Some(target) = child(d, "target").and_then(|t| t.attribute("dev")) else { continue };
                    let source = child(d, "source").and_then(|s| {
                        s.attribute("file")
                            .or_else(|| s.attribute("dev"))
                            .map(String::from)
                            .or_else(|| Some(format!("{}/{}", s.attribute("pool")?, s.attribute("volume")?)))
                    });
                    let format = child(d, "driver").and_then(|drv| drv.attribute("type")).and_then(DiskFormat::parse).unwrap_or(DiskFormat::Raw);
                    let bus = child(d, "target").and_then(|t| t.attribute("bus")).unwrap_or("virtio").to_string();
                    disks.push(DomainDisk { target: target.into(), bus, source, format });
                }
                "interface" => {
                    let mac = child(d, "mac").and_then(|m| m.attribute("address")).unwrap_or_default().to_string();
                    // A NIC whose link is down is connected to nothing.
                    let down = child(d, "link").is_some_and(|l| l.attribute("state") == Some("down"));
                    let network = if down {
                        String::new()
                    } else {
                        child(d, "source").and_then(|s| s.attribute("network").or_else(|| s.attribute("bridge"))).unwrap_or_default().to_string()
                    };
                    let model = child(d, "model").and_then(|m| m.attribute("type")).unwrap_or("virtio").to_string();
                    nics.push(NicInfo { mac, network, model });
                }
                "serial" if console_pty.is_none() && console_log.is_none() => {
                    console_pty = child(d, "source").and_then(|s| s.attribute("path")).map(String::from);
                    console_log = child(d, "log").and_then(|s| s.attribute("file")).map(String::from);
                }
                _ => {}
            }
        }
    }
    let ours = child(root, "metadata").and_then(|m| m.children().find(|n| n.has_tag_name(("https://sendense.io/xmlns/domain/1", "vm"))));
    let role = ours.and_then(|n| n.attribute("role")).map(String::from);
    let os = match ours.and_then(|n| n.attribute("os")) {
        Some("windows") => GuestOs::Windows,
        Some("other") => GuestOs::Other,
        _ => GuestOs::Linux,
    };
    Ok(DomainDef {
        uuid: text("uuid").unwrap_or_default(),
        name: text("name").unwrap_or_default(),
        vcpus: text("vcpu").and_then(|v| v.parse().ok()).unwrap_or(1),
        memory_mib: child(root, "memory").map(memory_mib).unwrap_or(0),
        firmware: if uefi { Firmware::Uefi } else { Firmware::Bios },
        disks,
        nics,
        console_pty,
        console_log,
        role,
        os,
    })
}

/// A network: bridge, first IPv4 subnet, VLAN tag; isolated when it has no
/// `<forward>` (nothing on it reaches another network).
pub fn parse_network(xml: &str) -> Result<NetworkInfo> {
    let doc = parse(xml, "network")?;
    let root = doc.root_element();
    let name = child(root, "name").and_then(|n| n.text()).unwrap_or_default().trim().to_string();
    let bridge = child(root, "bridge").and_then(|b| b.attribute("name")).map(String::from);
    let cidr = root.children().filter(|n| n.has_tag_name("ip")).find(|ip| ip.attribute("family").unwrap_or("ipv4") == "ipv4").and_then(|ip| {
        let addr: std::net::Ipv4Addr = ip.attribute("address")?.parse().ok()?;
        let prefix: u32 = match (ip.attribute("prefix"), ip.attribute("netmask")) {
            (Some(p), _) => p.parse().ok()?,
            (None, Some(m)) => u32::from(m.parse::<std::net::Ipv4Addr>().ok()?).count_ones(),
            _ => 24,
        };
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) };
        Some(format!("{}/{prefix}", std::net::Ipv4Addr::from(u32::from(addr) & mask)))
    });
    let vlan = child(root, "vlan").and_then(|v| child(v, "tag")).and_then(|t| t.attribute("id")).and_then(|id| id.parse().ok());
    let isolated = child(root, "forward").is_none();
    Ok(NetworkInfo { name, bridge, cidr, vlan, isolated, inactive: false })
}

/// The parent checkpoint a checkpoint's XML names.
pub fn checkpoint_parent(xml: &str) -> Result<Option<String>> {
    let doc = parse(xml, "checkpoint")?;
    Ok(child(doc.root_element(), "parent").and_then(|p| child(p, "name")).and_then(|n| n.text()).map(|t| t.trim().to_string()))
}

/// Escapes text for an XML attribute or element.
/// The target names (`vda`) of the disks in a domain's XML that have a
/// backing image (a `<backingStore>` with a `<source>`).
pub fn disks_with_backing(xml: &str) -> Result<Vec<String>> {
    let doc = parse(xml, "domain")?;
    Ok(doc
        .descendants()
        .filter(|n| n.has_tag_name("disk"))
        .filter(|d| child(*d, "backingStore").is_some_and(|b| child(b, "source").is_some()))
        .filter_map(|d| child(d, "target").and_then(|t| t.attribute("dev")).map(str::to_string))
        .collect())
}

pub use crate::markup::escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_reads_with_its_disks_nics_and_console() {
        let xml = r#"<domain type='qemu' id='3'>
  <name>web-01</name><uuid>5c1f2a2e-0000-4000-8000-000000000001</uuid>
  <metadata><s:vm xmlns:s="https://sendense.io/xmlns/domain/1" role="web" os="windows"/></metadata>
  <memory unit='KiB'>131072</memory><vcpu placement='static'>2</vcpu>
  <os firmware='efi'><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/p/web-01.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='prod' volume='web-01-data.raw'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='lan'/><model type='virtio'/></interface>
    <serial type='pty'><source path='/dev/pts/7'/><log file='/l/web-01.log' append='off'/><target port='0'/></serial>
  </devices></domain>"#;
        let d = parse_domain(xml).unwrap();
        assert_eq!((d.name.as_str(), d.vcpus, d.memory_mib, d.firmware), ("web-01", 2, 128, Firmware::Uefi));
        assert_eq!((d.role.as_deref(), d.os), (Some("web"), GuestOs::Windows));
        assert_eq!(d.disks.len(), 2, "the cdrom is not a disk");
        assert_eq!(d.disks[0], DomainDisk { target: "vda".into(), bus: "virtio".into(), source: Some("/p/web-01.qcow2".into()), format: DiskFormat::Qcow2 });
        assert_eq!(d.disks[1].source.as_deref(), Some("prod/web-01-data.raw"));
        assert_eq!(d.nics, vec![NicInfo { mac: "52:54:00:aa:bb:cc".into(), network: "lan".into(), model: "virtio".into() }]);
        assert_eq!((d.console_pty.as_deref(), d.console_log.as_deref()), (Some("/dev/pts/7"), Some("/l/web-01.log")));
        assert_eq!(d.role.as_deref(), Some("web"));
    }

    #[test]
    fn networks_read_isolated_without_forward_and_with_their_subnet() {
        let nat = parse_network("<network><name>lan</name><forward mode='nat'/><bridge name='virbr1'/><ip address='10.81.0.1' netmask='255.255.255.0'/></network>").unwrap();
        assert_eq!(nat, NetworkInfo { name: "lan".into(), bridge: Some("virbr1".into()), cidr: Some("10.81.0.0/24".into()), vlan: None, isolated: false, inactive: false });
        let iso = parse_network("<network><name>iso</name><bridge name='virbr2'/><vlan><tag id='30'/></vlan><ip address='10.83.0.1' prefix='16'/></network>").unwrap();
        assert!(iso.isolated);
        assert_eq!((iso.cidr.as_deref(), iso.vlan), (Some("10.83.0.0/16"), Some(30)));
    }

    #[test]
    fn bad_xml_is_an_error_naming_what_it_was() {
        let e = parse_domain("<domain>").unwrap_err().to_string();
        assert!(e.contains("domain XML"), "{e}");
    }
}
