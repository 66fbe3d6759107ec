//! Managed VMs (VM contexts): discovered VMs brought under management, the
//! master record that groups, flows, backups and jobs hang off.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backups::Backup;
use crate::jobs::Job;
use crate::platform::{DiskInfo, Firmware, GuestOs, NicInfo, PlatformKind, PowerState};
use crate::NamedRef;

wire_enum! {
    /// Whether the platform still reports the VM.
    pub enum VmStatus {
        /// Seen at the last discovery.
        Active = "active",
        /// Not found at the last discovery (deleted or moved on the platform).
        Missing = "missing",
    }
}

wire_enum! {
    /// Backup coverage of a VM.
    pub enum ProtectionStatus {
        /// Covered by an enabled flow and has at least one restore point.
        Protected = "protected",
        /// One of the two: covered but never backed up, or backed up but in no enabled flow.
        Partial = "partial",
        /// In no enabled flow and without restore points.
        Unprotected = "unprotected",
    }
}

/// A managed VM with its backup status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmContext {
    pub id: String,
    pub platform_id: String,
    pub platform_name: String,
    pub platform_kind: PlatformKind,
    /// The platform's id of the VM (a UUID on KVM).
    pub platform_vm_id: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub power: PowerState,
    /// When Sendense saw this power state begin (its lifecycle events, power
    /// actions, discoveries); absent when it has not seen it change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_since: Option<DateTime<Utc>>,
    pub os: GuestOs,
    pub firmware: Firmware,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Sum of the disks' virtual sizes.
    pub capacity_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<NamedRef>,
    pub status: VmStatus,
    pub protection: ProtectionStatus,
    /// Restore points of this VM.
    pub backup_count: u64,
    /// Sum of the restore points' logical sizes (each one is a full image).
    pub backup_logical_bytes: u64,
    /// Sum of the bytes the backups of this VM wrote to repositories.
    pub backup_written_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// `GET /api/v1/vm-contexts`, `GET /api/v1/vms`, `GET /api/v1/discovery/ungrouped-vms`: by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmContextPage {
    pub items: Vec<VmContext>,
    /// VMs matching the filters, over every page.
    pub total: u64,
}

/// `GET /api/v1/vms/{id}/console`: the tail of a VM's serial console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmConsole {
    /// The last lines the VM printed on its serial console, oldest first.
    pub lines: Vec<String>,
}

/// `GET /api/v1/vms/{id}`: a managed VM with its disks, NICs, the flows that
/// cover it, its newest restore points and its newest jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmDetails {
    pub vm: VmContext,
    pub disks: Vec<DiskInfo>,
    pub nics: Vec<NicInfo>,
    /// Flows covering the VM, directly or through its group.
    pub flows: Vec<NamedRef>,
    /// Up to 20, newest first.
    pub recent_backups: Vec<Backup>,
    /// Up to 20, newest first.
    pub recent_jobs: Vec<Job>,
}
