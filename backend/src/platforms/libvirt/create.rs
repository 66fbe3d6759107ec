//! Creating a VM on a libvirt host from disk images (a restore): each disk
//! becomes a volume in one of the host's storage pools, its bytes sent
//! through libvirt (`virStorageVolUpload`: no file access to the host), and
//! a new domain is defined with a new UUID and new MACs, its NICs on the
//! networks asked for. The source VM's domain XML, when the restore point
//! has it, is the template for what a restore must keep to boot the same
//! way: domain type, `<os>` (firmware, kernel, boot order), `<features>`,
//! `<cpu>` and the emulator. Anything that fails removes what was made.

use std::os::unix::fs::FileExt;
use std::path::Path;

use shared_types::platform::{DiskFormat, Firmware, GuestOs};
use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use super::domain_xml::escape;
use crate::platforms::error::{PlatformError, Result};
use crate::platforms::kvm::qemu_img;
use crate::platforms::NewVm;

/// Bytes per upload message.
const UPLOAD_CHUNK: usize = 1 << 20;

pub(super) fn lv(what: &str, e: virt::error::Error) -> PlatformError {
    PlatformError::Invalid(format!("{what}: {}", e.message()))
}

/// The pool new disks go to: `name` (active), or [`default_pool`].
pub fn pool_named(conn: &Connect, name: Option<&str>) -> Result<StoragePool> {
    let Some(name) = name else { return default_pool(conn) };
    let active = |c: &Connect| -> String {
        let mut names: Vec<String> = c
            .list_all_storage_pools(virt::sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.name().ok())
            .collect();
        names.sort();
        names.join(", ")
    };
    match conn.lookup_storage_pool_by_name(name) {
        Ok(p) if p.is_active().unwrap_or(false) => Ok(p),
        Ok(_) => Err(PlatformError::Invalid(format!("storage pool '{name}' is not started on the host (active pools: {})", active(conn)))),
        Err(_) => Err(PlatformError::Invalid(format!("the host has no storage pool '{name}' (active pools: {})", active(conn)))),
    }
}

