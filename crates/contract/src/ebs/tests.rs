//! The table against EC2's published numbers: what validates, what each
//! set of limits stands for, the JSON both sides exchange.

use super::*;

fn limits(t: VolumeType, size_gib: u64, iops: Option<u64>, mibps: Option<u64>) -> Limits {
    Limits::of(t, size_gib, iops, mibps)
}

fn gp3() -> Limits {
    Limits::gp3_baseline()
}

fn gp2(size: u64) -> Limits {
    Limits::gp2(size)
}

#[test]
fn sizes_follow_each_type() {
    let cases = [
        (VolumeType::Gp2, 1, 16_384),
        (VolumeType::Gp3, 1, 65_536),
        (VolumeType::Io1, 4, 16_384),
        (VolumeType::Io2, 4, 65_536),
        (VolumeType::St1, 125, 16_384),
        (VolumeType::Sc1, 125, 16_384),
        (VolumeType::Standard, 1, 1_024),
    ];
    for (t, min, max) in cases {
        let iops = matches!(t, VolumeType::Io1 | VolumeType::Io2).then_some(100);
        assert!(limits(t, min, iops, None).validate().is_ok(), "{t} {min}");
        assert!(limits(t, max, iops, None).validate().is_ok(), "{t} {max}");
        for bad in [min - 1, max + 1] {
            let e = limits(t, bad, iops, None).validate().unwrap_err();
            assert_eq!(
                e,
                LimitsError::Size {
                    volume_type: t,
                    size_gib: bad,
                    min,
                    max
                }
            );
        }
    }
}

#[test]
fn gp3_iops_and_throughput_ranges() {
    let ok = |iops, mibps| limits(VolumeType::Gp3, 100, iops, mibps).validate();
    assert!(ok(None, None).is_ok());
    assert!(ok(Some(3_000), Some(125)).is_ok());
    assert!(ok(Some(16_000), Some(1_000)).is_ok());
    let big = |iops, mibps| limits(VolumeType::Gp3, 200, iops, mibps).validate();
    assert!(big(Some(80_000), Some(2_000)).is_ok());
    assert!(matches!(
        ok(Some(2_999), None),
        Err(LimitsError::IopsRange { min: 3_000, .. })
    ));
    assert!(matches!(
        big(Some(80_001), None),
        Err(LimitsError::IopsRange { max: 80_000, .. })
    ));
    let range = |throughput| {
        Err(LimitsError::ThroughputRange {
            volume_type: VolumeType::Gp3,
            throughput,
            min: 125,
            max: 2_000,
        })
    };
    assert_eq!(ok(None, Some(124)), range(124));
    assert_eq!(big(Some(80_000), Some(2_001)), range(2_001));
    // 0.25 MiB/s per IOPS: 3,000 IOPS allow 750 MiB/s.
    assert!(ok(None, Some(750)).is_ok());
    assert_eq!(
        ok(None, Some(751)),
        Err(LimitsError::ThroughputPerIops {
            volume_type: VolumeType::Gp3,
            throughput: 751,
            iops: 3_000,
            max: 750,
            iops_per_mibps: 4,
        })
    );
    // 500 IOPS per GiB: a 10 GiB volume takes 5,000; 3,000 go with any size.
    let small = |size, iops| limits(VolumeType::Gp3, size, Some(iops), None).validate();
    assert!(small(10, 5_000).is_ok());
    assert!(matches!(
        small(10, 5_001),
        Err(LimitsError::IopsPerGib { max: 5_000, .. })
    ));
    assert!(small(1, 3_000).is_ok());
    assert!(small(32, 16_000).is_ok());
}

