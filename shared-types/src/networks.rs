//! Network mapping for failover: which network of the target platform each
//! network of the source platform becomes when a VM fails over, per flow or
//! as the default for a platform pair, for live failover or for a test.
//!
//! * `GET/POST /api/v1/network-mappings`, `DELETE /api/v1/network-mappings/{id}`:
//!   one [`NetworkMapping`] at a time ([`CreateNetworkMappingRequest`]).
//! * `POST /api/v1/networks/bulk-mapping`: a [`BulkMappingRequest`], all or
//!   nothing, replacing mappings of the same key ([`BulkMappingResult`]).
//! * `GET /api/v1/networks/recommendations`: [`Recommendations`] from the rule
//!   [`recommend`], which lives here so the cockpit shows the same reasoning.
//! * `POST /api/v1/networks/validate`: a [`ValidateRequest`] answered with a
//!   [`ValidationReport`]: every NIC of every VM, where it lands, and what
//!   stops a failover.
//! * `GET /api/v1/networks/topology`: [`Topology`], platforms with their
//!   networks and the mappings between them.
//!
//! The rules:
//! * A mapping with a `flow_id` applies to that flow only and overrides the
//!   default (no `flow_id`) of the same platform pair, purpose and source
//!   network. Nothing falls back to a network of the same name: a failover
//!   uses only what was mapped, so every NIC must be mapped.
//! * [`MappingPurpose::admits`]: a test failover uses only isolated networks
//!   (no uplink, the test VM never meets production); a live failover never
//!   uses one (the VM would be unreachable).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::platform::{NetworkInfo, PlatformKind};
use crate::recovery::CompatibilityNote;
use crate::NamedRef;

/// Longest network name.
pub const NETWORK_NAME_MAX: usize = 255;

/// Most mappings one bulk request sets.
pub const BULK_MAX: usize = 1000;

/// Most VMs one validation checks.
pub const VALIDATE_VMS_MAX: usize = 5000;

wire_enum! {
    /// What a mapping is for; `failover` when a request leaves it out.
    #[derive(Default)]
    pub enum MappingPurpose {
        /// Live failover: production moves to the target's networks.
        #[default]
        Failover = "failover",
        /// Test failover: a copy runs beside production, on isolated networks only.
        Test = "test",
    }
}

impl MappingPurpose {
    /// Whether `target` may receive NICs for this purpose; the message says
    /// why not and what to do instead.
    pub fn admits(self, target: &NetworkInfo) -> Result<(), String> {
        match (self, target.isolated) {
            (MappingPurpose::Test, false) => Err(format!(
                "'{}' is not an isolated network: a test failover uses only isolated networks (no uplink), so the test VM never meets production; choose an isolated network of the target",
                target.name
            )),
            (MappingPurpose::Failover, true) => Err(format!(
                "'{}' is an isolated network (no uplink): a failed-over VM there would be unreachable; isolated networks are for test failovers (purpose 'test')",
                target.name
            )),
            _ => Ok(()),
        }
    }
}

/// Why a NIC has no network on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplaced {
    /// Nothing maps its network (and no same-named network was allowed or found).
    Unmapped,
    /// Its network is mapped to this name, which the target does not have.
    Missing(String),
    /// Its network would be this one of the target, which is not started.
    Inactive(String),
}

/// The target network a NIC on `source_network` joins: the `mapped` one,
/// which must exist among `target`'s networks; unmapped, the target's
/// network of the same name only when `same_name_fallback` (a full VM
/// restore allows it; a failover does not: every NIC must be mapped).
pub fn place_nic<'t>(source_network: &str, mapped: Option<&str>, same_name_fallback: bool, target: &'t [NetworkInfo]) -> Result<&'t NetworkInfo, Unplaced> {
    let find = |name: &str| target.iter().find(|n| n.name == name);
    let found = match mapped {
        Some(to) => find(to).ok_or_else(|| Unplaced::Missing(to.to_owned())),
        None if same_name_fallback => find(source_network).ok_or(Unplaced::Unmapped),
        None => Err(Unplaced::Unmapped),
    }?;
    if found.inactive {
        return Err(Unplaced::Inactive(found.name.clone()));
    }
    Ok(found)
}

