//! Instant recovery: a VM booted on a host straight from a restore point,
//! without copying its disks first.
//!
//! * The restore point is *pinned* in its repository ([`lease::pin`]):
//!   prune and forget refuse it, GC keeps its chunks.
//! * Its disks are served read-only by the engine's NBD server
//!   ([`NbdServer`]) on a unix socket, read through the fixed index with a
//!   chunk cache; zero chunks go out as holes.
//! * Each disk of the new VM is a qcow2 overlay in the host's directory
//!   pool (`<pool>/<vm>/<disk>.qcow2`) whose backing image is that export:
//!   the guest's writes stay in the overlay, the repository never changes.
//! * **Finalize** pulls the backing data into the overlays while the guest
//!   runs ([`Platform::pull_backing`]); then the VM stands alone and the
//!   export and pin go. **Discard** destroys the VM and its overlays.
//!
//! Everything here blocks; the caller keeps the [`Export`] alive as long as
//! the VM reads from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared_types::platform::{DiskFormat, Firmware, GuestOs, NicInfo, PowerState, VmInfo};

use crate::engine::datastore::Datastore;
use crate::engine::lease;
use crate::engine::snapshot_reader::SnapshotReader;
use crate::jobs::JobError;
use crate::platforms::nbd::server::{ExportData, NbdServer};
use crate::platforms::{tools, NewDisk, NewVm, Platform, PlatformError};

/// Decoded chunks cached per disk (64 KiB each: 32 MiB).
const CACHE_CHUNKS: usize = 512;
/// How long the guest may take to print its boot line.
pub const BOOT_WAIT: Duration = Duration::from_secs(120);
/// The file in an instant VM's folder that says Sendense made it.
pub const MARKER: &str = "sendense-instant-vm";

impl ExportData for SnapshotReader {
    fn size(&self) -> u64 {
        SnapshotReader::size(self)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let n = SnapshotReader::read_at(self, offset, buf).map_err(std::io::Error::other)?;
        if n < buf.len() {
            buf[n..].fill(0);
        }
        Ok(())
    }
    fn extent(&self, offset: u64, max: u64) -> (bool, u64) {
        SnapshotReader::extent(self, offset, max)
    }
}

/// A restore point served: its NBD server and its pin. Dropping it stops
/// the server; [`Export::close`] also releases the pin.
pub struct Export {
    pub server: NbdServer,
    pub pin: String,
    repo: Arc<dyn crate::engine::repository::Repository>,
}

impl Export {
    /// Pins `name/id` (the pin named `pin_id`) and serves each of its
    /// disks under the disk's name on `socket`.
    pub fn open(ds: &Datastore, name: &str, id: &str, socket: &Path, pin_id: &str) -> Result<Export, JobError> {
        let m = ds.load_manifest(name, id)?;
        let pin = lease::pin(ds, name, id, pin_id)?;
        let serve = || -> Result<NbdServer, JobError> {
            let mut exports: Vec<(String, Arc<dyn ExportData>)> = Vec::new();
            for d in &m.disks {
                exports.push((d.name.clone(), Arc::new(SnapshotReader::open(ds, name, id, Some(&d.name), CACHE_CHUNKS)?)));
            }
            if let Some(dir) = socket.parent() {
                std::fs::create_dir_all(dir).map_err(|e| JobError::Io { what: format!("creating {}", dir.display()), source: e })?;
            }
            NbdServer::start(socket, exports).map_err(|e| JobError::Io { what: format!("serving the restore point on {}", socket.display()), source: e })
        };
        match serve() {
            Ok(server) => Ok(Export { server, pin, repo: ds.repo.clone() }),
            Err(e) => {
                let _ = lease::unpin(ds.repo.as_ref(), &pin);
                Err(e)
            }
        }
    }


    /// Stops serving and releases the pin.
    pub fn close(self) {
        let Export { server, pin, repo } = self;
        server.stop();
        if let Err(e) = lease::unpin(repo.as_ref(), &pin) {
            tracing::warn!(pin = %pin, error = %e, "releasing the pin of an instant recovery");
        }
    }
}

