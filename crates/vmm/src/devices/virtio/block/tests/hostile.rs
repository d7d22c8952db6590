//! A hostile guest: every malformed chain gets an error status (or no
//! status at all), and nothing outside its buffers changes.

use super::*;

/// Sends one chain, expects status `want` and a file and guest memory
/// unchanged apart from the status byte.
fn expect_refused(
    h: &mut Harness,
    img: &TempImage,
    descs: &[(u64, u32, u16)],
    status: u64,
    want: u8,
) {
    let orig = img.contents();
    let before = h.snapshot();
    h.chain(descs);
    let n = h.used_idx() + 1;
    h.run(n);
    h.assert_only_changed(&before, &[(status, 1)]);
    assert_eq!(h.byte(status), want, "status byte");
    assert_eq!(h.used(n - 1).1, 1, "used length");
    assert_eq!(img.contents(), orig, "file unchanged");
}

#[test]
fn descriptor_outside_guest_memory_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    // Starts inside, ends past the end of guest memory.
    let d = (MEM_SIZE - 256, 512, W);
    expect_refused(&mut h, &img, &[(hd, 16, R), d, (st, 1, W)], st, IOERR);
    // Entirely outside.
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (1 << 40, 512, R), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(MEM_SIZE - 256, 256), vec![0; 256]);
}

#[test]
fn overflowing_address_plus_length_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    let d = (u64::MAX - 100, 512, W);
    expect_refused(&mut h, &img, &[(hd, 16, R), d, (st, 1, W)], st, IOERR);
}

#[test]
fn chain_longer_than_four_gib_has_no_status() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    // Total length passes 2^32: the chain iterator stops, so the status
    // descriptor is never reached.
    let big = (DATA_START, u32::MAX, W);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), big, (st, 1, W)]);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
}

#[test]
fn looping_chain_is_returned_without_status_and_queue_goes_on() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    // 0 -> 1 -> 0 -> ...
    let before = h.snapshot();
    h.put_desc(0, hd, 16, VRING_DESC_F_NEXT as u16, 1);
    h.put_desc(1, buf, 512, W | VRING_DESC_F_NEXT as u16, 0);
    h.next_desc = 2;
    h.publish(0);
    h.run(1);
    assert_eq!(h.used(0), (0, 0));
    h.assert_only_changed(&before, &[]);
    // The device still works.
    let rbuf = h.alloc(512);
    let st = h.request(VIRTIO_BLK_T_IN, 0, &[(rbuf, 512, W)]);
    h.run(2);
    assert_eq!(h.byte(st), OK);
    assert!(!h.block.needs_reset());
}

#[test]
fn next_index_beyond_queue_is_truncated_chain() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    let before = h.snapshot();
    h.put_desc(0, hd, 16, VRING_DESC_F_NEXT as u16, 200); // qsize is 64
    h.put_desc(1, st, 1, W, 0);
    h.next_desc = 2;
    h.publish(0);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
}

#[test]
fn head_index_beyond_queue_is_skipped() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    h.publish(1000);
    h.block.handler(0).process_queue();
    assert_eq!(h.used_idx(), 0, "nothing to return for a bogus head");
    assert!(!h.block.needs_reset());
    let rbuf = h.alloc(512);
    let st = h.request(VIRTIO_BLK_T_IN, 0, &[(rbuf, 512, W)]);
    h.run(1);
    assert_eq!(h.byte(st), OK);
}

/// An indirect table (the device follows them even though the feature is
/// not offered) with `data` data descriptors between header and status.
fn indirect_request(h: &mut Harness, data: usize) -> u64 {
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    let buf = h.alloc(512 * data as u64);
    let table = h.alloc(16 * (data as u64 + 2));
    let n = data + 2;
    for i in 0..n {
        let (addr, len, flags) = match i {
            0 => (hd, 16, R),
            _ if i == n - 1 => (st, 1, W),
            _ => (buf + 512 * (i as u64 - 1), 512, W),
        };
        let flags = if i == n - 1 {
            flags
        } else {
            flags | VRING_DESC_F_NEXT as u16
        };
        let d = SplitDescriptor::new(addr, len, flags, (i + 1) as u16);
        h.mem
            .write_obj(RawDescriptor::from(d), GuestAddress(table + 16 * i as u64))
            .unwrap();
    }
    h.chain(&[(table, 16 * n as u32, VRING_DESC_F_INDIRECT as u16)]);
    st
}

