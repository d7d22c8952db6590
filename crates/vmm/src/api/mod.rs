//! The per-VM control socket: JSON over HTTP/1.1 on a Unix socket. Its
//! paths, requests and replies are the contract's (`contract::socket`):
//!
//! ```text
//! GET /vm             200 VmStatus {"state": "running", "boots": 1, "vcpus": 2, ...,
//!                      "msi_gsis": N (MSI routes the boot holds: a leak check)}
//! PUT /vm/shutdown    202  graceful: ACPI power button, hard stop after the timeout
//! PUT /vm/stop        202  hard stop now
//! PUT /vm/reboot      202  hard reset (as the reset button)
//! GET /vm/metadata    200  what the metadata service serves (JSON, as --metadata)
//! PUT /vm/metadata    200  merge a MetadataUpdate: {"tags": {...}, "block_device_mapping":
//!                          {...}, "metadata_options": {...}, "user_data_base64": "..."}
//! .../vm/disks...          disk hot-plug, unplug, resize, limits, metrics: see `disks`
//! GET /vm/metrics     200  every disk's EBS metrics, Prometheus text: see `disk_metrics`
//! ```
//! Errors: 400 (malformed), 404 (unknown path), 405 (method, with Allow).

mod disk_metrics;
mod disks;
mod http;

pub use disks::DiskCommand;

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use thiserror::Error;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::disks::DiskTable;
use crate::imds::Imds;
use crate::seccomp::ThreadKind;
use crate::vm::Vm;
use flint_contract::metadata::MetadataUpdate;
use flint_contract::socket::{self, Accepted, ErrorReply, VmAction, VmState, VmStatus};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("cannot create the control socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the API thread: {0}")]
    Thread(std::io::Error),
    #[error("API thread seccomp filter: {0}")]
    Seccomp(String),
}

/// What the outside world (signals, the control socket) can ask of a
/// boot; the instance's main loop acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmRequest {
    /// ACPI power button; hard stop when the timeout passes.
    GracefulShutdown,
    HardStop,
    /// Hard reset, as the reset button.
    Reset,
}

/// What the API thread and the VMM's main loop share.
pub struct ApiShared {
    pub status: Mutex<VmStatus>,
    /// The metadata service's state, when the VM has one.
    imds: Mutex<Option<Arc<Mutex<Imds>>>>,
    /// The VM's disks (with their volumes: limits, metrics), for /vm/disks
    /// and /vm/metrics.
    disks: Mutex<Option<Arc<DiskTable>>>,
    /// The running boot's VM (weak: a finished boot's VM goes away).
    vm: Mutex<Weak<Vm>>,
    requests: Mutex<VecDeque<VmRequest>>,
    disk_commands: Mutex<VecDeque<DiskCommand>>,
    event: EventFd,
}

/// (status, Allow header, body: JSON unless `respond` says otherwise)
type Reply = (u16, Option<&'static str>, String);

const JSON: &str = "application/json";

impl ApiShared {
    /// Lets the control socket read and update the metadata service.
    pub fn set_imds(&self, imds: Arc<Mutex<Imds>>) {
        *self.imds.lock().unwrap_or_else(|e| e.into_inner()) = Some(imds);
    }

    /// Lets the control socket list the disks and change them.
    pub fn set_disks(&self, disks: Arc<DiskTable>) {
        *self.disks.lock().unwrap_or_else(|e| e.into_inner()) = Some(disks);
    }

    /// The VM of the boot that just started.
    pub fn set_vm(&self, vm: &Arc<Vm>) {
        *self.vm.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(vm);
    }

    fn status(&self) -> VmStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let vm = self.vm.lock().unwrap_or_else(|e| e.into_inner()).upgrade();
        status.msi_gsis = vm.map_or(0, |vm| vm.msi_gsis_in_use());
        status
    }

    fn disk_table(&self) -> Option<Arc<DiskTable>> {
        self.disks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The next disk command whose caller still waits (the main loop runs
    /// it and sends the answer).
    pub fn next_disk_command(&self) -> Option<DiskCommand> {
        let mut queue = self.disk_commands.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        while let Some(command) = queue.pop_front() {
            if command.deadline > now {
                return Some(command);
            }
        }
        None
    }

    fn push_disk_command(&self, command: DiskCommand) {
        self.disk_commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(command);
        let _ = self.event.write(1);
    }

    pub fn new(status: VmStatus) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(ApiShared {
            status: Mutex::new(status),
            imds: Mutex::new(None),
            disks: Mutex::new(None),
            vm: Mutex::new(Weak::new()),
            requests: Mutex::new(VecDeque::new()),
            disk_commands: Mutex::new(VecDeque::new()),
            event: EventFd::new(EFD_NONBLOCK)?,
        }))
    }

    pub fn next_request(&self) -> Option<VmRequest> {
        let _ = self.event.read();
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    pub fn event(&self) -> &EventFd {
        &self.event
    }

    pub fn set_state(&self, state: VmState) {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).state = state;
    }

    fn push(&self, request: VmRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(request);
        let _ = self.event.write(1);
    }
}

