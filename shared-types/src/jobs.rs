//! Jobs: one run of work each (a backup, a restore, a verify...), with the
//! bytes it really moved, throughput samples and log lines.
//!
//! Queued → running ⇄ paused → completed / failed / cancelled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

wire_enum! {
    /// What a job does.
    pub enum JobKind {
        Backup = "backup",
        Restore = "restore",
        Replication = "replication",
        /// Selected files of a file-level restore session written somewhere.
        FileRestore = "file_restore",
        /// Re-read and re-hash a repository's restore points.
        Verify = "verify",
        /// Give back the space of chunks no restore point references.
        Gc = "gc",
        /// Apply each backup flow's retention to its VMs' restore points.
        Prune = "prune",
        /// A VM booted from a restore point, or its finalize.
        InstantRecovery = "instant_recovery",
        /// A restore point copied to a second repository (3-2-1).
        Copy = "copy",
    }
}

wire_enum! {
    /// Where a job stands.
    pub enum JobStatus {
        Queued = "queued",
        Running = "running",
        Paused = "paused",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

wire_enum! {
    /// How a backup reads its VM.
    pub enum BackupType {
        /// Every allocated block.
        Full = "full",
        /// Only the blocks changed since the previous restore point.
        Incremental = "incremental",
    }
}

wire_enum! {
    /// Severity of a job log line.
    pub enum LogLevel {
        Debug = "debug",
        Info = "info",
        Warn = "warn",
        Error = "error",
    }
}

impl JobKind {
    /// Verify, GC and prune: work on a repository, not on a VM.
    pub fn is_repository_maintenance(self) -> bool {
        matches!(self, JobKind::Verify | JobKind::Gc | JobKind::Prune)
    }
}

impl JobStatus {
    /// Queued, running or paused.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Running | JobStatus::Paused)
    }

    /// Completed, failed or cancelled: nothing will change any more.
    pub fn is_finished(self) -> bool {
        !self.is_active()
    }

    pub const ACTIVE: [JobStatus; 3] = [JobStatus::Queued, JobStatus::Running, JobStatus::Paused];
    pub const FINISHED: [JobStatus; 3] = [JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled];
}

/// A job as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// Set for backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<BackupType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    /// Empty for a repository's verify, GC and prune jobs.
    pub vm_context_id: String,
    /// The VM's name; for verify, GC and prune the repository's name.
    pub vm_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// Restores: the restore point restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Restores: the platform the VM is created on; replication: the replica's platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_platform_id: Option<String>,
    /// Replication jobs: the replication flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_id: Option<String>,
    /// Replication jobs: what the job does (sync, failover...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<crate::replication::ReplicationOperation>,
    /// Higher runs first.
    pub priority: i32,
    /// Bytes the job expects to read (0 until known).
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// bytes_read / bytes_total in percent, when the total is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<f64>,
    /// Why the job failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who asked for it (a username), or `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// Percent done, when the total is known.
    pub fn percent(bytes_done: u64, bytes_total: u64) -> Option<f64> {
        (bytes_total > 0).then(|| (bytes_done as f64 * 100.0 / bytes_total as f64).min(100.0))
    }
}

/// One throughput sample of a running job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSample {
    pub at: DateTime<Utc>,
    /// Bytes read so far.
    pub bytes_read: u64,
    /// Bytes written so far.
    pub bytes_written: u64,
    /// Read throughput at that moment, bytes per second.
    pub throughput_bps: u64,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobLogLine {
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
}

impl JobLogLine {
    /// The catalog's lines of a job (oldest first) followed by the lines a
    /// live link brought that are not among them, oldest first: what a job
    /// view shows while the job writes its log.
    pub fn merged(catalog: &[JobLogLine], live: &[JobLogLine]) -> Vec<JobLogLine> {
        let mut extra: Vec<&JobLogLine> = live.iter().filter(|l| !catalog.contains(l)).collect();
        extra.sort_by_key(|l| l.at);
        let mut all = catalog.to_vec();
        for l in extra {
            if !all[catalog.len()..].contains(l) {
                all.push(l.clone());
            }
        }
        all
    }
}

/// `GET /api/v1/jobs/{id}`: the job, its throughput samples (oldest first)
/// and its log (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobDetails {
    pub job: Job,
    pub samples: Vec<JobSample>,
    pub logs: Vec<JobLogLine>,
    /// File restores, once finished: what was written and what was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_restore: Option<crate::restore::FileRestoreResult>,
}

/// `GET /api/v1/jobs`, `GET /api/v1/flows/history`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPage {
    pub items: Vec<Job>,
    /// Jobs matching the filters, over every page.
    pub total: u64,
}

/// `POST /api/v1/backup/start`: back up these VMs now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartBackupRequest {
    /// VM context ids (1 to 500).
    pub vm_ids: Vec<String>,
    /// `incremental` (default: only what changed, where change tracking
    /// allows) or `full` (read every allocated block).
    #[serde(default = "default_backup_type")]
    pub backup_type: BackupType,
    /// Repository id; default: the local repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// Higher runs first (-100 to 100, default 0).
    #[serde(default)]
    pub priority: i32,
}

fn default_backup_type() -> BackupType {
    BackupType::Incremental
}

/// Jobs just queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedJobs {
    pub jobs: Vec<Job>,
}

/// How many jobs an action on many jobs touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobsAffected {
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_split_into_active_and_finished() {
        for s in JobStatus::ALL {
            assert_ne!(s.is_active(), s.is_finished());
            assert_eq!(JobStatus::ACTIVE.contains(s), s.is_active());
            assert_eq!(JobStatus::FINISHED.contains(s), s.is_finished());
        }
        assert_eq!(Job::percent(50, 200), Some(25.0));
        assert_eq!(Job::percent(5, 0), None);
        assert_eq!(Job::percent(300, 200), Some(100.0));
    }

    #[test]
    fn live_log_lines_follow_the_catalogs_once_each() {
        use chrono::TimeZone;
        let at = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        let line = |s, m: &str| JobLogLine { at: at(s), level: LogLevel::Info, message: m.into() };
        let catalog = vec![line(0, "started"), line(1, "vda: full read")];
        let live = vec![line(1, "vda: full read"), line(3, "done"), line(2, "vdb: incremental"), line(3, "vdc: incremental"), line(3, "done")];
        let merged = JobLogLine::merged(&catalog, &live);
        let messages: Vec<&str> = merged.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["started", "vda: full read", "vdb: incremental", "done", "vdc: incremental"]);
        assert_eq!(JobLogLine::merged(&catalog, &[]), catalog);
    }
}