/// The pool new disks go to by default: the host's pool named `default`
/// (what virt-manager and virt-install make and use) when it is active,
/// else the first active pool by name.
pub fn default_pool(conn: &Connect) -> Result<StoragePool> {
    let mut pools = conn
        .list_all_storage_pools(virt::sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
        .map_err(|e| lv("listing storage pools", e))?;
    pools.sort_by_key(|p| {
        let name = p.name().unwrap_or_default();
        (name != "default", name)
    });
    pools.into_iter().next().ok_or_else(|| PlatformError::Invalid("the host has no active storage pool to put the disks in".into()))
}

/// The directory of a directory pool (for console logs beside the disks).
pub fn pool_path(pool: &StoragePool) -> Option<String> {
    let xml = pool.xml_desc(0).ok()?;
    let doc = roxmltree::Document::parse(&xml).ok()?;
    let target = doc.root_element().children().find(|n| n.has_tag_name("target"))?;
    target.children().find(|n| n.has_tag_name("path"))?.text().map(|t| t.trim().to_string())
}

/// Uploads `image` (in `format`) as a new volume `name` of `pool`.
fn upload(conn: &Connect, pool: &StoragePool, name: &str, image: &Path, format: DiskFormat) -> Result<StorageVol> {
    let len = std::fs::metadata(image).map_err(|e| PlatformError::io(format!("reading {}", image.display()), e))?.len();
    let virtual_size = qemu_img::info(image, Some(format))?.virtual_size;
    let compat = if format == DiskFormat::Qcow2 { "<compat>1.1</compat>" } else { "" };
    let xml = format!(
        "<volume><name>{}</name><capacity unit='bytes'>{}</capacity><allocation unit='bytes'>0</allocation><target><format type='{}'/>{compat}</target></volume>",
        escape(name),
        virtual_size.max(len),
        format.qemu_name()
    );
    let vol = StorageVol::create_xml(pool, &xml, 0).map_err(|e| lv(&format!("creating volume '{name}'"), e))?;
    // A new raw volume in a pool of files is one hole: the image's holes may
    // stay holes. Anything else may hold bytes already (the header libvirt
    // wrote for a qcow2 volume, an old logical volume's blocks): every byte.
    let sparse = format == DiskFormat::Raw && file_backed(pool);
    if let Err(e) = upload_into(conn, &vol, name, image, sparse) {
        if let Err(d) = vol.delete(0) {
            tracing::warn!(volume = %name, error = %d.message(), "removing a volume whose upload failed");
        }
        return Err(e);
    }
    Ok(vol)
}

/// Whether the pool's volumes are files (`dir`, `fs`, `netfs` pools).
fn file_backed(pool: &StoragePool) -> bool {
    let Ok(xml) = pool.xml_desc(0) else { return false };
    let Ok(doc) = roxmltree::Document::parse(&xml) else { return false };
    matches!(doc.root_element().attribute("type"), Some("dir" | "fs" | "netfs"))
}

/// Writes the whole of the file `image` into `vol` from its start, through
/// libvirt (the volume file's bytes: for qcow2 its image file).
///
/// `sparse` (only into a volume that is one hole: a new raw file): the
/// image's holes are sent as holes, so a 6 GiB raw disk with 30 MiB of
/// data takes 30 MiB on the host, as it did here. Otherwise every byte is
/// sent: a hole would leave the volume's old bytes under it.
pub(super) fn upload_into(conn: &Connect, vol: &StorageVol, name: &str, image: &Path, sparse: bool) -> Result<()> {
    let len = std::fs::metadata(image).map_err(|e| PlatformError::io(format!("reading {}", image.display()), e))?.len();
    let stream = Stream::new(conn, 0).map_err(|e| lv("opening an upload stream", e))?;
    let flags = if sparse { virt::sys::VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM } else { 0 };
    vol.upload(&stream, 0, len, flags).map_err(|e| lv(&format!("uploading to volume '{name}'"), e))?;
    match send_all(&stream, image, name, sparse) {
        Ok(()) => stream.finish().map_err(|e| lv(&format!("finishing the upload of volume '{name}'"), e)),
        Err(e) => {
            // An open transfer must be aborted, or the volume stays in use.
            let _ = stream.abort();
            Err(e)
        }
    }
}

/// Reads the whole of `vol` (the volume file's bytes) into the new file `out`.
pub(super) fn download_from(conn: &Connect, vol: &StorageVol, name: &str, out: &Path) -> Result<u64> {
    use std::io::Write;
    let mut file = std::fs::File::create(out).map_err(|e| PlatformError::io(format!("creating {}", out.display()), e))?;
    let stream = Stream::new(conn, 0).map_err(|e| lv("opening a download stream", e))?;
    vol.download(&stream, 0, 0, 0).map_err(|e| lv(&format!("downloading volume '{name}'"), e))?;
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut total = 0u64;
    let got = (|| -> Result<()> {
        loop {
            let n = stream.recv(&mut buf).map_err(|e| lv(&format!("reading volume '{name}'"), e))?;
            if n <= 0 {
                return Ok(());
            }
            let n = n as usize;
            file.write_all(&buf[..n]).map_err(|e| PlatformError::io(format!("writing {}", out.display()), e))?;
            total += n as u64;
        }
    })();
    match got {
        Ok(()) => {
            stream.finish().map_err(|e| lv(&format!("finishing the download of volume '{name}'"), e))?;
            file.sync_all().map_err(|e| PlatformError::io(format!("writing {}", out.display()), e))?;
            Ok(total)
        }
        Err(e) => {
            let _ = stream.abort();
            Err(e)
        }
    }
}

/// Sends the whole of `image` on an upload stream: on a `sparse` one its
/// data extents as data and the holes between them (and after the last) as
/// holes, else every byte.
fn send_all(stream: &Stream, image: &Path, name: &str, sparse: bool) -> Result<()> {
    let file = std::fs::File::open(image).map_err(|e| PlatformError::io(format!("opening {}", image.display()), e))?;
    let len = file.metadata().map_err(|e| PlatformError::io(format!("reading {}", image.display()), e))?.len();
    let extents = if sparse {
        crate::sparse_file::data_extents(&file).map_err(|e| PlatformError::io(format!("reading the extents of {}", image.display()), e))?
    } else {
        vec![(0, len)]
    };
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    let mut pos = 0u64;
    for (start, end) in extents {
        if start > pos {
            super::ffi::send_hole(stream, start - pos)?;
        }
        pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], pos).map_err(|e| PlatformError::io(format!("reading {}", image.display()), e))?;
            let mut at = 0;
            while at < n {
                let sent = stream.send(&buf[at..n]).map_err(|e| lv(&format!("sending disk data to volume '{name}'"), e))?;
                if sent <= 0 {
                    return Err(PlatformError::Invalid(format!("the host stopped taking data for volume '{name}'")));
                }
                at += sent as usize;
            }
            pos += n as u64;
        }
    }
    if len > pos {
        super::ffi::send_hole(stream, len - pos)?;
    }
    Ok(())
}

