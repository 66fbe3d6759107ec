//! One sync: the source's disks read at one moment and copied into the
//! replica's tops, then made a restore point.
//!
//! * First sync: the replica is made (empty tops, its VM definition), every
//!   allocated block is copied ([`Mode::Seed`]). It is resumable: every
//!   [`CHECKPOINT_INTERVAL`] the top is flushed and the journal records how
//!   far it holds the source as of the read's token, and it never writes
//!   more than [`RESUME_WINDOW`] past that before recording again.
//! * Later syncs: the ranges the source's change tracking lists since the
//!   newest point's token ([`Mode::Changed`]).
//! * When the token cannot be trusted (tracking reset on the source, an
//!   unclean shutdown, a disk format without tracking): every block is read
//!   on both sides and only differences are written ([`Mode::Compare`]), so
//!   the replica stays small and the bytes written are the real difference.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use shared_types::platform::VmInfo;
use shared_types::replication::SyncKind;

use crate::engine::block_source::BlockSource;
use crate::engine::progress::Progress;
use crate::platforms::{DiskRead, Platform};

use super::copy::{self, CopyStats, Mode, NbdTarget};
use super::replica::{JournalDisk, PointRecord, Replica, SyncJournal};
use super::{ms_since, Ctx, ReplicaSpec, ReplicationError, Result};

/// A first full sync writes at most this far past the offset its journal
/// says it holds: what a resume rewrites.
pub const RESUME_WINDOW: u64 = 64 << 20;
/// How often a first full sync records how far it is.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// How one disk was synced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskSyncReport {
    pub disk: String,
    pub size: u64,
    pub kind: SyncKind,
    /// Why the disk was not synced incrementally.
    pub reason: Option<String>,
    /// Bytes the change tracking listed (incremental), or the disk size.
    pub bytes_changed: u64,
    /// A resumed first sync: the offset it went on from.
    pub resumed_from: Option<u64>,
    pub read: u64,
    pub written: u64,
    pub zeroed: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    pub replica: String,
    /// The point this sync made.
    pub point: PointRecord,
    pub kind: SyncKind,
    /// This sync made the replica (its first).
    pub created_replica: bool,
    /// What recovery repaired before the sync (an interrupted one).
    pub recovered: Vec<String>,
    pub disks: Vec<DiskSyncReport>,
    pub bytes_changed: u64,
    pub bytes_read: u64,
    /// Data written to the replica.
    pub bytes_written: u64,
    /// Ranges written as zeros (no data sent).
    pub bytes_zeroed: u64,
    pub duration_ms: u64,
    /// Points merged away to keep `keep_points`.
    pub pruned: Vec<u64>,
}

/// Syncs `spec.source_vm` on `source` to its replica on `target`, making a
/// restore point; makes the replica on the first call. Refused while the
/// replica is failed over (or in the middle of failing over or back).
pub fn sync(source: &dyn Platform, target: &dyn Platform, spec: &ReplicaSpec, ctx: &Ctx) -> Result<SyncReport> {
    let vm = source.vm(spec.source_ref())?;
    // The source's definition is the template of a replica made now.
    let definition = match (super::replica::status(target, &spec.replica_name)?, target.vm(&spec.replica_name)) {
        (Some(_), Ok(_)) => None,
        _ => source.vm_definition(&vm.id)?,
    };
    let (mut replica, created) = Replica::open_or_create(target, spec, &vm, definition)?;
    if created {
        ctx.say(format!(
            "replica '{}' made on the target in {} ({} disk(s), powered off, NICs unconnected until failover)",
            replica.name,
            replica.dir.display(),
            replica.state.disks.len()
        ));
    }
    use super::replica::Phase;
    if !matches!(replica.state.phase, Phase::Replicating | Phase::Testing { .. }) {
        return Err(ReplicationError::replica(&replica.name, format!("is {}: no sync until it is replicating again", replica.state.phase.name())));
    }
    let mut report = sync_locked(source, &mut replica, spec, &vm, ctx)?;
    report.created_replica = created;
    Ok(report)
}

/// One disk's plan: copy `first` (if any), then `rest`.
struct Plan {
    name: String,
    size: u64,
    kind: SyncKind,
    reason: Option<String>,
    bytes_changed: u64,
    resumed_from: Option<u64>,
    /// Resume: the blocks changed below the resume offset since the old token.
    first: Vec<(u64, u64)>,
    rest: Vec<(u64, u64)>,
    rest_mode: Mode,
}

