//! The COMMAND overview: fleet health, platform distribution, operations,
//! throughput and storage efficiency in one answer
//! (`GET /api/v1/telemetry/overview`).
//!
//! The rule that files a managed VM under protected / attention / critical
//! lives here ([`fleet_health`]) so the server and any client agree on it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::PlatformKind;
use crate::telemetry::JobCounts;
use crate::NamedRef;

wire_enum! {
    /// How well a managed VM is protected right now.
    pub enum FleetHealth {
        /// In an enabled flow, backed up, last backup succeeded, no scheduled run missed.
        Protected = "protected",
        /// Needs a decision: not covered, never backed up, or a scheduled run was missed.
        Attention = "attention",
        /// Its last backup failed, or its platform no longer reports it.
        Critical = "critical",
    }
}

/// What the catalog knows about one managed VM, as [`fleet_health`] needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetFacts {
    /// The platform did not report the VM at the last discovery.
    pub missing: bool,
    /// The VM's most recent finished backup job failed.
    pub last_backup_failed: bool,
    pub has_restore_point: bool,
    /// Some enabled flow covers the VM (directly or through its group).
    pub in_enabled_flow: bool,
    /// A scheduled run of a covering flow came and went without a restore point.
    pub schedule_missed: bool,
}

/// Files a VM under a [`FleetHealth`], with the reason when it is not protected.
pub fn fleet_health(f: &FleetFacts) -> (FleetHealth, Option<&'static str>) {
    use FleetHealth::*;
    if f.missing {
        return (Critical, Some("its platform no longer reports it"));
    }
    if f.last_backup_failed {
        return (Critical, Some("its last backup failed"));
    }
    match (f.in_enabled_flow, f.has_restore_point) {
        (false, false) => (Attention, Some("not protected: in no enabled flow and never backed up")),
        (true, false) => (Attention, Some("in a flow but not backed up yet")),
        (false, true) => (Attention, Some("backed up, but no enabled flow keeps it protected")),
        (true, true) if f.schedule_missed => (Attention, Some("a scheduled backup was missed")),
        (true, true) => (Protected, None),
    }
}

/// Managed VMs per health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetCounts {
    pub total: u64,
    pub protected: u64,
    pub attention: u64,
    pub critical: u64,
}

/// A VM that is not protected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetIssue {
    pub vm: NamedRef,
    pub platform_name: String,
    pub health: FleetHealth,
    pub reason: String,
}

/// Managed VMs on one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlatformShare {
    pub id: String,
    pub name: String,
    pub kind: PlatformKind,
    pub vms: u64,
    pub protected: u64,
}

/// Bytes per second the engine moves now and moved at most today.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThroughputNow {
    /// Sum over running jobs of their last measured throughput.
    pub current_bps: u64,
    /// Highest per-minute throughput since midnight UTC.
    pub peak_bps_today: u64,
    /// The server's read cap per job, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_limit_bps: Option<u64>,
}

/// Storage efficiency summed over the repositories that answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageTotals {
    pub repositories: u64,
    pub unavailable: u64,
    pub in_maintenance: u64,
    /// Repositories whose storage failed the last write (full, refusing
    /// writes): `degraded` in GET /api/v1/repositories.
    #[serde(default)]
    pub degraded: u64,
    /// Sum of every restore point's disk sizes.
    pub logical_bytes: u64,
    /// Plain bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Stored (compressed, encrypted) bytes of those chunks.
    pub stored_bytes: u64,
    /// Everything on disk: packs, indexes, manifests.
    pub repository_bytes: u64,
    /// logical / unique (0 when nothing is stored).
    pub dedup_ratio: f64,
    /// unique / stored (0 when nothing is stored).
    pub compression_ratio: f64,
    /// 1 − repository / logical: the share of the protected bytes not stored.
    pub savings_ratio: f64,
}

/// Everything the COMMAND page shows, from the catalog and the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    pub generated_at: DateTime<Utc>,
    pub fleet: FleetCounts,
    /// Critical first, then attention; at most [`OVERVIEW_ISSUES_MAX`].
    pub issues: Vec<FleetIssue>,
    pub platforms: Vec<PlatformShare>,
    pub jobs: JobCounts,
    pub throughput: ThroughputNow,
    pub storage: StorageTotals,
}

/// Most issues an overview lists.
pub const OVERVIEW_ISSUES_MAX: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_rule() {
        let ok = FleetFacts { has_restore_point: true, in_enabled_flow: true, ..Default::default() };
        assert_eq!(fleet_health(&ok), (FleetHealth::Protected, None));
        assert_eq!(fleet_health(&FleetFacts { missing: true, ..ok }).0, FleetHealth::Critical);
        assert_eq!(fleet_health(&FleetFacts { last_backup_failed: true, ..ok }).0, FleetHealth::Critical);
        assert_eq!(fleet_health(&FleetFacts { schedule_missed: true, ..ok }).0, FleetHealth::Attention);
        assert_eq!(fleet_health(&FleetFacts::default()).0, FleetHealth::Attention);
        assert_eq!(fleet_health(&FleetFacts { in_enabled_flow: true, ..Default::default() }).0, FleetHealth::Attention);
        assert_eq!(fleet_health(&FleetFacts { has_restore_point: true, ..Default::default() }).0, FleetHealth::Attention);
    }
}
