//! Ethernet II / IPv4 / UDP around DHCP messages, through `smoltcp::wire`:
//! classification for the datapath, strict parsing of what the guest sent,
//! and emission of replies with correct checksums.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame, EthernetProtocol, IPV4_HEADER_LEN,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UDP_HEADER_LEN, UdpPacket, UdpRepr,
};

use super::{CLIENT_PORT, DhcpError, SERVER_PORT};

/// Largest DHCP message accepted from the guest: what fits one 1500-byte
/// MTU packet. Real clients send well under 576 bytes.
pub const MAX_REQUEST_LEN: usize = 1500 - IPV4_HEADER_LEN - UDP_HEADER_LEN;

/// TTL of replies.
const REPLY_TTL: u8 = 64;

/// True when `frame` is an IPv4/UDP packet to port 67: the datapath must
/// hand it to the DHCP server and never forward it.
///
/// Deliberately lenient (a truncated or otherwise malformed packet to port
/// 67 is still claimed, so the server can drop it instead of the host
/// network seeing it) and cheap: no checksum, no allocation. Non-first
/// fragments carry no UDP header and are not claimed.
pub fn is_dhcp_to_server(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let ip_bytes = eth.payload();
    if ip_bytes.len() < IPV4_HEADER_LEN {
        return false;
    }
    // The fixed 20-byte header is present, so these accessors stay in bounds.
    let ip = Ipv4Packet::new_unchecked(ip_bytes);
    if ip.version() != 4 || ip.next_header() != IpProtocol::Udp || ip.frag_offset() != 0 {
        return false;
    }
    let header_len = usize::from(ip.header_len());
    if header_len < IPV4_HEADER_LEN {
        return false;
    }
    // Only the two port fields are needed; the rest may be cut short.
    match ip_bytes.get(header_len..header_len.saturating_add(4)) {
        Some(ports) => u16::from_be_bytes([ports[2], ports[3]]) == SERVER_PORT,
        None => false,
    }
}

/// A well-formed DHCP-bound datagram from the guest.
#[derive(Debug)]
pub(super) struct Inbound<'a> {
    pub src_mac: [u8; 6],
    /// The UDP payload: the DHCP message.
    pub payload: &'a [u8],
}

/// Strictly parses a guest frame down to the UDP payload of a datagram to
/// port 67 from port 68.
pub(super) fn parse_inbound(frame: &[u8]) -> Result<Inbound<'_>, DhcpError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DhcpError::TruncatedEthernet)?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return Err(DhcpError::NotDhcp);
    }

    // Checks header length >= 20, header <= total length <= buffer.
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| DhcpError::BadIpHeader)?;
    if ip.version() != 4 {
        return Err(DhcpError::BadIpHeader);
    }
    if ip.next_header() != IpProtocol::Udp {
        return Err(DhcpError::NotDhcp);
    }
    if !ip.verify_checksum() {
        return Err(DhcpError::BadIpChecksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DhcpError::Fragment);
    }
    let (src_ip, dst_ip) = (ip.src_addr(), ip.dst_addr());

    // The IPv4 payload stops at total length (Ethernet padding excluded).
    let udp_bytes = ip.payload();
    let udp = UdpPacket::new_checked(udp_bytes).map_err(|_| DhcpError::BadUdpLength)?;
    if usize::from(udp.len()) != udp_bytes.len() {
        return Err(DhcpError::BadUdpLength);
    }
    if udp.dst_port() != SERVER_PORT {
        return Err(DhcpError::NotDhcp);
    }
    if udp.src_port() != CLIENT_PORT {
        return Err(DhcpError::BadClientPort(udp.src_port()));
    }
    // Zero means "no checksum". A guest that offloads checksums to the
    // device (VIRTIO_NET_HDR_F_NEEDS_CSUM, e.g. a unicast renewal through a
    // kernel UDP socket) leaves only the pseudo-header sum in place.
    let (src, dst) = (IpAddress::Ipv4(src_ip), IpAddress::Ipv4(dst_ip));
    if udp.checksum() != 0
        && !udp.verify_checksum(&src, &dst)
        && !udp.verify_partial_checksum(&src, &dst)
    {
        return Err(DhcpError::BadUdpChecksum);
    }

    let payload = udp.payload();
    if payload.len() > MAX_REQUEST_LEN {
        return Err(DhcpError::MessageTooLong(payload.len()));
    }
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(eth.src_addr().as_bytes());
    Ok(Inbound { src_mac, payload })
}

/// Addresses of one UDP datagram in one Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UdpEndpoints {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// An Ethernet II frame carrying `payload` in IPv4/UDP, with the IPv4
/// header and UDP checksums filled in. `None` if the payload cannot fit one
/// IPv4 packet.
pub(crate) fn build_udp_frame(ends: &UdpEndpoints, payload: &[u8]) -> Option<Vec<u8>> {
    let udp_len = UDP_HEADER_LEN.checked_add(payload.len())?;
    if IPV4_HEADER_LEN + udp_len > usize::from(u16::MAX) {
        return None;
    }
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + udp_len];
    let caps = ChecksumCapabilities::default();

    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_src_addr(EthernetAddress(ends.src_mac));
    eth.set_dst_addr(EthernetAddress(ends.dst_mac));
    eth.set_ethertype(EthernetProtocol::Ipv4);

    let ip_repr = Ipv4Repr {
        src_addr: ends.src_ip,
        dst_addr: ends.dst_ip,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: REPLY_TTL,
    };
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip_repr.emit(&mut ip, &caps);

    let udp_repr = UdpRepr {
        src_port: ends.src_port,
        dst_port: ends.dst_port,
    };
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    udp_repr.emit(
        &mut udp,
        &IpAddress::Ipv4(ends.src_ip),
        &IpAddress::Ipv4(ends.dst_ip),
        payload.len(),
        // The buffer was sized for exactly this payload.
        |dst| dst.copy_from_slice(payload),
        &caps,
    );
    Some(buf)
}
