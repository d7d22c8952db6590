//! The virtio-blk configuration space (struct virtio_blk_config, virtio 1.2
//! section 5.2.4), serialised little-endian once at creation: every field we
//! expose but the capacity (which follows a resize of the backing file) is
//! fixed for the life of the device, so reads are a bounds-checked copy at
//! any offset and width.

use super::SEG_MAX;

/// Byte offsets of the fields we fill in.
const OFF_CAPACITY: usize = 0; // le64
const OFF_SEG_MAX: usize = 12; // le32 (size_max at 8 stays 0: no SIZE_MAX)
const OFF_BLK_SIZE: usize = 20; // le32 (geometry at 16 stays 0)
const OFF_NUM_QUEUES: usize = 34; // le16 (topology 24..32, writeback 32)
const OFF_MAX_DISCARD_SECTORS: usize = 36; // le32
const OFF_MAX_DISCARD_SEG: usize = 40; // le32
const OFF_DISCARD_SECTOR_ALIGNMENT: usize = 44; // le32
const OFF_MAX_WRITE_ZEROES_SECTORS: usize = 48; // le32
const OFF_MAX_WRITE_ZEROES_SEG: usize = 52; // le32
const OFF_WRITE_ZEROES_MAY_UNMAP: usize = 56; // u8, then 3 unused bytes

/// Up to and including write_zeroes_may_unmap + padding. Secure erase and
/// zoned fields follow in newer specs; we offer neither feature, so they
/// read as 0 like any other out-of-range byte.
pub const CONFIG_SPACE_SIZE: usize = 60;

/// Logical block size reported to the guest (VIRTIO_BLK_F_BLK_SIZE).
pub const BLK_SIZE: u32 = 512;
/// Largest discard / write-zeroes range, in sectors. Bounded so that one
/// guest request cannot tie up the host for long in a single fallocate;
/// Linux splits bigger ranges. 0x40_0000 sectors = 2 GiB.
pub const MAX_DISCARD_SECTORS: u32 = 0x40_0000;
pub const MAX_WRITE_ZEROES_SECTORS: u32 = 0x40_0000;
/// Ranges per discard / write-zeroes request (Linux merges adjacent bios
/// into multi-range requests up to this).
pub const MAX_DISCARD_SEG: u32 = 16;
pub const MAX_WRITE_ZEROES_SEG: u32 = 16;
/// Discard granularity hint in sectors: 4 KiB, the host filesystem block
/// that a hole punch can actually free. Unaligned ranges still work
/// (the partial blocks are zeroed instead of freed).
pub const DISCARD_SECTOR_ALIGNMENT: u32 = 8;

#[derive(Clone, Debug)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SPACE_SIZE],
}

impl ConfigSpace {
    /// `num_queues` is read by the driver only with VIRTIO_BLK_F_MQ.
    pub fn new(capacity_sectors: u64, num_queues: u16) -> Self {
        let mut bytes = [0u8; CONFIG_SPACE_SIZE];
        let mut put = |off: usize, val: &[u8]| bytes[off..off + val.len()].copy_from_slice(val);
        put(OFF_CAPACITY, &capacity_sectors.to_le_bytes());
        put(OFF_SEG_MAX, &SEG_MAX.to_le_bytes());
        put(OFF_BLK_SIZE, &BLK_SIZE.to_le_bytes());
        put(OFF_NUM_QUEUES, &num_queues.to_le_bytes());
        put(OFF_MAX_DISCARD_SECTORS, &MAX_DISCARD_SECTORS.to_le_bytes());
        put(OFF_MAX_DISCARD_SEG, &MAX_DISCARD_SEG.to_le_bytes());
        put(
            OFF_DISCARD_SECTOR_ALIGNMENT,
            &DISCARD_SECTOR_ALIGNMENT.to_le_bytes(),
        );
        put(
            OFF_MAX_WRITE_ZEROES_SECTORS,
            &MAX_WRITE_ZEROES_SECTORS.to_le_bytes(),
        );
        put(
            OFF_MAX_WRITE_ZEROES_SEG,
            &MAX_WRITE_ZEROES_SEG.to_le_bytes(),
        );
        // Write-zeroes with the unmap flag punches holes.
        put(OFF_WRITE_ZEROES_MAY_UNMAP, &[1]);
        ConfigSpace { bytes }
    }

    /// A new capacity (the backing file was resized).
    pub fn set_capacity(&mut self, capacity_sectors: u64) {
        self.bytes[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&capacity_sectors.to_le_bytes());
    }

    /// Copies `data.len()` bytes from `offset`; bytes past the end read as 0
    /// (a driver may read at any offset and width; the transport bounds the
    /// width, we bound the offset).
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start >= self.bytes.len() {
            return;
        }
        let n = data.len().min(self.bytes.len() - start);
        data[..n].copy_from_slice(&self.bytes[start..start + n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(cs: &ConfigSpace, off: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0xAAu8; len];
        cs.read(off, &mut v);
        v
    }

    #[test]
    fn capacity_at_every_width_and_offset() {
        let cap: u64 = 0x1122_3344_5566_7788;
        let cs = ConfigSpace::new(cap, 1);
        let le = cap.to_le_bytes();
        assert_eq!(read(&cs, 0, 8), le);
        for width in [1usize, 2, 4] {
            for off in (0..8).step_by(width) {
                assert_eq!(read(&cs, off as u64, width), &le[off..off + width]);
            }
        }
        // Unaligned and odd widths too.
        assert_eq!(read(&cs, 3, 3), &le[3..6]);
        assert_eq!(
            u32::from_le_bytes(read(&cs, 4, 4).try_into().unwrap()),
            0x1122_3344
        );
    }

    #[test]
    fn fields_match_spec_layout() {
        let cs = ConfigSpace::new(2048, 4);
        let u32_at = |off| u32::from_le_bytes(read(&cs, off, 4).try_into().unwrap());
        assert_eq!(u32_at(8), 0, "size_max not offered");
        assert_eq!(u32_at(12), SEG_MAX);
        assert_eq!(u32_at(20), 512);
        assert_eq!(u16::from_le_bytes(read(&cs, 34, 2).try_into().unwrap()), 4);
        assert_eq!(u32_at(36), MAX_DISCARD_SECTORS);
        assert_eq!(u32_at(40), MAX_DISCARD_SEG);
        assert_eq!(u32_at(44), DISCARD_SECTOR_ALIGNMENT);
        assert_eq!(u32_at(48), MAX_WRITE_ZEROES_SECTORS);
        assert_eq!(u32_at(52), MAX_WRITE_ZEROES_SEG);
        assert_eq!(read(&cs, 56, 1), [1]);
    }

    #[test]
    fn capacity_follows_a_resize() {
        let mut cs = ConfigSpace::new(8, 1);
        cs.set_capacity(0x1_0000_0001);
        assert_eq!(read(&cs, 0, 8), 0x1_0000_0001u64.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(read(&cs, 12, 4).try_into().unwrap()),
            SEG_MAX
        );
    }

    #[test]
    fn out_of_range_reads_zero() {
        let cs = ConfigSpace::new(u64::MAX, 1);
        assert_eq!(read(&cs, 58, 4), [0, 0, 0, 0]);
        assert_eq!(read(&cs, 60, 4), [0, 0, 0, 0]);
        assert_eq!(read(&cs, 1 << 40, 2), [0, 0]);
        assert_eq!(read(&cs, u64::MAX, 8), [0; 8]);
        // Straddling the end: the in-range part is real, the rest is 0.
        assert_eq!(read(&cs, 56, 8), [1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
