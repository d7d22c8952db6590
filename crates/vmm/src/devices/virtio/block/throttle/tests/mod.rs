//! The model against AWS's published numbers, and the buckets against a
//! simulated clock: a greedy client that sends the next request the moment
//! the throttle lets it, so what it achieves is exactly the limit.

use super::limiter::{Cost, Throttle};
use flint_contract::ebs::*;

mod bench;
mod enforcement;

const S: u64 = 1_000_000_000;

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

#[test]
fn io_units_are_256k_on_ssd_and_1m_on_hdd() {
    let ssd = Throttle::new(Limits::gp3_baseline(), 0).unwrap();
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
    let st1 = Throttle::new(Limits::of(VolumeType::St1, 1_024, None, None), 0).unwrap();
    // Every st1 I/O pays a whole MiB of throughput credit.
    assert_eq!(c(&st1, 4 * KIB), (1, MIB));
    assert_eq!(c(&st1, MIB), (1, MIB));
    assert_eq!(c(&st1, MIB + 512), (2, 2 * MIB));
    assert_eq!(c(&st1, 0), (1, 0));
    let std = Throttle::new(Limits::of(VolumeType::Standard, 10, None, None), 0).unwrap();
    assert_eq!(c(&std, 4 * KIB), (1, 4 * KIB));
    assert_eq!(c(&std, 2 * MIB), (2, 2 * MIB));
}

#[test]
fn the_contract_table_drives_the_throttle() {
    // Every row's size range, at its edges and past them, with the IOPS
    // the type needs: what the daemon's CreateVolume accepts, the
    // throttle takes, and nothing else.
    for t in VolumeType::ALL {
        let r = t.rules();
        let iops = r.iops.filter(|i| i.default.is_none()).map(|i| i.min);
        let at = |size| Throttle::new(Limits::of(t, size, iops, None), 0);
        assert!(at(r.min_size_gib).is_ok(), "{t}");
        assert!(at(r.max_size_gib).is_ok(), "{t}");
        assert!(at(r.min_size_gib - 1).is_err(), "{t}");
        assert!(at(r.max_size_gib + 1).is_err(), "{t}");
    }
    // gp3 at 16,000 IOPS and 1,000 MiB/s: enforced as such (after the
    // rate buckets' first window).
    let fast = Limits::of(VolumeType::Gp3, 100, Some(16_000), Some(1_000));
    let mut t = Throttle::new(fast, 0).unwrap();
    let mut now = 0;
    drive(&mut t, &mut now, 4 * KIB, 1, 1);
    let ops = drive(&mut t, &mut now, 4 * KIB, 5, 10);
    assert_near(ops as f64 / 5.0, 16_000.0, 0.01);
    drive(&mut t, &mut now, 256 * KIB, 1, 1);
    let ios = drive(&mut t, &mut now, 256 * KIB, 5, 1);
    assert_near((ios * 256 * KIB) as f64 / 5.0, (1_000 * MIB) as f64, 0.01);
    // 64 TiB gp3 at EC2's 2025 ceilings, and io2 Block Express.
    let top = Limits::of(VolumeType::Gp3, 65_536, Some(80_000), Some(2_000));
    assert_eq!(Throttle::new(top, 0).unwrap().performance().iops, 80_000);
    let io2 = Limits::of(VolumeType::Io2, 65_536, Some(256_000), None);
    assert_eq!(Throttle::new(io2, 0).unwrap().performance().iops, 256_000);
}
