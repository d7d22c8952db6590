//! `flint serve`: the host daemon's front door. Listens on a Unix socket
//! (always) and a loopback TCP port (when asked), speaks HTTP/1.1 with the
//! EC2 Query protocol, checks SigV4 signatures when given credentials, and
//! hands each request to the action registry (`control::api`).
//!
//! One thread per connection, at most [`MAX_CONNECTIONS`] at a time
//! (further ones get `RequestLimitExceeded` and are closed); each request
//! takes a pooled SQLite connection. SIGTERM / SIGINT stop accepting, let
//! in-flight requests finish (bounded wait), remove the socket and exit 0;
//! running instances are left running.

mod auth;
mod http;
mod listen;
mod metrics;
mod reply;
mod signals;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tracing::{error, info};

use clap::Args;
use thiserror::Error;

use super::api::{self, Config, Context, Registry};

pub use auth::{Credentials, parse_credentials};

/// Concurrent connections served; more are refused with a 503.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// State, images, volumes and instance directories.
    #[arg(long, default_value = "/var/lib/flint")]
    pub data_dir: PathBuf,
    /// The control socket (mode 0660, group `flint` if it exists).
    #[arg(long, default_value = "/run/flint/flint.sock")]
    pub socket: PathBuf,
    /// Also listen on this loopback TCP address (for boto3 / the aws CLI).
    /// Needs --credentials, or --insecure-no-auth to serve it unsigned.
    #[arg(long, value_name = "127.0.0.1:PORT")]
    pub listen: Option<SocketAddr>,
    /// Verify SigV4 on every request against these keys: one
    /// `ACCESS_KEY_ID SECRET_ACCESS_KEY` pair per line, `#` comments; the
    /// file must not be readable by group or others. Without it, signed
    /// and unsigned requests are all accepted.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Allow --listen without --credentials: any local user (and any local
    /// process) can then drive the API over TCP.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The region this host reports.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The instances' subnet (CIDR).
    #[arg(long, default_value = "10.0.0.0/24")]
    pub subnet: String,
    /// The host bridge for the instances' TAP devices.
    #[arg(long, default_value = "flint0")]
    pub bridge: String,
    /// Cap on any instance's guest memory, whatever its type says.
    #[arg(long, value_name = "MIB")]
    pub max_instance_memory: Option<u32>,
    /// Open every instance's volumes (root included) with O_DIRECT for
    /// requests aligned as the host filesystem needs, bypassing the host
    /// page cache (`flint vmm --disk ...,direct`).
    #[arg(long)]
    pub direct_io: bool,
    /// Masquerade the subnet's traffic out of the host (nftables table
    /// `ip flint`).
    #[arg(long)]
    pub nat: bool,
    /// How long a graceful StopInstances may take before the VM is
    /// stopped hard.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub stop_timeout: u64,
    /// The same for TerminateInstances.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub terminate_timeout: u64,
    /// The VMM program and its leading arguments, split on whitespace
    /// (default: this binary's `vmm`); tests put a stand-in here.
    #[arg(long, value_name = "COMMAND")]
    pub vmm_command: Option<String>,
    /// Set from the global `--log-format json`: the VMMs the daemon starts
    /// log as JSON too (one format in the whole host's logs).
    #[arg(skip)]
    pub log_json: bool,
    /// Run the VMMs unjailed: as root, in the host's namespaces, without
    /// a cgroup (hosts without cgroup v2, debugging).
    #[arg(long)]
    pub no_jail: bool,
    /// The uids (= gids) of jailed VMMs, one per running instance.
    #[arg(long, value_name = "FIRST-LAST", default_value = "900000-965535",
          value_parser = crate::supervisor::jail::parse_uids)]
    pub jail_uids: (u32, u32),
    /// RegisterImage reads image files from this directory only (default:
    /// DATA_DIR/import): put an image there first, then register it.
    #[arg(long, value_name = "DIR")]
    pub import_dir: Option<PathBuf>,
    /// Each instance's console log rotates between two files of at most
    /// this many bytes (GetConsoleOutput reads the last 64 KiB of them).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub console_log_max: u64,
    /// RunInstances / StartInstances commit at most this many times the
    /// memory the host has for instances (MemAvailable plus what running
    /// VMMs hold); beyond it they answer InsufficientInstanceCapacity.
    #[arg(long, value_name = "RATIO", default_value_t = 1.0, value_parser = parse_ratio)]
    pub memory_overcommit: f64,
    /// The same for vCPUs against the host's CPUs.
    #[arg(long, value_name = "RATIO", default_value_t = 4.0, value_parser = parse_ratio)]
    pub vcpu_overcommit: f64,
}

