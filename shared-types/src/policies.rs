//! Policies: named protection rules (retention, immutability, an encrypted
//! repository required, a verify schedule) that backup flows and protection
//! groups follow.
//!
//! * A flow that follows a policy takes the policy's retention and
//!   immutability as its own: they are written to the flow when the policy
//!   is assigned and every time the policy changes, so the runner's retention
//!   and the next backups use them. The flow's own retention cannot be edited
//!   while it follows a policy (detach it first: `policy_id: null`).
//! * A protection group's policy is given to every backup flow whose source
//!   is the group when the group's policy is set, and to each flow created
//!   later from the group (unless the flow names another one). A flow may
//!   then follow another policy or none.
//! * `require_encryption`: flows that follow the policy must write to an
//!   encrypted repository (checked when assigned, when the flow's repository
//!   changes and when the requirement is turned on).
//! * `verify_schedule`: every repository that a flow following the policy
//!   writes to is verified on this schedule too (besides its own).
//! * `copy_target`: each new restore point of the flows that follow the
//!   policy is copied to a second repository (3-2-1), kept there by the
//!   target's own retention and immutability.
//!
//! `POST /api/v1/policies/preview` says, before anything is saved, which
//! existing restore points a candidate retention would delete from the flows
//! it would apply to, with the same selection the runner's retention uses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::flow::{CopyTarget, RetentionPolicy};
use crate::NamedRef;