/// Binds the socket (replacing a stale one) and serves it on a thread.
pub fn start(
    path: &Path,
    shared: Arc<ApiShared>,
    seccomp: bool,
) -> Result<std::thread::JoinHandle<()>, ApiError> {
    serve_on(bind(path)?, shared, seccomp)
}

/// Binds the socket (replacing a stale one), mode 0600. A jailed VMM
/// binds it before the jail: the socket's directory is not inside.
pub fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    let bind_err = |source| ApiError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

/// Serves a bound control socket on a thread of its own (with the API
/// thread's seccomp filter).
pub fn serve_on(
    listener: UnixListener,
    shared: Arc<ApiShared>,
    seccomp: bool,
) -> Result<std::thread::JoinHandle<()>, ApiError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            if seccomp {
                let installed = crate::seccomp::install(ThreadKind::Api);
                let failed = installed.is_err();
                let _ = ready_tx.send(installed.map_err(|e| e.to_string()));
                if failed {
                    return;
                }
            } else {
                let _ = ready_tx.send(Ok(()));
            }
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        })
        .map_err(ApiError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(reason)) => Err(ApiError::Seccomp(reason)),
        Err(_) => Err(ApiError::Seccomp("the API thread died".into())),
    }
}

fn serve(mut stream: UnixStream, shared: &ApiShared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut reader = http::reader();
    loop {
        let request = match reader.next_event(&mut stream, |_| false) {
            Ok(http::Event::Request(r)) => r,
            Ok(http::Event::Continue) => {
                if stream.write_all(flint_http::CONTINUE).is_err() {
                    return;
                }
                continue;
            }
            Ok(http::Event::Error(e)) => {
                let body = to_json(&ErrorReply::new(e.to_string()));
                let _ = http::write_response(&mut stream, e.status(), JSON, None, &body, true);
                return;
            }
            Ok(http::Event::Closed | http::Event::Truncated) | Err(_) => return,
        };
        let ((status, allow, body), content_type) = respond(&request, shared);
        let close = !request.keep_alive;
        if http::write_response(&mut stream, status, content_type, allow, &body, close).is_err()
            || close
        {
            return;
        }
    }
}

/// The reply and its content type: JSON but for the Prometheus text.
fn respond(request: &http::Request, shared: &ApiShared) -> (Reply, &'static str) {
    let path = request.target.split('?').next().unwrap_or("");
    if path == socket::METRICS {
        let reply = disk_metrics::route(request, shared.disk_table().as_deref());
        // A refusal (405) is JSON like every other.
        let kind = if reply.0 == 200 {
            disk_metrics::CONTENT_TYPE
        } else {
            JSON
        };
        return (reply, kind);
    }
    (route(request, shared), JSON)
}

