//! Moving frames between descriptor chains and host buffers, and the bits
//! of the virtio-net header the datapath must act on.

use std::ops::Deref;

use virtio_bindings::virtio_net::{VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE};
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::tap::VNET_HDR_LEN;
use crate::memory::GuestMemoryMmap;

/// Offset of `num_buffers` in the v1 header.
const NUM_BUFFERS_OFFSET: usize = 10;

/// Why a TX chain was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// A device-writable descriptor in a TX chain.
    WritableDescriptor,
    /// More than the largest frame plus its header.
    TooLong,
    /// Shorter than the header plus an Ethernet header.
    TooShort,
    /// A descriptor outside guest memory.
    BadAddress,
}

/// Gathers a TX chain (vnet header + frame) into `buf`; returns its length.
pub fn gather_tx<M>(
    chain: DescriptorChain<M>,
    mem: &GuestMemoryMmap,
    buf: &mut [u8],
) -> Result<usize, TxError>
where
    M: Deref,
    M::Target: GuestMemoryBackend,
{
    let mut len = 0usize;
    // DescriptorChain stops after queue-size descriptors (loops end).
    for desc in chain {
        if desc.is_write_only() {
            return Err(TxError::WritableDescriptor);
        }
        let n = desc.len() as usize;
        let end = len
            .checked_add(n)
            .filter(|&e| e <= buf.len())
            .ok_or(TxError::TooLong)?;
        mem.read_slice(&mut buf[len..end], desc.addr())
            .map_err(|_| TxError::BadAddress)?;
        len = end;
    }
    if len < VNET_HDR_LEN + 14 {
        return Err(TxError::TooShort);
    }
    Ok(len)
}

/// Collects an RX chain's writable buffers into `buffers` (cleared
/// first). Returns the chain's head and its capacity, or `None` for the
/// capacity when the chain has a device-readable descriptor (unusable: the
/// caller returns it with length 0).
pub fn collect_rx<M>(
    chain: DescriptorChain<M>,
    buffers: &mut Vec<(GuestAddress, u32)>,
) -> (u16, Option<usize>)
where
    M: Deref,
    M::Target: GuestMemoryBackend,
{
    let head = chain.head_index();
    buffers.clear();
    let mut capacity = 0usize;
    for desc in chain {
        if !desc.is_write_only() {
            return (head, None);
        }
        capacity = capacity.saturating_add(desc.len() as usize);
        buffers.push((desc.addr(), desc.len()));
    }
    (head, Some(capacity))
}

/// Writes `data` into `buffers` (one chain's writable space) from byte
/// `offset`; returns the bytes written (less than asked when the space ends
/// or a buffer lies outside guest memory).
pub fn write_rx(
    buffers: &[(GuestAddress, u32)],
    mem: &GuestMemoryMmap,
    offset: usize,
    data: &[u8],
) -> usize {
    let mut skip = offset;
    let mut written = 0;
    for &(addr, len) in buffers {
        let len = len as usize;
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = (len - skip).min(data.len() - written);
        let Some(at) = addr.0.checked_add(skip as u64) else {
            return written;
        };
        if mem
            .write_slice(&data[written..written + n], GuestAddress(at))
            .is_err()
        {
            return written;
        }
        written += n;
        skip = 0;
        if written == data.len() {
            break;
        }
    }
    written
}

/// Sets `num_buffers` in a v1 header.
pub fn set_num_buffers(hdr: &mut [u8; VNET_HDR_LEN], n: u16) {
    hdr[NUM_BUFFERS_OFFSET..NUM_BUFFERS_OFFSET + 2].copy_from_slice(&n.to_le_bytes());
}

/// What a TX header asks of a frame that a link service takes.
#[derive(Debug, PartialEq, Eq)]
pub enum TxOffload {
    None,
    /// Finish the checksum: sum from `start` to the end, store at
    /// `start + offset`.
    Checksum {
        start: usize,
        offset: usize,
    },
    /// A GSO frame: only the host kernel segments those.
    Gso,
}

pub fn tx_offload(hdr: &[u8]) -> TxOffload {
    let flags = u32::from(hdr[0]);
    let gso = u32::from(hdr[1]);
    if gso != VIRTIO_NET_HDR_GSO_NONE {
        return TxOffload::Gso;
    }
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        let start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
        let offset = usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
        return TxOffload::Checksum { start, offset };
    }
    TxOffload::None
}

/// Completes a partial checksum in place (the field holds the
/// pseudo-header sum, as Linux leaves it). False when the offsets do not
/// fit the frame.
pub fn finish_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let Some(field) = start.checked_add(offset) else {
        return false;
    };
    if start >= frame.len() || field.checked_add(2).is_none_or(|e| e > frame.len()) {
        return false;
    }
    let mut sum: u32 = 0;
    let mut chunks = frame[start..].chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let value = !(sum as u16);
    frame[field..field + 2].copy_from_slice(&value.to_be_bytes());
    true
}
