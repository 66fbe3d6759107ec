//! Test failover, end of test, live failover and rollback.
//!
//! * Test failover: a VM `<vm>-test` whose disks are new overlays on a
//!   point's files, NICs on the isolated network, powered on. The replica's
//!   files are never written (a point file is only a backing file here), so
//!   ending the test is powering the test VM off and deleting its directory.
//! * Failover: while the source runs, a sync (to shorten the downtime); the
//!   source powered off; a final sync of what changed meanwhile; a dirty
//!   bitmap added on each replica top (what production writes from now on);
//!   NICs mapped; the replica powered on. Anything failing before the
//!   replica is on is undone (the source powered on again).
//! * Rollback with sync back: the replica powered off; the blocks its
//!   failback bitmap lists, and those the source's own tracking lists since
//!   its token (a source that ran meanwhile), copied from the replica to the
//!   source; the source's tracking restarted and the replica's current state
//!   made a point (the source and replica are equal); the source powered on.
//!   Without sync back: the replica's tops thrown away (back at the failover
//!   point, which the source's token still describes) and the source
//!   powered on. A failed rollback powers the replica on again.

use std::time::Instant;

use chrono::Utc;
use shared_types::platform::{DiskFormat, PowerState};
use shared_types::networks::NetworkPair;
use shared_types::replication::SyncKind;

use crate::platforms::kvm::{disk_read, qemu_img};
use crate::platforms::{tools, DiskRead, NewDisk, NewVm, Platform, PlatformError};

