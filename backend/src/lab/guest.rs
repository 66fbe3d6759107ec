//! Lab guests on a libvirt host: a Debian kernel and a busybox initramfs
//! (the guest kit, made by `need_guest_kit` in `scripts/lib.sh`) booted
//! under TCG, with qcow2 disks and a serial console logged to a file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::platforms::libvirt::domain_xml::escape;

/// Where the guest kit is: `$SENDENSE_GUEST_KIT`, else `~/.cache/sendense/guest-kit`.
pub fn kit_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("SENDENSE_GUEST_KIT") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/sendense/guest-kit"),
    };
    for f in ["vmlinuz", "initrd.cpio.gz"] {
        if !dir.join(f).is_file() {
            bail!("the lab guests' {f} is missing from {}: run scripts/run.sh or scripts/test.sh once (they make it)", dir.display());
        }
    }
    Ok(dir)
}

/// What a lab guest is made of.
pub struct GuestSpec<'a> {
    pub name: &'a str,
    pub memory_mib: u64,
    /// Target device and qcow2 image of each disk.
    pub disks: &'a [(&'a str, &'a Path)],
    /// libvirt networks the guest's NICs are on.
    pub networks: &'a [&'a str],
    pub console_log: &'a Path,
    pub role: Option<&'a str>,
}

/// The `<kernel>`, `<initrd>` and `<cmdline>` of a guest booting the kit as
/// `name` in `role` (its first word, letters and digits: the guest's work);
/// `read_only`: the guest mounts its filesystems read-only and writes
/// nothing (`sendense.ro=1`).
pub fn kernel_boot(kit: &Path, name: &str, role: Option<&str>, read_only: bool) -> String {
    let role = role.unwrap_or("app").split_whitespace().next().unwrap_or("app").replace(|c: char| !c.is_ascii_alphanumeric(), "");
    format!(
        "<kernel>{}</kernel><initrd>{}</initrd><cmdline>console=ttyS0 panic=-1 loglevel=4 sendense.name={} sendense.role={}{}</cmdline>",
        escape(&kit.join("vmlinuz").to_string_lossy()),
        escape(&kit.join("initrd.cpio.gz").to_string_lossy()),
        escape(name),
        escape(&role),
        if read_only { " sendense.ro=1" } else { "" },
    )
}

/// The domain XML of a lab guest (TCG: `/dev/kvm` is not usable here).
pub fn domain_xml(kit: &Path, g: &GuestSpec) -> String {
    let disks: String = g
        .disks
        .iter()
        .map(|(target, path)| {
            format!(
                "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{}'/><target dev='{}' bus='virtio'/></disk>",
                escape(&path.to_string_lossy()),
                escape(target)
            )
        })
        .collect();
    // Tap devices named here, not vnetN by the daemon (see lab::slot).
    let nics: String = g
        .networks
        .iter()
        .zip(super::slot::tap_names(g.networks.len()))
        .map(|(n, tap)| format!("<interface type='network'><source network='{}'/><target dev='{tap}'/><model type='virtio'/></interface>", escape(n)))
        .collect();
    let role = g.role.map(|r| format!("<metadata><s:vm xmlns:s='https://sendense.io/xmlns/domain/1' role='{}'/></metadata>", escape(r))).unwrap_or_default();
    format!(
        "<domain type='qemu'><name>{name}</name>{role}<memory unit='MiB'>{mem}</memory><vcpu>1</vcpu>\
<os><type arch='x86_64' machine='pc'>hvm</type>{boot}</os>\
<features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>\
<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{disks}{nics}\
<serial type='pty'><log file='{log}' append='off'/><target port='0'/></serial>\
<console type='pty'><target type='serial' port='0'/></console>\
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel><memballoon model='none'/></devices></domain>",
        name = escape(g.name),
        boot = kernel_boot(kit, g.name, g.role, false),
        mem = g.memory_mib,
        log = escape(&g.console_log.to_string_lossy()),
    )
}
