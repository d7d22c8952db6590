//! The EC2 actions: a registry from `Action` name to handler, and the
//! context every handler runs in.
//!
//! # Adding an action
//!
//! A handler is a plain function `fn(&Call<'_>) -> Result<Vec<u8>, Ec2Error>`
//! returning the XML reply (built with [`ec2_response`]). It is registered
//! with an [`ActionSpec`] that lists the wire parameters it understands
//! (patterns as [`Ec2Request::reject_unknown`] takes them: `InstanceId.N`,
//! `Filter.N.Name`, `Filter.N.Value.N`, …) and how DryRun is handled:
//!
//! ```text
//! pub fn register(r: &mut Registry) {
//!     r.add(ActionSpec {
//!         name: "StopInstances",
//!         params: &["InstanceId.N", "Force", "Hibernate"],
//!         dry_run: DryRun::Handler,   // handler calls call.check_dry_run()?
//!         handler: stop_instances,
//!     });
//! }
//! ```
//!
//! The dispatcher rejects unknown parameters (`DryRun` is added to the
//! known list unless `dry_run` is [`DryRun::NotAccepted`]), answers
//! `DryRun=true` with `DryRunOperation` (412) itself for [`DryRun::Generic`]
//! actions, and answers unknown actions with `InvalidAction`.
//!
//! # The shared context
//!
//! [`Context`] is built once by `flint serve` and shared (behind an `Arc`)
//! by every connection thread:
//!
//! - `ctx.store()` — a [`Store`] connection from a small pool (one SQLite
//!   connection per concurrent request; returned to the pool on drop).
//! - `ctx.data_dir` and the layout helpers `images_dir()`, `volumes_dir()`,
//!   `instances_dir()`, `tmp_dir()`.
//! - `ctx.config` — daemon settings ([`Config`]: region, AZ, subnet,
//!   bridge, owner id, memory cap for instances).
//! - `ctx.supervisor()` — the VM supervisor, built once from `flint
//!   serve`'s options by the `instances::start` hook before the daemon
//!   accepts connections.
//!
//! Shared helpers for handlers: [`filters`] (EC2 `Filter.N` parsing and
//! wildcard matching), [`paging`] (MaxResults/NextToken),
//! [`crate::catalog::instance_type`] (catalog lookup).

pub mod codec;
pub mod filters;
pub mod images;
pub mod import;
pub mod instance_types;
pub mod instances;
pub mod key_pairs;
pub mod keygen;
pub mod meta;
pub mod paging;
pub mod tags;
pub mod volumes;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::store::{Store, StoreError};
use super::supervisor::Supervisor;
use super::supervisor::admission::AdmissionError;
use ec2_wire::error::Ec2Error;
use ec2_wire::request::Ec2Request;
use ec2_wire::response::ResponseError;
use ec2_wire::sigv4::Authentication;

pub use ec2_wire::response::{XmlWriter, ec2_response};

/// Daemon settings the handlers need. `flint serve` fills it from its
/// command line; add fields here (with a default in `Default`) as new
/// options appear.
#[derive(Clone, Debug)]
pub struct Config {
    /// The one region this host is (`DescribeRegions`, SigV4 scope is not
    /// checked against it).
    pub region: String,
    /// The default "VPC" subnet instances get addresses from (CIDR).
    pub subnet: String,
    /// The host bridge the instances' TAPs join.
    pub bridge: String,
    /// The account id reported as image / reservation owner.
    pub owner_id: String,
    /// If set, no instance gets more guest RAM than this, whatever its
    /// type says (small hosts, the emulated test host).
    pub max_instance_memory_mib: Option<u32>,
    /// Volumes use O_DIRECT (`flint serve --direct-io`).
    pub direct_io: bool,
    /// NAT for the subnet (`--nat`).
    pub nat: bool,
    /// Graceful stop / terminate timeouts (`--stop-timeout`,
    /// `--terminate-timeout`).
    pub stop_timeout_s: u64,
    pub terminate_timeout_s: u64,
    /// The VMM program (`--vmm-command`); None: this binary's `vmm`.
    pub vmm_command: Option<Vec<String>>,
    /// Jail the VMMs (`flint serve` does unless `--no-jail`).
    pub jail: Option<crate::supervisor::jail::JailSettings>,
    /// Where RegisterImage may read image files from (`--import-dir`);
    /// None: `DATA_DIR/import`.
    pub import_dir: Option<PathBuf>,
    /// Cap on each of an instance's two console log files
    /// (`--console-log-max`); None: the VMM's default (1 MiB).
    pub console_log_max_bytes: Option<u64>,
    /// `--memory-overcommit`, `--vcpu-overcommit`.
    pub admission: crate::supervisor::admission::AdmissionPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: "us-east-1".into(),
            subnet: "10.0.0.0/24".into(),
            bridge: "flint0".into(),
            owner_id: "000000000000".into(),
            max_instance_memory_mib: None,
            direct_io: false,
            nat: false,
            stop_timeout_s: 300,
            terminate_timeout_s: 30,
            vmm_command: None,
            jail: None,
            import_dir: None,
            console_log_max_bytes: None,
            admission: Default::default(),
        }
    }
}

