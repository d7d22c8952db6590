//! A netlink socket that sends requests and collects their replies: the
//! transport under both rtnetlink (links, addresses) and nfnetlink
//! (nftables). The messages themselves are built and parsed by the
//! netlink-packet-* crates; this only numbers them, sends them and reads
//! the kernel's answers (replies, acks, errors) back.
//!
//! A socket belongs to the network namespace of the thread that opened
//! it, so everything here acts in the daemon's own namespace.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::{Socket, SocketAddr};

/// How long to wait for the kernel's answer before giving up (it answers
/// at once; this only keeps a wedged kernel from hanging the daemon).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One netlink socket, connected to the kernel.
pub(super) struct Netlink {
    socket: Socket,
    seq: u32,
}

/// A request of a transaction failed: which one (its index in what was
/// sent, when the kernel said) and why.
#[derive(Debug)]
pub(super) struct Failed {
    pub index: Option<usize>,
    pub source: io::Error,
}

impl From<io::Error> for Failed {
    fn from(source: io::Error) -> Failed {
        Failed {
            index: None,
            source,
        }
    }
}

/// A message of `payload` with REQUEST and `flags` set, length and type
/// filled in, sequence number 0 (the socket numbers what it sends).
pub(super) fn message<I: NetlinkSerializable>(payload: I, flags: u16) -> NetlinkMessage<I> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    message.finalize();
    message
}

/// The wire form of `messages`, back to back (each NLMSG_ALIGNed).
pub(super) fn encode<I: NetlinkSerializable>(messages: &[NetlinkMessage<I>]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        let start = out.len();
        out.resize(start + align(message.buffer_len()), 0);
        message.serialize(&mut out[start..]);
    }
    out
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Splits one datagram from the kernel into its messages.
pub(super) fn decode<I: NetlinkDeserializable>(
    mut bytes: &[u8],
) -> io::Result<Vec<NetlinkMessage<I>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let message = NetlinkMessage::<I>::deserialize(bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unparsable netlink reply: {e}"),
            )
        })?;
        let len = align(message.header.length as usize);
        if len == 0 {
            break;
        }
        out.push(message);
        bytes = bytes.get(len..).unwrap_or_default();
    }
    Ok(out)
}

impl Netlink {
    /// A socket of `protocol` (netlink_sys::protocols::NETLINK_*), bound
    /// and connected to the kernel.
    pub fn open(protocol: isize) -> io::Result<Netlink> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let timeout = libc::timeval {
            tv_sec: REPLY_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: setsockopt reads one timeval from a local that outlives
        // the call, on the socket's own open descriptor.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink { socket, seq: 0 })
    }

    fn send<I: NetlinkSerializable>(
        &mut self,
        messages: &mut [NetlinkMessage<I>],
    ) -> io::Result<()> {
        for message in messages.iter_mut() {
            self.seq = self.seq.wrapping_add(1);
            message.header.sequence_number = self.seq;
        }
        let bytes = encode(messages);
        let sent = self.socket.send(&bytes, 0)?;
        if sent != bytes.len() {
            return Err(io::Error::other(format!(
                "netlink sent {sent} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    }

    fn recv<I: NetlinkDeserializable>(&self) -> io::Result<Vec<NetlinkMessage<I>>> {
        match self.socket.recv_from_full() {
            Ok((bytes, _)) => decode(&bytes),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer from the kernel in {REPLY_TIMEOUT:?}"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Sends `payload` with `flags` (NLM_F_CREATE...) and waits for the
    /// kernel's ack; returns what it answered before the ack.
    pub fn request<I>(&mut self, payload: I, flags: u16) -> io::Result<Vec<I>>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        self.exchange(message(payload, flags | NLM_F_ACK), true)
    }

    /// Dumps what `payload` asks for: every answer up to NLMSG_DONE.
    pub fn dump<I>(&mut self, payload: I) -> io::Result<Vec<I>>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        self.exchange(message(payload, NLM_F_DUMP), false)
    }

    /// Sends one message and collects the kernel's answers to it until
    /// NLMSG_DONE (or, with `ack_ends`, the ack), failing on an error.
    fn exchange<I>(&mut self, msg: NetlinkMessage<I>, ack_ends: bool) -> io::Result<Vec<I>>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        let mut sent = [msg];
        self.send(&mut sent)?;
        let seq = sent[0].header.sequence_number;
        let mut answers = Vec::new();
        loop {
            for reply in self.recv::<I>()? {
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) if ack_ends => return Ok(answers),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    _ => {}
                }
            }
        }
    }

    /// Sends `messages` in one datagram (an nfnetlink batch, begin and end
    /// included) and waits until the kernel acked every one that asked
    /// for an ack (NLM_F_ACK), or reported an error on any of them.
    pub fn transaction<I>(&mut self, messages: &mut [NetlinkMessage<I>]) -> Result<(), Failed>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
    {
        self.send(messages)?;
        let mut awaited: Vec<u32> = messages
            .iter()
            .filter(|m| m.header.flags & NLM_F_ACK != 0)
            .map(|m| m.header.sequence_number)
            .collect();
        while !awaited.is_empty() {
            for reply in self.recv::<I>()? {
                let seq = reply.header.sequence_number;
                if let NetlinkPayload::Error(e) = reply.payload {
                    if e.code.is_some() {
                        return Err(Failed {
                            index: messages
                                .iter()
                                .position(|m| m.header.sequence_number == seq),
                            source: e.to_io(),
                        });
                    }
                    awaited.retain(|&s| s != seq);
                }
            }
        }
        Ok(())
    }
}
