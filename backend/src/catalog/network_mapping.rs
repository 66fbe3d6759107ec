//! Network mapping for failover: where each NIC of a VM lands on a target
//! platform, checked before any failover.
//!
//! A mapping turns a network of a source platform into a network of a target
//! platform for one purpose (live failover or test). A mapping with a flow id
//! belongs to that flow and overrides the default of the platform pair (no
//! flow id) for the same source network. Nothing falls back to a network of
//! the same name: a failover uses what was mapped, so every NIC must be.
//!
//! [`check_vm`] is the one rule, pure: per NIC the mapping that applies, the
//! target network it names (which must exist on the target, as its last
//! discovery reported it) and whether the purpose admits that network
//! ([`MappingPurpose::admits`]: tests only on isolated networks, failovers
//! never). [`validate`] answers `POST /api/v1/networks/validate` with it;
//! [`resolve`] is what the failover code calls, failing with every NIC
//! that has no usable mapping named.

use std::collections::{BTreeMap, HashMap};

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::networks::{
    place_nic, recommend, MappingPurpose, MappingScope, NetworkMapping, NicValidation, Recommendation, Topology, TopologyNetwork, TopologyPlatform,
    Unplaced, ValidationReport, VmValidation,
};
use shared_types::platform::{NetworkInfo, PlatformKind};
use shared_types::recovery::{CompatibilityNote, NoteSeverity};
use shared_types::vms::VmStatus;
use shared_types::NamedRef;

use super::{convert, from_wire, to_u64};
use crate::db::entities::{flows, network_mappings, networks, platforms, replication_flows, vm_contexts, vm_nics};

/// Rows per `IN` list.
const BATCH: usize = 500;

/// Why NICs cannot be placed on the target.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("no managed VM has the id {0}")]
    VmNotFound(String),
    #[error("no platform has the id '{0}'")]
    PlatformNotFound(String),
    #[error("no flow has the id '{0}'")]
    FlowNotFound(String),
    /// Every NIC without a usable mapping, each named in `problems`.
    #[error("the networks of VM '{vm}' cannot be placed on '{target}': {}", problems.join("; "))]
    Unusable { vm: String, target: String, problems: Vec<String> },
    #[error("catalog query failed: {0}")]
    Db(#[from] DbErr),
}

/// One NIC and the network it joins on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedNic {
    /// Position of the NIC in the VM (0 for the first).
    pub index: u32,
    pub mac: String,
    pub source_network: String,
    pub target_network: String,
    /// Whether the flow's own mapping or the platform pair's default applied.
    pub scope: MappingScope,
}

/// A stored mapping as the API shows it.
pub fn to_api(m: network_mappings::Model) -> NetworkMapping {
    NetworkMapping {
        purpose: MappingPurpose::parse(&m.purpose).unwrap_or_default(),
        id: m.id,
        source_platform_id: m.source_platform_id,
        source_network: m.source_network,
        target_platform_id: m.target_platform_id,
        target_network: m.target_network,
        flow_id: m.flow_id,
        created_at: m.created_at,
        created_by: m.created_by,
    }
}

