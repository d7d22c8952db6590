//! The constructor, features and config space, activation errors.

use super::*;

#[test]
fn new_reports_missing_file_directory_and_bad_serial() {
    let missing = BlockConfig {
        path: "/nonexistent/flint/disk.img".into(),
        ..Default::default()
    };
    assert!(matches!(Block::new(missing), Err(BlockError::NotFound(_))));
    let dir = BlockConfig {
        path: std::env::temp_dir(),
        ..Default::default()
    };
    assert!(matches!(Block::new(dir), Err(BlockError::IsDirectory(_))));
    let img = TempImage::new(4096);
    let mut c = cfg(&img);
    c.serial = Some("vol-0123456789abcdef0".into()); // 21 bytes
    let e = Block::new(c).err().unwrap();
    assert!(matches!(e, BlockError::SerialTooLong(_)), "{e}");
    assert!(e.to_string().contains("longer than 20 bytes"));
}

#[test]
fn capacity_ignores_partial_tail_and_zero_length_is_allowed() {
    let img = TempImage::new(3 * SECTOR + 100);
    let b = Block::new(cfg(&img)).unwrap();
    assert_eq!(b.capacity(), 3);
    let mut cap = [0u8; 8];
    b.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 3);
    drop(b);

    let empty = TempImage::new(0);
    let b = Block::new(cfg(&empty)).unwrap();
    assert_eq!(b.capacity(), 0);
}

#[test]
fn resize_rereads_the_file_size_into_the_volume_and_keeps_the_limits() {
    let img = TempImage::new(4 * SECTOR);
    let mut c = cfg(&img);
    let limits = serde_json::from_str(r#"{"volume_type":"gp2","size_gib":1}"#).unwrap();
    let volume = Volume::new("vol-resize", Some(limits)).unwrap();
    c.volume = Some(volume.clone());
    let mut b = Block::new(c).unwrap();
    assert_eq!(volume.size_bytes(), 4 * SECTOR as u64);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img.0)
        .unwrap()
        .set_len(10 * SECTOR as u64 + 7)
        .unwrap();
    assert_eq!(b.capacity(), 4, "unchanged until asked");
    assert_eq!(b.resize().unwrap(), 10);
    assert_eq!(b.capacity(), 10);
    assert_eq!(volume.size_bytes(), 10 * SECTOR as u64);
    let mut cap = [0u8; 8];
    b.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 10);
    assert_eq!(b.volume().limits(), Some(limits));
}

#[test]
fn second_writer_is_refused() {
    let img = TempImage::new(4096);
    let _first = Block::new(cfg(&img)).unwrap();
    let e = Block::new(cfg(&img)).err().unwrap();
    assert!(matches!(e, BlockError::InUse(_)), "{e}");
}

#[test]
fn features_and_config() {
    let img = TempImage::new(8 * SECTOR);
    let b = Block::new(cfg(&img)).unwrap();
    assert_eq!(b.device_type(), TYPE_BLOCK);
    assert_eq!(b.queue_max_sizes(), &[256]);
    let f = b.device_features();
    for bit in [
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_BLK_SIZE,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_DISCARD,
        VIRTIO_BLK_F_WRITE_ZEROES,
    ] {
        assert!(f & (1 << bit) != 0, "feature {bit}");
    }
    assert!(f & FEATURE_VERSION_1 != 0 && f & FEATURE_RING_EVENT_IDX != 0);
    assert_eq!(f & (1 << VIRTIO_BLK_F_RO), 0);
    // Config at odd widths: seg_max's high half, blk_size's second byte.
    let mut two = [0u8; 2];
    b.read_config(14, &mut two);
    assert_eq!(two, [0, 0]);
    let mut one = [0u8; 1];
    b.read_config(21, &mut one);
    assert_eq!(one, [2]); // 512 = 0x0200
    let mut three = [0u8; 3];
    b.read_config(12, &mut three);
    assert_eq!(three, [(SEG_MAX & 0xff) as u8, 0, 0]);
    // Writes are ignored.
    let mut b = b;
    b.write_config(0, &[0xff; 8]);
    let mut cap = [0u8; 8];
    b.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 8);

    drop(b);
    let mut c = cfg(&img);
    c.read_only = true;
    let ro = Block::new(c).unwrap();
    assert!(ro.device_features() & (1 << VIRTIO_BLK_F_RO) != 0);
}

#[test]
fn activate_rejects_wrong_queue_count_and_double_activation() {
    let m = mem();
    let img = TempImage::new(4096);
    let mut b = Block::new(cfg(&img)).unwrap();
    let irq: Arc<dyn VirtioInterrupt> = Arc::new(FakeInterrupt::default());
    let e = b.activate(m.clone(), FEATURE_VERSION_1, vec![], irq.clone());
    assert!(matches!(
        e,
        Err(ActivateError::QueueCount { got: 0, want: 1 })
    ));
    let mut h = Harness::new(&m, cfg(&TempImage::new(4096)));
    let vq = MockSplitQueue::create(&m, GuestAddress(0x8000), 16);
    let q = ActivatedQueue {
        index: 0,
        queue: vq.create_queue().unwrap(),
        notify: EventFd::new(0).unwrap(),
    };
    let e = h.block.activate(m.clone(), FEATURE_VERSION_1, vec![q], irq);
    assert!(matches!(e, Err(ActivateError::AlreadyActive)));
    assert_eq!(h.block.reset().map(|v| v.len()), Some(1));
    assert!(h.block.reset().is_none());
}
