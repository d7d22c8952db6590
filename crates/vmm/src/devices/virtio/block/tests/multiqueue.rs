//! Multi-queue (VIRTIO_BLK_F_MQ): what the device offers, a driver that
//! sets up only some queues, requests and interrupts per queue, and one
//! volume limit shared by every queue.

use super::*;
use crate::devices::virtio::block::MAX_QUEUES;
use flint_contract::ebs::Limits;
use flint_contract::ebs::VolumeType;

fn mq_cfg(img: &TempImage, num_queues: u16) -> BlockConfig {
    BlockConfig {
        num_queues,
        ..cfg(img)
    }
}

fn config_num_queues(b: &Block) -> u16 {
    let mut v = [0u8; 2];
    b.read_config(34, &mut v);
    u16::from_le_bytes(v)
}

#[test]
fn num_queues_is_offered_with_mq_and_clamped() {
    let img = TempImage::new(8 * SECTOR);
    for (asked, offered) in [(0, 1), (1, 1), (4, 4), (1000, MAX_QUEUES)] {
        let b = Block::new(mq_cfg(&img, asked)).unwrap();
        assert_eq!(b.queue_max_sizes().len(), usize::from(offered), "{asked}");
        assert!(b.queue_max_sizes().iter().all(|&s| s == 256));
        assert_eq!(config_num_queues(&b), offered, "{asked}");
        let mq = b.device_features() & (1 << VIRTIO_BLK_F_MQ) != 0;
        assert_eq!(mq, offered > 1, "MQ offered for {asked} queues");
    }
}

#[test]
fn each_queue_serves_its_own_requests_and_interrupts_its_own_vector() {
    let m = mem();
    let img = TempImage::new(64 * SECTOR);
    // Four queues offered; the driver (a guest with fewer CPUs) sets up
    // queues 0 and 2 only.
    let mut h = Harness::with_queues(&m, mq_cfg(&img, 4), 64, false, &[0, 2]);
    h.select(2);
    let data = h.alloc(4096);
    h.fill(data, &[0x5a; 4096]);
    let st_w = h.request(VIRTIO_BLK_T_OUT, 8, &[(data, 4096, R)]);
    h.run(1);
    assert_eq!(h.byte(st_w), OK);
    h.select(0);
    let buf = h.alloc(4096);
    let st_r = h.request(VIRTIO_BLK_T_IN, 8, &[(buf, 4096, W)]);
    h.run(1);
    assert_eq!(h.byte(st_r), OK);
    assert_eq!(
        h.bytes(buf, 4096),
        vec![0x5a; 4096],
        "queue 2's write, read on 0"
    );
    assert_eq!(&img.contents()[8 * SECTOR..16 * SECTOR], &[0x5a; 4096][..]);
    let irqs: Vec<u32> = (0..4)
        .map(|q| h.irq.by_queue[q].load(Ordering::SeqCst))
        .collect();
    assert!(irqs[0] >= 1 && irqs[2] >= 1, "{irqs:?}");
    assert_eq!((irqs[1], irqs[3]), (0, 0), "queues never set up stay quiet");
    // Queue 2's used ring got one entry, queue 0's one: nothing crossed.
    h.select(2);
    assert_eq!(h.used_idx(), 1);
    assert_eq!(h.block.reset().map(|v| v.len()), Some(2));
}

#[test]
fn queues_out_of_order_twice_or_beyond_the_device_are_refused() {
    let m = mem();
    let img = TempImage::new(8 * SECTOR);
    let irq: Arc<dyn VirtioInterrupt> = Arc::new(FakeInterrupt::default());
    let queue_at = |k: u64| {
        let (q, _) = make_queue(k * RING_SPAN, 16);
        q
    };
    for (indexes, bad) in [
        (&[2u16, 0][..], 0),
        (&[1, 1][..], 1),
        (&[0, 4][..], 4),
        (&[7][..], 7),
    ] {
        let mut b = Block::new(mq_cfg(&img, 4)).unwrap();
        let queues = indexes
            .iter()
            .enumerate()
            .map(|(k, &index)| ActivatedQueue {
                index,
                queue: queue_at(k as u64),
                notify: EventFd::new(EFD_NONBLOCK).unwrap(),
            })
            .collect();
        let e = b.activate(m.clone(), FEATURE_VERSION_1, queues, irq.clone());
        assert!(
            matches!(e, Err(ActivateError::QueueIndex { index }) if index == bad),
            "{indexes:?}: {e:?}"
        );
        assert!(b.reset().is_none(), "nothing was started");
    }
    let mut b = Block::new(mq_cfg(&img, 4)).unwrap();
    let e = b.activate(m.clone(), FEATURE_VERSION_1, vec![], irq);
    assert!(matches!(
        e,
        Err(ActivateError::QueueCount { got: 0, want: 4 })
    ));
}

#[test]
fn one_volume_limit_is_shared_by_every_queue() {
    // 200 IOPS (a magnetic volume): its 100 ms bucket holds 20 requests,
    // whichever queues they come from.
    let limits = Limits {
        volume_type: VolumeType::Standard,
        size_gib: 10,
        iops: None,
        throughput_mibps: None,
    };
    let volume = Volume::new("vol-mq", Some(limits)).unwrap();
    let m = mem();
    let img = TempImage::new(1 << 20);
    let c = BlockConfig {
        volume: Some(volume.clone()),
        ..mq_cfg(&img, 2)
    };
    let mut h = Harness::with_queues(&m, c, 256, false, &[0, 1]);
    for q in [0, 1] {
        h.select(q);
        let buf = h.alloc(4096);
        for i in 0..15 {
            h.request(VIRTIO_BLK_T_IN, i * 8, &[(buf, 4096, W)]);
        }
        h.block.handler(usize::from(q)).process_queue();
    }
    let used = |h: &mut Harness| -> u16 {
        let mut n = 0;
        for q in [0, 1] {
            h.select(q);
            h.block.handler(usize::from(q)).handle_completions();
            n += h.used_idx();
        }
        n
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while used(&mut h) < 20 {
        assert!(Instant::now() < deadline, "only {} done", used(&mut h));
        std::thread::sleep(Duration::from_millis(1));
    }
    // Well within the bucket's refill (5 ms a request), nothing more goes.
    // The held request waits for its timer, which this test never runs.
    assert_eq!(
        used(&mut h),
        20,
        "the bucket is the volume's, not a queue's"
    );
    h.select(0);
    assert_eq!(h.used_idx(), 15, "queue 0 came first and got all it asked");
    h.select(1);
    assert_eq!(h.used_idx(), 5, "queue 1 got the rest of the bucket");
    let metrics = volume.metrics();
    assert_eq!(metrics.read_ops, 20);
    assert_eq!(metrics.throttled_ops, 1, "queue 1's sixth is held");
}
