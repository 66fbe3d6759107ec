//! What the Networks page works on: a source and a target platform, a
//! purpose and a scope (the default of the pair or one flow), with the
//! topology they are read from; shared by the page's cards. The pure rules
//! (which mapping is stored for a row, what a bulk request sends, which row
//! a server error names) are functions here, tested natively.

use std::collections::HashMap;

use leptos::prelude::*;
use shared_types::error::FieldError;
use shared_types::networks::{MappingPurpose, NetworkMapping, NetworkPair, Recommendation, Topology, TopologyNetwork, TopologyPlatform};
use shared_types::platform::NetworkInfo;

use crate::api::{self, ApiError};
use crate::components::act::Act;
use crate::fetch::Fetch;

/// The page's selection and data, `Copy` so every card takes it by value.
#[derive(Clone, Copy)]
pub struct NetRoute {
    pub source: RwSignal<String>,
    pub target: RwSignal<String>,
    pub purpose: RwSignal<MappingPurpose>,
    /// A flow's id; none: the default mappings of the platform pair.
    pub scope: RwSignal<Option<String>>,
    /// Bumped after every change of mappings: the topology is read again.
    pub version: RwSignal<u32>,
    /// The last topology read (kept while it is read again).
    pub topology: Memo<Option<Topology>>,
    /// Why the topology could not be read.
    pub topology_error: Memo<Option<ApiError>>,
    /// Flows a mapping may belong to, (id, label): the replication flows
    /// of the chosen pair, then every other flow by name.
    pub flow_names: Memo<Vec<(String, String)>>,
    /// Storing mappings (bulk requests).
    pub save: Act,
    /// Validation runs.
    pub check: Act,
}

impl NetRoute {
    /// Create inside the page component; the cards share it.
    pub fn new() -> Self {
        let version = RwSignal::new(0u32);
        let resource = Fetch::new(move || {
            version.get();
            api::network_topology()
        });
        let topology = Memo::new(move |prev: Option<&Option<Topology>>| match resource.get() {
            Some(Ok(t)) => Some(t),
            _ => prev.cloned().flatten(),
        });
        let topology_error = Memo::new(move |_| resource.get().and_then(|r| r.err()));
        let flows = Fetch::new(api::flows);
        let replications = Fetch::new(api::replication_flows);
        let source = RwSignal::new(String::new());
        let target = RwSignal::new(String::new());
        let flow_names = Memo::new(move |_| {
            let (s, t) = (source.get(), target.get());
            let mut out: Vec<(String, String)> = Vec::new();
            let mut others: Vec<(String, String)> = Vec::new();
            for r in replications.get().and_then(|r| r.ok()).unwrap_or_default() {
                let entry = (r.id, format!("replication {}", r.name));
                if r.source_platform.id == s && r.target_platform.id == t { out.push(entry) } else { others.push(entry) }
            }
            others.extend(flows.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|f| (f.id, format!("{} {}", f.kind.as_str(), f.name))));
            out.extend(others);
            out
        });
        NetRoute {
            source,
            target,
            purpose: RwSignal::new(MappingPurpose::Failover),
            scope: RwSignal::new(None),
            version,
            topology,
            topology_error,
            flow_names,
            save: Act::new(),
            check: Act::new(),
        }
    }

    pub fn platform(self, id: &str) -> Option<TopologyPlatform> {
        self.topology.with(|t| t.as_ref().and_then(|t| t.platforms.iter().find(|p| p.id == id).cloned()))
    }

    pub fn source_platform(self) -> Option<TopologyPlatform> {
        self.platform(&self.source.get())
    }

    pub fn target_platform(self) -> Option<TopologyPlatform> {
        self.platform(&self.target.get())
    }

    /// Both platforms chosen, and not the same one.
    pub fn ready(self) -> bool {
        let (s, t) = (self.source.get(), self.target.get());
        !s.is_empty() && !t.is_empty() && s != t
    }

    /// Every mapping between the chosen platforms, any purpose or scope.
    pub fn pair_mappings(self) -> Vec<NetworkMapping> {
        let (s, t) = (self.source.get(), self.target.get());
        self.topology.with(|topo| {
            topo.as_ref()
                .map(|topo| topo.edges.iter().filter(|e| e.source_platform_id == s && e.target_platform_id == t).cloned().collect())
                .unwrap_or_default()
        })
    }

    /// The mappings of the chosen purpose and scope, by source network.
    pub fn stored(self) -> HashMap<String, NetworkMapping> {
        stored_for(&self.pair_mappings(), self.purpose.get(), self.scope.get().as_deref())
    }

    /// The defaults of the chosen purpose, by source network (what a flow
    /// without its own mapping uses).
    pub fn defaults(self) -> HashMap<String, NetworkMapping> {
        stored_for(&self.pair_mappings(), self.purpose.get(), None)
    }

    /// How a scope reads: `default` or the flow's name.
    pub fn scope_label(self, flow_id: Option<&str>) -> String {
        match flow_id {
            None => "default".into(),
            Some(id) => self.flow_names.with(|f| f.iter().find(|(fid, _)| fid == id).map(|(_, n)| n.clone())).unwrap_or_else(|| format!("flow {id}")),
        }
    }

    /// A server message about `field` from the last save or validation.
    pub fn field_error(self, field: &str) -> Option<String> {
        self.save.field(field).or_else(|| self.check.field(field))
    }
}

/// The mappings of one purpose and scope, by source network.
pub fn stored_for(mappings: &[NetworkMapping], purpose: MappingPurpose, flow_id: Option<&str>) -> HashMap<String, NetworkMapping> {
    mappings
        .iter()
        .filter(|m| m.purpose == purpose && m.flow_id.as_deref() == flow_id)
        .map(|m| (m.source_network.clone(), m.clone()))
        .collect()
}

