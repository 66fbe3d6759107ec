//! Replication flows: a VM kept as a powered-off replica on a standby
//! platform, synced at an interval from the source's changed blocks, with
//! restore points on the replica, test failover, live failover and rollback.
//!
//! The one rule is [`transition`]: which actions a state allows, which state
//! the flow shows while the action's job runs, and where it lands when the
//! job succeeds or fails. The cockpit shows the buttons [`allowed_actions`]
//! returns; the server refuses any other action with [`refusal`]'s message.
//!
//! ```text
//!                replicate_now / resume               ok
//!   idle ──────────────────────────────▶ syncing ──────────▶ healthy ◀──────────────┐
//!    │ (no point yet)                      │  │ fail            │ test_failover      │ end_test ok
//!    │                                     │  ▼                 ▼                    │
//!    │ pause                         pause │ failed        starting_test ─▶ testing ─┴▶ ending_test
//!    ▼                                     ▼  (reason)
//!   paused ◀─────────────────────────── (sync cancelled, resumes on the next sync)
//!
//!   healthy ─ failover ─▶ failing_over ─ok─▶ failed_over ─ rollback ─▶ rolling_back ─ok─▶ healthy
//!                             │ fail                 ▲                     │ fail
//!                             ▼                      └─────────────────────┘ (production stays on the replica)
//!                           failed ─ cleanup ─▶ cleaning_up ─ok─▶ healthy (idle without a point)
//! ```
//!
//! The API (under `/api/v1`; reads for viewers, the rest for operators):
//!
//! * `GET/POST /replication`, `GET/PATCH/DELETE /replication/{id}`: flow CRUD
//!   ([`CreateReplicationRequest`], [`UpdateReplicationRequest`],
//!   [`ReplicationFlow`], [`ReplicationDetails`]).
//! * `POST /replication/start`: create a flow and queue its initial sync.
//! * `POST /replication/{id}/sync | pause | resume | test-failover | end-test
//!   | failover | rollback | cleanup`: one action each, answered with
//!   [`ReplicationAccepted`] (202), or 409 with [`refusal`]'s message.
//! * `POST /replication/site-failover`: every flow of a protection group.
//! * The WebSocket pushes `replication_update` on every change of a flow.
//!
//! A replica *point* is a consistent copy of the source at one moment; the
//! flow's *lag* is the age of the newest point, and its recovery point
//! objective (RPO) is missed when the lag exceeds the interval ([`lag`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::networks::{validate_pairs, NetworkPair};
use crate::NamedRef;

wire_enum! {
    /// Where a replication flow stands.
    pub enum ReplicationState {
        /// Created, never synced: no restore point on the replica yet.
        Idle = "idle",
        /// A sync (initial or incremental) is copying blocks.
        Syncing = "syncing",
        /// The replica holds a recent point; syncs run at the interval.
        Healthy = "healthy",
        /// No syncs run until `resume`; a sync that was running was stopped
        /// and the next one picks up where it left off.
        Paused = "paused",
        /// A test VM is being started from a point.
        StartingTest = "starting_test",
        /// A test VM runs from a point in an isolated network; the replica is untouched.
        Testing = "testing",
        /// The test VM is being removed.
        EndingTest = "ending_test",
        /// Final sync, source off, replica on.
        FailingOver = "failing_over",
        /// Production runs on the replica.
        FailedOver = "failed_over",
        /// Back to the source (with or without the replica's changes).
        RollingBack = "rolling_back",
        /// Leftovers of failed actions are being removed.
        CleaningUp = "cleaning_up",
        /// The last action failed; the flow shows why. `cleanup` removes what it left.
        Failed = "failed",
    }
}

wire_enum! {
    /// What a person can ask of a replication flow.
    pub enum ReplicationAction {
        ReplicateNow = "replicate_now",
        Pause = "pause",
        Resume = "resume",
        TestFailover = "test_failover",
        EndTest = "end_test",
        Failover = "failover",
        Rollback = "rollback",
        Cleanup = "cleanup",
    }
}