/// The backing image string of `disk`'s export on `socket`. (Not the
/// `json:` form: libvirt 9.0 reads it but QEMU then fails the guest's first
/// writes; nor can libvirt 9.0 set the client's `reconnect-delay`.)
pub fn export_uri(socket: &Path, disk: &str) -> String {
    format!("nbd+unix:///{disk}?socket={}", socket.display())
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct InstantRequest {
    pub snapshot_name: String,
    pub snapshot_id: String,
    /// The new VM's name on the target.
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub os: GuestOs,
    /// NICs with their target networks (new MACs are made).
    pub nics: Vec<NicInfo>,
    /// The target's storage pool for the overlays (`None`: its default).
    pub pool: Option<String>,
}

/// A booted instant VM.
#[derive(Debug, Clone)]
pub struct Booted {
    pub vm: VmInfo,
    /// The folder of its overlays.
    pub dir: PathBuf,
    /// From the start of [`boot`] to the guest's boot line; `None` when
    /// the platform cannot tell (no readable console).
    pub up_ms: Option<u64>,
    pub boot_line: Option<String>,
}

/// The folder of `vm`'s overlays on `target`, in its storage pool `pool`
/// (`None`: the default one); an error when that pool is not a directory
/// on this machine.
pub fn folder(target: &dyn Platform, pool: Option<&str>, vm: &str) -> Result<PathBuf, JobError> {
    let dir = target.image_dir_in(pool)?.ok_or_else(|| {
        PlatformError::Invalid("instant recovery needs a host whose storage pool is a directory on this server's machine (the VM's disk overlays live there)".into())
    })?;
    Ok(dir.join(vm))
}

/// Boots `req` on `target` from the export on `socket` (serving that
/// restore point): overlays in the host's pool, the VM defined on them and
/// started, then the wait for the guest's boot line. A failure removes
/// what was made (the export stays with the caller).
pub fn boot(ds: &Datastore, target: &dyn Platform, socket: &Path, req: &InstantRequest, log: &dyn Fn(String)) -> Result<Booted, JobError> {
    let started = Instant::now();
    let m = ds.load_manifest(&req.snapshot_name, &req.snapshot_id)?;
    match target.vm(&req.name) {
        Ok(_) => return Err(PlatformError::VmExists(req.name.clone()).into()),
        Err(PlatformError::VmNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let dir = folder(target, req.pool.as_deref(), &req.name)?;
    if dir.exists() {
        return Err(PlatformError::Invalid(format!("{} already exists on the host: remove it or choose another name", dir.display())).into());
    }
    let made = (|| -> Result<VmInfo, JobError> {
        std::fs::create_dir_all(&dir).map_err(|e| JobError::Io { what: format!("creating {}", dir.display()), source: e })?;
        std::fs::write(dir.join(MARKER), format!("{}/{}\n", m.name, m.id)).map_err(|e| JobError::Io { what: format!("writing in {}", dir.display()), source: e })?;
        let mut disks = Vec::new();
        for d in &m.disks {
            let overlay = dir.join(format!("{}.qcow2", d.name));
            let (uri, size) = (export_uri(socket, &d.name), d.size.to_string());
            let path = overlay.display().to_string();
            // -u: the size is known; the export need not be opened here.
            tools::run("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "compat=1.1", "-u", "-b", &uri, "-F", "raw", &path, &size])?;
            disks.push(NewDisk { name: d.name.clone(), image: overlay, image_format: DiskFormat::Qcow2, format: None, in_place: true });
        }
        log(format!("{} disk overlay(s) on the restore point's exports in {}", disks.len(), dir.display()));
        let nics = req.nics.iter().map(|n| NicInfo { mac: String::new(), ..n.clone() }).collect();
        let spec = NewVm {
            name: req.name.clone(),
            vcpus: req.vcpus,
            memory_mib: req.memory_mib,
            firmware: req.firmware,
            os: req.os,
            role: None,
            nics,
            disks,
            power: PowerState::Running,
            definition: m.vm_definition.clone(),
            pool: None,
        };
        Ok(target.create_vm(&spec)?)
    })();
    let vm = match made {
        Ok(vm) => vm,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    log(format!("VM '{}' (id {}) started on its overlays after {} ms", vm.name, vm.id, started.elapsed().as_millis()));
    let boot_line = match target.wait_until_up(&vm.id, BOOT_WAIT) {
        Ok(line) => line,
        Err(e) => {
            let why = JobError::from(e);
            if let Err(d) = discard(target, &vm.id, &dir) {
                tracing::error!(vm = %vm.name, error = %d, "removing an instant VM that did not come up");
            }
            return Err(why);
        }
    };
    let up_ms = boot_line.as_ref().map(|_| started.elapsed().as_millis() as u64);
    match (&boot_line, up_ms) {
        (Some(l), Some(ms)) => log(format!("guest up {ms} ms after the start: {l}")),
        _ => log("the guest's console shows no boot line: it is started, but whether it is up is not known".into()),
    }
    Ok(Booted { vm, dir, up_ms, boot_line })
}

/// Copies the rest of the restore point into the running VM's overlays;
/// afterwards the VM no longer reads from the export.
/// `bandwidth_mib_s`: a cap per disk (0: none).
pub fn finalize(target: &dyn Platform, vm: &str, bandwidth_mib_s: u64, progress: &dyn Fn(u64, u64), stopped: &dyn Fn() -> bool) -> Result<(), JobError> {
    Ok(target.pull_backing(vm, bandwidth_mib_s, progress, stopped)?)
}

/// Removes the VM (stopped hard) and its overlay folder; either may be
/// gone already. The folder is removed only if Sendense made it.
pub fn discard(target: &dyn Platform, vm: &str, dir: &Path) -> Result<(), JobError> {
    match target.delete_vm(vm) {
        Ok(()) | Err(PlatformError::VmNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if dir.join(MARKER).exists() {
        std::fs::remove_dir_all(dir).map_err(|e| JobError::Io { what: format!("removing {}", dir.display()), source: e })?;
    }
    Ok(())
}
