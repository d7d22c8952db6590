//! The console log through its real writer: size caps under a flood,
//! rotation keeping the newest bytes, the rate limit, a full disk.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{ConsoleLog, LogLimits, TokenBucket, rotated_path};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flint-console-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unlimited(max_bytes: u64) -> LogLimits {
    LogLimits {
        max_bytes,
        rate_bytes_per_s: 0,
        burst_bytes: 0,
    }
}

/// Both files, older first (the older one is the full one).
fn both(path: &Path, max: u64) -> Vec<u8> {
    let a = std::fs::read(path).unwrap_or_default();
    let b = std::fs::read(rotated_path(path)).unwrap_or_default();
    let (older, newer) = if a.len() as u64 >= max {
        (a, b)
    } else {
        (b, a)
    };
    [older, newer].concat()
}

#[test]
fn a_gibibyte_of_output_leaves_two_capped_files() {
    let dir = scratch("flood");
    let path = dir.join("console.log");
    let max = 1 << 20;
    let mut log = ConsoleLog::open(&path, unlimited(max)).unwrap();
    let chunk: Vec<u8> = (0..100_003u32).map(|i| (i % 251) as u8).collect();
    let mut total = 0u64;
    while total < 1 << 30 {
        log.append(&chunk);
        total += chunk.len() as u64;
    }
    let c = log.counters();
    assert_eq!(c.written.load(Ordering::Relaxed), total);
    assert_eq!(c.dropped_io.load(Ordering::Relaxed), 0);
    for p in [path.clone(), rotated_path(&path)] {
        let meta = std::fs::metadata(&p).unwrap();
        assert!(meta.len() <= max, "{}: {} bytes", p.display(), meta.len());
        assert!(meta.blocks() * 512 <= max + (64 << 10), "{}", p.display());
        assert_eq!(meta.mode() & 0o777, 0o600);
    }
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rotation_keeps_the_newest_bytes_in_order() {
    let dir = scratch("rotate");
    let path = dir.join("console.log");
    let max = 4096;
    let stream: Vec<u8> = (0..50_000u32)
        .flat_map(|i| format!("{i:06}\n").into_bytes())
        .collect();
    let mut log = ConsoleLog::open(&path, unlimited(max)).unwrap();
    // Byte by byte, as the UART writes, then in odd-sized pieces.
    let (bytewise, rest) = stream.split_at(10_000);
    for b in bytewise {
        log.append(std::slice::from_ref(b));
    }
    for piece in rest.chunks(777) {
        log.append(piece);
    }
    let kept = both(&path, max);
    assert!(
        kept.len() as u64 > max && kept.len() as u64 <= 2 * max,
        "{}",
        kept.len()
    );
    assert!(
        stream.ends_with(&kept),
        "the files are not the stream's tail"
    );
    // Reopened (a VMM restart), writing goes on in the newer file.
    drop(log);
    let mut log = ConsoleLog::open(&path, unlimited(max)).unwrap();
    log.append(b"after restart\n");
    let kept = both(&path, max);
    assert!(kept.ends_with(b"999999\nafter restart\n") || kept.ends_with(b"after restart\n"));
    let mut expected = stream.clone();
    expected.extend_from_slice(b"after restart\n");
    assert!(expected.ends_with(&kept));
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_oversized_log_from_before_is_emptied() {
    let dir = scratch("oversized");
    let path = dir.join("console.log");
    std::fs::write(&path, vec![b'x'; 100_000]).unwrap();
    let mut log = ConsoleLog::open(&path, unlimited(8192)).unwrap();
    log.append(b"new boot\n");
    assert_eq!(std::fs::read(&path).unwrap(), b"new boot\n");
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_bucket_grants_the_burst_then_the_rate() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(1000, 4000, t0);
    assert_eq!(bucket.take(10_000, t0), 4000);
    assert_eq!(bucket.take(10, t0), 0);
    assert_eq!(bucket.take(10_000, t0 + Duration::from_millis(500)), 500);
    // Fractions of a byte are not lost over many small refills.
    let mut got = 0;
    for ms in 1..=1000 {
        got += bucket.take(10, t0 + Duration::from_millis(500 + ms));
    }
    assert_eq!(got, 1000);
    // Never more than the burst after a long pause.
    assert_eq!(bucket.take(1 << 20, t0 + Duration::from_secs(3600)), 4000);
}

#[test]
fn output_over_the_rate_is_dropped_and_counted() {
    let dir = scratch("rate");
    let path = dir.join("console.log");
    let limits = LogLimits {
        max_bytes: 1 << 20,
        rate_bytes_per_s: 1,
        burst_bytes: 1000,
    };
    let mut log = ConsoleLog::open(&path, limits).unwrap();
    log.append(&[b'a'; 10_000]);
    let c = log.counters();
    let written = c.written.load(Ordering::Relaxed);
    assert!((1000..=1010).contains(&written), "{written}");
    assert_eq!(c.dropped_rate.load(Ordering::Relaxed), 10_000 - written);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), written);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 64 KiB tmpfs: the disk fills, writes fail with ENOSPC, nothing
/// panics or blocks, the bytes are counted as dropped. Needs root (mount);
/// skipped otherwise.
#[test]
fn a_full_disk_drops_and_counts() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = scratch("enospc");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "flint-test-tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let path = dir.join("console.log");
    let result = std::panic::catch_unwind(|| {
        let mut log = ConsoleLog::open(&path, unlimited(1 << 20)).unwrap();
        let started = Instant::now();
        for _ in 0..64 {
            log.append(&[b'z'; 4096]);
        }
        let c = log.counters();
        let written = c.written.load(Ordering::Relaxed);
        let dropped = c.dropped_io.load(Ordering::Relaxed);
        assert_eq!(written + dropped, 64 * 4096);
        assert!(dropped > 0 && written <= 64 << 10, "{written} {dropped}");
        assert!(started.elapsed() < Duration::from_secs(10));
    });
    let _ = std::process::Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);
    result.unwrap();
}