wire_enum! {
    /// The job an action runs (one job kind `replication`, this operation).
    pub enum ReplicationOperation {
        Sync = "sync",
        TestFailover = "test_failover",
        EndTest = "end_test",
        Failover = "failover",
        Rollback = "rollback",
        Cleanup = "cleanup",
    }
}

impl ReplicationState {
    /// A job of the flow runs in this state: no other action starts.
    pub fn is_busy(self) -> bool {
        use ReplicationState::*;
        matches!(self, Syncing | StartingTest | EndingTest | FailingOver | RollingBack | CleaningUp)
    }

    /// Words for a person.
    pub fn label(self) -> &'static str {
        use ReplicationState::*;
        match self {
            Idle => "Idle",
            Syncing => "Syncing",
            Healthy => "Healthy",
            Paused => "Paused",
            StartingTest => "Starting test",
            Testing => "Testing",
            EndingTest => "Ending test",
            FailingOver => "Failing over",
            FailedOver => "Failed over",
            RollingBack => "Rolling back",
            CleaningUp => "Cleaning up",
            Failed => "Failed",
        }
    }
}

impl ReplicationAction {
    /// Words for a person, as on the button.
    pub fn label(self) -> &'static str {
        use ReplicationAction::*;
        match self {
            ReplicateNow => "Replicate now",
            Pause => "Pause",
            Resume => "Resume",
            TestFailover => "Test failover",
            EndTest => "End test",
            Failover => "Live failover",
            Rollback => "Roll back",
            Cleanup => "Clean up",
        }
    }

    /// Needs the typed confirmation (the VM's name) of [`check_confirmation`].
    pub fn is_dangerous(self) -> bool {
        matches!(self, ReplicationAction::Failover | ReplicationAction::Rollback)
    }
}

/// What an allowed action does to the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transition {
    /// The state the flow shows from the moment the action is accepted.
    pub during: ReplicationState,
    /// The job the action runs (`None`: the state change is all; for
    /// `pause` the server also stops a running sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<ReplicationOperation>,
    /// The state once the job succeeded (`during` when there is no job).
    pub on_success: ReplicationState,
    /// The state when the job failed or was cancelled.
    pub on_failure: ReplicationState,
}

/// The one rule. `has_point`: the replica holds at least one consistent
/// point (test failover and failover need one). `Err` says why not, for
/// [`refusal`].
pub fn transition(state: ReplicationState, action: ReplicationAction, has_point: bool) -> Result<Transition, &'static str> {
    use ReplicationAction as A;
    use ReplicationOperation as Op;
    use ReplicationState as S;
    let settled = if has_point { S::Healthy } else { S::Idle };
    let job = |during, op, ok, fail| Ok(Transition { during, job: Some(op), on_success: ok, on_failure: fail });
    let set = |to| Ok(Transition { during: to, job: None, on_success: to, on_failure: to });
    if state.is_busy() && !(state == S::Syncing && action == A::Pause) {
        return Err("an operation of this flow is running; wait for it to finish");
    }
    match (state, action) {
        (S::Idle | S::Healthy | S::Failed, A::ReplicateNow) => job(S::Syncing, Op::Sync, S::Healthy, S::Failed),
        (S::Paused, A::Resume) => job(S::Syncing, Op::Sync, S::Healthy, S::Failed),
        (S::Idle | S::Syncing | S::Healthy | S::Failed, A::Pause) => set(S::Paused),
        (S::Idle | S::Healthy | S::Paused | S::Failed, A::TestFailover | A::Failover) if !has_point => {
            Err("the replica has no consistent point yet; replicate first")
        }
        (S::Healthy | S::Paused | S::Failed, A::TestFailover) => job(S::StartingTest, Op::TestFailover, S::Testing, S::Failed),
        // From `failed` too: when the source is gone, its syncs fail, and
        // that is when a failover is needed.
        (S::Healthy | S::Paused | S::Failed, A::Failover) => job(S::FailingOver, Op::Failover, S::FailedOver, S::Failed),
        (S::Testing, A::EndTest) => job(S::EndingTest, Op::EndTest, settled, S::Testing),
        // A failed rollback powers the replica on again: production stays there.
        (S::FailedOver, A::Rollback) => job(S::RollingBack, Op::Rollback, settled, S::FailedOver),
        (S::Testing, A::Cleanup) => job(S::CleaningUp, Op::Cleanup, settled, S::Testing),
        (S::FailedOver, A::Cleanup) => job(S::CleaningUp, Op::Cleanup, S::FailedOver, S::FailedOver),
        (S::Idle | S::Healthy | S::Failed, A::Cleanup) => job(S::CleaningUp, Op::Cleanup, settled, S::Failed),
        (S::Paused, A::Cleanup) => job(S::CleaningUp, Op::Cleanup, S::Paused, S::Paused),
        (S::FailedOver, _) => Err("production runs on the replica: roll back first"),
        (S::Testing, _) => Err("a test failover is running: end the test first"),
        (S::Paused, A::ReplicateNow) => Err("the flow is paused: resume it"),
        (_, A::Resume) => Err("the flow is not paused"),
        (_, A::EndTest) => Err("no test failover is running"),
        (_, A::Rollback) => Err("the flow is not failed over"),
        _ => Err("not possible in this state"),
    }
}

