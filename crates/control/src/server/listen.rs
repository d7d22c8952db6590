//! The listening sockets and the accept loop.
//!
//! The Unix socket is created with a restrictive umask (so it is never
//! reachable by others, even for a moment), then given group `flint` (if
//! that group exists) and mode 0660. A socket file left by a dead daemon is
//! replaced; one that a live daemon answers on, or a path that is not a
//! socket, is refused.

use std::ffi::CString;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing::{error, warn};

use super::http::{self, Stream};
use super::{ServerError, Shared};

pub const SOCKET_MODE: u32 = 0o660;
pub const SOCKET_GROUP: &str = "flint";

pub struct UnixSocket {
    pub listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket we bound, so that shutdown removes
    /// only our own file, not one a newer daemon put there.
    identity: (u64, u64),
}

impl UnixSocket {
    pub fn remove_if_ours(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn bind_unix(path: &Path) -> Result<UnixSocket, ServerError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        std::fs::create_dir_all(parent).map_err(ServerError::io(parent.display()))?;
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ServerError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => return Err(ServerError::SocketInUse(path.to_path_buf())),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
                // Stale: nobody listens. Removing it is safe.
                std::fs::remove_file(path).map_err(ServerError::io(path.display()))?;
            }
            Err(e) => return Err(ServerError::io(path.display())(e)),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::io(path.display())(e)),
    }
    // SAFETY: umask only swaps the process's file-creation mask; no threads
    // that create files run yet (the server starts them after binding).
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(ServerError::io(path.display()))?;
    let meta = std::fs::symlink_metadata(path).map_err(ServerError::io(path.display()))?;
    if let Some(gid) = group_id(SOCKET_GROUP) {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| ServerError::io(path.display())(std::io::Error::other(e)))?;
        // SAFETY: a valid NUL-terminated path; uid -1 leaves the owner.
        if unsafe { libc::chown(c_path.as_ptr(), u32::MAX, gid) } != 0 {
            let e = std::io::Error::last_os_error();
            warn!(
                "flint serve: cannot give {} to group {SOCKET_GROUP}: {e}",
                path.display()
            );
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(ServerError::io(path.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(ServerError::io(path.display()))?;
    Ok(UnixSocket {
        listener,
        path: path.to_path_buf(),
        identity: (meta.dev(), meta.ino()),
    })
}

fn group_id(name: &str) -> Option<libc::gid_t> {
    let c_name = CString::new(name).ok()?;
    let mut group: libc::group = unsafe_zeroed_group();
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the name is
    // NUL-terminated, `group` and `buf` outlive it, `buf.len()` is its size.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(group.gr_gid)
}

fn unsafe_zeroed_group() -> libc::group {
    // SAFETY: libc::group is plain data (integers and raw pointers), for
    // which all-zero bytes is a valid value; getgrnam_r fills it.
    unsafe { std::mem::zeroed() }
}

pub fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    if !addr.ip().is_loopback() {
        return Err(ServerError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr).map_err(ServerError::io(addr))?;
    listener
        .set_nonblocking(true)
        .map_err(ServerError::io(addr))?;
    Ok(listener)
}

/// Accepts until a signal arrives on `signal_fd`.
pub fn accept_loop(
    shared: &Arc<Shared>,
    unix: &UnixSocket,
    tcp: Option<&TcpListener>,
    signal_fd: RawFd,
) -> Result<(), ServerError> {
    let mut fds = vec![pollfd(signal_fd), pollfd(unix.listener.as_raw_fd())];
    if let Some(tcp) = tcp {
        fds.push(pollfd(tcp.as_raw_fd()));
    }
    loop {
        for fd in &mut fds {
            fd.revents = 0;
        }
        // SAFETY: `fds` is a valid array of pollfd of the length passed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(ServerError::io("poll")(e));
        }
        if fds[0].revents != 0 {
            return Ok(());
        }
        if fds[1].revents != 0 {
            loop {
                match unix.listener.accept() {
                    Ok((stream, _)) => spawn(shared, Stream::Unix(stream)),
                    Err(e) => {
                        log_accept_error(&e);
                        break;
                    }
                }
            }
        }
        if let (Some(tcp), Some(fd)) = (tcp, fds.get(2))
            && fd.revents != 0
        {
            loop {
                match tcp.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        spawn(shared, Stream::Tcp(stream))
                    }
                    Err(e) => {
                        log_accept_error(&e);
                        break;
                    }
                }
            }
        }
    }
}

fn log_accept_error(e: &std::io::Error) {
    if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted {
        warn!("flint serve: accept: {e}");
        // Out of descriptors and the like: do not spin on it.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn spawn(shared: &Arc<Shared>, stream: Stream) {
    if stream.set_blocking().is_err() {
        return;
    }
    let active = shared.active.fetch_add(1, Ordering::SeqCst);
    if active >= super::MAX_CONNECTIONS {
        http::refuse_busy(stream);
        shared.active.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let shared_for_thread = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("flint-conn".into())
        .spawn(move || {
            http::serve_connection(&shared_for_thread, stream);
            shared_for_thread.active.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        error!("flint serve: cannot start a connection thread: {e}");
        shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}
