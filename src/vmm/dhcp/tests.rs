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

// ---------------------------------------------------------------- exchanges

#[test]
fn discover_offer_request_ack() {
    let mut server = server();

    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    assert_eq!(msg_type(&offer), MessageType::Offer);
    assert_eq!(offer.msg.yiaddr(), CLIENT_IP);
    assert_eq!(offer.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.msg.giaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.msg.flags(), Flags::default());
    assert_lease_options(&offer);
    // No broadcast flag, no address: unicast to the hardware address + yiaddr.
    assert_eq!(offer.eth_src, EC2_GATEWAY_MAC);
    assert_eq!(offer.eth_dst, CLIENT_MAC);
    assert_eq!(offer.ip_src, ROUTER);
    assert_eq!(offer.ip_dst, CLIENT_IP);
    assert!(offer.dhcp_len >= 300, "BOOTP minimum size");
    assert!(offer.ip_total_len <= 576);

    let Some(DhcpOption::ServerIdentifier(server_id)) = offer.opt(OptionCode::ServerIdentifier)
    else {
        panic!("no server identifier");
    };
    let request = request_selecting(*server_id, offer.msg.yiaddr());
    let ack = exchange(&mut server, &broadcast_frame(&request));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.yiaddr(), CLIENT_IP);
    assert_lease_options(&ack);
    assert_eq!(ack.eth_dst, CLIENT_MAC);
    assert_eq!(ack.ip_dst, CLIENT_IP);

    let stats = server.stats();
    assert_eq!(
        (stats.offers, stats.acks, stats.naks, stats.dropped),
        (1, 1, 0, 0)
    );
}

#[test]
fn broadcast_flag_gets_broadcast_reply() {
    let mut server = server();
    let mut msg = discover();
    msg.set_flags(Flags::default().set_broadcast());
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    assert!(offer.msg.flags().broadcast(), "flags are copied");
    assert_eq!(offer.eth_dst, BROADCAST_MAC);
    assert_eq!(offer.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(offer.msg.yiaddr(), CLIENT_IP);
}

#[test]
fn renewal_is_unicast_to_ciaddr() {
    let mut server = server();
    let ack = exchange(&mut server, &renew_frame(CLIENT_IP));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.ciaddr(), CLIENT_IP);
    assert_eq!(ack.msg.yiaddr(), CLIENT_IP);
    assert_lease_options(&ack);
    assert_eq!(ack.eth_dst, CLIENT_MAC);
    assert_eq!(ack.ip_dst, CLIENT_IP);
}

#[test]
fn rebinding_broadcast_with_ciaddr_is_answered_unicast() {
    let mut server = server();
    let mut msg = request_renewing(CLIENT_IP);
    msg.set_flags(Flags::default().set_broadcast());
    let frame = frame_with(
        &msg.to_vec().unwrap(),
        CLIENT_MAC,
        CLIENT_IP,
        Ipv4Addr::BROADCAST,
    );
    let ack = exchange(&mut server, &frame);
    assert_eq!(msg_type(&ack), MessageType::Ack);
    // A client with an address gets unicast whatever the flag says.
    assert_eq!(ack.ip_dst, CLIENT_IP);
    assert_eq!(ack.eth_dst, CLIENT_MAC);
}

