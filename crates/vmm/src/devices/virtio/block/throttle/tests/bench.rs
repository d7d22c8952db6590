//! The throttle's per-request cost (an ignored test that prints numbers).

use super::*;

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
        ("gp3 (2 rate buckets)", Limits::gp3_baseline()),
        ("gp2 100 GiB (+ I/O credits)", Limits::gp2(100)),
        (
            "st1 1 TiB (+ throughput credits)",
            Limits::of(VolumeType::St1, 1_024, None, None),
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
