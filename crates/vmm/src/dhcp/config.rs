//! What the server hands out, and the checks that make a configuration safe
//! to serve (it always fits a 576-byte DHCP message, every name is a valid
//! DNS name, the addresses make sense for the subnet).

use std::net::Ipv4Addr;

use super::DhcpError;

/// MTU of a plain TAP device.
pub const DEFAULT_MTU: u16 = 1500;
/// What EC2 announces on its (jumbo-frame) VPC networks.
pub const EC2_MTU: u16 = 9001;
/// EC2 leases last an hour.
pub const DEFAULT_LEASE_SECS: u32 = 3600;
/// Below this, clients would renew in a tight loop.
pub const MIN_LEASE_SECS: u32 = 60;
/// 0xffffffff means "infinite" in DHCP; stay well clear of it.
pub const MAX_LEASE_SECS: u32 = i32::MAX as u32;
/// Every IPv4 host must accept 576-byte datagrams, and DHCP replies reach
/// that size; a smaller MTU would cut the guest off from its own server.
pub const MIN_MTU: u16 = 576;
/// EC2 accepts at most four domain name servers in a DHCP option set.
pub const MAX_DNS_SERVERS: usize = 4;
/// Longest client identifier (option 61) echoed back (RFC 6842). Real ones
/// (type + MAC, or IAID + DUID) are under 30 bytes.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// The MAC the instance sees its gateway (and DHCP server) at on EC2.
pub const EC2_GATEWAY_MAC: [u8; 6] = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

/// Room for options in a 576-byte DHCP message: 576 - 20 (IPv4) - 8 (UDP)
/// - 236 (BOOTP header) - 4 (magic cookie), minus a client identifier echo.
const OPTIONS_BUDGET: usize = 576 - 20 - 8 - 236 - 4 - (2 + MAX_CLIENT_ID_LEN);
const MAX_HOSTNAME_LEN: usize = 63;
const MAX_DOMAIN_LEN: usize = 253;

/// Everything the server tells the one client it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The instance's NIC MAC: the only client answered.
    pub client_mac: [u8; 6],
    /// The instance's private address, the only one ever offered.
    pub client_ip: Ipv4Addr,
    /// Subnet prefix length (option 1 and 28 derive from it).
    pub prefix_len: u8,
    /// Default gateway (option 3); also the server identifier (option 54)
    /// and the source address of replies, as on EC2.
    pub router: Ipv4Addr,
    /// Domain name servers (option 6), at most [`MAX_DNS_SERVERS`]; empty
    /// omits the option.
    pub dns: Vec<Ipv4Addr>,
    /// Option 12; empty omits it.
    pub hostname: String,
    /// Option 15; empty omits it.
    pub domain: String,
    /// Option 26.
    pub mtu: u16,
    /// Option 51; T1 (58) and T2 (59) are derived from it.
    pub lease_secs: u32,
    /// Ethernet source address of replies.
    pub server_mac: [u8; 6],
}

impl DhcpConfig {
    /// What an EC2 instance with this address would be told: router at the
    /// subnet's .1, AmazonProvidedDNS at the subnet's .2, hostname
    /// `ip-a-b-c-d`, EC2's domain for `region`, a one-hour lease, the MTU of
    /// a TAP ([`DEFAULT_MTU`]; set `mtu` to [`EC2_MTU`] for EC2's), replies
    /// from EC2's gateway MAC.
    pub fn ec2_style(
        client_mac: [u8; 6],
        client_ip: Ipv4Addr,
        prefix_len: u8,
        region: &str,
    ) -> Result<Self, DhcpError> {
        if !(1..=30).contains(&prefix_len) {
            return Err(DhcpError::BadPrefixLen(prefix_len));
        }
        let network = u32::from(client_ip) & netmask_bits(prefix_len);
        let config = DhcpConfig {
            client_mac,
            client_ip,
            prefix_len,
            router: Ipv4Addr::from(network.wrapping_add(1)),
            dns: vec![Ipv4Addr::from(network.wrapping_add(2))],
            hostname: ec2_hostname(client_ip),
            domain: ec2_domain(region)?,
            mtu: DEFAULT_MTU,
            lease_secs: DEFAULT_LEASE_SECS,
            server_mac: EC2_GATEWAY_MAC,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks everything the server relies on; [`DhcpServer::new`] calls it.
    ///
    /// [`DhcpServer::new`]: super::DhcpServer::new
    pub fn validate(&self) -> Result<(), DhcpError> {
        if !(1..=30).contains(&self.prefix_len) {
            return Err(DhcpError::BadPrefixLen(self.prefix_len));
        }
        if !is_unicast_mac(&self.client_mac) {
            return Err(DhcpError::BadMac("client"));
        }
        if !is_unicast_mac(&self.server_mac) {
            return Err(DhcpError::BadMac("server"));
        }
        if self.client_mac == self.server_mac {
            return Err(DhcpError::SameMac);
        }

        let ip = self.client_ip;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(DhcpError::BadClientIp(ip));
        }
        self.check_host_in_subnet(ip)?;
        self.check_host_in_subnet(self.router)?;
        if self.router == ip {
            return Err(DhcpError::RouterIsClient(ip));
        }

        if self.dns.len() > MAX_DNS_SERVERS {
            return Err(DhcpError::TooManyDns(self.dns.len()));
        }
        for &server in &self.dns {
            if server.is_unspecified()
                || server.is_broadcast()
                || server.is_multicast()
                || server == ip
                || (self.in_subnet(server)
                    && (server == self.network() || server == self.broadcast()))
            {
                return Err(DhcpError::BadDns(server));
            }
        }

        if !self.hostname.is_empty() && !is_dns_name(&self.hostname, MAX_HOSTNAME_LEN) {
            return Err(DhcpError::BadHostname(self.hostname.clone()));
        }
        if !self.domain.is_empty() && !is_dns_name(&self.domain, MAX_DOMAIN_LEN) {
            return Err(DhcpError::BadDomain(self.domain.clone()));
        }
        if self.mtu < MIN_MTU {
            return Err(DhcpError::BadMtu(self.mtu));
        }
        if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&self.lease_secs) {
            return Err(DhcpError::BadLeaseTime(self.lease_secs));
        }
        let len = self.max_options_len();
        if len > OPTIONS_BUDGET {
            return Err(DhcpError::OptionsTooLarge(len));
        }
        Ok(())
    }