/// The actions a flow offers in `state`, in the order the cockpit shows them.
pub fn allowed_actions(state: ReplicationState, has_point: bool) -> Vec<ReplicationAction> {
    ReplicationAction::ALL.iter().copied().filter(|a| transition(state, *a, has_point).is_ok()).collect()
}

/// `None` when `action` is allowed; otherwise why not and what is possible
/// now, in a sentence a person can act on.
pub fn refusal(flow_name: &str, state: ReplicationState, action: ReplicationAction, has_point: bool) -> Option<String> {
    let why = transition(state, action, has_point).err()?;
    let allowed = allowed_actions(state, has_point);
    let now = if allowed.is_empty() {
        "nothing".to_string()
    } else {
        allowed.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
    };
    Some(format!(
        "The replication flow '{flow_name}' is {}: '{action}' is not possible now ({why}; possible: {now}).",
        state.label().to_lowercase()
    ))
}

/// Failover (and rollback) ask for the source VM's name typed again.
pub fn check_confirmation(vm_name: &str, confirm: &str) -> Result<(), String> {
    if confirm.trim() == vm_name {
        Ok(())
    } else {
        Err(format!("Type the VM name '{vm_name}' to confirm."))
    }
}

/// How far the replica is behind, and whether the recovery point objective is missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lag {
    /// Seconds since the newest consistent point (`None`: no point yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    pub rpo_missed: bool,
}

/// The lag rule: the RPO (the interval) is missed when
/// `now - last_consistent > rpo`. Without a point yet, it is missed once the
/// flow has existed longer than the RPO (it had an interval to make one).
pub fn lag(now: DateTime<Utc>, last_consistent: Option<DateTime<Utc>>, created_at: DateTime<Utc>, rpo_seconds: u64) -> Lag {
    let age = |t: DateTime<Utc>| u64::try_from((now - t).num_seconds()).unwrap_or(0);
    match last_consistent {
        Some(t) => Lag { seconds: Some(age(t)), rpo_missed: age(t) > rpo_seconds },
        None => Lag { seconds: None, rpo_missed: age(created_at) > rpo_seconds },
    }
}

/// Name of the network test VMs are attached to on the target: no uplink,
/// nothing else on it, so a test VM never meets production.
pub const ISOLATED_NETWORK: &str = "sendense-isolated";

/// Fewest and most restore points a replica keeps.
pub const KEEP_POINTS_MIN: u32 = 1;
pub const KEEP_POINTS_MAX: u32 = 64;
/// Shortest and longest sync interval (the RPO), in seconds.
pub const INTERVAL_MIN_SECONDS: u64 = 60;
pub const INTERVAL_MAX_SECONDS: u64 = 7 * 24 * 3600;

fn check_interval(seconds: u64) -> Result<(), (String, String)> {
    if !(INTERVAL_MIN_SECONDS..=INTERVAL_MAX_SECONDS).contains(&seconds) {
        return Err((
            "interval_seconds".into(),
            format!("Sync between every {INTERVAL_MIN_SECONDS} s and every {INTERVAL_MAX_SECONDS} s (a week)."),
        ));
    }
    Ok(())
}

