//! The model against AWS's published numbers, and the buckets against a
//! simulated clock: a greedy client that sends the next request the moment
//! the throttle lets it, so what it achieves is exactly the limit.

use super::limiter::{Cost, Throttle};
use super::model::*;

const S: u64 = 1_000_000_000;

fn limits(t: VolumeType, size_gib: u64, iops: Option<u64>, mibps: Option<u64>) -> Limits {
    Limits {
        volume_type: t,
        size_gib,
        iops,
        throughput_mibps: mibps,
    }
}

fn gp3() -> Limits {
    limits(VolumeType::Gp3, 100, None, None)
}

fn gp2(size: u64) -> Limits {
    limits(VolumeType::Gp2, size, None, None)
}

/// Sends `len`-byte requests back to back from `*now` for `secs` seconds
/// (of simulated time); returns how many went. `batch` requests are
/// charged together to keep long simulations fast.
fn drive(t: &mut Throttle, now: &mut u64, len: u64, secs: u64, batch: u64) -> u64 {
    let one = t.cost(len);
    let cost = Cost {
        ops: one.ops * batch,
        bytes: one.bytes * batch,
    };
    let end = *now + secs * S;
    let mut sent = 0;
    while *now < end {
        match t.admit(cost, *now) {
            Ok(()) => sent += batch,
            Err(wait) => {
                assert!(wait > 0);
                *now += wait;
            }
        }
    }
    sent
}

fn assert_near(got: f64, want: f64, tolerance: f64) {
    assert!(
        (got - want).abs() <= want.abs() * tolerance,
        "got {got}, want {want} (±{}%)",
        tolerance * 100.0
    );
}

// ------------------------------------------------------------ validation

