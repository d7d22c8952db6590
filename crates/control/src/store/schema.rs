//! The schema and its migrations. Migration N (1-based) turns version N-1
//! into version N; each runs in its own IMMEDIATE transaction together
//! with its row in `schema_version`, so a crash leaves the database at
//! one version or the next, and two processes opening an old database at
//! once migrate it once. Migrations are append-only: never edit one that
//! has shipped, add the next.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::{StoreError, now_ms};

/// Version 1: every table of the first daemon.
const V1: &str = "
CREATE TABLE images (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    location    TEXT NOT NULL,
    path        TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
    boot_mode   TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE instances (
    -- Insertion order, the stable cursor for pagination.
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    reservation_id      TEXT NOT NULL,
    image_id            TEXT NOT NULL,
    instance_type       TEXT NOT NULL,
    state_code          INTEGER NOT NULL CHECK (state_code IN (0, 16, 32, 48, 64, 80)),
    state_name          TEXT NOT NULL,
    state_reason_code   TEXT,
    state_reason_message TEXT,
    state_changed_ms    INTEGER NOT NULL,
    private_ip          TEXT,
    mac                 TEXT NOT NULL UNIQUE,
    key_name            TEXT,
    user_data           BLOB,
    shutdown_behavior   TEXT NOT NULL CHECK (shutdown_behavior IN ('stop', 'terminate')),
    metadata_options    TEXT NOT NULL,
    launch_index        INTEGER NOT NULL CHECK (launch_index >= 0),
    launch_time_ms      INTEGER NOT NULL,
    client_token        TEXT,
    request_hash        TEXT,
    pid                 INTEGER,
    vmm_socket          TEXT,
    terminated_at_ms    INTEGER
);
CREATE INDEX instances_by_client_token ON instances (client_token) WHERE client_token IS NOT NULL;
CREATE INDEX instances_by_state ON instances (state_code);

CREATE TABLE volumes (
    id                    TEXT PRIMARY KEY NOT NULL,
    size_gib              INTEGER NOT NULL CHECK (size_gib > 0),
    volume_type           TEXT NOT NULL,
    path                  TEXT NOT NULL,
    state                 TEXT NOT NULL,
    -- No ON DELETE action: an instance row goes only after its volumes are
    -- detached or deleted (delete_instance does that), never silently.
    instance_id           TEXT REFERENCES instances (id) DEFERRABLE INITIALLY DEFERRED,
    device                TEXT,
    delete_on_termination INTEGER NOT NULL CHECK (delete_on_termination IN (0, 1)),
    created_ms            INTEGER NOT NULL,
    attach_time_ms        INTEGER,
    CHECK ((instance_id IS NULL) = (device IS NULL))
);
CREATE UNIQUE INDEX volumes_by_attachment ON volumes (instance_id, device) WHERE instance_id IS NOT NULL;

CREATE TABLE key_pairs (
    name        TEXT PRIMARY KEY NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    key_type    TEXT NOT NULL CHECK (key_type IN ('rsa', 'ed25519')),
    fingerprint TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

-- Tags of any resource kind, so no foreign key: deleting a resource
-- deletes its tags in the same transaction (see tags.rs).
CREATE TABLE tags (
    resource_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (resource_id, key)
);
CREATE INDEX tags_by_key ON tags (key, value);

-- One row per address in use. The primary key is what makes a double
-- allocation impossible, whatever the code above it does.
CREATE TABLE ip_allocations (
    subnet       TEXT NOT NULL,
    ip           TEXT NOT NULL,
    instance_id  TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE
                     DEFERRABLE INITIALLY DEFERRED,
    allocated_ms INTEGER NOT NULL,
    PRIMARY KEY (subnet, ip)
);
CREATE INDEX ip_allocations_by_instance ON ip_allocations (instance_id);
";

/// Version 2: what the supervisor needs to re-adopt a VM process after a
/// daemon restart: the process's start time (clock ticks since boot, field
/// 22 of /proc/PID/stat), so that a recycled pid is never mistaken for it.
const V2: &str = "
ALTER TABLE instances ADD COLUMN vmm_start_ticks INTEGER;
";

/// Version 3: EBS volumes of their own (CreateVolume & co.): provisioned
/// IOPS and throughput, the snapshot a volume was made from, the
/// attachment's own state (attaching / attached / detaching: hot-plug is
/// not instant), CreateVolume's ClientToken; snapshots; the history of
/// ModifyVolume requests.
const V3: &str = "
ALTER TABLE volumes ADD COLUMN iops INTEGER CHECK (iops IS NULL OR iops > 0);
ALTER TABLE volumes ADD COLUMN throughput INTEGER CHECK (throughput IS NULL OR throughput > 0);
ALTER TABLE volumes ADD COLUMN snapshot_id TEXT;
ALTER TABLE volumes ADD COLUMN attachment_state TEXT
    CHECK (attachment_state IS NULL OR attachment_state IN ('attaching', 'attached', 'detaching'));
ALTER TABLE volumes ADD COLUMN client_token TEXT;
ALTER TABLE volumes ADD COLUMN request_hash TEXT;
ALTER TABLE volumes ADD COLUMN state_changed_ms INTEGER;
UPDATE volumes SET attachment_state = 'attached' WHERE instance_id IS NOT NULL;
UPDATE volumes SET state_changed_ms = created_ms;
CREATE INDEX volumes_by_client_token ON volumes (client_token) WHERE client_token IS NOT NULL;

-- No reference to volumes: a snapshot outlives the volume it was taken of.
CREATE TABLE snapshots (
    id               TEXT PRIMARY KEY NOT NULL,
    volume_id        TEXT NOT NULL,
    volume_size_gib  INTEGER NOT NULL CHECK (volume_size_gib > 0),
    description      TEXT NOT NULL,
    path             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'completed', 'error')),
    progress         INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    state_message    TEXT,
    start_ms         INTEGER NOT NULL,
    completion_ms    INTEGER
);

