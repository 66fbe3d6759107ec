//! The lab slot: which of several demo labs on one machine this is.
//!
//! Every libvirt host of the lab shares the machine's one network
//! namespace, so what the lab names there must differ between two labs
//! running side by side (the test runner runs two lab lanes at once,
//! scripts/run-tests.py): the bridges of its networks and their subnets.
//! `SENDENSE_LAB_SLOT=N` (0 to [`MAX`]) picks them; unset or `0` gives the
//! names a product install has always had:
//!
//! | slot | bridges               | subnets (prod, DR)    |
//! |------|-----------------------|-----------------------|
//! | 0    | `sdp-lan`, `sdd-lan`… | `10.81.x`, `10.82.x`  |
//! | N    | `sdNp-lan`, `sdNd-lan`… | `10.(81+2N).x`, `10.(82+2N).x` |
//!
//! Everything else a lab host has is its own already: its daemon's
//! directories and sockets live under the lab's directory, and the guests'
//! tap devices get names of their own ([`tap_names`]), not libvirt's
//! `vnetN`, which every daemon counts on its own (two daemons creating
//! `vnet6` at once: "Unable to create tap device vnet6: Device or resource
//! busy"). The second octets [`RESERVED_OCTETS`] are kept free of the
//! subnets made up for imported hosts ([`super::host_import`]).

use std::ops::RangeInclusive;

/// The variable naming the slot.
pub const VAR: &str = "SENDENSE_LAB_SLOT";
/// The highest slot: its subnets stay below `10.93.x`, which tests use.
pub const MAX: u8 = 5;
/// Second octets of `10.x.y.0/24` kept for the labs' slots and the tests'
/// own fixed networks: never picked for an imported host's network.
pub const RESERVED_OCTETS: RangeInclusive<u8> = 80..=99;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{VAR}='{value}': the lab slot is a whole number from 0 to {MAX} (unset means 0)")]
pub struct BadSlot {
    pub value: String,
}

/// The slot `SENDENSE_LAB_SLOT` names (0 when unset or empty).
pub fn current() -> Result<u8, BadSlot> {
    parse(std::env::var_os(VAR).as_deref())
}

/// A slot from the variable's value.
pub fn parse(value: Option<&std::ffi::OsStr>) -> Result<u8, BadSlot> {
    let Some(value) = value else { return Ok(0) };
    let bad = || BadSlot { value: value.to_string_lossy().into_owned() };
    let text = value.to_str().ok_or_else(bad)?.trim();
    if text.is_empty() {
        return Ok(0);
    }
    match text.parse::<u8>() {
        Ok(n) if n <= MAX && text.chars().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(bad()),
    }
}

/// The prefix of the bridges of lab host `host` (`prod`, `dr`: its first
/// letter) in `slot`: `sdp-` in slot 0, `sd1p-` in slot 1.
pub fn bridge_prefix(slot: u8, host: &str) -> String {
    let initial: String = host.chars().take(1).collect();
    if slot == 0 {
        format!("sd{initial}-")
    } else {
        format!("sd{slot}{initial}-")
    }
}

/// The bridge of network `net` of lab host `host` in `slot` (at most 15
/// characters, the kernel's limit: the network's name is cut to 10).
pub fn bridge(slot: u8, host: &str, net: &str) -> String {
    format!("{}{}", bridge_prefix(slot, host), net.chars().take(10).collect::<String>())
}

/// The gateway address of network number `net_index` of the lab's host
/// number `host_index` (0 production, 1 DR) in `slot`:
/// `10.<81 + 2 slot + host>.<10 (net + 1)>.1`.
pub fn gateway(slot: u8, host_index: usize, net_index: usize) -> String {
    format!("10.{}.{}.1", 81 + 2 * slot as usize + host_index, 10 * (net_index + 1))
}

