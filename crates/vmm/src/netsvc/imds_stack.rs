//! TCP/IP for the metadata service: a smoltcp interface (IP medium; the
//! Ethernet and ARP around it are `netsvc`'s) that owns 169.254.169.254
//! and a fixed pool of TCP sockets listening on port 80, each with an HTTP
//! connection parser in front of the shared `Imds`.
//!
//! Bounded by construction: MAX_CONNECTIONS sockets with fixed buffers; a
//! SYN that finds every socket busy gets a reset from smoltcp; idle or
//! half-open connections time out; a connection whose answers pile up
//! faster than the guest reads them is not read further until they drain.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use crate::imds::Imds;
use crate::imds::http::{HttpConnection, Response};

pub const IMDS_ADDR: Ipv4Address = Ipv4Address::new(169, 254, 169, 254);
const IMDS_PORT: u16 = 80;
/// Concurrent connections (EC2 throttles per instance too).
pub const MAX_CONNECTIONS: usize = 32;
const RX_BUFFER: usize = 8 * 1024;
const TX_BUFFER: usize = 32 * 1024;
/// Answers queued on one connection before it is not read further.
const MAX_PENDING_OUT: usize = 128 * 1024;
/// IP packets waiting in either direction.
const MAX_QUEUED_PACKETS: usize = 512;
/// Idle keep-alive connections and half-open handshakes end after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const MTU: usize = 1500;

/// Packets between the guest link and smoltcp.
#[derive(Default)]
struct PacketQueue {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

impl phy::Device for PacketQueue {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_>> {
        (self.tx.len() < MAX_QUEUED_PACKETS).then_some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        // Verify what the guest sends (its partial checksums were finished
        // by the datapath); compute what we send.
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = Checksum::Both;
        checksum.tcp = Checksum::Both;
        checksum.icmpv4 = Checksum::Both;
        caps.checksum = checksum;
        caps
    }
}

struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0; len];
        let r = f(&mut packet);
        if self.0.len() < MAX_QUEUED_PACKETS {
            self.0.push_back(packet);
        }
        r
    }
}

/// One socket's HTTP state.
struct Connection {
    handle: SocketHandle,
    http: HttpConnection,
    out: VecDeque<u8>,
    close_after_out: bool,
    /// The hop limit the queued answer needs (token PUTs).
    ttl: Option<u8>,
}

pub struct ImdsStack {
    iface: Interface,
    device: PacketQueue,
    sockets: SocketSet<'static>,
    conns: Vec<Connection>,
    imds: Arc<Mutex<Imds>>,
    epoch: Instant,
    scratch: Vec<u8>,
}