/// The parts of a template domain XML a restore keeps, verbatim.
struct Template {
    domain_type: String,
    os: Option<String>,
    features: Option<String>,
    cpu: Option<String>,
    emulator: Option<String>,
    /// The source had a QEMU guest agent channel (kept: the guest's agent
    /// answers on the new VM too, so its backups can be quiesced).
    agent: bool,
    /// Each source disk's bus by its target name (`sda` → `sata`): kept, a
    /// guest without virtio drivers (Windows) boots only from its own bus.
    buses: std::collections::HashMap<String, String>,
}

/// The buses a disk may be given (libvirt's names).
const BUSES: [&str; 6] = ["virtio", "sata", "scsi", "ide", "usb", "xen"];

/// The bus of disk `target`: the source's (a known one), else virtio.
fn bus_of<'a>(t: Option<&'a Template>, target: &str) -> &'a str {
    t.and_then(|t| t.buses.get(target)).map(String::as_str).filter(|b| BUSES.contains(b)).unwrap_or("virtio")
}

/// The QEMU guest agent's channel (libvirt picks the host side's socket).
const AGENT_CHANNEL: &str = "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>";

fn template(xml: &str) -> Option<Template> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    let part = |name: &str| root.children().find(|n| n.has_tag_name(name)).map(|n| xml[n.range()].to_string());
    // The source's UEFI variables file is its own: the new VM gets a new one.
    let os = root.children().find(|n| n.has_tag_name("os")).map(|os| {
        let mut text = xml[os.range()].to_string();
        if let Some(nvram) = os.children().find(|n| n.has_tag_name("nvram")) {
            text = text.replacen(&xml[nvram.range()], "", 1);
        }
        text
    });
    let emulator = root
        .children()
        .find(|n| n.has_tag_name("devices"))
        .and_then(|d| d.children().find(|n| n.has_tag_name("emulator")))
        .map(|n| xml[n.range()].to_string());
    let agent = root.descendants().any(|n| {
        n.has_tag_name("channel") && n.children().any(|t| t.has_tag_name("target") && t.attribute("name") == Some("org.qemu.guest_agent.0"))
    });
    let buses = root
        .descendants()
        .filter(|n| n.has_tag_name("disk") && n.attribute("device").unwrap_or("disk") == "disk")
        .filter_map(|d| d.children().find(|c| c.has_tag_name("target")))
        .filter_map(|t| Some((t.attribute("dev")?.to_string(), t.attribute("bus")?.to_string())))
        .collect();
    Some(Template { domain_type: root.attribute("type").unwrap_or("kvm").to_string(), os, features: part("features"), cpu: part("cpu"), emulator, agent, buses })
}

