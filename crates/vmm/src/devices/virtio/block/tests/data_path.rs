//! Reads, writes, flush, GET_ID, discard, write-zeroes and read-only disks
//! against the real io_uring engine and a temp file.

use super::*;

#[test]
fn write_then_read_round_trips_at_several_sectors_and_sizes() {
    let m = mem();
    let img = TempImage::new(256 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let mut expect = img.contents();
    let mut n = 0;
    for (sector, sectors) in [(0u64, 1usize), (1, 8), (7, 3), (100, 64), (255, 1)] {
        let len = sectors * SECTOR;
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8) ^ (sector as u8) ^ 0x5a)
            .collect();
        let buf = h.alloc(len as u64);
        h.fill(buf, &data);
        let st = h.request(VIRTIO_BLK_T_OUT, sector, &[(buf, len as u32, R)]);
        n += 1;
        h.run(n);
        assert_eq!(h.byte(st), OK);
        assert_eq!(h.used(n - 1).1, 1);
        let off = sector as usize * SECTOR;
        expect[off..off + len].copy_from_slice(&data);
        assert_eq!(img.contents(), expect, "file after write at {sector}");

        let rbuf = h.alloc(len as u64);
        let st = h.request(VIRTIO_BLK_T_IN, sector, &[(rbuf, len as u32, W)]);
        n += 1;
        h.run(n);
        assert_eq!(h.byte(st), OK);
        assert_eq!(h.used(n - 1).1, len as u32 + 1);
        assert_eq!(h.bytes(rbuf, len), data);
    }
    let s = h.block.metrics().snapshot();
    assert_eq!((s.read_ops, s.write_ops), (5, 5));
    assert_eq!(s.read_bytes, (1 + 8 + 3 + 64 + 1) * 512);
    assert_eq!(s.write_bytes, s.read_bytes);
    assert_eq!(s.io_errors, 0);
}

#[test]
fn multi_descriptor_requests_scatter_and_gather() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    // Read sectors 4..10 into three buffers of 1, 2 and 3 sectors.
    let bufs: Vec<(u64, u32, u16)> = [1u32, 2, 3]
        .iter()
        .map(|&s| (h.alloc(u64::from(s) * 512), s * 512, W))
        .collect();
    let before = h.snapshot();
    let st = h.request(VIRTIO_BLK_T_IN, 4, &bufs);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    let file = img.contents();
    let mut got = vec![];
    for &(a, l, _) in &bufs {
        got.extend(h.bytes(a, l as usize));
    }
    assert_eq!(got, &file[4 * SECTOR..10 * SECTOR]);
    // Only the three buffers, the status byte and the header (written by
    // the test itself) changed.
    let mut allowed: Vec<(u64, u64)> = bufs.iter().map(|&(a, l, _)| (a, u64::from(l))).collect();
    allowed.push((st, 1));
    allowed.push((st - 0x1000, 16));
    h.assert_only_changed(&before, &allowed);

    // Write two buffers (a 4 KiB one and a 512-byte one) at sector 20.
    let a = h.alloc(4096);
    let b = h.alloc(512);
    h.fill(a, &[0x11; 4096]);
    h.fill(b, &[0x22; 512]);
    let st = h.request(VIRTIO_BLK_T_OUT, 20, &[(a, 4096, R), (b, 512, R)]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    let file2 = img.contents();
    assert_eq!(&file2[20 * SECTOR..28 * SECTOR], &[0x11; 4096][..]);
    assert_eq!(&file2[28 * SECTOR..29 * SECTOR], &[0x22; 512][..]);
    assert_eq!(&file2[..20 * SECTOR], &file[..20 * SECTOR]);
    assert_eq!(&file2[29 * SECTOR..], &file[29 * SECTOR..]);
}