    /// The subnet mask (option 1).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(netmask_bits(self.prefix_len))
    }

    /// The subnet's network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.client_ip) & netmask_bits(self.prefix_len))
    }

    /// The subnet's broadcast address (option 28).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.client_ip) | !netmask_bits(self.prefix_len))
    }

    /// The server identifier and source of replies: the router, as on EC2.
    pub fn server_ip(&self) -> Ipv4Addr {
        self.router
    }

    /// Renewal time T1 (option 58): half the lease.
    pub fn t1_secs(&self) -> u32 {
        self.lease_secs / 2
    }

    /// Rebinding time T2 (option 59): seven eighths of the lease.
    pub fn t2_secs(&self) -> u32 {
        // At most u32::MAX * 7 / 8: fits again after the division.
        u32::try_from(u64::from(self.lease_secs) * 7 / 8).unwrap_or(u32::MAX)
    }

    fn in_subnet(&self, addr: Ipv4Addr) -> bool {
        let mask = netmask_bits(self.prefix_len);
        u32::from(addr) & mask == u32::from(self.client_ip) & mask
    }

    fn check_host_in_subnet(&self, addr: Ipv4Addr) -> Result<(), DhcpError> {
        if !self.in_subnet(addr) {
            return Err(DhcpError::OutsideSubnet {
                addr,
                network: self.network(),
                prefix_len: self.prefix_len,
            });
        }
        if addr == self.network() || addr == self.broadcast() {
            return Err(DhcpError::ReservedAddress(addr));
        }
        Ok(())
    }

    /// Encoded size of the largest reply's options (a DHCPACK with a lease),
    /// End included; a unit test checks it against the real encoding.
    pub(super) fn max_options_len(&self) -> usize {
        // 53 (3), 54 (6), 51 (6), 58 (6), 59 (6), 1 (6), 3 (6), 26 (4),
        // 28 (6), End (1).
        let mut len = 3 + 6 * 7 + 4 + 1;
        if !self.dns.is_empty() {
            len += 2 + 4 * self.dns.len();
        }
        if !self.hostname.is_empty() {
            len += 2 + self.hostname.len();
        }
        if !self.domain.is_empty() {
            len += 2 + self.domain.len();
        }
        len
    }
}

/// EC2's IP-based hostname: `ip-10-0-1-23` for 10.0.1.23.
pub fn ec2_hostname(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}")
}

/// The domain AmazonProvidedDNS uses in `region`: `ec2.internal` in
/// us-east-1, `<region>.compute.internal` elsewhere.
pub fn ec2_domain(region: &str) -> Result<String, DhcpError> {
    if !is_dns_label(region) {
        return Err(DhcpError::BadRegion(region.to_string()));
    }
    if region == "us-east-1" {
        Ok("ec2.internal".to_string())
    } else {
        Ok(format!("{region}.compute.internal"))
    }
}

/// Network mask for a prefix length; lengths above 32 count as 32.
fn netmask_bits(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

fn is_unicast_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 0x01 == 0 && mac.iter().any(|&b| b != 0)
}

/// Letters, digits and inner hyphens, 1 to 63 characters (RFC 1123).
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Dot-separated labels, no trailing dot, at most `max_len` characters.
fn is_dns_name(name: &str, max_len: usize) -> bool {
    !name.is_empty() && name.len() <= max_len && name.split('.').all(is_dns_label)
}