#[test]
fn more_segments_than_seg_max_is_ioerr() {
    let m = mem();
    let img = TempImage::new(1024 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    // SEG_MAX data segments are fine...
    let st = indirect_request(&mut h, SEG_MAX as usize);
    h.run(1);
    assert_eq!(h.byte(st), OK);
    // ...one more is refused, with nothing read into guest memory.
    let st = indirect_request(&mut h, SEG_MAX as usize + 1);
    let before_run = h.snapshot();
    h.run(2);
    assert_eq!(h.byte(st), IOERR);
    h.assert_only_changed(&before_run, &[(st, 1)]);
}

#[test]
fn header_shorter_than_16_bytes_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(&mut h, &img, &[(hd, 15, R), (st, 1, W)], st, IOERR);
    // 8 header bytes followed by data: the data's first 8 bytes complete
    // the header, leaving a misaligned OUT, which is refused.
    expect_refused(
        &mut h,
        &img,
        &[(hd, 8, R), (buf, 512, R), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn header_in_writable_descriptor_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, W), (buf, 512, W), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512]);
    assert_eq!(h.bytes(hd, 4), VIRTIO_BLK_T_IN.to_le_bytes());
}

#[test]
fn out_with_device_writable_buffer_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 512, W), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512]);
}

#[test]
fn in_with_device_readable_buffer_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 512, R), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512], "not written");
}

#[test]
fn missing_status_descriptor_returns_zero_length() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let buf = h.alloc(512);
    h.fill(buf, &[1; 512]);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), (buf, 512, R)]);
    h.run(1);
    assert_eq!(h.used(0).1, 0);
    h.assert_only_changed(&before, &[]);
    assert_eq!(img.contents(), orig);
    assert_eq!(h.bytes(buf, 512), vec![1; 512]);
}

#[test]
fn zero_length_status_descriptor_returns_zero_length() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_FLUSH, 0);
    let st = h.alloc(1);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), (st, 0, W)]);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
}

#[test]
fn read_only_status_descriptor_returns_zero_length() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut h = Harness::new(&m, cfg(&img));
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    let before = h.snapshot();
    h.chain(&[(hd, 16, R), (buf, 512, W), (st, 1, R)]);
    h.run(1);
    assert_no_status(&h, &before, 0, st);
    assert_eq!(h.bytes(buf, 512), vec![CANARY; 512], "no data read");
    assert_eq!(img.contents(), orig);
}

#[test]
fn request_beyond_capacity_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR + 100); // capacity 64
    let mut h = Harness::new(&m, cfg(&img));
    for (t, flags) in [(VIRTIO_BLK_T_IN, W), (VIRTIO_BLK_T_OUT, R)] {
        for sector in [64u64, 63, 1 << 60] {
            let buf = h.alloc(1024);
            let hd = h.header(t, sector);
            let st = h.alloc(1);
            expect_refused(
                &mut h,
                &img,
                &[(hd, 16, R), (buf, 1024, flags), (st, 1, W)],
                st,
                IOERR,
            );
            assert_eq!(h.bytes(buf, 1024), vec![CANARY; 1024]);
        }
    }
    // The last whole sector is fine, the partial tail is not exposed.
    let buf = h.alloc(512);
    let st = h.request(VIRTIO_BLK_T_IN, 63, &[(buf, 512, W)]);
    let n = h.used_idx() + 1;
    h.run(n);
    assert_eq!(h.byte(st), OK);
}

#[test]
fn sector_plus_length_overflowing_u64_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(1024);
    let hd = h.header(VIRTIO_BLK_T_IN, u64::MAX);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 1024, W), (st, 1, W)],
        st,
        IOERR,
    );
    let hd = h.header(VIRTIO_BLK_T_OUT, u64::MAX >> 9);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 1024, R), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn length_not_multiple_of_512_is_ioerr() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(1024);
    let hd = h.header(VIRTIO_BLK_T_IN, 0);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 513, W), (st, 1, W)],
        st,
        IOERR,
    );
    assert_eq!(h.bytes(buf, 1024), vec![CANARY; 1024]);
    let hd = h.header(VIRTIO_BLK_T_OUT, 0);
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (buf, 100, R), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn unknown_request_type_is_unsupp() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    for t in [
        VIRTIO_BLK_T_SCSI_CMD,
        3,
        VIRTIO_BLK_T_SECURE_ERASE,
        VIRTIO_BLK_T_ZONE_APPEND,
        0xffff_ffff,
    ] {
        let hd = h.header(t, 0);
        let st = h.alloc(1);
        expect_refused(&mut h, &img, &[(hd, 16, R), (st, 1, W)], st, UNSUPP);
    }
    assert_eq!(h.block.metrics().snapshot().unsupported, 5);
}