impl Config {
    /// The single availability zone: `<region>a`.
    pub fn availability_zone(&self) -> String {
        format!("{}a", self.region)
    }
}

/// Stores kept for reuse; more concurrent requests open more connections,
/// which are closed instead of pooled.
const STORE_POOL_MAX: usize = 8;

pub struct Context {
    pub data_dir: PathBuf,
    pub config: Config,
    stores: Mutex<Vec<Store>>,
    /// Filled once by `instances::start`; see the module docs.
    pub supervisor: OnceLock<Arc<Supervisor>>,
}

impl Context {
    /// Opens the store once (creating and migrating the database, so that
    /// a bad data dir fails at start, not at the first request) and the
    /// data dir's sub-directories, all private to root (0700 directories,
    /// 0600 files: see [`crate::private`]); a data dir from an older Flint
    /// is tightened here.
    pub fn open(data_dir: &Path, config: Config) -> Result<Context, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        crate::private::create_private_dir(data_dir).map_err(io(data_dir))?;
        let store = Store::open(data_dir)?;
        let ctx = Context {
            data_dir: data_dir.to_path_buf(),
            config,
            stores: Mutex::new(vec![store]),
            supervisor: OnceLock::new(),
        };
        for dir in [
            ctx.images_dir(),
            ctx.volumes_dir(),
            ctx.instances_dir(),
            ctx.tmp_dir(),
        ] {
            crate::private::create_private_dir(&dir).map_err(io(&dir))?;
        }
        let fixed = crate::private::lock_down(data_dir).map_err(io(data_dir))?;
        if fixed != crate::private::LockDown::default() {
            tracing::info!(
                "flint serve: made {} directories and {} files under {} private to root",
                fixed.dirs_fixed,
                fixed.files_fixed,
                data_dir.display()
            );
        }
        // An import dir of the administrator's choosing is created if
        // missing but otherwise left as it is (it is outside the data
        // dir and may be shared with whatever fills it).
        let import = ctx.import_dir();
        if !import.exists() {
            crate::private::create_private_dir(&import).map_err(io(&import))?;
        }
        Ok(ctx)
    }

    /// The only directory RegisterImage reads image files from.
    pub fn import_dir(&self) -> PathBuf {
        self.config
            .import_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("import"))
    }

    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.data_dir.join("volumes")
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.data_dir.join("instances")
    }

    /// Scratch space on the same filesystem as the images (renames into
    /// place are atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }

    /// A store connection for the duration of one request.
    pub fn store(&self) -> Result<StoreGuard<'_>, Ec2Error> {
        let pooled = self.stores.lock().map(|mut v| v.pop()).unwrap_or(None);
        let store = match pooled {
            Some(store) => store,
            None => Store::open(&self.data_dir)?,
        };
        Ok(StoreGuard {
            ctx: self,
            store: Some(store),
        })
    }

    /// The supervisor, once `instances::start` has built it.
    pub fn supervisor(&self) -> Option<Arc<Supervisor>> {
        self.supervisor.get().cloned()
    }
}

/// A pooled [`Store`]; derefs to it and goes back to the pool on drop.
pub struct StoreGuard<'c> {
    ctx: &'c Context,
    store: Option<Store>,
}

impl Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        // Only `drop` takes it out.
        self.store.as_ref().expect("store present until drop")
    }
}

impl DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("store present until drop")
    }
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if let (Some(store), Ok(mut pool)) = (self.store.take(), self.ctx.stores.lock())
            && pool.len() < STORE_POOL_MAX
        {
            pool.push(store);
        }
    }
}

/// Store failures as EC2 errors. Handlers map the ones they expect (a
/// duplicate name, a missing id) to the precise EC2 code themselves; this
/// is the fallback.
impl From<StoreError> for Ec2Error {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::IncorrectInstanceState { id, current } => {
                Ec2Error::incorrect_instance_state(id, current.name(), "changed")
            }
            StoreError::IdempotentMismatch { token } => {
                Ec2Error::idempotent_parameter_mismatch(token)
            }
            StoreError::SubnetFull { subnet } => Ec2Error::insufficient_free_addresses(subnet),
            StoreError::TagLimitExceeded { resource, limit } => {
                Ec2Error::tag_limit_exceeded(resource, *limit)
            }
            StoreError::IncorrectVolumeState { .. } => Ec2Error::incorrect_state(e.to_string()),
            StoreError::NotFound { .. }
            | StoreError::Duplicate { .. }
            | StoreError::MissingReference { .. }
            | StoreError::AddressInUse { .. }
            | StoreError::AddressOutsideSubnet { .. }
            | StoreError::InvalidSubnet(_) => {
                Ec2Error::new("InvalidParameterValue", 400, e.to_string())
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(err, _))
                if err.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                Ec2Error::request_limit_exceeded()
            }
            StoreError::Sqlite(_)
            | StoreError::Io { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Constraint(_) => Ec2Error::internal_error(e.to_string()),
        }
    }
}

