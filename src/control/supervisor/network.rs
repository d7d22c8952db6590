//! Host networking: one bridge carrying the subnet's gateway address, one
//! TAP per instance on it. Done with iproute2's `ip` (present wherever
//! Flint runs, the emulated test host included), in whatever network
//! namespace the daemon runs in.
//!
//! Egress NAT is off unless asked for (`enable_nat`): it changes the host's
//! forwarding and firewall, which a test must never do outside a namespace
//! it made. With it, instances reach beyond the host through
//! `iptables -t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE`
//! and `net.ipv4.ip_forward=1`.

use std::process::Command;

use sha2::{Digest, Sha256};

use super::SupervisorError;
use crate::contract::config::MAX_TAP_NAME_LEN;

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

fn ip(args: &[&str]) -> Result<String, SupervisorError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| SupervisorError::Network(format!("cannot run ip {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(SupervisorError::Network(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Asked of `ip`, not /sys/class/net: sysfs shows the network namespace
/// of whoever mounted it, which need not be the daemon's.
fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["-o", "link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Creates the bridge if it is missing, gives it `gateway_cidr` (e.g.
/// `172.31.0.1/20`) if it lacks it, and sets it up. Idempotent: a daemon
/// restart finds it as it left it.
pub fn ensure_bridge(bridge: &str, gateway_cidr: &str) -> Result<(), SupervisorError> {
    if !link_exists(bridge) {
        ip(&["link", "add", "name", bridge, "type", "bridge"])?;
    }
    let addresses = ip(&["-o", "-4", "addr", "show", "dev", bridge])?;
    let has = addresses
        .split_whitespace()
        .any(|word| word == gateway_cidr);
    if !has {
        ip(&["addr", "add", gateway_cidr, "dev", bridge])?;
    }
    ip(&["link", "set", "dev", bridge, "up"])?;
    Ok(())
}

/// A persistent TAP on the bridge, up. An existing one (from a VM that
/// died with the daemon down) is reused.
pub fn create_tap(tap: &str, bridge: &str) -> Result<(), SupervisorError> {
    if !link_exists(tap) {
        ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
    }
    ip(&["link", "set", "dev", tap, "master", bridge])?;
    ip(&["link", "set", "dev", tap, "up"])?;
    Ok(())
}

/// Deletes the TAP; one that is already gone is fine.
pub fn delete_tap(tap: &str) -> Result<(), SupervisorError> {
    if !link_exists(tap) {
        return Ok(());
    }
    ip(&["link", "del", "dev", tap]).map(|_| ())
}

/// Egress NAT for the subnet (see the module docs); off by default.
pub fn enable_nat(subnet: &str, bridge: &str) -> Result<(), SupervisorError> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| SupervisorError::Network(format!("cannot enable IPv4 forwarding: {e}")))?;
    let rule = ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"];
    let check = Command::new("iptables")
        .args(["-t", "nat", "-C", "POSTROUTING"])
        .args(rule)
        .status();
    if matches!(check, Ok(s) if s.success()) {
        return Ok(());
    }
    let status = Command::new("iptables")
        .args(["-t", "nat", "-A", "POSTROUTING"])
        .args(rule)
        .status()
        .map_err(|e| SupervisorError::Network(format!("cannot run iptables: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(SupervisorError::Network(format!(
            "iptables -t nat -A POSTROUTING {} failed",
            rule.join(" ")
        )))
    }
}
