//! EBS-like volumes: files under the data dir, attached to at most one
//! instance at one device name.

use std::fmt;

use rusqlite::{OptionalExtension, Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx, bad_value, now_ms, read_error};

/// EC2's volume states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
}

impl VolumeState {
    const ALL: [VolumeState; 6] = [
        VolumeState::Creating,
        VolumeState::Available,
        VolumeState::InUse,
        VolumeState::Deleting,
        VolumeState::Deleted,
        VolumeState::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Deleted => "deleted",
            VolumeState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<VolumeState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRecord {
    pub id: String,
    pub size_gib: u64,
    /// gp2, gp3, io1, io2, st1, sc1, standard.
    pub volume_type: String,
    pub path: String,
    pub state: VolumeState,
    /// The attachment, if any: instance and device name, both or neither.
    pub instance_id: Option<String>,
    pub device: Option<String>,
    pub delete_on_termination: bool,
    pub created_ms: i64,
    pub attach_time_ms: Option<i64>,
}

const COLUMNS: &str = "id, size_gib, volume_type, path, state, instance_id, device, delete_on_termination, created_ms, attach_time_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<VolumeRecord> {
    let state: String = row.get("state")?;
    let size: i64 = row.get("size_gib")?;
    Ok(VolumeRecord {
        id: row.get("id")?,
        size_gib: u64::try_from(size).unwrap_or(0),
        volume_type: row.get("volume_type")?,
        path: row.get("path")?,
        state: VolumeState::parse(&state)
            .ok_or_else(|| bad_value(format!("volume state {state:?}")))?,
        instance_id: row.get("instance_id")?,
        device: row.get("device")?,
        delete_on_termination: row.get("delete_on_termination")?,
        created_ms: row.get("created_ms")?,
        attach_time_ms: row.get("attach_time_ms")?,
    })
}

impl Tx<'_> {
    /// A root volume is inserted already attached (state in-use, instance
    /// and device set) in the same transaction as its instance.
    pub fn insert_volume(&self, r: &VolumeRecord) -> Result<(), StoreError> {
        let size = i64::try_from(r.size_gib)
            .map_err(|_| StoreError::Constraint(format!("volume {} size", r.id)))?;
        self.conn
            .execute(
                &format!("INSERT INTO volumes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    r.id,
                    size,
                    r.volume_type,
                    r.path,
                    r.state.as_str(),
                    r.instance_id,
                    r.device,
                    r.delete_on_termination,
                    r.created_ms,
                    r.attach_time_ms,
                ],
            )
            .map_err(|e| StoreError::from_constraint(e, "volume", &r.id))?;
        Ok(())
    }

    pub fn get_volume(&self, id: &str) -> Result<Option<VolumeRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM volumes WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(read_error("volume"))
    }

    fn volume(&self, id: &str) -> Result<VolumeRecord, StoreError> {
        self.get_volume(id)?.ok_or_else(|| StoreError::NotFound {
            kind: "volume",
            id: id.to_string(),
        })
    }

    /// Volumes by exact ids and/or attached instance (both empty: all).
    pub fn list_volumes(
        &self,
        ids: &[String],
        instance_ids: &[String],
    ) -> Result<Vec<VolumeRecord>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("id", ids);
        c.any_equal("instance_id", instance_ids);
        let sql = format!(
            "SELECT {COLUMNS} FROM volumes{} ORDER BY created_ms, id",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        rows.collect::<Result<_, _>>().map_err(read_error("volume"))
    }

    /// available → in-use at `device` of `instance_id`. A device name
    /// already in use on that instance is `Duplicate`.
    pub fn attach_volume(
        &self,
        id: &str,
        instance_id: &str,
        device: &str,
        delete_on_termination: bool,
    ) -> Result<(), StoreError> {
        let current = self.volume(id)?.state;
        if current != VolumeState::Available {
            return Err(StoreError::IncorrectVolumeState {
                id: id.to_string(),
                current,
            });
        }
        self.conn
            .execute(
                "UPDATE volumes SET state = 'in-use', instance_id = ?2, device = ?3,
                    delete_on_termination = ?4, attach_time_ms = ?5 WHERE id = ?1",
                params![id, instance_id, device, delete_on_termination, now_ms()],
            )
            .map_err(|e| {
                StoreError::from_constraint(e, "attachment", &format!("{instance_id}:{device}"))
            })?;
        Ok(())
    }

    /// in-use → available.
    pub fn detach_volume(&self, id: &str) -> Result<(), StoreError> {
        let current = self.volume(id)?.state;
        if current != VolumeState::InUse {
            return Err(StoreError::IncorrectVolumeState {
                id: id.to_string(),
                current,
            });
        }
        self.conn.execute(
            "UPDATE volumes SET state = 'available', instance_id = NULL, device = NULL,
                attach_time_ms = NULL WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    pub fn set_volume_state(&self, id: &str, state: VolumeState) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE volumes SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "volume",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Deletes the record and its tags, attached or not (the caller has
    /// removed the file, e.g. a DeleteOnTermination root volume).
    pub fn delete_volume(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
        if self
            .conn
            .execute("DELETE FROM volumes WHERE id = ?1", [id])?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "volume",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}
