//! Platform connectors: how Sendense sees VMs and reads and writes their
//! disks. One module per platform behind the [`Platform`] trait, so the jobs
//! that back up, restore and replicate never know which platform they talk to.
//!
//! * [`kvm`]: KVM/QEMU hosts kept as a host directory.
//! * [`libvirt`]: KVM hosts reached through libvirt (running guests,
//!   checkpoints, pull-mode backup over NBD).
//! * [`nbd`]: the NBD client and `qemu-nbd` exports disks are read through.
//! * [`tools`]: running `qemu-img` and friends with errors naming packages.
//!
//! The trait is blocking, like the engine it feeds (jobs run on threads;
//! async callers use `spawn_blocking`). A connector for a remote API
//! (VMware SOAP, AWS EBS direct APIs, Azure, Hyper-V WMI) implements it with a
//! blocking client or its own runtime handle; callers do not change.

use std::path::PathBuf;
use std::sync::Arc;

use shared_types::platform::{DiskFormat, Firmware, GuestOs, HostInventory, NetworkInfo, NicInfo, PlatformKind, PowerAction, PowerState, VmInfo};

use crate::engine::block_source::BlockSource;
use crate::platforms::nbd::NbdClient;

pub mod error;
pub mod kvm;
pub mod libvirt;
pub mod nbd;
pub mod tools;

pub use error::{PlatformError, Result};