/// Checks a network name given in a request: not blank, at most
/// [`NETWORK_NAME_MAX`] characters, no control characters.
pub fn validate_network_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("Name the network.".into());
    }
    if name.chars().count() > NETWORK_NAME_MAX {
        return Err(format!("A network name has at most {NETWORK_NAME_MAX} characters."));
    }
    if name.chars().any(char::is_control) {
        return Err("A network name must not contain control characters.".into());
    }
    Ok(())
}

/// A stored mapping: `source_network` of the source platform becomes
/// `target_network` of the target platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkMapping {
    pub id: String,
    pub source_platform_id: String,
    pub source_network: String,
    pub target_platform_id: String,
    pub target_network: String,
    pub purpose: MappingPurpose,
    /// The flow this mapping belongs to; none: the default of the platform
    /// pair, which a flow's own mapping overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// `POST /api/v1/network-mappings`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkMappingRequest {
    pub source_platform_id: String,
    pub source_network: String,
    pub target_platform_id: String,
    pub target_network: String,
    /// Default `failover`.
    #[serde(default)]
    pub purpose: MappingPurpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
}

impl CreateNetworkMappingRequest {
    /// `Err((field, message))` for a malformed network name.
    pub fn validate(&self) -> Result<(), (String, String)> {
        validate_network_name(&self.source_network).map_err(|m| ("source_network".to_string(), m))?;
        validate_network_name(&self.target_network).map_err(|m| ("target_network".to_string(), m))
    }
}

/// One source network and the target network it becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NetworkPair {
    pub source_network: String,
    pub target_network: String,
}

/// `POST /api/v1/networks/bulk-mapping`: many mappings of one platform
/// pair, flow and purpose at once. All are checked before any is written;
/// each replaces the mapping of the same source network, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkMappingRequest {
    pub source_platform_id: String,
    pub target_platform_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    pub mappings: Vec<NetworkPair>,
    /// Default `failover`.
    #[serde(default)]
    pub purpose: MappingPurpose,
}

impl BulkMappingRequest {
    /// `Err((field, message))`: no mappings, too many, a malformed name, or
    /// a source network given twice.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.mappings.is_empty() {
            return Err(("mappings".into(), "Give at least one mapping.".into()));
        }
        if self.mappings.len() > BULK_MAX {
            return Err(("mappings".into(), format!("Give at most {BULK_MAX} mappings per request.")));
        }
        validate_pairs("mappings", &self.mappings)
    }
}

/// Checks pairs given in a request (`field[i]` names the bad one): a
/// malformed name, or a source network given twice.
pub fn validate_pairs(field: &str, pairs: &[NetworkPair]) -> Result<(), (String, String)> {
    for (i, m) in pairs.iter().enumerate() {
        validate_network_name(&m.source_network).map_err(|e| (format!("{field}[{i}].source_network"), e))?;
        validate_network_name(&m.target_network).map_err(|e| (format!("{field}[{i}].target_network"), e))?;
        if pairs[..i].iter().any(|o| o.source_network == m.source_network) {
            return Err((
                format!("{field}[{i}].source_network"),
                format!("'{}' is mapped twice; a source network becomes one target network.", m.source_network),
            ));
        }
    }
    Ok(())
}

/// `POST /api/v1/networks/bulk-mapping`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkMappingResult {
    /// The mappings as stored, in the order of the request.
    pub mappings: Vec<NetworkMapping>,
    /// Mappings that did not exist before.
    pub created: u32,
    /// Mappings that replaced one of the same key.
    pub replaced: u32,
}

/// A suggested target for one source network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendation {
    pub source_network: String,
    pub target_network: String,
    /// Confidence, 0 to 100.
    pub score: u8,
    /// Why, strongest first, in words a person reads.
    pub reasons: Vec<String>,
}

