//! The DHCP state machine for one client and one address (RFC 2131 §4.3).

use std::net::Ipv4Addr;

use dhcproto::v4::borrowed;
use dhcproto::v4::{DhcpOption, Flags, HType, MAGIC, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Encodable, Encoder};

use super::config::{DhcpConfig, MAX_CLIENT_ID_LEN};
use super::frames::{self, UdpEndpoints};
use super::{CLIENT_PORT, DhcpError, SERVER_PORT};

/// Fixed BOOTP header before the magic cookie (RFC 2131 §2).
const BOOTP_HEADER_LEN: usize = 236;
/// Where options start: header + magic cookie.
const OPTIONS_OFFSET: usize = BOOTP_HEADER_LEN + MAGIC.len();
/// Replies are padded to the BOOTP minimum that old clients and relays expect.
const MIN_REPLY_LEN: usize = 300;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];

const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMETER_LIST: u8 = 55;
const OPT_CLIENT_ID: u8 = 61;

/// Configuration options the server sends, in the order used when the
/// client's parameter request list does not mention them.
const SERVED_OPTIONS: [OptionCode; 7] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::Hostname,
    OptionCode::DomainName,
    OptionCode::InterfaceMtu,
    OptionCode::BroadcastAddr,
];

/// Counters for observability; they saturate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DhcpStats {
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub releases: u64,
    pub declines: u64,
    /// Frames handed to the server that got no answer because they were
    /// malformed, foreign, or not for it.
    pub dropped: u64,
}

/// The in-VMM DHCP server of one instance NIC.
#[derive(Debug)]
pub struct DhcpServer {
    config: DhcpConfig,
    stats: DhcpStats,
}

/// The fields of a client message the server acts on.
struct Request<'a> {
    msg_type: MessageType,
    xid: u32,
    flags: Flags,
    ciaddr: Ipv4Addr,
    requested_ip: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    parameter_list: Option<borrowed::DhcpOption<'a>>,
    client_id: Option<borrowed::DhcpOption<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    Offer,
    /// DHCPACK granting the lease.
    Ack,
    /// DHCPACK to a DHCPINFORM: configuration only, no lease.
    InformAck,
    Nak,
}

impl DhcpServer {
    /// A server for `config`, which must pass [`DhcpConfig::validate`].
    pub fn new(config: DhcpConfig) -> Result<Self, DhcpError> {
        config.validate()?;
        Ok(DhcpServer {
            config,
            stats: DhcpStats::default(),
        })
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.config
    }

    pub fn stats(&self) -> DhcpStats {
        self.stats
    }

