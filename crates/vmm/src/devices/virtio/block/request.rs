//! Parsing one guest descriptor chain into a block request.
//!
//! The guest is hostile. Everything in the chain is checked here, before any
//! host I/O is issued: descriptor addresses and lengths against guest
//! memory, the chain's shape, the header, the request's sector range against
//! the disk, and the direction of every buffer against the request type.
//!
//! Framing follows the spec (virtio 1.2, 2.6.4: no assumptions about how
//! the driver splits a request into descriptors): the device-readable
//! descriptors form one byte stream (16-byte header, then OUT data or
//! discard/write-zeroes ranges) and the device-writable descriptors another
//! (IN data or the GET_ID buffer, then the status byte, which is the very
//! last byte of the chain). Linux uses one descriptor per part; anything
//! else that fits the spec works too.
//!
//! Parsing writes into a pre-allocated `Request` (one per request slot), so
//! the hot path does not allocate.

use std::ops::Deref;

use thiserror::Error;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::config::{
    MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, MAX_WRITE_ZEROES_SECTORS, MAX_WRITE_ZEROES_SEG,
};
use super::{SECTOR_SHIFT, SECTOR_SIZE, SEG_MAX, SERIAL_MAX_LEN};
use crate::memory::GuestMemoryMmap;

/// struct virtio_blk_req's fixed header: le32 type, le32 reserved, le64 sector.
pub const HEADER_LEN: u64 = 16;
/// struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors,
/// le32 flags.
const RANGE_LEN: u64 = 16;
/// Descriptors accepted in one chain: header + SEG_MAX data + status.
pub const MAX_CHAIN_DESCS: usize = SEG_MAX as usize + 2;
/// Host iovecs per request: one per data descriptor, plus a few for
/// descriptors that straddle two guest memory regions (only possible when
/// regions are adjacent). Stays below IOV_MAX (1024).
pub const MAX_IOVECS: usize = MAX_CHAIN_DESCS + 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes,
}

/// Why a chain was refused. Every variant maps to the status byte the guest
/// gets (when the chain has one).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("empty descriptor chain or invalid head index")]
    EmptyChain,
    #[error(
        "descriptor chain truncated: loop, longer than the queue, bad next index or length overflow"
    )]
    TruncatedChain,
    #[error("no device-writable status byte at the end of the chain")]
    NoStatus,
    #[error("more than {MAX_CHAIN_DESCS} descriptors or {SEG_MAX} data segments")]
    TooManySegments,
    #[error("device-readable descriptor after a device-writable one")]
    BadLayout,
    #[error("descriptor outside guest memory")]
    BadAddress,
    #[error("request header shorter than 16 bytes")]
    ShortHeader,
    #[error("data buffer in the wrong direction for the request type")]
    WrongDirection,
    #[error("data length {0} is not a multiple of 512")]
    UnalignedLength(u64),
    #[error("request beyond the end of the disk")]
    OutOfRange,
    #[error("write to a read-only disk")]
    ReadOnly,
    #[error("malformed discard/write-zeroes range list")]
    BadRanges,
    #[error("discard/write-zeroes range larger than the advertised maximum")]
    RangeTooLarge,
    #[error("unsupported discard/write-zeroes flags {0:#x}")]
    UnsupportedFlags(u32),
    #[error("unsupported request type {0}")]
    Unsupported(u32),
}

impl RequestError {
    /// The status byte for this error (virtio 1.2, 5.2.6.2: UNSUPP for
    /// unknown types and flags, IOERR for everything else).
    pub fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported(_) | RequestError::UnsupportedFlags(_) => {
                VIRTIO_BLK_S_UNSUPP as u8
            }
            _ => VIRTIO_BLK_S_IOERR as u8,
        }
    }

    /// False for well-formed requests the device simply refuses.
    pub fn is_guest_bug(&self) -> bool {
        !matches!(
            self,
            RequestError::ReadOnly
                | RequestError::Unsupported(_)
                | RequestError::UnsupportedFlags(_)
        )
    }
}