/// A platform's networks as its last discovery reported them, in its order.
pub async fn networks_of(db: &impl ConnectionTrait, platform_id: &str) -> Result<Vec<NetworkInfo>, DbErr> {
    Ok(networks::Entity::find()
        .filter(networks::Column::PlatformId.eq(platform_id.to_owned()))
        .order_by_asc(networks::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(convert::network)
        .collect())
}

pub async fn platform(db: &impl ConnectionTrait, id: &str) -> Result<platforms::Model, MappingError> {
    platforms::Entity::find_by_id(id.to_owned()).one(db).await?.ok_or_else(|| MappingError::PlatformNotFound(id.to_owned()))
}

/// Whether a flow of that id exists. Mappings name flows without a foreign
/// key; this is the one place that says what a flow id may be.
pub async fn flow_exists(db: &impl ConnectionTrait, flow_id: &str) -> Result<bool, DbErr> {
    Ok(flows::Entity::find_by_id(flow_id.to_owned()).count(db).await? > 0
        || replication_flows::Entity::find_by_id(flow_id.to_owned()).count(db).await? > 0)
}

/// Removes a deleted flow's own mappings; the defaults stay.
pub async fn forget_flow(db: &impl ConnectionTrait, flow_id: &str) -> Result<u64, DbErr> {
    Ok(network_mappings::Entity::delete_many().filter(network_mappings::Column::FlowId.eq(flow_id.to_owned())).exec(db).await?.rows_affected)
}

/// Source network → (target network, scope) for one platform pair and
/// purpose: the defaults, with the flow's own mappings over them.
pub async fn effective(
    db: &impl ConnectionTrait,
    source_platform_id: &str,
    target_platform_id: &str,
    flow_id: Option<&str>,
    purpose: MappingPurpose,
) -> Result<HashMap<String, (String, MappingScope)>, DbErr> {
    let mut q = network_mappings::Entity::find()
        .filter(network_mappings::Column::SourcePlatformId.eq(source_platform_id.to_owned()))
        .filter(network_mappings::Column::TargetPlatformId.eq(target_platform_id.to_owned()))
        .filter(network_mappings::Column::Purpose.eq(purpose.as_str()));
    q = match flow_id {
        Some(f) => q.filter(network_mappings::Column::FlowId.is_null().or(network_mappings::Column::FlowId.eq(f.to_owned()))),
        None => q.filter(network_mappings::Column::FlowId.is_null()),
    };
    let mut out = HashMap::new();
    let rows = q.all(db).await?;
    // Defaults first, then the flow's own over them.
    for m in rows.iter().filter(|m| m.flow_id.is_none()).chain(rows.iter().filter(|m| m.flow_id.is_some())) {
        let scope = if m.flow_id.is_some() { MappingScope::Flow } else { MappingScope::Default };
        out.insert(m.source_network.clone(), (m.target_network.clone(), scope));
    }
    Ok(out)
}

fn note(severity: NoteSeverity, message: String) -> CompatibilityNote {
    CompatibilityNote { severity, message }
}

fn names(networks: &[NetworkInfo]) -> String {
    if networks.is_empty() {
        "none recorded: rediscover it".into()
    } else {
        networks.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// What [`check_vm`] judges one VM against.
pub struct VmFacts<'a> {
    pub vm: &'a vm_contexts::Model,
    /// Its NICs in their order.
    pub nics: &'a [vm_nics::Model],
    pub source: &'a platforms::Model,
    pub source_networks: &'a [NetworkInfo],
    pub target: &'a platforms::Model,
    pub target_networks: &'a [NetworkInfo],
    /// From [`effective`].
    pub mapping: &'a HashMap<String, (String, MappingScope)>,
    pub purpose: MappingPurpose,
    /// Suggested targets of the source networks, quoted for unmapped NICs.
    pub recommendations: &'a [Recommendation],
}

/// Where each NIC of a VM lands and what stops it: an unmapped network, a
/// target network the target does not have, or one the purpose does not
/// admit are blockers; other findings are warnings or information.
pub fn check_vm(f: &VmFacts<'_>) -> VmValidation {
    let (vm, src, tgt) = (f.vm.name.as_str(), f.source.name.as_str(), f.target.name.as_str());
    let purpose = match f.purpose {
        MappingPurpose::Failover => "failover",
        MappingPurpose::Test => "test failover",
    };
    let mut issues = Vec::new();
    if f.vm.status == VmStatus::Missing.as_str() {
        issues.push(note(
            NoteSeverity::Warning,
            format!("VM '{vm}' was not found at the last discovery of '{src}': its NICs are as last seen; rediscover '{src}'"),
        ));
    }
    if f.nics.is_empty() {
        issues.push(note(NoteSeverity::Info, format!("VM '{vm}' has no NIC: there is no network to map")));
    }
    let mut nics = Vec::new();
    for (i, nic) in f.nics.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let who = format!("NIC {} ({}) of '{vm}'", i + 1, nic.mac);
        let net = nic.network.as_str();
        let mut nic_issues = Vec::new();
        let source_net = f.source_networks.iter().find(|n| n.name == net);
        if source_net.is_none() {
            nic_issues.push(note(
                NoteSeverity::Warning,
                format!("{who} is on '{net}', which '{src}' no longer reports (its networks: {}); rediscover '{src}'", names(f.source_networks)),
            ));
        }
        let mapped = f.mapping.get(net);
        match place_nic(net, mapped.map(|(to, _)| to.as_str()), false, f.target_networks) {
            Err(Unplaced::Unmapped) => {
                let hint = match f.recommendations.iter().find(|r| r.source_network == net) {
                    Some(r) => format!("; recommended: '{}' ({})", r.target_network, r.reasons.join(", ")),
                    None => format!(" (its networks: {})", names(f.target_networks)),
                };
                nic_issues.push(note(
                    NoteSeverity::Blocker,
                    format!("{who} is on '{net}', which has no {purpose} mapping from '{src}' to '{tgt}': map '{net}' to a network of '{tgt}'{hint}"),
                ));
            }
            Err(Unplaced::Missing(to)) => nic_issues.push(note(
                NoteSeverity::Blocker,
                format!(
                    "{who} is on '{net}', mapped to '{to}', which '{tgt}' does not have (its networks: {}): map '{net}' again or rediscover '{tgt}'",
                    names(f.target_networks)
                ),
            )),
            Err(Unplaced::Inactive(to)) => nic_issues.push(note(
                NoteSeverity::Blocker,
                format!("{who} is on '{net}', mapped to '{to}', which is not started on '{tgt}': start it there (virsh net-start {to}) or map '{net}' to another network"),
            )),
            Ok(target_net) => {
                let to = &target_net.name;
                match f.purpose.admits(target_net) {
                    Err(why) => nic_issues.push(note(NoteSeverity::Blocker, format!("{who} is on '{net}', mapped to '{to}': {why}"))),
                    Ok(()) => {
                        if let (Some(s), MappingPurpose::Failover) = (source_net, f.purpose) {
                            if let (Some(a), Some(b)) = (s.vlan, target_net.vlan) {
                                if a != b {
                                    nic_issues.push(note(
                                        NoteSeverity::Warning,
                                        format!("{who}: '{net}' is on VLAN {a}, '{to}' on VLAN {b}: check the guest's addressing and firewall rules there"),
                                    ));
                                }
                            }
                            if let (Some(a), Some(b)) = (s.cidr.as_deref(), target_net.cidr.as_deref()) {
                                if a != b {
                                    nic_issues.push(note(
                                        NoteSeverity::Info,
                                        format!("{who}: the subnet changes from {a} to {b}: the guest needs an address there (DHCP or re-addressing)"),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        nics.push(NicValidation {
            index,
            mac: nic.mac.clone(),
            source_network: nic.network.clone(),
            target_network: mapped.map(|(to, _)| to.clone()),
            scope: mapped.map(|(_, scope)| *scope),
            issues: nic_issues,
        });
    }
    let blocked = |notes: &[CompatibilityNote]| notes.iter().any(|n| n.severity == NoteSeverity::Blocker);
    let ok = !blocked(&issues) && !nics.iter().any(|n| blocked(&n.issues));
    VmValidation {
        vm_id: f.vm.id.clone(),
        vm_name: f.vm.name.clone(),
        source_platform: NamedRef { id: f.source.id.clone(), name: f.source.name.clone() },
        ok,
        nics,
        issues,
    }
}

/// Checks the networks of `vm_ids` (managed VMs, each on its own platform)
/// against `target_platform_id` for `purpose`, with the flow's mappings
/// over the defaults. Unknown VMs, platform or flow are errors; everything
/// else is in the report.
pub async fn validate(
    db: &impl ConnectionTrait,
    vm_ids: &[String],
    target_platform_id: &str,
    flow_id: Option<&str>,
    purpose: MappingPurpose,
) -> Result<ValidationReport, MappingError> {
    let target = platform(db, target_platform_id).await?;
    if let Some(f) = flow_id {
        if !flow_exists(db, f).await? {
            return Err(MappingError::FlowNotFound(f.to_owned()));
        }
    }
    let mut vms = Vec::with_capacity(vm_ids.len());
    for batch in vm_ids.chunks(BATCH) {
        vms.extend(vm_contexts::Entity::find().filter(vm_contexts::Column::Id.is_in(batch.to_vec())).all(db).await?);
    }
    let unknown: Vec<String> = vm_ids.iter().filter(|id| !vms.iter().any(|v| &v.id == *id)).map(|id| format!("'{id}'")).collect();
    if !unknown.is_empty() {
        return Err(MappingError::VmNotFound(unknown.join(", ")));
    }
    // Keep the request's order.
    vms.sort_by_key(|v| vm_ids.iter().position(|id| id == &v.id));
    let mut nics: HashMap<String, Vec<vm_nics::Model>> = HashMap::new();
    for batch in vm_ids.chunks(BATCH) {
        for n in vm_nics::Entity::find()
            .filter(vm_nics::Column::VmContextId.is_in(batch.to_vec()))
            .order_by_asc(vm_nics::Column::Id)
            .all(db)
            .await?
        {
            nics.entry(n.vm_context_id.clone()).or_default().push(n);
        }
    }
    let target_networks = networks_of(db, &target.id).await?;
    struct Source {
        platform: platforms::Model,
        networks: Vec<NetworkInfo>,
        mapping: HashMap<String, (String, MappingScope)>,
        recommendations: Vec<Recommendation>,
    }
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut report = Vec::with_capacity(vms.len());
    for vm in &vms {
        if !sources.contains_key(&vm.platform_id) {
            let platform = platform(db, &vm.platform_id).await?;
            let networks = networks_of(db, &platform.id).await?;
            let mapping = effective(db, &platform.id, &target.id, flow_id, purpose).await?;
            let recommendations = recommend(&networks, &target_networks, purpose);
            sources.insert(vm.platform_id.clone(), Source { platform, networks, mapping, recommendations });
        }
        let s = &sources[&vm.platform_id];
        report.push(check_vm(&VmFacts {
            vm,
            nics: nics.get(&vm.id).map(Vec::as_slice).unwrap_or(&[]),
            source: &s.platform,
            source_networks: &s.networks,
            target: &target,
            target_networks: &target_networks,
            mapping: &s.mapping,
            purpose,
            recommendations: &s.recommendations,
        }));
    }
    let count = |notes: &[CompatibilityNote]| notes.iter().filter(|n| n.severity == NoteSeverity::Blocker).count();
    let blockers: usize = report.iter().map(|v| count(&v.issues) + v.nics.iter().map(|n| count(&n.issues)).sum::<usize>()).sum();
    Ok(ValidationReport {
        ok: blockers == 0,
        target_platform: NamedRef { id: target.id.clone(), name: target.name.clone() },
        purpose,
        flow_id: flow_id.map(str::to_owned),
        blockers: u32::try_from(blockers).unwrap_or(u32::MAX),
        vms: report,
    })
}

/// Where every NIC of a managed VM lands on the target for `purpose`, with
/// the flow's mappings over the defaults; the failover code's entry point.
/// Fails naming every NIC that has no usable mapping (unmapped, mapped to a
/// network the target lacks, or to one the purpose does not admit).
pub async fn resolve(
    db: &impl ConnectionTrait,
    vm_id: &str,
    target_platform_id: &str,
    flow_id: Option<&str>,
    purpose: MappingPurpose,
) -> Result<Vec<ResolvedNic>, MappingError> {
    let report = validate(db, &[vm_id.to_owned()], target_platform_id, flow_id, purpose).await?;
    let vm = report.vms.into_iter().next().ok_or_else(|| MappingError::VmNotFound(format!("'{vm_id}'")))?;
    let problems: Vec<String> = vm
        .issues
        .iter()
        .chain(vm.nics.iter().flat_map(|n| n.issues.iter()))
        .filter(|n| n.severity == NoteSeverity::Blocker)
        .map(|n| n.message.clone())
        .collect();
    if !problems.is_empty() {
        return Err(MappingError::Unusable { vm: vm.vm_name, target: report.target_platform.name, problems });
    }
    Ok(vm
        .nics
        .into_iter()
        .filter_map(|n| {
            Some(ResolvedNic { index: n.index, mac: n.mac, source_network: n.source_network, target_network: n.target_network?, scope: n.scope? })
        })
        .collect())
}

/// Every platform with its networks (managed VMs with a NIC on each) and
/// every mapping between them.
pub async fn topology(db: &impl ConnectionTrait) -> Result<Topology, DbErr> {
    let platforms = platforms::Entity::find().order_by_asc(platforms::Column::Name).all(db).await?;
    let mut by_platform: HashMap<String, Vec<networks::Model>> = HashMap::new();
    for n in networks::Entity::find().order_by_asc(networks::Column::Id).all(db).await? {
        by_platform.entry(n.platform_id.clone()).or_default().push(n);
    }
    // Managed VMs per (platform, network name), each VM once however many NICs it has there.
    let counts: HashMap<(String, String), i64> = vm_nics::Entity::find()
        .select_only()
        .column(vm_contexts::Column::PlatformId)
        .column(vm_nics::Column::Network)
        .column_as(Expr::col((vm_nics::Entity, vm_nics::Column::VmContextId)).count_distinct(), "n")
        .join(
            sea_orm::JoinType::InnerJoin,
            vm_nics::Entity::belongs_to(vm_contexts::Entity).from(vm_nics::Column::VmContextId).to(vm_contexts::Column::Id).into(),
        )
        .group_by(vm_contexts::Column::PlatformId)
        .group_by(vm_nics::Column::Network)
        .into_tuple::<(String, String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(p, n, c)| ((p, n), c))
        .collect();
    let platforms = platforms
        .into_iter()
        .map(|p| {
            let networks = by_platform
                .remove(&p.id)
                .unwrap_or_default()
                .into_iter()
                .map(|n| TopologyNetwork {
                    vm_count: counts.get(&(p.id.clone(), n.name.clone())).copied().map(to_u64).unwrap_or(0),
                    name: n.name,
                    bridge: n.bridge,
                    cidr: n.cidr,
                    vlan: n.vlan.and_then(|v| u16::try_from(v).ok()),
                    isolated: n.isolated,
                })
                .collect();
            TopologyPlatform { kind: from_wire(&p.kind).unwrap_or(PlatformKind::Kvm), id: p.id, name: p.name, networks }
        })
        .collect();
    let edges = network_mappings::Entity::find()
        .order_by_asc(network_mappings::Column::SourcePlatformId)
        .order_by_asc(network_mappings::Column::SourceNetwork)
        .order_by_asc(network_mappings::Column::Purpose)
        .order_by_asc(network_mappings::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(to_api)
        .collect();
    Ok(Topology { platforms, edges })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn platform(id: &str) -> platforms::Model {
        let now = Utc::now();
        platforms::Model {
            id: id.into(),
            name: id.into(),
            kind: "kvm".into(),
            address: format!("/hosts/{id}"),
            status: "online".into(),
            last_discovery_at: None,
            last_error: None,
            discovered_vms: 0,
            created_at: now,
            updated_at: now,
        }
    }

    fn vm(status: VmStatus) -> vm_contexts::Model {
        let now = Utc::now();
        vm_contexts::Model {
            id: "v1".into(),
            platform_id: "prod".into(),
            platform_vm_id: "u1".into(),
            name: "web-01".into(),
            vcpus: 2,
            memory_mib: 2048,
            power: "running".into(),
            power_since: None,
            os: "linux".into(),
            firmware: "bios".into(),
            role: None,
            capacity_bytes: 1,
            group_id: None,
            status: status.as_str().into(),
            created_at: now,
            last_seen_at: now,
        }
    }

    fn nic(id: i64, network: &str) -> vm_nics::Model {
        vm_nics::Model { id, vm_context_id: "v1".into(), mac: format!("52:54:00:00:00:0{id}"), network: network.into(), model: "virtio".into() }
    }

    fn net(name: &str, vlan: Option<u16>, isolated: bool) -> NetworkInfo {
        NetworkInfo { name: name.into(), vlan, isolated, ..Default::default() }
    }

    fn check(nics: &[vm_nics::Model], mapping: &[(&str, &str)], target_networks: &[NetworkInfo], purpose: MappingPurpose, status: VmStatus) -> VmValidation {
        let (v, source, target) = (vm(status), platform("prod"), platform("dr"));
        let source_networks = [net("lan", Some(10), false), net("dmz", Some(20), false)];
        let mapping: HashMap<String, (String, MappingScope)> = mapping.iter().map(|(a, b)| (a.to_string(), (b.to_string(), MappingScope::Default))).collect();
        let recommendations = recommend(&source_networks, target_networks, purpose);
        check_vm(&VmFacts {
            vm: &v,
            nics,
            source: &source,
            source_networks: &source_networks,
            target: &target,
            target_networks,
            mapping: &mapping,
            purpose,
            recommendations: &recommendations,
        })
    }

    fn blockers(v: &VmValidation) -> Vec<&str> {
        v.issues.iter().chain(v.nics.iter().flat_map(|n| &n.issues)).filter(|n| n.severity == NoteSeverity::Blocker).map(|n| n.message.as_str()).collect()
    }

    #[test]
    fn a_mapping_to_a_network_the_target_lost_blocks_and_says_so() {
        let target = [net("lan", Some(10), false)];
        let v = check(&[nic(1, "lan"), nic(2, "dmz")], &[("lan", "lan"), ("dmz", "dr-dmz")], &target, MappingPurpose::Failover, VmStatus::Active);
        assert!(!v.ok);
        assert_eq!(v.nics[1].target_network.as_deref(), Some("dr-dmz"));
        assert_eq!(blockers(&v), ["NIC 2 (52:54:00:00:00:02) of 'web-01' is on 'dmz', mapped to 'dr-dmz', which 'dr' does not have (its networks: lan): map 'dmz' again or rediscover 'dr'"]);
    }

    #[test]
    fn a_network_that_changed_isolation_blocks_for_its_purpose() {
        // Mapped while isolated, rediscovered with an uplink: a test must not use it.
        let target = [net("sandbox", None, false)];
        let v = check(&[nic(1, "lan")], &[("lan", "sandbox")], &target, MappingPurpose::Test, VmStatus::Active);
        assert!(!v.ok);
        assert!(blockers(&v)[0].contains("mapped to 'sandbox': 'sandbox' is not an isolated network"), "{v:?}");
        let target = [net("lan", Some(10), true)];
        let v = check(&[nic(1, "lan")], &[("lan", "lan")], &target, MappingPurpose::Failover, VmStatus::Active);
        assert!(blockers(&v)[0].contains("unreachable"), "{v:?}");
    }

    #[test]
    fn other_vlans_warn_missing_vms_warn_and_vms_without_nics_pass() {
        let target = [net("lan", Some(110), false)];
        let v = check(&[nic(1, "lan")], &[("lan", "lan")], &target, MappingPurpose::Failover, VmStatus::Missing);
        assert!(v.ok, "{v:?}");
        assert!(v.nics[0].issues.iter().any(|n| n.severity == NoteSeverity::Warning && n.message.contains("VLAN 10, 'lan' on VLAN 110")), "{v:?}");
        assert!(v.issues.iter().any(|n| n.severity == NoteSeverity::Warning && n.message.contains("not found at the last discovery")), "{v:?}");
        let v = check(&[], &[], &target, MappingPurpose::Failover, VmStatus::Active);
        assert!(v.ok && v.nics.is_empty() && v.issues[0].message.contains("no NIC"), "{v:?}");
        // A NIC on a network its own platform no longer reports: a warning; unmapped, it blocks naming what the target has.
        let v = check(&[nic(1, "backup")], &[], &target, MappingPurpose::Failover, VmStatus::Active);
        assert!(v.nics[0].issues.iter().any(|n| n.severity == NoteSeverity::Warning && n.message.contains("which 'prod' no longer reports")), "{v:?}");
        assert!(blockers(&v)[0].ends_with("map 'backup' to a network of 'dr' (its networks: lan)"), "{v:?}");
    }
}