/// Creates the VM (stopped, or started when `spec.power` says so).
pub fn create(conn: &Connect, spec: &NewVm) -> Result<String> {
    if conn.lookup_domain_by_name(&spec.name).is_ok() {
        return Err(PlatformError::VmExists(spec.name.clone()));
    }
    let pool = pool_named(conn, spec.pool.as_deref())?;
    let pool_name = pool.name().map_err(|e| lv("reading the pool's name", e))?;
    let mut made: Vec<StorageVol> = Vec::new();
    let result = (|| -> Result<String> {
        let t = spec.definition.as_deref().and_then(template);
        let mut disks = String::new();
        for d in spec.disks.iter().filter(|d| d.in_place) {
            // An image this machine manages (a replica's chain, a test
            // overlay): the domain runs on the file where it lies.
            disks.push_str(&format!(
                "<disk type='file' device='disk'><driver name='qemu' type='{}'/><source file='{}'/><target dev='{}' bus='{}'/></disk>",
                d.image_format.qemu_name(),
                escape(&d.image.to_string_lossy()),
                escape(&d.name),
                bus_of(t.as_ref(), &d.name)
            ));
        }
        for d in spec.disks.iter().filter(|d| !d.in_place) {
            let format = d.format.unwrap_or(DiskFormat::Qcow2);
            let staged = d.image.with_extension(format!("upload.{}", format.extension()));
            let image = if d.image_format == format {
                d.image.clone()
            } else {
                qemu_img::convert(&d.image, d.image_format, &staged, format)?;
                staged.clone()
            };
            let vol_name = format!("{}-{}.{}", spec.name, d.name, format.extension());
            let uploaded = upload(conn, &pool, &vol_name, &image, format);
            if image == staged {
                let _ = std::fs::remove_file(&staged);
            }
            made.push(uploaded?);
            disks.push_str(&format!(
                "<disk type='volume' device='disk'><driver name='qemu' type='{}'/><source pool='{}' volume='{}'/><target dev='{}' bus='{}'/></disk>",
                format.qemu_name(),
                escape(&pool_name),
                escape(&vol_name),
                escape(&d.name),
                bus_of(t.as_ref(), &d.name)
            ));
        }
        // A restore gets new MACs (libvirt makes them); a replica or its
        // test VM keeps the source's, as the guest knows them.
        let parking = spec.nics.iter().any(|n| n.network.is_empty()).then(|| parking_network(conn)).flatten();
        let nics = interfaces(&spec.nics, spec.disks.iter().all(|d| d.in_place), parking.as_deref());
        let domain_type = t.as_ref().map(|t| t.domain_type.clone()).unwrap_or_else(|| "kvm".into());
        let os = t.as_ref().and_then(|t| t.os.clone()).unwrap_or_else(|| match spec.firmware {
            Firmware::Uefi => "<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>".into(),
            Firmware::Bios => "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>".into(),
        });
        let features = t.as_ref().and_then(|t| t.features.clone()).unwrap_or_else(|| "<features><acpi/></features>".into());
        let cpu = t.as_ref().and_then(|t| t.cpu.clone()).unwrap_or_default();
        let emulator = t.as_ref().and_then(|t| t.emulator.clone()).unwrap_or_default();
        let agent = if t.as_ref().is_some_and(|t| t.agent) { AGENT_CHANNEL } else { "" };
        let console = match pool_path(&pool) {
            Some(dir) => format!(
                "<serial type='pty'><log file='{}' append='off'/><target port='0'/></serial>",
                escape(&format!("{dir}/{}.console.log", spec.name))
            ),
            None => "<serial type='pty'><target port='0'/></serial>".into(),
        };
        let role = spec.role.as_deref().map(|r| format!(" role='{}'", escape(r))).unwrap_or_default();
        let guest_os = match spec.os {
            GuestOs::Windows => " os='windows'",
            GuestOs::Other => " os='other'",
            GuestOs::Linux => "",
        };
        let role = if role.is_empty() && guest_os.is_empty() {
            String::new()
        } else {
            format!("<metadata><s:vm xmlns:s='https://sendense.io/xmlns/domain/1'{role}{guest_os}/></metadata>")
        };
        let xml = format!(
            "<domain type='{}'><name>{}</name>{role}<memory unit='MiB'>{}</memory><vcpu>{}</vcpu>{os}{features}{cpu}\
<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
<devices>{emulator}{disks}{nics}{console}<console type='pty'><target type='serial' port='0'/></console>{agent}</devices></domain>",
            escape(&domain_type),
            escape(&spec.name),
            spec.memory_mib,
            spec.vcpus.max(1),
        );
        let dom = conn.define_domain_xml(&xml).map_err(|e| lv(&format!("defining VM '{}'", spec.name), e))?;
        let uuid = dom.uuid_string().map_err(|e| lv("reading the new VM's uuid", e))?;
        if spec.power == shared_types::platform::PowerState::Running {
            if let Err(e) = dom.create() {
                let _ = dom
                    .undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM)
                    .or_else(|_| dom.undefine());
                return Err(lv(&format!("starting VM '{}'", spec.name), e));
            }
        }
        Ok(uuid)
    })();
    if result.is_err() {
        for vol in made {
            let _ = vol.delete(0);
        }
    }
    result
}

