//! KVM hosts reached through libvirt, the API every KVM manager uses. A
//! platform is a connection URI (`qemu:///system`,
//! `qemu+unix:///system?socket=…`, `qemu+ssh://…`); nothing here reads the
//! host's files: definitions, power and disks all go through libvirt, and
//! disk data through the NBD exports of its backup jobs ([`backup`]).
//!
//! * [`domain_xml`]: reading domain, network and checkpoint XML.
//! * [`ffi`]: the checkpoint and backup calls the `virt` crate lacks.
//! * [`backup`]: VM-level point-in-time reads with checkpoint chains.
//! * [`create`]: new VMs from disk images (restores), volumes uploaded through libvirt.

pub mod backup;
pub mod create;
pub mod disk_write;
pub mod domain_xml;
pub mod events;
pub mod ffi;
pub mod pull;
pub mod replace;

use std::time::{Duration, Instant};

use shared_types::platform::{
    DiskFormat, DiskInfo, HostInfo, HostInventory, NetworkInfo, PlatformKind, PowerAction, PowerState, StoragePoolInfo, VmInfo,
};
use virt::connect::Connect;
use virt::domain::Domain;

use self::backup::{lv, Chain};
use self::domain_xml::DomainDef;
use super::error::{PlatformError, Result};
use super::{DiskRead, DiskSpace, DiskWrite, NewVm, Platform};

/// The transports a libvirt URI may name (`qemu`, `qemu+unix`, ...).
const SCHEMES: [&str; 5] = ["qemu", "qemu+unix", "qemu+ssh", "qemu+tcp", "qemu+tls"];

/// Whether a platform address is a QEMU libvirt URI.
pub fn is_uri(address: &str) -> bool {
    address.trim().starts_with("qemu") && address.contains("://")
}

/// Why `address` cannot be a KVM platform's address, and what to give.
pub fn not_a_uri(address: &str) -> String {
    format!(
        "'{}' is not a libvirt URI. A KVM host is added by the URI libvirt clients use: qemu:///system (this machine), \
         qemu+ssh://user@host/system, or qemu+unix:///system?socket=/path/to/libvirt-sock.",
        address.trim()
    )
}

/// Whether `uri` reaches a libvirt daemon on this machine (no host name,
/// or `localhost`): the paths its storage pools name are then files here.
pub fn is_local(uri: &str) -> bool {
    uri.trim().contains("://") && remote_host(uri).is_none()
}

