//! Flows: standing protection relationships (a backup flow takes VMs or a
//! protection group to a repository on a schedule, with retention), their
//! states, and the one rule that says which actions each state allows.
//!
//! The cockpit shows the buttons [`allowed_actions`] returns; the server
//! refuses any other action with the message [`refusal`] builds, so the two
//! can never disagree.
//!
//! ```text
//!            backup_now            job starts              job ends ok
//!   idle ─────────────▶ queued ──────────▶ running ──────────────────▶ healthy
//!    ▲                    │ stop             │  ▲ pause/resume          (warning, failed
//!    │ enable             ▼                  ▼  │                        by outcome)
//! disabled ◀── disable  (last state)       paused ── stop ──▶ (last state)
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::jobs::Job;
use crate::NamedRef;
use crate::vms::VmContext;

wire_enum! {
    /// What a flow does.
    pub enum FlowKind {
        /// VMs → a repository, on a schedule, with retention. (Replication
        /// flows have their own model: [`crate::replication`].)
        Backup = "backup",
    }
}

wire_enum! {
    /// Where a backup flow stands.
    pub enum FlowState {
        /// Never ran, or ran and nothing is known yet.
        Idle = "idle",
        /// A run waits for a slot.
        Queued = "queued",
        /// A run is moving data.
        Running = "running",
        /// A run is paused at a chunk boundary.
        Paused = "paused",
        /// The last run succeeded.
        Healthy = "healthy",
        /// The last run finished, but not for every VM, or with warnings.
        Warning = "warning",
        /// The last run failed.
        Failed = "failed",
        /// The schedule is off; nothing runs until the flow is enabled.
        Disabled = "disabled",
    }
}

wire_enum! {
    /// What a person can ask of a flow.
    pub enum FlowAction {
        BackupNow = "backup_now",
        Pause = "pause",
        Resume = "resume",
        Stop = "stop",
        Edit = "edit",
        Delete = "delete",
        Enable = "enable",
        Disable = "disable",
    }
}

impl FlowState {
    /// A run is queued, running or paused.
    pub fn is_active(self) -> bool {
        matches!(self, FlowState::Queued | FlowState::Running | FlowState::Paused)
    }

    /// Words for a person.
    pub fn label(self) -> &'static str {
        match self {
            FlowState::Idle => "Idle",
            FlowState::Queued => "Queued",
            FlowState::Running => "Running",
            FlowState::Paused => "Paused",
            FlowState::Healthy => "Healthy",
            FlowState::Warning => "Warning",
            FlowState::Failed => "Failed",
            FlowState::Disabled => "Disabled",
        }
    }
}

impl FlowAction {
    /// Words for a person, as on the button.
    pub fn label(self) -> &'static str {
        match self {
            FlowAction::BackupNow => "Backup now",
            FlowAction::Pause => "Pause",
            FlowAction::Resume => "Resume",
            FlowAction::Stop => "Stop",
            FlowAction::Edit => "Edit",
            FlowAction::Delete => "Delete",
            FlowAction::Enable => "Enable",
            FlowAction::Disable => "Disable",
        }
    }
}

/// The actions a flow of `kind` offers in `state`, in the order the cockpit
/// shows them. The server enforces exactly this list.
pub fn allowed_actions(kind: FlowKind, state: FlowState) -> Vec<FlowAction> {
    use FlowAction::*;
    use FlowState::*;
    match (kind, state) {
        (_, Queued) => vec![Stop],
        (_, Running) => vec![Pause, Stop],
        (_, Paused) => vec![Resume, Stop],
        (_, Disabled) => vec![Enable, Edit, Delete],
        (FlowKind::Backup, Idle | Healthy | Warning | Failed) => vec![BackupNow, Edit, Disable, Delete],
    }
}

/// `None` when `action` is allowed; otherwise why not and what is allowed
/// now, in a sentence a person can act on.
pub fn refusal(flow_name: &str, kind: FlowKind, state: FlowState, action: FlowAction) -> Option<String> {
    let allowed = allowed_actions(kind, state);
    if allowed.contains(&action) {
        return None;
    }
    let hint = match (action, state) {
        (FlowAction::Edit | FlowAction::Delete | FlowAction::Disable, s) if s.is_active() => {
            " Stop the run first, or wait for it to finish.".to_string()
        }
        (FlowAction::BackupNow, FlowState::Disabled) => " Enable the flow first.".to_string(),
        _ => String::new(),
    };
    let now = if allowed.is_empty() {
        "nothing".to_string()
    } else {
        allowed.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
    };
    Some(format!(
        "The {kind} flow '{flow_name}' is {}: '{action}' is not possible now (possible: {now}).{hint}",
        state.label().to_lowercase()
    ))
}