fn check_keep(n: u32) -> Result<(), (String, String)> {
    if !(KEEP_POINTS_MIN..=KEEP_POINTS_MAX).contains(&n) {
        return Err(("keep_points".into(), format!("Keep between {KEEP_POINTS_MIN} and {KEEP_POINTS_MAX} points.")));
    }
    Ok(())
}

/// Sync interval (the RPO) a flow gets when the request leaves it out: 15 minutes.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 900;
/// Restore points a replica keeps when the request leaves it out.
pub const DEFAULT_KEEP_POINTS: u32 = 7;

/// `POST /api/v1/replication` (create) and `POST /api/v1/replication/start`
/// (create and start the initial sync at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateReplicationRequest {
    /// The managed VM (VM context id) to replicate.
    pub vm_id: String,
    /// The standby platform the replica lives on.
    pub target_platform_id: String,
    /// Default: `<vm> to <target>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sync every this many seconds; also the RPO the lag is judged by.
    /// Default [`DEFAULT_INTERVAL_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// Restore points the replica keeps (the oldest are merged away).
    /// Default [`DEFAULT_KEEP_POINTS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_points: Option<u32>,
    /// The flow's own failover mappings (stored as network mappings of the
    /// flow, over the platform pair's defaults).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_mapping: Vec<NetworkPair>,
    /// Default true: the initial sync is queued at once. False: the flow
    /// is created paused (`POST /replication/start` ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl CreateReplicationRequest {
    /// `Err((field, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(n) = &self.name {
            crate::validate_name("replication flow", n).map_err(|m| ("name".to_string(), m))?;
        }
        if self.vm_id.trim().is_empty() {
            return Err(("vm_id".into(), "Choose the VM to replicate.".into()));
        }
        if self.target_platform_id.trim().is_empty() {
            return Err(("target_platform_id".into(), "Choose the platform the replica lives on.".into()));
        }
        check_interval(self.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS))?;
        check_keep(self.keep_points.unwrap_or(DEFAULT_KEEP_POINTS))?;
        validate_pairs("network_mapping", &self.network_mapping)
    }
}

/// `PATCH /api/v1/replication/{id}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateReplicationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_points: Option<u32>,
    /// Replaces the flow's own failover mappings (an empty list removes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mapping: Option<Vec<NetworkPair>>,
}

impl UpdateReplicationRequest {
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(n) = &self.name {
            crate::validate_name("replication flow", n).map_err(|m| ("name".to_string(), m))?;
        }
        if let Some(s) = self.interval_seconds {
            check_interval(s)?;
        }
        if let Some(k) = self.keep_points {
            check_keep(k)?;
        }
        if let Some(m) = &self.network_mapping {
            validate_pairs("network_mapping", m)?;
        }
        Ok(())
    }
}

/// `POST /api/v1/replication/{id}/test-failover`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestFailoverRequest {
    /// The point to test (`rp-<n>`; `None`: the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_id: Option<String>,
}

/// `POST /api/v1/replication/{id}/failover`: production moves to the replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// The source VM's name, typed by the person who asks.
    pub confirm: String,
    /// Default true: power the source off and copy its last changes first
    /// (no data lost). False when the source is unreachable: fail over to
    /// the newest point as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_sync: Option<bool>,
    /// Seconds the source's guest gets to shut down (ACPI) before it is
    /// stopped hard (default 120, 1 to 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_seconds: Option<u32>,
}

/// The source's shutdown at a failover when the request names no timeout.
pub const FAILOVER_SHUTDOWN_TIMEOUT_SECONDS: u32 = 120;

/// `POST /api/v1/replication/{id}/rollback`: production goes back to the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The source VM's name, typed by the person who asks.
    pub confirm: String,
    /// True: copy what changed on the replica since the failover back to
    /// the source. False: discard it; the source runs as it was.
    pub sync_back: bool,
}

/// An action accepted: the flow in its new state and the job it runs (none
/// for pause).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicationAccepted {
    pub flow: ReplicationFlow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::jobs::Job>,
}

wire_enum! {
    /// What a site failover does to each flow of the group.
    pub enum SiteFailoverMode {
        /// Test failover of every flow: test VMs on isolated networks, production untouched.
        Test = "test",
        /// Live failover of every flow.
        Live = "live",
    }
}

