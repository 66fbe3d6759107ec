//! Replication: a VM kept as a powered-off replica on a standby KVM host,
//! synced from the source's changed blocks, with restore points, test
//! failover, live failover, rollback and cleanup. Every public function is a
//! blocking job step (run it on a thread) that reports bytes through
//! [`Progress`] and obeys its pause/cancel at chunk boundaries.
//!
//! Why a room of its own and not `platforms/kvm`: the source is read only
//! through the [`Platform`](crate::platforms::Platform) trait
//! (`open_disk_for` with a change token, `vm`, `set_power`), so any
//! connector with changed-block tracking can be a source of [`sync()`] and
//! [`failover()`]. What is KVM-specific is the replica store ([`replica`]:
//! qcow2 overlay chains in a KVM host directory) and writing blocks back
//! into a source disk on [`rollback`] (which therefore takes a
//! [`KvmHost`](crate::platforms::kvm::KvmHost) source).
//!
//! * [`replica`]: the replica on the target host: layout, `replica.json`,
//!   the sync journal, restore points as a chain of qcow2 files, recovery.
//! * [`copy`]: copying byte ranges from a
//!   [`BlockSource`](crate::engine::block_source::BlockSource) into a writable
//!   `qemu-nbd` export, skipping holes and zeros, pausable.
//! * [`sync()`]: initial (resumable) full sync, incremental syncs, full compare.
//! * [`failover`](mod@failover): test failover, end of test, live failover, rollback.
//! * [`network`]: mapping NICs onto target networks, the isolated network.
//! * [`cleanup`]: removing what failed actions left; removing a replication.
//!
//! # Restore points: a chain of qcow2 files
//!
//! Each replica disk is a chain `disk0.rp-1.qcow2 ← disk0.rp-2.qcow2 ← … ←
//! disk0.qcow2`. Every `rp-<n>` file is immutable once made and, read through
//! its backing files, is the source at point `n`; the top `disk0.qcow2` (the
//! file the replica VM's definition names) is where a sync writes, and
//! between syncs it is empty. Making point `n` is two renames and one
//! `qemu-img create` (instant); a test VM is an overlay on `rp-<n>` (instant,
//! any point, and syncs may go on beside it); dropping the oldest point
//! merges the second into it (`qemu-img commit`, cost of one delta) and
//! renames the merged file over the second. Internal qcow2 snapshots were
//! not chosen: a snapshot cannot back an overlay, so a test VM would need a
//! full copy or would have to stop syncs and run on the live file.
//!
//! # Crash safety
//!
//! * `replica.json` and the journal `sync.json` are written to a temporary
//!   file, fsynced and renamed; point files are renamed, never rewritten.
//! * A sync writes its journal before copying a byte. The source's change
//!   token is recorded in `replica.json` only in the same write that records
//!   the new point, after the point's files exist; the source's read is ended
//!   after that (see [`crate::platforms::kvm::cbt`]: a committed token whose
//!   read did not end stays incremental).
//! * A journal found at the start of the next operation means the last sync
//!   did not finish:
//!   - in its commit phase: the commit is finished (the data was complete);
//!   - an incremental or compare sync: the top is thrown away (the replica
//!     is back at its last point, which was never touched) and the sync is
//!     redone from the recorded token: the source merges its bitmaps on
//!     recovery, so the changes cover the interrupted delta and all later writes;
//!   - the first full sync: it resumes. The journal says "the top holds the
//!     source as of token T below offset X"; the next read since T copies
//!     the blocks changed below X and everything from X on.
//! * Only one operation at a time per replica: `replica.lock` (flock,
//!   released by the kernel when a process dies).
//! * The phase in `replica.json` (replicating, testing, failing over, failed
//!   over, rolling back) is written before each irreversible step, so a
//!   crashed failover, rollback or test is finished or undone by running it
//!   again or by [`cleanup()`].

pub mod cleanup;
pub mod copy;
pub mod failover;
pub mod network;
pub mod replica;
pub mod sync;

use crate::engine::progress::Progress;
use crate::engine::EngineError;
use crate::platforms::PlatformError;

pub use cleanup::{cleanup, remove, CleanupReport};
pub use failover::{end_test, failover, rollback, test_failover, FailoverOptions, FailoverReport, RollbackReport, TestReport};
pub use replica::{points, status, Phase, ReplicaState};
pub use sync::{sync, DiskSyncReport, SyncReport};

/// One replication: which source VM, which replica, how many points.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    /// The replication's id (the flow id): letters, digits and `-`. It names
    /// the source's change tracking and is recorded in the replica.
    pub id: String,
    /// The source VM's name (test VMs are named after it).
    pub source_vm: String,
    /// The source VM's platform id: how the source is found, so a VM
    /// renamed on its platform keeps replicating. Empty: found by name.
    pub source_vm_id: String,
    /// The replica VM's name on the target host.
    pub replica_name: String,
    /// Restore points kept (at least 1).
    pub keep_points: u32,
}

impl ReplicaSpec {
    /// The name of the source's change tracking for this replication.
    pub fn consumer(&self) -> String {
        format!("repl-{}", self.id)
    }

    /// How the source VM is looked up on its platform: its id when known.
    pub fn source_ref(&self) -> &str {
        if self.source_vm_id.is_empty() {
            &self.source_vm
        } else {
            &self.source_vm_id
        }
    }
}

/// The replica's default name for a VM.
pub fn default_replica_name(vm: &str) -> String {
    format!("{vm}-replica")
}

/// The test VM's name for a VM.
pub fn test_vm_name(vm: &str) -> String {
    format!("{vm}-test")
}

/// What a step reports to its job: bytes (and pause/cancel) through
/// `progress`, one line per step through `log`.
pub struct Ctx<'a> {
    pub progress: &'a Progress,
    pub log: &'a (dyn Fn(String) + Sync),
}

impl<'a> Ctx<'a> {
    pub fn new(progress: &'a Progress, log: &'a (dyn Fn(String) + Sync)) -> Ctx<'a> {
        Ctx { progress, log }
    }

    pub(crate) fn say(&self, line: String) {
        tracing::info!("{line}");
        (self.log)(line);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// Reading the source (and `Cancelled` when an operator stopped the job).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The replica is not in a state for this operation, or its files are
    /// not what its record says.
    #[error("replica '{replica}': {reason}")]
    Replica { replica: String, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, #[source] source: std::io::Error },
}

impl ReplicationError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ReplicationError::Engine(EngineError::Cancelled))
    }

    pub(crate) fn replica(replica: &str, reason: impl Into<String>) -> Self {
        ReplicationError::Replica { replica: replica.into(), reason: reason.into() }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ReplicationError::Io { what: what.into(), source }
    }
}

impl From<crate::platforms::nbd::NbdError> for ReplicationError {
    fn from(e: crate::platforms::nbd::NbdError) -> Self {
        ReplicationError::Engine(EngineError::Pipeline(e.to_string()))
    }
}

pub type Result<T, E = ReplicationError> = std::result::Result<T, E>;

/// Milliseconds since `t`.
pub(crate) fn ms_since(t: std::time::Instant) -> u64 {
    t.elapsed().as_millis() as u64
}