/// `GET /api/v1/networks/recommendations`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendations {
    pub source_platform: NamedRef,
    pub target_platform: NamedRef,
    pub purpose: MappingPurpose,
    /// The best target for each source network that has one, in the
    /// source platform's order.
    pub recommendations: Vec<Recommendation>,
    /// Source networks no target network suits: map them by hand.
    pub unmatched: Vec<String>,
}

/// `POST /api/v1/networks/validate`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// Managed VMs (VM context ids).
    pub vm_ids: Vec<String>,
    pub target_platform_id: String,
    /// Check with this flow's mappings over the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// Default `failover`.
    #[serde(default)]
    pub purpose: MappingPurpose,
}

wire_enum! {
    /// Which mapping placed a NIC.
    pub enum MappingScope {
        /// The flow's own mapping.
        Flow = "flow",
        /// The default of the platform pair.
        Default = "default",
    }
}

/// Where one NIC lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NicValidation {
    /// Position of the NIC in the VM (0 for the first).
    pub index: u32,
    pub mac: String,
    pub source_network: String,
    /// The mapped target network; none: unmapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_network: Option<String>,
    /// Which mapping applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<MappingScope>,
    /// What is wrong (blockers) or worth knowing.
    pub issues: Vec<CompatibilityNote>,
}

/// One VM's NICs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VmValidation {
    pub vm_id: String,
    pub vm_name: String,
    pub source_platform: NamedRef,
    /// No blocker on this VM or any of its NICs.
    pub ok: bool,
    pub nics: Vec<NicValidation>,
    /// Findings about the VM as a whole.
    pub issues: Vec<CompatibilityNote>,
}

/// `POST /api/v1/networks/validate`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidationReport {
    /// No blocker anywhere: the failover's networks are ready.
    pub ok: bool,
    pub target_platform: NamedRef,
    pub purpose: MappingPurpose,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    /// Blockers over every VM and NIC.
    pub blockers: u32,
    pub vms: Vec<VmValidation>,
}

/// A network in the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopologyNetwork {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    pub isolated: bool,
    /// Managed VMs with at least one NIC on it.
    pub vm_count: u64,
}

/// A platform and its networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopologyPlatform {
    pub id: String,
    pub name: String,
    pub kind: PlatformKind,
    /// As the platform's last discovery reported them.
    pub networks: Vec<TopologyNetwork>,
}

/// `GET /api/v1/networks/topology`: every platform's networks and every
/// mapping between them (the edges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Topology {
    pub platforms: Vec<TopologyPlatform>,
    pub edges: Vec<NetworkMapping>,
}

/// Words that say which site a network belongs to rather than what it is:
/// dropped from either end of a name before names are compared.
const SITE_WORDS: &[&str] = &["dr", "prod", "production", "primary", "secondary", "standby", "recovery", "site", "net", "network"];

/// A network name reduced to what it says about the network: lower case,
/// `_`, `.` and spaces as `-`, site words (`dr-`, `prod-`, `-net` ...)
/// dropped from either end. `"DR_LAN"`, `"prod-lan"` and `"lan-net"` all
/// become `"lan"`.
pub fn normalise_name(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    while words.len() > 1 && SITE_WORDS.contains(&words[0]) {
        words.remove(0);
    }
    while words.len() > 1 && SITE_WORDS.contains(&words[words.len() - 1]) {
        words.pop();
    }
    words.join("-")
}

/// Normalised names that share most of their words, or one contains the
/// other (`"lan"` and `"corp-lan"`).
fn similar_names(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if (a.len() >= 3 && b.contains(a)) || (b.len() >= 3 && a.contains(b)) {
        return true;
    }
    let wa: Vec<&str> = a.split('-').collect();
    let wb: Vec<&str> = b.split('-').collect();
    let common = wa.iter().filter(|w| w.len() >= 2 && wb.contains(w)).count();
    let union = wa.len() + wb.len() - common;
    common > 0 && common * 2 >= union
}

