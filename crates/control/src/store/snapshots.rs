//! Snapshots: a point-in-time copy of a volume's file under the data dir.

use rusqlite::{OptionalExtension, Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx, bad_value, now_ms, read_error};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<SnapshotState> {
        [
            SnapshotState::Pending,
            SnapshotState::Completed,
            SnapshotState::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub id: String,
    pub volume_id: String,
    pub volume_size_gib: u64,
    pub description: String,
    pub path: String,
    pub state: SnapshotState,
    /// Percent done.
    pub progress: u8,
    pub state_message: Option<String>,
    pub start_ms: i64,
    pub completion_ms: Option<i64>,
}

const COLUMNS: &str = "id, volume_id, volume_size_gib, description, path, state, progress, \
     state_message, start_ms, completion_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    let state: String = row.get("state")?;
    let size: i64 = row.get("volume_size_gib")?;
    let progress: i64 = row.get("progress")?;
    Ok(SnapshotRecord {
        id: row.get("id")?,
        volume_id: row.get("volume_id")?,
        volume_size_gib: u64::try_from(size).unwrap_or(0),
        description: row.get("description")?,
        path: row.get("path")?,
        state: SnapshotState::parse(&state)
            .ok_or_else(|| bad_value(format!("snapshot state {state:?}")))?,
        progress: u8::try_from(progress.clamp(0, 100)).unwrap_or(0),
        state_message: row.get("state_message")?,
        start_ms: row.get("start_ms")?,
        completion_ms: row.get("completion_ms")?,
    })
}

impl Tx<'_> {
    pub fn insert_snapshot(&self, r: &SnapshotRecord) -> Result<(), StoreError> {
        let size = i64::try_from(r.volume_size_gib)
            .map_err(|_| StoreError::Constraint(format!("snapshot {} size", r.id)))?;
        self.conn
            .execute(
                &format!("INSERT INTO snapshots ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    r.id,
                    r.volume_id,
                    size,
                    r.description,
                    r.path,
                    r.state.as_str(),
                    r.progress,
                    r.state_message,
                    r.start_ms,
                    r.completion_ms,
                ],
            )
            .map_err(|e| StoreError::from_constraint(e, "snapshot", &r.id))?;
        Ok(())
    }

    pub fn get_snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM snapshots WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(read_error("snapshot"))
    }

    /// Snapshots by exact ids (empty: all), oldest first.
    pub fn list_snapshots(&self, ids: &[String]) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("id", ids);
        let sql = format!(
            "SELECT {COLUMNS} FROM snapshots{} ORDER BY start_ms, id",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        rows.collect::<Result<_, _>>()
            .map_err(read_error("snapshot"))
    }

    /// pending → completed (progress 100) or error (with the reason).
    pub fn finish_snapshot(
        &self,
        id: &str,
        state: SnapshotState,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        let progress = if state == SnapshotState::Completed {
            100
        } else {
            0
        };
        let changed = self.conn.execute(
            "UPDATE snapshots SET state = ?2, progress = ?3, state_message = ?4, completion_ms = ?5
             WHERE id = ?1",
            params![id, state.as_str(), progress, message, now_ms()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "snapshot",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    pub fn set_snapshot_progress(&self, id: &str, progress: u8) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE snapshots SET progress = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, progress.min(99)],
        )?;
        Ok(())
    }

    /// Deletes the record and its tags (the caller removes the file).
    pub fn delete_snapshot(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
        if self
            .conn
            .execute("DELETE FROM snapshots WHERE id = ?1", [id])?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "snapshot",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Volumes made from `snapshot_id` that are still being created (a
    /// snapshot they are being copied from cannot go).
    pub fn volumes_creating_from(&self, snapshot_id: &str) -> Result<usize, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM volumes WHERE snapshot_id = ?1 AND state = 'creating'",
            [snapshot_id],
            |row| row.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