use super::copy::{self, Mode, NbdTarget};
use super::replica::{self, JournalDisk, Phase, PointRecord, Replica, SyncJournal, FAILBACK_BITMAP};
use super::sync::{sync_locked, SyncReport};
use super::{ms_since, network, test_vm_name, Ctx, ReplicaSpec, ReplicationError, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct TestReport {
    pub vm: String,
    pub point: u64,
    pub duration_ms: u64,
    /// From the start of the test to the test VM's boot line (`None`: the
    /// platform cannot tell when a guest is up).
    pub boot_ms: Option<u64>,
    pub boot_line: Option<String>,
}

/// How long a started test VM or replica may take to show its boot line.
pub const BOOT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
/// The file in a test VM's folder that marks it as made by a test failover.
pub const TEST_VM_MARKER: &str = "sendense-test-vm";

/// Starts a test VM from point `point` (`None`: the newest), each NIC on the
/// isolated network `test_mapping` names for its network or else on the
/// target's first isolated network (made, without uplink, when it has
/// none). The replica is not touched.
pub fn test_failover(target: &dyn Platform, spec: &ReplicaSpec, point: Option<u64>, test_mapping: &[NetworkPair], ctx: &Ctx) -> Result<TestReport> {
    let started = Instant::now();
    let mut replica = Replica::open(target, spec)?;
    if replica.state.phase != Phase::Replicating {
        return Err(ReplicationError::replica(&replica.name, format!("is {}: no test failover now", replica.state.phase.name())));
    }
    for n in replica.recover()?.notes {
        ctx.say(n);
    }
    let point = match point {
        Some(seq) => replica.point(seq).map(|p| p.seq).ok_or_else(|| ReplicationError::replica(&replica.name, format!("has no point {}", replica::point_id(seq))))?,
        None => replica.latest().map(|p| p.seq).ok_or_else(|| ReplicationError::replica(&replica.name, "has no consistent point yet: replicate first"))?,
    };
    let vm = test_vm_name(&replica.state.source_vm);
    let taken = match target.vm(&vm) {
        Ok(_) => true,
        Err(PlatformError::VmNotFound(_)) => replica.image_dir.join(&vm).exists(),
        Err(e) => return Err(e.into()),
    };
    if taken {
        return Err(ReplicationError::replica(&replica.name, format!("a VM named '{vm}' already exists on the target: remove it, or run cleanup if a test left it")));
    }
    let mut networks = target.networks()?;
    if network::first_isolated(&networks).is_none() && target.add_isolated_network(shared_types::replication::ISOLATED_NETWORK)? {
        ctx.say(format!("isolated network '{}' added on the target", shared_types::replication::ISOLATED_NETWORK));
        networks = target.networks()?;
    }
    let isolated = network::first_isolated(&networks).unwrap_or(shared_types::replication::ISOLATED_NETWORK).to_string();
    let nics = network::test_nics(&replica.state.source_nics, test_mapping, &networks, &isolated).map_err(|m| ReplicationError::replica(&replica.name, m))?;
    replica.state.phase = Phase::Testing { point, vm: vm.clone(), started_at: Utc::now() };
    replica.save()?;
    let made = make_test_vm(target, &replica, &vm, point, nics).and_then(|_| Ok(target.set_power(&vm, PowerState::Running)?));
    if let Err(e) = made {
        if let Err(ce) = remove_test_vm(target, &vm) {
            ctx.say(format!("the test VM '{vm}' could not be removed ({ce}): run cleanup"));
            return Err(e);
        }
        replica.state.phase = Phase::Replicating;
        replica.save()?;
        return Err(e);
    }
    ctx.say(format!("test VM '{vm}' started from {} on the isolated network ({} ms): waiting for its guest", replica::point_id(point), ms_since(started)));
    let boot_line = target.wait_until_up(&vm, BOOT_WAIT).map_err(|e| {
        ReplicationError::replica(&replica.name, format!("test VM '{vm}' runs but its guest is not up: {e}; end the test to remove it"))
    })?;
    let boot_ms = boot_line.as_ref().map(|_| ms_since(started));
    let report = TestReport { vm, point, duration_ms: ms_since(started), boot_ms, boot_line };
    match &report.boot_line {
        Some(line) => ctx.say(format!("test VM '{}' is up from {} ({} ms): {line}", report.vm, replica::point_id(point), report.duration_ms)),
        None => ctx.say(format!("test VM '{}' runs from {} ({} ms; no boot line seen on its console, so when its guest is up is not known)", report.vm, replica::point_id(point), report.duration_ms)),
    }
    Ok(report)
}

/// Overlays on point `point` in the test VM's folder beside the replica's,
/// and the test VM defined on them (the replica VM's definition as template).
fn make_test_vm(target: &dyn Platform, replica: &Replica, vm: &str, point: u64, nics: Vec<shared_types::platform::NicInfo>) -> Result<()> {
    let dir = replica.image_dir.join(vm);
    std::fs::create_dir_all(&dir).map_err(|e| ReplicationError::io(format!("creating {}", dir.display()), e))?;
    // What says this VM is a test VM Sendense made (and may remove).
    std::fs::write(dir.join(TEST_VM_MARKER), &replica.state.replication_id).map_err(|e| ReplicationError::io(format!("writing {}", dir.display()), e))?;
    let rvm = target.vm(&replica.name)?;
    let mut disks = Vec::new();
    for d in &replica.state.disks {
        let image = dir.join(format!("{}.qcow2", d.name));
        // Relative to the overlay's folder: <vm>/../<replica>/<point file>.
        let backing = format!("../{}/{}", replica.name, replica::point_name(&d.name, point));
        tools::run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", &backing, "-F", "qcow2", &image.display().to_string()])?;
        disks.push(NewDisk { name: d.name.clone(), image, image_format: DiskFormat::Qcow2, format: None, in_place: true });
    }
    let spec = NewVm {
        name: vm.into(),
        vcpus: rvm.vcpus,
        memory_mib: rvm.memory_mib,
        firmware: rvm.firmware,
        os: rvm.os,
        role: rvm.role.clone(),
        nics,
        disks,
        power: PowerState::Stopped,
        definition: target.vm_definition(&replica.name)?,
        pool: None,
    };
    target.create_vm(&spec)?;
    Ok(())
}

/// Powers the test VM off and deletes it with its overlays; removes what a
/// test start left half made. True when something was removed.
pub(crate) fn remove_test_vm(target: &dyn Platform, vm: &str) -> Result<bool> {
    let mut removed = false;
    // Only a VM whose folder holds the marker a test failover wrote: a VM
    // of the same name someone else made is never touched.
    let Some(images) = target.image_dir()? else { return Ok(false) };
    let dir = images.join(vm);
    if !replica::valid_name(vm) || !dir.join(TEST_VM_MARKER).exists() {
        return Ok(false);
    }
    match target.vm(vm) {
        Ok(info) => {
            if info.power != PowerState::Stopped {
                target.power(vm, shared_types::platform::PowerAction::Stop, std::time::Duration::ZERO)?;
            }
            target.delete_vm(vm)?;
            removed = true;
        }
        Err(PlatformError::VmNotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // Its overlays (deleting the VM may have removed them already).
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| ReplicationError::io(format!("removing {}", dir.display()), e))?;
        removed = true;
    }
    Ok(removed)
}

/// Ends a test failover: the test VM powered off and deleted with its
/// overlays. Nothing to end is not an error.
pub fn end_test(target: &dyn Platform, spec: &ReplicaSpec, ctx: &Ctx) -> Result<TestReport> {
    let started = Instant::now();
    let mut replica = Replica::open(target, spec)?;
    let (vm, point) = match &replica.state.phase {
        Phase::Testing { vm, point, .. } => (vm.clone(), *point),
        Phase::Replicating => {
            ctx.say("no test failover is running".into());
            return Ok(TestReport { vm: test_vm_name(&replica.state.source_vm), point: 0, duration_ms: ms_since(started), boot_ms: None, boot_line: None });
        }
        other => return Err(ReplicationError::replica(&replica.name, format!("is {}, not testing", other.name()))),
    };
    remove_test_vm(target, &vm)?;
    replica.state.phase = Phase::Replicating;
    replica.save()?;
    let report = TestReport { vm, point, duration_ms: ms_since(started), boot_ms: None, boot_line: None };
    ctx.say(format!("test VM '{}' powered off and removed with its overlays ({} ms)", report.vm, report.duration_ms));
    Ok(report)
}

#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Every network of the source's NICs mapped to a target network.
    pub network_mapping: Vec<NetworkPair>,
    /// Power the source off and copy its last changes first. False when
    /// the source is unreachable: fail over to the newest point as it is.
    pub final_sync: bool,
    /// How long the source's guest may take to shut down (ACPI) before it
    /// is stopped hard.
    pub shutdown_timeout: std::time::Duration,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FailoverReport {
    /// The point production runs from.
    pub point: u64,
    /// The sync made while the source still ran.
    pub presync: Option<SyncReport>,
    /// The sync made after the source was powered off.
    pub final_sync: Option<SyncReport>,
    pub source_powered_off: bool,
    pub presync_ms: u64,
    pub power_off_ms: u64,
    pub final_sync_ms: u64,
    pub power_on_ms: u64,
    /// From the replica's start to its guest's boot line.
    pub boot_ms: Option<u64>,
    pub boot_line: Option<String>,
    /// From the source going off to the replica's guest being up (to the
    /// replica coming on where the platform cannot tell).
    pub downtime_ms: u64,
    pub duration_ms: u64,
}

/// Live failover: see the module docs. The replica keeps its points; the
/// newest is marked as the failover point.
pub fn failover(source: &dyn Platform, target: &dyn Platform, spec: &ReplicaSpec, opts: &FailoverOptions, ctx: &Ctx) -> Result<FailoverReport> {
    let started = Instant::now();
    let mut replica = Replica::open(target, spec)?;
    let resumed_was_running = match &replica.state.phase {
        Phase::Replicating => None,
        Phase::FailingOver { source_was_running, .. } => Some(*source_was_running),
        Phase::Testing { vm, .. } => return Err(ReplicationError::replica(&replica.name, format!("test VM '{vm}' runs: end the test first"))),
        other => return Err(ReplicationError::replica(&replica.name, format!("is {}: no failover now", other.name()))),
    };
    let networks = target.networks()?;
    let nics = network::map_nics(&replica.state.source_nics, &opts.network_mapping, &networks).map_err(|m| ReplicationError::replica(&replica.name, m))?;
    let mut report = FailoverReport {
        point: 0,
        presync: None,
        final_sync: None,
        source_powered_off: false,
        presync_ms: 0,
        power_off_ms: 0,
        final_sync_ms: 0,
        power_on_ms: 0,
        boot_ms: None,
        boot_line: None,
        downtime_ms: 0,
        duration_ms: 0,
    };
    let mut downtime_from = None;
    let mut was_running = resumed_was_running.unwrap_or(false);
    let prepared = (|| -> Result<()> {
        if opts.final_sync {
            let vm = source.vm(spec.source_ref())?;
            if resumed_was_running.is_none() {
                was_running = vm.power == PowerState::Running;
            }
            if vm.power == PowerState::Running && resumed_was_running.is_none() {
                ctx.say("failover: syncing while the source still runs".into());
                let t = Instant::now();
                report.presync = Some(sync_locked(source, &mut replica, spec, &vm, ctx)?);
                report.presync_ms = ms_since(t);
            }
            replica.state.phase = Phase::FailingOver { source_was_running: was_running, started_at: Utc::now() };
            replica.save()?;
            let t = Instant::now();
            downtime_from = Some(t);
            if vm.power != PowerState::Stopped {
                source.power(&vm.id, shared_types::platform::PowerAction::Shutdown, opts.shutdown_timeout)?;
                ctx.say(format!("failover: source '{}' shut down ({} ms; stopped hard after {} s at the latest)", vm.name, ms_since(t), opts.shutdown_timeout.as_secs()));
            }
            report.source_powered_off = was_running;
            report.power_off_ms = ms_since(t);
            let t = Instant::now();
            report.final_sync = Some(sync_locked(source, &mut replica, spec, &vm, ctx)?);
            report.final_sync_ms = ms_since(t);
        } else {
            for n in replica.recover()?.notes {
                ctx.say(n);
            }
            if replica.latest().is_none() {
                return Err(ReplicationError::replica(&replica.name, "has no consistent point to fail over to"));
            }
            replica.state.phase = Phase::FailingOver { source_was_running: false, started_at: Utc::now() };
            replica.save()?;
            downtime_from = Some(Instant::now());
            ctx.say("failover without a final sync: the source is left as it is; changes since the newest point are not on the replica".into());
        }
        for d in &replica.state.disks {
            let top = replica.top(&d.name);
            let has = qemu_img::info(&top, Some(DiskFormat::Qcow2))?.bitmaps.iter().any(|b| b.name == FAILBACK_BITMAP);
            if has {
                bitmap(&top, "--remove")?;
            }
            bitmap(&top, "--add")?;
        }
        target.set_nics(&replica.name, &nics)?;
        let t = Instant::now();
        target.set_power(&replica.name, PowerState::Running)?;
        report.power_on_ms = ms_since(t);
        Ok(())
    })();
    if let Err(e) = prepared {
        ctx.say(format!("failover failed ({e}): undoing it"));
        undo_failover(source, target, &mut replica, spec, was_running && opts.final_sync, ctx);
        return Err(e);
    }
    let point = replica.latest().map(|p| p.seq).expect("a point exists");
    if let Some(p) = replica.state.points.iter_mut().find(|p| p.seq == point) {
        p.failover = true;
    }
    replica.state.phase = Phase::FailedOver { point, at: Utc::now(), source_powered_off: report.source_powered_off };
    replica.save()?;
    // Production is on the replica now, whatever its guest does next.
    let t = Instant::now();
    let down_to_on = downtime_from.map_or(0, ms_since);
    match target.wait_until_up(&replica.name, BOOT_WAIT) {
        Ok(line) => {
            report.boot_ms = line.as_ref().map(|_| ms_since(t));
            report.boot_line = line;
        }
        Err(e) => ctx.say(format!("the replica runs but its guest is not up: {e}")),
    }
    report.point = point;
    report.downtime_ms = if report.boot_line.is_some() { downtime_from.map_or(0, ms_since) } else { down_to_on };
    report.duration_ms = ms_since(started);
    ctx.say(format!(
        "failed over: replica '{}' runs from {} with its NICs mapped; downtime {} ms (source off to {})",
        replica.name,
        replica::point_id(point),
        report.downtime_ms,
        if report.boot_line.is_some() { "the replica's guest up" } else { "the replica on" }
    ));
    Ok(report)
}

/// Puts things back as before a failover that did not finish: the replica
/// off, unconnected, without the failback bitmap; the source on again if
/// the failover powered it off. Best effort; what fails is logged.
pub(crate) fn undo_failover(source: &dyn Platform, target: &dyn Platform, replica: &mut Replica, spec: &ReplicaSpec, power_source_on: bool, ctx: &Ctx) {
    let mut ok = true;
    let mut step = |what: &str, r: Result<()>| {
        if let Err(e) = r {
            ok = false;
            ctx.say(format!("undoing the failover: {what} failed: {e}"));
        }
    };
    step("powering the replica off", target.set_power(&replica.name, PowerState::Stopped).map(|_| ()).map_err(Into::into));
    step("disconnecting the replica's NICs", target.set_nics(&replica.name, &replica::unconnected(&replica.state.source_nics)).map_err(Into::into));
    for d in replica.state.disks.clone() {
        let top = replica.top(&d.name);
        let has = qemu_img::info(&top, Some(DiskFormat::Qcow2)).map(|i| i.bitmaps.iter().any(|b| b.name == FAILBACK_BITMAP));
        if let Ok(true) = has {
            step("removing the failback bitmap", bitmap(&top, "--remove"));
        }
    }
    if power_source_on {
        step("powering the source on", source.set_power(spec.source_ref(), PowerState::Running).map(|_| ()).map_err(Into::into));
    }
    replica.state.phase = Phase::Replicating;
    step("recording the replica's phase", replica.save());
    if ok {
        ctx.say("failover undone: the source runs as before, the replica is off".into());
    }
}

fn bitmap(top: &std::path::Path, op: &str) -> Result<()> {
    let mut args = vec!["bitmap".to_string(), op.to_string()];
    if op == "--add" {
        args.push("--enable".into());
    }
    args.push(top.display().to_string());
    args.push(FAILBACK_BITMAP.into());
    tools::run("qemu-img", &args)?;
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackReport {
    pub sync_back: bool,
    /// How the data went back: `incremental` (the two sides' change
    /// tracking) or `compare` (every block compared).
    pub kind: Option<SyncKind>,
    /// Bytes the replica's failback bitmap listed.
    pub bytes_changed_on_replica: u64,
    /// Bytes the source's own tracking listed (it ran while failed over).
    pub bytes_changed_on_source: u64,
    pub bytes_read: u64,
    /// Bytes written to the source (data and zeros).
    pub bytes_written: u64,
    /// With sync back: the point the replica's final state became.
    pub point: Option<PointRecord>,
    /// The source's boot line after it was started again.
    pub boot_line: Option<String>,
    /// From the replica going off to the source's guest being up (to the
    /// source coming on where the platform cannot tell).
    pub downtime_ms: u64,
    pub duration_ms: u64,
}

/// Back to the source after a failover; see the module docs. Finishes a
/// rollback that was interrupted (once the source holds its data, the
/// choice made then stands).
pub fn rollback(source: &dyn Platform, target: &dyn Platform, spec: &ReplicaSpec, sync_back: bool, ctx: &Ctx) -> Result<RollbackReport> {
    let started = Instant::now();
    let mut replica = Replica::open(target, spec)?;
    let before = replica.state.phase.clone();
    let (point, sync_back, data_done) = match &before {
        Phase::FailedOver { point, .. } => (*point, sync_back, false),
        Phase::RollingBack { point, sync_back: chosen, data_done: true } => {
            if *chosen != sync_back {
                ctx.say(format!("an interrupted rollback already {} the replica's changes: finishing that", if *chosen { "synced back" } else { "discarded" }));
            }
            (*point, *chosen, true)
        }
        Phase::RollingBack { point, .. } => (*point, sync_back, false),
        other => return Err(ReplicationError::replica(&replica.name, format!("is {}, not failed over", other.name()))),
    };
    let (at, source_powered_off) = match &before {
        Phase::FailedOver { at, source_powered_off, .. } => (*at, *source_powered_off),
        _ => (Utc::now(), true),
    };
    let mut report = RollbackReport {
        sync_back,
        kind: None,
        bytes_changed_on_replica: 0,
        bytes_changed_on_source: 0,
        bytes_read: 0,
        bytes_written: 0,
        point: None,
        boot_line: None,
        downtime_ms: 0,
        duration_ms: 0,
    };
    replica.state.phase = Phase::RollingBack { point, sync_back, data_done };
    replica.save()?;
    let down = Instant::now();
    let done = (|| -> Result<()> {
        target.set_power(&replica.name, PowerState::Stopped)?;
        ctx.say(format!("rollback: replica '{}' powered off ({} ms)", replica.name, ms_since(down)));
        let data = Instant::now();
        if !data_done {
            if sync_back {
                sync_back_data(source, &mut replica, spec, &mut report, ctx)?;
            } else {
                if replica.latest().map(|p| p.seq) != Some(point) {
                    return Err(ReplicationError::replica(&replica.name, format!("its newest point is not the failover point {}", replica::point_id(point))));
                }
                replica.reset_tops()?;
                ctx.say(format!("rollback: the replica's changes since the failover were discarded; it is back at {}", replica::point_id(point)));
            }
            replica.state.phase = Phase::RollingBack { point, sync_back, data_done: true };
            replica.save()?;
            ctx.say(format!("rollback: the source's disks hold the data ({} ms)", ms_since(data)));
        }
        source.set_power(&replica.state.source_vm, PowerState::Running)?;
        Ok(())
    })();
    if let Err(e) = done {
        // Production goes back onto the replica, its NICs still mapped. Its
        // failback bitmap records from now: whatever went back to the source
        // already is equal on both sides (the source's tracking restarted there).
        ctx.say(format!("rollback failed ({e}): the replica is powered on again and keeps production"));
        let again = (|| -> Result<()> {
            for d in &replica.state.disks {
                let top = replica.top(&d.name);
                let has = qemu_img::info(&top, Some(DiskFormat::Qcow2))?.bitmaps.iter().any(|b| b.name == FAILBACK_BITMAP);
                if !has {
                    bitmap(&top, "--add")?;
                }
            }
            target.set_power(&replica.name, PowerState::Running)?;
            Ok(())
        })();
        if let Err(pe) = again {
            ctx.say(format!("the replica could not be powered on again: {pe}"));
        }
        let latest = replica.latest().map_or(point, |p| p.seq);
        replica.state.phase = Phase::FailedOver { point: latest, at, source_powered_off };
        replica.save()?;
        return Err(e);
    }
    let boot = Instant::now();
    if let Err(e) = target.set_nics(&replica.name, &replica::unconnected(&replica.state.source_nics)) {
        ctx.say(format!("the powered-off replica's NICs could not be disconnected: {e}"));
    }
    let down_to_on = ms_since(down);
    match source.wait_until_up(spec.source_ref(), BOOT_WAIT) {
        Ok(line) => {
            ctx.say(format!("rollback: the source's guest is up ({} ms after it was powered on)", ms_since(boot)));
            report.boot_line = line;
        }
        Err(e) => ctx.say(format!("the source runs but its guest is not up: {e}")),
    }
    report.downtime_ms = if report.boot_line.is_some() { ms_since(down) } else { down_to_on };
    replica.state.phase = Phase::Replicating;
    replica.save()?;
    report.duration_ms = ms_since(started);
    ctx.say(format!("rolled back: '{}' runs on the source again, replication resumes ({} ms of downtime)", replica.state.source_vm, report.downtime_ms));
    Ok(report)
}

/// Copies what changed on the replica since the failover (and on the source
/// since its token) from the replica to the source, restarts the source's
/// tracking and makes the replica's state a point.
fn sync_back_data(source: &dyn Platform, replica: &mut Replica, spec: &ReplicaSpec, report: &mut RollbackReport, ctx: &Ctx) -> Result<()> {
    let consumer = spec.consumer();
    let vm = source.vm(&replica.state.source_vm_id).or_else(|_| source.vm(&replica.state.source_vm))?;
    let seq = replica.state.next_seq;
    let mut journal = SyncJournal {
        seq,
        started_at: Utc::now(),
        consistent_at: Utc::now(),
        kind: SyncKind::Incremental,
        committing: false,
        bytes_copied: 0,
        disks: Vec::new(),
    };
    // What the source wrote since its token (it ran during the failover):
    // its own tracking, read and left as it was.
    let on_source = source_changes(source, &vm.id, replica, &consumer, ctx);
    let work = replica.dir.join(".writeback");
    for (i, d) in replica.state.disks.clone().into_iter().enumerate() {
        let top = replica.top(&d.name);
        let label = format!("{}/{}", replica.name, d.name);
        // What production wrote on the replica since the failover.
        let (from, on_replica) = match disk_read::export(&label, &top, DiskFormat::Qcow2, None, Some(FAILBACK_BITMAP)) {
            Ok(x) => x,
            Err(e) => {
                ctx.say(format!("{}: the replica's failback bitmap is unusable ({e}): comparing every block", d.name));
                (disk_read::export(&label, &top, DiskFormat::Qcow2, None, None)?.0, None)
            }
        };
        let (ranges, mode) = match (&on_replica, on_source.as_ref().and_then(|s| s.get(i))) {
            (Some(a), Some(b)) => {
                report.bytes_changed_on_replica += copy::total(a);
                report.bytes_changed_on_source += copy::total(b);
                if !b.is_empty() {
                    ctx.say(format!("{}: the source changed {} bytes while failed over: the replica's data overwrites them", d.name, copy::total(b)));
                }
                (copy::union(a, b), Mode::Changed)
            }
            _ => (vec![(0, d.size)], Mode::Compare),
        };
        report.kind = Some(match (report.kind, mode) {
            (Some(SyncKind::Compare), _) | (_, Mode::Compare) => SyncKind::Compare,
            _ => SyncKind::Incremental,
        });
        crate::engine::progress::Progress::add(&ctx.progress.bytes_total, copy::total(&ranges));
        std::fs::create_dir_all(&work).map_err(|e| ReplicationError::io(format!("creating {}", work.display()), e))?;
        let mut write = match source.open_disk_write(&vm.id, &d.name, &work) {
            Ok(w) => w,
            Err(e) => {
                from.close();
                return Err(e.into());
            }
        };
        let Some(client) = write.take_client() else {
            from.close();
            return Err(ReplicationError::replica(&replica.name, format!("the source gave no connection to write disk {} back", d.name)));
        };
        let copied = NbdTarget::from_client(&format!("{}/{}", vm.name, d.name), client).and_then(|mut dst| {
            let s = copy::copy(from.as_ref(), &mut dst, &ranges, mode, ctx.progress, &mut |_, _| Ok(()));
            let closed = dst.close();
            let s = s?;
            closed?;
            Ok(s)
        });
        from.close();
        let s = match copied {
            Ok(s) => {
                write.finish(true)?;
                s
            }
            Err(e) => {
                let _ = write.finish(false);
                return Err(e);
            }
        };
        report.bytes_read += s.read;
        report.bytes_written += s.written + s.zeroed;
        ctx.say(format!("{}: {} bytes written back to the source ({} sync back)", d.name, s.written + s.zeroed, if mode == Mode::Changed { "incremental" } else { "compare" }));
        if let Err(e) = bitmap(&top, "--remove") {
            if on_replica.is_some() {
                return Err(e);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    // The source now equals the replica: its tracking for this replication
    // starts here (a read opened and ended at once records the moment).
    let tokens = restart_tracking(source, &vm.id, replica, &consumer)?;
    for (d, token) in replica.state.disks.iter_mut().zip(&tokens) {
        d.token = token.clone();
        journal.disks.push(JournalDisk { name: d.name.clone(), token: token.clone(), copied_upto: None, write_limit: None });
    }
    replica.save()?;
    journal.kind = report.kind.unwrap_or(SyncKind::Incremental);
    journal.bytes_copied = report.bytes_written;
    replica.commit(&journal)?;
    report.point = replica.point(seq).cloned();
    ctx.say(format!("the replica's final state is point {} (equal to the source)", replica::point_id(seq)));
    Ok(())
}

/// Opens the source's disks for this replication's tracking (`since`: each
/// disk's token): whole VMs at once where the platform reads them so.
fn open_source(source: &dyn Platform, vm: &str, replica: &Replica, consumer: &str, tokens: &[Option<String>]) -> std::result::Result<Vec<DiskRead>, PlatformError> {
    if source.reads_whole_vms() {
        let since = if tokens.windows(2).all(|w| w[0] == w[1]) { tokens.first().cloned().flatten() } else { None };
        let reads = source.open_vm_disks_for(vm, since.as_deref(), consumer)?;
        let names: Vec<&str> = replica.state.disks.iter().map(|d| d.name.as_str()).collect();
        return DiskRead::in_order_of(reads, &names).map_err(|m| PlatformError::Invalid(format!("the source's disks do not match the replica's: {m}")));
    }
    replica.state.disks.iter().zip(tokens).map(|(d, t)| source.open_disk_for(vm, &d.name, t.as_deref(), consumer)).collect()
}

/// The ranges the source's tracking lists since each disk's token, per
/// disk in the replica's order; `None` when it cannot tell for every disk.
fn source_changes(source: &dyn Platform, vm: &str, replica: &Replica, consumer: &str, ctx: &Ctx) -> Option<Vec<Vec<(u64, u64)>>> {
    let tokens: Vec<Option<String>> = replica.state.disks.iter().map(|d| d.token.clone()).collect();
    if tokens.iter().any(Option::is_none) {
        return None;
    }
    let reads = match open_source(source, vm, replica, consumer, &tokens) {
        Ok(r) => r,
        Err(e) => {
            ctx.say(format!("the source's change tracking is unusable ({e}): comparing every block"));
            return None;
        }
    };
    let mut out = Some(Vec::new());
    for read in reads {
        match (&read.changed_ranges, &read.full_read_reason, out.as_mut()) {
            (Some(r), _, Some(o)) => o.push(r.clone()),
            (None, why, Some(_)) => {
                ctx.say(format!("the source's change tracking since its token is unusable ({}): comparing every block", why.as_deref().unwrap_or("no changes listed")));
                out = None;
            }
            _ => {}
        }
        // Every read is ended, left as it was: the next read since the
        // same token lists the same.
        if let Err(e) = read.finish(false) {
            ctx.say(format!("ending a read of the source's change tracking: {e}"));
        }
    }
    out
}

/// Starts the source's tracking for this replication afresh: one read
/// opened and ended as committed; each disk's new token.
fn restart_tracking(source: &dyn Platform, vm: &str, replica: &Replica, consumer: &str) -> Result<Vec<Option<String>>> {
    let none = vec![None; replica.state.disks.len()];
    let reads = open_source(source, vm, replica, consumer, &none)?;
    let mut tokens = Vec::new();
    for read in reads {
        tokens.push(read.token.clone());
        read.finish(true)?;
    }
    Ok(tokens)
}
