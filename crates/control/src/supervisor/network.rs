//! Host networking: one bridge carrying the subnet's gateway address, one
//! TAP per instance on it, in whatever network namespace the daemon runs
//! in. No host command is run: links and addresses go through rtnetlink
//! (messages from the netlink-packet-route crate, sent on a netlink-sys
//! socket), TAPs are made persistent through /dev/net/tun, the way
//! `ip tuntap add` makes them (links.rs).
//!
//! Egress NAT is off unless asked for (`enable_nat`): it changes the host's
//! forwarding and firewall, which a test must never do outside a namespace
//! it made. With it, instances reach beyond the host through a masquerade
//! rule in Flint's own nftables table, `ip flint`, written over nfnetlink
//! (netlink-packet-netfilter; nat.rs), and `net.ipv4.ip_forward=1`.
//! `nft delete table ip flint` (or [`disable_nat`]) takes it away.

mod links;
mod nat;
mod netlink;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::SupervisorError;
use flint_contract::config::MAX_TAP_NAME_LEN;

/// The TAP of an instance: `fl` + the last 13 hex digits of its id (ids
/// are random, so 52 bits keep them apart; the name fits IFNAMSIZ).
pub fn tap_name(instance_id: &str) -> String {
    let hex = instance_id.strip_prefix("i-").unwrap_or(instance_id);
    let start = hex.len().saturating_sub(MAX_TAP_NAME_LEN - 2);
    format!("fl{}", &hex[start..])
}

/// The instance's MAC: `0e:` (locally administered, unicast, as EC2's
/// own MACs often start) + five bytes derived from the id, so that the
/// same instance keeps its MAC across stop/start without storing more.
pub fn mac_for(instance_id: &str) -> String {
    let digest = Sha256::digest(instance_id.as_bytes());
    format!(
        "0e:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        digest[0], digest[1], digest[2], digest[3], digest[4]
    )
}

/// A stable id of `prefix` derived from `seed` (the subnet's and VPC's ids
/// from the CIDR, the ENI's from the instance id): the same on every
/// describe, with nothing stored.
pub fn derived_id(prefix: &str, seed: &str) -> String {
    let hex = hex::encode(Sha256::digest(seed.as_bytes()));
    format!("{prefix}{}", &hex[..17])
}

fn network_error(what: String, e: impl std::fmt::Display) -> SupervisorError {
    SupervisorError::Network(format!("{what}: {e}"))
}

fn rtnl() -> Result<links::Rtnl, SupervisorError> {
    links::Rtnl::open().map_err(|e| network_error("cannot open an rtnetlink socket".into(), e))
}

/// `A.B.C.D/NN` as an address and a prefix length.
fn parse_cidr(cidr: &str) -> Result<(Ipv4Addr, u8), SupervisorError> {
    let invalid = || SupervisorError::Network(format!("{cidr:?} is not an IPv4 A.B.C.D/NN"));
    let (address, prefix) = cidr.split_once('/').ok_or_else(invalid)?;
    let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    if prefix > 32 {
        return Err(invalid());
    }
    Ok((address, prefix))
}

/// Creates the bridge if it is missing, gives it `gateway_cidr` (e.g.
/// `172.31.0.1/20`) if it lacks it, and sets it up. Idempotent: a daemon
/// restart finds it as it left it.
pub fn ensure_bridge(bridge: &str, gateway_cidr: &str) -> Result<(), SupervisorError> {
    let (gateway, prefix) = parse_cidr(gateway_cidr)?;
    let mut rtnl = rtnl()?;
    let lookup = |rtnl: &mut links::Rtnl| {
        rtnl.link_index(bridge)
            .map_err(|e| network_error(format!("cannot look up bridge {bridge}"), e))
    };
    let index = match lookup(&mut rtnl)? {
        Some(index) => index,
        None => {
            rtnl.add_bridge(bridge)
                .map_err(|e| network_error(format!("cannot create bridge {bridge}"), e))?;
            lookup(&mut rtnl)?.ok_or_else(|| {
                SupervisorError::Network(format!("bridge {bridge} vanished once created"))
            })?
        }
    };
    let addresses = rtnl
        .ipv4_addresses(index)
        .map_err(|e| network_error(format!("cannot list the addresses of {bridge}"), e))?;
    if !addresses.contains(&(gateway, prefix)) {
        rtnl.add_address(index, gateway, prefix)
            .map_err(|e| network_error(format!("cannot add {gateway_cidr} to {bridge}"), e))?;
    }
    rtnl.set_up(index)
        .map_err(|e| network_error(format!("cannot set {bridge} up"), e))
}

