//! A TAP device with the virtio-net header: frames read from or written to
//! it carry the same 12-byte `virtio_net_hdr_v1` the guest uses, so offloads
//! (checksum, TSO) pass straight through between the guest and the host
//! kernel.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use thiserror::Error;

use flint_contract::config::{MAX_TAP_NAME_LEN, valid_tap_name};

/// ioctls of /dev/net/tun (linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// TUNSETOFFLOAD bits: what the host may hand us (and so the guest).
pub const TUN_F_CSUM: u32 = 0x01;
pub const TUN_F_TSO4: u32 = 0x02;
pub const TUN_F_TSO6: u32 = 0x04;
pub const TUN_F_TSO_ECN: u32 = 0x08;
/// The virtio 1.x net header (`virtio_net_hdr_v1`, also used without
/// VIRTIO_NET_F_MRG_RXBUF since VERSION_1).
pub const VNET_HDR_LEN: usize = 12;

#[derive(Debug, Error)]
pub enum TapError {
    #[error("TAP name {0:?} must be 1 to {MAX_TAP_NAME_LEN} bytes without '/', NUL or spaces")]
    Name(String),
    #[error("cannot open /dev/net/tun: {0}")]
    OpenTun(io::Error),
    #[error("cannot attach to TAP {name}: {source}")]
    Attach { name: String, source: io::Error },
    #[error("TAP {name}: cannot {what}: {source}")]
    Setup {
        name: String,
        what: &'static str,
        source: io::Error,
    },
}

/// Where a NIC's frames go: the TAP, or a stand-in in tests. Frames carry
/// the 12-byte vnet header first.
pub trait FrameIo: AsRawFd + Send + Sync {
    /// One frame, or WouldBlock (the fd is non-blocking).
    fn read_frame(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_frame(&self, frame: &[u8]) -> io::Result<usize>;
    /// The offloads (TUN_F_*) the guest accepts.
    fn set_offload(&self, flags: u32) -> Result<(), TapError>;
}

/// One queue of a TAP device, non-blocking.
pub struct Tap {
    file: File,
    name: String,
}

fn ifreq_for(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

impl Tap {
    /// Attaches to TAP `name` with the virtio-net header, creating it (not
    /// persistent: it goes away with the process) when it does not exist,
    /// and sets the link up.
    pub fn open(name: &str) -> Result<Self, TapError> {
        if !valid_tap_name(name) {
            return Err(TapError::Name(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::OpenTun)?;
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which lives on our
        // stack for the duration of the call.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(TapError::Attach {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        let tap = Tap {
            file,
            name: name.to_string(),
        };
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int from the pointer.
        if unsafe { libc::ioctl(tap.file.as_raw_fd(), TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            return Err(tap.setup_err("set the vnet header size"));
        }
        tap.set_offload_flags(0)?;
        tap.set_up()?;
        Ok(tap)
    }

    fn setup_err(&self, what: &'static str) -> TapError {
        TapError::Setup {
            name: self.name.clone(),
            what,
            source: io::Error::last_os_error(),
        }
    }

    fn set_up(&self) -> Result<(), TapError> {
        // SAFETY: a plain socket() call; the fd is closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(self.setup_err("open a socket to set the link up"));
        }
        let mut req = ifreq_for(&self.name);
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read/write one ifreq on our
        // stack; `sock` is a valid socket until closed below.
        let result = unsafe {
            if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
                -1
            } else {
                req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(sock, libc::SIOCSIFFLAGS, &req)
            }
        };
        let err = (result < 0).then(|| self.setup_err("set the link up"));
        // SAFETY: `sock` is ours and closed exactly once.
        unsafe { libc::close(sock) };
        err.map_or(Ok(()), Err)
    }

    /// Tells the kernel which offloads the guest accepts (TUN_F_* bits):
    /// frames it hands us may then be partially checksummed or GSO.
    fn set_offload_flags(&self, flags: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes the flags by value.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETOFFLOAD, flags as libc::c_ulong) } < 0
        {
            return Err(self.setup_err("set offloads"));
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FrameIo for Tap {
    fn read_frame(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    fn write_frame(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }

    fn set_offload(&self, flags: u32) -> Result<(), TapError> {
        self.set_offload_flags(flags)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        for bad in ["", "a-name-that-is-too-long", "a/b", "a b", "x:1"] {
            assert!(matches!(Tap::open(bad), Err(TapError::Name(_))), "{bad:?}");
        }
        assert!(valid_tap_name("flint0"));
        assert!(valid_tap_name("tap-i-0123abcd"));
    }
}
