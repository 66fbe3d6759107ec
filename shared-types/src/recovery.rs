//! Full VM restore ("recovery"): a restore point written back as a new VM
//! on a target platform, in the disk format that platform wants, after a
//! compatibility check; and the license tiers that decide which restores a
//! server allows.
//!
//! * `POST /api/v1/restore/check` takes a [`RestoreVmRequest`] and answers a
//!   [`CompatibilityReport`]: notes (info, warning, blocker), the format that
//!   will be written, the space needed and free, and a time estimate from
//!   earlier jobs' measured throughput.
//! * `POST /api/v1/restore/start` takes the same body and queues a restore
//!   job (202 with the job); it refuses (409) while the check has a blocker.
//! * `GET /api/v1/license/features` answers [`LicenseFeatures`].
//!
//! The licence rule ([`required_feature`], [`LicenseTier::allows`]) lives
//! here so the cockpit disables exactly what the server refuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::{DiskFormat, PlatformKind};

/// Longest name of a restored VM.
pub const VM_NAME_MAX: usize = 64;

/// `POST /api/v1/restore/check` and `POST /api/v1/restore/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreVmRequest {
    /// The restore point (`GET /api/v1/backup/list`).
    pub backup_id: String,
    /// The platform the VM is created on (`GET /api/v1/platforms`).
    pub target_platform_id: String,
    /// Name of the VM on the target: letters, digits, '.', '_', '-'.
    pub name: String,
    /// Replace a VM of that name on the target (needs `confirm_overwrite`).
    #[serde(default)]
    pub overwrite: bool,
    /// The VM's name typed again, to confirm replacing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_overwrite: Option<String>,
    /// Disk format on the target; unset: the target platform's native one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<DiskFormat>,
    /// Source network → target network. A NIC whose network is not mapped
    /// goes to the target network of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub network_mapping: BTreeMap<String, String>,
    /// Start the VM once restored.
    #[serde(default)]
    pub power_on: bool,
    /// The target's storage pool the disks go to (an active one of the
    /// check's `storage_pools`); unset: the host's pool `default`, else its first active pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_pool: Option<String>,
    /// Read the restore point from this repository (one of its locations);
    /// left out: the primary when it is reachable, otherwise a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
}

impl RestoreVmRequest {
    /// Whether `name` can name a VM (the rule KVM hosts apply).
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= VM_NAME_MAX
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    }
}

wire_enum! {
    /// How much a compatibility note matters.
    pub enum NoteSeverity {
        Info = "info",
        Warning = "warning",
        /// The restore cannot start until this is resolved.
        Blocker = "blocker",
    }
}

/// One finding of the compatibility check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompatibilityNote {
    pub severity: NoteSeverity,
    pub message: String,
}

/// `POST /api/v1/restore/check`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompatibilityReport {
    /// No blocker: `restore/start` would queue the job.
    pub ok: bool,
    /// The disk format the restore writes.
    pub target_format: DiskFormat,
    pub notes: Vec<CompatibilityNote>,
    /// From the measured throughput of earlier restore (else backup) jobs;
    /// unset when there is no history yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds: Option<u64>,
    /// Bytes of data the restore writes on the target (the restore point's
    /// allocated data, holes excluded).
    pub required_bytes: u64,
    /// Bytes free on the target's storage (the chosen pool's, where the
    /// platform has pools).
    pub free_bytes: u64,
    /// The target's storage pools (libvirt hosts), to choose from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage_pools: Vec<crate::platform::StoragePoolInfo>,
    /// Each NIC of the VM: the network it joins on the target with this
    /// request, and the one proposed for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicPlacement>,
    /// The target's started networks, which NICs may join.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_networks: Vec<crate::platform::NetworkInfo>,
    /// The repository the restore reads the restore point from (3-2-1: a
    /// copy when the primary cannot be read or when one is asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_from: Option<ReadFrom>,
}

/// Where a restore reads its restore point from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadFrom {
    pub repository: crate::NamedRef,
    /// The primary (where the backup wrote it) or a copy.
    pub role: crate::backups::LocationRole,
    /// Why not the primary, when a copy is read without being asked for
    /// (the primary could not be read: the error met there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Where one NIC of the restored VM goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NicPlacement {
    pub mac: String,
    pub model: String,
    /// Its network on the source.
    pub source_network: String,
    /// The target network it joins with this request (`network_mapping`,
    /// else the network of the same name); none: it has none (a blocker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_network: Option<String>,
    /// The target network proposed for it, as on the Networks page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<NetworkSuggestion>,
}

/// A proposed target network and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkSuggestion {
    pub network: String,
    pub reason: SuggestionReason,
    /// The recommendation's confidence, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
}

wire_enum! {
    /// Where a proposed target network comes from, strongest first.
    pub enum SuggestionReason {
        /// The mapping saved for the platform pair (Networks page, failover).
        SavedMapping = "saved_mapping",
        /// The recommendation rule (`shared_types::networks::recommend`).
        Recommended = "recommended",
        /// The target has a network of the same name.
        SameName = "same_name",
    }
}

impl SuggestionReason {
    pub fn label(self) -> &'static str {
        match self {
            SuggestionReason::SavedMapping => "saved mapping",
            SuggestionReason::Recommended => "recommended",
            SuggestionReason::SameName => "same name",
        }
    }
}

impl CompatibilityReport {
    pub fn blockers(&self) -> impl Iterator<Item = &CompatibilityNote> {
        self.notes.iter().filter(|n| n.severity == NoteSeverity::Blocker)
    }
}

