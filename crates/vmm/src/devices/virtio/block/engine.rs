//! The host I/O engine: one io_uring per request queue.
//!
//! Completions are signalled on an eventfd registered with the ring, which
//! the device watches from the VMM's event loop. The engine bounds the
//! number of operations in flight by the completion-ring size, so the
//! kernel never has to drop or buffer completions, and it never loses a
//! submission: an entry that cannot be pushed stays with the caller, and an
//! entry the kernel would not take (EAGAIN/EBUSY) stays in the submission
//! ring for the next `submit`.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, squeue};
use thiserror::Error;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(
        "cannot create an io_uring (is io_uring enabled? kernel.io_uring_disabled, seccomp, RLIMIT_MEMLOCK): {0}"
    )]
    Setup(io::Error),
    #[error("cannot create the completion eventfd: {0}")]
    EventFd(io::Error),
    #[error("cannot register the completion eventfd with io_uring: {0}")]
    RegisterEventFd(io::Error),
    #[error("io_uring_enter failed: {0}")]
    Submit(io::Error),
}

/// The submission ring or the in-flight budget is full; retry after
/// completions have been reaped.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// What `submit` achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Everything queued went to the kernel.
    All,
    /// The kernel pushed back (EAGAIN/EBUSY); entries wait in the ring.
    Busy,
}

pub struct Engine {
    ring: IoUring,
    evt: EventFd,
    /// Entries pushed and not yet reaped.
    in_flight: usize,
    max_in_flight: usize,
}

impl Engine {
    /// A ring with `entries` submission slots (rounded up to a power of 2
    /// by the kernel) and twice as many completion slots.
    pub fn new(entries: u32) -> Result<Self, EngineError> {
        let ring = IoUring::new(entries).map_err(EngineError::Setup)?;
        let evt = EventFd::new(EFD_NONBLOCK).map_err(EngineError::EventFd)?;
        ring.submitter()
            .register_eventfd(evt.as_raw_fd())
            .map_err(EngineError::RegisterEventFd)?;
        let max_in_flight = ring.params().cq_entries() as usize;
        Ok(Engine {
            ring,
            evt,
            in_flight: 0,
            max_in_flight,
        })
    }

    /// Becomes readable when completions are posted.
    pub fn event_fd(&self) -> &EventFd {
        &self.evt
    }

    /// Consumes a pending completion notification.
    pub fn clear_event(&self) {
        // EAGAIN (nothing pending) is fine: the fd is non-blocking.
        let _ = self.evt.read();
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues one entry (not yet submitted to the kernel).
    ///
    /// # Safety
    /// Every buffer the entry refers to (iovec arrays and the memory they
    /// describe) must stay valid until its completion has been returned by
    /// `pop`, or until `drain` has returned.
    pub unsafe fn push(&mut self, entry: &squeue::Entry) -> Result<(), Full> {
        if self.in_flight >= self.max_in_flight {
            return Err(Full);
        }
        // SAFETY: the caller guarantees the entry's buffers outlive it.
        if unsafe { self.ring.submission().push(entry) }.is_err() {
            // The submission ring is full of entries not yet handed to the
            // kernel: hand them over and retry once.
            if self.submit().is_err() {
                return Err(Full);
            }
            // SAFETY: as above.
            if unsafe { self.ring.submission().push(entry) }.is_err() {
                return Err(Full);
            }
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Hands all queued entries to the kernel in one io_uring_enter.
    pub fn submit(&mut self) -> Result<Submitted, EngineError> {
        if self.ring.submission().is_empty() {
            return Ok(Submitted::All);
        }
        loop {
            match self.ring.submit() {
                Ok(_) => {
                    // A short submit leaves entries in the ring (the kernel
                    // stops at an entry it could not allocate for).
                    return Ok(if self.ring.submission().is_empty() {
                        Submitted::All
                    } else {
                        Submitted::Busy
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)) => {
                    return Ok(Submitted::Busy);
                }
                Err(e) => return Err(EngineError::Submit(e)),
            }
        }
    }

    /// Next completion: (user_data, result).
    pub fn pop(&mut self) -> Option<(u64, i32)> {
        let cqe = self.ring.completion().next()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some((cqe.user_data(), cqe.result()))
    }

    /// Blocks until every pushed entry has completed, discarding the
    /// results (device reset: the kernel must be done with guest memory
    /// before the queue's memory and buffers are released). Returns false
    /// if the ring failed and entries may still be in flight.
    pub fn drain(&mut self) -> bool {
        while self.in_flight > 0 {
            while self.pop().is_some() {}
            if self.in_flight == 0 {
                break;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                    ) => {}
                Err(_) => return false,
            }
        }
        self.clear_event();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use io_uring::{opcode, types};
    use std::io::{Read, Seek, SeekFrom};

    fn wait_one(e: &mut Engine) -> (u64, i32) {
        loop {
            if let Some(c) = e.pop() {
                return c;
            }
            e.ring.submit_and_wait(1).unwrap();
        }
    }

    #[test]
    fn io_uring_is_available_and_does_vectored_io() {
        // Fails loudly (not skipped) when io_uring is unavailable: the
        // block device has no fallback.
        let mut e = Engine::new(8).expect("io_uring setup");
        let path = std::env::temp_dir().join(format!("flint-engine-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        let a = [1u8; 100];
        let b = [2u8; 50];
        let iov = [
            libc::iovec {
                iov_base: a.as_ptr() as *mut _,
                iov_len: a.len(),
            },
            libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            },
        ];
        let w = opcode::Writev::new(types::Fd(f.as_raw_fd()), iov.as_ptr(), 2)
            .offset(10)
            .build()
            .user_data(42);
        // SAFETY: `a`, `b` and `iov` outlive the completion awaited below.
        unsafe { e.push(&w) }.unwrap();
        assert_eq!(e.submit().unwrap(), Submitted::All);
        assert_eq!(wait_one(&mut e), (42, 150));
        let s = opcode::Fsync::new(types::Fd(f.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build()
            .user_data(7);
        // SAFETY: no buffers.
        unsafe { e.push(&s) }.unwrap();
        e.submit().unwrap();
        assert_eq!(wait_one(&mut e), (7, 0));
        assert_eq!(e.in_flight(), 0);
        let mut got = vec![];
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 160);
        assert_eq!(&got[10..110], &[1u8; 100]);
        assert_eq!(&got[110..], &[2u8; 50]);
        // The eventfd was signalled.
        assert!(e.event_fd().read().unwrap() >= 1);
    }

    #[test]
    fn push_beyond_budget_reports_full_and_drain_waits() {
        let mut e = Engine::new(4).unwrap();
        e.max_in_flight = 3;
        let nop = opcode::Nop::new().build().user_data(1);
        for _ in 0..3 {
            // SAFETY: a NOP refers to no buffers.
            unsafe { e.push(&nop) }.unwrap();
        }
        // SAFETY: as above.
        assert_eq!(unsafe { e.push(&nop) }, Err(Full));
        assert!(e.drain());
        assert_eq!(e.in_flight(), 0);
    }
}