/// One platform endpoint (a host, a vCenter, an AWS region).
pub trait Platform: Send + Sync {
    fn kind(&self) -> PlatformKind;
    /// Everything on the endpoint: host facts, networks, VMs with their disks and NICs.
    fn inventory(&self) -> Result<HostInventory> {
        self.inventory_with_progress(&|_, _| {})
    }
    /// [`Platform::inventory`], calling `progress(done, total)` as VM
    /// definitions are read (total known once they are listed).
    fn inventory_with_progress(&self, progress: &dyn Fn(usize, usize)) -> Result<HostInventory>;
    /// One VM by name or platform id; [`PlatformError::VmNotFound`] when it is gone.
    fn vm(&self, vm: &str) -> Result<VmInfo>;
    /// Opens one disk of a VM for a backup's read: a point-in-time source,
    /// the ranges changed since `since` (the token of the previous backup of
    /// this disk) when the platform can tell, and the token of this read.
    /// `owner` is the managed VM's stable id: change tokens live in one token
    /// space per owner and disk, so a token recorded for another VM (even one
    /// with the same name and history) never matches and means a full read.
    fn open_disk(&self, vm: &str, disk: &str, since: Option<&str>, owner: &str) -> Result<DiskRead>;
    /// Opens every disk of `vm` for one backup's read, at one point in time
    /// where the platform can (libvirt: one checkpoint and backup job for
    /// all disks). `since`: the token the previous read of this VM returned.
    /// Platforms that read disk by disk ([`Platform::reads_whole_vms`] false)
    /// use [`Platform::open_disk`] instead.
    fn open_vm_disks(&self, vm: &str, since: Option<&str>, owner: &str) -> Result<Vec<DiskRead>> {
        let _ = (vm, since, owner);
        Err(PlatformError::Invalid(format!("{} platforms open disks one by one", self.kind().label())))
    }
    /// Whether [`Platform::open_vm_disks`] is the way to read this platform's VMs.
    fn reads_whole_vms(&self) -> bool {
        false
    }
    /// [`Platform::open_disk`] for a consumer with change tracking of its
    /// own (a replication flow, named by `consumer`): its tokens and a
    /// backup's never invalidate each other. Platforms that cannot keep
    /// separate tracking say so.
    fn open_disk_for(&self, vm: &str, disk: &str, since: Option<&str>, consumer: &str) -> Result<DiskRead> {
        let _ = (vm, disk, since);
        Err(PlatformError::Invalid(format!("{} platforms cannot track changes for '{consumer}' separately", self.kind().label())))
    }
    /// [`Platform::open_vm_disks`] for a consumer with a checkpoint chain
    /// of its own (a replication flow, named by `consumer`), for platforms
    /// that read whole VMs.
    fn open_vm_disks_for(&self, vm: &str, since: Option<&str>, consumer: &str) -> Result<Vec<DiskRead>> {
        let _ = (vm, since);
        Err(PlatformError::Invalid(format!("{} platforms cannot track changes for '{consumer}' separately", self.kind().label())))
    }
    /// Ends the change tracking of `consumer` on every disk of `vm` (the
    /// replication was removed). Nothing to do where there is none.
    fn stop_tracking(&self, vm: &str, consumer: &str) -> Result<()> {
        let _ = (vm, consumer);
        Ok(())
    }
    /// The VM's definition in the platform's own terms (libvirt: the domain
    /// XML), kept with each restore point; `None` where there is none.
    fn vm_definition(&self, vm: &str) -> Result<Option<String>> {
        let _ = vm;
        Ok(None)
    }
    /// The last `lines` lines the VM printed on its serial console, where
    /// the platform keeps a log this server can read; `None` otherwise.
    fn console_tail(&self, vm: &str, lines: usize) -> Result<Option<Vec<String>>> {
        let _ = (vm, lines);
        Ok(None)
    }
    /// Waits until the guest of `vm` (started a moment ago) is up: its
    /// console prints a boot line ([`BOOT_LINES`]); the line. `Ok(None)`
    /// where the platform cannot tell: no console this server can read, or
    /// nothing like a boot line within `timeout` (a guest without a serial
    /// console). An error when the VM stopped meanwhile.
    fn wait_until_up(&self, vm: &str, timeout: std::time::Duration) -> Result<Option<String>> {
        let _ = (vm, timeout);
        Ok(None)
    }
    /// Undoes what a stopped server left on the platform (libvirt: backup
    /// jobs still exporting disks); how many things it ended. Called at start.
    fn clean_up_after_restart(&self) -> Result<usize> {
        Ok(0)
    }
    /// Creates a VM from disk images (a restore or a replica).
    fn create_vm(&self, spec: &NewVm) -> Result<VmInfo>;
    /// A directory of this machine whose image files the platform can run
    /// VMs on where they lie: a VM made with [`NewDisk::in_place`] disks
    /// keeps them in `<image_dir>/<vm name>/` (replicas and their test VMs,
    /// whose qcow2 chains are managed here). `None`: the platform's disks
    /// are reached only through its API.
    fn image_dir(&self) -> Result<Option<PathBuf>> {
        Ok(None)
    }
    /// [`Platform::image_dir`] in the storage pool `pool` (`None`: the default one).
    fn image_dir_in(&self, pool: Option<&str>) -> Result<Option<PathBuf>> {
        match pool {
            None => self.image_dir(),
            Some(p) => Err(PlatformError::Invalid(format!("this platform has no storage pool '{p}' to choose"))),
        }
    }
    /// The host's networks.
    fn networks(&self) -> Result<Vec<NetworkInfo>> {
        Ok(self.inventory()?.networks)
    }
    /// Adds an isolated network `name` (no uplink) unless the host has one
    /// of that name; true when it was added.
    fn add_isolated_network(&self, name: &str) -> Result<bool> {
        Err(PlatformError::Invalid(format!("{} platforms cannot add the isolated network '{name}': add it on the host", self.kind().label())))
    }
    /// Puts a shut-off VM's NICs on the networks in `nics` (all of them
    /// replaced; a NIC whose network is empty is left unconnected, or
    /// left out where the platform has no unconnected NIC).
    fn set_nics(&self, vm: &str, nics: &[NicInfo]) -> Result<()> {
        let _ = nics;
        Err(PlatformError::Invalid(format!("{} platforms cannot change the NICs of VM '{vm}'", self.kind().label())))
    }
    /// Replaces the VM named `spec.name` (created when there is none): the
    /// new VM is built beside the old one, `go_on` is asked once it is
    /// complete, and only then does it take the old one's place, which is
    /// removed. Until that switch a failure (or `go_on` saying no) leaves the
    /// old VM exactly as it was; an interrupted switch is finished or undone
    /// when the server starts again.
    fn replace_vm(&self, spec: &NewVm, go_on: &dyn Fn() -> bool) -> Result<VmInfo> {
        let _ = go_on;
        Err(PlatformError::Invalid(format!("{} platforms cannot replace VM '{}' in place", self.kind().label(), spec.name)))
    }
    /// Finishes or undoes the [`Platform::replace_vm`] switches a stop of
    /// the server interrupted; run at start-up. One sentence per repair.
    fn recover_replacements(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Opens one disk of a shut-off VM for writing (files restored into
    /// it): a writable NBD connection to the bytes the guest sees. What is
    /// written counts for the VM (its disk and its change tracking) once
    /// [`DiskWrite::finish`] is called with `commit`; platforms that write
    /// in place have it already, the others (libvirt: volumes reached only
    /// through its API, copied into `work_dir`) send it back then. Refused
    /// with [`PlatformError::VmNotStopped`] while the VM runs.
    fn open_disk_write(&self, vm: &str, disk: &str, work_dir: &std::path::Path) -> Result<DiskWrite> {
        let _ = work_dir;
        Err(PlatformError::Invalid(format!("{} platforms cannot write into disk '{disk}' of VM '{vm}'", self.kind().label())))
    }
    /// Copies into each disk of the running `vm` what it still reads from
    /// a backing image (an instant recovery's exports), while the guest
    /// runs; once done the disks stand alone. `bandwidth_mib_s`: a cap per
    /// disk (0: none). `progress(done, total)` in bytes; `stopped()` true
    /// cancels (what was copied stays, the backing stays too). Nothing to
    /// do for disks without a backing image.
    fn pull_backing(&self, vm: &str, bandwidth_mib_s: u64, progress: &dyn Fn(u64, u64), stopped: &dyn Fn() -> bool) -> Result<()> {
        let _ = (bandwidth_mib_s, progress, stopped);
        Err(PlatformError::Invalid(format!("{} platforms cannot copy the backing data of VM '{vm}' while it runs", self.kind().label())))
    }
    fn set_power(&self, vm: &str, power: PowerState) -> Result<VmInfo>;
    /// An operator's power action. `timeout`: how long a graceful shutdown
    /// may take before the VM is stopped hard. The default maps the action
    /// onto [`Platform::set_power`].
    fn power(&self, vm: &str, action: PowerAction, timeout: std::time::Duration) -> Result<VmInfo> {
        let _ = timeout;
        match action {
            PowerAction::Start => self.set_power(vm, PowerState::Running),
            PowerAction::Shutdown | PowerAction::Stop => self.set_power(vm, PowerState::Stopped),
            PowerAction::Reboot => {
                self.set_power(vm, PowerState::Stopped)?;
                self.set_power(vm, PowerState::Running)
            }
        }
    }
    /// The room for new disks (restores, replicas): bytes free where the
    /// platform puts them, and that place when it is a directory of this
    /// machine.
    fn disk_space(&self) -> Result<DiskSpace>;
    /// [`Platform::disk_space`] of storage pool `pool` (platforms with
    /// pools); `None`: where new disks go by default.
    fn disk_space_in(&self, pool: Option<&str>) -> Result<DiskSpace> {
        match pool {
            None => self.disk_space(),
            Some(p) => Err(PlatformError::Invalid(format!("{} platforms have no storage pool '{p}'", self.kind().label()))),
        }
    }
    /// Deletes a stopped VM and its disks.
    fn delete_vm(&self, vm: &str) -> Result<()>;
}

/// Lines a guest prints on its console once it is up: the Sendense guest
/// init's marker, a getty's login prompt.
pub const BOOT_LINES: [&str; 2] = ["SENDENSE-GUEST-UP", " login:"];

/// The first line of `console` that says the guest is up.
pub fn boot_line(console: &str) -> Option<&str> {
    console.lines().find(|l| BOOT_LINES.iter().any(|m| l.contains(m))).map(str::trim)
}

/// Where a platform puts new disks, and how much fits.
#[derive(Debug, Clone)]
pub struct DiskSpace {
    pub free_bytes: u64,
    /// The directory on this machine the disks go to, if they do.
    pub local_dir: Option<PathBuf>,
}

/// What a new VM looks like.
#[derive(Debug, Clone)]
pub struct NewVm {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub os: GuestOs,
    pub role: Option<String>,
    pub nics: Vec<NicInfo>,
    pub disks: Vec<NewDisk>,
    /// Power state once created.
    pub power: PowerState,
    /// The source VM's definition in this platform's terms (from the
    /// restore point), used as the template of the new one where it fits.
    pub definition: Option<String>,
    /// The storage pool new disks go to (platforms with pools); `None`:
    /// the platform's default.
    pub pool: Option<String>,
}

/// A disk of a new VM, from an image file.
#[derive(Debug, Clone)]
pub struct NewDisk {
    pub name: String,
    pub image: PathBuf,
    pub image_format: DiskFormat,
    /// Format on the platform (`None`: the platform's native format).
    pub format: Option<DiskFormat>,
    /// Run the VM on `image` where it lies (in the VM's folder of
    /// [`Platform::image_dir`]) instead of copying it; deleting the VM
    /// leaves it to whoever made it.
    pub in_place: bool,
}

type Finisher = Box<dyn FnOnce(bool) -> Result<()> + Send>;

/// How consistent a VM-level read's point in time is inside the guest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Quiesce {
    /// The guest agent froze `filesystems` mounted filesystems while the
    /// point in time was taken (application-consistent for the filesystems).
    Frozen { filesystems: u32 },
    /// The VM was shut off: its disks were read at rest.
    AtRest,
    /// Crash-consistent: the VM has no guest agent channel.
    NoAgent,
    /// Crash-consistent: the guest agent did not freeze the filesystems.
    AgentFailed { reason: String },
}

impl std::fmt::Display for Quiesce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quiesce::Frozen { filesystems } => write!(f, "quiesced: the guest agent froze {filesystems} filesystem(s) for the point in time"),
            Quiesce::AtRest => f.write_str("the VM is shut off: its disks were read at rest"),
            Quiesce::NoAgent => f.write_str("crash-consistent: the VM has no guest agent channel to quiesce it"),
            Quiesce::AgentFailed { reason } => write!(f, "crash-consistent: the guest agent did not freeze the filesystems ({reason})"),
        }
    }
}