#[test]
fn renewal_of_another_address_is_naked() {
    let mut server = server();
    let nak = exchange(&mut server, &renew_frame(OTHER_IP));
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(nak.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.eth_dst, BROADCAST_MAC);
    assert_eq!(nak.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(nak.opt(OptionCode::AddressLeaseTime), None);
}

#[test]
fn init_reboot_right_address_acks() {
    let mut server = server();
    let ack = exchange(
        &mut server,
        &broadcast_frame(&request_init_reboot(CLIENT_IP)),
    );
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.yiaddr(), CLIENT_IP);
    assert_eq!(ack.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_lease_options(&ack);
    assert_eq!(ack.ip_dst, CLIENT_IP);
}

#[test]
fn init_reboot_wrong_address_naks() {
    let mut server = server();
    // An address from the instance's previous life on another subnet.
    let stale = Ipv4Addr::new(192, 168, 7, 7);
    let nak = exchange(&mut server, &broadcast_frame(&request_init_reboot(stale)));
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(nak.eth_src, EC2_GATEWAY_MAC);
    assert_eq!(nak.eth_dst, BROADCAST_MAC);
    assert_eq!(nak.ip_src, ROUTER);
    assert_eq!(nak.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(nak.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        nak.opt(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(ROUTER))
    );
    assert!(matches!(
        nak.opt(OptionCode::Message),
        Some(DhcpOption::Message(_))
    ));
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::Hostname,
    ] {
        assert_eq!(nak.opt(code), None, "{code:?} in a NAK");
    }
    assert_eq!(server.stats().naks, 1);
}

#[test]
fn selecting_wrong_address_naks() {
    let mut server = server();
    let nak = exchange(
        &mut server,
        &broadcast_frame(&request_selecting(ROUTER, OTHER_IP)),
    );
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(nak.ip_dst, Ipv4Addr::BROADCAST);
}

#[test]
fn request_for_another_server_gets_no_reply() {
    let mut server = server();
    let frame = broadcast_frame(&request_selecting(Ipv4Addr::new(10, 0, 1, 5), CLIENT_IP));
    assert_eq!(server.try_handle_frame(&frame), Ok(None));
    assert_eq!(server.stats(), DhcpStats::default());
}

#[test]
fn request_naming_no_address_is_dropped() {
    let mut server = server();
    let frame = broadcast_frame(&client_msg(MessageType::Request));
    assert_eq!(
        server.try_handle_frame(&frame),
        Err(DhcpError::RequestWithoutAddress)
    );
}

#[test]
fn inform_gets_ack_without_lease() {
    let mut server = server();
    let mut msg = client_msg(MessageType::Inform);
    msg.set_ciaddr(CLIENT_IP);
    let frame = frame_with(&msg.to_vec().unwrap(), CLIENT_MAC, CLIENT_IP, ROUTER);
    let ack = exchange(&mut server, &frame);
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.msg.ciaddr(), CLIENT_IP);
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        assert_eq!(ack.opt(code), None, "{code:?} in an INFORM ACK");
    }
    assert_config_options(&ack, &config());
    assert_eq!(ack.eth_dst, CLIENT_MAC);
    assert_eq!(ack.ip_dst, CLIENT_IP);
}

#[test]
fn release_and_decline_get_no_reply() {
    let mut server = server();
    let mut release = client_msg(MessageType::Release);
    release.set_ciaddr(CLIENT_IP);
    release
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(ROUTER));
    let frame = frame_with(&release.to_vec().unwrap(), CLIENT_MAC, CLIENT_IP, ROUTER);
    assert_eq!(server.try_handle_frame(&frame), Ok(None));
    assert_eq!(server.handle_frame(&frame), None);

    let mut decline = request_selecting(ROUTER, CLIENT_IP);
    decline
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Decline));
    assert_eq!(
        server.try_handle_frame(&broadcast_frame(&decline)),
        Ok(None)
    );

    let stats = server.stats();
    assert_eq!((stats.releases, stats.declines, stats.dropped), (2, 1, 0));
}

#[test]
fn server_message_types_from_the_guest_are_dropped() {
    let mut server = server();
    for ty in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        assert_eq!(
            server.try_handle_frame(&broadcast_frame(&client_msg(ty))),
            Err(DhcpError::UnexpectedMessageType(u8::from(ty)))
        );
    }
    let frame = broadcast_frame(&client_msg(MessageType::Unknown(200)));
    assert_eq!(
        server.try_handle_frame(&frame),
        Err(DhcpError::UnexpectedMessageType(200))
    );
}

#[test]
fn options_follow_parameter_request_list_order() {
    let mut server = server();
    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    // Type, server id, lease times; then the PRL's order of the options we
    // serve (1, 28, 3, 15, 6, 12, 26 from dhclient's list); then End.
    assert_eq!(
        offer.codes,
        vec![53, 54, 51, 58, 59, 1, 28, 3, 15, 6, 12, 26]
    );

    let mut msg = discover();
    msg.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::InterfaceMtu,
        OptionCode::Router,
        OptionCode::Router,
        OptionCode::ClasslessStaticRoute,
    ]));
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    // Requested ones first (duplicates once), then the other essentials.
    assert_eq!(
        offer.codes,
        vec![53, 54, 51, 58, 59, 26, 3, 1, 6, 12, 15, 28]
    );
}

#[test]
fn essentials_are_sent_without_parameter_request_list() {
    let mut server = server();
    let mut msg = discover();
    msg.opts_mut().remove(OptionCode::ParameterRequestList);
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    assert_lease_options(&offer);
    assert_eq!(
        offer.codes,
        vec![53, 54, 51, 58, 59, 1, 3, 6, 12, 15, 26, 28]
    );
}