/// The `<interface>` elements of `nics`: each on its network, with its
/// MAC when `keep_macs`. A NIC on no network is defined on `parking` (a
/// network of the host) with its link down, so it keeps its place (PCI
/// slot, the guest's name for it) until it is connected; without a
/// parking network it is left out.
pub fn interfaces(nics: &[shared_types::platform::NicInfo], keep_macs: bool, parking: Option<&str>) -> String {
    nics.iter()
        .filter_map(|n| {
            let (network, link) = match (n.network.is_empty(), parking) {
                (false, _) => (n.network.as_str(), ""),
                (true, Some(p)) => (p, "<link state='down'/>"),
                (true, None) => return None,
            };
            let mac = if n.mac.is_empty() || !keep_macs { String::new() } else { format!("<mac address='{}'/>", escape(&n.mac)) };
            Some(format!("<interface type='network'>{mac}<source network='{}'/><model type='{}'/>{link}</interface>", escape(network), escape(&n.model)))
        })
        .collect()
}

/// The network unconnected NICs wait on: the host's first active isolated
/// network, else its first active one.
pub fn parking_network(conn: &Connect) -> Option<String> {
    let mut nets: Vec<(bool, String)> = conn
        .list_all_networks(virt::sys::VIR_CONNECT_LIST_NETWORKS_ACTIVE)
        .ok()?
        .into_iter()
        .filter_map(|n| {
            let info = super::domain_xml::parse_network(&n.xml_desc(0).ok()?).ok()?;
            Some((!info.isolated, info.name))
        })
        .collect();
    nets.sort();
    nets.into_iter().next().map(|(_, name)| name)
}