#[test]
fn sizes_follow_each_type() {
    let cases = [
        (VolumeType::Gp2, 1, 16_384),
        (VolumeType::Gp3, 1, 16_384),
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
    assert!(matches!(
        ok(Some(2_999), None),
        Err(LimitsError::IopsRange { min: 3_000, .. })
    ));
    assert!(matches!(
        ok(Some(16_001), None),
        Err(LimitsError::IopsRange { max: 16_000, .. })
    ));
    assert_eq!(ok(None, Some(124)), Err(LimitsError::ThroughputRange(124)));
    assert_eq!(
        ok(None, Some(1_001)),
        Err(LimitsError::ThroughputRange(1_001))
    );
    // 0.25 MiB/s per IOPS: 3,000 IOPS allow 750 MiB/s.
    assert!(ok(None, Some(750)).is_ok());
    assert_eq!(
        ok(None, Some(751)),
        Err(LimitsError::ThroughputPerIops {
            throughput: 751,
            iops: 3_000,
            max: 750
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
    let msg = limits(VolumeType::Gp3, 100, Some(20_000), None)
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "a gp3 volume takes 3000 to 16000 iops, got 20000");
}

// ------------------------------------------------------------ the model

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
fn io_units_are_256k_on_ssd_and_1m_on_hdd() {
    let ssd = Throttle::new(gp3(), 0).unwrap();
    let c = |t: &Throttle, len| {
        let c = t.cost(len);
        (c.ops, c.bytes)
    };
    assert_eq!(c(&ssd, 0), (1, 0));
    assert_eq!(c(&ssd, 512), (1, 512));
    assert_eq!(c(&ssd, 16 * KIB), (1, 16 * KIB));
    assert_eq!(c(&ssd, 256 * KIB), (1, 256 * KIB));
    assert_eq!(c(&ssd, 256 * KIB + 512), (2, 256 * KIB + 512));
    assert_eq!(c(&ssd, MIB), (4, MIB));
    let st1 = Throttle::new(limits(VolumeType::St1, 1_024, None, None), 0).unwrap();
    // Every st1 I/O pays a whole MiB of throughput credit.
    assert_eq!(c(&st1, 4 * KIB), (1, MIB));
    assert_eq!(c(&st1, MIB), (1, MIB));
    assert_eq!(c(&st1, MIB + 512), (2, 2 * MIB));
    assert_eq!(c(&st1, 0), (1, 0));
    let std = Throttle::new(limits(VolumeType::Standard, 10, None, None), 0).unwrap();
    assert_eq!(c(&std, 4 * KIB), (1, 4 * KIB));
    assert_eq!(c(&std, 2 * MIB), (2, 2 * MIB));
}

// ------------------------------------------------------------ enforcement

#[test]
fn gp3_holds_its_baseline_iops_and_throughput() {
    let mut t = Throttle::new(gp3(), 0).unwrap();
    let mut now = 0;
    // 4 KiB: 3,000 IOPS, plus the window's 300 at the start.
    let n = drive(&mut t, &mut now, 4 * KIB, 10, 1);
    // (The request due exactly at the end falls outside the run.)
    assert!((30_299..=30_300).contains(&n), "{n}");
    // Then exactly the rate.
    let n = drive(&mut t, &mut now, 4 * KIB, 10, 1);
    assert_near(n as f64, 30_000.0, 0.001);
    // 1 MiB: 125 MiB/s binds (4 units each = 500 IOPS, under 3,000).
    let n = drive(&mut t, &mut now, MIB, 20, 1);
    assert_near(n as f64, 125.0 * 20.0, 0.01);
    assert_eq!(t.burst_balance(now), None);
}

#[test]
fn large_ios_count_as_several_operations() {
    // io2 at 1,000 IOPS (250 MiB/s): a 1 MiB + 512 B I/O is 5 units, so
    // the IOPS bucket allows 200 of them a second, under the 249 the
    // throughput would.
    let l = limits(VolumeType::Io2, 100, Some(1_000), None);
    let mut t = Throttle::new(l, 0).unwrap();
    let mut now = 0;
    drive(&mut t, &mut now, 4 * KIB, 1, 1); // empty the windows
    assert_near(
        drive(&mut t, &mut now, MIB + 512, 10, 1) as f64,
        2_000.0,
        0.01,
    );
    assert_near(
        drive(&mut t, &mut now, 4 * KIB, 10, 1) as f64,
        10_000.0,
        0.01,
    );
    assert_near(
        drive(&mut t, &mut now, 256 * KIB, 10, 1) as f64,
        10_000.0,
        0.01,
    );
}

#[test]
fn gp2_bursts_spends_credits_and_falls_to_baseline() {
    // 100 GiB: 300 IOPS baseline; the full bucket lasts
    // 5.4M / (3,000 - 300) = 2,000 s at 3,000 IOPS (AWS's table).
    let mut t = Throttle::new(gp2(100), 0).unwrap();
    let mut now = 0;
    assert_eq!(t.burst_balance(0), Some(100.0));
    let burst = drive(&mut t, &mut now, 4 * KIB, 1_000, 10);
    assert_near(burst as f64, 3_000_000.0, 0.001);
    assert_near(t.burst_balance(now).unwrap(), 50.0, 0.01);
    drive(&mut t, &mut now, 4 * KIB, 1_000, 10);
    // Depleted at ~2,000 s.
    assert!(t.burst_balance(now).unwrap() < 0.1);
    let baseline = drive(&mut t, &mut now, 4 * KIB, 100, 10);
    assert_near(baseline as f64, 30_000.0, 0.01);
    assert!(t.burst_balance(now).unwrap() < 0.1);
}

#[test]
fn gp2_credits_refill_at_the_baseline() {
    let mut t = Throttle::new(gp2(100), 0).unwrap();
    let mut now = 0;
    drive(&mut t, &mut now, 4 * KIB, 2_100, 100);
    assert!(t.credits(now).unwrap() < 1_000);
    // An empty 100 GiB bucket takes 18,000 s to fill (AWS's table).
    let start = now;
    let half = t.credits(start + 9_000 * S).unwrap();
    assert_near(half as f64, 2_700_000.0, 0.001);
    assert_near(t.burst_balance(start + 9_000 * S).unwrap(), 50.0, 0.001);
    assert_eq!(t.credits(start + 18_001 * S), Some(5_400_000));
    assert_eq!(t.burst_balance(start + 30_000 * S), Some(100.0));
    // Full again: it bursts again.
    now = start + 30_000 * S;
    assert_near(
        drive(&mut t, &mut now, 4 * KIB, 10, 1) as f64,
        30_000.0,
        0.02,
    );
}

#[test]
fn st1_bursts_on_throughput_credits_and_small_ios_pay_a_whole_mib() {
    // 1 TiB st1: 250 MiB/s burst, 40 MiB/s baseline, 1 TiB of credits.
    let mut t = Throttle::new(limits(VolumeType::St1, 1_024, None, None), 0).unwrap();
    let mut now = 0;
    let n = drive(&mut t, &mut now, MIB, 100, 1);
    assert_near(n as f64, 25_000.0, 0.01);
    // 4 KiB random I/O pays 1 MiB each: still 250 a second, not 64,000.
    let n = drive(&mut t, &mut now, 4 * KIB, 10, 1);
    assert_near(n as f64, 2_500.0, 0.01);
    // The bucket drains at 210 MiB/s net: (1 TiB) / 210 MiB/s = 4,993 s.
    let spent = 100.0 * (27_500.0 * MIB as f64 - 110.0 * 40.0 * MIB as f64) / GIB as f64 / 1024.0;
    assert_near(100.0 - t.burst_balance(now).unwrap(), spent, 0.01);
    drive(&mut t, &mut now, MIB, 5_000, 10);
    assert!(t.burst_balance(now).unwrap() < 0.1);
    let n = drive(&mut t, &mut now, MIB, 100, 1);
    assert_near(n as f64, 4_000.0, 0.01);
}

#[test]
fn sc1_and_standard_limits() {
    let mut t = Throttle::new(limits(VolumeType::Sc1, 1_024, None, None), 0).unwrap();
    let mut now = 0;
    assert_near(drive(&mut t, &mut now, MIB, 50, 1) as f64, 4_000.0, 0.01);
    let mut t = Throttle::new(limits(VolumeType::Standard, 100, None, None), 0).unwrap();
    let mut now = 0;
    // 200 IOPS while the 30,000 credits last (net 100/s: 300 s), then 100.
    assert_near(
        drive(&mut t, &mut now, 4 * KIB, 300, 1) as f64,
        60_000.0,
        0.01,
    );
    assert_near(
        drive(&mut t, &mut now, 4 * KIB, 100, 1) as f64,
        10_000.0,
        0.01,
    );
    assert_eq!(t.burst_balance(now), None);
}

#[test]
fn a_refusal_charges_nothing_and_its_wait_is_exact() {
    let mut t = Throttle::new(gp2(100), 0).unwrap();
    let cost = t.cost(4 * KIB);
    let mut now = 0;
    while t.admit(cost, now).is_ok() {}
    let credits = t.credits(now);
    let wait = t.admit(cost, now).unwrap_err();
    for _ in 0..10 {
        assert_eq!(t.admit(cost, now), Err(wait));
    }
    assert_eq!(t.credits(now), credits);
    // At 3,000 IOPS one token takes 333,334 ns (rounded up).
    assert_eq!(wait, 333_334);
    assert!(t.admit(cost, now + wait - 1).is_err());
    now += wait;
    assert_eq!(t.admit(cost, now), Ok(()));
}

#[test]
fn a_request_larger_than_the_bucket_goes_when_full_then_is_paid_back() {
    // sc1 125 GiB: 9.77 MiB/s burst, so the 100 ms window holds < 1 MiB.
    let mut t = Throttle::new(limits(VolumeType::Sc1, 125, None, None), 0).unwrap();
    let big = t.cost(16 * MIB);
    assert_eq!(t.admit(big, 0), Ok(()));
    // In debt by 16 MiB less a window: the next I/O waits ~1.6 s.
    let wait = t.admit(t.cost(4 * KIB), 0).unwrap_err();
    let rate = t.performance().throughput as f64;
    assert_near(wait as f64 / S as f64, (16.0 * MIB as f64) / rate, 0.02);
    // A huge request alone never starves: it goes once the bucket is full.
    let mut now = 0;
    let n = drive(&mut t, &mut now, 16 * MIB, 100, 1);
    assert_near(n as f64, 100.0 * rate / (16.0 * MIB as f64), 0.05);
}

#[test]
fn limits_changed_live_keep_the_credit_balance() {
    let mut t = Throttle::new(gp2(100), 0).unwrap();
    let mut now = 0;
    drive(&mut t, &mut now, 4 * KIB, 1_000, 10);
    let before = t.credits(now).unwrap();
    // Grown to 500 GiB (1,500 IOPS baseline): same credits, new rate.
    let mut bigger = Throttle::replacing(gp2(500), Some(&mut t), now).unwrap();
    assert_eq!(bigger.credits(now), Some(before));
    assert_eq!(bigger.performance().iops_credits.unwrap().refill, 1_500);
    // To gp3: no bucket, no BurstBalance, gp3's rate.
    let mut g = Throttle::replacing(gp3(), Some(&mut bigger), now).unwrap();
    assert_eq!(g.burst_balance(now), None);
    let mut now2 = now;
    drive(&mut g, &mut now2, 4 * KIB, 1, 1);
    assert_near(
        drive(&mut g, &mut now2, 4 * KIB, 10, 1) as f64,
        30_000.0,
        0.01,
    );
    // Back to gp2: nothing to carry, a new (full) bucket.
    let mut back = Throttle::replacing(gp2(100), Some(&mut g), now2).unwrap();
    assert_eq!(back.burst_balance(now2), Some(100.0));
    // Invalid new limits are refused and the old throttle is untouched.
    let bad = limits(VolumeType::Io1, 100, None, None);
    assert_eq!(
        Throttle::replacing(bad, Some(&mut back), now2).unwrap_err(),
        LimitsError::IopsRequired(VolumeType::Io1)
    );
    assert_eq!(back.limits(), gp2(100));
}

#[test]
fn a_clock_that_goes_back_earns_nothing() {
    let mut t = Throttle::new(gp3(), 10 * S).unwrap();
    let cost = t.cost(4 * KIB);
    let mut n = 0;
    while t.admit(cost, 10 * S).is_ok() {
        n += 1;
    }
    assert_eq!(n, 300);
    assert!(t.admit(cost, 5 * S).is_err());
    assert!(t.admit(cost, 0).is_err());
    let wait = t.admit(cost, 10 * S).unwrap_err();
    assert_eq!(t.admit(cost, 10 * S + wait), Ok(()));
}

// ------------------------------------------------------------ benchmark

/// ns per call of `f`, best of 5 runs of `n` calls.
fn ns_per_call(n: u64, mut f: impl FnMut(u64)) -> f64 {
    (0..5)
        .map(|_| {
            let start = std::time::Instant::now();
            for i in 0..n {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// The throttle's per-request cost. Not pass/fail:
/// `cargo test --release --bin flint bench_throttle -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark (prints ns per request), not pass/fail: run with --release -- --ignored --nocapture"]
fn bench_throttle_per_request_cost() {
    use std::hint::black_box;
    const N: u64 = 5_000_000;
    let cases = [
        ("gp3 (2 rate buckets)", gp3()),
        ("gp2 100 GiB (+ I/O credits)", gp2(100)),
        (
            "st1 1 TiB (+ throughput credits)",
            limits(VolumeType::St1, 1_024, None, None),
        ),
    ];
    let none: Option<Throttle> = black_box(None);
    let unthrottled = ns_per_call(N, |i| {
        black_box(none.is_some() && black_box(i) == 0);
    });
    eprintln!("no limits (the Option test alone): {unthrottled:.2} ns/request");
    for (name, l) in cases {
        // Admitted: the clock moves 1 ms per request, so no bucket runs dry.
        let mut t = Throttle::new(l, 0).unwrap();
        let admitted = ns_per_call(N, |i| {
            let cost = t.cost(black_box(4096));
            black_box(t.admit(cost, i * 1_000_000)).ok();
        });
        // Refused: the clock stands still once the window is spent.
        let mut t = Throttle::new(l, 0).unwrap();
        let refused = ns_per_call(N, |_| {
            let cost = t.cost(black_box(4096));
            black_box(t.admit(cost, 0)).ok();
        });
        // As the queue does it: the volume's lock around the batch (here
        // around every request, the worst case: a batch of one).
        let lock = std::sync::Mutex::new(Some(Throttle::new(l, 0).unwrap()));
        let locked = ns_per_call(N, |i| {
            let mut g = lock.lock().unwrap();
            let t = g.as_mut().unwrap();
            let cost = t.cost(black_box(4096));
            black_box(t.admit(cost, i * 1_000_000)).ok();
        });
        eprintln!(
            "{name}: admit {admitted:.1} ns, refuse {refused:.1} ns, lock + admit {locked:.1} ns per request"
        );
    }
}