    /// Handles one Ethernet II frame the guest transmitted and returns the
    /// frame to deliver back to the guest, if any. Anything that is not a
    /// well-formed DHCP request from the instance gets `None`.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        self.try_handle_frame(frame).unwrap_or(None)
    }

    /// As [`handle_frame`](Self::handle_frame), saying why a frame was
    /// dropped. `Ok(None)`: a valid message that needs no reply (RELEASE,
    /// DECLINE, a REQUEST addressed to another server).
    pub fn try_handle_frame(&mut self, frame: &[u8]) -> Result<Option<Vec<u8>>, DhcpError> {
        let result = self.process(frame);
        let stats = &mut self.stats;
        let counter = match &result {
            Err(_) => Some(&mut stats.dropped),
            Ok(None) => None,
            Ok(Some((ReplyKind::Offer, _))) => Some(&mut stats.offers),
            Ok(Some((ReplyKind::Ack | ReplyKind::InformAck, _))) => Some(&mut stats.acks),
            Ok(Some((ReplyKind::Nak, _))) => Some(&mut stats.naks),
        };
        if let Some(counter) = counter {
            *counter = counter.saturating_add(1);
        }
        result.map(|reply| reply.map(|(_, frame)| frame))
    }

    fn process(&mut self, frame: &[u8]) -> Result<Option<(ReplyKind, Vec<u8>)>, DhcpError> {
        let inbound = frames::parse_inbound(frame)?;
        if inbound.src_mac != self.config.client_mac {
            return Err(DhcpError::ForeignMac);
        }
        let req = parse_request(inbound.payload, &self.config.client_mac)?;

        let kind = match req.msg_type {
            MessageType::Discover => ReplyKind::Offer,
            MessageType::Request => match self.answer_request(&req)? {
                Some(kind) => kind,
                None => return Ok(None),
            },
            MessageType::Inform => ReplyKind::InformAck,
            MessageType::Release => {
                self.stats.releases = self.stats.releases.saturating_add(1);
                return Ok(None);
            }
            MessageType::Decline => {
                // The guest saw our address in use. There is no other one
                // to offer; its next DISCOVER gets the same answer.
                self.stats.declines = self.stats.declines.saturating_add(1);
                return Ok(None);
            }
            other => return Err(DhcpError::UnexpectedMessageType(u8::from(other))),
        };
        let frame = self.build_reply(&req, kind)?;
        Ok(Some((kind, frame)))
    }

    /// RFC 2131 §4.3.2: SELECTING (server id + requested IP), INIT-REBOOT
    /// (requested IP), RENEWING/REBINDING (ciaddr). `None`: the client chose
    /// another server.
    fn answer_request(&self, req: &Request<'_>) -> Result<Option<ReplyKind>, DhcpError> {
        if let Some(server_id) = req.server_id
            && server_id != self.config.server_ip()
        {
            return Ok(None);
        }
        let asked = match req.requested_ip {
            Some(ip) => ip,
            None if !req.ciaddr.is_unspecified() => req.ciaddr,
            None => return Err(DhcpError::RequestWithoutAddress),
        };
        Ok(Some(if asked == self.config.client_ip {
            ReplyKind::Ack
        } else {
            ReplyKind::Nak
        }))
    }

    fn build_reply(&self, req: &Request<'_>, kind: ReplyKind) -> Result<Vec<u8>, DhcpError> {
        let cfg = &self.config;
        let (ciaddr, yiaddr) = match kind {
            ReplyKind::Offer => (Ipv4Addr::UNSPECIFIED, cfg.client_ip),
            ReplyKind::Ack => (req.ciaddr, cfg.client_ip),
            ReplyKind::InformAck => (req.ciaddr, Ipv4Addr::UNSPECIFIED),
            ReplyKind::Nak => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
        };
        let mut msg = Message::new_with_id(
            req.xid,
            ciaddr,
            yiaddr,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &cfg.client_mac,
        );
        msg.set_opcode(Opcode::BootReply).set_flags(req.flags);

        // Encode the fixed header (no options: dhcproto then writes no End
        // either), then the options in the order chosen here.
        let mut payload = Vec::with_capacity(576);
        let mut encoder = Encoder::new(&mut payload);
        let encode_err = |e: dhcproto::error::EncodeError| DhcpError::Encode(e.to_string());
        msg.encode(&mut encoder).map_err(encode_err)?;
        for option in self.reply_options(req, kind) {
            option.encode(&mut encoder).map_err(encode_err)?;
        }
        DhcpOption::End.encode(&mut encoder).map_err(encode_err)?;
        if payload.len() < MIN_REPLY_LEN {
            payload.resize(MIN_REPLY_LEN, OPT_PAD);
        }

        let (dst_mac, dst_ip) = self.reply_destination(req, kind, yiaddr);
        let ends = UdpEndpoints {
            src_mac: cfg.server_mac,
            dst_mac,
            src_ip: cfg.server_ip(),
            dst_ip,
            src_port: SERVER_PORT,
            dst_port: CLIENT_PORT,
        };
        frames::build_udp_frame(&ends, &payload)
            .ok_or_else(|| DhcpError::Encode("reply larger than an IPv4 packet".to_string()))
    }

    /// RFC 2131 §4.1 with giaddr = 0 (relayed requests are refused): NAKs are
    /// broadcast; a client with an address (ciaddr) gets unicast there; one
    /// that asked for broadcast gets it; otherwise unicast to the hardware
    /// address and yiaddr.
    fn reply_destination(
        &self,
        req: &Request<'_>,
        kind: ReplyKind,
        yiaddr: Ipv4Addr,
    ) -> ([u8; 6], Ipv4Addr) {
        let client_mac = self.config.client_mac;
        if kind == ReplyKind::Nak {
            (BROADCAST_MAC, Ipv4Addr::BROADCAST)
        } else if !req.ciaddr.is_unspecified() {
            (client_mac, req.ciaddr)
        } else if req.flags.broadcast() || yiaddr.is_unspecified() {
            (BROADCAST_MAC, Ipv4Addr::BROADCAST)
        } else {
            (client_mac, yiaddr)
        }
    }

    /// Message type and server identifier first, then the lease times, then
    /// the configuration options in parameter-request-list order followed by
    /// any the list did not name, then the client identifier echo (RFC 6842).
    fn reply_options(&self, req: &Request<'_>, kind: ReplyKind) -> Vec<DhcpOption> {
        let cfg = &self.config;
        let mut options = Vec::with_capacity(16);
        let msg_type = match kind {
            ReplyKind::Offer => MessageType::Offer,
            ReplyKind::Ack | ReplyKind::InformAck => MessageType::Ack,
            ReplyKind::Nak => MessageType::Nak,
        };
        options.push(DhcpOption::MessageType(msg_type));
        options.push(DhcpOption::ServerIdentifier(cfg.server_ip()));

        match kind {
            ReplyKind::Nak => {
                options.push(DhcpOption::Message(
                    "requested address not available".to_string(),
                ));
            }
            ReplyKind::Offer | ReplyKind::Ack | ReplyKind::InformAck => {
                if kind != ReplyKind::InformAck {
                    // RFC 2131 §4.3.5: no lease time in an answer to INFORM.
                    options.push(DhcpOption::AddressLeaseTime(cfg.lease_secs));
                    options.push(DhcpOption::Renewal(cfg.t1_secs()));
                    options.push(DhcpOption::Rebinding(cfg.t2_secs()));
                }
                let requested = req.parameter_list.as_ref().map_or(&[][..], |o| o.data());
                let mut sent = [false; SERVED_OPTIONS.len()];
                let wanted = requested
                    .iter()
                    .map(|&code| OptionCode::from(code))
                    .chain(SERVED_OPTIONS);
                for code in wanted {
                    let Some(index) = SERVED_OPTIONS.iter().position(|&c| c == code) else {
                        continue;
                    };
                    if std::mem::replace(&mut sent[index], true) {
                        continue;
                    }
                    if let Some(option) = self.config_option(code) {
                        options.push(option);
                    }
                }
            }
        }

        if let Some(client_id) = &req.client_id {
            options.push(DhcpOption::ClientIdentifier(client_id.data().to_vec()));
        }
        options
    }

    fn config_option(&self, code: OptionCode) -> Option<DhcpOption> {
        let cfg = &self.config;
        Some(match code {
            OptionCode::SubnetMask => DhcpOption::SubnetMask(cfg.netmask()),
            OptionCode::Router => DhcpOption::Router(vec![cfg.router]),
            OptionCode::DomainNameServer if !cfg.dns.is_empty() => {
                DhcpOption::DomainNameServer(cfg.dns.clone())
            }
            OptionCode::Hostname if !cfg.hostname.is_empty() => {
                DhcpOption::Hostname(cfg.hostname.clone())
            }
            OptionCode::DomainName if !cfg.domain.is_empty() => {
                DhcpOption::DomainName(cfg.domain.clone())
            }
            OptionCode::InterfaceMtu => DhcpOption::InterfaceMtu(cfg.mtu),
            OptionCode::BroadcastAddr => DhcpOption::BroadcastAddr(cfg.broadcast()),
            _ => return None,
        })
    }
}