/// `POST /api/v1/replication/site-failover`: fail over every replicated VM
/// of a protection group at once (RECOVERY's emergency action).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteFailoverRequest {
    pub group_id: String,
    pub mode: SiteFailoverMode,
    /// For `live`: the group's name, typed by the person who asks.
    #[serde(default)]
    pub confirm: String,
    /// For `live`, as [`FailoverRequest::final_sync`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_sync: Option<bool>,
    /// The order VMs start in (e.g. databases before web): stage 1 at once,
    /// each next stage after the previous one's guests are up (or its jobs
    /// ended) and its delay. VMs of the group in no stage start last.
    /// Empty: every VM at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boot_order: Vec<BootStage>,
}

/// Most boot stages in a site failover.
pub const BOOT_STAGES_MAX: usize = 16;
/// Longest delay after a boot stage, in seconds.
pub const BOOT_DELAY_MAX_SECONDS: u32 = 3600;

/// One stage of a site failover's boot order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BootStage {
    /// Managed VM ids (`GET /api/v1/vm-contexts`) of the group.
    pub vm_ids: Vec<String>,
    /// Before the next stage, wait until every failover of this one ended
    /// (a failover ends when its guest printed its boot line). Default: yes.
    #[serde(default = "yes")]
    pub wait_for_boot: bool,
    /// Then wait this many seconds more (0 to [`BOOT_DELAY_MAX_SECONDS`]).
    #[serde(default)]
    pub delay_seconds: u32,
}

fn yes() -> bool {
    true
}

/// Checks a boot order against the group's VM ids: every id of the group,
/// none twice, the limits. The message names the problem.
pub fn validate_boot_order(stages: &[BootStage], group_vm_ids: &[&str]) -> Result<(), String> {
    if stages.len() > BOOT_STAGES_MAX {
        return Err(format!("a boot order has at most {BOOT_STAGES_MAX} stages"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        if s.vm_ids.is_empty() {
            return Err(format!("stage {} names no VM", i + 1));
        }
        if s.delay_seconds > BOOT_DELAY_MAX_SECONDS {
            return Err(format!("stage {}: a delay is at most {BOOT_DELAY_MAX_SECONDS} s", i + 1));
        }
        for id in &s.vm_ids {
            if !group_vm_ids.contains(&id.as_str()) {
                return Err(format!("stage {}: VM '{}' is not in the group", i + 1, id.chars().take(64).collect::<String>()));
            }
            if !seen.insert(id.as_str()) {
                return Err(format!("stage {}: VM '{id}' is in an earlier stage already", i + 1));
            }
        }
    }
    Ok(())
}

/// Flows of a later boot stage, started by the server when their turn comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledStage {
    /// 2 for the second stage, ...
    pub stage: u32,
    pub flows: Vec<NamedRef>,
    pub wait_for_boot: bool,
    /// Seconds after the previous stage (its boot, when waited for).
    pub delay_seconds: u32,
}

/// A flow a site failover did not start, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteFailoverRefusal {
    pub flow: NamedRef,
    pub reason: String,
}

/// `POST /api/v1/replication/site-failover`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteFailoverResult {
    pub group: NamedRef,
    pub mode: SiteFailoverMode,
    /// Flows whose failover job was queued.
    pub started: Vec<ReplicationAccepted>,
    /// Flows of the group's VMs that could not start (state, networks).
    pub refused: Vec<SiteFailoverRefusal>,
    /// VMs of the group no replication flow covers.
    pub unreplicated: Vec<NamedRef>,
    /// The later stages of the boot order (stage 1 is `started`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduled: Vec<ScheduledStage>,
}

wire_enum! {
    /// How a sync copied.
    pub enum SyncKind {
        /// Every allocated block (the first sync).
        Full = "full",
        /// Only the blocks the source's change tracking listed.
        Incremental = "incremental",
        /// Every block read on both sides and only differences written (the
        /// source's change tracking could not be trusted).
        Compare = "compare",
    }
}

