//! Private addresses. An address is taken by inserting its row, inside the
//! caller's IMMEDIATE transaction: concurrent allocations (threads or
//! processes) are serialised by SQLite's write lock, and the primary key
//! (subnet, ip) refuses a duplicate even if that were bypassed.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use rusqlite::params;

use super::{StoreError, Tx, now_ms};

/// An IPv4 subnet as EC2 sizes them (/16 to /28).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: u32,
    prefix: u8,
}

impl Subnet {
    pub fn parse(cidr: &str) -> Result<Subnet, StoreError> {
        let invalid = || StoreError::InvalidSubnet(cidr.chars().take(64).collect());
        let (address, prefix) = cidr.split_once('/').ok_or_else(invalid)?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if !(16..=28).contains(&prefix) {
            return Err(invalid());
        }
        let network = u32::from(address);
        if network & !Self::mask(prefix) != 0 {
            return Err(invalid());
        }
        Ok(Subnet { network, prefix })
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX << (32 - u32::from(prefix))
    }

    /// The addresses instances may get. Like EC2, the first four (network,
    /// router, DNS, reserved) and the last (broadcast) are kept back.
    pub fn usable(&self) -> std::ops::RangeInclusive<u32> {
        let broadcast = self.network | !Self::mask(self.prefix);
        (self.network + 4)..=(broadcast - 1)
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    pub fn contains_usable(&self, ip: Ipv4Addr) -> bool {
        self.usable().contains(&u32::from(ip))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl Tx<'_> {
    fn allocated_in(&self, subnet: &Subnet) -> Result<HashSet<u32>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT ip FROM ip_allocations WHERE subnet = ?1")?;
        let rows = statement.query_map([subnet.to_string()], |row| row.get::<_, String>(0))?;
        let mut taken = HashSet::new();
        for ip in rows {
            let ip = ip?;
            let parsed: Ipv4Addr = ip.parse().map_err(|_| StoreError::Corrupt {
                what: "ip allocation",
                detail: format!("{ip:?} in {subnet}"),
            })?;
            taken.insert(u32::from(parsed));
        }
        Ok(taken)
    }

    /// Takes the lowest free usable address of `subnet` for `instance_id`
    /// (which must exist by the time the transaction commits).
    pub fn allocate_ip(&self, subnet: &Subnet, instance_id: &str) -> Result<Ipv4Addr, StoreError> {
        let taken = self.allocated_in(subnet)?;
        let free = subnet
            .usable()
            .find(|ip| !taken.contains(ip))
            .ok_or_else(|| StoreError::SubnetFull {
                subnet: subnet.to_string(),
            })?;
        let ip = Ipv4Addr::from(free);
        self.reserve_ip(subnet, ip, instance_id)?;
        Ok(ip)
    }

    /// Takes a specific address (RunInstances' PrivateIpAddress).
    pub fn reserve_ip(
        &self,
        subnet: &Subnet,
        ip: Ipv4Addr,
        instance_id: &str,
    ) -> Result<(), StoreError> {
        if !subnet.contains_usable(ip) {
            return Err(StoreError::AddressOutsideSubnet {
                subnet: subnet.to_string(),
                ip: ip.to_string(),
            });
        }
        self.conn
            .execute(
                "INSERT INTO ip_allocations (subnet, ip, instance_id, allocated_ms) VALUES (?1, ?2, ?3, ?4)",
                params![subnet.to_string(), ip.to_string(), instance_id, now_ms()],
            )
            .map_err(|e| match StoreError::from_constraint(e, "address", &ip.to_string()) {
                StoreError::Duplicate { .. } => StoreError::AddressInUse {
                    subnet: subnet.to_string(),
                    ip: ip.to_string(),
                },
                other => other,
            })?;
        Ok(())
    }

    /// Frees every address of the instance (terminate); how many.
    pub fn release_ips(&self, instance_id: &str) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM ip_allocations WHERE instance_id = ?1",
            [instance_id],
        )?)
    }

    /// The instance's addresses as (subnet, address), e.g. to check a
    /// stopped instance restarts with the same one.
    pub fn ips_of(&self, instance_id: &str) -> Result<Vec<(String, Ipv4Addr)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT subnet, ip FROM ip_allocations WHERE instance_id = ?1 ORDER BY subnet, ip",
        )?;
        let rows = statement.query_map([instance_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (subnet, ip) = row?;
            let parsed = ip.parse().map_err(|_| StoreError::Corrupt {
                what: "ip allocation",
                detail: format!("{ip:?} in {subnet}"),
            })?;
            out.push((subnet, parsed));
        }
        Ok(out)
    }
}