/// What parsing needs to know about the disk.
#[derive(Clone, Copy, Debug)]
pub struct DiskLimits {
    /// In 512-byte sectors.
    pub capacity: u64,
    pub read_only: bool,
}

/// One discard / write-zeroes range, copied out of guest memory (so the
/// guest cannot change it after validation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub sector: u64,
    pub num_sectors: u32,
    pub unmap: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Desc {
    addr: u64,
    len: u32,
    writable: bool,
}

/// Host iovecs pointing into guest memory, handed to readv/writev.
pub struct IoVecs(pub Vec<libc::iovec>);

// SAFETY: the raw pointers point into the guest memory mappings, which are
// shared by every thread of the VMM (GuestMemoryMmap is Send + Sync) and are
// kept mapped by the GuestMemoryMmap the request's queue holds. The vector
// is only touched by whichever thread owns the device at the time.
unsafe impl Send for IoVecs {}

/// A parsed request. Lives in a request slot and is reused: `parse` clears
/// it, and its vectors never grow past the capacity reserved in `new`.
pub struct Request {
    pub head: u16,
    pub kind: RequestType,
    pub sector: u64,
    /// IN/OUT: payload bytes; GET_ID: bytes of the id to copy out.
    pub data_len: u64,
    /// Guest address of the status byte, once one was found.
    pub status: Option<GuestAddress>,
    pub iovecs: IoVecs,
    pub ranges: Vec<Range>,
    descs: Vec<Desc>,
}

impl Default for Request {
    fn default() -> Self {
        Self::new()
    }
}

impl Request {
    pub fn new() -> Self {
        Request {
            head: 0,
            kind: RequestType::Flush,
            sector: 0,
            data_len: 0,
            status: None,
            iovecs: IoVecs(Vec::with_capacity(MAX_IOVECS)),
            ranges: Vec::with_capacity(MAX_DISCARD_SEG.max(MAX_WRITE_ZEROES_SEG) as usize),
            descs: Vec::with_capacity(MAX_CHAIN_DESCS),
        }
    }