/// [`sync`] on a replica the caller opened (and locked).
pub(crate) fn sync_locked(source: &dyn Platform, replica: &mut Replica, spec: &ReplicaSpec, vm: &VmInfo, ctx: &Ctx) -> Result<SyncReport> {
    let started = Instant::now();
    let started_at = Utc::now();
    let recovered = replica.recover()?;
    for n in &recovered.notes {
        ctx.say(n.clone());
    }
    check_layout(replica, vm)?;
    let consumer = spec.consumer();
    let initial = replica.state.points.is_empty();
    let seq = replica.state.next_seq;
    let consistent_at = Utc::now();

    // Open every disk before copying any: their snapshots are taken together.
    let mut reads: Vec<DiskRead> = Vec::new();
    let mut plans: Vec<Plan> = Vec::new();
    let mut journal = SyncJournal { seq, started_at, consistent_at, kind: SyncKind::Full, committing: false, bytes_copied: 0, disks: Vec::new() };
    let since_of = |d: &super::replica::ReplicaDisk| {
        let resume = recovered.resume.as_ref().and_then(|j| j.disks.iter().find(|jd| jd.name == d.name)).filter(|jd| jd.token.is_some()).cloned();
        let since = if initial { resume.as_ref().and_then(|r| r.token.clone()) } else { d.token.clone() };
        (resume, since)
    };
    // A platform that reads whole VMs opens every disk at one checkpoint,
    // the one every disk's token names.
    let mut whole: Option<std::collections::VecDeque<DiskRead>> = None;
    if source.reads_whole_vms() {
        let sinces: Vec<Option<String>> = replica.state.disks.iter().map(|d| since_of(d).1).collect();
        let since = if sinces.windows(2).all(|w| w[0] == w[1]) { sinces.first().cloned().flatten() } else { None };
        let opened = source.open_vm_disks_for(&vm.id, since.as_deref(), &consumer)?;
        // Matched to the replica's disks by name, never by position.
        let names: Vec<&str> = replica.state.disks.iter().map(|d| d.name.as_str()).collect();
        let opened = DiskRead::in_order_of(opened, &names)
            .map_err(|m| ReplicationError::replica(&replica.name, format!("the source's disks do not match the replica's: {m}")))?;
        whole = Some(opened.into());
    }
    for d in replica.state.disks.clone() {
        let (resume, since) = since_of(&d);
        let read = match whole.as_mut().and_then(|w| w.pop_front()) {
            Some(read) => read,
            None => source.open_disk_for(&vm.id, &d.name, since.as_deref(), &consumer)?,
        };
        let all = vec![(0, d.size)];
        let (plan, jd) = match (initial, &read.changed_ranges, &resume) {
            (true, Some(dirty), Some(r)) => {
                let x = r.copied_upto.unwrap_or(0).min(d.size);
                // Writes may have landed past the recorded offset, below the
                // recorded limit: overwrite that stretch as an incremental
                // would (zeros where the source has none), seed the rest.
                let window = r.write_limit.unwrap_or(d.size).clamp(x, d.size);
                let first = copy::union(&copy::clip(dirty, 0, x), &[(x, window - x)]);
                let plan = Plan {
                    name: d.name.clone(),
                    size: d.size,
                    kind: SyncKind::Full,
                    reason: Some(format!("resuming the first full sync at {x} bytes")),
                    bytes_changed: d.size,
                    resumed_from: Some(x),
                    first: first.into_iter().filter(|r| r.1 > 0).collect(),
                    rest: vec![(window, d.size - window)].into_iter().filter(|r| r.1 > 0).collect(),
                    rest_mode: Mode::Seed,
                };
                (plan, JournalDisk { name: d.name.clone(), token: since.clone(), copied_upto: Some(x), write_limit: Some(window) })
            }
            (true, _, _) => {
                // The old journal must stop vouching for this disk's top
                // before the top is emptied.
                if let Some(mut old) = replica.journal()? {
                    for jd in old.disks.iter_mut().filter(|jd| jd.name == d.name) {
                        (jd.token, jd.copied_upto, jd.write_limit) = (None, None, None);
                    }
                    replica.write_journal(&old)?;
                }
                replica.create_top(&d.name, None, d.size)?;
                let reason = match (&resume, &read.full_read_reason) {
                    (Some(_), Some(why)) => format!("the interrupted first sync cannot resume ({why}): it starts over"),
                    _ => "the first sync copies every allocated block".into(),
                };
                let plan = Plan { name: d.name.clone(), size: d.size, kind: SyncKind::Full, reason: Some(reason), bytes_changed: d.size, resumed_from: None, first: vec![], rest: all, rest_mode: Mode::Seed };
                (plan, JournalDisk { name: d.name.clone(), token: read.token.clone(), copied_upto: Some(0), write_limit: Some(RESUME_WINDOW) })
            }
            (false, Some(changed), _) => {
                let plan = Plan {
                    name: d.name.clone(),
                    size: d.size,
                    kind: SyncKind::Incremental,
                    reason: None,
                    bytes_changed: copy::total(changed),
                    resumed_from: None,
                    first: vec![],
                    rest: changed.clone(),
                    rest_mode: Mode::Changed,
                };
                (plan, JournalDisk { name: d.name.clone(), token: read.token.clone(), copied_upto: None, write_limit: None })
            }
            (false, None, _) => {
                let why = read.full_read_reason.clone().unwrap_or_else(|| "the source gave no changed blocks".into());
                let plan = Plan {
                    name: d.name.clone(),
                    size: d.size,
                    kind: SyncKind::Compare,
                    reason: Some(format!("{why}: comparing every block with the replica")),
                    bytes_changed: d.size,
                    resumed_from: None,
                    first: vec![],
                    rest: all,
                    rest_mode: Mode::Compare,
                };
                (plan, JournalDisk { name: d.name.clone(), token: read.token.clone(), copied_upto: None, write_limit: None })
            }
        };
        if let Some(r) = &plan.reason {
            ctx.say(format!("{}: {} sync: {r}", plan.name, plan.kind));
        }
        Progress::add(&ctx.progress.bytes_total, copy::total(&plan.first) + copy::total(&plan.rest));
        journal.disks.push(jd);
        plans.push(plan);
        reads.push(read);
    }
    journal.kind = if initial {
        SyncKind::Full
    } else if plans.iter().all(|p| p.kind == SyncKind::Incremental) {
        SyncKind::Incremental
    } else {
        SyncKind::Compare
    };
    replica.write_journal(&journal)?;

    let mut stats: Vec<CopyStats> = vec![CopyStats::default(); plans.len()];
    let copied = copy_all(replica, &plans, &reads, &mut journal, &mut stats, ctx);
    let committed = copied.and_then(|_| {
        journal.bytes_copied = stats.iter().map(|s| s.written + s.zeroed).sum();
        for (jd, read) in journal.disks.iter_mut().zip(&reads) {
            jd.token = read.token.clone();
        }
        replica.commit(&journal)
    });
    if let Err(e) = committed {
        let recorded = replica.point(seq).is_some();
        for (i, read) in reads.into_iter().enumerate() {
            // The source may drop the changes it listed only once the
            // replica holds them under the read's token.
            let keeps_token = recorded || (initial && journal.disks[i].token == read.token);
            if let Err(fe) = read.finish(keeps_token) {
                tracing::warn!(error = %fe, "ending a source read after a failed sync");
            }
        }
        if !recorded && !initial {
            // The replica goes back to its newest point, untouched.
            if let Err(re) = replica.reset_tops().and_then(|_| replica.remove_unrecorded_points()).and_then(|_| replica.remove_journal()) {
                ctx.say(format!("the replica could not be put back at its newest point now ({re}); the next operation does it"));
            }
        } else if !recorded {
            ctx.say("the first sync stopped; the next sync resumes it".into());
        }
        return Err(e);
    }
    for read in reads {
        if let Err(e) = read.finish(true) {
            ctx.say(format!("the source's change tracking could not be advanced ({e}); the next sync compares every block"));
        }
    }
    let point = replica.point(seq).cloned().expect("committed");
    let pruned = replica.prune(spec.keep_points, &|l| ctx.say(l))?;
    let disks: Vec<DiskSyncReport> = plans
        .iter()
        .zip(&stats)
        .map(|(p, s)| DiskSyncReport {
            disk: p.name.clone(),
            size: p.size,
            kind: p.kind,
            reason: p.reason.clone(),
            bytes_changed: p.bytes_changed,
            resumed_from: p.resumed_from,
            read: s.read,
            written: s.written,
            zeroed: s.zeroed,
        })
        .collect();
    let report = SyncReport {
        replica: replica.name.clone(),
        kind: point.kind,
        created_replica: false,
        recovered: recovered.notes,
        bytes_changed: disks.iter().map(|d| d.bytes_changed).sum(),
        bytes_read: disks.iter().map(|d| d.read).sum(),
        bytes_written: disks.iter().map(|d| d.written).sum(),
        bytes_zeroed: disks.iter().map(|d| d.zeroed).sum(),
        duration_ms: ms_since(started),
        disks,
        pruned,
        point,
    };
    ctx.say(format!(
        "point {} made ({} sync): {} bytes read, {} written, {} zeroed in {} ms{}",
        super::replica::point_id(report.point.seq),
        report.kind,
        report.bytes_read,
        report.bytes_written,
        report.bytes_zeroed,
        report.duration_ms,
        if report.pruned.is_empty() { String::new() } else { format!("; merged away point(s) {:?}", report.pruned) }
    ));
    Ok(report)
}