/// A disk opened for a backup's read. Call [`DiskRead::finish`] with the
/// backup's outcome: a failed backup keeps the changes for the next one.
/// Dropped unfinished, it finishes as failed.
pub struct DiskRead {
    pub source: Arc<dyn BlockSource>,
    /// Ranges changed since the requested token; `None`: read everything.
    pub changed_ranges: Option<Vec<(u64, u64)>>,
    /// Why this read is full, for the job log.
    pub full_read_reason: Option<String>,
    /// Pass as `since` to the next backup's `open_disk`.
    pub token: Option<String>,
    /// The disk this read is of, where the platform opened several at once.
    pub disk: Option<String>,
    /// For a VM-level read: whether the guest was quiesced for it.
    pub quiesce: Option<Quiesce>,
    finisher: Option<Finisher>,
}

impl DiskRead {
    pub fn new(source: Arc<dyn BlockSource>, finisher: Finisher) -> DiskRead {
        DiskRead { source, changed_ranges: None, full_read_reason: None, token: None, disk: None, quiesce: None, finisher: Some(finisher) }
    }

    /// Puts `reads` (of a whole VM) in the order of `disks`, by their disk
    /// names; an error naming what does not match. Reads without names are
    /// taken in the order given.
    pub fn in_order_of(reads: Vec<DiskRead>, disks: &[&str]) -> std::result::Result<Vec<DiskRead>, String> {
        if reads.len() != disks.len() {
            return Err(format!("{} disk(s) were opened, {} expected", reads.len(), disks.len()));
        }
        if reads.iter().any(|r| r.disk.is_none()) {
            return Ok(reads);
        }
        let mut slots: Vec<Option<DiskRead>> = reads.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(disks.len());
        for want in disks {
            let at = slots.iter().position(|r| r.as_ref().is_some_and(|r| r.disk.as_deref() == Some(*want)));
            match at.and_then(|i| slots[i].take()) {
                Some(r) => out.push(r),
                None => return Err(format!("disk '{want}' was not among the disks opened")),
            }
        }
        Ok(out)
    }

