//! The replica on the target host: a folder of the host's image directory
//! ([`Platform::image_dir`]: for a libvirt host, its storage pool's
//! directory) holding the replica's record, the sync journal and one qcow2
//! chain per disk, and the replica VM defined on the host on the tops of
//! those chains (see the module docs of [`crate::replication`] for the
//! invariants).
//!
//! ```text
//! IMAGES/<replica>/replica.json         ReplicaState: source, tokens, points, phase
//! IMAGES/<replica>/sync.json            SyncJournal: only while a sync runs, or after one was interrupted
//! IMAGES/<replica>/replica.lock         flock held by the one operation running on the replica
//! IMAGES/<replica>/<disk>.qcow2         the top: the replica VM's disk; syncs write here, empty between syncs
//! IMAGES/<replica>/<disk>.rp-<n>.qcow2  restore point n, backed by the previous point's file
//! ```
//!
//! The replica VM (powered off, NICs unconnected until failover) is the
//! host's own VM named after the replica.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_types::platform::{DiskFormat, NicInfo, PowerState, VmInfo};
use shared_types::replication::{ReplicaPoint, SyncKind};

use crate::platforms::{tools, NewDisk, NewVm, Platform, PlatformError};

use super::{ReplicaSpec, ReplicationError, Result};

pub const STATE_FILE: &str = "replica.json";
pub const JOURNAL_FILE: &str = "sync.json";
pub const LOCK_FILE: &str = "replica.lock";
/// The bitmap on each top that records what production writes on the
/// replica while failed over (read back on rollback).
pub const FAILBACK_BITMAP: &str = "sendense-failback";
/// The network of a replica NIC that is not connected (until failover).
pub const UNCONNECTED: &str = "";
const FORMAT: u32 = 1;

/// `replica.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub format: u32,
    pub replication_id: String,
    /// The source VM's name and platform id when the replica was made.
    pub source_vm: String,
    pub source_vm_id: String,
    /// The source's NICs, mapped onto target networks at failover.
    pub source_nics: Vec<NicInfo>,
    pub disks: Vec<ReplicaDisk>,
    /// Oldest first.
    pub points: Vec<PointRecord>,
    /// The sequence number of the next point.
    pub next_seq: u64,
    pub phase: Phase,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDisk {
    pub name: String,
    pub size: u64,
    /// The source's change token since the state the replica's newest
    /// point holds (`None`: the next sync cannot be incremental).
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointRecord {
    pub seq: u64,
    /// The moment of the source this point holds.
    pub consistent_at: DateTime<Utc>,
    pub kind: SyncKind,
    /// Bytes the sync that made it wrote.
    pub bytes_copied: u64,
    /// Production was failed over at this point.
    #[serde(default)]
    pub failover: bool,
}

/// What the replica is doing, written before each step that is hard to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Syncs keep the replica current; the replica VM is off.
    Replicating,
    /// Test VM `vm` runs from point `point`.
    Testing { point: u64, vm: String, started_at: DateTime<Utc> },
    /// A failover began; the source was running before it.
    FailingOver { source_was_running: bool, started_at: DateTime<Utc> },
    /// Production runs on the replica since point `point`.
    FailedOver { point: u64, at: DateTime<Utc>, source_powered_off: bool },
    /// Going back to the source; `data_done`: the source holds its final data.
    RollingBack { point: u64, sync_back: bool, data_done: bool },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Replicating => "replicating",
            Phase::Testing { .. } => "testing",
            Phase::FailingOver { .. } => "failing over",
            Phase::FailedOver { .. } => "failed over",
            Phase::RollingBack { .. } => "rolling back",
        }
    }
}