fn route(request: &http::Request, shared: &ApiShared) -> Reply {
    let path = request.target.split('?').next().unwrap_or("");
    if path == socket::DISKS || path.starts_with(&format!("{}/", socket::DISKS)) {
        return disks::route(request, shared);
    }
    if path == socket::METADATA {
        return metadata(request, shared);
    }
    if path == socket::VM {
        return if request.method == "GET" {
            (200, None, to_json(&shared.status()))
        } else {
            method_not_allowed("GET")
        };
    }
    let Some(action) = VmAction::from_path(path) else {
        return (
            404,
            None,
            to_json(&ErrorReply::new(format!("no such path: {path}"))),
        );
    };
    if request.method != "PUT" {
        return method_not_allowed("PUT");
    }
    shared.push(match action {
        VmAction::Shutdown => VmRequest::GracefulShutdown,
        VmAction::Stop => VmRequest::HardStop,
        VmAction::Reboot => VmRequest::Reset,
    });
    let accepted = Accepted {
        accepted: action.name().to_string(),
    };
    (202, None, to_json(&accepted))
}

/// A reply body (the contract's types cannot fail to serialize).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// GET: the metadata service's configuration; PUT: merge an update.
fn metadata(request: &http::Request, shared: &ApiShared) -> Reply {
    let error = |status: u16, msg: String| (status, None, to_json(&ErrorReply::new(msg)));
    let imds = shared
        .imds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(imds) = imds else {
        return error(404, "this VM has no metadata service (--metadata)".into());
    };
    match request.method.as_str() {
        "GET" => {
            let imds = imds.lock().unwrap_or_else(|e| e.into_inner());
            (
                200,
                None,
                serde_json::to_string(imds.config()).unwrap_or_default(),
            )
        }
        "PUT" => {
            let update: MetadataUpdate = match serde_json::from_slice(&request.body) {
                Ok(u) => u,
                Err(e) => return error(400, format!("bad metadata update: {e}")),
            };
            let mut imds = imds.lock().unwrap_or_else(|e| e.into_inner());
            match imds.apply(&update) {
                Ok(()) => (
                    200,
                    None,
                    serde_json::to_string(imds.config()).unwrap_or_default(),
                ),
                Err(e) => error(400, format!("bad metadata update: {e}")),
            }
        }
        _ => method_not_allowed("GET, PUT"),
    }
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let body = ErrorReply::new(format!("method not allowed; use {allow}"));
    (405, Some(allow), to_json(&body))
}

/// What the control socket's tests share: a VM's status and a client.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::sync::Arc;

    use super::{ApiShared, VmState, VmStatus};

    /// The shared state of a small one-boot VM in `state`.
    pub fn shared(state: VmState) -> Arc<ApiShared> {
        ApiShared::new(VmStatus {
            state,
            boots: 1,
            vcpus: 1,
            memory_mib: 64,
            pid: 1,
            msi_gsis: 0,
        })
        .unwrap()
    }

    /// One request on its own connection: (status, head, body).
    pub fn request(sock: &Path, method: &str, uri: &str, body: &str) -> (u16, String, String) {
        let mut s = UnixStream::connect(sock).unwrap();
        let raw = format!(
            "{method} {uri} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head[9..12].parse().unwrap(), head.into(), body.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn exchange(path: &Path, raw: &str) -> String {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_status_and_queues_actions() {
        let dir = std::env::temp_dir().join(format!("flint-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vm.sock");
        let shared = testing::shared(VmState::Running);
        start(&path, shared.clone(), false).unwrap();
        let reply = exchange(&path, "GET /vm HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("\"state\":\"running\""));
        // As the daemon reads it.
        let body = |reply: &str| reply.split_once("\r\n\r\n").unwrap().1.to_string();
        let status: VmStatus = serde_json::from_str(&body(&reply)).unwrap();
        assert_eq!((status.state, status.boots), (VmState::Running, 1));
        let reply = exchange(
            &path,
            "PUT /vm/shutdown HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 202"));
        let accepted: Accepted = serde_json::from_str(&body(&reply)).unwrap();
        assert_eq!(accepted.accepted, "shutdown");
        assert_eq!(shared.next_request(), Some(VmRequest::GracefulShutdown));
        assert_eq!(shared.next_request(), None);
        let reply = exchange(&path, "GET /vm/stop HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 405") && reply.contains("Allow: PUT"));
        let reply = exchange(&path, "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 404"));
        let reply = exchange(&path, "garbage\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 400"));
        // A stale socket file is replaced.
        start(&path, shared, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
