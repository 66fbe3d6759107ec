//! Platforms registered with the server (a KVM host by its directory, later
//! vCenters, clouds...), testing a connection, discovering a platform's VMs
//! and bringing them under management in bulk.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::{HostInfo, NetworkInfo, PlatformKind, VmInfo};
use crate::vms::VmContext;
use crate::NamedRef;

wire_enum! {
    /// How the last contact with a platform went.
    pub enum PlatformStatus {
        /// The last discovery succeeded.
        Online = "online",
        /// The last discovery failed: see `last_error`.
        Error = "error",
    }
}

/// A platform the server knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Platform {
    pub id: String,
    pub name: String,
    pub kind: PlatformKind,
    /// Where the server reaches it: a KVM host's libvirt URI.
    pub address: String,
    pub status: PlatformStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// VMs the last discovery found.
    pub discovered_vms: u64,
    /// VMs under management.
    pub managed_vms: u64,
    pub networks: Vec<NetworkInfo>,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/platforms`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddPlatformRequest {
    /// Default: the name the platform gives itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: PlatformKind,
    /// For a KVM host: its libvirt URI (`qemu:///system`,
    /// `qemu+ssh://user@host/system`, `qemu+unix:///system?socket=/path`).
    pub address: String,
}

/// `PATCH /api/v1/platforms/{id}`: a new name, or a new address (another
/// URI, user or key file for the same host); fields left out stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePlatformRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `POST /api/v1/platforms/test`: reach a platform without saving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestPlatformRequest {
    pub kind: PlatformKind,
    pub address: String,
}

/// The outcome of a connection test: `ok: false` with a message naming the problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlatformTest {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostInfo>,
    pub vm_count: u64,
    pub networks: Vec<NetworkInfo>,
    pub duration_ms: u64,
}

/// `POST /api/v1/discovery/discover-vms`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DiscoverVmsRequest {
    pub platform_id: String,
}

/// A VM the platform reports, and whether it is managed already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoveredVm {
    pub vm: VmInfo,
    pub managed: bool,
    /// The VM context, when managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_context_id: Option<String>,
    /// Its group, when managed and grouped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<NamedRef>,
}

/// What a discovery found; the platform's record and its managed VMs are
/// refreshed from it (managed VMs it no longer reports become `missing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiscoverVmsResponse {
    pub platform: Platform,
    pub vms: Vec<DiscoveredVm>,
    /// Managed VMs the platform no longer reports.
    pub missing: Vec<NamedRef>,
    /// VMs the platform has that cannot be protected, with the reason
    /// (e.g. a VM whose definition cannot be read); not in `vms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<crate::platform::RefusedVm>,
    /// The platform's storage pools (where restores put disks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_pools: Vec<crate::platform::StoragePoolInfo>,
    pub duration_ms: u64,
}

/// `POST /api/v1/discovery/bulk-add`: bring VMs under management.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkAddRequest {
    pub platform_id: String,
    /// The platform's VM ids (`DiscoveredVm.vm.id`).
    pub vm_ids: Vec<String>,
    /// Put the new VMs in this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// A VM of a bulk add that was managed already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlreadyManaged {
    pub vm_id: String,
    pub vm_context_id: String,
    pub name: String,
}

/// What a bulk add did. Adding the same VMs again adds nothing and reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkAddResponse {
    pub added: Vec<VmContext>,
    pub already_managed: Vec<AlreadyManaged>,
    /// Requested ids the platform does not report.
    pub not_found: Vec<String>,
}

/// Most VMs one bulk add takes.
pub const BULK_ADD_MAX: usize = 5000;

wire_enum! {
    /// Where a discovery is (pushed as `discovery_progress` on the WebSocket).
    pub enum DiscoveryPhase {
        Connecting = "connecting",
        /// Reading VM definitions: `done` of `total`.
        Reading = "reading",
        /// Writing what was found into the catalog.
        Applying = "applying",
        Done = "done",
        Failed = "failed",
    }
}
