//! The daemon's state: one SQLite database, `DATA_DIR/flint.db`.
//!
//! - WAL, so that readers (DescribeInstances) never wait for a writer;
//!   foreign keys on; a busy timeout so that concurrent writers queue
//!   instead of failing.
//! - A versioned schema with forward-only migrations (`schema.rs`).
//! - Every write happens inside [`Store::write`]: one `BEGIN IMMEDIATE`
//!   transaction that commits when the closure returns `Ok` and rolls back
//!   on `Err` (or a panic). IMMEDIATE takes the write lock up front, so two
//!   connections never both read "address free" and both take it; the
//!   unique constraints are the second line of defence.
//! - The operations themselves are methods on [`Tx`], one file per table.
//!
//! A `Store` is one connection: one per thread (they are cheap), or one
//! behind a mutex.

pub mod attachments;
pub mod images;
pub mod instances;
pub mod ips;
pub mod key_pairs;
pub mod modifications;
mod pattern;
pub mod processes;
pub mod schema;
pub mod snapshots;
pub mod tags;
pub mod volumes;

#[cfg(test)]
pub(crate) mod tests;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, ffi};
use thiserror::Error;

use instances::InstanceState;
use volumes::VolumeState;

pub const DB_FILE: &str = "flint.db";
/// How long a writer waits for another writer's transaction to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database has schema version {found}, newer than this flint ({supported}); \
         use a newer flint or another --data-dir"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    Duplicate { kind: &'static str, id: String },
    #[error("{what} refers to something that does not exist")]
    MissingReference { what: String },
    #[error("constraint violated: {0}")]
    Constraint(String),
    #[error("instance {id} is {current}, which does not allow this")]
    IncorrectInstanceState { id: String, current: InstanceState },
    #[error("volume {id} is {current}, which does not allow this")]
    IncorrectVolumeState { id: String, current: VolumeState },
    #[error("client token {token:?} was used by a request with other parameters")]
    IdempotentMismatch { token: String },
    #[error("subnet {subnet} has no free address")]
    SubnetFull { subnet: String },
    #[error("address {ip} is already allocated in subnet {subnet}")]
    AddressInUse { subnet: String, ip: String },
    #[error("address {ip} is not a usable address of subnet {subnet}")]
    AddressOutsideSubnet { subnet: String, ip: String },
    #[error("invalid subnet {0:?}: expected A.B.C.D/16..28 with no host bits set")]
    InvalidSubnet(String),
    #[error("{resource} would have more than {limit} tags")]
    TagLimitExceeded { resource: String, limit: usize },
    /// A stored value this binary cannot read back (edited by hand, or a
    /// bug): reported, never unwrapped.
    #[error("corrupt {what} in the database: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

impl StoreError {
    /// Turns a constraint failure of an insert or update into a typed
    /// error about `kind`/`id`; anything else passes through.
    fn from_constraint(e: rusqlite::Error, kind: &'static str, id: &str) -> StoreError {
        match e.sqlite_error() {
            Some(err) if err.code == ErrorCode::ConstraintViolation => match err.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    StoreError::Duplicate {
                        kind,
                        id: id.to_string(),
                    }
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::MissingReference {
                    what: format!("{kind} {id}"),
                },
                _ => StoreError::Constraint(format!("{kind} {id}: {e}")),
            },
            _ => StoreError::Sqlite(e),
        }
    }
}

/// A stored value a row decoder cannot accept; [`read_error`] turns it
/// into [`StoreError::Corrupt`].
fn bad_value(detail: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, detail.into())
}

/// Maps row-decoding failures (ours from [`bad_value`], or SQLite values of
/// the wrong type) to `Corrupt` about `what`.
fn read_error(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, detail) => StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        },
        rusqlite::Error::InvalidColumnType(_, column, found) => StoreError::Corrupt {
            what,
            detail: format!("column {column} holds {found}"),
        },
        rusqlite::Error::IntegralValueOutOfRange(_, value) => StoreError::Corrupt {
            what,
            detail: format!("integer {value} out of range"),
        },
        e => StoreError::Sqlite(e),
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `data_dir/flint.db` and brings its schema
    /// up to date.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_with_migrations(data_dir, schema::MIGRATIONS)
    }

    fn open_with_migrations(data_dir: &Path, migrations: &[&str]) -> Result<Store, StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let path = data_dir.join(DB_FILE);
        // Created here with 0600 because SQLite would use the umask, and the
        // database holds user data; SQLite gives -wal/-shm the same mode.
        // Only when missing: closing any fd of the file drops every POSIX
        // lock this process holds on it, SQLite's included, so opening a
        // second connection this way let another process take the database
        // for unused, checkpoint and delete the live WAL under our feet.
        if std::fs::symlink_metadata(&path).is_err() {
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Constraint(format!(
                "{}: cannot switch to WAL (journal mode is {mode})",
                path.display()
            )));
        }
        // FULL: a state change the API acknowledged survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::migrate(&conn, migrations)?;
        Ok(Store { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::current_version(&self.conn)
    }

    /// Runs `f` in one write transaction: committed if it returns `Ok`,
    /// rolled back if it returns `Err`. The error type is the caller's, so
    /// an API handler can fail with its own error mid-transaction.
    pub fn write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let value = f(&Tx { conn: &tx })?;
        // Deferred foreign keys are checked here.
        tx.commit()
            .map_err(|e| StoreError::from_constraint(e, "transaction", "commit"))?;
        Ok(value)
    }

    /// Runs `f` on one consistent snapshot, without taking the write lock.
    pub fn read<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let value = f(&Tx { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(value)
    }
}

/// The operations, available only inside a transaction. Defined per table
/// in the sibling files.
pub struct Tx<'c> {
    conn: &'c Connection,
}
