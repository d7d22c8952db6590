//! Rates, bursts, credits and live changes on a simulated clock.

use super::*;

#[test]
fn gp3_holds_its_baseline_iops_and_throughput() {
    let mut t = Throttle::new(Limits::gp3_baseline(), 0).unwrap();
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
    let l = Limits::of(VolumeType::Io2, 100, Some(1_000), None);
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
    let mut t = Throttle::new(Limits::gp2(100), 0).unwrap();
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
    let mut t = Throttle::new(Limits::gp2(100), 0).unwrap();
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
    let mut t = Throttle::new(Limits::of(VolumeType::St1, 1_024, None, None), 0).unwrap();
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
    let mut t = Throttle::new(Limits::of(VolumeType::Sc1, 1_024, None, None), 0).unwrap();
    let mut now = 0;
    assert_near(drive(&mut t, &mut now, MIB, 50, 1) as f64, 4_000.0, 0.01);
    let mut t = Throttle::new(Limits::of(VolumeType::Standard, 100, None, None), 0).unwrap();
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
    let mut t = Throttle::new(Limits::gp2(100), 0).unwrap();
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
    let mut t = Throttle::new(Limits::of(VolumeType::Sc1, 125, None, None), 0).unwrap();
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
    let mut t = Throttle::new(Limits::gp2(100), 0).unwrap();
    let mut now = 0;
    drive(&mut t, &mut now, 4 * KIB, 1_000, 10);
    let before = t.credits(now).unwrap();
    // Grown to 500 GiB (1,500 IOPS baseline): same credits, new rate.
    let mut bigger = Throttle::replacing(Limits::gp2(500), Some(&mut t), now).unwrap();
    assert_eq!(bigger.credits(now), Some(before));
    assert_eq!(bigger.performance().iops_credits.unwrap().refill, 1_500);
    // To gp3: no bucket, no BurstBalance, gp3's rate.
    let mut g = Throttle::replacing(Limits::gp3_baseline(), Some(&mut bigger), now).unwrap();
    assert_eq!(g.burst_balance(now), None);
    let mut now2 = now;
    drive(&mut g, &mut now2, 4 * KIB, 1, 1);
    assert_near(
        drive(&mut g, &mut now2, 4 * KIB, 10, 1) as f64,
        30_000.0,
        0.01,
    );
    // Back to gp2: nothing to carry, a new (full) bucket.
    let mut back = Throttle::replacing(Limits::gp2(100), Some(&mut g), now2).unwrap();
    assert_eq!(back.burst_balance(now2), Some(100.0));
    // Invalid new limits are refused and the old throttle is untouched.
    let bad = Limits::of(VolumeType::Io1, 100, None, None);
    assert_eq!(
        Throttle::replacing(bad, Some(&mut back), now2).unwrap_err(),
        LimitsError::IopsRequired(VolumeType::Io1)
    );
    assert_eq!(back.limits(), Limits::gp2(100));
}

#[test]
fn a_clock_that_goes_back_earns_nothing() {
    let mut t = Throttle::new(Limits::gp3_baseline(), 10 * S).unwrap();
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
