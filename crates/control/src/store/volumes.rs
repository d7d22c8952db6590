//! EBS-like volumes: files under the data dir, attached to at most one
//! instance at one device name. The attachment has a state of its own
//! (attaching → attached → detaching), because hot-plug into a running VM
//! takes the guest's cooperation; attachments.rs moves it.

use std::fmt;

use rusqlite::{OptionalExtension, Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx, bad_value, now_ms, read_error};

/// EC2's volume states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VolumeState {
    #[default]
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

/// EC2's attachment states, as stored ("detached" is never stored: a
/// detached volume has no attachment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
}

impl AttachmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Attaching => "attaching",
            AttachmentState::Attached => "attached",
            AttachmentState::Detaching => "detaching",
        }
    }

    pub fn parse(text: &str) -> Option<AttachmentState> {
        [
            AttachmentState::Attaching,
            AttachmentState::Attached,
            AttachmentState::Detaching,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeRecord {
    pub id: String,
    pub size_gib: u64,
    /// gp2, gp3, io1, io2, st1, sc1, standard.
    pub volume_type: String,
    /// Provisioned IOPS (gp3, io1, io2); None: the type's default.
    pub iops: Option<u32>,
    /// Provisioned throughput in MiB/s (gp3); None: the type's default.
    pub throughput: Option<u32>,
    pub snapshot_id: Option<String>,
    pub path: String,
    pub state: VolumeState,
    /// The attachment, if any: instance, device name and state, all or none.
    pub instance_id: Option<String>,
    pub device: Option<String>,
    pub attachment_state: Option<AttachmentState>,
    pub delete_on_termination: bool,
    pub created_ms: i64,
    pub attach_time_ms: Option<i64>,
    pub state_changed_ms: i64,
    pub client_token: Option<String>,
    pub request_hash: Option<String>,
}

impl VolumeRecord {
    /// Whether the volume is attached to `instance_id` (in any attachment
    /// state).
    pub fn is_on(&self, instance_id: &str) -> bool {
        self.instance_id.as_deref() == Some(instance_id)
    }
}

pub(super) const COLUMNS: &str = "id, size_gib, volume_type, iops, throughput, snapshot_id, path, state, \
     instance_id, device, attachment_state, delete_on_termination, created_ms, attach_time_ms, \
     state_changed_ms, client_token, request_hash";

fn opt_u32(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<u32>> {
    let value: Option<i64> = row.get(column)?;
    value
        .map(|v| u32::try_from(v).map_err(|_| bad_value(format!("{column} {v}"))))
        .transpose()
}

pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<VolumeRecord> {
    let state: String = row.get("state")?;
    let size: i64 = row.get("size_gib")?;
    let attachment: Option<String> = row.get("attachment_state")?;
    let created_ms: i64 = row.get("created_ms")?;
    let attachment_state = match attachment {
        Some(text) => Some(
            AttachmentState::parse(&text)
                .ok_or_else(|| bad_value(format!("attachment state {text:?}")))?,
        ),
        None => None,
    };
    Ok(VolumeRecord {
        id: row.get("id")?,
        size_gib: u64::try_from(size).unwrap_or(0),
        volume_type: row.get("volume_type")?,
        iops: opt_u32(row, "iops")?,
        throughput: opt_u32(row, "throughput")?,
        snapshot_id: row.get("snapshot_id")?,
        path: row.get("path")?,
        state: VolumeState::parse(&state)
            .ok_or_else(|| bad_value(format!("volume state {state:?}")))?,
        instance_id: row.get("instance_id")?,
        device: row.get("device")?,
        attachment_state,
        delete_on_termination: row.get("delete_on_termination")?,
        created_ms,
        attach_time_ms: row.get("attach_time_ms")?,
        state_changed_ms: row
            .get::<_, Option<i64>>("state_changed_ms")?
            .unwrap_or(created_ms),
        client_token: row.get("client_token")?,
        request_hash: row.get("request_hash")?,
    })
}

impl Tx<'_> {
    /// A root volume is inserted already attached (state in-use, instance,
    /// device and attachment state set) in the same transaction as its
    /// instance.
    pub fn insert_volume(&self, r: &VolumeRecord) -> Result<(), StoreError> {
        let size = i64::try_from(r.size_gib)
            .map_err(|_| StoreError::Constraint(format!("volume {} size", r.id)))?;
        let attachment = match (&r.instance_id, r.attachment_state) {
            (Some(_), None) => Some(AttachmentState::Attached),
            (_, state) => state,
        };
        self.conn
            .execute(
                &format!(
                    "INSERT INTO volumes ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                ),
                params![
                    r.id,
                    size,
                    r.volume_type,
                    r.iops,
                    r.throughput,
                    r.snapshot_id,
                    r.path,
                    r.state.as_str(),
                    r.instance_id,
                    r.device,
                    attachment.map(AttachmentState::as_str),
                    r.delete_on_termination,
                    r.created_ms,
                    r.attach_time_ms,
                    r.created_ms,
                    r.client_token,
                    r.request_hash,
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

    pub(super) fn volume(&self, id: &str) -> Result<VolumeRecord, StoreError> {
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
        self.select_volumes(&c)
    }

    /// Volumes in one of `states` (for the daemon's restart recovery).
    pub fn volumes_in_state(
        &self,
        states: &[VolumeState],
    ) -> Result<Vec<VolumeRecord>, StoreError> {
        let names: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
        let mut c = Conditions::default();
        c.any_equal("state", &names);
        self.select_volumes(&c)
    }

    /// The volumes matching `c`, oldest first.
    fn select_volumes(&self, c: &Conditions) -> Result<Vec<VolumeRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM volumes{} ORDER BY created_ms, id",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        rows.collect::<Result<_, _>>().map_err(read_error("volume"))
    }

    /// The volume an earlier CreateVolume made with `token`, if any; one
    /// made by a request with other parameters is `IdempotentMismatch`.
    pub fn volume_by_client_token(
        &self,
        token: &str,
        request_hash: &str,
    ) -> Result<Option<VolumeRecord>, StoreError> {
        let found = self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM volumes WHERE client_token = ?1"),
                [token],
                from_row,
            )
            .optional()
            .map_err(read_error("volume"))?;
        match found {
            Some(v) if v.request_hash.as_deref() != Some(request_hash) => {
                Err(StoreError::IdempotentMismatch {
                    token: token.to_string(),
                })
            }
            other => Ok(other),
        }
    }

    /// Moves the volume from one of `from` to `to`.
    pub fn transition_volume(
        &self,
        id: &str,
        from: &[VolumeState],
        to: VolumeState,
    ) -> Result<(), StoreError> {
        let current = self.volume(id)?.state;
        if !from.contains(&current) {
            return Err(StoreError::IncorrectVolumeState {
                id: id.to_string(),
                current,
            });
        }
        self.set_volume_state(id, to)
    }

    pub fn set_volume_state(&self, id: &str, state: VolumeState) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE volumes SET state = ?2, state_changed_ms = ?3 WHERE id = ?1",
            params![id, state.as_str(), now_ms()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "volume",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// ModifyVolume's new size, type, IOPS and throughput.
    pub fn set_volume_spec(
        &self,
        id: &str,
        size_gib: u64,
        volume_type: &str,
        iops: Option<u32>,
        throughput: Option<u32>,
    ) -> Result<(), StoreError> {
        let size = i64::try_from(size_gib)
            .map_err(|_| StoreError::Constraint(format!("volume {id} size")))?;
        let changed = self.conn.execute(
            "UPDATE volumes SET size_gib = ?2, volume_type = ?3, iops = ?4, throughput = ?5
             WHERE id = ?1",
            params![id, size, volume_type, iops, throughput],
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
        self.conn.execute(
            "DELETE FROM volume_modifications WHERE volume_id = ?1",
            [id],
        )?;
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

    /// Deletes the records of volumes deleted before `before_ms` (they stay
    /// describable as `deleted` for a while, as on EC2).
    pub fn purge_deleted_volumes(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = self
            .conn
            .prepare(
                "SELECT id FROM volumes WHERE state = 'deleted' AND state_changed_ms < ?1 ORDER BY id",
            )?
            .query_map([before_ms], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in &ids {
            self.delete_volume(id)?;
        }
        Ok(ids)
    }
}