/// `sync.json`: a sync that runs, or was interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJournal {
    /// The point this sync makes.
    pub seq: u64,
    pub started_at: DateTime<Utc>,
    pub consistent_at: DateTime<Utc>,
    pub kind: SyncKind,
    /// The data is complete and the point is being made: finish it.
    pub committing: bool,
    pub bytes_copied: u64,
    pub disks: Vec<JournalDisk>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalDisk {
    pub name: String,
    /// The source's token of the data in the top (full syncs), or of the
    /// data it will hold once committed.
    pub token: Option<String>,
    /// First full sync: the top holds the source as of `token` below this offset.
    pub copied_upto: Option<u64>,
    /// First full sync: nothing was written at or above this offset (the
    /// journal moves it on before a write would cross it), so a resume
    /// rewrites only `[copied_upto, write_limit)`.
    #[serde(default)]
    pub write_limit: Option<u64>,
}

/// A replica opened by one operation, which holds its lock.
pub struct Replica {
    pub name: String,
    /// The host's image directory (test VMs' overlays go beside the replica).
    pub image_dir: PathBuf,
    pub dir: PathBuf,
    pub state: ReplicaState,
    _lock: File,
}

/// What recovery found and did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The first full sync was interrupted: resume it.
    pub resume: Option<SyncJournal>,
    /// One line per repair, for the job log.
    pub notes: Vec<String>,
}

