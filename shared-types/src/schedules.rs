//! `GET /api/v1/schedules`: everything that runs on its own in the next
//! days (backup flows, replication flows, each repository's verify and GC,
//! and the verify runs policies ask of the repositories their flows write to),
//! when, for how long it is expected to run (from its own history), and
//! where runs overlap on a repository or a platform.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Most days the timeline covers.
pub const DAYS_MAX: u32 = 14;
/// Most runs listed per schedule; a schedule that fires more often in the
/// window says so (`truncated`).
pub const RUNS_MAX: usize = 700;

wire_enum! {
    /// What a scheduled entry runs.
    pub enum ScheduledKind {
        Backup = "backup",
        Replication = "replication",
        Verify = "verify",
        Gc = "gc",
    }
}

/// Where a schedule's runs put load.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LoadTarget {
    Repository { id: String },
    Platform { id: String },
}

/// One schedule and its runs in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledEntry {
    /// `<kind>:<id>` (a repository has one entry for verify and one for GC).
    pub key: String,
    pub kind: ScheduledKind,
    /// The flow's, replication flow's or repository's id.
    pub id: String,
    pub name: String,
    /// The cron pattern (backup, verify, GC) or the interval in words (replication).
    pub schedule: String,
    /// The schedule in words.
    pub describe: String,
    /// Median duration of its last (up to 10) completed runs; `None` before
    /// the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seconds: Option<u64>,
    /// How many completed runs `expected_seconds` comes from.
    pub history_runs: u32,
    /// Start of each run in the window, oldest first.
    pub runs: Vec<DateTime<Utc>>,
    pub truncated: bool,
    /// The repositories and platforms its runs work on.
    pub loads: Vec<LoadTarget>,
    /// Set on a repository's verify run that a policy's verify schedule asks
    /// for (a flow writing there follows the policy): the schedule is the
    /// policy's, edited on the Policies page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SchedulePolicy>,
}

/// The policy a scheduled verify comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchedulePolicy {
    pub id: String,
    pub name: String,
}

/// Runs of more than one schedule on one repository or platform at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overlap {
    pub target: LoadTarget,
    pub target_name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The entries (`key`) running in that span, at most this many at once.
    pub entries: Vec<String>,
    pub concurrent: u32,
}

/// The answer of `GET /api/v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleTimeline {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub entries: Vec<ScheduledEntry>,
    /// Spans where two or more runs share a repository or platform; runs
    /// without history count as one minute long.
    pub overlaps: Vec<Overlap>,
}