    /// Parses and validates `chain`. On error `self.status` tells whether
    /// (and where) an error status can be written.
    pub fn parse<M>(
        &mut self,
        chain: DescriptorChain<M>,
        mem: &GuestMemoryMmap,
        disk: DiskLimits,
    ) -> Result<(), RequestError>
    where
        M: Deref<Target = GuestMemoryMmap>,
    {
        self.head = chain.head_index();
        self.kind = RequestType::Flush;
        self.sector = 0;
        self.data_len = 0;
        self.status = None;
        self.iovecs.0.clear();
        self.ranges.clear();
        self.descs.clear();

        // Walk the whole chain. DescriptorChain stops after queue-size
        // descriptors (so loops end), at an out-of-range `next`, at an
        // unreadable descriptor and when the total length would pass
        // 2^32; in all those cases the last descriptor it yields still
        // has NEXT set, which is how we tell a truncated chain.
        let mut last = None;
        let mut too_many = false;
        let mut seen_writable = false;
        let mut bad_layout = false;
        for d in chain {
            if d.is_write_only() {
                seen_writable = true;
            } else if seen_writable {
                bad_layout = true;
            }
            if self.descs.len() < MAX_CHAIN_DESCS {
                self.descs.push(Desc {
                    addr: d.addr().0,
                    len: d.len(),
                    writable: d.is_write_only(),
                });
            } else {
                too_many = true;
            }
            last = Some(d);
        }
        let last = last.ok_or(RequestError::EmptyChain)?;
        if last.has_next() {
            return Err(RequestError::TruncatedChain);
        }

        // The status byte is the chain's last byte and must be writable.
        if last.is_write_only() && last.len() >= 1 {
            let addr = last.addr().0.checked_add(u64::from(last.len()) - 1);
            if let Some(addr) = addr.map(GuestAddress)
                && mem.address_in_range(addr)
            {
                self.status = Some(addr);
            }
        }
        if self.status.is_none() {
            return Err(RequestError::NoStatus);
        }
        if too_many {
            return Err(RequestError::TooManySegments);
        }
        if bad_layout {
            return Err(RequestError::BadLayout);
        }
        for d in &self.descs {
            let in_memory = d.addr.checked_add(u64::from(d.len)).is_some()
                && (d.len == 0 || mem.check_range(GuestAddress(d.addr), d.len as usize));
            if !in_memory {
                return Err(RequestError::BadAddress);
            }
        }

        let readable: u64 = self
            .descs
            .iter()
            .filter(|d| !d.writable)
            .map(|d| u64::from(d.len))
            .sum();
        let writable: u64 = self
            .descs
            .iter()
            .filter(|d| d.writable)
            .map(|d| u64::from(d.len))
            .sum();
        if readable < HEADER_LEN {
            return Err(RequestError::ShortHeader);
        }
        let mut header = [0u8; HEADER_LEN as usize];
        self.read_out_stream(mem, 0, &mut header)?;
        let req_type = u32::from_le_bytes(header[0..4].try_into().unwrap());
        self.sector = u64::from_le_bytes(header[8..16].try_into().unwrap());

        // Payload sizes in each direction; the status byte is not payload.
        let out_len = readable - HEADER_LEN;
        let in_len = writable - 1;

        match req_type {
            VIRTIO_BLK_T_IN => {
                self.kind = RequestType::In;
                if out_len != 0 {
                    return Err(RequestError::WrongDirection);
                }
                self.check_io(in_len, disk)?;
                self.build_iovecs(mem, true, 0, in_len)?;
            }
            VIRTIO_BLK_T_OUT => {
                self.kind = RequestType::Out;
                if in_len != 0 {
                    return Err(RequestError::WrongDirection);
                }
                if disk.read_only {
                    return Err(RequestError::ReadOnly);
                }
                self.check_io(out_len, disk)?;
                self.build_iovecs(mem, false, HEADER_LEN, out_len)?;
            }
            VIRTIO_BLK_T_FLUSH => {
                self.kind = RequestType::Flush;
                if in_len != 0 || out_len != 0 {
                    return Err(RequestError::WrongDirection);
                }
            }
            VIRTIO_BLK_T_GET_ID => {
                self.kind = RequestType::GetId;
                if out_len != 0 || in_len == 0 {
                    return Err(RequestError::WrongDirection);
                }
                self.data_len = in_len.min(SERIAL_MAX_LEN as u64);
            }
            VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
                let discard = req_type == VIRTIO_BLK_T_DISCARD;
                self.kind = if discard {
                    RequestType::Discard
                } else {
                    RequestType::WriteZeroes
                };
                if in_len != 0 {
                    return Err(RequestError::WrongDirection);
                }
                if disk.read_only {
                    return Err(RequestError::ReadOnly);
                }
                self.parse_ranges(mem, out_len, discard, disk)?;
            }
            other => return Err(RequestError::Unsupported(other)),
        }
        Ok(())
    }

    /// Checks an IN/OUT transfer of `len` bytes at `self.sector`.
    fn check_io(&mut self, len: u64, disk: DiskLimits) -> Result<(), RequestError> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(RequestError::UnalignedLength(len));
        }
        match self.sector.checked_add(len >> SECTOR_SHIFT) {
            Some(end) if end <= disk.capacity => {}
            _ => return Err(RequestError::OutOfRange),
        }
        self.data_len = len;
        Ok(())
    }

    /// Turns `len` bytes at `start` of one stream into host iovecs.
    fn build_iovecs(
        &mut self,
        mem: &GuestMemoryMmap,
        writable: bool,
        start: u64,
        len: u64,
    ) -> Result<(), RequestError> {
        // Taken out for the walk (a move, not an allocation), put back below.
        let mut iovs = std::mem::take(&mut self.iovecs.0);
        iovs.clear();
        let mut segments = 0u32;
        let result = walk(&self.descs, writable, start, len, |addr, n| {
            segments += 1;
            if segments > SEG_MAX {
                return Err(RequestError::TooManySegments);
            }
            for slice in mem.get_slices(addr, n as usize) {
                let slice = slice.map_err(|_| RequestError::BadAddress)?;
                if iovs.len() == MAX_IOVECS {
                    return Err(RequestError::TooManySegments);
                }
                iovs.push(libc::iovec {
                    iov_base: slice.ptr_guard_mut().as_ptr().cast(),
                    iov_len: slice.len(),
                });
            }
            Ok(())
        });
        self.iovecs.0 = iovs;
        result
    }

    fn parse_ranges(
        &mut self,
        mem: &GuestMemoryMmap,
        len: u64,
        discard: bool,
        disk: DiskLimits,
    ) -> Result<(), RequestError> {
        let (max_seg, max_sectors) = if discard {
            (MAX_DISCARD_SEG, MAX_DISCARD_SECTORS)
        } else {
            (MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SECTORS)
        };
        if len == 0 || !len.is_multiple_of(RANGE_LEN) || len / RANGE_LEN > u64::from(max_seg) {
            return Err(RequestError::BadRanges);
        }
        for i in 0..len / RANGE_LEN {
            let mut raw = [0u8; RANGE_LEN as usize];
            self.read_out_stream(mem, HEADER_LEN + i * RANGE_LEN, &mut raw)?;
            let sector = u64::from_le_bytes(raw[0..8].try_into().unwrap());
            let num_sectors = u32::from_le_bytes(raw[8..12].try_into().unwrap());
            let flags = u32::from_le_bytes(raw[12..16].try_into().unwrap());
            let unknown = flags & !VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
            // Spec: UNSUPP for unknown flags, and for unmap on a discard.
            if unknown != 0 || (discard && flags != 0) {
                return Err(RequestError::UnsupportedFlags(flags));
            }
            if num_sectors > max_sectors {
                return Err(RequestError::RangeTooLarge);
            }
            match sector.checked_add(u64::from(num_sectors)) {
                Some(end) if end <= disk.capacity => {}
                _ => return Err(RequestError::OutOfRange),
            }
            if num_sectors > 0 {
                self.ranges.push(Range {
                    sector,
                    num_sectors,
                    unmap: flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP != 0,
                });
            }
        }
        Ok(())
    }

    /// Copies bytes from the device-readable stream at `offset`.
    fn read_out_stream(
        &self,
        mem: &GuestMemoryMmap,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), RequestError> {
        let mut done = 0usize;
        walk(&self.descs, false, offset, buf.len() as u64, |addr, n| {
            let n = n as usize;
            mem.read_slice(&mut buf[done..done + n], addr)
                .map_err(|_| RequestError::BadAddress)?;
            done += n;
            Ok(())
        })?;
        if done == buf.len() {
            Ok(())
        } else {
            Err(RequestError::BadRanges)
        }
    }

    /// Copies `data` to the start of the device-writable stream (the GET_ID
    /// buffer). Never writes past `self.data_len` bytes, so never over the
    /// status byte or outside the chain.
    pub fn write_in_stream(&self, mem: &GuestMemoryMmap, data: &[u8]) -> Result<(), RequestError> {
        let len = (data.len() as u64).min(self.data_len);
        let mut done = 0usize;
        walk(&self.descs, true, 0, len, |addr, n| {
            let n = n as usize;
            mem.write_slice(&data[done..done + n], addr)
                .map_err(|_| RequestError::BadAddress)?;
            done += n;
            Ok(())
        })
    }
}

