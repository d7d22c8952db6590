//! The services the VMM answers itself on an instance's link, as EC2's
//! network does: DHCP for the instance's private address and the instance
//! metadata service on 169.254.169.254 (ARP for it, ICMP echo, TCP port
//! 80). `GuestLink` is the virtio-net device's `LinkServices`: it sees
//! every frame the guest sends before the TAP does, takes what is for these
//! services (they never reach the host), and hands back their answers.
//! Nothing else is intercepted.

mod imds_stack;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Ipv4Packet,
};

use crate::devices::virtio::net::LinkServices;
use crate::dhcp::{DhcpServer, is_dhcp_to_server};
use crate::imds::Imds;
#[cfg(test)]
use imds_stack::MAX_CONNECTIONS;
pub use imds_stack::{IMDS_ADDR, ImdsStack};

/// The Ethernet address the metadata service answers from (locally
/// administered, like EC2's link-local services' addresses).
pub const IMDS_MAC: [u8; 6] = [0x06, 0x00, 0xa9, 0xfe, 0xa9, 0xfe];
/// ARP replies and other small frames waiting for the guest.
const MAX_PENDING_FRAMES: usize = 64;

pub struct GuestLink {
    guest_mac: [u8; 6],
    dhcp: Option<DhcpServer>,
    imds: Option<ImdsStack>,
    out: VecDeque<Vec<u8>>,
}

impl GuestLink {
    pub fn new(
        guest_mac: [u8; 6],
        dhcp: Option<DhcpServer>,
        imds: Option<Arc<Mutex<Imds>>>,
        now: Instant,
    ) -> Self {
        GuestLink {
            guest_mac,
            dhcp,
            imds: imds.map(|i| ImdsStack::new(i, now)),
            out: VecDeque::new(),
        }
    }

    fn queue(&mut self, frame: Vec<u8>) {
        if self.out.len() < MAX_PENDING_FRAMES {
            self.out.push_back(frame);
        }
    }

    /// An ARP request for 169.254.169.254: answer it.
    fn take_arp(&mut self, frame: &EthernetFrame<&[u8]>) -> bool {
        let Ok(packet) = ArpPacket::new_checked(frame.payload()) else {
            return false;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&packet)
        else {
            return false;
        };
        if target_protocol_addr != IMDS_ADDR {
            return false;
        }
        if operation == ArpOperation::Request {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: EthernetAddress(IMDS_MAC),
                source_protocol_addr: IMDS_ADDR,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            let eth = EthernetRepr {
                src_addr: EthernetAddress(IMDS_MAC),
                dst_addr: source_hardware_addr,
                ethertype: EthernetProtocol::Arp,
            };
            let mut out = vec![0u8; eth.buffer_len() + reply.buffer_len()];
            let mut f = EthernetFrame::new_unchecked(&mut out[..]);
            eth.emit(&mut f);
            reply.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
            self.queue(out);
        }
        true
    }

    /// Wraps an IP packet from the metadata service for the guest.
    fn ethernet_for_guest(&self, packet: &[u8]) -> Vec<u8> {
        let eth = EthernetRepr {
            src_addr: EthernetAddress(IMDS_MAC),
            dst_addr: EthernetAddress(self.guest_mac),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut out = vec![0u8; eth.buffer_len() + packet.len()];
        let mut f = EthernetFrame::new_unchecked(&mut out[..]);
        eth.emit(&mut f);
        f.payload_mut().copy_from_slice(packet);
        out
    }

    pub fn imds_busy_connections(&self) -> usize {
        self.imds.as_ref().map_or(0, ImdsStack::busy_connections)
    }
}

impl LinkServices for GuestLink {
    fn take_frame(&mut self, frame: &[u8], now: Instant) -> bool {
        if self.dhcp.is_some() && is_dhcp_to_server(frame) {
            if let Some(reply) = self.dhcp.as_mut().and_then(|d| d.handle_frame(frame)) {
                self.queue(reply);
            }
            // DHCP on an instance's link is ours alone, answered or not.
            return true;
        }
        let Some(imds) = self.imds.as_mut() else {
            return false;
        };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return false;
        };
        match eth.ethertype() {
            EthernetProtocol::Arp => self.take_arp(&eth),
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    return false;
                };
                if ip.dst_addr() != IMDS_ADDR {
                    return false;
                }
                // Only the IP packet itself (Ethernet padding cut off).
                let len = usize::from(ip.total_len()).min(eth.payload().len());
                imds.push_packet(&eth.payload()[..len]);
                imds.poll(now);
                true
            }
            _ => false,
        }
    }

    fn next_frame(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(f) = self.out.pop_front() {
            return Some(f);
        }
        let imds = self.imds.as_mut()?;
        if let Some(packet) = imds.pop_packet() {
            return Some(self.ethernet_for_guest(&packet));
        }
        imds.poll(now);
        let packet = imds.pop_packet()?;
        Some(self.ethernet_for_guest(&packet))
    }

    fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.imds.as_mut()?.poll_delay(now)
    }
}

#[cfg(test)]
mod tests;
