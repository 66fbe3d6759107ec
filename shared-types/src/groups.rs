//! Protection groups: named sets of managed VMs that share flows. A VM is in
//! at most one group.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::vms::VmContext;
use crate::NamedRef;

/// A group as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProtectionGroup {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub vm_count: u64,
    /// Flows whose source is this group.
    pub flow_count: u64,
    /// The policy the group's flows get ([`crate::policies`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<NamedRef>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/v1/protection-groups/{id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupDetails {
    pub group: ProtectionGroup,
    pub vms: Vec<VmContext>,
    pub flows: Vec<NamedRef>,
}

/// `POST /api/v1/protection-groups`: a group, optionally with its first VMs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// VM context ids; each must be ungrouped.
    #[serde(default)]
    pub vm_ids: Vec<String>,
}

/// `PATCH /api/v1/protection-groups/{id}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An empty string clears the description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Absent: unchanged; `null`: the group gives no policy to its flows
    /// (they keep following the one they have); an id: every backup flow of
    /// the group follows that policy from now on, and flows created later
    /// from the group too.
    #[serde(default, deserialize_with = "crate::flow::present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub policy_id: Option<Option<String>>,
}

/// `POST /api/v1/protection-groups/{id}/vms`: VM context ids to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupVmsRequest {
    pub vm_ids: Vec<String>,
}

/// Longest group description.
pub const DESCRIPTION_MAX: usize = 1000;