/// Calls `f(address, length)` for each piece of `[start, start + len)` of
/// the readable (`writable == false`) or writable descriptor stream.
fn walk(
    descs: &[Desc],
    writable: bool,
    start: u64,
    len: u64,
    mut f: impl FnMut(GuestAddress, u64) -> Result<(), RequestError>,
) -> Result<(), RequestError> {
    let end = start.checked_add(len).ok_or(RequestError::BadRanges)?;
    let mut pos = 0u64; // stream offset of the current descriptor
    for d in descs.iter().filter(|d| d.writable == writable) {
        let d_end = pos + u64::from(d.len);
        let lo = start.max(pos);
        let hi = end.min(d_end);
        if lo < hi {
            // In range: `lo - pos` < d.len and the whole descriptor was
            // checked against guest memory, so this cannot overflow.
            f(GuestAddress(d.addr + (lo - pos)), hi - lo)?;
        }
        pos = d_end;
        if pos >= end {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::{RawDescriptor, split::Descriptor as SplitDescriptor};
    use virtio_queue::mock::MockSplitQueue;

    const W: u16 = VRING_DESC_F_WRITE as u16;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn header(mem: &GuestMemoryMmap, at: u64, t: u32, sector: u64) {
        mem.write_obj(t.to_le(), GuestAddress(at)).unwrap();
        mem.write_obj(0u32, GuestAddress(at + 4)).unwrap();
        mem.write_obj(sector.to_le(), GuestAddress(at + 8)).unwrap();
    }

    fn parse(
        mem: &GuestMemoryMmap,
        descs: &[(u64, u32, u16)],
    ) -> (Request, Result<(), RequestError>) {
        let q = MockSplitQueue::new(mem, 16);
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .map(|&(a, l, f)| RawDescriptor::from(SplitDescriptor::new(a, l, f, 0)))
            .collect();
        let chain = q.build_desc_chain(&raw).unwrap();
        let mut req = Request::new();
        let disk = DiskLimits {
            capacity: 100,
            read_only: false,
        };
        let r = req.parse(chain, mem, disk);
        (req, r)
    }

    #[test]
    fn header_split_across_descriptors_and_status_in_data_descriptor() {
        let m = mem();
        header(&m, 0x1000, VIRTIO_BLK_T_IN, 7);
        // 10 + 6 header bytes (the second piece at 0x2000), then one
        // writable descriptor holding 1024 data bytes plus the status byte.
        m.write_slice(&[0u8; 6], GuestAddress(0x2000)).unwrap();
        let hdr: [u8; 16] = m.read_obj(GuestAddress(0x1000)).unwrap();
        m.write_slice(&hdr[10..], GuestAddress(0x2000)).unwrap();
        let (req, r) = parse(&m, &[(0x1000, 10, 0), (0x2000, 6, 0), (0x3000, 1025, W)]);
        r.unwrap();
        assert_eq!(req.kind, RequestType::In);
        assert_eq!(req.sector, 7);
        assert_eq!(req.data_len, 1024);
        assert_eq!(req.status, Some(GuestAddress(0x3000 + 1024)));
        assert_eq!(req.iovecs.0.len(), 1);
        assert_eq!(req.iovecs.0[0].iov_len, 1024);
    }

    #[test]
    fn error_statuses() {
        assert_eq!(
            RequestError::Unsupported(99).status(),
            VIRTIO_BLK_S_UNSUPP as u8
        );
        assert_eq!(
            RequestError::UnsupportedFlags(2).status(),
            VIRTIO_BLK_S_UNSUPP as u8
        );
        assert_eq!(RequestError::OutOfRange.status(), VIRTIO_BLK_S_IOERR as u8);
        assert!(!RequestError::ReadOnly.is_guest_bug());
        assert!(RequestError::BadLayout.is_guest_bug());
    }

    #[test]
    fn readable_after_writable_is_bad_layout() {
        let m = mem();
        header(&m, 0x1000, VIRTIO_BLK_T_IN, 0);
        let (req, r) = parse(
            &m,
            &[
                (0x1000, 16, 0),
                (0x2000, 512, W),
                (0x3000, 512, 0),
                (0x4000, 1, W),
            ],
        );
        assert_eq!(r, Err(RequestError::BadLayout));
        assert_eq!(req.status, Some(GuestAddress(0x4000)));
    }

    #[test]
    fn walk_clips_to_range() {
        let descs = [
            Desc {
                addr: 0x100,
                len: 10,
                writable: false,
            },
            Desc {
                addr: 0x900,
                len: 1,
                writable: true,
            },
            Desc {
                addr: 0x200,
                len: 10,
                writable: false,
            },
        ];
        let mut got = vec![];
        walk(&descs, false, 5, 10, |a, n| {
            got.push((a.0, n));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(0x105, 5), (0x200, 5)]);
    }
}