#[test]
fn provisioned_iops_rules() {
    let v = |t, size, iops| limits(t, size, iops, None).validate();
    assert_eq!(
        v(VolumeType::Io1, 100, None),
        Err(LimitsError::IopsRequired(VolumeType::Io1))
    );
    assert_eq!(
        v(VolumeType::Io2, 100, None),
        Err(LimitsError::IopsRequired(VolumeType::Io2))
    );
    // io1: 50 per GiB, up to 64,000; io2: 1,000 per GiB, up to 256,000.
    assert!(v(VolumeType::Io1, 100, Some(5_000)).is_ok());
    assert!(matches!(
        v(VolumeType::Io1, 100, Some(5_001)),
        Err(LimitsError::IopsPerGib { per_gib: 50, .. })
    ));
    assert!(v(VolumeType::Io1, 1_280, Some(64_000)).is_ok());
    assert!(matches!(
        v(VolumeType::Io1, 2_000, Some(64_001)),
        Err(LimitsError::IopsRange { .. })
    ));
    assert!(matches!(
        v(VolumeType::Io1, 100, Some(99)),
        Err(LimitsError::IopsRange { min: 100, .. })
    ));
    assert!(v(VolumeType::Io2, 256, Some(256_000)).is_ok());
    assert!(matches!(
        v(VolumeType::Io2, 100, Some(100_001)),
        Err(LimitsError::IopsPerGib { per_gib: 1_000, .. })
    ));
    for t in [
        VolumeType::Gp2,
        VolumeType::St1,
        VolumeType::Sc1,
        VolumeType::Standard,
    ] {
        assert_eq!(v(t, 500, Some(1_000)), Err(LimitsError::IopsNotAllowed(t)));
    }
    for t in [VolumeType::Gp2, VolumeType::Io1, VolumeType::St1] {
        let iops = (t == VolumeType::Io1).then_some(1_000);
        assert_eq!(
            limits(t, 500, iops, Some(200)).validate(),
            Err(LimitsError::ThroughputNotAllowed(t))
        );
    }
}

#[test]
fn limits_json_and_errors_read_well() {
    let l: Limits = serde_json::from_str(
        r#"{"volume_type":"gp3","size_gib":100,"iops":4000,"throughput_mibps":250}"#,
    )
    .unwrap();
    assert_eq!(l, limits(VolumeType::Gp3, 100, Some(4_000), Some(250)));
    let back = serde_json::to_string(&gp2(50)).unwrap();
    assert_eq!(back, r#"{"volume_type":"gp2","size_gib":50}"#);
    let e = serde_json::from_str::<Limits>(r#"{"volume_type":"gp4","size_gib":1}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown variant `gp4`") && e.contains("gp3"),
        "{e}"
    );
    let e = serde_json::from_str::<Limits>(r#"{"volume_type":"gp3","size_gib":1,"burst":1}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `burst`"), "{e}");
    let msg = limits(VolumeType::Gp3, 200, Some(90_000), None)
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "a gp3 volume takes 3000 to 80000 iops, got 90000");
}

#[test]
fn performance_matches_the_documentation() {
    let p = |l: Limits| l.performance().unwrap();
    let g = p(gp3());
    assert_eq!((g.iops, g.throughput), (3_000, 125 * MIB));
    assert!(g.iops_credits.is_none() && !g.reports_burst_balance);
    let g = p(limits(VolumeType::Gp3, 100, Some(16_000), Some(1_000)));
    assert_eq!((g.iops, g.throughput), (16_000, 1_000 * MIB));

    // gp2: 3 IOPS/GiB between 100 and 16,000; bursts below 1 TiB.
    let g = p(gp2(10));
    assert_eq!(g.iops_credits.unwrap().refill, 100);
    assert_eq!(g.iops, 3_000);
    assert_eq!(g.iops_credits.unwrap().capacity, 5_400_000);
    assert_eq!(g.throughput, 128 * MIB);
    assert_eq!(p(gp2(100)).iops_credits.unwrap().refill, 300);
    assert_eq!(p(gp2(171)).throughput, 250 * MIB);
    let big = p(gp2(1_000));
    assert_eq!((big.iops, big.iops_credits), (3_000, None));
    assert!(!big.reports_burst_balance);
    assert_eq!(p(gp2(5_334)).iops, 16_000);
    assert_eq!(p(gp2(16_384)).iops, 16_000);

    // io1: 256 KiB per IOPS up to 500 MiB/s, then 16 KiB per IOPS.
    let io1 = |iops| p(limits(VolumeType::Io1, 2_000, Some(iops), None)).throughput;
    assert_eq!(io1(1_000), 250 * MIB);
    assert_eq!(io1(2_000), 500 * MIB);
    assert_eq!(io1(32_000), 500 * MIB);
    assert_eq!(io1(48_000), 750 * MIB);
    assert_eq!(io1(64_000), 1_000 * MIB);
    let io2 = |iops| p(limits(VolumeType::Io2, 1_000, Some(iops), None)).throughput;
    assert_eq!(io2(1_000), 250 * MIB);
    assert_eq!(io2(16_000), 4_000 * MIB);
    assert_eq!(io2(256_000), 4_000 * MIB);

    // st1 / sc1: per-TiB baseline and burst, capped.
    let hdd = |t, size| {
        let p = p(limits(t, size, None, None));
        let c = p.throughput_credits.unwrap();
        assert_eq!(c.capacity, size * GIB);
        (c.refill, p.throughput, p.iops)
    };
    assert_eq!(hdd(VolumeType::St1, 1_024), (40 * MIB, 250 * MIB, 500));
    assert_eq!(hdd(VolumeType::St1, 2_048), (80 * MIB, 500 * MIB, 500));
    assert_eq!(hdd(VolumeType::St1, 12_800), (500 * MIB, 500 * MIB, 500));
    assert_eq!(hdd(VolumeType::St1, 16_384), (500 * MIB, 500 * MIB, 500));
    assert_eq!(hdd(VolumeType::Sc1, 1_024), (12 * MIB, 80 * MIB, 250));
    assert_eq!(hdd(VolumeType::Sc1, 3_200), (38_400 * KIB, 250 * MIB, 250));
    assert_eq!(hdd(VolumeType::Sc1, 16_384), (192 * MIB, 250 * MIB, 250));
    // 0.125 TiB: 5 MiB/s base, 31.25 burst (the table rounds to 31).
    assert_eq!(hdd(VolumeType::St1, 128), (5 * MIB, 32_000 * KIB, 500));

    let m = p(limits(VolumeType::Standard, 100, None, None));
    assert_eq!((m.iops, m.iops_credits.unwrap().refill), (200, 100));
    assert!(!m.reports_burst_balance);
}

#[test]
fn every_type_has_one_row_and_one_name() {
    for t in VolumeType::ALL {
        assert_eq!(t.rules().volume_type, t);
        assert_eq!(t.name().parse::<VolumeType>(), Ok(t));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{}\"", t.name()));
        assert_eq!(VolumeType::ALL.iter().filter(|&&u| u == t).count(), 1);
    }
    let names: Vec<&str> = VolumeType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        ["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"]
    );
    assert_eq!(
        "gp4".parse::<VolumeType>(),
        Err(UnknownVolumeType("gp4".into()))
    );
    assert_eq!(max_size_gib(), 65_536);
}