impl ImdsStack {
    pub fn new(imds: Arc<Mutex<Imds>>, now: Instant) -> Self {
        let mut device = PacketQueue::default();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed();
        let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            // Capacity is at least one address.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(IMDS_ADDR), 16));
        });
        // Everything not on 169.254/16 (the instance's own address) is
        // reached "through" the link: any gateway works on an IP medium.
        let _ = iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::new(169, 254, 0, 1));
        let mut sockets = SocketSet::new(Vec::with_capacity(MAX_CONNECTIONS));
        let mut conns = Vec::with_capacity(MAX_CONNECTIONS);
        for _ in 0..MAX_CONNECTIONS {
            let socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
                tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
            );
            let handle = sockets.add(socket);
            conns.push(Connection {
                handle,
                http: HttpConnection::new(),
                out: VecDeque::new(),
                close_after_out: false,
                ttl: None,
            });
        }
        let mut stack = ImdsStack {
            iface,
            device,
            sockets,
            conns,
            imds,
            epoch: now,
            scratch: vec![0; RX_BUFFER],
        };
        for i in 0..MAX_CONNECTIONS {
            stack.relisten(i);
        }
        stack
    }

    fn smol_now(&self, now: Instant) -> SmolInstant {
        let micros = now.saturating_duration_since(self.epoch).as_micros();
        SmolInstant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    fn relisten(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        conn.http = HttpConnection::new();
        conn.out.clear();
        conn.close_after_out = false;
        conn.ttl = None;
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.handle);
        socket.abort();
        socket.set_timeout(Some(SmolDuration::from_millis(
            IDLE_TIMEOUT.as_millis() as u64
        )));
        socket.set_hop_limit(None);
        // No delayed ACKs (smoltcp's default waits 10 ms): a guest that
        // writes a request in pieces holds the rest back (Nagle) until the
        // first piece is acknowledged, so each piece would cost 10 ms. An
        // ACK on this link is one frame the VMM hands over in memory.
        socket.set_ack_delay(None);
        // Fails only for port 0 or a socket that is not closed.
        let _ = socket.listen(IMDS_PORT);
    }

    /// An IPv4 packet the guest sent to 169.254.169.254. False when the
    /// queue is full (the guest's TCP retransmits).
    pub fn push_packet(&mut self, packet: &[u8]) -> bool {
        if self.device.rx.len() >= MAX_QUEUED_PACKETS {
            return false;
        }
        self.device.rx.push_back(packet.to_vec());
        true
    }

    /// Runs smoltcp and the HTTP layer until nothing changes.
    pub fn poll(&mut self, now: Instant) {
        let smol_now = self.smol_now(now);
        for _ in 0..8 {
            self.iface
                .poll(smol_now, &mut self.device, &mut self.sockets);
            if !self.serve(now) {
                break;
            }
        }
    }

    /// The next IP packet for the guest.
    pub fn pop_packet(&mut self) -> Option<Vec<u8>> {
        self.device.tx.pop_front()
    }

    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        if !self.device.rx.is_empty() {
            return Some(Duration::ZERO);
        }
        let smol_now = self.smol_now(now);
        self.iface
            .poll_delay(smol_now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }

    /// Reads requests, answers them, writes queued answers. Returns true
    /// when something was sent (smoltcp should run again).
    fn serve(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        for i in 0..self.conns.len() {
            let handle = self.conns[i].handle;
            let state = self.sockets.get::<tcp::Socket>(handle).state();
            match state {
                // TIME-WAIT guards a real network against stray old
                // segments; on this one-host link it would only park the
                // socket for 10 s, and a guest making requests in a loop
                // (new connection each) would find every socket parked and
                // be refused.
                tcp::State::Closed | tcp::State::TimeWait => {
                    self.relisten(i);
                    continue;
                }
                tcp::State::Listen | tcp::State::SynReceived => continue,
                _ => {}
            }
            progressed |= self.read_requests(i, now);
            progressed |= self.write_answers(i);
        }
        progressed
    }

    fn read_requests(&mut self, i: usize, now: Instant) -> bool {
        let conn = &mut self.conns[i];
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.handle);
        if conn.close_after_out || conn.out.len() >= MAX_PENDING_OUT || !socket.can_recv() {
            return false;
        }
        let Ok(n) = socket.recv_slice(&mut self.scratch) else {
            return false;
        };
        let answers = match conn.http.feed(&self.scratch[..n]) {
            Ok(requests) => {
                let mut imds = self.imds.lock().unwrap_or_else(|e| e.into_inner());
                requests
                    .iter()
                    .map(|r| {
                        let mut resp = imds.handle(r, now);
                        resp.close |= !r.keep_alive;
                        resp
                    })
                    .collect::<Vec<Response>>()
            }
            Err(e) => {
                let mut resp = crate::imds::http::error_response(&e);
                resp.close = true;
                vec![resp]
            }
        };
        for resp in answers {
            if conn.close_after_out {
                break;
            }
            if resp.ip_ttl.is_some() {
                conn.ttl = resp.ip_ttl;
            }
            conn.out.extend(resp.to_bytes());
            conn.close_after_out = resp.close;
        }
        n > 0
    }

    fn write_answers(&mut self, i: usize) -> bool {
        let conn = &mut self.conns[i];
        let socket = self.sockets.get_mut::<tcp::Socket>(conn.handle);
        let mut sent_any = false;
        if !conn.out.is_empty() {
            // EC2's hop limit applies to token answers: their segments
            // leave with that TTL (the socket's setting at send time).
            socket.set_hop_limit(conn.ttl);
            while socket.can_send() && !conn.out.is_empty() {
                let (a, _) = conn.out.as_slices();
                match socket.send_slice(a) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        conn.out.drain(..n);
                        sent_any = true;
                    }
                }
            }
            if conn.out.is_empty() {
                conn.ttl = None;
            }
        }
        if conn.out.is_empty() && conn.close_after_out && socket.is_open() {
            socket.close();
            sent_any = true;
        }
        // The guest closed its side and has nothing more for us.
        if !socket.may_recv() && conn.out.is_empty() && socket.is_open() {
            socket.close();
        }
        sent_any
    }

    /// Connections that are not listening (for tests and metrics).
    pub fn busy_connections(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| self.sockets.get::<tcp::Socket>(c.handle).state() != tcp::State::Listen)
            .count()
    }
}

/// smoltcp's initial sequence numbers and ports come from this seed.
fn seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the 8-byte buffer. On
    // failure the seed is the clock: still different per run.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 8 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(b)
}
