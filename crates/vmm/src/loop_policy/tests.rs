use super::*;

/// Feeds `wakeups` wakeups that each find `per_wakeup` work; returns how
/// many of them ended in Batch.
fn run(p: &mut Probe, total: &mut u64, wakeups: u32, per_wakeup: u64) -> u32 {
    let mut batch = 0;
    for _ in 0..wakeups {
        *total += per_wakeup;
        if p.next(*total) == Policy::Batch {
            batch += 1;
        }
    }
    batch
}

#[test]
fn starts_normal_and_probes_after_the_minimum_gap() {
    let mut p = Probe::new();
    let mut total = 0;
    assert_eq!(run(&mut p, &mut total, PROBE_GAP_MIN - 1, 1), 0);
    total += 1;
    assert_eq!(p.next(total), Policy::Batch, "the probe starts");
}

#[test]
fn a_probe_that_finds_one_item_per_wakeup_backs_off_exponentially() {
    let mut p = Probe::new();
    let mut total = 0;
    run(&mut p, &mut total, PROBE_GAP_MIN, 1); // into the first probe
    assert_eq!(p.current, Policy::Batch);
    // Queue depth 1: a request or a completion per wakeup.
    run(&mut p, &mut total, WINDOW, 1);
    assert_eq!(p.current, Policy::Normal);
    assert_eq!(p.probe_gap, PROBE_GAP_MIN * 2);
    // Over a long qd1 run, batching is a small share of the wakeups and
    // the gap has grown to its cap.
    let batch = run(&mut p, &mut total, 100_000, 1);
    assert_eq!(p.probe_gap, PROBE_GAP_MAX);
    // A window of 16 per 512 + 16 wakeups: about 3 %.
    assert!(batch < 100_000 / 25, "{batch} wakeups batched");
}

#[test]
fn a_probe_that_batches_stays_batch_and_resets_the_gap() {
    let mut p = Probe::new();
    let mut total = 0;
    run(&mut p, &mut total, PROBE_GAP_MIN, 1);
    // Queued I/O: wakeups now find several requests and completions.
    assert_eq!(run(&mut p, &mut total, 10 * WINDOW, 6), 10 * WINDOW);
    assert_eq!(p.probe_gap, PROBE_GAP_MIN);
    // The load goes back to one at a time: the next window ends it.
    run(&mut p, &mut total, WINDOW, 1);
    assert_eq!(p.current, Policy::Normal);
}

#[test]
fn wakeups_without_block_work_change_nothing() {
    let mut p = Probe::new();
    let mut total = 0;
    run(&mut p, &mut total, PROBE_GAP_MIN - 1, 1);
    for _ in 0..1000 {
        assert_eq!(p.next(total), Policy::Normal);
    }
    run(&mut p, &mut total, 1, 1);
    assert_eq!(p.current, Policy::Batch);
    for _ in 0..1000 {
        assert_eq!(p.next(total), Policy::Batch);
    }
    assert_eq!(p.window_wakeups, 0);
}

fn thread_policy() -> i32 {
    // SAFETY: no arguments besides the calling thread.
    unsafe { libc::sched_getscheduler(0) }
}

#[test]
fn the_loop_thread_really_switches_and_is_normal_again_when_dropped() {
    // In a thread of its own: the policy is per thread.
    std::thread::spawn(|| {
        let work = Arc::new(IoWork::default());
        let mut policy = LoopPolicy::new(work.clone(), true);
        for _ in 0..PROBE_GAP_MIN - 1 {
            work.add(1);
            assert_eq!(policy.before_sleep(), Policy::Normal);
        }
        assert_eq!(thread_policy(), libc::SCHED_OTHER);
        work.add(1);
        assert_eq!(policy.before_sleep(), Policy::Batch);
        assert_eq!(thread_policy(), libc::SCHED_BATCH);
        drop(policy);
        assert_eq!(thread_policy(), libc::SCHED_OTHER);
    })
    .join()
    .unwrap();
}

#[test]
fn disabled_never_batches() {
    std::thread::spawn(|| {
        let work = Arc::new(IoWork::default());
        let mut policy = LoopPolicy::new(work.clone(), false);
        for _ in 0..10 * PROBE_GAP_MAX {
            work.add(8);
            assert_eq!(policy.before_sleep(), Policy::Normal);
        }
        assert_eq!(thread_policy(), libc::SCHED_OTHER);
    })
    .join()
    .unwrap();
}
