//! The in-VMM DHCP server for the instance's private address.
//!
//! The virtio-net TX path asks [`is_dhcp_to_server`] about every frame the
//! guest transmits; those that are IPv4/UDP to port 67 never reach the TAP
//! but go to [`DhcpServer::handle_frame`], whose reply (if any) is injected
//! into the guest's RX queue. The server knows exactly one client (the
//! instance's MAC) and one address (its private IP), and answers as EC2's
//! DHCP does: router = the subnet's .1 (also the server identifier), DNS =
//! AmazonProvidedDNS at .2, hostname `ip-a-b-c-d`, domain
//! `<region>.compute.internal` (`ec2.internal` in us-east-1), one-hour
//! leases.
//!
//! Every frame is untrusted: parsing is bounds-checked by smoltcp's checked
//! wire types and dhcproto's zero-copy (borrowed) reader, only the handful of
//! options the server acts on are decoded, and anything odd is dropped with a
//! [`DhcpError`] saying why.

mod config;
mod frames;
mod server;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use thiserror::Error;

// The virtio-net datapath and the VMM's network setup use these.
pub use config::{
    DEFAULT_LEASE_SECS, DEFAULT_MTU, DhcpConfig, EC2_GATEWAY_MAC, EC2_MTU, MAX_CLIENT_ID_LEN,
    MAX_DNS_SERVERS, MAX_LEASE_SECS, MIN_LEASE_SECS, MIN_MTU, ec2_domain, ec2_hostname,
};
pub use frames::{MAX_REQUEST_LEN, is_dhcp_to_server};
pub use server::{DhcpServer, DhcpStats};

/// UDP port DHCP servers listen on.
pub const SERVER_PORT: u16 = 67;
/// UDP port DHCP clients listen on.
pub const CLIENT_PORT: u16 = 68;

/// Why a configuration is refused, or why a guest frame gets no answer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DhcpError {
    // --- configuration ---
    #[error("prefix length /{0} is not usable for an instance subnet (allowed: /1 to /30)")]
    BadPrefixLen(u8),
    #[error("{0} MAC address must be a non-zero unicast address")]
    BadMac(&'static str),
    #[error("the server MAC address equals the client MAC address")]
    SameMac,
    #[error("client address {0} is not a usable host address")]
    BadClientIp(Ipv4Addr),
    #[error("{addr} is outside the subnet {network}/{prefix_len}")]
    OutsideSubnet {
        addr: Ipv4Addr,
        network: Ipv4Addr,
        prefix_len: u8,
    },
    #[error("{0} is the subnet's network or broadcast address")]
    ReservedAddress(Ipv4Addr),
    #[error("router {0} is the client's own address")]
    RouterIsClient(Ipv4Addr),
    #[error("DNS server {0} is not a usable unicast address")]
    BadDns(Ipv4Addr),
    #[error("{0} DNS servers given, at most {MAX_DNS_SERVERS} allowed")]
    TooManyDns(usize),
    #[error("hostname {0:?} is not a valid DNS name of at most 63 characters")]
    BadHostname(String),
    #[error("domain name {0:?} is not a valid DNS name")]
    BadDomain(String),
    #[error("region {0:?} is not a valid region name")]
    BadRegion(String),
    #[error("interface MTU {0} is below the minimum of {MIN_MTU}")]
    BadMtu(u16),
    #[error("lease time {0} s is outside {MIN_LEASE_SECS}..={MAX_LEASE_SECS} s")]
    BadLeaseTime(u32),
    #[error("the reply options take {0} bytes, more than fit a 576-byte DHCP message")]
    OptionsTooLarge(usize),

    // --- guest frames that get no answer ---
    #[error("not an IPv4/UDP packet to the DHCP server port")]
    NotDhcp,
    #[error("truncated Ethernet frame")]
    TruncatedEthernet,
    #[error("malformed IPv4 header or length")]
    BadIpHeader,
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
    #[error("IPv4 fragment")]
    Fragment,
    #[error("UDP length does not match the IPv4 payload")]
    BadUdpLength,
    #[error("bad UDP checksum")]
    BadUdpChecksum,
    #[error("DHCP request from UDP port {0}, not the client port")]
    BadClientPort(u16),
    #[error("DHCP message of {0} bytes is larger than {MAX_REQUEST_LEN}")]
    MessageTooLong(usize),
    #[error("DHCP message shorter than the fixed BOOTP header")]
    TruncatedMessage,
    #[error("frame or client hardware address is not the instance's MAC")]
    ForeignMac,
    #[error("not a BOOTREQUEST")]
    NotBootRequest,
    #[error("hardware type {htype} / length {hlen} is not Ethernet")]
    BadHardwareAddress { htype: u8, hlen: u8 },
    #[error("missing DHCP magic cookie")]
    BadMagic,
    #[error("relayed DHCP message (giaddr or hops set)")]
    Relayed,
    #[error("DHCP options run past the end of the message")]
    MalformedOptions,
    #[error("DHCP option {0} is malformed or repeated")]
    BadOption(u8),
    #[error("client identifier of {0} bytes is longer than {MAX_CLIENT_ID_LEN}")]
    ClientIdTooLong(usize),
    #[error("no DHCP message type option")]
    NoMessageType,
    #[error("DHCP message type {0} is not one a client sends to a server")]
    UnexpectedMessageType(u8),
    #[error("DHCPREQUEST names no address (no requested-IP option and no ciaddr)")]
    RequestWithoutAddress,
    #[error("encoding the reply failed: {0}")]
    Encode(String),
}
