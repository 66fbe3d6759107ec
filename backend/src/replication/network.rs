//! Networks at failover: the source's NICs mapped onto the target's
//! networks, and the isolated network test VMs live on.

use std::path::Path;

use shared_types::platform::{NetworkInfo, NicInfo};
use shared_types::replication::{mapped_network, NetworkMapping, ISOLATED_NETWORK};

use crate::platforms::kvm::definition;
use crate::platforms::PlatformError;

/// The replica's NICs at failover: each source NIC (same MAC and model) on
/// the target network `mapping` names for its network. Every network must
/// be mapped, to a network the target has; the error names what is missing.
pub fn map_nics(source_nics: &[NicInfo], mapping: &[NetworkMapping], target_networks: &[NetworkInfo]) -> Result<Vec<NicInfo>, String> {
    let mut out = Vec::new();
    for nic in source_nics {
        let Some(to) = mapped_network(mapping, &nic.network) else {
            return Err(format!("the source network '{}' (NIC {}) is not mapped to a target network", nic.network, nic.mac));
        };
        if !target_networks.iter().any(|n| n.name == to) {
            let known: Vec<&str> = target_networks.iter().map(|n| n.name.as_str()).filter(|n| *n != ISOLATED_NETWORK).collect();
            return Err(format!("the target has no network '{to}' (it has: {})", if known.is_empty() { "none".into() } else { known.join(", ") }));
        }
        out.push(NicInfo { network: to.to_string(), ..nic.clone() });
    }
    Ok(out)
}

/// The test VM's NICs: the source's, all on the isolated network.
pub fn isolated_nics(source_nics: &[NicInfo]) -> Vec<NicInfo> {
    source_nics.iter().map(|n| NicInfo { network: ISOLATED_NETWORK.into(), ..n.clone() }).collect()
}

/// Adds the isolated network (no bridge, no uplink) to the target host's
/// definition unless it has it: what `virsh net-define` of an isolated
/// network does on a real host.
pub fn ensure_isolated_network(host_dir: &Path) -> Result<bool, PlatformError> {
    let mut host = definition::read_host(host_dir)?;
    if host.networks.iter().any(|n| n.name == ISOLATED_NETWORK) {
        return Ok(false);
    }
    host.networks.push(NetworkInfo { name: ISOLATED_NETWORK.into(), bridge: None, cidr: None, vlan: None, isolated: true });
    definition::write_host(host_dir, &host)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(mac: &str, net: &str) -> NicInfo {
        NicInfo { mac: mac.into(), network: net.into(), model: "virtio".into() }
    }

    fn map(from: &str, to: &str) -> NetworkMapping {
        NetworkMapping { source_network: from.into(), target_network: to.into() }
    }

    #[test]
    fn every_nic_is_mapped_to_a_network_the_target_has() {
        let target = vec![NetworkInfo { name: "dr-lan".into(), bridge: None, cidr: None, vlan: None, isolated: false }];
        let nics = [nic("52:54:00:00:00:01", "lan"), nic("52:54:00:00:00:02", "dmz")];
        let err = map_nics(&nics, &[map("lan", "dr-lan")], &target).unwrap_err();
        assert!(err.contains("'dmz'") && err.contains("not mapped"), "{err}");
        let err = map_nics(&nics, &[map("lan", "dr-lan"), map("dmz", "dr-dmz")], &target).unwrap_err();
        assert!(err.contains("no network 'dr-dmz'") && err.contains("dr-lan"), "{err}");
        let ok = map_nics(&nics[..1], &[map("lan", "dr-lan")], &target).unwrap();
        assert_eq!(ok, vec![nic("52:54:00:00:00:01", "dr-lan")]);
        assert!(isolated_nics(&nics).iter().all(|n| n.network == ISOLATED_NETWORK));
    }
}