/// One consistent copy of the source on the replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicaPoint {
    /// `rp-<seq>`.
    pub id: String,
    pub seq: u64,
    /// The moment of the source this point holds.
    pub consistent_at: DateTime<Utc>,
    pub kind: SyncKind,
    /// Bytes the sync that made it wrote to the replica.
    pub bytes_copied: u64,
    /// Production was failed over at this point.
    #[serde(default)]
    pub failover_point: bool,
    /// A test VM runs from this point.
    #[serde(default)]
    pub in_test: bool,
}

/// What the last sync did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncSummary {
    pub kind: SyncKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Bytes the source's change tracking listed (the whole allocated disk for a full sync).
    pub bytes_changed: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes written to the replica (data, and zeroed ranges).
    pub bytes_written: u64,
}

/// A replication flow as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicationFlow {
    pub id: String,
    pub name: String,
    /// The managed VM replicated (VM context).
    pub source_vm: NamedRef,
    pub source_platform: NamedRef,
    pub target_platform: NamedRef,
    /// The replica's VM name on the target.
    pub replica_vm_name: String,
    pub interval_seconds: u64,
    pub keep_points: u32,
    /// The failover mapping in force (the flow's own over the platform
    /// pair's defaults), for the source VM's networks.
    pub network_mapping: Vec<NetworkPair>,
    /// Why a live failover could not place the VM's NICs now (empty: ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_problems: Vec<String>,
    pub state: ReplicationState,
    /// Why the last action failed (state `failed`, or a failed rollback or end of test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// What the cockpit may offer now ([`allowed_actions`]).
    pub allowed_actions: Vec<ReplicationAction>,
    pub lag: Lag,
    /// The newest consistent point's moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_consistent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<SyncSummary>,
    pub point_count: u32,
    /// When the next scheduled sync starts (none while paused, testing or failed over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_at: Option<DateTime<Utc>>,
    /// The job of the operation running now (queued, running or paused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_job_id: Option<String>,
    /// The test VM's name while a test runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_vm_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/replication/{id}`: the flow, its points (newest first) and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplicationDetails {
    pub flow: ReplicationFlow,
    pub points: Vec<ReplicaPoint>,
    /// Bytes the replica's files take on the target host.
    pub replica_bytes: u64,
    /// The running operation's job, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_job: Option<crate::jobs::Job>,
    /// The most recent finished jobs of the flow, newest first.
    pub recent_jobs: Vec<crate::jobs::Job>,
    /// The test VM while a test runs, as the target host has it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_vm: Option<TestVmStatus>,
}

