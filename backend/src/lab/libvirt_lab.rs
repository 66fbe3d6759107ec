//! The demo lab on real libvirt hosts: a production host and a DR host
//! (each its own libvirtd, [`LibvirtHost`]) with the lab's networks (the DR
//! host's `isolated` one without uplink) and a storage pool each, and on
//! the production host the lab's VMs as guests that boot a real kernel and
//! mount the real filesystems of their disks (the disks `lab init` builds,
//! copied into the host's pool). Linux guests run and do their role's work
//! through their filesystems; the Windows VM stays shut off (its NTFS disk
//! is offline: the lab kernel does not mount it).
//!
//! ```text
//! DIR/libvirt/prod/   the production host (see lab::libvirt_host)
//! DIR/libvirt/dr/     the DR host
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shared_types::platform::GuestOs;
use virt::connect::Connect;
use virt::storage_pool::StoragePool;

use super::catalog;
use super::guest::{self, GuestSpec};
use super::guest_console;
use super::libvirt_host::LibvirtHost;
use super::manifest::LabManifest;
use super::slot;
use crate::platforms::libvirt::domain_xml::escape;

/// Memory of every lab guest: the kernel and a busybox userland need no more.
pub const GUEST_MEMORY_MIB: u64 = 128;
/// How long all guests together may take to boot.
pub const BOOT_BUDGET: Duration = Duration::from_secs(90);

/// The lab's libvirt hosts under `dir`: production, then DR.
pub fn hosts(dir: &Path) -> [LibvirtHost; 2] {
    ["prod", "dr"].map(|h| LibvirtHost::new(h, &dir.join("libvirt").join(h)))
}

/// Why the libvirt lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("the libvirt lab needs root (it runs its own libvirt daemons)".into());
    }
    if !Path::new("/usr/sbin/libvirtd").exists() || !Path::new("/usr/bin/qemu-system-x86_64").exists() {
        return Some("libvirt and QEMU are not installed: scripts/run.sh installs them".into());
    }
    guest::kit_dir().err().map(|e| e.to_string())
}

/// A guest of the lab and the line it printed once up.
#[derive(Debug, Clone)]
pub struct BootedGuest {
    pub name: String,
    pub boot_line: String,
}

/// What [`init`] did.
#[derive(Debug, Clone)]
pub struct LabGuests {
    pub uris: Vec<(String, String)>,
    pub booted: Vec<BootedGuest>,
    /// Guests left shut off, with why.
    pub off: Vec<(String, String)>,
    pub seconds: f64,
}