/// Puts a shut-off domain's NICs on the networks of `nics`. When the
/// domain has as many interfaces, each keeps its element (MAC, model, PCI
/// address) and only its network and link change; otherwise all are
/// replaced.
pub fn set_interfaces(conn: &Connect, dom: &virt::domain::Domain, vm: &str, nics: &[shared_types::platform::NicInfo]) -> Result<()> {
    let xml = dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).map_err(|e| lv(&format!("reading the definition of '{vm}'"), e))?;
    let doc = roxmltree::Document::parse(&xml).map_err(|e| PlatformError::Invalid(format!("the definition of '{vm}' does not parse: {e}")))?;
    let devices = doc.root_element().children().find(|n| n.has_tag_name("devices")).ok_or_else(|| PlatformError::Invalid(format!("VM '{vm}' has no devices")))?;
    let ifaces: Vec<_> = devices.children().filter(|n| n.has_tag_name("interface")).collect();
    let parking = nics.iter().any(|n| n.network.is_empty()).then(|| parking_network(conn)).flatten();
    let mut out = String::with_capacity(xml.len());
    let mut at = 0;
    if ifaces.len() == nics.len() && ifaces.iter().all(|i| i.attribute("type") == Some("network") && i.children().any(|c| c.has_tag_name("source"))) {
        for (iface, nic) in ifaces.iter().zip(nics) {
            let (network, link) = match (nic.network.is_empty(), parking.as_deref()) {
                (false, _) => (nic.network.as_str(), ""),
                (true, Some(p)) => (p, "<link state='down'/>"),
                (true, None) => return Err(PlatformError::Invalid(format!("VM '{vm}': the host has no network to leave a NIC unconnected on"))),
            };
            let mut first = true;
            for c in iface.children().filter(|c| c.has_tag_name("source") || c.has_tag_name("link")) {
                out.push_str(&xml[at..c.range().start]);
                if first {
                    out.push_str(&format!("<source network='{}'/>{link}", escape(network)));
                    first = false;
                }
                at = c.range().end;
            }
        }
        out.push_str(&xml[at..]);
    } else {
        for iface in &ifaces {
            out.push_str(&xml[at..iface.range().start]);
            at = iface.range().end;
        }
        let end = devices.range().end - "</devices>".len();
        if at > end || !xml[..devices.range().end].ends_with("</devices>") {
            return Err(PlatformError::Invalid(format!("the definition of '{vm}' has an unexpected <devices> element")));
        }
        out.push_str(&xml[at..end]);
        out.push_str(&interfaces(nics, true, parking.as_deref()));
        out.push_str(&xml[end..]);
    }
    conn.define_domain_xml(&out).map_err(|e| lv(&format!("changing the NICs of '{vm}'"), e))?;
    Ok(())
}

/// The storage volume a disk's source names (a file path, or `pool/volume`),
/// if it is one.
pub(super) fn volume_of(conn: &Connect, source: &str) -> Option<StorageVol> {
    if source.starts_with('/') {
        conn.lookup_storage_vol_by_path(source).ok()
    } else {
        let (pool, vol) = source.split_once('/')?;
        conn.lookup_storage_pool_by_name(pool).ok()?.lookup_storage_vol_by_name(vol).ok()
    }
}

/// Removes a VM: stopped hard if it runs, undefined with its checkpoint
/// metadata, and the volumes of its disks deleted.
pub fn delete(conn: &Connect, dom: &virt::domain::Domain, def: &super::domain_xml::DomainDef) -> Result<()> {
    if dom.is_active().unwrap_or(false) {
        dom.destroy().map_err(|e| lv(&format!("stopping VM '{}'", def.name), e))?;
    }
    let volumes: Vec<StorageVol> = def.disks.iter().filter_map(|d| volume_of(conn, d.source.as_deref()?)).collect();
    dom.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM)
        .or_else(|_| dom.undefine())
        .map_err(|e| lv(&format!("removing VM '{}'", def.name), e))?;
    for vol in volumes {
        vol.delete(0).map_err(|e| lv("deleting a disk volume", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{bus_of, template};

    #[test]
    fn a_new_vm_keeps_each_disks_bus_and_the_guest_agent_channel() {
        let xml = "<domain type='kvm'><name>win</name><os><type>hvm</type></os><devices>\
            <disk type='file' device='disk'><source file='/a.qcow2'/><target dev='sda' bus='sata'/></disk>\
            <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>\
            <disk type='file' device='disk'><source file='/b.qcow2'/><target dev='vdb' bus='virtio'/></disk>\
            <disk type='file' device='disk'><source file='/c.qcow2'/><target dev='sdz' bus='floppy-ish'/></disk>\
            <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices></domain>";
        let t = template(xml).unwrap();
        assert_eq!(bus_of(Some(&t), "sda"), "sata", "a Windows disk stays on SATA");
        assert_eq!(bus_of(Some(&t), "vdb"), "virtio");
        assert_eq!(bus_of(Some(&t), "hdc"), "virtio", "a CD-ROM is not a disk to restore");
        assert_eq!(bus_of(Some(&t), "sdz"), "virtio", "an unknown bus falls back");
        assert_eq!(bus_of(None, "sda"), "virtio", "no definition: virtio");
        assert!(t.agent);
        assert!(!template("<domain type='kvm'><devices/></domain>").unwrap().agent);
    }
}