#[test]
fn client_identifier_is_echoed() {
    let mut server = server();
    let mut msg = discover();
    let mut id = vec![1];
    id.extend_from_slice(&CLIENT_MAC);
    msg.opts_mut()
        .insert(DhcpOption::ClientIdentifier(id.clone()));
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    assert_eq!(
        offer.opt(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(id))
    );

    let mut msg = discover();
    msg.opts_mut().insert(DhcpOption::ClientIdentifier(vec![
        0xff;
        MAX_CLIENT_ID_LEN + 1
    ]));
    assert_eq!(
        server.try_handle_frame(&broadcast_frame(&msg)),
        Err(DhcpError::ClientIdTooLong(MAX_CLIENT_ID_LEN + 1))
    );
}

#[test]
fn ec2_mtu_and_us_east_1_domain_reach_the_guest() {
    let mut cfg = DhcpConfig::ec2_style(CLIENT_MAC, CLIENT_IP, 24, "us-east-1").unwrap();
    cfg.mtu = EC2_MTU;
    let mut server = DhcpServer::new(cfg).unwrap();
    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    assert_eq!(
        offer.opt(OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(9001))
    );
    assert_eq!(
        offer.opt(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("ec2.internal".to_string()))
    );
    assert_eq!(
        offer.opt(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("ip-10-0-1-23".to_string()))
    );
}

#[test]
fn empty_optional_settings_omit_their_options() {
    let mut cfg = config();
    cfg.dns.clear();
    cfg.hostname.clear();
    cfg.domain.clear();
    let mut server = DhcpServer::new(cfg).unwrap();
    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    assert_eq!(offer.codes, vec![53, 54, 51, 58, 59, 1, 28, 3, 26]);
}

#[test]
fn largest_reply_fits_576_bytes_and_matches_the_size_estimate() {
    let mut cfg = config();
    cfg.dns = vec![
        DNS,
        Ipv4Addr::new(8, 8, 8, 8),
        Ipv4Addr::new(1, 1, 1, 1),
        OTHER_IP,
    ];
    cfg.hostname = "h".repeat(63);
    cfg.domain = format!("{}.{}", "d".repeat(63), "e".repeat(40));
    cfg.validate().unwrap();
    let mut server = DhcpServer::new(cfg.clone()).unwrap();

    let mut msg = request_init_reboot(CLIENT_IP);
    msg.opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![7; MAX_CLIENT_ID_LEN]));
    let reply = server.handle_frame(&broadcast_frame(&msg)).unwrap();
    let ack = parse_reply(&reply);
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert!(ack.ip_total_len <= 576, "{} bytes", ack.ip_total_len);

    // The options area up to End, without the client id echo.
    let payload = &reply[DHCP_OFF..];
    let mut at = 240;
    while payload[at] != 255 {
        at += 2 + usize::from(payload[at + 1]);
    }
    let options_len = at + 1 - 240 - (2 + MAX_CLIENT_ID_LEN);
    assert_eq!(options_len, cfg.max_options_len());
}

// ------------------------------------------------------- foreign and malformed

