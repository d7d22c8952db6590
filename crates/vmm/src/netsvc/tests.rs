//! The link services end to end without a VM: a smoltcp "guest" (its own
//! Ethernet interface and TCP sockets) talks to `GuestLink` frame by frame,
//! as the virtio-net datapath would carry them.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, HardwareAddress, IpAddress,
    IpCidr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

use super::{GuestLink, IMDS_ADDR, MAX_CONNECTIONS};
use crate::devices::virtio::net::LinkServices;
use crate::dhcp::{DhcpConfig, DhcpServer};
use crate::imds::Imds;
use flint_contract::metadata::MetadataConfig;

const GUEST_MAC: [u8; 6] = [0x02, 0, 0xac, 0x1f, 0, 0x0a];
const GUEST_IP: Ipv4Address = Ipv4Address::new(169, 254, 0, 10);

#[derive(Default)]
struct Wire {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl phy::Device for Wire {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;
    fn receive(&mut self, _t: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((Rx(f), Tx(&mut self.tx)))
    }
    fn transmit(&mut self, _t: SmolInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// The guest side: a smoltcp interface on 169.254.0.10/16 (so the
/// metadata address is on-link and is ARPed for).
struct Guest {
    iface: Interface,
    wire: Wire,
    sockets: SocketSet<'static>,
    start: Instant,
    /// Every frame the link sent the guest (for TTL checks).
    received: Vec<Vec<u8>>,
    /// Frames the link did not take (they would go to the TAP).
    to_host: usize,
}

impl Guest {
    fn new() -> Self {
        let mut wire = Wire::default();
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(GUEST_MAC)));
        let mut iface = Interface::new(config, &mut wire, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(GUEST_IP), 16)).unwrap();
        });
        Guest {
            iface,
            wire,
            sockets: SocketSet::new(vec![]),
            start: Instant::now(),
            received: Vec::new(),
            to_host: 0,
        }
    }

    /// Moves frames both ways until nothing moves; `at` is time since start.
    fn pump(&mut self, link: &mut GuestLink, at: Duration) {
        let now = self.start + at;
        let t = SmolInstant::from_micros(at.as_micros() as i64);
        for _ in 0..200 {
            self.iface.poll(t, &mut self.wire, &mut self.sockets);
            let mut moved = false;
            while let Some(f) = self.wire.tx.pop_front() {
                moved = true;
                if !link.take_frame(&f, now) {
                    self.to_host += 1;
                }
            }
            while let Some(f) = link.next_frame(now) {
                moved = true;
                self.received.push(f.clone());
                self.wire.rx.push_back(f);
            }
            if !moved {
                break;
            }
        }
    }

    fn connect(&mut self, port: u16) -> smoltcp::iface::SocketHandle {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65536]),
            tcp::SocketBuffer::new(vec![0; 65536]),
        );
        s.connect(self.iface.context(), (IpAddress::Ipv4(IMDS_ADDR), 80), port)
            .unwrap();
        self.sockets.add(s)
    }

    /// Sends `request` on `h` and returns everything received after pumping.
    fn exchange(
        &mut self,
        link: &mut GuestLink,
        h: smoltcp::iface::SocketHandle,
        request: &str,
        at: Duration,
    ) -> String {
        for i in 0..20 {
            self.pump(link, at + Duration::from_millis(i));
            if self.sockets.get::<tcp::Socket>(h).may_send() {
                break;
            }
        }
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .send_slice(request.as_bytes())
            .unwrap();
        let mut out = Vec::new();
        for i in 0..20 {
            self.pump(link, at + Duration::from_millis(20 + i));
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            while s.can_recv() {
                let mut buf = [0u8; 4096];
                let n = s.recv_slice(&mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn metadata() -> MetadataConfig {
    MetadataConfig {
        instance_id: "i-0abc1234def567890".into(),
        ..Default::default()
    }
}

fn link_with(metadata: MetadataConfig, dhcp: bool) -> GuestLink {
    let imds = Arc::new(Mutex::new(Imds::new(metadata).unwrap()));
    let dhcp = dhcp.then(|| {
        let config =
            DhcpConfig::ec2_style(GUEST_MAC, Ipv4Addr::new(172, 31, 0, 10), 20, "us-east-1")
                .unwrap();
        DhcpServer::new(config).unwrap()
    });
    GuestLink::new(GUEST_MAC, dhcp, Some(imds), Instant::now())
}

fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

#[test]
fn imdsv2_over_tcp_token_then_keep_alive_gets() {
    let mut link = link_with(metadata(), false);
    let mut guest = Guest::new();
    let h = guest.connect(40000);
    let token_resp = guest.exchange(
        &mut link,
        h,
        "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 300\r\n\r\n",
        Duration::ZERO,
    );
    assert!(token_resp.starts_with("HTTP/1.1 200"), "{token_resp}");
    assert!(
        token_resp.contains("X-Aws-Ec2-Metadata-Token-Ttl-Seconds: 300"),
        "{token_resp}"
    );
    let token = body(&token_resp).to_string();
    assert!(token.len() >= 40, "{token:?}");

    // The token answer left with IP TTL = the hop limit (default 1).
    let ttls: Vec<u8> = guest
        .received
        .iter()
        .filter_map(|f| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
            (!tcp.payload().is_empty()).then(|| ip.hop_limit())
        })
        .collect();
    assert_eq!(ttls, vec![1], "data segments' TTLs");

    // Same connection (keep-alive): a GET with the token.
    let get = format!(
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n"
    );
    let resp = guest.exchange(&mut link, h, &get, Duration::from_millis(100));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(body(&resp), "i-0abc1234def567890");
    // A bad token: 401, connection still usable.
    let bad =
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nX-aws-ec2-metadata-token: nope\r\n\r\n";
    let resp = guest.exchange(&mut link, h, bad, Duration::from_millis(200));
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    // Later data segments use the normal TTL again.
    let last = guest.received.last().unwrap();
    let ip = Ipv4Packet::new_checked(&last[14..]).unwrap();
    assert!(ip.hop_limit() > 1);
    assert_eq!(
        guest.to_host, 0,
        "nothing for the metadata service reached the host"
    );
}

#[test]
fn imdsv1_and_connection_close() {
    let mut link = link_with(metadata(), false);
    let mut guest = Guest::new();
    let h = guest.connect(40001);
    let resp = guest.exchange(
        &mut link,
        h,
        "GET /latest/meta-data/ HTTP/1.0\r\n\r\n",
        Duration::ZERO,
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(body(&resp).lines().any(|l| l == "instance-id"), "{resp}");
    // HTTP/1.0 without keep-alive: the service closed its side.
    assert!(!guest.sockets.get::<tcp::Socket>(h).may_recv());
}

#[test]
fn many_sequential_connections_are_all_served() {
    // More connections than sockets, one after another, each closed by the
    // client's HTTP/1.0: sockets must be reused, not parked in TIME-WAIT.
    let mut link = link_with(metadata(), false);
    let mut guest = Guest::new();
    for i in 0..(3 * MAX_CONNECTIONS as u16) {
        let h = guest.connect(41000 + i);
        let at = Duration::from_millis(u64::from(i) * 50);
        let resp = guest.exchange(
            &mut link,
            h,
            "GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n",
            at,
        );
        assert_eq!(body(&resp), "i-0abc1234def567890", "connection {i}: {resp}");
        guest.sockets.get_mut::<tcp::Socket>(h).close();
        guest.pump(&mut link, at + Duration::from_millis(45));
        guest.sockets.remove(h);
    }
}

/// Every frame either way, at one instant: nothing the link does may wait
/// for a timer (a delayed ACK, a retransmission) before the guest has its
/// answer and both ends have closed.
const AT: Duration = Duration::from_secs(1);

fn state(guest: &Guest, h: smoltcp::iface::SocketHandle) -> tcp::State {
    guest.sockets.get::<tcp::Socket>(h).state()
}

fn recv_all(guest: &mut Guest, h: smoltcp::iface::SocketHandle) -> String {
    let mut out = Vec::new();
    let s = guest.sockets.get_mut::<tcp::Socket>(h);
    while s.can_recv() {
        let mut buf = [0u8; 4096];
        let n = s.recv_slice(&mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_new_connection_per_request_never_waits_on_a_timer() {
    // What busybox wget does, 200 times in the benchmark: connect, one
    // HTTP/1.1 request with Connection: close, read to EOF, close.
    let mut link = link_with(metadata(), false);
    let mut guest = Guest::new();
    for i in 0..(2 * MAX_CONNECTIONS as u16) {
        let h = guest.connect(43000 + i);
        guest.pump(&mut link, AT);
        assert_eq!(state(&guest, h), tcp::State::Established, "connection {i}");
        guest
            .sockets
            .get_mut::<tcp::Socket>(h)
            .send_slice(
                b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\
                  User-Agent: Wget\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        guest.pump(&mut link, AT);
        let resp = recv_all(&mut guest, h);
        assert!(resp.starts_with("HTTP/1.1 200"), "connection {i}: {resp}");
        assert_eq!(body(&resp), "i-0abc1234def567890", "connection {i}");
        // The service's FIN came with the answer.
        assert_eq!(state(&guest, h), tcp::State::CloseWait, "connection {i}");
        guest.sockets.get_mut::<tcp::Socket>(h).close();
        guest.pump(&mut link, AT);
        // Our FIN was acknowledged at once (not left to a retransmission
        // that meets a listening socket and a reset).
        assert_eq!(state(&guest, h), tcp::State::Closed, "connection {i}");
        assert_eq!(link.imds_busy_connections(), 0, "connection {i}");
        guest.sockets.remove(h);
    }
}

#[test]
fn a_request_in_two_segments_is_answered_without_a_delayed_ack() {
    // A client that writes its request in two pieces with Nagle on (the
    // guest's smoltcp here, Linux alike) holds the second until the first
    // is acknowledged: a delayed ACK on our side would stall it.
    let mut link = link_with(metadata(), false);
    let mut guest = Guest::new();
    let h = guest.connect(44000);
    guest.pump(&mut link, AT);
    let s = guest.sockets.get_mut::<tcp::Socket>(h);
    s.send_slice(b"GET /latest/meta-data/instance-id HTTP/1.1\r\n")
        .unwrap();
    guest.pump(&mut link, AT);
    let s = guest.sockets.get_mut::<tcp::Socket>(h);
    s.send_slice(b"Host: 169.254.169.254\r\n\r\n").unwrap();
    guest.pump(&mut link, AT);
    let resp = recv_all(&mut guest, h);
    assert_eq!(body(&resp), "i-0abc1234def567890", "{resp}");
}

#[test]
fn http_tokens_required_refuses_v1() {
    let mut m = metadata();
    m.metadata_options.http_tokens = flint_contract::metadata::HttpTokens::Required;
    let mut link = link_with(m, false);
    let mut guest = Guest::new();
    let h = guest.connect(40002);
    let resp = guest.exchange(
        &mut link,
        h,
        "GET /latest/meta-data/ HTTP/1.1\r\n\r\n",
        Duration::ZERO,
    );
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

#[test]
fn other_traffic_is_not_intercepted() {
    let mut link = link_with(metadata(), true);
    let now = Instant::now();
    // TCP to another address: not ours.
    let frame = syn_frame(Ipv4Address::new(172, 31, 0, 1), 80, 1234);
    assert!(!link.take_frame(&frame, now));
    // Garbage of every length: not taken, no panic.
    for len in 0..80 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        let _ = link.take_frame(&junk, now);
    }
    // Truncated frames to the metadata address.
    let good = syn_frame(IMDS_ADDR, 80, 1);
    for cut in 0..good.len() {
        let _ = link.take_frame(&good[..cut], now);
    }
    while link.next_frame(now).is_some() {}
}

#[test]
fn a_syn_flood_is_bounded() {
    let mut link = link_with(metadata(), false);
    let now = Instant::now();
    let mut answers = 0usize;
    for port in 0..5000u16 {
        let frame = syn_frame(IMDS_ADDR, 80, 10000 + port);
        assert!(link.take_frame(&frame, now));
        while link.next_frame(now).is_some() {
            answers += 1;
        }
    }
    // Every SYN got an answer (SYN-ACK or reset) and at most the pool of
    // sockets is busy with half-open connections.
    assert!(answers >= 5000, "{answers}");
    assert!(link.imds_busy_connections() <= MAX_CONNECTIONS);
    // They time out, and the pool is free again.
    let later = now + Duration::from_secs(60);
    for _ in 0..10 {
        while link.next_frame(later).is_some() {}
    }
    assert_eq!(link.imds_busy_connections(), 0);
    // A real client still gets served.
    let mut guest = Guest::new();
    guest.start = later;
    let h = guest.connect(40003);
    let resp = guest.exchange(
        &mut link,
        h,
        "GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n",
        Duration::ZERO,
    );
    assert_eq!(body(&resp), "i-0abc1234def567890");
}

#[test]
fn dhcp_is_answered_on_the_link_and_never_forwarded() {
    use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode};
    use dhcproto::{Encodable, Encoder};
    let mut link = link_with(metadata(), true);
    let mut msg = Message::default();
    msg.set_opcode(Opcode::BootRequest)
        .set_chaddr(&GUEST_MAC)
        .set_xid(0x1234)
        .set_flags(Flags::default().set_broadcast());
    msg.opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Discover));
    let mut payload = Vec::new();
    msg.encode(&mut Encoder::new(&mut payload)).unwrap();
    let frame = udp_frame(&payload);
    assert!(link.take_frame(&frame, Instant::now()));
    let offer = link.next_frame(Instant::now()).expect("an OFFER");
    let eth = EthernetFrame::new_checked(&offer[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.src_addr(), Ipv4Address::new(172, 31, 0, 1));
}

/// A TCP SYN from the guest to `dst:port` from source port `sport`.
fn syn_frame(dst: Ipv4Address, port: u16, sport: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: GUEST_IP,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(GUEST_MAC),
        dst_addr: EthernetAddress([0x06, 0, 0, 0, 0, 1]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut out = vec![0u8; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    eth.emit(&mut f);
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    let mut t = TcpPacket::new_unchecked(p.payload_mut());
    tcp.emit(
        &mut t,
        &IpAddress::Ipv4(GUEST_IP),
        &IpAddress::Ipv4(dst),
        &caps,
    );
    out
}

/// A broadcast UDP 68->67 frame carrying `payload`.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    use smoltcp::wire::{UdpPacket, UdpRepr};
    let udp = UdpRepr {
        src_port: 68,
        dst_port: 67,
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::UNSPECIFIED,
        dst_addr: Ipv4Address::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(GUEST_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut out = vec![0u8; eth.buffer_len() + ip.buffer_len() + udp.header_len() + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    eth.emit(&mut f);
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    let mut u = UdpPacket::new_unchecked(p.payload_mut());
    udp.emit(
        &mut u,
        &IpAddress::Ipv4(Ipv4Address::UNSPECIFIED),
        &IpAddress::Ipv4(Ipv4Address::BROADCAST),
        payload.len(),
        |buf| buf.copy_from_slice(payload),
        &caps,
    );
    out
}