/// The recommendations that differ from what is stored: what "Apply"
/// sends, in the recommendations' order.
pub fn pending_recommendations(recs: &[Recommendation], stored: &HashMap<String, NetworkMapping>) -> Vec<NetworkPair> {
    recs.iter()
        .filter(|r| stored.get(&r.source_network).is_none_or(|m| m.target_network != r.target_network))
        .map(|r| NetworkPair { source_network: r.source_network.clone(), target_network: r.target_network.clone() })
        .collect()
}

/// The edited rows that differ from what is stored, in the source
/// platform's order: what "Save" sends. A row set to nothing is left out
/// (a mapping is removed with Delete).
pub fn changed_rows(order: &[String], edits: &HashMap<String, String>, stored: &HashMap<String, NetworkMapping>) -> Vec<NetworkPair> {
    order
        .iter()
        .filter_map(|source| {
            let chosen = edits.get(source)?;
            let unchanged = stored.get(source).is_some_and(|m| &m.target_network == chosen);
            (!chosen.is_empty() && !unchanged).then(|| NetworkPair { source_network: source.clone(), target_network: chosen.clone() })
        })
        .collect()
}

/// The request index a field such as `mappings[2].target_network` names.
pub fn mapping_index(field: &str) -> Option<usize> {
    field.strip_prefix("mappings[")?.split_once(']')?.0.parse().ok()
}

/// What the server said about the row of `source` in a request that sent
/// `sent` (source networks in the request's order).
pub fn row_errors(fields: &[FieldError], sent: &[String], source: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|f| mapping_index(&f.field).and_then(|i| sent.get(i)).is_some_and(|s| s == source))
        .map(|f| f.message.clone())
        .collect()
}

/// A topology network as the shared rules take it.
pub fn network_info(n: &TopologyNetwork) -> NetworkInfo {
    NetworkInfo { name: n.name.clone(), bridge: n.bridge.clone(), cidr: n.cidr.clone(), vlan: n.vlan, isolated: n.isolated, inactive: false }
}

/// `br-lan · 10.10.0.0/24 · VLAN 10`
pub fn network_facts(n: &TopologyNetwork) -> String {
    let mut parts = Vec::new();
    if let Some(b) = &n.bridge {
        parts.push(b.clone());
    }
    parts.push(n.cidr.clone().unwrap_or_else(|| "no subnet".into()));
    parts.push(n.vlan.map(|v| format!("VLAN {v}")).unwrap_or_else(|| "untagged".into()));
    parts.join(" · ")
}

/// What a purpose means, for the operator.
pub fn purpose_help(p: MappingPurpose) -> &'static str {
    match p {
        MappingPurpose::Failover => {
            "Live failover: production moves to the target's networks. An isolated network (no uplink) is never used: the VM would be unreachable there."
        }
        MappingPurpose::Test => {
            "Test failover: a copy runs beside production, so test mappings may only use isolated networks (no uplink): the test VM never meets production."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn mapping(source: &str, target: &str, purpose: MappingPurpose, flow: Option<&str>) -> NetworkMapping {
        NetworkMapping {
            id: format!("{source}-{target}"),
            source_platform_id: "p".into(),
            source_network: source.into(),
            target_platform_id: "q".into(),
            target_network: target.into(),
            purpose,
            flow_id: flow.map(Into::into),
            created_at: Utc::now(),
            created_by: None,
        }
    }

    fn rec(source: &str, target: &str) -> Recommendation {
        Recommendation { source_network: source.into(), target_network: target.into(), score: 90, reasons: vec![] }
    }

    #[test]
    fn only_what_differs_from_the_stored_mappings_is_sent() {
        let all = [
            mapping("lan", "lan", MappingPurpose::Failover, None),
            mapping("dmz", "isolated", MappingPurpose::Test, None),
            mapping("dmz", "lan", MappingPurpose::Failover, Some("f1")),
        ];
        let stored = stored_for(&all, MappingPurpose::Failover, None);
        assert_eq!(stored.keys().collect::<Vec<_>>(), ["lan"]);
        let pending = pending_recommendations(&[rec("lan", "lan"), rec("dmz", "dmz"), rec("storage", "storage")], &stored);
        assert_eq!(pending.iter().map(|p| p.source_network.as_str()).collect::<Vec<_>>(), ["dmz", "storage"]);
        assert_eq!(stored_for(&all, MappingPurpose::Failover, Some("f1"))["dmz"].target_network, "lan");

        let order: Vec<String> = ["lan", "dmz", "storage"].map(String::from).to_vec();
        let edits: HashMap<String, String> = [("storage", "storage"), ("lan", "lan"), ("dmz", "")].into_iter().map(|(a, b)| (a.into(), b.into())).collect();
        let rows = changed_rows(&order, &edits, &stored);
        assert_eq!(rows, [NetworkPair { source_network: "storage".into(), target_network: "storage".into() }]);
    }

    #[test]
    fn server_errors_find_their_row() {
        assert_eq!(mapping_index("mappings[12].target_network"), Some(12));
        assert_eq!(mapping_index("mappings"), None);
        assert_eq!(mapping_index("vm_ids"), None);
        let fields = vec![
            FieldError { field: "mappings[1].target_network".into(), message: "'isolated' is an isolated network".into() },
            FieldError { field: "mappings".into(), message: "too many".into() },
        ];
        let sent: Vec<String> = vec!["lan".into(), "dmz".into()];
        assert_eq!(row_errors(&fields, &sent, "dmz"), ["'isolated' is an isolated network"]);
        assert!(row_errors(&fields, &sent, "lan").is_empty());
    }
}
