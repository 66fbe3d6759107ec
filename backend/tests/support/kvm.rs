//! A real KVM host for a test: its own libvirt daemon (see
//! `sendense::lab::libvirt_host`) with the networks and shut-off VMs of a
//! host layout directory the test wrote (`sendense::lab::host_import`),
//! their disks the layout's images, used in place. Stopped when dropped.

use std::path::Path;

use sendense::lab::host_import::{self, ImportedVm};
use sendense::lab::libvirt_host::{LibvirtHost, RunningHost};
use sendense::platforms::kvm::definition;
use sendense::platforms::libvirt::LibvirtPlatform;

/// Where the tests' hosts live: side by side, so a new host copies the
/// QEMU capabilities of a running one and IPv4 forwarding is put back by
/// the last one to stop.
const HOSTS_DIR: &str = "/tmp/sendense-test-hosts";

pub struct TestHost {
    pub host: RunningHost,
    pub vms: Vec<ImportedVm>,
    _dir: tempfile::TempDir,
}

impl TestHost {
    /// Starts a host and defines `layout` on it. Blocking.
    pub fn start_blocking(layout: &Path) -> TestHost {
        std::fs::create_dir_all(HOSTS_DIR).unwrap();
        let dir = tempfile::Builder::new().prefix("h").tempdir_in(HOSTS_DIR).unwrap();
        let tag: String = format!("st{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let mut host = LibvirtHost::new(&tag, &dir.path().join("host"));
        host.hostname = definition::read_host(layout).unwrap().name;
        let host = RunningHost::start(host).unwrap();
        let conn = sendense::platforms::libvirt::open(&host.uri()).unwrap();
        let vms = host_import::define(&conn, layout, &tag).unwrap();
        // A storage pool for what is restored or replicated to the host.
        let pool = format!("<pool type='dir'><name>default</name><target><path>{}</path></target></pool>", host.images().display());
        conn.define_storage_pool_xml(&pool, 0).unwrap().create(0).unwrap();
        TestHost { host, vms, _dir: dir }
    }

    /// [`TestHost::start_blocking`] off the async threads.
    pub async fn start(layout: impl AsRef<Path>) -> TestHost {
        let layout = layout.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || TestHost::start_blocking(&layout)).await.unwrap()
    }

    pub fn uri(&self) -> String {
        self.host.uri()
    }

    pub fn platform(&self) -> LibvirtPlatform {
        LibvirtPlatform::new(&self.uri())
    }

    /// Stops the host (as a host that went away would).
    pub fn stop(&self) {
        self.host.stop().unwrap();
    }

    pub fn vm(&self, name: &str) -> &ImportedVm {
        self.vms.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no VM {name} on the test host"))
    }

    /// The names of the host's VMs, sorted.
    pub fn vm_names(&self) -> Vec<String> {
        let conn = sendense::platforms::libvirt::open(&self.uri()).unwrap();
        let mut names: Vec<String> = conn.list_all_domains(0).unwrap().iter().map(|d| d.name().unwrap()).collect();
        names.sort();
        names
    }

    /// The image of each disk of VM `name` (target, file), as its definition says.
    pub fn disk_files(&self, name: &str) -> Vec<(String, std::path::PathBuf)> {
        let p = self.platform();
        let conn = p.connect().unwrap();
        let def = p.definition(&p.domain(&conn, name).unwrap()).unwrap();
        def.disks
            .iter()
            .map(|d| {
                let source = d.source.clone().unwrap_or_default();
                let file = match source.split_once('/') {
                    // `pool/volume`: the volume's path.
                    Some((pool, vol)) if !pool.is_empty() => conn.lookup_storage_pool_by_name(pool).unwrap().lookup_storage_vol_by_name(vol).unwrap().path().unwrap(),
                    _ => source,
                };
                (d.target.clone(), file.into())
            })
            .collect()
    }

    /// Whether VM `name` runs (a QEMU process).
    pub fn is_running(&self, name: &str) -> bool {
        let conn = sendense::platforms::libvirt::open(&self.uri()).unwrap();
        conn.lookup_domain_by_name(name).unwrap().is_active().unwrap()
    }

    /// Removes a VM from the host (its disks stay), as `virsh undefine` would.
    pub fn undefine(&self, name: &str) {
        let conn = sendense::platforms::libvirt::open(&self.uri()).unwrap();
        let dom = conn.lookup_domain_by_name(name).unwrap();
        if dom.is_active().unwrap_or(false) {
            dom.destroy().unwrap();
        }
        dom.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM).unwrap();
    }
}

/// The demo lab built in `dir/lab`; web-01's source disk (its qcow2 on
/// kvm-prod-01).
pub async fn lab_in(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let lab_dir = dir.join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || sendense::lab::init(&lab_task, &sendense::lab::InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let source_disk = std::fs::read_dir(lab_dir.join("hosts/kvm-prod-01/vms/web-01"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "qcow2"))
        .unwrap();
    (lab_dir, source_disk)
}