/// An IPv4 network `a.b.c.d/p`.
fn parse_v4(cidr: &str) -> Option<([u8; 4], u8)> {
    let (addr, prefix) = cidr.trim().split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mut octets = [0u8; 4];
    let mut parts = addr.split('.');
    for o in &mut octets {
        *o = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some((octets, prefix))
}

/// The last non-zero octet of the network part, which tells subnets of one
/// addressing plan apart (`10.20.0.0/24` → 20).
fn identity_octet(octets: [u8; 4], prefix: u8) -> Option<u8> {
    let n = usize::from(prefix).div_ceil(8);
    octets[..n].iter().rev().copied().find(|o| *o != 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CidrMatch {
    Same,
    Pattern,
}

/// Same subnet, or subnets of one pattern: the same prefix length and the
/// same last octet digits (`10.10.0.0/24` and `10.110.0.0/24`,
/// `192.168.10.0/24` and `172.16.10.0/24`).
fn cidr_match(a: &str, b: &str) -> Option<CidrMatch> {
    if a.trim() == b.trim() {
        return Some(CidrMatch::Same);
    }
    let ((oa, pa), (ob, pb)) = (parse_v4(a)?, parse_v4(b)?);
    if pa != pb {
        return None;
    }
    let (ia, ib) = (identity_octet(oa, pa)?.to_string(), identity_octet(ob, pb)?.to_string());
    let (short, long) = if ia.len() <= ib.len() { (&ia, &ib) } else { (&ib, &ia) };
    (ia == ib || (short.len() >= 2 && long.ends_with(short.as_str()))).then_some(CidrMatch::Pattern)
}

/// Scores of the signals: the strongest present sets the base, the others
/// add a little, never enough to lift a pair above a stronger signal.
mod points {
    pub const SAME_NAME: i32 = 91;
    pub const SAME_VLAN: i32 = 70;
    pub const NORMALISED_NAME: i32 = 50;
    pub const SIMILAR_NAME: i32 = 35;
    pub const CIDR: i32 = 20;
    /// A test failover's isolated network without any other signal.
    pub const ONLY_ISOLATED: i32 = 60;
    pub const SOME_ISOLATED: i32 = 15;

    pub const PLUS_VLAN: i32 = 6;
    pub const PLUS_NORMALISED_NAME: i32 = 4;
    pub const PLUS_SIMILAR_NAME: i32 = 2;
    pub const PLUS_CIDR: i32 = 3;
    pub const MINUS_OTHER_VLAN: i32 = 10;
}

/// How well `target` suits `source`, with the reasons; none when nothing
/// speaks for it (or the purpose does not admit it).
fn score(source: &NetworkInfo, target: &NetworkInfo, purpose: MappingPurpose, isolated_targets: usize) -> Option<Recommendation> {
    purpose.admits(target).ok()?;
    let mut reasons = Vec::new();
    let mut base: Option<i32> = None;
    let mut bonus = 0;
    let mut signal = |base_points: i32, bonus_points: i32, reason: String, base: &mut Option<i32>, reasons: &mut Vec<String>| {
        if base.is_none() {
            *base = Some(base_points);
        } else {
            bonus += bonus_points;
        }
        reasons.push(reason);
    };
    let same_name = source.name == target.name;
    if same_name {
        signal(points::SAME_NAME, 0, format!("same name '{}'", target.name), &mut base, &mut reasons);
    }
    match (source.vlan, target.vlan) {
        (Some(a), Some(b)) if a == b => signal(points::SAME_VLAN, points::PLUS_VLAN, format!("same VLAN {a}"), &mut base, &mut reasons),
        _ => {}
    }
    if !same_name {
        let (na, nb) = (normalise_name(&source.name), normalise_name(&target.name));
        if !na.is_empty() && na == nb {
            let reason = format!("names match once site prefixes and separators are set aside ('{}' and '{}' are both '{na}')", source.name, target.name);
            signal(points::NORMALISED_NAME, points::PLUS_NORMALISED_NAME, reason, &mut base, &mut reasons);
        } else if similar_names(&na, &nb) {
            signal(points::SIMILAR_NAME, points::PLUS_SIMILAR_NAME, format!("similar names ('{}' and '{}')", source.name, target.name), &mut base, &mut reasons);
        }
    }
    if let (Some(a), Some(b)) = (source.cidr.as_deref(), target.cidr.as_deref()) {
        match cidr_match(a, b) {
            Some(CidrMatch::Same) => signal(points::CIDR, points::PLUS_CIDR, format!("same subnet {b}: guests keep their addresses"), &mut base, &mut reasons),
            Some(CidrMatch::Pattern) => {
                signal(points::CIDR, points::PLUS_CIDR, format!("subnets follow one addressing pattern ({a} and {b})"), &mut base, &mut reasons)
            }
            None => {}
        }
    }
    if purpose == MappingPurpose::Test {
        let (points, reason) = if isolated_targets == 1 {
            (points::ONLY_ISOLATED, "the target's only isolated network (no uplink): the test VM cannot reach production")
        } else {
            (points::SOME_ISOLATED, "an isolated network (no uplink): the test VM cannot reach production")
        };
        if base.is_none() {
            base = Some(points);
        }
        reasons.push(reason.to_string());
    } else if let (Some(a), Some(b)) = (source.vlan, target.vlan) {
        // In a test the isolated network's VLAN is another by design.
        if a != b && base.is_some() {
            bonus -= points::MINUS_OTHER_VLAN;
            reasons.push(format!("but the VLANs differ ({a} on the source, {b} on the target)"));
        }
    }
    let score = (base? + bonus).clamp(1, 100);
    Some(Recommendation {
        source_network: source.name.clone(),
        target_network: target.name.clone(),
        score: u8::try_from(score).unwrap_or(100),
        reasons,
    })
}

/// The best target network for each source network, in the source's order;
/// source networks nothing suits are left out.
///
/// Signals, strongest first: the same name; the same VLAN; the same name
/// once case, separators and site words (`dr-`, `prod-`, `-net`) are set
/// aside; similar names; subnets of one pattern (the same subnet, or the
/// same prefix length ending in the same octet digits, `10.10.0.0/24` and
/// `10.110.0.0/24`). The strongest signal present sets the score, the
/// others add a little; different VLANs take some off. A failover is never
/// recommended an isolated network; a test only isolated ones. Ties go to
/// the target listed first.
pub fn recommend(source: &[NetworkInfo], target: &[NetworkInfo], purpose: MappingPurpose) -> Vec<Recommendation> {
    let isolated = target.iter().filter(|t| t.isolated).count();
    source
        .iter()
        .filter_map(|s| {
            target.iter().filter_map(|t| score(s, t, purpose, isolated)).fold(None, |best: Option<Recommendation>, r| match best {
                Some(b) if b.score >= r.score => Some(b),
                _ => Some(r),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, vlan: Option<u16>, cidr: Option<&str>) -> NetworkInfo {
        NetworkInfo { name: name.into(), bridge: None, cidr: cidr.map(Into::into), vlan, isolated: false, inactive: false }
    }

    fn isolated(name: &str) -> NetworkInfo {
        NetworkInfo { isolated: true, ..net(name, None, None) }
    }

    fn best<'a>(r: &'a [Recommendation], source: &str) -> Option<&'a Recommendation> {
        r.iter().find(|r| r.source_network == source)
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise_name("DR_LAN"), "lan");
        assert_eq!(normalise_name("prod-lan"), "lan");
        assert_eq!(normalise_name("lan-net"), "lan");
        assert_eq!(normalise_name("Prod.Web DMZ"), "web-dmz");
        // A site word alone stays: there is nothing else to compare.
        assert_eq!(normalise_name("prod"), "prod");
        assert_eq!(normalise_name("dr-prod"), "prod");
        assert!(similar_names("lan", "corp-lan"));
        assert!(similar_names("web-dmz", "dmz-web"));
        assert!(!similar_names("lan", "dmz"));
        assert!(!similar_names("a", "b-a-c-d"));
    }

    #[test]
    fn subnets_match_by_their_last_octet_digits() {
        assert_eq!(cidr_match("10.10.0.0/24", "10.10.0.0/24"), Some(CidrMatch::Same));
        assert_eq!(cidr_match("10.10.0.0/24", "10.110.0.0/24"), Some(CidrMatch::Pattern));
        assert_eq!(cidr_match("192.168.10.0/24", "172.16.10.0/24"), Some(CidrMatch::Pattern));
        assert_eq!(cidr_match("10.10.0.0/24", "10.120.0.0/24"), None);
        assert_eq!(cidr_match("10.10.0.0/24", "10.110.0.0/16"), None);
        // One digit is too little to call a pattern: 1 and 21 are not related.
        assert_eq!(cidr_match("10.1.0.0/24", "10.21.0.0/24"), None);
        assert_eq!(cidr_match("fd00::/64", "not a subnet"), None);
    }

    #[test]
    fn the_same_name_beats_the_same_vlan_beats_a_normalised_name_beats_a_subnet_pattern() {
        let source = [net("lan", Some(10), Some("10.10.0.0/24"))];
        let candidates = [
            net("dr-lan", None, None),                        // normalised name
            net("backbone", None, Some("10.110.0.0/24")),    // subnet pattern
            net("vlan10", Some(10), None),                    // same VLAN
            net("lan", None, None),                           // same name
        ];
        let r = recommend(&source, &candidates, MappingPurpose::Failover);
        assert_eq!(r[0].target_network, "lan", "{r:?}");
        assert_eq!(r[0].reasons, ["same name 'lan'"]);
        let mut scores = Vec::new();
        for c in &candidates {
            let r = recommend(&source, std::slice::from_ref(c), MappingPurpose::Failover);
            scores.push((c.name.clone(), r[0].score));
        }
        let by = |n: &str| scores.iter().find(|(name, _)| name == n).unwrap().1;
        assert!(by("lan") > by("vlan10") && by("vlan10") > by("dr-lan") && by("dr-lan") > by("backbone"), "{scores:?}");
        // Supporting signals never lift a weaker base over a stronger one.
        let strong_vlan = net("core", Some(10), Some("10.110.0.0/24"));
        let weak_name = net("lan", Some(99), None);
        let r = recommend(&source, &[strong_vlan, weak_name], MappingPurpose::Failover);
        assert_eq!(r[0].target_network, "lan", "{r:?}");
        assert!(r[0].reasons.iter().any(|m| m.contains("VLANs differ (10 on the source, 99 on the target)")), "{r:?}");
    }

    #[test]
    fn the_lab_maps_prod_to_dr_by_name_vlan_and_subnet() {
        let prod = [net("lan", Some(10), Some("10.10.0.0/24")), net("dmz", Some(20), Some("10.20.0.0/24")), net("storage", Some(30), Some("10.30.0.0/24"))];
        let dr = [
            net("lan", Some(10), Some("10.110.0.0/24")),
            net("dmz", Some(20), Some("10.120.0.0/24")),
            net("storage", Some(30), Some("10.130.0.0/24")),
            isolated("isolated"),
        ];
        let r = recommend(&prod, &dr, MappingPurpose::Failover);
        let pairs: Vec<(&str, &str, u8)> = r.iter().map(|r| (r.source_network.as_str(), r.target_network.as_str(), r.score)).collect();
        assert_eq!(pairs, [("lan", "lan", 100), ("dmz", "dmz", 100), ("storage", "storage", 100)]);
        assert_eq!(
            best(&r, "dmz").unwrap().reasons,
            ["same name 'dmz'", "same VLAN 20", "subnets follow one addressing pattern (10.20.0.0/24 and 10.120.0.0/24)"]
        );
        let t = recommend(&prod, &dr, MappingPurpose::Test);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|r| r.target_network == "isolated" && r.score == 60), "{t:?}");
        assert!(t[0].reasons[0].contains("only isolated network"), "{t:?}");
    }

    #[test]
    fn isolated_networks_are_for_tests_only() {
        let source = [net("lan", None, None)];
        // The same name, but isolated: never a failover target.
        let r = recommend(&source, &[isolated("lan")], MappingPurpose::Failover);
        assert!(r.is_empty(), "{r:?}");
        // A test never gets a production network, even of the same name.
        let r = recommend(&source, &[net("lan", None, None), isolated("sandbox"), isolated("lan-isolated")], MappingPurpose::Test);
        assert_eq!(r[0].target_network, "lan-isolated", "{r:?}");
        assert!(r[0].reasons.iter().any(|m| m.starts_with("similar names")), "{r:?}");
        let r = recommend(&source, &[net("lan", None, None)], MappingPurpose::Test);
        assert!(r.is_empty(), "{r:?}");
        assert!(MappingPurpose::Test.admits(&net("lan", None, None)).unwrap_err().contains("not an isolated network"));
        assert!(MappingPurpose::Failover.admits(&isolated("x")).unwrap_err().contains("unreachable"));
        assert!(MappingPurpose::Test.admits(&isolated("x")).is_ok() && MappingPurpose::Failover.admits(&net("x", None, None)).is_ok());
    }

    #[test]
    fn unrelated_networks_get_no_recommendation() {
        let r = recommend(&[net("lan", Some(10), Some("10.10.0.0/24"))], &[net("dmz", Some(20), Some("10.120.0.0/24"))], MappingPurpose::Failover);
        assert!(r.is_empty(), "{r:?}");
        assert!(recommend(&[], &[net("lan", None, None)], MappingPurpose::Failover).is_empty());
    }

    #[test]
    fn nics_land_on_their_mapped_network_and_on_the_same_name_only_when_allowed() {
        let target = [net("lan", None, None), net("dr-dmz", None, None)];
        assert_eq!(place_nic("dmz", Some("dr-dmz"), false, &target).unwrap().name, "dr-dmz");
        assert_eq!(place_nic("dmz", Some("gone"), true, &target), Err(Unplaced::Missing("gone".into())));
        assert_eq!(place_nic("lan", None, true, &target).unwrap().name, "lan");
        assert_eq!(place_nic("lan", None, false, &target), Err(Unplaced::Unmapped));
        assert_eq!(place_nic("dmz", None, true, &target), Err(Unplaced::Unmapped));
        let stopped = vec![NetworkInfo { inactive: true, ..net("dr-dmz", None, None) }];
        assert_eq!(place_nic("dmz", Some("dr-dmz"), false, &stopped), Err(Unplaced::Inactive("dr-dmz".into())), "a network that is not started takes no NIC");
    }

    #[test]
    fn bulk_requests_are_checked() {
        let pair = |s: &str, t: &str| NetworkPair { source_network: s.into(), target_network: t.into() };
        let mut req = BulkMappingRequest {
            source_platform_id: "p".into(),
            target_platform_id: "q".into(),
            flow_id: None,
            mappings: vec![pair("lan", "lan"), pair("dmz", "dmz")],
            purpose: MappingPurpose::Failover,
        };
        assert!(req.validate().is_ok());
        req.mappings.push(pair("lan", "dmz"));
        assert_eq!(req.validate().unwrap_err().0, "mappings[2].source_network");
        req.mappings = vec![pair("lan", " ")];
        assert_eq!(req.validate().unwrap_err().0, "mappings[0].target_network");
        req.mappings.clear();
        assert!(req.validate().unwrap_err().1.contains("at least one"));
        let r: BulkMappingRequest = serde_json::from_str(r#"{"source_platform_id":"p","target_platform_id":"q","mappings":[]}"#).unwrap();
        assert_eq!((r.purpose, r.flow_id), (MappingPurpose::Failover, None));
        assert!(serde_json::from_str::<BulkMappingRequest>(r#"{"source_platform_id":"p","target_platform_id":"q","mappings":[],"purpose":"live"}"#).is_err());
    }
}
