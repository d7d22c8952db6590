//! The one-shot timer a throttled queue waits on: a non-blocking timerfd
//! on CLOCK_MONOTONIC, watched by the event loop. Non-blocking because the
//! loop may re-arm or disarm it after epoll reported it readable and
//! before its event is handled; reading it then must not block the loop.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct ThrottleTimer {
    fd: OwnedFd,
}

impl ThrottleTimer {
    pub fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create takes no pointers; the result is checked.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new, valid descriptor (checked above) that
        // nothing else owns, so the OwnedFd may close it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(ThrottleTimer { fd })
    }

    /// Fires once, `ns` nanoseconds from now (at least 1: 0 would disarm).
    pub fn arm(&self, ns: u64) -> io::Result<()> {
        let ns = ns.max(1);
        self.set(libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        })
    }

    pub fn disarm(&self) -> io::Result<()> {
        self.set(libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        })
    }

    fn set(&self, value: libc::timespec) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: `spec` is a live itimerspec the kernel only reads; the old
        // value is not asked for (null).
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiry, if there is one (EAGAIN otherwise: ignored).
    pub fn clear(&self) {
        let mut expirations = 0u64;
        // SAFETY: reads 8 bytes into a live u64 of 8 bytes.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl AsRawFd for ThrottleTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