/// The host name of a URI that reaches another machine (`None`: this one).
pub fn remote_host(uri: &str) -> Option<String> {
    let (_, rest) = uri.trim().split_once("://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    (!matches!(host, "" | "localhost" | "127.0.0.1" | "::1")).then(|| host.to_string())
}

/// Checks a libvirt URI: a QEMU transport, the system or session driver.
/// `Ok(socket)`: the unix socket it names, if any (checked against the
/// platform roots like a host directory).
pub fn check_uri(address: &str) -> std::result::Result<Option<std::path::PathBuf>, String> {
    let address = address.trim();
    let (scheme, rest) = address.split_once("://").ok_or_else(|| format!("'{address}' is not a libvirt URI"))?;
    if !SCHEMES.contains(&scheme) {
        return Err(format!("'{scheme}' is not a QEMU libvirt transport; use one of {}", SCHEMES.join(", ")));
    }
    let (authority_path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = authority_path.find('/').map(|i| &authority_path[i..]).unwrap_or("");
    if path != "/system" && path != "/session" {
        return Err(format!("'{address}' names no QEMU driver: end the URI with /system (or /session)"));
    }
    let socket = query.split('&').find_map(|kv| kv.strip_prefix("socket=")).map(std::path::PathBuf::from);
    if let Some(s) = &socket {
        if !s.is_absolute() {
            return Err(format!("the socket '{}' of '{address}' must be an absolute path", s.display()));
        }
    }
    Ok(socket)
}

/// Opens a connection to the libvirt host at `uri`: the one way Sendense
/// connects. libvirt's default error handler (which prints every error,
/// expected ones too, on stderr) is replaced once, and the event loop runs
/// so connections can deliver lifecycle events.
pub fn open(uri: &str) -> Result<Connect> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(virt::error::clear_error_callback);
    events::ensure_event_loop();
    let conn = Connect::open(Some(uri)).map_err(|e| PlatformError::Invalid(format!("cannot reach the libvirt host {uri}: {}", e.message())))?;
    // A host that stops answering fails its calls after about 20 s (keepalive
    // every 5 s, 3 missed) instead of holding a job forever.
    if let Err(e) = conn.set_keep_alive(5, 3) {
        tracing::debug!(%uri, error = %e.message(), "libvirt keepalive not enabled");
    }
    Ok(conn)
}

/// One libvirt host.
pub struct LibvirtPlatform {
    uri: String,
    /// How long a graceful shutdown (ACPI) may take before the VM is stopped hard.
    pub shutdown_timeout: Duration,
    /// Where libvirt opens a backup's NBD export: `None`, a unix socket (a
    /// host on this machine); `Some(host)`, a TCP port on that address of
    /// the host (the URI's host name for a host reached remotely).
    pub export_host: Option<String>,
}

impl LibvirtPlatform {
    pub fn new(uri: &str) -> LibvirtPlatform {
        LibvirtPlatform { uri: uri.into(), shutdown_timeout: Duration::from_secs(60), export_host: remote_host(uri) }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// A connection for one call (a unix socket connection costs about a
    /// millisecond, and a daemon restarted since is simply reconnected).
    pub fn connect(&self) -> Result<Connect> {
        open(&self.uri)
    }

    /// The domain `vm` names: its UUID, else its name.
    pub fn domain(&self, conn: &Connect, vm: &str) -> Result<Domain> {
        conn.lookup_domain_by_uuid_string(vm)
            .or_else(|_| conn.lookup_domain_by_name(vm))
            .map_err(|_| PlatformError::VmNotFound(vm.to_string()))
    }

    /// The domain's definition as libvirt has it now (live when it runs).
    pub fn definition(&self, dom: &Domain) -> Result<DomainDef> {
        let xml = dom.xml_desc(0).map_err(|e| gone_or(e, &dom.name().unwrap_or_default(), "reading its definition"))?;
        domain_xml::parse_domain(&xml)
    }

    fn vm_info(&self, dom: &Domain) -> Result<VmInfo> {
        let def = self.definition(dom)?;
        let power = power_of(dom).map_err(|e| gone_or(e, &def.name, "reading the power state"))?;
        let mut disks = Vec::new();
        for d in &def.disks {
            let (capacity, allocation) = match dom.block_info(&d.target, 0) {
                Ok(b) => (b.capacity, b.allocation),
                Err(e) => return Err(gone_or(e, &def.name, &format!("reading the size of disk {}", d.target))),
            };
            disks.push(DiskInfo {
                name: d.target.clone(),
                capacity_bytes: capacity,
                allocated_bytes: allocation,
                format: d.format,
                cbt: d.format == DiskFormat::Qcow2,
            });
        }
        Ok(VmInfo {
            id: def.uuid.clone(),
            name: def.name.clone(),
            vcpus: def.vcpus,
            memory_mib: def.memory_mib,
            power,
            firmware: def.firmware,
            os: def.os,
            role: def.role.clone(),
            disks,
            nics: def.nics.clone(),
        })
    }

    /// Opens every disk of `vm` for a backup's read at one point in time.
    pub fn open_vm(&self, vm: &str, since: Option<&str>, chain: &Chain) -> Result<Vec<DiskRead>> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        let def = self.definition(&dom)?;
        backup::open(dom, &def, since, chain, self.export_host.as_deref())
    }

    /// Waits until the domain's power is `want` or `timeout` passes.
    fn wait_power(&self, dom: &Domain, want: PowerState, timeout: Duration) -> bool {
        let started = Instant::now();
        loop {
            if power_of(dom).ok() == Some(want) {
                return true;
            }
            if started.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The last `n` non-empty lines of a console, joined for a message.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return "nothing printed".into();
    }
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The power state as libvirt reports it: a paused guest is suspended.
/// A libvirt error about VM `vm`: [`PlatformError::VmNotFound`] when the
/// domain is gone (undefined since it was listed), else what failed.
fn gone_or(e: virt::error::Error, vm: &str, what: &str) -> PlatformError {
    match e.code() {
        virt::enumutil::Enum::Known(virt::error::ErrorNumber::NoDomain) => PlatformError::VmNotFound(vm.to_string()),
        _ => lv(vm, what, e),
    }
}

fn power_of(dom: &Domain) -> std::result::Result<PowerState, virt::error::Error> {
    use virt::domain::DomainState;
    use virt::enumutil::Enum;
    let (state, _) = dom.state()?;
    Ok(match state {
        // Shutting down: QEMU still runs the guest until it is off.
        Enum::Known(DomainState::Running | DomainState::Blocked | DomainState::Shutdown) => PowerState::Running,
        Enum::Known(DomainState::Paused | DomainState::PMSuspended) => PowerState::Suspended,
        _ => PowerState::Stopped,
    })
}

impl Platform for LibvirtPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Kvm
    }

    fn inventory_with_progress(&self, progress: &dyn Fn(usize, usize)) -> Result<HostInventory> {
        let conn = self.connect()?;
        let fail = |what: &str, e: virt::error::Error| PlatformError::Invalid(format!("libvirt host {}: {what}: {}", self.uri, e.message()));
        let node = conn.node_info().map_err(|e| fail("reading host facts", e))?;
        let host = HostInfo {
            name: conn.hostname().map_err(|e| fail("reading the host name", e))?,
            kind: PlatformKind::Kvm,
            address: self.uri.clone(),
            cpu_cores: node.cpus,
            memory_mib: node.memory >> 10,
        };
        let mut networks: Vec<NetworkInfo> = Vec::new();
        for net in conn.list_all_networks(0).map_err(|e| fail("listing networks", e))? {
            let xml = net.xml_desc(0).map_err(|e| fail("reading a network", e))?;
            let mut n = domain_xml::parse_network(&xml)?;
            n.inactive = !net.is_active().unwrap_or(false);
            networks.push(n);
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let domains = conn.list_all_domains(0).map_err(|e| fail("listing domains", e))?;
        let mut vms = Vec::with_capacity(domains.len());
        progress(0, domains.len());
        for (i, dom) in domains.iter().enumerate() {
            match self.vm_info(dom) {
                Ok(v) => vms.push(v),
                // Undefined between the listing and now.
                Err(PlatformError::VmNotFound(_)) => {}
                Err(e) => return Err(e),
            }
            progress(i + 1, domains.len());
        }
        vms.sort_by(|a, b| a.name.cmp(&b.name));
        let mut storage_pools = Vec::new();
        for pool in conn.list_all_storage_pools(0).map_err(|e| fail("listing storage pools", e))? {
            let info = pool.info().map_err(|e| fail("reading a storage pool", e))?;
            let xml = pool.xml_desc(0).unwrap_or_default();
            let kind = roxmltree::Document::parse(&xml).ok().and_then(|d| d.root_element().attribute("type").map(str::to_string)).unwrap_or_default();
            storage_pools.push(StoragePoolInfo {
                name: pool.name().map_err(|e| fail("reading a storage pool's name", e))?,
                kind,
                active: info.state == virt::sys::VIR_STORAGE_POOL_RUNNING,
                capacity_bytes: info.capacity,
                available_bytes: info.available,
            });
        }
        storage_pools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(HostInventory { host, networks, vms, refused: Vec::new(), storage_pools })
    }

    fn vm(&self, vm: &str) -> Result<VmInfo> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        self.vm_info(&dom)
    }

    fn open_disk(&self, vm: &str, disk: &str, _since: Option<&str>, _owner: &str) -> Result<DiskRead> {
        Err(PlatformError::Invalid(format!(
            "libvirt VMs are read whole (all disks at one point in time), not disk '{disk}' of '{vm}' alone: use open_vm_disks"
        )))
    }

    fn open_vm_disks(&self, vm: &str, since: Option<&str>, owner: &str) -> Result<Vec<DiskRead>> {
        self.open_vm(vm, since, &Chain::backups_of(owner))
    }

    fn reads_whole_vms(&self) -> bool {
        true
    }

    fn open_vm_disks_for(&self, vm: &str, since: Option<&str>, consumer: &str) -> Result<Vec<DiskRead>> {
        self.open_vm(vm, since, &Chain::consumer(consumer))
    }

    fn image_dir(&self) -> Result<Option<std::path::PathBuf>> {
        self.image_dir_in(None)
    }

    fn image_dir_in(&self, pool: Option<&str>) -> Result<Option<std::path::PathBuf>> {
        // The pool's directory is this machine's only when the host is
        // (a local transport, no host name), and only a directory pool
        // holds files (not an LVM, disk or iSCSI pool's /dev path).
        let (scheme, rest) = self.uri.split_once("://").unwrap_or(("", ""));
        if (scheme != "qemu" && scheme != "qemu+unix") || !rest.starts_with('/') {
            return Ok(None);
        }
        let conn = self.connect()?;
        let pool = create::pool_named(&conn, pool)?;
        let xml = pool.xml_desc(0).unwrap_or_default();
        let kind = roxmltree::Document::parse(&xml).ok().and_then(|d| d.root_element().attribute("type").map(str::to_string)).unwrap_or_default();
        if !matches!(kind.as_str(), "dir" | "fs" | "netfs") {
            return Ok(None);
        }
        Ok(create::pool_path(&pool).map(std::path::PathBuf::from).filter(|p| p.is_dir()))
    }

    fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let conn = self.connect()?;
        let mut networks = Vec::new();
        for net in conn.list_all_networks(0).map_err(|e| PlatformError::Invalid(format!("libvirt host {}: listing networks: {}", self.uri, e.message())))? {
            let xml = net.xml_desc(0).map_err(|e| PlatformError::Invalid(format!("libvirt host {}: reading a network: {}", self.uri, e.message())))?;
            // A network that is not started cannot take a NIC.
            if net.is_active().unwrap_or(false) {
                networks.push(domain_xml::parse_network(&xml)?);
            }
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    fn add_isolated_network(&self, name: &str) -> Result<bool> {
        let conn = self.connect()?;
        if let Ok(net) = conn.lookup_network_by_name(name) {
            if !net.is_active().unwrap_or(false) {
                net.create().map_err(|e| lv(name, "starting the network", e))?;
            }
            return Ok(false);
        }
        // No <forward>: guests on it reach each other and nothing else.
        let xml = format!("<network><name>{}</name></network>", domain_xml::escape(name));
        let net = conn.define_network_xml(&xml).map_err(|e| lv(name, "defining the isolated network", e))?;
        net.create().map_err(|e| lv(name, "starting the isolated network", e))?;
        let _ = net.set_autostart(true);
        Ok(true)
    }

    fn set_nics(&self, vm: &str, nics: &[shared_types::platform::NicInfo]) -> Result<()> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        if power_of(&dom).map_err(|e| lv(vm, "reading the power state", e))? != PowerState::Stopped {
            return Err(PlatformError::VmNotStopped { vm: vm.to_string(), power: "running".into() });
        }
        create::set_interfaces(&conn, &dom, vm, nics)
    }

    fn console_tail(&self, vm: &str, lines: usize) -> Result<Option<Vec<String>>> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        let Some(log) = self.definition(&dom)?.console_log else { return Ok(None) };
        // The log is on the host: readable here when the host is this machine.
        let Ok(mut file) = std::fs::File::open(&log) else { return Ok(None) };
        use std::io::{Read, Seek, SeekFrom};
        const TAIL: u64 = 64 * 1024;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).map_err(|e| PlatformError::io(format!("reading {log}"), e))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(|e| PlatformError::io(format!("reading {log}"), e))?;
        let text = String::from_utf8_lossy(&buf);
        let all: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).filter(|l| !l.contains("CMD-DONE")).collect();
        Ok(Some(all[all.len().saturating_sub(lines)..].to_vec()))
    }

    fn wait_until_up(&self, vm: &str, timeout: Duration) -> Result<Option<String>> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        // The log is written anew at each start (append off).
        let Some(log) = self.definition(&dom)?.console_log else { return Ok(None) };
        if std::fs::metadata(&log).is_err() && !dom.is_active().unwrap_or(false) {
            return Ok(None);
        }
        let started = Instant::now();
        loop {
            let text = std::fs::read(&log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            if let Some(line) = super::boot_line(&text) {
                return Ok(Some(line.to_string()));
            }
            if power_of(&dom).ok() == Some(PowerState::Stopped) {
                return Err(PlatformError::Invalid(format!("VM '{vm}' stopped before it was up (console: {})", last_lines(&text, 3))));
            }
            if started.elapsed() >= timeout {
                // A guest without a serial console says nothing: that is
                // not a failure, only that this cannot tell.
                tracing::warn!(%vm, seconds = timeout.as_secs(), console = %last_lines(&text, 3), "no boot line on the console");
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn clean_up_after_restart(&self) -> Result<usize> {
        backup::end_dangling(&self.connect()?)
    }

    fn stop_tracking(&self, vm: &str, consumer: &str) -> Result<()> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        backup::forget_chain(&dom, &Chain::consumer(consumer))
    }

    fn vm_definition(&self, vm: &str) -> Result<Option<String>> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).map(Some).map_err(|e| lv(vm, "reading the definition", e))
    }

    fn create_vm(&self, spec: &NewVm) -> Result<VmInfo> {
        let conn = self.connect()?;
        let uuid = create::create(&conn, spec)?;
        self.vm(&uuid)
    }

    fn replace_vm(&self, spec: &NewVm, go_on: &dyn Fn() -> bool) -> Result<VmInfo> {
        let conn = self.connect()?;
        let uuid = match conn.lookup_domain_by_name(&spec.name) {
            Ok(_) => replace::replace(&conn, spec, go_on)?,
            Err(_) => create::create(&conn, spec)?,
        };
        self.vm(&uuid)
    }

    fn recover_replacements(&self) -> Result<Vec<String>> {
        replace::recover(&self.connect()?)
    }

    fn open_disk_write(&self, vm: &str, disk: &str, work_dir: &std::path::Path) -> Result<DiskWrite> {
        disk_write::open(self, vm, disk, work_dir)
    }

    fn disk_space(&self) -> Result<DiskSpace> {
        self.disk_space_in(None)
    }

    fn disk_space_in(&self, pool: Option<&str>) -> Result<DiskSpace> {
        let conn = self.connect()?;
        let pool = create::pool_named(&conn, pool)?;
        let _ = pool.refresh(0);
        let info = pool.info().map_err(|e| PlatformError::Invalid(format!("reading the storage pool of {}: {}", self.uri, e.message())))?;
        Ok(DiskSpace { free_bytes: info.available, local_dir: None })
    }

    fn pull_backing(&self, vm: &str, bandwidth_mib_s: u64, progress: &dyn Fn(u64, u64), stopped: &dyn Fn() -> bool) -> Result<()> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        pull::pull(&dom, vm, bandwidth_mib_s, progress, stopped)
    }

    fn set_power(&self, vm: &str, power: PowerState) -> Result<VmInfo> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        let now = power_of(&dom).map_err(|e| lv(vm, "reading the power state", e))?;
        match (now, power) {
            (a, b) if a == b => {}
            (PowerState::Stopped, PowerState::Running) => dom.create().map(|_| ()).map_err(|e| lv(vm, "starting", e))?,
            (PowerState::Suspended, PowerState::Running) if backup::paused_for_backup(&dom) => {
                // Started paused by a backup read that is ending: a resume
                // would race its stop. Let it stop the VM, then start it.
                if self.wait_power(&dom, PowerState::Stopped, Duration::from_secs(30)) {
                    dom.create().map(|_| ()).map_err(|e| lv(vm, "starting", e))?
                } else {
                    dom.resume().map(|_| ()).map_err(|e| lv(vm, "resuming", e))?
                }
            }
            (PowerState::Suspended, PowerState::Running) => dom.resume().map(|_| ()).map_err(|e| lv(vm, "resuming", e))?,
            (PowerState::Running, PowerState::Suspended) => dom.suspend().map(|_| ()).map_err(|e| lv(vm, "pausing", e))?,
            // ACPI first; a guest that does not answer in time is stopped hard.
            (_, PowerState::Stopped) => return self.power(vm, PowerAction::Shutdown, self.shutdown_timeout),
            (PowerState::Stopped, PowerState::Suspended) => {
                dom.create_with_flags(virt::sys::VIR_DOMAIN_START_PAUSED).map(|_| ()).map_err(|e| lv(vm, "starting paused", e))?
            }
            (_, _) => {}
        }
        self.vm_info(&dom)
    }

    fn power(&self, vm: &str, action: PowerAction, timeout: Duration) -> Result<VmInfo> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        let now = power_of(&dom).map_err(|e| lv(vm, "reading the power state", e))?;
        match action {
            PowerAction::Start => return self.set_power(vm, PowerState::Running),
            PowerAction::Stop if now != PowerState::Stopped => dom.destroy().map_err(|e| lv(vm, "stopping", e))?,
            PowerAction::Shutdown if now != PowerState::Stopped => {
                let graceful = now == PowerState::Running && dom.shutdown().is_ok() && self.wait_power(&dom, PowerState::Stopped, timeout);
                if !graceful && power_of(&dom).ok() != Some(PowerState::Stopped) {
                    // A guest that powers off between the look and the stop is stopped all the same.
                    if let Err(e) = dom.destroy() {
                        if power_of(&dom).ok() != Some(PowerState::Stopped) {
                            return Err(lv(vm, "stopping after the shutdown timeout", e));
                        }
                    }
                }
            }
            PowerAction::Reboot if now == PowerState::Running => {
                // ACPI first; a guest that does not answer is reset.
                if dom.reboot(0).is_err() {
                    dom.reset().map_err(|e| lv(vm, "resetting", e))?;
                }
            }
            PowerAction::Reboot => {
                return Err(PlatformError::Invalid(format!("VM '{vm}' is not running: start it instead of rebooting")));
            }
            _ => {}
        }
        self.vm_info(&dom)
    }

    fn delete_vm(&self, vm: &str) -> Result<()> {
        let conn = self.connect()?;
        let dom = self.domain(&conn, vm)?;
        let def = self.definition(&dom)?;
        create::delete(&conn, &dom, &def)
    }
}

#[cfg(test)]
mod tests {
    use super::is_local;

    #[test]
    fn a_uri_without_a_host_name_is_this_machine() {
        assert!(is_local("qemu:///system"));
        assert!(is_local("qemu+unix:///system?socket=/run/x.sock"));
        assert!(is_local("qemu+tcp://localhost:16509/system"));
        assert!(!is_local("qemu+ssh://root@kvm-02.example.com/system"));
        assert!(!is_local("qemu+tls://10.0.0.5/system"));
        assert!(!is_local("not a uri"));
        assert_eq!(super::remote_host("qemu+ssh://root@kvm-02.example.com:2222/system").as_deref(), Some("kvm-02.example.com"));
        assert_eq!(super::remote_host("qemu+tls://[fd00::5]/system").as_deref(), Some("fd00::5"));
        assert_eq!(super::remote_host("qemu+unix:///system?socket=/run/x.sock"), None);
    }
}