    /// Ends the read; `success`: the backup that used it was committed.
    pub fn finish(mut self, success: bool) -> Result<()> {
        match self.finisher.take() {
            Some(f) => f(success),
            None => Ok(()),
        }
    }
}

/// A disk opened for writing by [`Platform::open_disk_write`]. Take the
/// connection, write, disconnect it, then [`DiskWrite::finish`]: `true`
/// keeps what was written, `false` leaves the disk as the platform can
/// (dropped unfinished, it finishes with `false`).
pub struct DiskWrite {
    client: Option<NbdClient>,
    finisher: Option<Box<dyn FnOnce(bool) -> Result<()> + Send>>,
}

impl DiskWrite {
    pub fn new(client: NbdClient, finisher: Box<dyn FnOnce(bool) -> Result<()> + Send>) -> DiskWrite {
        DiskWrite { client: Some(client), finisher: Some(finisher) }
    }

    /// The writable connection (once).
    pub fn take_client(&mut self) -> Option<NbdClient> {
        self.client.take()
    }

    pub fn finish(mut self, commit: bool) -> Result<()> {
        match self.finisher.take() {
            Some(f) => f(commit),
            None => Ok(()),
        }
    }
}

impl Drop for DiskWrite {
    fn drop(&mut self) {
        if let Some(f) = self.finisher.take() {
            if let Err(e) = f(false) {
                tracing::warn!(error = %e, "ending a disk write that was dropped");
            }
        }
    }
}

impl Drop for DiskRead {
    fn drop(&mut self) {
        if let Some(f) = self.finisher.take() {
            if let Err(e) = f(false) {
                tracing::warn!(error = %e, "ending a disk read that was dropped");
            }
        }
    }
}
