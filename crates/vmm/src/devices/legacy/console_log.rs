//! The instance's console log: bounded in size and in write rate, because
//! the guest controls every byte of it.
//!
//! - Size: two files, `PATH` and `PATH.1`, each at most `max_bytes`. When
//!   the one being written is full, the other is truncated and written
//!   from its start; the newer of the two is the one modified last (a
//!   reader orders them by mtime: see the daemon's GetConsoleOutput). The
//!   disk never holds more than `2 × max_bytes` of console. Both files are
//!   opened once, before the seccomp filters are installed; rotating needs
//!   only `ftruncate(fd, 0)` and `write` on the vCPU thread, no new paths.
//! - Rate: a token bucket (`rate_bytes_per_s`, bursts of `burst_bytes`),
//!   so a guest printing as fast as it can cannot make the host write
//!   more than that to disk. Bytes over the limit are dropped and counted;
//!   the first drop is said once on the VMM's stderr (its log).
//! - Failure: a write that fails (ENOSPC, EIO, …) drops those bytes,
//!   counted, said once; it never panics and never blocks or stops the
//!   guest (a full disk fails writes at once).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing::warn;

/// Each of the two console files is at most this big unless configured.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;
/// Sustained console bytes per second written to disk.
pub const DEFAULT_RATE_BYTES_PER_S: u64 = 64 * 1024;
/// What may be written at once above the rate (a boot's worth of log).
pub const DEFAULT_BURST_BYTES: u64 = 1 << 20;

/// Size and rate limits of a console log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Per file; at least 4 KiB is used.
    pub max_bytes: u64,
    /// 0: no rate limit.
    pub rate_bytes_per_s: u64,
    pub burst_bytes: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes: DEFAULT_MAX_BYTES,
            rate_bytes_per_s: DEFAULT_RATE_BYTES_PER_S,
            burst_bytes: DEFAULT_BURST_BYTES,
        }
    }
}

/// The name of the other file: `PATH.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".1");
    PathBuf::from(name)
}

/// Bytes written and dropped, readable while the log is in use.
#[derive(Debug, Default)]
pub struct LogCounters {
    pub written: AtomicU64,
    /// Over the rate limit.
    pub dropped_rate: AtomicU64,
    /// Failed writes (disk full, I/O error).
    pub dropped_io: AtomicU64,
}

/// A token bucket in bytes.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full. `rate` 0: unlimited.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// How many of `want` bytes may be written at `now`.
    pub fn take(&mut self, want: u64, now: Instant) -> u64 {
        if self.rate == 0 {
            return want;
        }
        let elapsed = now.saturating_duration_since(self.last);
        let earned = u128::from(self.rate) * elapsed.as_nanos() / 1_000_000_000;
        if earned > 0 {
            let earned = u64::try_from(earned).unwrap_or(u64::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(self.burst);
            // Keep the remainder of a partial byte: advance by what was
            // paid for only (or reset when the bucket is full anyway).
            if self.tokens == self.burst {
                self.last = now;
            } else {
                let paid_ns = u128::from(earned) * 1_000_000_000 / u128::from(self.rate);
                self.last +=
                    std::time::Duration::from_nanos(u64::try_from(paid_ns).unwrap_or(u64::MAX));
            }
        }
        let granted = want.min(self.tokens);
        self.tokens -= granted;
        granted
    }
}

/// The rotating, rate-limited console log (see the module docs).
pub struct ConsoleLog {
    files: [File; 2],
    paths: [PathBuf; 2],
    current: usize,
    size: u64,
    max: u64,
    bucket: TokenBucket,
    counters: Arc<LogCounters>,
    said_rate: bool,
    said_io: bool,
}

/// The smallest per-file cap honoured.
const MIN_MAX_BYTES: u64 = 4096;

impl ConsoleLog {
    /// Opens (creating, 0600) `path` and `PATH.1`; writing continues in
    /// the newer one. A file already over the cap (from a Flint without
    /// one) is emptied.
    pub fn open(path: &Path, limits: LogLimits) -> io::Result<ConsoleLog> {
        let max = limits.max_bytes.max(MIN_MAX_BYTES);
        let paths = [path.to_path_buf(), rotated_path(path)];
        let open = |p: &Path| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(p)
        };
        let files = [open(&paths[0])?, open(&paths[1])?];
        let mut meta = Vec::with_capacity(2);
        for f in &files {
            let m = f.metadata()?;
            if m.len() > max {
                f.set_len(0)?;
            }
            let m = f.metadata()?;
            meta.push((m.len(), m.modified().ok()));
        }
        // The newer one is current (the later mtime; on a tie the shorter,
        // as the older one is full); an empty rotated file never is.
        let current = match (meta[0], meta[1]) {
            ((len0, Some(t0)), (len1, Some(t1)))
                if len1 > 0 && (t1 > t0 || (t1 == t0 && len1 < len0)) =>
            {
                1
            }
            _ => 0,
        };
        Ok(ConsoleLog {
            size: meta[current].0,
            files,
            paths,
            current,
            max,
            bucket: TokenBucket::new(limits.rate_bytes_per_s, limits.burst_bytes, Instant::now()),
            counters: Arc::new(LogCounters::default()),
            said_rate: false,
            said_io: false,
        })
    }

    pub fn counters(&self) -> Arc<LogCounters> {
        self.counters.clone()
    }

    /// The file being written now.
    pub fn current_path(&self) -> &Path {
        &self.paths[self.current]
    }

    fn rotate(&mut self) -> io::Result<()> {
        let other = 1 - self.current;
        self.files[other].set_len(0)?;
        self.current = other;
        self.size = 0;
        Ok(())
    }

    fn drop_io(&mut self, bytes: usize, e: &io::Error) {
        self.counters
            .dropped_io
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if !self.said_io {
            self.said_io = true;
            warn!(
                "flint vmm: console log {}: {e}; console output is dropped (and counted) while \
                 writing fails",
                self.paths[self.current].display()
            );
        }
    }

    /// Takes `buf` as far as the rate limit and the disk allow; never
    /// fails (what is not written is counted).
    pub fn append(&mut self, buf: &[u8]) {
        let allowed = self.bucket.take(buf.len() as u64, Instant::now());
        let allowed = usize::try_from(allowed).unwrap_or(buf.len()).min(buf.len());
        if allowed < buf.len() {
            self.counters
                .dropped_rate
                .fetch_add((buf.len() - allowed) as u64, Ordering::Relaxed);
            if !self.said_rate {
                self.said_rate = true;
                warn!(
                    "flint vmm: the guest writes its console faster than the log's limit; \
                     output over the limit is dropped (and counted)"
                );
            }
        }
        let mut data = &buf[..allowed];
        while !data.is_empty() {
            if self.size >= self.max
                && let Err(e) = self.rotate()
            {
                self.drop_io(data.len(), &e);
                return;
            }
            let room = usize::try_from(self.max - self.size).unwrap_or(usize::MAX);
            let chunk = &data[..data.len().min(room)];
            match self.files[self.current].write(chunk) {
                Ok(0) => {
                    self.drop_io(data.len(), &io::Error::from(io::ErrorKind::WriteZero));
                    return;
                }
                Ok(n) => {
                    self.size += n as u64;
                    self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
                    data = &data[n..];
                    // Rotate as soon as the file is full, so that the older
                    // file is always the full one: a reader whose mtimes
                    // tie (they tick coarsely) takes the shorter as newer.
                    // A failure is retried before the next write.
                    if self.size >= self.max {
                        let _ = self.rotate();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.drop_io(data.len(), &e);
                    return;
                }
            }
        }
    }
}

impl Write for ConsoleLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