/// Starts the hosts and makes (or starts again) what is missing: networks,
/// pools, guests. Needs the lab built by `lab init` in `dir` (its disks).
pub fn init(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<LabGuests> {
    let started = Instant::now();
    let manifest = LabManifest::read(dir).with_context(|| format!("the lab in {} (run lab init first)", dir.display()))?;
    let kit = guest::kit_dir()?;
    let specs = catalog::hosts();
    let slot = slot::current()?;
    let hosts = hosts(dir);
    let mut uris = Vec::new();
    let mut waiting: Vec<(String, PathBuf)> = Vec::new();
    let mut off = Vec::new();
    for (i, (spec, host)) in specs.iter().zip(&hosts).enumerate() {
        // A host that was still running (a server killed, or another
        // process's lab) keeps its guests as they are: only a fresh start
        // boots the lab's guests.
        let fresh = !host.is_running();
        host.start()?;
        let conn = crate::platforms::libvirt::open(&host.uri())?;
        for (n, net) in spec.networks.iter().enumerate() {
            ensure_network(&conn, &host.name, net, slot, i, n)?;
        }
        let pool = ensure_pool(&conn, &host.images())?;
        uris.push((spec.name.to_string(), host.uri()));
        let Some(lab_host) = manifest.hosts.iter().find(|h| h.name == spec.name) else { continue };
        for vm in &spec.vms {
            let Some(lab_vm) = lab_host.vms.iter().find(|v| v.name == vm.name) else { continue };
            let log = host.images().join(format!("{}.console.log", vm.name));
            let dom = match conn.lookup_domain_by_name(vm.name) {
                Ok(d) => d,
                Err(_) => {
                    let mut disks = Vec::new();
                    for (k, d) in lab_vm.disks.iter().enumerate() {
                        let target = format!("vd{}", (b'a' + k as u8) as char);
                        let dst = host.images().join(format!("{}-{}.qcow2", vm.name, d.name));
                        if !dst.exists() {
                            copy_disk(&dir.join(&d.file), &dst)?;
                        }
                        disks.push((target, dst));
                    }
                    let disk_refs: Vec<(&str, &Path)> = disks.iter().map(|(t, p)| (t.as_str(), p.as_path())).collect();
                    let nets: Vec<&str> = vm.nics.iter().map(|(n, _, _)| *n).collect();
                    let role = if vm.os == GuestOs::Windows { format!("{} (NTFS disk offline: shut off)", vm.role) } else { vm.role.to_string() };
                    let xml = guest::domain_xml(&kit, &GuestSpec {
                        name: vm.name,
                        memory_mib: GUEST_MEMORY_MIB,
                        disks: &disk_refs,
                        networks: &nets,
                        console_log: &log,
                        role: Some(&role),
                    });
                    progress(&format!("{}: defining {} ({} disk(s))", host.name, vm.name, disks.len()));
                    conn.define_domain_xml(&xml).with_context(|| format!("defining lab guest {}", vm.name))?
                }
            };
            if vm.os == GuestOs::Windows {
                off.push((vm.name.to_string(), "its NTFS system disk is not bootable by the lab kernel; it stays shut off".to_string()));
                continue;
            }
            let running = matches!(dom.state(), Ok((virt::enumutil::Enum::Known(virt::domain::DomainState::Running), _)));
            if !dom.is_active().unwrap_or(false) && fresh {
                let _ = std::fs::remove_file(&log);
                dom.create().with_context(|| format!("starting lab guest {}", vm.name))?;
            } else if !running {
                off.push((vm.name.to_string(), "left as it is on the host that was already running".to_string()));
                continue;
            }
            waiting.push((vm.name.to_string(), log));
        }
        // The pool lists the disks copied into it only once refreshed.
        let _ = pool.refresh(0);
    }
    let deadline = Instant::now() + BOOT_BUDGET;
    let mut booted = Vec::new();
    for (name, log) in waiting {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let line = guest_console::wait_for_boot(&log, left).with_context(|| format!("lab guest {name}"))?;
        progress(&format!("{name}: {line}"));
        booted.push(BootedGuest { name, boot_line: line });
    }
    Ok(LabGuests { uris, booted, off, seconds: started.elapsed().as_secs_f64() })
}

/// Stops both hosts (their guests and networks with them).
pub fn stop(dir: &Path) -> Result<()> {
    let mut first = None;
    for host in hosts(dir) {
        if let Err(e) = host.stop() {
            first.get_or_insert(e);
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn copy_disk(src: &Path, dst: &Path) -> Result<()> {
    let tmp = dst.with_extension("qcow2.tmp");
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-q", "-U", "-O", "qcow2", "-o", "compat=1.1"])
        .arg(src)
        .arg(&tmp)
        .output()
        .context("running qemu-img (package qemu-utils)")?;
    if !out.status.success() {
        bail!("copying {} into the host's pool: {}", src.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    std::fs::rename(&tmp, dst)?;
    Ok(())
}

/// A lab network on a host: a bridge per network (names unique across the
/// hosts of this machine and the lab slots, see [`slot`]), NAT for those
/// with an uplink, none for isolated.
fn ensure_network(conn: &Connect, host: &str, net: &shared_types::platform::NetworkInfo, slot: u8, host_index: usize, net_index: usize) -> Result<()> {
    if let Ok(n) = conn.lookup_network_by_name(&net.name) {
        if !n.is_active().unwrap_or(false) {
            n.create().with_context(|| format!("starting network {} on {host}", net.name))?;
        }
        return Ok(());
    }
    let bridge = slot::bridge(slot, host, &net.name);
    // Subnets of this machine's lab: 10.8<host>.<net>.0/24 in slot 0, apart from anything else here.
    let ip = slot::gateway(slot, host_index, net_index);
    let forward = if net.isolated { "" } else { "<forward mode='nat'/>" };
    let xml = format!(
        "<network><name>{}</name>{forward}<bridge name='{}' stp='off' delay='0'/><ip address='{ip}' netmask='255.255.255.0'/></network>",
        escape(&net.name),
        escape(&bridge)
    );
    let n = conn.define_network_xml(&xml).with_context(|| format!("defining network {} on {host}", net.name))?;
    n.create().with_context(|| format!("starting network {} on {host}", net.name))?;
    Ok(())
}

fn ensure_pool(conn: &Connect, dir: &Path) -> Result<StoragePool> {
    if let Ok(p) = conn.lookup_storage_pool_by_name("images") {
        if !p.is_active().unwrap_or(false) {
            p.create(0).context("starting the images pool")?;
        }
        return Ok(p);
    }
    let xml = format!("<pool type='dir'><name>images</name><target><path>{}</path></target></pool>", escape(&dir.to_string_lossy()));
    let p = conn.define_storage_pool_xml(&xml, 0).context("defining the images pool")?;
    p.create(0).context("starting the images pool")?;
    Ok(p)
}