#[test]
fn ec2_limits_since_2025() {
    // gp3: 64 TiB, 80,000 IOPS, 2,000 MiB/s; io2 Block Express: 64 TiB,
    // 256,000 IOPS.
    assert!(
        limits(VolumeType::Gp3, 65_536, None, None)
            .validate()
            .is_ok()
    );
    let top = limits(VolumeType::Gp3, 65_536, Some(80_000), Some(2_000));
    assert_eq!(
        top.performance().map(|p| (p.iops, p.throughput)),
        Ok((80_000, 2_000 * MIB))
    );
    let io2 = limits(VolumeType::Io2, 65_536, Some(256_000), None);
    assert_eq!(io2.performance().map(|p| p.iops), Ok(256_000));
    // The classic gp3 ceiling is well inside.
    let classic = limits(VolumeType::Gp3, 100, Some(16_000), Some(1_000));
    assert_eq!(
        classic.performance().map(|p| (p.iops, p.throughput)),
        Ok((16_000, 1_000 * MIB))
    );
}

#[test]
fn defaults_and_what_ec2_reports() {
    assert_eq!(
        gp3().with_defaults(),
        limits(VolumeType::Gp3, 100, Some(3_000), Some(125))
    );
    assert_eq!(gp2(10).with_defaults(), gp2(10));
    // A record's values the type does not take are dropped.
    assert_eq!(
        Limits::of_volume(VolumeType::Gp2, 10, Some(300), Some(125)),
        gp2(10)
    );
    assert_eq!(
        Limits::of_volume(VolumeType::Io2, 10, Some(5_000), None),
        limits(VolumeType::Io2, 10, Some(5_000), None)
    );
    let iops = |l: Limits| l.reported_iops();
    assert_eq!(iops(gp2(10)), Some(100));
    assert_eq!(iops(gp2(1_000)), Some(3_000));
    assert_eq!(iops(gp2(10_000)), Some(16_000));
    assert_eq!(iops(gp3()), Some(3_000));
    assert_eq!(iops(limits(VolumeType::St1, 500, None, None)), None);
    assert_eq!(gp3().reported_throughput_mibps(), Some(125));
    assert_eq!(gp2(10).reported_throughput_mibps(), None);
    let msg = limits(VolumeType::Gp3, 100, None, Some(751))
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "a gp3 volume with 3000 iops takes at most 750 throughput_mibps (0.25 MiB/s per IOPS), got 751"
    );
}