/// A policy as lists show it, with where it applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub retention: RetentionPolicy,
    /// Restore points of the flows that follow the policy cannot be deleted
    /// for this many days after they are taken.
    pub immutable_days: u32,
    /// Flows that follow the policy write only to encrypted repositories.
    pub require_encryption: bool,
    /// Each new restore point is copied to this second repository (3-2-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_target: Option<CopyTarget>,
    /// A five-field cron pattern (UTC): the repositories of the flows that
    /// follow the policy are verified on it, besides their own schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_schedule: Option<String>,
    /// The verify schedule in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_schedule_description: Option<String>,
    /// What the retention keeps, in words ([`describe_retention`]).
    pub keeps: String,
    /// Flows that follow the policy, by name.
    pub flows: Vec<NamedRef>,
    /// Protection groups whose flows get the policy, by name.
    pub groups: Vec<NamedRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/policies`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreatePolicyRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub retention: RetentionPolicy,
    #[serde(default)]
    pub immutable_days: u32,
    #[serde(default)]
    pub require_encryption: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_target: Option<CopyTarget>,
    /// Left out: no verify schedule of the policy's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_schedule: Option<String>,
}

/// `PATCH /api/v1/policies/{id}`: fields left out stay as they are;
/// `verify_schedule: null` removes the policy's verify schedule and an empty
/// `description` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_encryption: Option<bool>,
    /// `null` removes the policy's copy target.
    #[serde(default, deserialize_with = "crate::flow::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<CopyTarget>))]
    pub copy_target: Option<Option<CopyTarget>>,
    #[serde(default, deserialize_with = "crate::flow::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub verify_schedule: Option<Option<String>>,
}

/// `POST /api/v1/policies/preview`: what `retention` would delete now from
/// the flows that follow `policy_id` and the flows `flow_ids` (both may be
/// given; at least one flow must result).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyPreviewRequest {
    #[serde(default)]
    pub retention: RetentionPolicy,
    /// The flows that follow this policy now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// More flows (a policy about to be assigned to them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flow_ids: Vec<String>,
}

/// One restore point in a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewPoint {
    /// The restore point's id (`GET /api/v1/backup/{id}`).
    pub backup_id: String,
    pub vm: NamedRef,
    pub created_at: DateTime<Utc>,
    /// Set on the points kept only because they are immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_until: Option<DateTime<Utc>>,
}

/// What the candidate retention does to one flow's restore points in its repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowPreview {
    pub flow: NamedRef,
    pub repository: NamedRef,
    /// The policy the flow follows now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<NamedRef>,
    /// Restore points of the flow's VMs in its repository now.
    pub total: u64,
    /// Restore points the retention keeps.
    pub kept: u64,
    /// Deleted at the flow's next retention run (after its next backup or a prune).
    pub deleted: Vec<PreviewPoint>,
    /// The retention would delete these, but they are immutable (until `immutable_until`).
    pub kept_immutable: Vec<PreviewPoint>,
    /// The retention would delete these, but a running instant recovery holds them.
    pub kept_pinned: Vec<PreviewPoint>,
}

/// `POST /api/v1/policies/preview` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyPreview {
    /// What the candidate retention keeps, in words.
    pub keeps: String,
    pub flows: Vec<FlowPreview>,
    /// Restore points deleted over all flows.
    pub deleted_total: u64,
    pub kept_immutable_total: u64,
}

/// `POST /api/v1/policies/{id}/assign-vms` (ASSETS bulk action): the
/// backup flows that protect these VMs follow the policy. A flow covers
/// every VM of its source, so the change reaches its other VMs too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignVmsRequest {
    /// VM context ids.
    pub vm_ids: Vec<String>,
    /// True: change nothing, answer what would change (and what the
    /// policy's retention would delete from those flows).
    #[serde(default)]
    pub preview: bool,
}

/// What assigning a policy to VMs did (or would do, on a preview).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignVmsReport {
    /// Each VM's outcome: done (its flows follow the policy now), unchanged
    /// (they did already) or refused (no backup flow, or a repository that
    /// is not encrypted while the policy requires it).
    pub report: crate::bulk::BulkReport,
    /// The flows that follow (or would follow) the policy because of this request.
    pub flows: Vec<NamedRef>,
    /// What the policy's retention deletes from those flows at their next retention run.
    pub preview: PolicyPreview,
    /// True when nothing was changed.
    pub preview_only: bool,
}

/// Longest policy description.
pub const POLICY_DESCRIPTION_MAX: usize = 1000;

/// Most flows one preview names.
pub const PREVIEW_FLOWS_MAX: usize = 1000;

/// What a retention keeps, in words: "every restore point", or e.g.
/// "the last 7, 14 daily, 8 weekly".
pub fn describe_retention(r: &RetentionPolicy) -> String {
    if r.keeps_everything() {
        return "every restore point".into();
    }
    let parts: Vec<String> = r
        .rules()
        .iter()
        .filter_map(|(field, n)| {
            n.map(|n| match *field {
                "keep_last" => format!("the last {n}"),
                f => format!("{n} {}", f.trim_start_matches("keep_")),
            })
        })
        .collect();
    parts.join(", ")
}

/// What a policy keeps and guards, in one line: retention, immutability, encryption.
pub fn summary(retention: &RetentionPolicy, immutable_days: u32, require_encryption: bool) -> String {
    let mut s = format!("Keeps {}", describe_retention(retention));
    if immutable_days > 0 {
        s.push_str(&format!("; immutable {immutable_days} day{}", if immutable_days == 1 { "" } else { "s" }));
    }
    if require_encryption {
        s.push_str("; encrypted repositories only");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_in_words() {
        assert_eq!(describe_retention(&RetentionPolicy::default()), "every restore point");
        let r = RetentionPolicy { keep_last: Some(7), keep_daily: Some(14), keep_yearly: Some(1), ..Default::default() };
        assert_eq!(describe_retention(&r), "the last 7, 14 daily, 1 yearly");
        assert_eq!(summary(&r, 1, true), "Keeps the last 7, 14 daily, 1 yearly; immutable 1 day; encrypted repositories only");
    }

    #[test]
    fn verify_schedule_null_differs_from_absent() {
        let absent: UpdatePolicyRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.verify_schedule, None);
        let cleared: UpdatePolicyRequest = serde_json::from_str(r#"{"verify_schedule": null}"#).unwrap();
        assert_eq!(cleared.verify_schedule, Some(None));
        assert!(serde_json::from_str::<CreatePolicyRequest>(r#"{"name":"a","copy_to":"x"}"#).is_err());
    }
}
