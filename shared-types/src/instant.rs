//! Instant recovery: a VM booted on a host straight from a restore point,
//! its disks served from the repository (nothing copied first) under local
//! overlays that take the guest's writes; **finalize** then copies the
//! rest onto the host while the guest runs, after which the VM no longer
//! needs the repository; **discard** removes it.
//!
//! * `POST /api/v1/restore/instant` takes an [`InstantRecoveryRequest`]
//!   and answers 202 with the [`InstantRecovery`] (state `starting`); its
//!   job completes when the guest is up.
//! * `GET /api/v1/restore/instant` lists them, `GET …/{id}` shows one.
//! * `POST /api/v1/restore/instant/{id}/finalize` ([`FinalizeRequest`])
//!   starts the copy (a job with live progress).
//! * `DELETE /api/v1/restore/instant/{id}` discards it (or forgets a
//!   finalized one: the VM then stays as an ordinary VM).
//!
//! While one runs on a restore point, that point is pinned: it cannot be
//! deleted or pruned, and garbage collection keeps its data.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/restore/instant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InstantRecoveryRequest {
    /// The restore point (`GET /api/v1/backup/list`).
    pub backup_id: String,
    /// The libvirt host the VM runs on (`GET /api/v1/platforms`).
    pub target_platform_id: String,
    /// Name of the VM on the target: letters, digits, '.', '_', '-'.
    pub name: String,
    /// Source network → target network. A NIC whose network is not mapped
    /// goes to the target network of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_mapping: BTreeMap<String, String>,
    /// The target's directory storage pool for the VM's disk overlays (and,
    /// after finalize, its disks); unset: the host's default pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_pool: Option<String>,
    /// Read the restore point from this repository (one of its locations);
    /// left out: the primary when it is reachable, otherwise a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
}

/// `POST /api/v1/restore/instant/{id}/finalize`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FinalizeRequest {
    /// Cap on the copy, in MiB/s per disk (unset: as fast as it goes), so
    /// the running guest keeps its disk bandwidth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mib_s: Option<u64>,
}

/// Most a finalize may be capped to (MiB/s).
pub const FINALIZE_BANDWIDTH_MAX: u64 = 100_000;

wire_enum! {
    /// Where an instant recovery stands.
    pub enum InstantState {
        /// The VM is being defined on its overlays and booted.
        Starting = "starting",
        /// The guest runs on the restore point (pinned) and its overlays.
        Running = "running",
        /// The rest of the restore point is being copied onto the host.
        Finalizing = "finalizing",
        /// The VM stands alone on the host; the restore point is free again.
        Finalized = "finalized",
        /// The start failed (nothing was left behind) or the VM went away.
        Failed = "failed",
    }
}

impl InstantState {
    /// The states in which the VM reads from the repository.
    pub const ACTIVE: [InstantState; 3] = [InstantState::Starting, InstantState::Running, InstantState::Finalizing];

    /// The VM reads from the repository in this state.
    pub fn uses_restore_point(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

/// One instant recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstantRecovery {
    pub id: String,
    pub backup_id: String,
    /// The protected VM the restore point is of.
    pub vm_context_id: String,
    pub source_vm_name: String,
    pub target_platform_id: String,
    pub target_platform_name: String,
    /// The instant VM's name and its id on the target (once defined).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    pub state: InstantState,
    /// The restore point is pinned (cannot be deleted or pruned) by this one.
    pub pinned: bool,
    /// From the request to the guest's boot line on its console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_line: Option<String>,
    /// Finalize progress in bytes.
    pub finalize_done: u64,
    pub finalize_total: u64,
    /// The latest job of this instant recovery (start or finalize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized_at: Option<DateTime<Utc>>,
}
