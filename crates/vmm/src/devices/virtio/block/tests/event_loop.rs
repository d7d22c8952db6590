//! Through the event loop: activate, notify, complete, reset.

use super::*;

/// The real path: activate() on another thread (like a vCPU), a guest
/// notification through the queue's eventfd, the event loop running
/// the device, io_uring completing, the used ring updated; then reset and
/// re-activation.
#[test]
fn event_loop_end_to_end_through_activate_notify_and_reset() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    let block = Arc::new(Mutex::new(Block::new(cfg(&img)).unwrap()));
    let mut em: EventManager<Arc<Mutex<Block>>> = EventManager::new().unwrap();
    em.add_subscriber(block.clone());

    let irq = Arc::new(FakeInterrupt::default());
    let round = |em: &mut EventManager<Arc<Mutex<Block>>>, sector: u64| {
        m.write_slice(&[0u8; 0x1000], GuestAddress(0)).unwrap();
        let vq = MockSplitQueue::create(&m, GuestAddress(0), 16);
        let (queue, rings) = make_queue(0, 16);
        m.write_slice(&[0u8; 0x100], GuestAddress(rings.avail))
            .unwrap();
        let notify = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = notify.try_clone().unwrap();
        let (b, mm, i) = (block.clone(), m.clone(), irq.clone());
        std::thread::spawn(move || {
            b.lock()
                .unwrap()
                .activate(
                    mm,
                    FEATURE_VERSION_1 | FEATURE_RING_EVENT_IDX,
                    vec![ActivatedQueue {
                        index: 0,
                        queue,
                        notify,
                    }],
                    i,
                )
                .unwrap();
        })
        .join()
        .unwrap();

        // Guest: one IN request, then notify.
        let (hd, buf, st) = (DATA_START, DATA_START + 0x1000, DATA_START + 0x2000);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
        h[8..16].copy_from_slice(&sector.to_le_bytes());
        m.write_slice(&h, GuestAddress(hd)).unwrap();
        m.write_obj(0xffu8, GuestAddress(st)).unwrap();
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(hd, 16, VRING_DESC_F_NEXT as u16, 1)),
            RawDescriptor::from(SplitDescriptor::new(
                buf,
                1024,
                W | VRING_DESC_F_NEXT as u16,
                2,
            )),
            RawDescriptor::from(SplitDescriptor::new(st, 1, W, 0)),
        ];
        vq.add_desc_chains(&descs, 0).unwrap();
        kick.write(1).unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        let used_idx = || m.read_obj::<u16>(GuestAddress(rings.used + 2)).unwrap();
        while used_idx() != 1 {
            assert!(
                Instant::now() < deadline,
                "event loop did not complete the request"
            );
            em.run_with_timeout(100).unwrap();
        }
        assert_eq!(m.read_obj::<u8>(GuestAddress(st)).unwrap(), OK);
        let mut got = vec![0u8; 1024];
        m.read_slice(&mut got, GuestAddress(buf)).unwrap();
        let off = sector as usize * SECTOR;
        assert_eq!(got, &pattern(64 * SECTOR)[off..off + 1024]);

        // Driver reset from a vCPU thread: the notify fd comes back.
        let fds = block.lock().unwrap().reset().unwrap();
        assert_eq!(fds.len(), 1);
        // Let the loop unregister the stale watch.
        em.run_with_timeout(10).unwrap();
        kick
    };
    let k1 = round(&mut em, 2);
    // A notification after reset must not reach the device (nor spin).
    k1.write(1).unwrap();
    assert_eq!(em.run_with_timeout(10).unwrap(), 0);
    // Activate again, like a guest driver reload.
    round(&mut em, 9);
    assert!(irq.queue.load(Ordering::SeqCst) >= 2);
    assert_eq!(block.lock().unwrap().metrics().snapshot().read_ops, 2);
}

/// Rough per-request cost of the whole device path (parse, io_uring
/// round trip from the page cache, used ring). Not a unit test:
/// `cargo test --release bench_ -- --ignored --nocapture`.
#[test]
#[ignore = "a benchmark (prints a per-request cost), not pass/fail: run with --release -- --ignored --nocapture"]
fn bench_4k_reads_from_page_cache() {
    let m = mem();
    let img = TempImage::new(64 << 20);
    let mut h = Harness::with(&m, cfg(&img), 256, true);
    const DEPTH: usize = 64;
    let reqs: Vec<(u64, u64, u64)> = (0..DEPTH)
        .map(|_| (h.header(VIRTIO_BLK_T_IN, 0), h.alloc(4096), h.alloc(1)))
        .collect();
    let rounds = 300u64;
    let start = Instant::now();
    let mut total = 0u16;
    let mut x = 12345u64;
    for _ in 0..rounds {
        for &(hd, buf, st) in &reqs {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let sector = ((x >> 33) % ((64 << 20) / 512 - 8)) & !7;
            h.fill(hd + 8, &sector.to_le_bytes());
            h.chain(&[(hd, 16, R), (buf, 4096, W), (st, 1, W)]);
        }
        total = total.wrapping_add(DEPTH as u16);
        h.run(total);
    }
    let n = rounds * DEPTH as u64;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{n} 4 KiB reads, queue depth {DEPTH}: {:.0} IOPS, {:.1} us/request, {} interrupts",
        n as f64 / secs,
        secs * 1e6 / n as f64,
        h.irq.queue.load(Ordering::SeqCst)
    );
    assert_eq!(h.block.metrics().snapshot().read_ops, n);
}
