//! One libvirt "host" on this machine: a system-mode `libvirtd` in its own
//! mount and UTS namespace, with private `/etc/libvirt`, `/var/lib/libvirt`,
//! `/run/libvirt`, `/var/cache/libvirt` and `/var/log/libvirt` (bind mounts
//! of directories under the host's base directory) and its sockets outside
//! the namespace, so any client on the machine reaches it by its URI
//! `qemu+unix:///system?socket=BASE/sock/libvirt-sock`. Two such hosts run
//! side by side as two independent KVM hosts (the recipe of
//! `../shared/libvirt/LIBVIRT.md`). Needs root and the packages of
//! `need_libvirt` in `scripts/lib.sh`.
//!
//! ```text
//! BASE/{etc,lib,run,cache,log}   bind-mounted over the daemon's system directories
//! BASE/sock/libvirt-sock         the socket clients connect to
//! BASE/images/                   the host's storage pool directory
//! BASE/libvirtd.pid, .log, .out  the daemon's pid file and logs
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The five system directories each host gets its own copy of.
const MOUNTS: [(&str, &str); 5] = [
    ("etc", "/etc/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("run", "/run/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
];

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

const QEMU_CONF: &str = r#"user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
"#;

#[derive(Debug, Clone)]
pub struct LibvirtHost {
    /// Short name.
    pub name: String,
    pub base: PathBuf,
    /// The namespace's hostname (what libvirt reports as the host's name):
    /// `lab-<name>` unless set otherwise.
    pub hostname: String,
}

impl LibvirtHost {
    pub fn new(name: &str, base: &Path) -> LibvirtHost {
        LibvirtHost { name: name.into(), base: base.into(), hostname: format!("lab-{name}") }
    }

    pub fn uri(&self) -> String {
        format!("qemu+unix:///system?socket={}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.base.join("sock/libvirt-sock")
    }

    /// The storage pool directory of the host.
    pub fn images(&self) -> PathBuf {
        self.base.join("images")
    }

    /// Where the machine's IPv4 forwarding setting is kept while hosts run.
    fn forward_file(&self) -> PathBuf {
        self.base.parent().unwrap_or(&self.base).join("ip_forward.orig")
    }

    fn pid_file(&self) -> PathBuf {
        self.base.join("libvirtd.pid")
    }

    /// The daemon's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        // A daemon that exited but was not reaped yet (a zombie) is not running.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("");
        (comm.trim() == "libvirtd" && state != "Z" && state != "X").then_some(pid)
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    fn prepare(&self) -> Result<()> {
        let b = &self.base;
        for d in ["etc", "lib", "run", "cache", "log", "sock", "images"] {
            std::fs::create_dir_all(b.join(d)).with_context(|| format!("creating {}", b.join(d).display()))?;
        }
        for (_, system) in MOUNTS {
            std::fs::create_dir_all(system).with_context(|| format!("creating mount point {system}"))?;
        }
        for d in ["qemu/networks", "storage", "nwfilter", "secrets"] {
            std::fs::create_dir_all(b.join("etc").join(d))?;
        }
        std::fs::write(b.join("etc/qemu.conf"), QEMU_CONF)?;
        // The QEMU capabilities cache: probing every emulator costs ~8 s of
        // CPU per new host; libvirt re-validates a copied cache.
        let cache = b.join("cache/qemu/capabilities");
        if std::fs::read_dir(&cache).map(|mut d| d.next().is_none()).unwrap_or(true) {
            let seeds = std::fs::read_dir(b.parent().unwrap_or(b))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("cache/qemu/capabilities"))
                .chain(capabilities_seed())
                .chain([PathBuf::from("/var/cache/libvirt/qemu/capabilities")]);
            for seed in seeds {
                if seed != cache && std::fs::read_dir(&seed).map(|mut d| d.next().is_some()).unwrap_or(false) {
                    std::fs::create_dir_all(&cache)?;
                    for f in std::fs::read_dir(&seed)?.flatten() {
                        let _ = std::fs::copy(f.path(), cache.join(f.file_name()));
                    }
                    break;
                }
            }
        }
        // No SMBIOS here: without a fixed uuid the host's changes per start.
        let uuid_file = b.join("host-uuid");
        if !uuid_file.exists() {
            std::fs::write(&uuid_file, uuid::Uuid::new_v4().to_string())?;
        }
        let uuid = std::fs::read_to_string(&uuid_file)?;
        std::fs::write(
            b.join("libvirtd.conf"),
            format!(
                "host_uuid = \"{}\"\nunix_sock_dir = \"{}\"\nunix_sock_group = \"root\"\nunix_sock_ro_perms = \"0777\"\n\
                 unix_sock_rw_perms = \"0770\"\nauth_unix_ro = \"none\"\nauth_unix_rw = \"none\"\n\
                 log_outputs = \"3:file:{}\"\n",
                uuid.trim(),
                b.join("sock").display(),
                b.join("libvirtd.log").display()
            ),
        )?;
        Ok(())
    }

    /// Starts the daemon (nothing to do when it runs) and waits until its
    /// socket answers.
    pub fn start(&self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        if !Path::new("/usr/sbin/libvirtd").exists() {
            bail!("libvirtd is not installed: run scripts/run.sh or scripts/test.sh once (they install libvirt and QEMU)");
        }
        self.prepare()?;
        // NAT networks switch IPv4 forwarding on: remember the machine's
        // setting once for all hosts beside this one, to put it back.
        let saved = self.forward_file();
        if !saved.exists() {
            if let Ok(v) = std::fs::read_to_string(IP_FORWARD) {
                let _ = std::fs::write(&saved, v);
            }
        }
        for f in ["sock/libvirt-sock", "sock/libvirt-sock-ro", "sock/libvirt-admin-sock", "libvirtd.pid"] {
            let _ = std::fs::remove_file(self.base.join(f));
        }
        let script = r#"d=$1; hostname "$2"; shift 2
for m in "$@"; do mount --bind "$d/${m%%:*}" "${m#*:}" || exit 97; done
exec /usr/sbin/libvirtd -f "$d/libvirtd.conf" -p "$d/libvirtd.pid""#;
        let out = std::fs::OpenOptions::new().create(true).append(true).open(self.base.join("libvirtd.out"))?;
        let mut cmd = Command::new("setsid");
        cmd.args(["unshare", "-m", "-u", "--propagation", "private", "/bin/sh", "-c", script, "sh"])
            .arg(&self.base)
            .arg(&self.hostname)
            .args(MOUNTS.iter().map(|(own, system)| format!("{own}:{system}")))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let mut child = cmd.spawn().context("starting libvirtd (setsid, unshare)")?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("libvirtd of host '{}' exited at start ({status}); see {}", self.name, self.base.join("libvirtd.out").display());
            }
            if self.is_running() && crate::platforms::libvirt::open(&self.uri()).is_ok() {
                // The child is the daemon itself (unshare and sh exec it): it is
                // reaped by whoever stops it, or by init when we exit.
                std::mem::forget(child);
                self.keep_capabilities();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        bail!("libvirtd of host '{}' did not answer within 30 s; see {}", self.name, self.base.join("libvirtd.log").display())
    }

    /// Keeps this host's QEMU capabilities as the seed of hosts made
    /// later (once: the first host to have them).
    fn keep_capabilities(&self) {
        let Some(seed) = capabilities_seed() else { return };
        let cache = self.base.join("cache/qemu/capabilities");
        if std::fs::read_dir(&seed).map(|mut d| d.next().is_some()).unwrap_or(false) {
            return;
        }
        let files: Vec<_> = std::fs::read_dir(&cache).into_iter().flatten().flatten().collect();
        if files.is_empty() || std::fs::create_dir_all(&seed).is_err() {
            return;
        }
        for f in files {
            let _ = std::fs::copy(f.path(), seed.join(f.file_name()));
        }
    }

    /// Stops the host like a power-off: its guests are destroyed, its
    /// networks stopped (their bridges and dnsmasq go), then the daemon.
    pub fn stop(&self) -> Result<()> {
        let Some(pid) = self.pid() else { return Ok(()) };
        self.keep_capabilities();
        if let Ok(conn) = crate::platforms::libvirt::open(&self.uri()) {
            for dom in conn.list_all_domains(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE).unwrap_or_default() {
                let _ = dom.destroy();
            }
            for net in conn.list_all_networks(virt::sys::VIR_CONNECT_LIST_NETWORKS_ACTIVE).unwrap_or_default() {
                let _ = net.destroy();
            }
        }
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).context("bad pid")?,
            rustix::process::Signal::TERM,
        )
        .ok();
        let started = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && started.elapsed() < Duration::from_secs(15) {
            reap(pid);
            std::thread::sleep(Duration::from_millis(50));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(200));
            reap(pid);
        }
        // The last host of this machine's lab to stop puts IPv4 forwarding back.
        let saved = self.forward_file();
        let others = std::fs::read_dir(self.base.parent().unwrap_or(&self.base))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path() != self.base && e.path().is_dir())
            .any(|e| LibvirtHost::new("other", &e.path()).is_running());
        if !others {
            if let Ok(v) = std::fs::read_to_string(&saved) {
                let _ = std::fs::write(IP_FORWARD, v);
                let _ = std::fs::remove_file(&saved);
            }
        }
        // A powered-off host forgets its runtime state (else autostart
        // markers survive and autostart never fires again).
        if let Ok(entries) = std::fs::read_dir(self.base.join("run")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        Ok(())
    }
}

/// Where the QEMU capabilities of the first host are kept for the next
/// ones (probing every emulator costs ~8 s of CPU per new host).
fn capabilities_seed() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".cache/sendense/qemu-capabilities"))
}

/// A host that is stopped when this is dropped (a test's host, a command's
/// scratch host): no daemon, guest or bridge outlives its owner.
pub struct RunningHost(pub LibvirtHost);

impl RunningHost {
    /// Starts `host` and hands it back guarded.
    pub fn start(host: LibvirtHost) -> Result<RunningHost> {
        let running = RunningHost(host);
        running.0.start()?;
        Ok(running)
    }
}

impl std::ops::Deref for RunningHost {
    type Target = LibvirtHost;
    fn deref(&self) -> &LibvirtHost {
        &self.0
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop() {
            eprintln!("stopping libvirt host '{}': {e:#}", self.0.name);
        }
    }
}

/// Collects the exit status of `pid` if it is our child (it is when this
/// process started the daemon).
fn reap(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
    }
}