CREATE TABLE volume_modifications (
    -- Insertion order: the latest row of a volume is its current one.
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    volume_id            TEXT NOT NULL,
    state                TEXT NOT NULL
        CHECK (state IN ('modifying', 'optimizing', 'completed', 'failed')),
    status_message       TEXT,
    original_size_gib    INTEGER NOT NULL,
    target_size_gib      INTEGER NOT NULL,
    original_type        TEXT NOT NULL,
    target_type          TEXT NOT NULL,
    original_iops        INTEGER,
    target_iops          INTEGER,
    original_throughput  INTEGER,
    target_throughput    INTEGER,
    progress             INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    start_ms             INTEGER NOT NULL,
    end_ms               INTEGER
);
CREATE INDEX volume_modifications_by_volume ON volume_modifications (volume_id, seq);
";

/// Version 4: the launch journal. Written before a VMM is spawned and
/// cleared when its pid is recorded: a daemon that dies in between leaves
/// the token, and the next one finds the VMM by it (in the process's
/// environment) instead of launching a second VMM on the same volumes.
const V4: &str = "
ALTER TABLE instances ADD COLUMN launch_token TEXT;
";

pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    let has_table = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !has_table {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )?)
}

/// Brings the database to `migrations.len()`, or refuses one that is newer.
pub fn migrate(conn: &Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let supported = migrations.len() as i64;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    INTEGER PRIMARY KEY NOT NULL,
            applied_ms INTEGER NOT NULL
        )",
    )?;
    let found = current_version(conn)?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (index, sql) in migrations.iter().enumerate() {
        let version = index as i64 + 1;
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        // Re-read under the write lock: another process may have just
        // applied this one.
        let current = current_version(&tx)?;
        if current > supported {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported,
            });
        }
        if current >= version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
            (version, now_ms()),
        )?;
        tx.commit()?;
    }
    Ok(())
}
