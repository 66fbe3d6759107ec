//! Bulk actions on a selection of managed VMs (ASSETS): each VM gets its own
//! outcome, so a refusal for one VM never hides behind the others' success.

use serde::{Deserialize, Serialize};

use crate::NamedRef;

/// Most VMs one bulk request names.
pub const BULK_VMS_MAX: usize = 1000;

/// `POST /api/v1/vm-contexts/bulk/backup-now`: the VMs to back up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkVmsRequest {
    /// VM context ids.
    pub vm_ids: Vec<String>,
}

/// `POST /api/v1/vm-contexts/bulk/add-to-group`: the VMs and the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkGroupRequest {
    /// VM context ids.
    pub vm_ids: Vec<String>,
    /// The protection group (id) they join.
    pub group_id: String,
}

wire_enum! {
    /// How a bulk action went for one VM.
    pub enum BulkOutcome {
        /// Done: queued, added.
        Done = "done",
        /// Nothing to do: it was so already (in the group already).
        Unchanged = "unchanged",
        /// Not done; the message says why and what to do.
        Refused = "refused",
    }
}

/// One VM's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkVmResult {
    pub vm_id: String,
    /// Empty when no managed VM has the id.
    pub vm_name: String,
    pub outcome: BulkOutcome,
    /// What happened, in words a person can act on.
    pub message: String,
    /// The job queued for it (back up now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The flow the job runs for (back up now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<NamedRef>,
}

/// The answer of a bulk action: one result per VM, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkReport {
    pub items: Vec<BulkVmResult>,
    pub done: u64,
    pub unchanged: u64,
    pub refused: u64,
}

impl BulkReport {
    /// Counts the outcomes of `items`.
    pub fn new(items: Vec<BulkVmResult>) -> BulkReport {
        let count = |o: BulkOutcome| items.iter().filter(|i| i.outcome == o).count() as u64;
        BulkReport { done: count(BulkOutcome::Done), unchanged: count(BulkOutcome::Unchanged), refused: count(BulkOutcome::Refused), items }
    }
}
