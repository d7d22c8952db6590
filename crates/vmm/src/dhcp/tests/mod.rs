//! Full client exchanges built with dhcproto, hostile and malformed frames,
//! a deterministic mutation fuzz loop, classification and validation.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode, borrowed};
use dhcproto::{Decodable, Decoder, Encodable};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, UdpPacket,
};

use super::frames::{UdpEndpoints, build_udp_frame};
use super::*;

mod exchanges;
mod fuzz;
mod malformed;
mod settings;

const CLIENT_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
const OTHER_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x66];
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 23);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const OTHER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 99);
const XID: u32 = 0x1234_5678;
/// What ISC dhclient asks for by default.
const DHCLIENT_PRL: [u8; 13] = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42];

// Offsets in a client frame built here (20-byte IPv4 header).
const IP_OFF: usize = 14;
const UDP_OFF: usize = 34;
const DHCP_OFF: usize = 42;

fn config() -> DhcpConfig {
    DhcpConfig::ec2_style(CLIENT_MAC, CLIENT_IP, 24, "us-west-2").unwrap()
}

fn server() -> DhcpServer {
    DhcpServer::new(config()).unwrap()
}

/// A client message as dhclient would build it.
fn client_msg(ty: MessageType) -> Message {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut msg = Message::new_with_id(XID, zero, zero, zero, zero, &CLIENT_MAC);
    msg.opts_mut().insert(DhcpOption::MessageType(ty));
    msg.opts_mut().insert(DhcpOption::ParameterRequestList(
        DHCLIENT_PRL.iter().map(|&c| OptionCode::from(c)).collect(),
    ));
    msg
}

fn frame_with(payload: &[u8], src_mac: [u8; 6], src_ip: Ipv4Addr, dst_ip: Ipv4Addr) -> Vec<u8> {
    let ends = UdpEndpoints {
        src_mac,
        dst_mac: BROADCAST_MAC,
        src_ip,
        dst_ip,
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
    };
    build_udp_frame(&ends, payload).unwrap()
}

/// Broadcast from an unconfigured client.
fn broadcast_frame(msg: &Message) -> Vec<u8> {
    frame_with(
        &msg.to_vec().unwrap(),
        CLIENT_MAC,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
    )
}

fn discover() -> Message {
    client_msg(MessageType::Discover)
}

fn request_selecting(server_id: Ipv4Addr, requested: Ipv4Addr) -> Message {
    let mut msg = client_msg(MessageType::Request);
    msg.opts_mut()
        .insert(DhcpOption::ServerIdentifier(server_id));
    msg.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(requested));
    msg
}

fn request_init_reboot(requested: Ipv4Addr) -> Message {
    let mut msg = client_msg(MessageType::Request);
    msg.opts_mut()
        .insert(DhcpOption::RequestedIpAddress(requested));
    msg
}

fn request_renewing(ciaddr: Ipv4Addr) -> Message {
    let mut msg = client_msg(MessageType::Request);
    msg.set_ciaddr(ciaddr);
    msg
}

/// A unicast renewal straight to the server, as from a configured client.
fn renew_frame(ciaddr: Ipv4Addr) -> Vec<u8> {
    frame_with(
        &request_renewing(ciaddr).to_vec().unwrap(),
        CLIENT_MAC,
        ciaddr,
        ROUTER,
    )
}

/// A reply frame, checked layer by layer on the way down.
#[derive(Debug)]
struct Reply {
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    ip_total_len: usize,
    dhcp_len: usize,
    msg: Message,
    /// Option codes in wire order.
    codes: Vec<u8>,
}

impl Reply {
    fn opt(&self, code: OptionCode) -> Option<&DhcpOption> {
        self.msg.opts().get(code)
    }
}