#[test]
fn flush_completes_ok() {
    let m = mem();
    let img = TempImage::new(16 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(512);
    h.fill(buf, &[7; 512]);
    h.request(VIRTIO_BLK_T_OUT, 3, &[(buf, 512, R)]);
    h.run(1);
    let st = h.request(VIRTIO_BLK_T_FLUSH, 0, &[]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    assert_eq!(h.used(1).1, 1);
    assert_eq!(h.block.metrics().snapshot().flush_ops, 1);
    assert_eq!(&img.contents()[3 * SECTOR..4 * SECTOR], &[7; 512][..]);
}

fn get_id(serial: Option<&str>, buf_len: u32) -> (Vec<u8>, u8, u32) {
    let m = mem();
    let img = TempImage::new(4096);
    let mut c = cfg(&img);
    c.serial = serial.map(str::to_string);
    let mut h = Harness::new(&m, c);
    let buf = h.alloc(64);
    let st = h.request(VIRTIO_BLK_T_GET_ID, 0, &[(buf, buf_len, W)]);
    h.run(1);
    (h.bytes(buf, 24), h.byte(st), h.used(0).1)
}

#[test]
fn get_id_short_serial_is_nul_padded() {
    let (buf, st, len) = get_id(Some("vol-42"), 20);
    assert_eq!(st, OK);
    assert_eq!(len, 21);
    let mut want = b"vol-42".to_vec();
    want.resize(20, 0);
    assert_eq!(&buf[..20], &want[..]);
    assert_eq!(&buf[20..], &[CANARY; 4], "nothing past the 20-byte buffer");
}

#[test]
fn get_id_twenty_byte_serial_has_no_terminator() {
    let (buf, st, _) = get_id(Some("vol-0123456789abcdef"), 20);
    assert_eq!(st, OK);
    assert_eq!(&buf[..20], b"vol-0123456789abcdef");
    assert_eq!(&buf[20..], &[CANARY; 4]);
}

#[test]
fn get_id_short_buffer_and_no_serial() {
    let (buf, st, len) = get_id(Some("vol-0123456789abcdef"), 8);
    assert_eq!((st, len), (OK, 9));
    assert_eq!(&buf[..8], b"vol-0123");
    assert_eq!(buf[8], CANARY);
    let (buf, st, _) = get_id(None, 20);
    assert_eq!(st, OK);
    assert_eq!(&buf[..20], &[0; 20]);
}

#[test]
fn discard_punches_holes_and_reads_back_zero() {
    let m = mem();
    let img = TempImage::new(1 << 20); // 1 MiB, fully allocated
    let before_alloc = img.allocated();
    let mut h = Harness::new(&m, cfg(&img));
    // Two ranges: 64 KiB at sector 128, and 4 KiB at sector 1024.
    let (a, l) = ranges_buf(&mut h, &[range(128, 128, 0), range(1024, 8, 0)]);
    let st = h.request(VIRTIO_BLK_T_DISCARD, 0, &[(a, l, R)]);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    let file = img.contents();
    let orig = pattern(1 << 20);
    assert_eq!(file.len(), 1 << 20, "size kept");
    assert!(file[128 * SECTOR..256 * SECTOR].iter().all(|&b| b == 0));
    assert!(file[1024 * SECTOR..1032 * SECTOR].iter().all(|&b| b == 0));
    assert_eq!(&file[..128 * SECTOR], &orig[..128 * SECTOR]);
    assert_eq!(
        &file[256 * SECTOR..1024 * SECTOR],
        &orig[256 * SECTOR..1024 * SECTOR]
    );
    assert_eq!(&file[1032 * SECTOR..], &orig[1032 * SECTOR..]);
    assert!(img.allocated() < before_alloc, "blocks were freed");
    assert_eq!(h.block.metrics().snapshot().discard_ops, 1);
}

#[test]
fn write_zeroes_zeroes_and_unmap_punches() {
    let m = mem();
    let img = TempImage::new(1 << 20);
    let mut h = Harness::new(&m, cfg(&img));
    let (a, l) = ranges_buf(&mut h, &[range(16, 16, 0)]);
    let st = h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &[(a, l, R)]);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    let alloc_after_zero = img.allocated();
    let flag = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    let (a, l) = ranges_buf(&mut h, &[range(512, 256, flag)]);
    let st = h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &[(a, l, R)]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    let file = img.contents();
    let orig = pattern(1 << 20);
    assert_eq!(file.len(), 1 << 20);
    assert!(file[16 * SECTOR..32 * SECTOR].iter().all(|&b| b == 0));
    assert!(file[512 * SECTOR..768 * SECTOR].iter().all(|&b| b == 0));
    assert_eq!(&file[..16 * SECTOR], &orig[..16 * SECTOR]);
    assert_eq!(
        &file[32 * SECTOR..512 * SECTOR],
        &orig[32 * SECTOR..512 * SECTOR]
    );
    assert_eq!(&file[768 * SECTOR..], &orig[768 * SECTOR..]);
    assert!(img.allocated() < alloc_after_zero, "unmap freed blocks");
    assert_eq!(h.block.metrics().snapshot().write_zeroes_ops, 2);
}

#[test]
fn read_only_disk_refuses_writes_and_leaves_file_unchanged() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut c = cfg(&img);
    c.read_only = true;
    let mut h = Harness::new(&m, c);
    let buf = h.alloc(512);
    h.fill(buf, &[0xee; 512]);
    let s1 = h.request(VIRTIO_BLK_T_OUT, 0, &[(buf, 512, R)]);
    let (a, l) = ranges_buf(&mut h, &[range(0, 8, 0)]);
    let s2 = h.request(VIRTIO_BLK_T_DISCARD, 0, &[(a, l, R)]);
    let s3 = h.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &[(a, l, R)]);
    let rbuf = h.alloc(512);
    let s4 = h.request(VIRTIO_BLK_T_IN, 1, &[(rbuf, 512, W)]);
    let s5 = h.request(VIRTIO_BLK_T_FLUSH, 0, &[]);
    h.run(5);
    assert_eq!([h.byte(s1), h.byte(s2), h.byte(s3)], [IOERR; 3]);
    assert_eq!([h.byte(s4), h.byte(s5)], [OK; 2]);
    assert_eq!(h.bytes(rbuf, 512), &orig[SECTOR..2 * SECTOR]);
    assert_eq!(img.contents(), orig);
}
