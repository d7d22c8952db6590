//! Network interfaces (`--net tap=NAME,mac=MAC[,ip=A.B.C.D/NN,gw=A.B.C.D]`)
//! and the metadata service's contents (`--metadata FILE.json`).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const MAX_NICS: usize = 4;
/// Linux's IFNAMSIZ, less its NUL.
pub const MAX_TAP_NAME_LEN: usize = 15;

/// Whether `name` can name a TAP device: 1 to MAX_TAP_NAME_LEN printable
/// ASCII bytes without '/' or ':'.
pub fn valid_tap_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TAP_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

#[derive(Debug, Error)]
pub enum NetConfigError {
    #[error("--net {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    #[error("NIC {tap}: MAC {mac:?} is not six hex bytes (02:00:00:00:00:01) or is multicast")]
    Mac { tap: String, mac: String },
    #[error("NIC {tap}: TAP name must be 1 to 15 bytes without '/', ':' or spaces")]
    TapName { tap: String },
    #[error("NIC {tap}: address {ip:?} is not A.B.C.D/NN with a prefix of 1 to 30")]
    Ip { tap: String, ip: String },
    #[error("NIC {tap}: gateway {gw:?} is not an IPv4 address inside the NIC's subnet")]
    Gateway { tap: String, gw: String },
    #[error("at most {MAX_NICS} NICs, got {0}")]
    TooMany(usize),
    #[error("TAP {0} is given twice")]
    DuplicateTap(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// The host TAP device (created by the caller, or by the VMM when it
    /// does not exist: then it lives as long as the process).
    pub tap: String,
    /// The guest's MAC, e.g. "02:00:ac:1f:00:0a".
    pub mac: String,
    /// The instance's private address with its subnet prefix: the VMM's
    /// DHCP server hands it out. No address: no DHCP.
    pub ip: Option<String>,
    /// The default gateway DHCP announces (default: the subnet's .1).
    pub gateway: Option<String>,
}

impl NetConfig {
    /// TAP=NAME,mac=MAC[,ip=A.B.C.D/NN][,gw=A.B.C.D]
    pub fn parse(spec: &str) -> Result<Self, NetConfigError> {
        let err = |reason: &str| NetConfigError::Spec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (mut tap, mut mac, mut ip, mut gateway) = (None, None, None, None);
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("tap", v)) => tap = Some(v.to_string()),
                Some(("mac", v)) => mac = Some(v.to_string()),
                Some(("ip", v)) => ip = Some(v.to_string()),
                Some(("gw", v)) => gateway = Some(v.to_string()),
                _ => {
                    return Err(err(&format!(
                        "unknown part {part:?} (tap=, mac=, ip=, gw=)"
                    )));
                }
            }
        }
        Ok(NetConfig {
            tap: tap.ok_or_else(|| err("tap=NAME is required"))?,
            mac: mac.ok_or_else(|| err("mac=MAC is required"))?,
            ip,
            gateway,
        })
    }

    pub fn validate(&self) -> Result<(), NetConfigError> {
        if !valid_tap_name(&self.tap) {
            return Err(NetConfigError::TapName {
                tap: self.tap.clone(),
            });
        }
        self.mac_bytes()?;
        let subnet = self.address()?;
        if let (Some(gw), Some((addr, prefix))) = (&self.gateway, subnet) {
            let bad = || NetConfigError::Gateway {
                tap: self.tap.clone(),
                gw: gw.clone(),
            };
            let gw: Ipv4Addr = gw.parse().map_err(|_| bad())?;
            let mask = u32::MAX << (32 - u32::from(prefix));
            if u32::from(gw) & mask != u32::from(addr) & mask || gw == addr {
                return Err(bad());
            }
        }
        Ok(())
    }

    pub fn mac_bytes(&self) -> Result<[u8; 6], NetConfigError> {
        let bad = || NetConfigError::Mac {
            tap: self.tap.clone(),
            mac: self.mac.clone(),
        };
        let mut out = [0u8; 6];
        let mut parts = self.mac.split(':');
        for b in &mut out {
            let p = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() || out[0] & 1 != 0 {
            return Err(bad());
        }
        Ok(out)
    }

    /// The address and prefix, when DHCP is to serve one.
    pub fn address(&self) -> Result<Option<(Ipv4Addr, u8)>, NetConfigError> {
        let Some(ip) = &self.ip else { return Ok(None) };
        let bad = || NetConfigError::Ip {
            tap: self.tap.clone(),
            ip: ip.clone(),
        };
        let (addr, prefix) = ip.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(1..=30).contains(&prefix) {
            return Err(bad());
        }
        Ok(Some((addr, prefix)))
    }

    pub fn gateway_addr(&self) -> Option<Ipv4Addr> {
        self.gateway.as_deref().and_then(|g| g.parse().ok())
    }
}

/// Checks the NIC list as a whole.
pub fn validate_nics(nics: &[NetConfig]) -> Result<(), NetConfigError> {
    if nics.len() > MAX_NICS {
        return Err(NetConfigError::TooMany(nics.len()));
    }
    for (i, nic) in nics.iter().enumerate() {
        nic.validate()?;
        if nics[..i].iter().any(|n| n.tap == nic.tap) {
            return Err(NetConfigError::DuplicateTap(nic.tap.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_validate() {
        let nic =
            NetConfig::parse("tap=tap0,mac=02:00:ac:1f:00:0a,ip=172.31.0.10/20,gw=172.31.0.1")
                .unwrap();
        nic.validate().unwrap();
        assert_eq!(nic.mac_bytes().unwrap(), [2, 0, 0xac, 0x1f, 0, 0x0a]);
        assert_eq!(
            nic.address().unwrap(),
            Some(("172.31.0.10".parse().unwrap(), 20))
        );
        let plain = NetConfig::parse("tap=tap1,mac=02:00:00:00:00:01").unwrap();
        plain.validate().unwrap();
        assert_eq!(plain.address().unwrap(), None);
    }

    #[test]
    fn bad_specs_are_clear_errors() {
        for (spec, wanted) in [
            ("mac=02:00:00:00:00:01", "tap=NAME is required"),
            ("tap=t0", "mac=MAC is required"),
            ("tap=t0,mac=02:00:00:00:00:01,foo=1", "unknown part"),
        ] {
            let e = NetConfig::parse(spec).unwrap_err().to_string();
            assert!(e.contains(wanted), "{spec}: {e}");
        }
        for (spec, wanted) in [
            ("tap=t0,mac=01:00:00:00:00:01", "multicast"),
            ("tap=t0,mac=02:00:00:00:00", "six hex bytes"),
            ("tap=t0,mac=02:00:00:00:00:zz", "six hex bytes"),
            ("tap=a/b,mac=02:00:00:00:00:01", "TAP name"),
            ("tap=t0,mac=02:00:00:00:00:01,ip=10.0.0.5", "A.B.C.D/NN"),
            ("tap=t0,mac=02:00:00:00:00:01,ip=10.0.0.5/31", "A.B.C.D/NN"),
            (
                "tap=t0,mac=02:00:00:00:00:01,ip=10.0.0.5/24,gw=10.0.1.1",
                "inside the NIC's subnet",
            ),
        ] {
            let e = NetConfig::parse(spec)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{spec}: {e}");
        }
        let two = [
            NetConfig::parse("tap=t0,mac=02:00:00:00:00:01").unwrap(),
            NetConfig::parse("tap=t0,mac=02:00:00:00:00:02").unwrap(),
        ];
        assert!(
            validate_nics(&two)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