fn parse_reply(frame: &[u8]) -> Reply {
    let eth = EthernetFrame::new_checked(frame).expect("Ethernet");
    assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("IPv4");
    assert_eq!(ip.version(), 4);
    assert_eq!(ip.header_len(), 20);
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    assert_eq!(ip.next_header(), IpProtocol::Udp);
    assert!(!ip.more_frags() && ip.frag_offset() == 0);
    assert_eq!(usize::from(ip.total_len()), eth.payload().len());
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let udp = UdpPacket::new_checked(ip.payload()).expect("UDP");
    assert_eq!(usize::from(udp.len()), ip.payload().len());
    assert_ne!(udp.checksum(), 0, "UDP checksum must be filled in");
    assert!(
        udp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)),
        "UDP checksum"
    );
    assert_eq!(udp.src_port(), SERVER_PORT);
    assert_eq!(udp.dst_port(), CLIENT_PORT);
    let payload = udp.payload();
    let msg = Message::decode(&mut Decoder::new(payload)).expect("DHCP");
    assert_eq!(msg.opcode(), Opcode::BootReply);
    assert_eq!(msg.chaddr(), &CLIENT_MAC[..]);
    let codes = borrowed::Message::new(payload)
        .unwrap()
        .opts()
        .map(|o| u8::from(o.code()))
        .collect();
    let mut eth_src = [0; 6];
    eth_src.copy_from_slice(eth.src_addr().as_bytes());
    let mut eth_dst = [0; 6];
    eth_dst.copy_from_slice(eth.dst_addr().as_bytes());
    Reply {
        eth_src,
        eth_dst,
        ip_src: src,
        ip_dst: dst,
        ip_total_len: usize::from(ip.total_len()),
        dhcp_len: payload.len(),
        msg,
        codes,
    }
}

fn exchange(server: &mut DhcpServer, frame: &[u8]) -> Reply {
    let reply = server
        .try_handle_frame(frame)
        .expect("accepted")
        .expect("answered");
    let reply = parse_reply(&reply);
    assert_eq!(reply.msg.xid(), XID);
    reply
}

fn msg_type(reply: &Reply) -> MessageType {
    reply.msg.opts().msg_type().expect("message type")
}

/// The lease and configuration options every OFFER/ACK carries.
fn assert_lease_options(reply: &Reply) {
    let cfg = config();
    assert_eq!(
        reply.opt(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(ROUTER))
    );
    assert_eq!(
        reply.opt(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    assert_eq!(
        reply.opt(OptionCode::Renewal),
        Some(&DhcpOption::Renewal(1800))
    );
    assert_eq!(
        reply.opt(OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
    assert_config_options(reply, &cfg);
}

fn assert_config_options(reply: &Reply, cfg: &DhcpConfig) {
    assert_eq!(
        reply.opt(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        reply.opt(OptionCode::Router),
        Some(&DhcpOption::Router(vec![cfg.router]))
    );
    assert_eq!(
        reply.opt(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(cfg.dns.clone()))
    );
    assert_eq!(
        reply.opt(OptionCode::Hostname),
        Some(&DhcpOption::Hostname(cfg.hostname.clone()))
    );
    assert_eq!(
        reply.opt(OptionCode::DomainName),
        Some(&DhcpOption::DomainName(cfg.domain.clone()))
    );
    assert_eq!(
        reply.opt(OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(cfg.mtu))
    );
    assert_eq!(
        reply.opt(OptionCode::BroadcastAddr),
        Some(&DhcpOption::BroadcastAddr(cfg.broadcast()))
    );
}

/// Recomputes lengths and checksums of a client frame built by
/// `frame_with` after its DHCP payload was edited, so the edit reaches the
/// DHCP layer. The UDP checksum is left out (zero).
fn fix_up(frame: &mut [u8]) {
    if frame.len() < DHCP_OFF {
        return;
    }
    let ip_len = u16::try_from(frame.len() - IP_OFF).unwrap();
    let udp_len = u16::try_from(frame.len() - UDP_OFF).unwrap();
    frame[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&udp_len.to_be_bytes());
    frame[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&[0, 0]);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[IP_OFF..]);
    ip.set_total_len(ip_len);
    if usize::from(ip.header_len()) <= usize::from(ip_len) && ip.header_len() >= 20 {
        ip.fill_checksum();
    }
}

fn edited(payload_edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut payload = discover().to_vec().unwrap();
    payload_edit(&mut payload);
    let mut frame = broadcast_frame(&discover());
    frame.truncate(DHCP_OFF);
    frame.extend_from_slice(&payload);
    fix_up(&mut frame);
    frame
}

fn ip_edited(edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> Vec<u8> {
    let mut frame = broadcast_frame(&discover());
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[IP_OFF..]);
    edit(&mut ip);
    ip.fill_checksum();
    frame
}