fn copy_all(replica: &Replica, plans: &[Plan], reads: &[DiskRead], journal: &mut SyncJournal, stats: &mut [CopyStats], ctx: &Ctx) -> Result<()> {
    for (i, (plan, read)) in plans.iter().zip(reads).enumerate() {
        if plan.first.is_empty() && plan.rest.is_empty() && plan.resumed_from.is_none() {
            // Nothing changed on this disk: its top stays as it is.
            continue;
        }
        let src: Arc<dyn BlockSource> = Arc::clone(&read.source);
        let mut dst = NbdTarget::open(&replica.top(&plan.name))?;
        let result = (|| -> Result<()> {
            if dst.size() != plan.size {
                return Err(ReplicationError::replica(&replica.name, format!("{} is {} bytes, the source disk {}", plan.name, dst.size(), plan.size)));
            }
            if !plan.first.is_empty() || plan.resumed_from.is_some() {
                let s = copy::copy(src.as_ref(), &mut dst, &plan.first, Mode::Changed, ctx.progress, &mut |_, _| Ok(()))?;
                stats[i].add(s);
                // The top now holds the source as of this read below the
                // resume offset: record the new token before going on.
                dst.flush()?;
                let upto = plan.rest.first().map_or(plan.size, |r| r.0);
                journal.disks[i].token = read.token.clone();
                journal.disks[i].copied_upto = Some(upto);
                journal.disks[i].write_limit = Some(upto + RESUME_WINDOW);
                replica.write_journal(journal)?;
            }
            let seeding = plan.rest_mode == Mode::Seed;
            let mut recorded = Instant::now();
            let s = copy::copy(src.as_ref(), &mut dst, &plan.rest, plan.rest_mode, ctx.progress, &mut |end, dst| {
                let limit = journal.disks[i].write_limit.unwrap_or(u64::MAX);
                // The next chunk could cross the limit, or it is time to record.
                if seeding && (end + copy::CHUNK > limit || recorded.elapsed() >= CHECKPOINT_INTERVAL) {
                    dst.flush()?;
                    journal.disks[i].copied_upto = Some(end);
                    if end + copy::CHUNK > limit {
                        journal.disks[i].write_limit = Some(end + RESUME_WINDOW);
                    }
                    replica.write_journal(journal)?;
                    recorded = Instant::now();
                }
                Ok(())
            })?;
            stats[i].add(s);
            Ok(())
        })();
        let closed = dst.close();
        result?;
        closed?;
    }
    Ok(())
}

/// The source VM must still have the disks the replica was made for.
fn check_layout(replica: &Replica, vm: &VmInfo) -> Result<()> {
    let want: Vec<(&str, u64)> = replica.state.disks.iter().map(|d| (d.name.as_str(), d.size)).collect();
    let have: Vec<(&str, u64)> = vm.disks.iter().map(|d| (d.name.as_str(), d.capacity_bytes)).collect();
    if want != have {
        return Err(ReplicationError::replica(
            &replica.name,
            format!("the source VM's disks changed since the replica was made (was {want:?}, now {have:?}): remove the replication and create it again"),
        ));
    }
    Ok(())
}
