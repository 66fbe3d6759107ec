//! Networks at failover: the source's NICs mapped onto the target's
//! networks, and the isolated network test VMs live on. The mappings come
//! from the catalog ([`crate::catalog::network_mapping`]); the rule of what
//! a purpose admits is [`MappingPurpose::admits`].

use shared_types::networks::{MappingPurpose, NetworkPair};
use shared_types::platform::{NetworkInfo, NicInfo};

/// The replica's NICs at failover: each source NIC (same MAC and model) on
/// the target network `mapping` names for its network. Every network must
/// be mapped, to a network the target has; the error names what is missing.
pub fn map_nics(source_nics: &[NicInfo], mapping: &[NetworkPair], target_networks: &[NetworkInfo]) -> Result<Vec<NicInfo>, String> {
    let mut out = Vec::new();
    for nic in source_nics {
        let Some(to) = mapped(mapping, &nic.network) else {
            return Err(format!("the source network '{}' (NIC {}) is not mapped to a target network", nic.network, nic.mac));
        };
        let target = find(target_networks, to)?;
        MappingPurpose::Failover.admits(target)?;
        out.push(NicInfo { network: to.to_string(), ..nic.clone() });
    }
    Ok(out)
}

/// The test VM's NICs: each source NIC on the isolated network its test
/// mapping names, or else on `default_isolated` (the target's isolated
/// network). A mapped network must exist and be isolated.
pub fn test_nics(source_nics: &[NicInfo], mapping: &[NetworkPair], target_networks: &[NetworkInfo], default_isolated: &str) -> Result<Vec<NicInfo>, String> {
    let mut out = Vec::new();
    for nic in source_nics {
        let to = match mapped(mapping, &nic.network) {
            Some(to) => {
                MappingPurpose::Test.admits(find(target_networks, to)?)?;
                to
            }
            None => default_isolated,
        };
        out.push(NicInfo { network: to.to_string(), ..nic.clone() });
    }
    Ok(out)
}

/// The target's first isolated network, if it has one.
pub fn first_isolated(target_networks: &[NetworkInfo]) -> Option<&str> {
    target_networks.iter().find(|n| n.isolated).map(|n| n.name.as_str())
}

fn mapped<'a>(mapping: &'a [NetworkPair], source_network: &str) -> Option<&'a str> {
    mapping.iter().find(|m| m.source_network == source_network).map(|m| m.target_network.as_str())
}

fn find<'t>(target_networks: &'t [NetworkInfo], name: &str) -> Result<&'t NetworkInfo, String> {
    target_networks.iter().find(|n| n.name == name).ok_or_else(|| {
        let known: Vec<&str> = target_networks.iter().map(|n| n.name.as_str()).collect();
        format!("the target has no network '{name}' (it has: {})", if known.is_empty() { "none".into() } else { known.join(", ") })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(mac: &str, net: &str) -> NicInfo {
        NicInfo { mac: mac.into(), network: net.into(), model: "virtio".into() }
    }

    fn map(from: &str, to: &str) -> NetworkPair {
        NetworkPair { source_network: from.into(), target_network: to.into() }
    }

    fn net(name: &str, isolated: bool) -> NetworkInfo {
        NetworkInfo { name: name.into(), bridge: None, cidr: None, vlan: None, isolated, inactive: false }
    }

    #[test]
    fn every_nic_is_mapped_to_a_network_the_target_has() {
        let target = vec![net("dr-lan", false), net("quarantine", true)];
        let nics = [nic("52:54:00:00:00:01", "lan"), nic("52:54:00:00:00:02", "dmz")];
        let err = map_nics(&nics, &[map("lan", "dr-lan")], &target).unwrap_err();
        assert!(err.contains("'dmz'") && err.contains("not mapped"), "{err}");
        let err = map_nics(&nics, &[map("lan", "dr-lan"), map("dmz", "dr-dmz")], &target).unwrap_err();
        assert!(err.contains("no network 'dr-dmz'") && err.contains("dr-lan"), "{err}");
        let ok = map_nics(&nics[..1], &[map("lan", "dr-lan")], &target).unwrap();
        assert_eq!(ok, vec![nic("52:54:00:00:00:01", "dr-lan")]);
        let err = map_nics(&nics[..1], &[map("lan", "quarantine")], &target).unwrap_err();
        assert!(err.contains("isolated"), "a live failover never lands on an isolated network: {err}");
    }

    #[test]
    fn test_vms_only_meet_isolated_networks() {
        let target = vec![net("dr-lan", false), net("quarantine", true), net("lab-iso", true)];
        let nics = [nic("52:54:00:00:00:01", "lan"), nic("52:54:00:00:00:02", "dmz")];
        assert_eq!(first_isolated(&target), Some("quarantine"));
        let placed = test_nics(&nics, &[map("dmz", "lab-iso")], &target, "quarantine").unwrap();
        assert_eq!(placed.iter().map(|n| n.network.as_str()).collect::<Vec<_>>(), ["quarantine", "lab-iso"]);
        let err = test_nics(&nics, &[map("lan", "dr-lan")], &target, "quarantine").unwrap_err();
        assert!(err.contains("not an isolated network"), "{err}");
    }
}