/// The record of replica `name` on `target`, without taking its lock
/// (records are replaced atomically): `None` when there is no replica.
pub fn status(target: &dyn Platform, name: &str) -> Result<Option<ReplicaState>> {
    let Some(images) = target.image_dir()? else { return Ok(None) };
    let path = images.join(name).join(STATE_FILE);
    if !valid_name(name) || !path.exists() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

/// The points of a replica as the API shows them, newest first.
pub fn points(state: &ReplicaState) -> Vec<ReplicaPoint> {
    let in_test = match &state.phase {
        Phase::Testing { point, .. } => Some(*point),
        _ => None,
    };
    state
        .points
        .iter()
        .rev()
        .map(|p| ReplicaPoint {
            id: point_id(p.seq),
            seq: p.seq,
            consistent_at: p.consistent_at,
            kind: p.kind,
            bytes_copied: p.bytes_copied,
            failover_point: p.failover,
            in_test: in_test == Some(p.seq),
        })
        .collect()
}

/// `rp-<seq>`, the id the API uses.
pub fn point_id(seq: u64) -> String {
    format!("rp-{seq}")
}

/// The sequence number in a point id.
pub fn parse_point_id(id: &str) -> Option<u64> {
    id.strip_prefix("rp-")?.parse().ok()
}

impl Replica {
    /// Opens an existing replica and takes its lock.
    pub fn open(target: &dyn Platform, spec: &ReplicaSpec) -> Result<Replica> {
        let (image_dir, dir) = replica_dir(target, &spec.replica_name)?;
        if !dir.join(STATE_FILE).exists() {
            return Err(ReplicationError::replica(&spec.replica_name, "does not exist on the target (no sync has made it yet)"));
        }
        let lock = lock(&dir, &spec.replica_name)?;
        let state: ReplicaState = read_json(&dir.join(STATE_FILE))?;
        check_owner(&state, spec)?;
        Ok(Replica { name: spec.replica_name.clone(), image_dir, dir, state, _lock: lock })
    }

    /// Opens the replica, or makes it for `source`: empty tops of the
    /// source's disk sizes, the record, and the replica VM on the host
    /// (powered off, same CPUs, memory and disks, NICs unconnected; the
    /// source's own definition, `definition`, as its template).
    pub fn open_or_create(target: &dyn Platform, spec: &ReplicaSpec, source: &VmInfo, definition: Option<String>) -> Result<(Replica, bool)> {
        let (image_dir, dir) = replica_dir(target, &spec.replica_name)?;
        let recorded = dir.join(STATE_FILE).exists();
        let vm_exists = match target.vm(&spec.replica_name) {
            Ok(_) => true,
            Err(PlatformError::VmNotFound(_)) => false,
            // The replica VM is there; what is wrong with its disks is
            // for recovery to repair.
            Err(_) if recorded => true,
            Err(e) => return Err(e.into()),
        };
        if !recorded && vm_exists {
            return Err(PlatformError::VmExists(spec.replica_name.clone()).into());
        }
        std::fs::create_dir_all(&dir).map_err(|e| ReplicationError::io(format!("creating {}", dir.display()), e))?;
        let lock = lock(&dir, &spec.replica_name)?;
        let mut created = false;
        let state = if dir.join(STATE_FILE).exists() {
            let state: ReplicaState = read_json(&dir.join(STATE_FILE))?;
            check_owner(&state, spec)?;
            state
        } else {
            created = true;
            ReplicaState {
                format: FORMAT,
                replication_id: spec.id.clone(),
                source_vm: source.name.clone(),
                source_vm_id: source.id.clone(),
                source_nics: source.nics.clone(),
                disks: source.disks.iter().map(|d| ReplicaDisk { name: d.name.clone(), size: d.capacity_bytes, token: None }).collect(),
                points: Vec::new(),
                next_seq: 1,
                phase: Phase::Replicating,
                created_at: Utc::now(),
            }
        };
        let replica = Replica { name: spec.replica_name.clone(), image_dir, dir, state, _lock: lock };
        if created {
            for d in &replica.state.disks {
                replica.create_top(&d.name, None, d.size)?;
            }
            replica.save()?;
        }
        if !vm_exists {
            let spec = NewVm {
                name: replica.name.clone(),
                vcpus: source.vcpus,
                memory_mib: source.memory_mib,
                firmware: source.firmware,
                os: source.os,
                role: source.role.clone(),
                nics: unconnected(&replica.state.source_nics),
                disks: replica
                    .state
                    .disks
                    .iter()
                    .map(|d| NewDisk { name: d.name.clone(), image: replica.top(&d.name), image_format: DiskFormat::Qcow2, format: None, in_place: true })
                    .collect(),
                power: PowerState::Stopped,
                definition,
                pool: None,
            };
            target.create_vm(&spec)?;
        }
        Ok((replica, created))
    }

    pub fn save(&self) -> Result<()> {
        write_json(&self.dir.join(STATE_FILE), &self.state)
    }

    pub fn top(&self, disk: &str) -> PathBuf {
        self.dir.join(top_name(disk))
    }

    pub fn point_file(&self, disk: &str, seq: u64) -> PathBuf {
        self.dir.join(point_name(disk, seq))
    }

    pub fn latest(&self) -> Option<&PointRecord> {
        self.state.points.last()
    }

    pub fn point(&self, seq: u64) -> Option<&PointRecord> {
        self.state.points.iter().find(|p| p.seq == seq)
    }

    pub fn journal(&self) -> Result<Option<SyncJournal>> {
        let path = self.dir.join(JOURNAL_FILE);
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    pub fn write_journal(&self, j: &SyncJournal) -> Result<()> {
        write_json(&self.dir.join(JOURNAL_FILE), j)
    }

    pub fn remove_journal(&self) -> Result<()> {
        remove_file_if_exists(&self.dir.join(JOURNAL_FILE))?;
        sync_dir(&self.dir)
    }

    /// Replaces a disk's top with an empty image backed by point file
    /// `backing` (`None`: no backing, of `size` bytes). Atomic: the new top
    /// is made beside it and renamed over it.
    pub fn create_top(&self, disk: &str, backing: Option<u64>, size: u64) -> Result<()> {
        let top = self.top(disk);
        let fresh = self.dir.join(format!("{}.new", top_name(disk)));
        let mut args: Vec<String> = vec!["create".into(), "-q".into(), "-f".into(), "qcow2".into()];
        if let Some(seq) = backing {
            args.extend(["-b".into(), point_name(disk, seq), "-F".into(), "qcow2".into()]);
        }
        args.push(fresh.display().to_string());
        if backing.is_none() {
            args.push(size.to_string());
        }
        tools::run("qemu-img", &args)?;
        rename(&fresh, &top)?;
        sync_dir(&self.dir)
    }

    /// Throws away what the tops hold: every disk back at the newest point
    /// (or empty without a point). The failback bitmap goes with them.
    pub fn reset_tops(&self) -> Result<()> {
        let latest = self.latest().map(|p| p.seq);
        for d in &self.state.disks {
            self.create_top(&d.name, latest, d.size)?;
        }
        Ok(())
    }

    /// Marks the sync in `j` complete and makes its point: every top becomes
    /// the point file `rp-<seq>` under a new empty top, and the record gets
    /// the point and the journal's tokens in one write. Also finishes a
    /// commit an interrupted sync left (each step is skipped once done).
    pub fn commit(&mut self, j: &SyncJournal) -> Result<()> {
        if !j.committing {
            let mut j = j.clone();
            j.committing = true;
            self.write_journal(&j)?;
            return self.commit(&j);
        }
        for d in &self.state.disks {
            let pf = self.point_file(&d.name, j.seq);
            let top = self.top(&d.name);
            if !pf.exists() {
                if !top.exists() {
                    return Err(ReplicationError::replica(&self.name, format!("neither {} nor {} exists", top.display(), pf.display())));
                }
                rename(&top, &pf)?;
            }
        }
        // The new tops, one `qemu-img create` per disk, side by side.
        let this = &*self;
        std::thread::scope(|scope| {
            let made: Vec<_> = this
                .state
                .disks
                .iter()
                .map(|d| {
                    scope.spawn(move || {
                        let top = this.top(&d.name);
                        if !top.exists() || backing_of(&top)? != Some(point_name(&d.name, j.seq)) {
                            this.create_top(&d.name, Some(j.seq), d.size)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            made.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err(ReplicationError::replica(&this.name, "making a new top failed"))))
        })?;
        if self.point(j.seq).is_none() {
            for jd in &j.disks {
                if let Some(d) = self.state.disks.iter_mut().find(|d| d.name == jd.name) {
                    d.token = jd.token.clone();
                }
            }
            self.state.points.push(PointRecord { seq: j.seq, consistent_at: j.consistent_at, kind: j.kind, bytes_copied: j.bytes_copied, failover: false });
            self.state.next_seq = self.state.next_seq.max(j.seq + 1);
            self.save()?;
        }
        self.remove_journal()
    }

    /// Drops the oldest points until `keep` remain: the second oldest is
    /// merged into the oldest's file (`qemu-img commit`, the cost of one
    /// delta), which is then renamed over the second's. The record drops the
    /// point first, so an interrupted merge is finished by [`Replica::recover`].
    /// Nothing is dropped while a test VM runs on the chain.
    pub fn prune(&mut self, keep: u32, log: &dyn Fn(String)) -> Result<Vec<u64>> {
        let mut pruned = Vec::new();
        while self.state.points.len() > keep.max(1) as usize {
            if let Phase::Testing { vm, .. } = &self.state.phase {
                log(format!("{} point(s) over the {keep} to keep: kept until the test VM '{vm}' is gone", self.state.points.len() - keep as usize));
                break;
            }
            let oldest = self.state.points[0].seq;
            let next = self.state.points[1].seq;
            self.state.points.remove(0);
            self.save()?;
            for d in &self.state.disks {
                self.merge_into_older(&d.name, oldest, next)?;
            }
            pruned.push(oldest);
        }
        Ok(pruned)
    }

    fn merge_into_older(&self, disk: &str, older: u64, newer: u64) -> Result<()> {
        let newer_file = self.point_file(disk, newer);
        tools::run("qemu-img", ["commit", "-q", "-d", "-f", "qcow2", &newer_file.display().to_string()])?;
        rename(&self.point_file(disk, older), &newer_file)?;
        sync_dir(&self.dir)
    }

    /// Repairs what an interrupted operation left: a merge of pruned points,
    /// a sync (finished if it was committing, resumed if it was the first
    /// full sync, otherwise undone), and tops that are not empty overlays on
    /// the newest point while replicating.
    pub fn recover(&mut self) -> Result<Recovered> {
        let mut out = Recovered::default();
        if let Some(first) = self.state.points.first().map(|p| p.seq) {
            for d in self.state.disks.clone() {
                let Some(backing) = backing_of(&self.point_file(&d.name, first))? else { continue };
                match parse_point_name(&d.name, &backing) {
                    Some(older) if self.point(older).is_none() => {
                        self.merge_into_older(&d.name, older, first)?;
                        out.notes.push(format!("{}: finished merging dropped point {older} into point {first}", d.name));
                    }
                    _ => {
                        return Err(ReplicationError::replica(&self.name, format!("the oldest point of {} is backed by '{backing}'", d.name)));
                    }
                }
            }
        }
        if let Some(j) = self.journal()? {
            if j.committing {
                self.commit(&j)?;
                out.notes.push(format!("the sync of point {} was interrupted while committing: the point was finished", j.seq));
            } else if j.kind == SyncKind::Full && self.state.points.is_empty() && self.state.disks.iter().all(|d| self.top(&d.name).exists()) {
                let at: Vec<String> = j.disks.iter().map(|d| format!("{} at {} bytes", d.name, d.copied_upto.unwrap_or(0))).collect();
                out.notes.push(format!("the first full sync was interrupted: resuming it ({})", at.join(", ")));
                out.resume = Some(j);
                return Ok(out);
            } else {
                self.remove_unrecorded_points()?;
                self.reset_tops()?;
                self.remove_journal()?;
                out.notes.push(match self.latest() {
                    Some(p) => format!("the sync of point {} was interrupted: the replica is back at point {} (untouched), the sync is redone", j.seq, p.seq),
                    None => "the first sync was interrupted before it could be resumed: it starts over".to_string(),
                });
            }
        }
        if matches!(self.state.phase, Phase::Replicating | Phase::Testing { .. }) {
            let latest = self.latest().map(|p| p.seq);
            for d in self.state.disks.clone() {
                let top = self.top(&d.name);
                let why = if !top.exists() {
                    Some("missing")
                } else if backing_of(&top)? != latest.map(|s| point_name(&d.name, s)) {
                    Some("not on the newest point")
                } else if has_own_data(&top)? {
                    Some("written outside a sync (was the replica VM started by hand?)")
                } else {
                    None
                };
                if let Some(why) = why {
                    self.create_top(&d.name, latest, d.size)?;
                    out.notes.push(format!("{}: the replica's current image was {why}: reset to {}", d.name, latest.map_or("empty".to_string(), point_id)));
                }
            }
        }
        Ok(out)
    }

    /// Point files whose point is not in the record (a sync undone after it
    /// renamed some tops; never the backing of a recorded point).
    pub fn remove_unrecorded_points(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| ReplicationError::io(format!("listing {}", self.dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            for d in &self.state.disks {
                if let Some(seq) = parse_point_name(&d.name, &name) {
                    let oldest = self.state.points.first().map_or(u64::MAX, |p| p.seq);
                    if self.point(seq).is_none() && seq > oldest {
                        remove_file_if_exists(&entry.path())?;
                        removed.push(name.clone());
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// The replica VM's NICs before failover: the source's, connected nowhere.
pub fn unconnected(nics: &[NicInfo]) -> Vec<NicInfo> {
    nics.iter().map(|n| NicInfo { network: UNCONNECTED.into(), ..n.clone() }).collect()
}

pub fn top_name(disk: &str) -> String {
    format!("{disk}.qcow2")
}

pub fn point_name(disk: &str, seq: u64) -> String {
    format!("{disk}.rp-{seq}.qcow2")
}

fn parse_point_name(disk: &str, file: &str) -> Option<u64> {
    file.strip_prefix(disk)?.strip_prefix(".rp-")?.strip_suffix(".qcow2")?.parse().ok()
}

/// Names a replica (or a test VM) may have: a folder name on the host.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The host's image directory and the replica's folder in it.
fn replica_dir(target: &dyn Platform, name: &str) -> Result<(PathBuf, PathBuf)> {
    if !valid_name(name) {
        return Err(PlatformError::Invalid(format!("replica name '{name}' (use letters, digits, '.', '_', '-')")).into());
    }
    let images = target.image_dir()?.ok_or_else(|| {
        ReplicationError::replica(
            name,
            format!("cannot live on this {} host: replicas need its storage pool to be a directory of this machine (a host reached remotely is not supported yet)", target.kind().label()),
        )
    })?;
    let dir = images.join(name);
    Ok((images, dir))
}

fn check_owner(state: &ReplicaState, spec: &ReplicaSpec) -> Result<()> {
    if state.format != FORMAT {
        return Err(ReplicationError::replica(&spec.replica_name, format!("record format {} is not {FORMAT}", state.format)));
    }
    if state.replication_id != spec.id {
        return Err(ReplicationError::replica(
            &spec.replica_name,
            format!("belongs to replication '{}', not '{}'", state.replication_id, spec.id),
        ));
    }
    Ok(())
}

fn lock(dir: &Path, name: &str) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ReplicationError::io(format!("opening {}", path.display()), e))?;
    // A child process another thread is starting shares this process's open
    // files until it execs, so a lock just released can look held for a
    // moment: wait briefly before calling it another operation's.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                if std::time::Instant::now() >= deadline {
                    return Err(ReplicationError::replica(
                        name,
                        "another operation on this replica is running (its lock is held)",
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(ReplicationError::io(format!("locking {}", path.display()), e.into())),
        }
    }
}

/// How long taking a replica's lock waits for a holder that is about to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The backing file a qcow2 image names (read from its header).
pub fn backing_of(image: &Path) -> Result<Option<String>> {
    Ok(header(image)?.backing_file)
}

/// Whether an overlay holds data of its own (anything written since it was
/// made): an L2 table allocated.
pub fn has_own_data(image: &Path) -> Result<bool> {
    Ok(header(image)?.has_l2_tables)
}

fn header(image: &Path) -> Result<crate::platforms::kvm::qcow2_header::Qcow2Header> {
    crate::platforms::kvm::qcow2_header::read(image).map_err(|reason| PlatformError::Disk { path: image.into(), reason }.into())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let body = std::fs::read(path).map_err(|e| ReplicationError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_slice(&body).map_err(|e| PlatformError::Definition { path: path.into(), reason: e.to_string() }.into())
}

/// Temporary file, fsync, rename, fsync of the directory.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    let body = serde_json::to_vec_pretty(value).map_err(|e| PlatformError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).map_err(|e| ReplicationError::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(&body).and_then(|_| f.sync_all()).map_err(|e| ReplicationError::io(format!("writing {}", tmp.display()), e))?;
    rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| ReplicationError::io(format!("renaming {} to {}", from.display(), to.display()), e))
}

fn remove_file_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ReplicationError::io(format!("removing {}", path.display()), e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(|e| ReplicationError::io(format!("syncing {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_files_are_named_per_disk() {
        assert_eq!(point_name("disk0", 12), "disk0.rp-12.qcow2");
        assert_eq!(parse_point_name("disk0", "disk0.rp-12.qcow2"), Some(12));
        assert_eq!(parse_point_name("disk0", "disk1.rp-12.qcow2"), None);
        assert_eq!(parse_point_name("disk0", "disk0.qcow2"), None);
        assert_eq!(parse_point_id(&point_id(7)), Some(7));
    }

    #[test]
    fn phases_round_trip_tagged() {
        let p = Phase::FailedOver { point: 3, at: Utc::now(), source_powered_off: true };
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"phase\":\"failed_over\""), "{json}");
        assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), p);
    }
}