#[test]
fn other_macs_are_ignored() {
    let mut server = server();
    // Ethernet source of another machine.
    let payload = discover().to_vec().unwrap();
    let frame = frame_with(
        &payload,
        OTHER_MAC,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
    );
    assert!(is_dhcp_to_server(&frame));
    assert_eq!(server.try_handle_frame(&frame), Err(DhcpError::ForeignMac));
    // Our Ethernet source, someone else's chaddr (a spoofing guest).
    let mut msg = discover();
    msg.set_chaddr(&OTHER_MAC);
    assert_eq!(
        server.try_handle_frame(&broadcast_frame(&msg)),
        Err(DhcpError::ForeignMac)
    );
    assert_eq!(server.stats().dropped, 2);
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

#[test]
fn malformed_frames_are_dropped() {
    let good = broadcast_frame(&discover());
    assert!(server().handle_frame(&good).is_some());

    let mut cases: Vec<(&str, Vec<u8>, DhcpError)> = vec![
        ("empty", vec![], DhcpError::TruncatedEthernet),
        (
            "short Ethernet",
            good[..13].to_vec(),
            DhcpError::TruncatedEthernet,
        ),
        ("Ethernet only", good[..14].to_vec(), DhcpError::BadIpHeader),
        ("short IPv4", good[..30].to_vec(), DhcpError::BadIpHeader),
        (
            "cut in UDP header",
            good[..38].to_vec(),
            DhcpError::BadIpHeader,
        ),
        ("cut in DHCP", good[..200].to_vec(), DhcpError::BadIpHeader),
    ];

    let mut vlan = good.clone();
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    cases.push(("VLAN tag", vlan, DhcpError::NotDhcp));
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    cases.push(("ARP", arp, DhcpError::NotDhcp));

    cases.push((
        "IHL 4",
        ip_edited(|ip| ip.set_header_len(16)),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "IHL past total length",
        ip_edited(|ip| {
            ip.set_header_len(60);
            ip.set_total_len(40);
        }),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "total length past frame",
        ip_edited(|ip| ip.set_total_len(1400)),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "IPv6 version",
        ip_edited(|ip| ip.set_version(6)),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "TCP",
        ip_edited(|ip| ip.set_next_header(IpProtocol::Tcp)),
        DhcpError::NotDhcp,
    ));
    cases.push((
        "more fragments",
        ip_edited(|ip| ip.set_more_frags(true)),
        DhcpError::Fragment,
    ));
    cases.push((
        "fragment offset",
        ip_edited(|ip| ip.set_frag_offset(64)),
        DhcpError::Fragment,
    ));
    let mut bad_ip_csum = good.clone();
    bad_ip_csum[IP_OFF + 10] ^= 0x55;
    cases.push(("IPv4 checksum", bad_ip_csum, DhcpError::BadIpChecksum));

    let mut udp_long = good.clone();
    let len = u16::from_be_bytes([good[UDP_OFF + 4], good[UDP_OFF + 5]]);
    udp_long[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&(len + 1).to_be_bytes());
    cases.push(("UDP length past IPv4", udp_long, DhcpError::BadUdpLength));
    let mut udp_short = good.clone();
    udp_short[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&(len - 10).to_be_bytes());
    cases.push((
        "UDP length short of IPv4",
        udp_short,
        DhcpError::BadUdpLength,
    ));
    let mut udp_tiny = good.clone();
    udp_tiny[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&4u16.to_be_bytes());
    cases.push(("UDP length below header", udp_tiny, DhcpError::BadUdpLength));
    let mut bad_udp_csum = good.clone();
    bad_udp_csum[UDP_OFF + 6] ^= 0x55;
    cases.push(("UDP checksum", bad_udp_csum, DhcpError::BadUdpChecksum));
    let mut to_dns = good.clone();
    to_dns[UDP_OFF + 2..UDP_OFF + 4].copy_from_slice(&53u16.to_be_bytes());
    cases.push(("UDP to port 53", to_dns, DhcpError::NotDhcp));
    let mut from_67 = good.clone();
    from_67[UDP_OFF..UDP_OFF + 2].copy_from_slice(&67u16.to_be_bytes());
    fix_up(&mut from_67);
    cases.push(("from port 67", from_67, DhcpError::BadClientPort(67)));

    cases.push((
        "DHCP shorter than BOOTP header",
        edited(|p| p.truncate(239)),
        DhcpError::TruncatedMessage,
    ));
    cases.push(("BOOTREPLY", edited(|p| p[0] = 2), DhcpError::NotBootRequest));
    cases.push((
        "htype 6",
        edited(|p| p[1] = 6),
        DhcpError::BadHardwareAddress { htype: 6, hlen: 6 },
    ));
    cases.push((
        "hlen 16",
        edited(|p| p[2] = 16),
        DhcpError::BadHardwareAddress { htype: 1, hlen: 16 },
    ));
    cases.push((
        "hlen 255",
        edited(|p| p[2] = 255),
        DhcpError::BadHardwareAddress {
            htype: 1,
            hlen: 255,
        },
    ));
    cases.push(("hops", edited(|p| p[3] = 1), DhcpError::Relayed));
    cases.push(("giaddr", edited(|p| p[24] = 10), DhcpError::Relayed));
    cases.push(("magic cookie", edited(|p| p[236] = 0), DhcpError::BadMagic));
    cases.push((
        "no options",
        edited(|p| p.truncate(240)),
        DhcpError::NoMessageType,
    ));
    cases.push((
        "only End",
        edited(|p| {
            p.truncate(240);
            p.push(255);
        }),
        DhcpError::NoMessageType,
    ));
    cases.push((
        "option length past the end",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 12, 200, b'x']);
        }),
        DhcpError::MalformedOptions,
    ));
    cases.push((
        "option length byte missing",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 12]);
        }),
        DhcpError::MalformedOptions,
    ));
    cases.push((
        "message type of length 2",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 2, 1, 1, 255]);
        }),
        DhcpError::BadOption(53),
    ));
    cases.push((
        "message type twice",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 0, 53, 1, 3, 255]);
        }),
        DhcpError::BadOption(53),
    ));
    cases.push((
        "requested IP of length 3",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 3, 50, 3, 10, 0, 1, 255]);
        }),
        DhcpError::BadOption(50),
    ));
    cases.push((
        "server id of length 5",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 3, 54, 5, 10, 0, 1, 1, 1, 255]);
        }),
        DhcpError::BadOption(54),
    ));
    cases.push((
        "client id of length 1",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 61, 1, 1, 255]);
        }),
        DhcpError::BadOption(61),
    ));
    cases.push((
        "oversized message",
        edited(|p| p.resize(MAX_REQUEST_LEN + 1, 0)),
        DhcpError::MessageTooLong(MAX_REQUEST_LEN + 1),
    ));

    let mut server = server();
    for (name, frame, expected) in cases {
        assert_eq!(server.try_handle_frame(&frame), Err(expected), "{name}");
        assert_eq!(server.handle_frame(&frame), None, "{name}");
    }
}