/// A persistent TAP on the bridge, up. An existing one (from a VM that
/// died with the daemon down) is reused.
pub fn create_tap(tap: &str, bridge: &str) -> Result<(), SupervisorError> {
    let mut rtnl = rtnl()?;
    let lookup = |rtnl: &mut links::Rtnl, name: &str| {
        rtnl.link_index(name)
            .map_err(|e| network_error(format!("cannot look up {name}"), e))
    };
    if lookup(&mut rtnl, tap)?.is_none() {
        links::create_persistent_tap(tap)
            .map_err(|e| network_error(format!("cannot create TAP {tap}"), e))?;
    }
    let index = lookup(&mut rtnl, tap)?
        .ok_or_else(|| SupervisorError::Network(format!("TAP {tap} vanished once created")))?;
    let bridge_index = lookup(&mut rtnl, bridge)?
        .ok_or_else(|| SupervisorError::Network(format!("bridge {bridge} does not exist")))?;
    rtnl.set_controller(index, bridge_index)
        .map_err(|e| network_error(format!("cannot attach {tap} to bridge {bridge}"), e))?;
    rtnl.set_up(index)
        .map_err(|e| network_error(format!("cannot set {tap} up"), e))
}

/// Deletes the TAP; one that is already gone is fine.
pub fn delete_tap(tap: &str) -> Result<(), SupervisorError> {
    let mut rtnl = rtnl()?;
    let index = rtnl
        .link_index(tap)
        .map_err(|e| network_error(format!("cannot look up {tap}"), e))?;
    let Some(index) = index else {
        return Ok(());
    };
    match rtnl.delete(index) {
        Err(e) if e.raw_os_error() != Some(libc::ENODEV) => {
            Err(network_error(format!("cannot delete {tap}"), e))
        }
        _ => Ok(()),
    }
}

/// Egress NAT for the subnet (see the module docs); off by default.
/// Idempotent: the bridge's chain is rewritten, never added to.
pub fn enable_nat(subnet: &str, bridge: &str) -> Result<(), SupervisorError> {
    let (address, prefix) = parse_cidr(subnet)?;
    if bridge.is_empty() || bridge.len() >= libc::IFNAMSIZ {
        return Err(SupervisorError::Network(format!(
            "{bridge:?} is not a valid interface name"
        )));
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let network = Ipv4Addr::from(u32::from(address) & mask);
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| SupervisorError::Network(format!("cannot enable IPv4 forwarding: {e}")))?;
    nat::enable_batch(network, prefix, bridge)
        .run()
        .map_err(|e| SupervisorError::Network(format!("NAT for {subnet} on {bridge}: {e}")))
}

/// Removes the bridge's NAT (its chain in table `ip flint`), and the
/// table once nothing else is in it; NAT already gone is fine. IPv4
/// forwarding is left as it is.
pub fn disable_nat(bridge: &str) -> Result<(), SupervisorError> {
    let gone = |e: &nat::BatchError| e.source.raw_os_error() == Some(libc::ENOENT);
    match nat::disable_batch(bridge).run() {
        Err(e) if !gone(&e) => {
            return Err(SupervisorError::Network(format!(
                "removing the NAT of {bridge}: {e}"
            )));
        }
        _ => {}
    }
    match nat::delete_empty_table_batch().run() {
        Err(e) if !gone(&e) && e.source.raw_os_error() != Some(libc::EBUSY) => Err(
            SupervisorError::Network(format!("removing the NAT of {bridge}: {e}")),
        ),
        _ => Ok(()),
    }
}
