//! Engine edge cases (short reads, back-pressure, more chains than
//! slots) and EVENT_IDX interrupt suppression.

use super::*;

#[test]
fn short_read_from_shrunken_file_fails_without_hanging() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::new(&m, cfg(&img));
    // Someone truncates the image under the VMM: the first readv is short,
    // the resubmitted remainder reads 0 bytes.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img.0)
        .unwrap()
        .set_len(4 * SECTOR as u64 + 100)
        .unwrap();
    let buf = h.alloc(8 * 512);
    let st = h.request(VIRTIO_BLK_T_IN, 0, &[(buf, 2048, W), (buf + 2048, 2048, W)]);
    h.run(1);
    assert_eq!(h.byte(st), IOERR);
    // done (short) bytes + status.
    assert_eq!(h.used(0).1, 4 * 512 + 100 + 1);
    assert_eq!(h.bytes(buf, 4 * 512 + 100), pattern(4 * 512 + 100));
    assert_eq!(h.block.metrics().snapshot().io_errors, 1);
}

#[test]
fn back_pressure_many_operations_all_complete() {
    let m = mem();
    let img = TempImage::new(2048 * SECTOR);
    // 64 chains of 3 descriptors need a 256-entry table.
    let mut h = Harness::with(&m, cfg(&img), 256, false);
    // 64 write-zeroes requests x 16 ranges = 1024 fallocates: more than
    // the ring's 256 submission and 512 in-flight slots.
    let mut statuses = vec![];
    for r in 0..64u64 {
        let list: Vec<[u8; 16]> = (0..16u64).map(|i| range(r * 32 + i * 2, 1, 0)).collect();
        let (a, l) = ranges_buf(&mut h, &list);
        let hd = h.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
        let st = h.alloc(1);
        h.chain(&[(hd, 16, R), (a, l, R), (st, 1, W)]);
        statuses.push(st);
    }
    h.run(64);
    assert!(statuses.iter().all(|&s| h.byte(s) == OK));
    let file = img.contents();
    let orig = pattern(2048 * SECTOR);
    for s in 0..2048usize {
        let zeroed = s < 64 * 32 && s % 2 == 0;
        let got = &file[s * SECTOR..(s + 1) * SECTOR];
        if zeroed {
            assert!(got.iter().all(|&b| b == 0), "sector {s}");
        } else {
            assert_eq!(got, &orig[s * SECTOR..(s + 1) * SECTOR], "sector {s}");
        }
    }
    assert!(h.block.metrics().snapshot().engine_busy > 0);
}

#[test]
fn more_chains_than_slots_are_throttled_then_served() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::with(&m, cfg(&img), 16, false);
    let buf = h.alloc(512);
    let st = h.alloc(1);
    let hd = h.header(VIRTIO_BLK_T_IN, 5);
    // One chain, made available 16 times (the driver may reuse a head
    // only after it is used, but the device must survive it anyway).
    let head = h.chain(&[(hd, 16, R), (buf, 512, W), (st, 1, W)]);
    for _ in 1..16 {
        h.publish(head);
    }
    h.block.handler(0).process_queue();
    // A hostile driver republishes the same chain while all 16 are in
    // flight: the device has no free slot and must come back for them.
    for _ in 0..16 {
        h.publish(head);
    }
    h.block.handler(0).process_queue();
    h.run(32);
    assert_eq!(h.byte(st), OK);
    assert_eq!(h.block.metrics().snapshot().read_ops, 32);
}

fn used_event_addr(h: &Harness) -> u64 {
    h.rings.avail + 4 + 2 * u64::from(h.qsize)
}

fn avail_event(h: &Harness) -> u16 {
    h.mem
        .read_obj(GuestAddress(h.rings.used + 4 + 8 * u64::from(h.qsize)))
        .unwrap()
}

#[test]
fn event_idx_suppresses_interrupts_until_used_event() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::with(&m, cfg(&img), 64, true);
    let buf = h.alloc(512);
    let irqs = |h: &Harness| h.irq.queue.load(Ordering::SeqCst);

    // used_event = 0: interrupt when the first buffer is used.
    h.mem
        .write_obj(0u16, GuestAddress(used_event_addr(&h)))
        .unwrap();
    h.request(VIRTIO_BLK_T_IN, 0, &[(buf, 512, W)]);
    h.run(1);
    assert_eq!(irqs(&h), 1);
    // The device asked to be notified at the next avail index.
    assert_eq!(avail_event(&h), 1);

    // used_event = 10: the next two completions stay silent.
    h.mem
        .write_obj(10u16, GuestAddress(used_event_addr(&h)))
        .unwrap();
    h.request(VIRTIO_BLK_T_IN, 1, &[(buf, 512, W)]);
    h.request(VIRTIO_BLK_T_IN, 2, &[(buf, 512, W)]);
    h.run(3);
    assert_eq!(irqs(&h), 1);
    assert_eq!(avail_event(&h), 3);

    // used_event = 3: the 4th used buffer crosses it.
    h.mem
        .write_obj(3u16, GuestAddress(used_event_addr(&h)))
        .unwrap();
    h.request(VIRTIO_BLK_T_IN, 3, &[(buf, 512, W)]);
    h.run(4);
    assert_eq!(irqs(&h), 2);
}

#[test]
fn without_event_idx_every_completion_batch_interrupts() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let mut h = Harness::with(&m, cfg(&img), 64, false);
    let buf = h.alloc(512);
    for i in 0..3u16 {
        h.request(VIRTIO_BLK_T_IN, u64::from(i), &[(buf, 512, W)]);
        h.run(i + 1);
        assert_eq!(h.irq.queue.load(Ordering::SeqCst), u32::from(i) + 1);
    }
}