/// Names for the tap devices of a guest's `count` NICs: `sdt` and 8 random
/// hex digits, then the NIC's number (at most 15 characters for up to 100
/// NICs), unique on the machine whichever daemon creates them and wherever
/// the guest's definition moves. libvirt keeps a name given in the
/// definition (it makes up `vnetN` only when none is given).
pub fn tap_names(count: usize) -> Vec<String> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (0..count).map(|i| format!("sdt{}{i}", &id[..8])).collect()
}

/// A bridge a test names itself (`sd…`), apart per slot: `sdrp-lan` in
/// slot 0, `sd1rp-lan` in slot 1 (at most 15 characters: keep `name` to 14).
pub fn test_bridge(slot: u8, name: &str) -> String {
    match (slot, name.strip_prefix("sd")) {
        (0, _) | (_, None) => name.to_string(),
        (n, Some(rest)) => format!("sd{n}{rest}"),
    }
}

/// The first three octets of a test's own network number `k` (0 to 9):
/// `10.93.<k + 10 slot>` ([`RESERVED_OCTETS`], above every slot's lab).
pub fn test_subnet(slot: u8, k: u8) -> String {
    format!("10.93.{}", k as u16 % 10 + 10 * slot as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn slot_zero_keeps_the_names_of_a_product_install() {
        assert_eq!(parse(None), Ok(0));
        assert_eq!(parse(Some(OsStr::new(""))), Ok(0));
        assert_eq!(parse(Some(OsStr::new("0"))), Ok(0));
        assert_eq!(bridge(0, "prod", "lan"), "sdp-lan");
        assert_eq!(bridge(0, "dr", "isolated"), "sdd-isolated");
        assert_eq!(gateway(0, 0, 0), "10.81.10.1");
        assert_eq!(gateway(0, 1, 2), "10.82.30.1");
    }

    #[test]
    fn other_slots_take_other_bridges_and_subnets() {
        assert_eq!(parse(Some(OsStr::new(" 1 "))), Ok(1));
        assert_eq!(parse(Some(OsStr::new("5"))), Ok(5));
        assert_eq!(bridge(1, "prod", "lan"), "sd1p-lan");
        assert_eq!(bridge_prefix(1, "dr"), "sd1d-");
        assert_eq!(gateway(1, 0, 0), "10.83.10.1");
        assert_eq!(gateway(1, 1, 3), "10.84.40.1");
        // The longest: slot 5, a network name cut to 10.
        assert!(bridge(MAX, "prod", "a-long-network-name").len() <= 15);
        assert!(gateway(MAX, 1, 0).starts_with("10.92."), "below the tests' 10.93");
        for s in 0..=MAX {
            for h in 0..2 {
                let second: u8 = gateway(s, h, 0).split('.').nth(1).unwrap().parse().unwrap();
                assert!(RESERVED_OCTETS.contains(&second));
            }
        }
    }

    #[test]
    fn tests_own_networks_follow_the_slot() {
        assert_eq!(test_bridge(0, "sdrp-lan"), "sdrp-lan");
        assert_eq!(test_bridge(1, "sdrp-lan"), "sd1rp-lan");
        assert_eq!(test_subnet(0, 7), "10.93.7");
        assert_eq!(test_subnet(1, 7), "10.93.17");
        assert_eq!(test_subnet(MAX, 9), "10.93.59");
    }

    #[test]
    fn a_bad_slot_says_what_is_expected() {
        for v in ["-1", "6", "one", "1.5", "+1", "256"] {
            let e = parse(Some(OsStr::new(v))).unwrap_err();
            assert_eq!(e.value, v);
            assert!(e.to_string().contains("SENDENSE_LAB_SLOT") && e.to_string().contains("0 to 5"), "{e}");
        }
    }

    #[test]
    fn tap_names_are_not_libvirts_and_fit_the_kernels_limit() {
        let a = tap_names(3);
        let b = tap_names(3);
        assert_eq!(a.len(), 3);
        for n in a.iter().chain(&b) {
            assert!(n.starts_with("sdt") && n.len() <= 15 && !n.starts_with("vnet") && !n.starts_with("macvtap"), "{n}");
        }
        assert!(a.iter().all(|n| !b.contains(n)));
        assert_ne!(a[0], a[1]);
    }
}