/// A positive, finite overcommit ratio.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1000.0 => Ok(r),
        _ => Err(format!(
            "{text}: expected a ratio above 0 and at most 1000, e.g. 1.5"
        )),
    }
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{0}")]
    Store(#[from] super::store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("--listen {0}: only loopback addresses are allowed (the API has no TLS)")]
    NotLoopback(SocketAddr),
    #[error(
        "--listen {0} without --credentials would let every local user drive the API \
         unauthenticated; give --credentials FILE, or --insecure-no-auth to accept that"
    )]
    ListenWithoutAuth(SocketAddr),
    #[error(
        "credentials file {path} is readable by its group or others (mode {mode:04o}); \
         chmod 600 it"
    )]
    CredentialsExposed { path: String, mode: u32 },
    #[error("{0}: another daemon is answering on this socket")]
    SocketInUse(PathBuf),
    #[error("{0}: exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("credentials file {path}, line {line}: {reason}")]
    Credentials {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error("instance supervisor: {0}")]
    Supervisor(String),
}

impl ServerError {
    fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ServerError {
        let path = path.to_string();
        move |source| ServerError::Io { path, source }
    }
}

/// What every connection thread shares.
pub struct Shared {
    pub ctx: Context,
    pub registry: Registry,
    pub credentials: Option<Credentials>,
    /// The bound TCP address: requests on it must name it (or localhost)
    /// in Host.
    pub listen: Option<SocketAddr>,
    pub shutting_down: AtomicBool,
    pub active: AtomicUsize,
}

pub fn run(args: &ServeArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("flint serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The VMM command: `--vmm-command` as given, else this binary's `vmm`
/// (with `--log-format json` when the daemon logs JSON).
fn vmm_command(args: &ServeArgs) -> Option<Vec<String>> {
    match args.vmm_command.as_deref() {
        Some(command) => Some(command.split_whitespace().map(str::to_string).collect())
            .filter(|c: &Vec<String>| !c.is_empty()),
        None if args.log_json => {
            let exe = std::env::current_exe().ok()?;
            Some(vec![
                exe.to_string_lossy().into_owned(),
                "--log-format".into(),
                "json".into(),
                "vmm".into(),
            ])
        }
        None => None,
    }
}

fn serve(args: &ServeArgs) -> Result<(), ServerError> {
    // Before anything is created: nothing the daemon makes is readable by
    // other local users (see `crate::private`).
    crate::private::set_umask();
    let credentials = match &args.credentials {
        Some(path) => Some(parse_credentials(path)?),
        None => None,
    };
    if let Some(addr) = args.listen {
        if !addr.ip().is_loopback() {
            return Err(ServerError::NotLoopback(addr));
        }
        if credentials.is_none() && !args.insecure_no_auth {
            return Err(ServerError::ListenWithoutAuth(addr));
        }
    }
    let config = Config {
        region: args.region.clone(),
        subnet: args.subnet.clone(),
        bridge: args.bridge.clone(),
        max_instance_memory_mib: args.max_instance_memory,
        direct_io: args.direct_io,
        nat: args.nat,
        stop_timeout_s: args.stop_timeout,
        terminate_timeout_s: args.terminate_timeout,
        vmm_command: vmm_command(args),
        jail: (!args.no_jail).then(|| crate::supervisor::jail::JailSettings {
            uids: args.jail_uids,
            ..Default::default()
        }),
        import_dir: args.import_dir.clone(),
        console_log_max_bytes: Some(args.console_log_max),
        admission: crate::supervisor::admission::AdmissionPolicy {
            memory_overcommit: args.memory_overcommit,
            vcpu_overcommit: args.vcpu_overcommit,
        },
        ..Config::default()
    };
    let ctx = Context::open(&args.data_dir, config)?;
    let signal_fd = signals::install().map_err(ServerError::Signals)?;
    let unix = listen::bind_unix(&args.socket)?;
    let tcp = match args.listen {
        Some(addr) => Some(listen::bind_tcp(addr)?),
        None => None,
    };
    api::instances::start(&ctx).map_err(ServerError::Supervisor)?;
    let shared = Arc::new(Shared {
        ctx,
        registry: Registry::standard(),
        credentials,
        listen: tcp.as_ref().and_then(|l| l.local_addr().ok()),
        shutting_down: AtomicBool::new(false),
        active: AtomicUsize::new(0),
    });
    info!(
        "flint serve: listening on unix:{}{}",
        args.socket.display(),
        tcp.as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| format!(" and tcp:{a}"))
            .unwrap_or_default()
    );
    let result = listen::accept_loop(&shared, &unix, tcp.as_ref(), signal_fd);
    shared.shutting_down.store(true, Ordering::SeqCst);
    unix.remove_if_ours();
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    api::instances::stop(&shared.ctx);
    info!("flint serve: stopped");
    result
}