#[test]
fn tolerated_variations_are_answered() {
    let mut server = server();
    let good = broadcast_frame(&discover());

    // Ethernet padding after the IPv4 packet.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 32]);
    assert!(server.handle_frame(&padded).is_some(), "Ethernet padding");

    // No UDP checksum.
    let mut no_csum = good.clone();
    no_csum[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&[0, 0]);
    assert!(server.handle_frame(&no_csum).is_some(), "zero UDP checksum");

    // Checksum offloaded to the device: only the pseudo-header sum is there.
    let mut partial = good.clone();
    {
        let ip = Ipv4Packet::new_checked(&partial[IP_OFF..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let udp_len = u32::try_from(ip.payload().len()).unwrap();
        let mut sum = u32::from(u8::from(IpProtocol::Udp)) + udp_len;
        for addr in [src, dst] {
            let o = addr.octets();
            sum += u32::from(u16::from_be_bytes([o[0], o[1]]));
            sum += u32::from(u16::from_be_bytes([o[2], o[3]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let sum = u16::try_from(sum).unwrap();
        partial[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
    }
    assert!(server.handle_frame(&partial).is_some(), "partial checksum");

    // Options after End, and pad bytes, are ignored; a missing End is fine.
    let after_end = edited(|p| p.extend_from_slice(&[53, 1, 7, 0, 0]));
    assert!(server.handle_frame(&after_end).is_some(), "junk after End");
    let no_end = edited(|p| {
        p.truncate(240);
        p.extend_from_slice(&[0, 0, 53, 1, 1]);
    });
    assert!(server.handle_frame(&no_end).is_some(), "no End");

    // An RFC 3396 split parameter request list is joined.
    let split = edited(|p| {
        p.truncate(240);
        p.extend_from_slice(&[53, 1, 1, 55, 1, 26, 55, 2, 15, 3, 255]);
    });
    let offer = parse_reply(&server.handle_frame(&split).unwrap());
    assert_eq!(&offer.codes[5..8], &[26, 15, 3]);

    // IPv4 options in the header.
    let mut with_ip_options = good[..IP_OFF + 20].to_vec();
    with_ip_options.extend_from_slice(&[1, 1, 1, 0]); // NOP, NOP, NOP, EOL
    with_ip_options.extend_from_slice(&good[UDP_OFF..]);
    {
        let total = u16::try_from(with_ip_options.len() - IP_OFF).unwrap();
        let mut ip = Ipv4Packet::new_unchecked(&mut with_ip_options[IP_OFF..]);
        ip.set_header_len(24);
        ip.set_total_len(total);
        ip.fill_checksum();
    }
    assert!(
        server.handle_frame(&with_ip_options).is_some(),
        "IPv4 options"
    );
}

#[test]
fn every_option_code_and_length_is_survived() {
    let mut server = server();
    let ours = [0, 50, 53, 54, 55, 61, 255];
    for code in 0..=255u8 {
        for len in [0u8, 1, 2, 3, 4, 5, 16, 255] {
            let frame = edited(|p| {
                assert_eq!(p.pop(), Some(255));
                p.push(code);
                p.push(len);
                p.extend((0..len).map(|i| i.wrapping_mul(37)));
                p.push(255);
            });
            let reply = server.handle_frame(&frame);
            if !ours.contains(&code) {
                assert!(reply.is_some(), "option {code} length {len}");
            }
            if let Some(reply) = reply {
                parse_reply(&reply);
            }
        }
    }
}

// ------------------------------------------------------------------ fuzzing

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn fuzz_seeds() -> Vec<Vec<u8>> {
    let mut with_id = request_selecting(ROUTER, CLIENT_IP);
    with_id
        .opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![1, 2, 3, 4, 5, 6, 7]));
    with_id
        .opts_mut()
        .insert(DhcpOption::Hostname("guest".to_string()));
    let mut inform = client_msg(MessageType::Inform);
    inform.set_ciaddr(CLIENT_IP);
    vec![
        broadcast_frame(&discover()),
        broadcast_frame(&with_id),
        broadcast_frame(&request_init_reboot(CLIENT_IP)),
        renew_frame(CLIENT_IP),
        frame_with(&inform.to_vec().unwrap(), CLIENT_MAC, CLIENT_IP, ROUTER),
    ]
}

#[test]
fn fuzzed_frames_never_panic() {
    let seeds = fuzz_seeds();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut server = server();
    let mut replies = 0;
    for round in 0..30_000 {
        let mut frame = seeds[round % seeds.len()].clone();
        match rng.below(7) {
            // Cut anywhere.
            0 => frame.truncate(rng.below(frame.len() + 1)),
            // Flip bytes anywhere; checksums mostly catch it.
            1 => {
                for _ in 0..=rng.below(8) {
                    let at = rng.below(frame.len());
                    frame[at] ^= rng.byte() | 1;
                }
            }
            // Flip bytes in the headers, with lengths and checksum redone.
            2 => {
                for _ in 0..=rng.below(4) {
                    let at = IP_OFF + rng.below(DHCP_OFF - IP_OFF);
                    frame[at] ^= rng.byte() | 1;
                }
                if rng.below(2) == 0 {
                    fix_up(&mut frame);
                }
            }
            // Flip bytes in the DHCP message, consistently framed.
            3 => {
                for _ in 0..=rng.below(8) {
                    let at = DHCP_OFF + rng.below(frame.len() - DHCP_OFF);
                    frame[at] = rng.byte();
                }
                fix_up(&mut frame);
            }
            // Shorten the DHCP message, consistently framed.
            4 => {
                frame.truncate(DHCP_OFF + rng.below(frame.len() - DHCP_OFF + 1));
                fix_up(&mut frame);
            }
            // Random option TLVs after a valid message type.
            5 => {
                frame.truncate(DHCP_OFF + 240);
                frame.extend_from_slice(&[53, 1, 1 + u8::try_from(rng.below(8)).unwrap()]);
                for _ in 0..rng.below(400) {
                    frame.push(rng.byte());
                }
                fix_up(&mut frame);
            }
            // Random option TLVs with plausible lengths.
            _ => {
                frame.truncate(DHCP_OFF + 240);
                frame.extend_from_slice(&[53, 1, 3]);
                for _ in 0..rng.below(20) {
                    let code = [50, 53, 54, 55, 61, 12, 57, 81, 82, 94, 118, 121][rng.below(12)];
                    let len = rng.below(9);
                    frame.push(code);
                    frame.push(u8::try_from(len).unwrap());
                    for _ in 0..len {
                        frame.push(rng.byte());
                    }
                }
                if rng.below(2) == 0 {
                    frame.push(255);
                }
                fix_up(&mut frame);
            }
        }
        let claimed = is_dhcp_to_server(&frame);
        if let Some(reply) = server.handle_frame(&frame) {
            assert!(claimed, "answered a frame the datapath would forward");
            parse_reply(&reply);
            replies += 1;
        }
    }
    // The loop must reach the DHCP layer, not only bounce off checksums.
    assert!(replies > 1_000, "only {replies} replies");
}

// ----------------------------------------------------------- classification

#[test]
fn is_dhcp_to_server_classifies() {
    let good = broadcast_frame(&discover());
    assert!(is_dhcp_to_server(&good));
    assert!(is_dhcp_to_server(&renew_frame(CLIENT_IP)));
    // Malformed but aimed at port 67: still claimed so it never leaves.
    assert!(is_dhcp_to_server(&good[..DHCP_OFF]), "empty payload");
    assert!(is_dhcp_to_server(&good[..UDP_OFF + 4]), "ports only");
    let mut bad_csum = good.clone();
    bad_csum[IP_OFF + 10] ^= 1;
    assert!(is_dhcp_to_server(&bad_csum), "bad checksum");
    assert!(
        is_dhcp_to_server(&ip_edited(|ip| ip.set_more_frags(true))),
        "first fragment"
    );

    assert!(!is_dhcp_to_server(&[]));
    assert!(!is_dhcp_to_server(&good[..13]));
    assert!(!is_dhcp_to_server(&good[..IP_OFF + 19]));
    assert!(!is_dhcp_to_server(&good[..UDP_OFF + 3]));
    assert!(
        !is_dhcp_to_server(&ip_edited(|ip| ip.set_frag_offset(8))),
        "later fragment"
    );
    assert!(!is_dhcp_to_server(&ip_edited(
        |ip| ip.set_next_header(IpProtocol::Tcp)
    )));
    assert!(!is_dhcp_to_server(&ip_edited(|ip| ip.set_version(6))));
    assert!(!is_dhcp_to_server(&ip_edited(|ip| ip.set_header_len(16))));
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(!is_dhcp_to_server(&arp));

    // Server-to-client traffic (our own replies) and other UDP.
    let reply = server().handle_frame(&good).unwrap();
    assert!(!is_dhcp_to_server(&reply));
    let ends = UdpEndpoints {
        src_mac: CLIENT_MAC,
        dst_mac: OTHER_MAC,
        src_ip: CLIENT_IP,
        dst_ip: Ipv4Addr::new(169, 254, 169, 254),
        src_port: 40000,
        dst_port: 53,
    };
    assert!(!is_dhcp_to_server(
        &build_udp_frame(&ends, b"query").unwrap()
    ));
    // Any client port, any destination: port 67 is claimed.
    let ends = UdpEndpoints {
        dst_port: 67,
        ..ends
    };
    assert!(is_dhcp_to_server(&build_udp_frame(&ends, b"x").unwrap()));
}

// --------------------------------------------------------------- validation

#[test]
fn ec2_style_derives_ec2_values() {
    let cfg = config();
    assert_eq!(cfg.router, ROUTER);
    assert_eq!(cfg.dns, vec![DNS]);
    assert_eq!(cfg.hostname, "ip-10-0-1-23");
    assert_eq!(cfg.domain, "us-west-2.compute.internal");
    assert_eq!(cfg.mtu, DEFAULT_MTU);
    assert_eq!(cfg.lease_secs, DEFAULT_LEASE_SECS);
    assert_eq!(cfg.server_mac, EC2_GATEWAY_MAC);
    assert_eq!(cfg.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(cfg.broadcast(), Ipv4Addr::new(10, 0, 1, 255));
    assert_eq!((cfg.t1_secs(), cfg.t2_secs()), (1800, 3150));

    let cfg = DhcpConfig::ec2_style(CLIENT_MAC, Ipv4Addr::new(172, 31, 22, 135), 20, "us-east-1")
        .unwrap();
    assert_eq!(cfg.router, Ipv4Addr::new(172, 31, 16, 1));
    assert_eq!(cfg.dns, vec![Ipv4Addr::new(172, 31, 16, 2)]);
    assert_eq!(cfg.netmask(), Ipv4Addr::new(255, 255, 240, 0));
    assert_eq!(cfg.broadcast(), Ipv4Addr::new(172, 31, 31, 255));
    assert_eq!(cfg.hostname, "ip-172-31-22-135");
    assert_eq!(cfg.domain, "ec2.internal");

    assert_eq!(
        ec2_domain("ap-northeast-1").unwrap(),
        "ap-northeast-1.compute.internal"
    );
}

#[test]
fn ec2_style_rejects_bad_input() {
    let ec2 = |ip: Ipv4Addr, prefix: u8, region: &str| {
        DhcpConfig::ec2_style(CLIENT_MAC, ip, prefix, region).unwrap_err()
    };
    for prefix in [0, 31, 32, 33, 255] {
        assert_eq!(
            ec2(CLIENT_IP, prefix, "us-west-2"),
            DhcpError::BadPrefixLen(prefix)
        );
    }
    for region in ["", "US West!", "-us", "us.west", &"r".repeat(64)] {
        assert_eq!(
            ec2(CLIENT_IP, 24, region),
            DhcpError::BadRegion(region.to_string())
        );
    }
    let net = Ipv4Addr::new(10, 0, 1, 0);
    assert_eq!(ec2(net, 24, "us-west-2"), DhcpError::ReservedAddress(net));
    let bcast = Ipv4Addr::new(10, 0, 1, 255);
    assert_eq!(
        ec2(bcast, 24, "us-west-2"),
        DhcpError::ReservedAddress(bcast)
    );
    assert_eq!(
        ec2(ROUTER, 24, "us-west-2"),
        DhcpError::RouterIsClient(ROUTER)
    );
    assert_eq!(ec2(DNS, 24, "us-west-2"), DhcpError::BadDns(DNS));
    let multicast = Ipv4Addr::new(224, 0, 0, 5);
    assert_eq!(
        ec2(multicast, 24, "us-west-2"),
        DhcpError::BadClientIp(multicast)
    );
    assert_eq!(
        DhcpConfig::ec2_style([0x01, 0, 0, 0, 0, 1], CLIENT_IP, 24, "us-west-2").unwrap_err(),
        DhcpError::BadMac("client")
    );
}

#[test]
fn validate_rejects_each_bad_field() {
    let check = |edit: &dyn Fn(&mut DhcpConfig), expected: DhcpError| {
        let mut cfg = config();
        edit(&mut cfg);
        assert_eq!(cfg.validate(), Err(expected.clone()), "{expected}");
        assert_eq!(DhcpServer::new(cfg).unwrap_err(), expected);
    };
    check(&|c| c.client_mac = [0; 6], DhcpError::BadMac("client"));
    check(
        &|c| c.server_mac = BROADCAST_MAC,
        DhcpError::BadMac("server"),
    );
    check(
        &|c| c.server_mac = [0x33, 0x33, 0, 0, 0, 1],
        DhcpError::BadMac("server"),
    );
    check(&|c| c.server_mac = CLIENT_MAC, DhcpError::SameMac);
    check(
        &|c| c.router = Ipv4Addr::new(10, 0, 2, 1),
        DhcpError::OutsideSubnet {
            addr: Ipv4Addr::new(10, 0, 2, 1),
            network: Ipv4Addr::new(10, 0, 1, 0),
            prefix_len: 24,
        },
    );
    check(
        &|c| c.router = Ipv4Addr::new(10, 0, 1, 255),
        DhcpError::ReservedAddress(Ipv4Addr::new(10, 0, 1, 255)),
    );
    check(
        &|c| c.router = CLIENT_IP,
        DhcpError::RouterIsClient(CLIENT_IP),
    );
    check(&|c| c.dns = vec![DNS; 5], DhcpError::TooManyDns(5));
    for bad in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(239, 1, 1, 1),
        CLIENT_IP,
        Ipv4Addr::new(10, 0, 1, 0),
    ] {
        check(&|c| c.dns = vec![DNS, bad], DhcpError::BadDns(bad));
    }
    for bad in [
        "bad_name",
        "-x",
        "x-",
        "a..b",
        "host.",
        "ümlaut",
        &"h".repeat(64),
    ] {
        check(
            &|c| c.hostname = bad.to_string(),
            DhcpError::BadHostname(bad.to_string()),
        );
    }
    for bad in ["compute.internal.", ".internal", "a b", "x.-y"] {
        check(
            &|c| c.domain = bad.to_string(),
            DhcpError::BadDomain(bad.to_string()),
        );
    }
    check(&|c| c.mtu = MIN_MTU - 1, DhcpError::BadMtu(MIN_MTU - 1));
    check(
        &|c| c.lease_secs = MIN_LEASE_SECS - 1,
        DhcpError::BadLeaseTime(59),
    );
    check(
        &|c| c.lease_secs = u32::MAX,
        DhcpError::BadLeaseTime(u32::MAX),
    );
    check(
        &|c| {
            c.hostname = "h".repeat(63);
            c.domain = format!("{}.{}", "d".repeat(63), "e".repeat(63));
        },
        DhcpError::OptionsTooLarge(3 + 6 * 7 + 4 + 1 + 6 + 65 + 2 + 127),
    );
    check(&|c| c.prefix_len = 31, DhcpError::BadPrefixLen(31));
}

#[test]
fn validate_accepts_reasonable_variations() {
    let mut cfg = config();
    // A resolver outside the subnet (EC2's 169.254.169.253), a dotted
    // hostname, EC2's MTU, extremes of the lease range.
    cfg.dns = vec![Ipv4Addr::new(169, 254, 169, 253)];
    cfg.hostname = "ip-10-0-1-23.us-west-2.compute.internal".to_string();
    cfg.mtu = EC2_MTU;
    for lease in [MIN_LEASE_SECS, MAX_LEASE_SECS] {
        cfg.lease_secs = lease;
        assert_eq!(cfg.validate(), Ok(()));
    }
    assert_eq!(
        cfg.t2_secs(),
        u32::try_from(u64::from(MAX_LEASE_SECS) * 7 / 8).unwrap()
    );
    assert_eq!(
        ec2_hostname(Ipv4Addr::new(192, 168, 0, 1)),
        "ip-192-168-0-1"
    );
}