wire_enum! {
    /// The server's licence tier (`--license-tier`).
    pub enum LicenseTier {
        /// Same-platform and file-level restore.
        Standard = "standard",
        /// Everything, including cross-platform restore and replication.
        Enterprise = "enterprise",
    }
}

wire_enum! {
    /// A feature a licence tier may or may not include.
    pub enum LicenseFeature {
        /// Restore to the source's platform family in its format (qcow2 or raw on KVM).
        SamePlatformRestore = "same_platform_restore",
        FileLevelRestore = "file_level_restore",
        /// Restore into another platform's format (vmdk, vhdx, vpc) or onto another platform kind.
        CrossPlatformRestore = "cross_platform_restore",
        Replication = "replication",
    }
}

impl LicenseTier {
    /// Whether this tier includes `feature`.
    pub fn allows(self, feature: LicenseFeature) -> bool {
        match self {
            LicenseTier::Enterprise => true,
            LicenseTier::Standard => matches!(feature, LicenseFeature::SamePlatformRestore | LicenseFeature::FileLevelRestore),
        }
    }

    /// The lowest tier that includes `feature`.
    pub fn needed_for(feature: LicenseFeature) -> LicenseTier {
        if LicenseTier::Standard.allows(feature) {
            LicenseTier::Standard
        } else {
            LicenseTier::Enterprise
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            LicenseTier::Standard => "Standard",
            LicenseTier::Enterprise => "Enterprise",
        }
    }
}

/// Whether a disk format belongs to a platform family: qcow2 and raw to
/// KVM-like platforms (KVM, CloudStack, Nutanix, and raw for AWS), vmdk to
/// VMware, vhdx to Hyper-V, vpc (VHD) to Azure.
pub fn format_family(format: DiskFormat) -> &'static [PlatformKind] {
    match format {
        DiskFormat::Qcow2 => &[PlatformKind::Kvm, PlatformKind::Cloudstack, PlatformKind::Nutanix],
        DiskFormat::Raw => &[PlatformKind::Kvm, PlatformKind::Cloudstack, PlatformKind::Nutanix, PlatformKind::Aws],
        DiskFormat::Vmdk => &[PlatformKind::Vmware],
        DiskFormat::Vhdx => &[PlatformKind::Hyperv],
        DiskFormat::Vpc => &[PlatformKind::Azure],
    }
}

/// The feature a full VM restore needs: same-platform when the target is
/// the source's platform kind and the format is of that family (qcow2 or
/// raw from KVM to KVM); cross-platform otherwise (a vmdk, vhdx or vpc
/// image, or another platform kind).
pub fn required_feature(source: PlatformKind, target: PlatformKind, format: DiskFormat) -> LicenseFeature {
    if source == target && format_family(format).contains(&source) {
        LicenseFeature::SamePlatformRestore
    } else {
        LicenseFeature::CrossPlatformRestore
    }
}

/// One feature and whether this server's tier includes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureStatus {
    pub feature: LicenseFeature,
    pub enabled: bool,
    /// Why it is disabled (the tier it needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/license/features`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseFeatures {
    pub tier: LicenseTier,
    pub features: Vec<FeatureStatus>,
}

impl LicenseFeatures {
    /// Every feature as `tier` sees it.
    pub fn for_tier(tier: LicenseTier) -> LicenseFeatures {
        let features = LicenseFeature::ALL
            .iter()
            .map(|&feature| {
                let enabled = tier.allows(feature);
                let reason = (!enabled).then(|| {
                    format!("needs the {} licence tier (this server runs {})", LicenseTier::needed_for(feature).label(), tier.label())
                });
                FeatureStatus { feature, enabled, reason }
            })
            .collect();
        LicenseFeatures { tier, features }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_formats_are_same_platform_and_the_others_cross_platform() {
        use DiskFormat::*;
        for f in [Qcow2, Raw] {
            assert_eq!(required_feature(PlatformKind::Kvm, PlatformKind::Kvm, f), LicenseFeature::SamePlatformRestore);
        }
        for f in [Vmdk, Vhdx, Vpc] {
            assert_eq!(required_feature(PlatformKind::Kvm, PlatformKind::Kvm, f), LicenseFeature::CrossPlatformRestore);
        }
        assert_eq!(required_feature(PlatformKind::Kvm, PlatformKind::Vmware, Vmdk), LicenseFeature::CrossPlatformRestore);
        assert_eq!(required_feature(PlatformKind::Vmware, PlatformKind::Vmware, Vmdk), LicenseFeature::SamePlatformRestore);
    }

    #[test]
    fn standard_lacks_cross_platform_and_says_which_tier_has_it() {
        let f = LicenseFeatures::for_tier(LicenseTier::Standard);
        let cross = f.features.iter().find(|s| s.feature == LicenseFeature::CrossPlatformRestore).unwrap();
        assert!(!cross.enabled);
        assert!(cross.reason.as_deref().unwrap().contains("Enterprise"));
        assert!(LicenseFeatures::for_tier(LicenseTier::Enterprise).features.iter().all(|s| s.enabled && s.reason.is_none()));
    }

    #[test]
    fn names_follow_the_host_rule() {
        assert!(RestoreVmRequest::valid_name("web-01-restored"));
        for bad in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(VM_NAME_MAX + 1)] {
            assert!(!RestoreVmRequest::valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_request_takes_defaults() {
        let r: RestoreVmRequest = serde_json::from_str(r#"{"backup_id":"b","target_platform_id":"p","name":"n"}"#).unwrap();
        assert!(!r.overwrite && !r.power_on && r.disk_format.is_none() && r.network_mapping.is_empty());
    }
}