/// An admission refusal as EC2 says it: `refused` builds the error for
/// running out of room (InsufficientInstanceCapacity & co.); the store's
/// and the host's own failures map as usual.
pub fn admission_error(e: AdmissionError, refused: impl Fn(String) -> Ec2Error) -> Ec2Error {
    match e {
        AdmissionError::Store(e) => e.into(),
        AdmissionError::UnknownType(t) => Ec2Error::invalid_parameter_value(
            "InstanceType",
            &t,
            "The instance type is not supported on this host.",
        ),
        AdmissionError::Statvfs { .. } => Ec2Error::internal_error(e.to_string()),
        AdmissionError::Instances { .. } | AdmissionError::Disk { .. } => refused(e.to_string()),
    }
}

/// A reply that could not be rendered is a bug on our side.
pub fn render_error(e: ResponseError) -> Ec2Error {
    Ec2Error::internal_error(format!("cannot render the reply: {e}"))
}

/// How an action treats `DryRun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    /// The dispatcher answers `DryRun=true` with `DryRunOperation` once the
    /// parameters are known to be recognised.
    Generic,
    /// The handler validates first and calls [`Call::check_dry_run`] just
    /// before it would change anything.
    Handler,
    /// The action has no DryRun parameter.
    NotAccepted,
}

pub type Handler = fn(&Call<'_>) -> Result<Vec<u8>, Ec2Error>;

#[derive(Clone, Copy)]
pub struct ActionSpec {
    pub name: &'static str,
    /// Known wire parameters, besides `DryRun`.
    pub params: &'static [&'static str],
    pub dry_run: DryRun,
    pub handler: Handler,
}

/// One request being handled.
pub struct Call<'a> {
    pub ctx: &'a Context,
    pub req: &'a Ec2Request,
    pub request_id: &'a str,
    pub auth: &'a Authentication,
}

impl Call<'_> {
    pub fn action(&self) -> &str {
        self.req.action()
    }

    /// `Err(DryRunOperation)` if the client sent `DryRun=true`.
    pub fn check_dry_run(&self) -> Result<(), Ec2Error> {
        if self.req.bool("DryRun")?.unwrap_or(false) {
            return Err(Ec2Error::dry_run_operation());
        }
        Ok(())
    }

    /// A digest of the request's parameters but the token and DryRun: the
    /// same token with other parameters is IdempotentParameterMismatch.
    pub fn request_hash(&self) -> String {
        let mut text = String::new();
        for name in self.req.param_names() {
            if name == "ClientToken" || name == "DryRun" {
                continue;
            }
            text.push_str(name);
            text.push('=');
            text.push_str(self.req.string(name).unwrap_or(""));
            text.push('\n');
        }
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The success reply for this action.
    pub fn reply(&self, body: impl FnOnce(&mut XmlWriter)) -> Result<Vec<u8>, Ec2Error> {
        ec2_response(self.req.action(), self.request_id, body).map_err(render_error)
    }
}

#[derive(Default)]
pub struct Registry {
    actions: HashMap<&'static str, ActionSpec>,
}

impl Registry {
    /// Every action Flint implements.
    pub fn standard() -> Registry {
        let mut r = Registry::default();
        images::register(&mut r);
        key_pairs::register(&mut r);
        tags::register(&mut r);
        meta::register(&mut r);
        instance_types::register(&mut r);
        instances::register(&mut r);
        volumes::register(&mut r);
        r
    }

    /// Adds an action; a second registration of a name replaces the first
    /// (so a stand-in can be overridden in tests).
    pub fn add(&mut self, spec: ActionSpec) {
        self.actions.insert(spec.name, spec);
    }

    pub fn get(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.actions.keys().copied()
    }

    /// Runs one request: finds the action, checks its parameters and
    /// DryRun, calls the handler.
    pub fn dispatch(&self, call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
        let spec = self
            .get(call.req.action())
            .ok_or_else(|| Ec2Error::invalid_action(call.req.action()))?;
        if spec.dry_run == DryRun::NotAccepted {
            call.req.reject_unknown(spec.params)?;
        } else {
            let mut known: Vec<&str> = Vec::with_capacity(spec.params.len() + 1);
            known.extend_from_slice(spec.params);
            known.push("DryRun");
            call.req.reject_unknown(&known)?;
            if spec.dry_run == DryRun::Generic {
                call.check_dry_run()?;
            } else {
                // Still a bad boolean is an error before the handler runs.
                call.req.bool("DryRun")?;
            }
        }
        (spec.handler)(call)
    }
}
