//! Removing what failed actions left, and removing a replication.
//!
//! [`cleanup`] is idempotent: run twice, the second run removes nothing.
//! It never ends a failover: a replica that runs production stays as it is.

use std::time::Instant;

use shared_types::platform::{DiskFormat, PowerState};

use crate::platforms::kvm::qemu_img;
use crate::platforms::{Platform, PlatformError};

use super::failover::{remove_test_vm, undo_failover};
use super::replica::{Phase, Replica, FAILBACK_BITMAP};
use super::{ms_since, test_vm_name, Ctx, ReplicaSpec, ReplicationError, Result};

#[derive(Debug, Clone, serde::Serialize)]
pub struct CleanupReport {
    /// What was removed or undone, one line each (empty: nothing to do).
    pub removed: Vec<String>,
    /// What was left on purpose, and why.
    pub notes: Vec<String>,
    /// The replica's phase afterwards (the flow's state follows it).
    pub phase: String,
    pub duration_ms: u64,
}

/// Removes test VMs and their overlays, half-made test VMs, temporary
/// files, point files no point records, a failback bitmap left on a
/// replica that is not failed over; finishes or undoes an interrupted sync
/// or failover (a first full sync is kept: the next sync resumes it).
pub fn cleanup(source: &dyn Platform, target: &dyn Platform, spec: &ReplicaSpec, ctx: &Ctx) -> Result<CleanupReport> {
    let started = Instant::now();
    let mut report = CleanupReport { removed: Vec::new(), notes: Vec::new(), phase: String::new(), duration_ms: 0 };
    if super::status(target, &spec.replica_name)?.is_none() {
        if remove_test_vm(target, &test_vm_name(&spec.source_vm))? {
            report.removed.push(format!("test VM '{}'", test_vm_name(&spec.source_vm)));
        }
        report.phase = "none".into();
        report.notes.push(format!("there is no replica '{}' on the target", spec.replica_name));
        return finish(report, started, ctx);
    }
    let mut replica = Replica::open(target, spec)?;
    let test_vm = test_vm_name(&replica.state.source_vm);
    match replica.state.phase.clone() {
        Phase::Testing { vm, .. } => {
            remove_test_vm(target, &vm)?;
            replica.state.phase = Phase::Replicating;
            replica.save()?;
            report.removed.push(format!("test VM '{vm}' and its overlays"));
        }
        Phase::FailingOver { source_was_running, .. } => {
            let running = target.vm(&replica.name).map(|v| v.power == PowerState::Running).unwrap_or(false);
            if running {
                // The replica was started: it may have taken writes. Finish the failover.
                let point = replica.latest().map(|p| p.seq).ok_or_else(|| ReplicationError::replica(&replica.name, "runs without a point"))?;
                replica.state.phase = Phase::FailedOver { point, at: chrono::Utc::now(), source_powered_off: source_was_running };
                replica.save()?;
                report.notes.push("an interrupted failover had already started the replica: it is recorded as failed over".into());
            } else {
                undo_failover(source, target, &mut replica, spec, source_was_running, ctx);
                report.removed.push("an interrupted failover (the source runs again if it ran before)".into());
            }
        }
        Phase::RollingBack { .. } => report.notes.push("a rollback was interrupted: run rollback again to finish it".into()),
        Phase::FailedOver { .. } | Phase::Replicating => {}
    }
    if remove_test_vm(target, &test_vm)? {
        report.removed.push(format!("leftovers of test VM '{test_vm}'"));
    }
    if matches!(replica.state.phase, Phase::Replicating) {
        let recovered = replica.recover()?;
        if recovered.resume.is_some() {
            report.notes.push("the interrupted first full sync is kept: the next sync resumes it".into());
        }
        report.removed.extend(recovered.notes);
        for d in replica.state.disks.clone() {
            let top = replica.top(&d.name);
            if top.exists() && qemu_img::info(&top, Some(DiskFormat::Qcow2))?.bitmaps.iter().any(|b| b.name == FAILBACK_BITMAP) {
                crate::platforms::tools::run("qemu-img", ["bitmap", "--remove", &top.display().to_string(), FAILBACK_BITMAP])?;
                report.removed.push(format!("{}: failback bitmap of an undone failover", d.name));
            }
        }
        for f in replica.remove_unrecorded_points()? {
            report.removed.push(format!("point file {f} no point records"));
        }
    }
    for entry in std::fs::read_dir(&replica.dir).map_err(|e| ReplicationError::io(format!("listing {}", replica.dir.display()), e))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".new") || name.ends_with(".json.tmp") {
            std::fs::remove_file(entry.path()).map_err(|e| ReplicationError::io(format!("removing {}", entry.path().display()), e))?;
            report.removed.push(format!("temporary file {name}"));
        }
    }
    report.phase = replica.state.phase.name().into();
    finish(report, started, ctx)
}

fn finish(mut report: CleanupReport, started: Instant, ctx: &Ctx) -> Result<CleanupReport> {
    report.duration_ms = ms_since(started);
    if report.removed.is_empty() {
        ctx.say("cleanup: nothing to remove".into());
    }
    for r in &report.removed {
        ctx.say(format!("cleanup: {r}"));
    }
    for n in &report.notes {
        ctx.say(format!("cleanup: {n}"));
    }
    Ok(report)
}

/// Removes a replication: its test VM, the replica VM with every point,
/// and the change tracking it kept on the source (when the source answers).
/// Refused while production runs on the replica.
pub fn remove(source: &dyn Platform, target: &dyn Platform, spec: &ReplicaSpec, ctx: &Ctx) -> Result<()> {
    if super::status(target, &spec.replica_name)?.is_some() {
        let replica = Replica::open(target, spec)?;
        match &replica.state.phase {
            Phase::Replicating => {}
            Phase::Testing { vm, .. } => {
                remove_test_vm(target, vm)?;
            }
            other => return Err(ReplicationError::replica(&replica.name, format!("is {}: roll back (or clean up) before removing it", other.name()))),
        }
        let vm = replica.state.source_vm.clone();
        drop(replica);
        if let Ok(info) = target.vm(&spec.replica_name) {
            if info.power != PowerState::Stopped {
                target.power(&spec.replica_name, shared_types::platform::PowerAction::Stop, std::time::Duration::ZERO)?;
            }
        }
        match target.delete_vm(&spec.replica_name) {
            Ok(()) | Err(PlatformError::VmNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // The replica's folder: its chains and record (gone already where
        // deleting the VM removes its folder).
        if let Some(dir) = target.image_dir()?.map(|d| d.join(&spec.replica_name)) {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| ReplicationError::io(format!("removing {}", dir.display()), e))?;
            }
        }
        ctx.say(format!("replica '{}' and its points removed", spec.replica_name));
        match source.stop_tracking(&vm, &spec.consumer()) {
            Ok(()) => ctx.say(format!("change tracking of this replication removed from '{vm}'")),
            Err(e) => ctx.say(format!("the source's change tracking could not be removed ({e}); it is harmless and goes when the VM is next read for this id")),
        }
    }
    Ok(())
}
