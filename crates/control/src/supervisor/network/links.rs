//! Links and addresses through rtnetlink (what `ip link` and `ip addr`
//! send), and persistent TAPs through /dev/net/tun (what `ip tuntap add`
//! does: the kernel cannot make a tun/tap over rtnetlink, its newlink
//! answers EOPNOTSUPP).

use std::fs::OpenOptions;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;

use super::netlink::Netlink;

/// `ip link show dev NAME`.
pub(super) fn get_link(name: &str) -> RouteNetlinkMessage {
    let mut link = LinkMessage::default();
    link.attributes
        .push(LinkAttribute::IfName(name.to_string()));
    RouteNetlinkMessage::GetLink(link)
}

/// `ip link add name NAME type bridge` (sent with CREATE|EXCL).
pub(super) fn new_bridge(name: &str) -> RouteNetlinkMessage {
    let mut link = LinkMessage::default();
    link.attributes
        .push(LinkAttribute::IfName(name.to_string()));
    link.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    RouteNetlinkMessage::NewLink(link)
}

/// `ip link set dev INDEX up`.
pub(super) fn set_up(index: u32) -> RouteNetlinkMessage {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    RouteNetlinkMessage::NewLink(link)
}

/// `ip link set dev INDEX master CONTROLLER`.
pub(super) fn set_controller(index: u32, controller: u32) -> RouteNetlinkMessage {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.attributes.push(LinkAttribute::Controller(controller));
    RouteNetlinkMessage::NewLink(link)
}

/// `ip link del dev INDEX`.
pub(super) fn del_link(index: u32) -> RouteNetlinkMessage {
    let mut link = LinkMessage::default();
    link.header.index = index;
    RouteNetlinkMessage::DelLink(link)
}

/// `ip addr add ADDRESS/PREFIX dev INDEX` (sent with CREATE|EXCL): local
/// and peer address both ADDRESS, no broadcast, scope global, as `ip`
/// sends it.
pub(super) fn new_address(index: u32, address: Ipv4Addr, prefix: u8) -> RouteNetlinkMessage {
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.prefix_len = prefix;
    message.header.scope = AddressScope::Universe;
    message.header.index = index;
    message
        .attributes
        .push(AddressAttribute::Local(IpAddr::V4(address)));
    message
        .attributes
        .push(AddressAttribute::Address(IpAddr::V4(address)));
    RouteNetlinkMessage::NewAddress(message)
}

/// `ip -4 addr show`: every IPv4 address (the caller picks its link's).
pub(super) fn get_ipv4_addresses() -> RouteNetlinkMessage {
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    RouteNetlinkMessage::GetAddress(message)
}

/// An rtnetlink socket in the daemon's network namespace.
pub(super) struct Rtnl(Netlink);

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        Netlink::open(NETLINK_ROUTE).map(Rtnl)
    }

    /// Link `name` as the kernel describes it; None when there is none.
    pub fn link(&mut self, name: &str) -> io::Result<Option<LinkMessage>> {
        match self.0.request(get_link(name), 0) {
            Ok(answers) => Ok(answers.into_iter().find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of link `name`; None when there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        Ok(self.link(name)?.map(|link| link.header.index))
    }

    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        self.0
            .request(new_bridge(name), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        self.0.request(set_up(index), 0).map(drop)
    }

    pub fn set_controller(&mut self, index: u32, controller: u32) -> io::Result<()> {
        self.0
            .request(set_controller(index, controller), 0)
            .map(drop)
    }

    pub fn delete(&mut self, index: u32) -> io::Result<()> {
        self.0.request(del_link(index), 0).map(drop)
    }

    /// The IPv4 addresses of link `index`, with their prefix lengths.
    pub fn ipv4_addresses(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let answers = self.0.dump(get_ipv4_addresses())?;
        Ok(answers
            .into_iter()
            .filter_map(|answer| match answer {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    // Like `ip`: the local address, else the address.
                    let local = a.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    });
                    let address = a.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                        _ => None,
                    });
                    local.or(address).map(|ip| (ip, a.header.prefix_len))
                }
                _ => None,
            })
            .collect())
    }

    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
        self.0
            .request(
                new_address(index, address, prefix),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(drop)
    }
}

/// Creates persistent TAP `name` the way `ip tuntap add dev NAME mode tap`
/// does: TUNSETIFF with IFF_TAP | IFF_NO_PI (no packet-info header) |
/// IFF_TUN_EXCL (fail rather than take over an existing device), then
/// TUNSETPERSIST so that it outlives this descriptor. The VMM attaches to
/// it later with its own flags (vnet header).
pub(super) fn create_persistent_tap(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/net/tun: {e}")))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which lives on our
    // stack for the duration of the call; the descriptor is ours and open.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNSETPERSIST takes its argument by value (an int, 1: keep
    // the device after close) on the descriptor just attached above.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