/// Checks the BOOTP header and reads the options the server acts on. Only
/// those are decoded: dhcproto's decoders for exotic options assume
/// well-behaved lengths.
fn parse_request<'a>(payload: &'a [u8], client_mac: &[u8; 6]) -> Result<Request<'a>, DhcpError> {
    let msg = borrowed::Message::new(payload).map_err(|_| DhcpError::TruncatedMessage)?;
    if msg.opcode() != Opcode::BootRequest {
        return Err(DhcpError::NotBootRequest);
    }
    // hlen is checked before chaddr(), which slices by it.
    if msg.htype() != HType::Eth || msg.hlen() != 6 {
        return Err(DhcpError::BadHardwareAddress {
            htype: u8::from(msg.htype()),
            hlen: msg.hlen(),
        });
    }
    if msg.chaddr() != client_mac {
        return Err(DhcpError::ForeignMac);
    }
    if payload.get(BOOTP_HEADER_LEN..OPTIONS_OFFSET) != Some(&MAGIC[..]) {
        return Err(DhcpError::BadMagic);
    }
    if !msg.giaddr().is_unspecified() || msg.hops() != 0 {
        return Err(DhcpError::Relayed);
    }
    check_option_lengths(payload.get(OPTIONS_OFFSET..).unwrap_or(&[]))?;

    let mut msg_type = None;
    let mut requested_ip = None;
    let mut server_id = None;
    let mut parameter_list = None;
    let mut client_id = None;
    for option in msg.opts() {
        let code = u8::from(option.code());
        match code {
            OPT_MESSAGE_TYPE => {
                let [ty] = option.data() else {
                    return Err(DhcpError::BadOption(code));
                };
                set_once(&mut msg_type, MessageType::from(*ty), code)?;
            }
            OPT_REQUESTED_IP => set_once(&mut requested_ip, ipv4_option(&option)?, code)?,
            OPT_SERVER_ID => set_once(&mut server_id, ipv4_option(&option)?, code)?,
            OPT_PARAMETER_LIST => set_once(&mut parameter_list, option, code)?,
            OPT_CLIENT_ID => {
                let len = option.len();
                if len < 2 {
                    return Err(DhcpError::BadOption(code));
                }
                if len > MAX_CLIENT_ID_LEN {
                    return Err(DhcpError::ClientIdTooLong(len));
                }
                set_once(&mut client_id, option, code)?;
            }
            _ => {}
        }
    }

    Ok(Request {
        msg_type: msg_type.ok_or(DhcpError::NoMessageType)?,
        xid: msg.xid(),
        flags: msg.flags(),
        ciaddr: msg.ciaddr(),
        requested_ip,
        server_id,
        parameter_list,
        client_id,
    })
}