#[test]
fn malformed_discard_and_write_zeroes_lists() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    let unmap = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    let too_many: Vec<[u8; 16]> = (0..=MAX_DISCARD_SEG)
        .map(|i| range(u64::from(i), 1, 0))
        .collect();
    let cases: Vec<(u32, Vec<u8>, u8)> = vec![
        // Not a whole number of 16-byte records.
        (VIRTIO_BLK_T_DISCARD, range(0, 8, 0)[..15].to_vec(), IOERR),
        // Empty list.
        (VIRTIO_BLK_T_WRITE_ZEROES, vec![], IOERR),
        // Beyond capacity, and overflowing.
        (VIRTIO_BLK_T_DISCARD, range(60, 8, 0).to_vec(), IOERR),
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            range(u64::MAX - 2, 8, 0).to_vec(),
            IOERR,
        ),
        // Larger than max_discard_sectors.
        (
            VIRTIO_BLK_T_DISCARD,
            range(0, MAX_DISCARD_SECTORS + 1, 0).to_vec(),
            IOERR,
        ),
        // More ranges than max_discard_seg.
        (
            VIRTIO_BLK_T_DISCARD,
            too_many.iter().flatten().copied().collect(),
            IOERR,
        ),
        // Unmap on a discard, unknown flags: UNSUPP per spec.
        (VIRTIO_BLK_T_DISCARD, range(0, 8, unmap).to_vec(), UNSUPP),
        (VIRTIO_BLK_T_WRITE_ZEROES, range(0, 8, 2).to_vec(), UNSUPP),
        // A valid range followed by a bad one: nothing is done at all.
        (
            VIRTIO_BLK_T_WRITE_ZEROES,
            [range(0, 8, 0), range(100, 8, 0)]
                .iter()
                .flatten()
                .copied()
                .collect(),
            IOERR,
        ),
    ];
    for (t, payload, want) in cases {
        let hd = h.header(t, 0);
        let st = h.alloc(1);
        let mut descs = vec![(hd, 16, R)];
        if !payload.is_empty() {
            let p = h.alloc(payload.len() as u64);
            h.fill(p, &payload);
            descs.push((p, payload.len() as u32, R));
        }
        descs.push((st, 1, W));
        expect_refused(&mut h, &img, &descs, st, want);
    }
    // Ranges in a device-writable buffer.
    let hd = h.header(VIRTIO_BLK_T_DISCARD, 0);
    let p = h.alloc(16);
    h.fill(p, &range(0, 8, 0));
    let st = h.alloc(1);
    expect_refused(
        &mut h,
        &img,
        &[(hd, 16, R), (p, 16, W), (st, 1, W)],
        st,
        IOERR,
    );
}

#[test]
fn corrupted_avail_index_needs_reset_and_stops() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let orig = img.contents();
    let mut h = Harness::new(&m, cfg(&img));
    let buf = h.alloc(512);
    h.request(VIRTIO_BLK_T_OUT, 0, &[(buf, 512, R)]);
    // The driver claims 65 new chains on a 64-entry queue.
    h.set_avail_idx(65);
    h.block.handler(0).process_queue();
    assert!(h.block.needs_reset());
    assert_eq!(h.used_idx(), 0);
    assert_eq!(h.irq.config.load(Ordering::SeqCst), 1, "config interrupt");
    // Further notifications do nothing.
    h.set_avail_idx(1);
    h.block.handler(0).process_queue();
    assert_eq!(h.used_idx(), 0);
    assert_eq!(img.contents(), orig);
    // Reset clears it.
    assert!(h.block.reset().is_some());
    assert!(!h.block.needs_reset());
}