/// Retention: how many restore points to keep per VM. Each rule keeps the
/// newest restore point of each of its N most recent periods that an earlier
/// rule has not kept (as Proxmox Backup Server does). No rule: keep all.
/// Restore points inside their immutability window are never removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
}

/// Largest count any one retention rule takes.
pub const RETENTION_MAX: u32 = 10_000;

/// Longest immutability window, in days (ten years).
pub const IMMUTABLE_DAYS_MAX: u32 = 3650;

impl RetentionPolicy {
    /// The rules as (field name, count).
    pub fn rules(&self) -> [(&'static str, Option<u32>); 6] {
        [
            ("keep_last", self.keep_last),
            ("keep_hourly", self.keep_hourly),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
            ("keep_yearly", self.keep_yearly),
        ]
    }

    /// No rule: every restore point is kept.
    pub fn keeps_everything(&self) -> bool {
        self.rules().iter().all(|(_, n)| n.is_none())
    }

    /// Checks the counts; `Err((field, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (field, n) in self.rules() {
            match n {
                Some(0) => {
                    return Err((
                        format!("retention.{field}"),
                        "Keep at least 1, or leave the rule out.".into(),
                    ))
                }
                Some(n) if n > RETENTION_MAX => {
                    return Err((format!("retention.{field}"), format!("Keep at most {RETENTION_MAX}.")))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What a flow protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FlowSource {
    /// Every VM of a protection group, as the group changes.
    Group { group_id: String },
    /// These managed VMs (VM context ids).
    Vms { vm_ids: Vec<String> },
}

/// 3-2-1: where each new restore point of a flow is copied, with the
/// copies' own retention and immutability (`repository_id` must not be the
/// flow's own repository). Retention at the target applies to copies only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CopyTarget {
    /// The second repository (`GET /api/v1/repositories` lists them).
    pub repository_id: String,
    /// What the target keeps of the copies (empty: every copy).
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// Copies cannot be deleted at the target for this many days after they are taken.
    #[serde(default)]
    pub immutable_days: u32,
}

/// `POST /api/v1/flows`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateFlowRequest {
    pub name: String,
    /// `backup` (replication flows: `POST /api/v1/replication`).
    pub kind: FlowKind,
    pub source: FlowSource,
    /// Where the backups go.
    pub repository_id: String,
    /// A five-field cron pattern (`minute hour day-of-month month day-of-week`,
    /// e.g. `0 2 * * *`, or `@daily`), in UTC. Left out: the flow runs only
    /// when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// Restore points cannot be deleted for this many days after they are taken.
    #[serde(default)]
    pub immutable_days: u32,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The policy the flow follows ([`crate::policies`]): its retention and
    /// immutability replace `retention` and `immutable_days`. Left out with a
    /// group source: the group's policy, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// Copy each new restore point to a second repository (taken from the
    /// policy when the flow follows one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_target: Option<CopyTarget>,
}

/// `PATCH /api/v1/flows/{id}`: fields left out stay as they are; `schedule: null` clears the schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateFlowRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<FlowSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
    /// Absent: unchanged; `null`: no schedule (manual runs only); a string: the new pattern.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub schedule: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_days: Option<u32>,
    /// Absent: unchanged; `null`: the flow follows no policy (it keeps the
    /// policy's values as its own); an id: the flow follows that policy.
    /// `retention` and `immutable_days` cannot be changed while the flow follows a policy.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub policy_id: Option<Option<String>>,
    /// `null` removes the flow's copy target (not while it follows a policy).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CopyTarget>))]
    pub copy_target: Option<Option<CopyTarget>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A flow as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Flow {
    pub id: String,
    pub name: String,
    pub kind: FlowKind,
    pub source: FlowSource,
    /// The group, when the source is a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<NamedRef>,
    /// How many VMs the flow covers now.
    pub vm_count: u64,
    pub repository: NamedRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule in words (`At 02:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_description: Option<String>,
    /// When the schedule fires next (none when disabled or unscheduled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<DateTime<Utc>>,
    pub retention: RetentionPolicy,
    pub immutable_days: u32,
    /// Where each new restore point is copied (3-2-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_target: Option<CopyTarget>,
    /// The policy the flow follows; its retention and immutability are the flow's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<NamedRef>,
    pub enabled: bool,
    pub state: FlowState,
    /// What the cockpit may offer now ([`allowed_actions`]).
    pub allowed_actions: Vec<FlowAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/flows/{id}`: the flow, its machines, its active jobs and recent runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowDetails {
    pub flow: Flow,
    pub vms: Vec<VmContext>,
    /// Queued, running or paused jobs of this flow.
    pub active_jobs: Vec<Job>,
    /// The most recent finished jobs, newest first.
    pub recent_jobs: Vec<Job>,
}

/// A flow with a run in progress and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveFlow {
    pub flow: Flow,
    pub jobs: Vec<Job>,
}

/// `GET /api/v1/flows/active`: what is queued, running or paused now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveFlows {
    pub flows: Vec<ActiveFlow>,
    /// Active jobs started outside any flow (Backup Now on a VM).
    pub adhoc_jobs: Vec<Job>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_offers_something_and_delete_only_when_idle_like() {
        for kind in FlowKind::ALL {
            for state in FlowState::ALL {
                let actions = allowed_actions(*kind, *state);
                assert!(!actions.is_empty(), "{kind} {state} offers nothing");
                if state.is_active() {
                    assert!(actions.contains(&FlowAction::Stop), "{kind} {state}");
                    assert!(!actions.contains(&FlowAction::Delete) && !actions.contains(&FlowAction::Edit));
                }
                // No duplicate buttons.
                let mut seen = actions.clone();
                seen.dedup();
                assert_eq!(seen.len(), actions.len());
            }
        }
    }

    #[test]
    fn backup_flow_rules() {
        use FlowAction::*;
        let b = |s| allowed_actions(FlowKind::Backup, s);
        assert_eq!(b(FlowState::Idle), vec![BackupNow, Edit, Disable, Delete]);
        assert_eq!(b(FlowState::Healthy), vec![BackupNow, Edit, Disable, Delete]);
        assert_eq!(b(FlowState::Failed), vec![BackupNow, Edit, Disable, Delete]);
        assert_eq!(b(FlowState::Queued), vec![Stop]);
        assert_eq!(b(FlowState::Running), vec![Pause, Stop]);
        assert_eq!(b(FlowState::Paused), vec![Resume, Stop]);
        assert_eq!(b(FlowState::Disabled), vec![Enable, Edit, Delete]);
    }

    #[test]
    fn refusals_say_why_and_what_is_possible() {
        assert_eq!(refusal("nightly", FlowKind::Backup, FlowState::Idle, FlowAction::Delete), None);
        let msg = refusal("nightly", FlowKind::Backup, FlowState::Running, FlowAction::Delete).unwrap();
        assert!(msg.contains("'nightly' is running") && msg.contains("pause, stop") && msg.contains("Stop the run"), "{msg}");
        let msg = refusal("nightly", FlowKind::Backup, FlowState::Disabled, FlowAction::BackupNow).unwrap();
        assert!(msg.contains("Enable the flow first"), "{msg}");
        let msg = refusal("nightly", FlowKind::Backup, FlowState::Healthy, FlowAction::Enable).unwrap();
        assert!(msg.contains("possible: backup_now, edit, disable, delete"), "{msg}");
    }

    #[test]
    fn wire_words_round_trip() {
        for s in FlowState::ALL {
            assert_eq!(FlowState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for a in FlowAction::ALL {
            assert_eq!(serde_json::from_str::<FlowAction>(&format!("\"{a}\"")).unwrap(), *a);
        }
        assert_eq!(FlowState::parse("bogus"), None);
    }

    #[test]
    fn retention_is_validated() {
        assert!(RetentionPolicy::default().keeps_everything());
        let ok = RetentionPolicy { keep_last: Some(7), keep_daily: Some(14), ..Default::default() };
        assert!(ok.validate().is_ok() && !ok.keeps_everything());
        let zero = RetentionPolicy { keep_weekly: Some(0), ..Default::default() };
        assert_eq!(zero.validate().unwrap_err().0, "retention.keep_weekly");
        let big = RetentionPolicy { keep_yearly: Some(RETENTION_MAX + 1), ..Default::default() };
        assert!(big.validate().is_err());
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"keep_lots": 3}"#).is_err());
    }

    #[test]
    fn sources_are_tagged_and_schedule_null_differs_from_absent() {
        let s: FlowSource = serde_json::from_str(r#"{"type":"group","group_id":"g1"}"#).unwrap();
        assert_eq!(s, FlowSource::Group { group_id: "g1".into() });
        let s: FlowSource = serde_json::from_str(r#"{"type":"vms","vm_ids":["a","b"]}"#).unwrap();
        assert_eq!(s, FlowSource::Vms { vm_ids: vec!["a".into(), "b".into()] });
        let absent: UpdateFlowRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.schedule, None);
        let cleared: UpdateFlowRequest = serde_json::from_str(r#"{"schedule": null}"#).unwrap();
        assert_eq!(cleared.schedule, Some(None));
        let set: UpdateFlowRequest = serde_json::from_str(r#"{"schedule": "@daily"}"#).unwrap();
        assert_eq!(set.schedule, Some(Some("@daily".into())));
    }
}