/// Every option's length must stay inside the message (the borrowed
/// iterator would silently stop at the first one that does not). A missing
/// End option is tolerated.
fn check_option_lengths(mut options: &[u8]) -> Result<(), DhcpError> {
    while let Some((&code, rest)) = options.split_first() {
        match code {
            OPT_END => return Ok(()),
            OPT_PAD => options = rest,
            _ => {
                let (&len, rest) = rest.split_first().ok_or(DhcpError::MalformedOptions)?;
                options = rest
                    .get(usize::from(len)..)
                    .ok_or(DhcpError::MalformedOptions)?;
            }
        }
    }
    Ok(())
}

/// A second instance (not adjacent, so not concatenated by RFC 3396) of a
/// single-valued option makes the message ambiguous.
fn set_once<T>(slot: &mut Option<T>, value: T, code: u8) -> Result<(), DhcpError> {
    if slot.is_some() {
        return Err(DhcpError::BadOption(code));
    }
    *slot = Some(value);
    Ok(())
}

fn ipv4_option(option: &borrowed::DhcpOption<'_>) -> Result<Ipv4Addr, DhcpError> {
    match option.data() {
        &[a, b, c, d] => Ok(Ipv4Addr::new(a, b, c, d)),
        _ => Err(DhcpError::BadOption(u8::from(option.code()))),
    }
}