/// A test failover's VM on the target host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestVmStatus {
    pub name: String,
    pub power: crate::platform::PowerState,
    /// From the start of the test to the guest's boot line, when seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_ms: Option<u64>,
    /// The line the guest printed once up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_line: Option<String>,
    /// The last lines of its serial console (empty where the host keeps no log this server reads).
    pub console_tail: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicationAction as A;
    use ReplicationState as S;

    #[test]
    fn seed_003_actions_per_state() {
        assert_eq!(allowed_actions(S::Idle, false), vec![A::ReplicateNow, A::Pause, A::Cleanup]);
        assert_eq!(
            allowed_actions(S::Healthy, true),
            vec![A::ReplicateNow, A::Pause, A::TestFailover, A::Failover, A::Cleanup]
        );
        assert_eq!(allowed_actions(S::Syncing, true), vec![A::Pause]);
        assert_eq!(allowed_actions(S::FailedOver, true), vec![A::Rollback, A::Cleanup]);
        assert_eq!(allowed_actions(S::Testing, true), vec![A::EndTest, A::Cleanup]);
        assert_eq!(allowed_actions(S::Paused, true), vec![A::Resume, A::TestFailover, A::Failover, A::Cleanup]);
        assert_eq!(allowed_actions(S::Paused, false), vec![A::Resume, A::Cleanup]);
        assert_eq!(
            allowed_actions(S::Failed, true),
            vec![A::ReplicateNow, A::Pause, A::TestFailover, A::Failover, A::Cleanup],
            "a failing source is when failover is needed"
        );
        assert_eq!(allowed_actions(S::Failed, false), vec![A::ReplicateNow, A::Pause, A::Cleanup]);
    }

    #[test]
    fn busy_states_allow_nothing_but_pausing_a_sync() {
        for s in ReplicationState::ALL.iter().copied().filter(|s| s.is_busy()) {
            for has_point in [false, true] {
                let allowed = allowed_actions(s, has_point);
                if s == S::Syncing {
                    assert_eq!(allowed, vec![A::Pause]);
                } else {
                    assert!(allowed.is_empty(), "{s}: {allowed:?}");
                }
            }
        }
    }

    #[test]
    fn every_job_lands_in_a_settled_state_and_failures_say_where() {
        for s in ReplicationState::ALL {
            for a in ReplicationAction::ALL {
                for has_point in [false, true] {
                    let Ok(t) = transition(*s, *a, has_point) else { continue };
                    assert!(!t.on_success.is_busy() && !t.on_failure.is_busy(), "{s} {a}: {t:?}");
                    assert_eq!(t.job.is_some(), t.during.is_busy(), "{s} {a}: a job shows a busy state");
                }
            }
        }
        let t = transition(S::Healthy, A::Failover, true).unwrap();
        assert_eq!((t.during, t.on_success, t.on_failure), (S::FailingOver, S::FailedOver, S::Failed));
        let t = transition(S::FailedOver, A::Rollback, true).unwrap();
        assert_eq!((t.during, t.on_success, t.on_failure), (S::RollingBack, S::Healthy, S::FailedOver));
        let t = transition(S::Idle, A::ReplicateNow, false).unwrap();
        assert_eq!((t.job, t.on_success, t.on_failure), (Some(ReplicationOperation::Sync), S::Healthy, S::Failed));
        let t = transition(S::Syncing, A::Pause, true).unwrap();
        assert_eq!((t.during, t.job), (S::Paused, None));
        let t = transition(S::Testing, A::EndTest, true).unwrap();
        assert_eq!((t.on_success, t.on_failure), (S::Healthy, S::Testing));
        let t = transition(S::FailedOver, A::Cleanup, true).unwrap();
        assert_eq!(t.on_success, S::FailedOver, "cleanup never ends a failover");
    }

    #[test]
    fn illegal_actions_are_refused_with_a_reason() {
        assert!(transition(S::Healthy, A::Rollback, true).is_err());
        assert!(transition(S::Idle, A::Failover, false).unwrap_err().contains("replicate first"));
        assert!(transition(S::FailedOver, A::ReplicateNow, true).unwrap_err().contains("roll back first"));
        assert!(transition(S::Testing, A::Failover, true).unwrap_err().contains("end the test"));
        assert!(transition(S::FailingOver, A::Rollback, true).unwrap_err().contains("running"));
        assert!(transition(S::Paused, A::ReplicateNow, true).unwrap_err().contains("resume"));
        let msg = refusal("web-01 to DR", S::FailedOver, A::Failover, true).unwrap();
        assert!(msg.contains("'web-01 to DR' is failed over") && msg.contains("possible: rollback, cleanup"), "{msg}");
        assert_eq!(refusal("x", S::Healthy, A::Failover, true), None);
        let msg = refusal("x", S::RollingBack, A::Cleanup, true).unwrap();
        assert!(msg.contains("possible: nothing"), "{msg}");
    }

    #[test]
    fn lag_misses_the_rpo_only_past_the_interval() {
        let t0 = DateTime::parse_from_rfc3339("2025-10-06T10:00:00Z").unwrap().with_timezone(&Utc);
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert_eq!(lag(at(300), Some(t0), t0, 300), Lag { seconds: Some(300), rpo_missed: false });
        assert_eq!(lag(at(301), Some(t0), t0, 300), Lag { seconds: Some(301), rpo_missed: true });
        assert_eq!(lag(at(100), None, t0, 300), Lag { seconds: None, rpo_missed: false });
        assert_eq!(lag(at(400), None, t0, 300), Lag { seconds: None, rpo_missed: true });
        assert_eq!(lag(t0, Some(at(5)), t0, 300).seconds, Some(0), "a clock behind the point is no lag");
    }

    #[test]
    fn requests_carry_confirmations_and_defaults() {
        let f: FailoverRequest = serde_json::from_str(r#"{"confirm":"web-01"}"#).unwrap();
        assert!(check_confirmation("web-01", &f.confirm).is_ok() && f.final_sync.is_none());
        assert!(check_confirmation("db-01", &f.confirm).unwrap_err().contains("'db-01'"));
        assert!(serde_json::from_str::<FailoverRequest>(r#"{"confirm":"x","network_mapping":[]}"#).is_err());
        let rb: RollbackRequest = serde_json::from_str(r#"{"confirm":"web-01","sync_back":true}"#).unwrap();
        assert!(rb.sync_back);
        assert!(serde_json::from_str::<RollbackRequest>(r#"{"confirm":"x"}"#).is_err(), "sync_back is required");
        let t: TestFailoverRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(t.point_id, None);
        let s: SiteFailoverRequest = serde_json::from_str(r#"{"group_id":"g","mode":"test"}"#).unwrap();
        assert_eq!((s.mode, s.confirm.as_str()), (SiteFailoverMode::Test, ""));
        let order: SiteFailoverRequest =
            serde_json::from_str(r#"{"group_id":"g","mode":"test","boot_order":[{"vm_ids":["db"]},{"vm_ids":["web"],"wait_for_boot":false,"delay_seconds":5}]}"#).unwrap();
        assert!(order.boot_order[0].wait_for_boot && !order.boot_order[1].wait_for_boot);
        assert_eq!(validate_boot_order(&order.boot_order, &["db", "web", "app"]), Ok(()));
        assert!(validate_boot_order(&order.boot_order, &["db"]).unwrap_err().contains("'web' is not in the group"));
        let twice = vec![order.boot_order[0].clone(), order.boot_order[0].clone()];
        assert!(validate_boot_order(&twice, &["db"]).unwrap_err().contains("earlier stage"));
        let slow = vec![BootStage { vm_ids: vec!["db".into()], wait_for_boot: true, delay_seconds: 3601 }];
        assert!(validate_boot_order(&slow, &["db"]).unwrap_err().contains("at most 3600"));
    }

    #[test]
    fn create_and_update_requests_are_validated() {
        let ok = CreateReplicationRequest {
            name: Some("web-01 to DR".into()),
            vm_id: "vm1".into(),
            target_platform_id: "p2".into(),
            interval_seconds: Some(900),
            keep_points: Some(7),
            network_mapping: vec![],
            enabled: None,
        };
        assert!(ok.validate().is_ok());
        let minimal: CreateReplicationRequest = serde_json::from_str(r#"{"vm_id":"vm1","target_platform_id":"p2"}"#).unwrap();
        assert!(minimal.validate().is_ok(), "defaults are valid");
        assert_eq!(CreateReplicationRequest { interval_seconds: Some(5), ..ok.clone() }.validate().unwrap_err().0, "interval_seconds");
        assert_eq!(CreateReplicationRequest { keep_points: Some(0), ..ok.clone() }.validate().unwrap_err().0, "keep_points");
        assert_eq!(CreateReplicationRequest { name: Some(" ".into()), ..ok.clone() }.validate().unwrap_err().0, "name");
        let twice = vec![
            NetworkPair { source_network: "lan".into(), target_network: "a".into() },
            NetworkPair { source_network: "lan".into(), target_network: "b".into() },
        ];
        let err = CreateReplicationRequest { network_mapping: twice, ..ok.clone() }.validate().unwrap_err();
        assert_eq!(err.0, "network_mapping[1].source_network");
        assert!(UpdateReplicationRequest::default().validate().is_ok());
        assert!(UpdateReplicationRequest { keep_points: Some(65), ..Default::default() }.validate().is_err());
        assert!(serde_json::from_str::<UpdateReplicationRequest>(r#"{"keep_points": 3, "bogus": 1}"#).is_err());
    }

    #[test]
    fn wire_words_round_trip() {
        for s in ReplicationState::ALL {
            assert_eq!(ReplicationState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for a in ReplicationAction::ALL {
            assert_eq!(serde_json::from_str::<ReplicationAction>(&format!("\"{a}\"")).unwrap(), *a);
        }
    }
}
