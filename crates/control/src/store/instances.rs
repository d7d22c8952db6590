//! Instance records and their state machine.

use std::fmt;
use std::net::Ipv4Addr;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx, bad_value, now_ms, read_error};

/// EC2's instance states, with EC2's codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub const ALL: [InstanceState; 6] = [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::ShuttingDown,
        InstanceState::Terminated,
        InstanceState::Stopping,
        InstanceState::Stopped,
    ];

    pub fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    pub fn from_code(code: i64) -> Option<InstanceState> {
        Self::ALL.into_iter().find(|s| i64::from(s.code()) == code)
    }

    pub fn from_name(name: &str) -> Option<InstanceState> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// EC2's `InstanceInitiatedShutdownBehavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownBehavior {
    Stop,
    Terminate,
}

impl ShutdownBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownBehavior::Stop => "stop",
            ShutdownBehavior::Terminate => "terminate",
        }
    }

    pub fn parse(text: &str) -> Option<ShutdownBehavior> {
        match text {
            "stop" => Some(ShutdownBehavior::Stop),
            "terminate" => Some(ShutdownBehavior::Terminate),
            _ => None,
        }
    }
}

/// EC2's `StateReason` (e.g. `Client.UserInitiatedShutdown`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRecord {
    /// Insertion order; the pagination cursor. Ignored on insert.
    pub seq: i64,
    pub id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub state: InstanceState,
    pub state_reason: Option<StateReason>,
    pub state_changed_ms: i64,
    pub private_ip: Option<Ipv4Addr>,
    pub mac: String,
    pub key_name: Option<String>,
    /// Raw bytes, as decoded from the request's base64.
    pub user_data: Option<Vec<u8>>,
    pub shutdown_behavior: ShutdownBehavior,
    pub metadata_options: serde_json::Value,
    pub launch_index: u32,
    pub launch_time_ms: i64,
    pub client_token: Option<String>,
    /// Digest of the RunInstances parameters, to tell a replay from a
    /// different request reusing the token.
    pub request_hash: Option<String>,
    pub pid: Option<i32>,
    pub vmm_socket: Option<String>,
    pub terminated_at_ms: Option<i64>,
}

/// What DescribeInstances can ask for. Empty fields do not filter; string
/// fields other than `ids` are EC2 patterns (`*`, `?`).
#[derive(Clone, Debug, Default)]
pub struct InstanceFilter {
    pub ids: Vec<String>,
    pub states: Vec<String>,
    pub image_ids: Vec<String>,
    pub instance_types: Vec<String>,
    pub reservation_ids: Vec<String>,
    pub private_ips: Vec<String>,
    pub key_names: Vec<String>,
    /// `tag:KEY` filters: the key, and values any of which may match.
    pub tags: Vec<(String, Vec<String>)>,
    pub tag_keys: Vec<String>,
    /// Only records with `seq` greater than this (the last page's last).
    pub after_seq: Option<i64>,
    pub limit: Option<usize>,
}

/// The result of a state transition, as StartInstances & co. report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub id: String,
    pub previous: InstanceState,
    pub current: InstanceState,
}

const COLUMNS: &str = "seq, id, reservation_id, image_id, instance_type, state_code, \
    state_reason_code, state_reason_message, state_changed_ms, private_ip, mac, key_name, \
    user_data, shutdown_behavior, metadata_options, launch_index, launch_time_ms, \
    client_token, request_hash, pid, vmm_socket, terminated_at_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<InstanceRecord> {
    let id: String = row.get("id")?;
    let code: i64 = row.get("state_code")?;
    let state = InstanceState::from_code(code)
        .ok_or_else(|| bad_value(format!("{id}: state code {code}")))?;
    let reason_code: Option<String> = row.get("state_reason_code")?;
    let reason_message: Option<String> = row.get("state_reason_message")?;
    let private_ip: Option<String> = row.get("private_ip")?;
    let private_ip = private_ip
        .map(|ip| {
            ip.parse()
                .map_err(|_| bad_value(format!("{id}: private ip {ip:?}")))
        })
        .transpose()?;
    let behavior: String = row.get("shutdown_behavior")?;
    let metadata: String = row.get("metadata_options")?;
    Ok(InstanceRecord {
        seq: row.get("seq")?,
        reservation_id: row.get("reservation_id")?,
        image_id: row.get("image_id")?,
        instance_type: row.get("instance_type")?,
        state,
        state_reason: reason_code.map(|code| StateReason {
            code,
            message: reason_message.unwrap_or_default(),
        }),
        state_changed_ms: row.get("state_changed_ms")?,
        private_ip,
        mac: row.get("mac")?,
        key_name: row.get("key_name")?,
        user_data: row.get("user_data")?,
        shutdown_behavior: ShutdownBehavior::parse(&behavior)
            .ok_or_else(|| bad_value(format!("{id}: shutdown behavior {behavior:?}")))?,
        metadata_options: serde_json::from_str(&metadata)
            .map_err(|e| bad_value(format!("{id}: metadata options: {e}")))?,
        launch_index: row.get("launch_index")?,
        launch_time_ms: row.get("launch_time_ms")?,
        client_token: row.get("client_token")?,
        request_hash: row.get("request_hash")?,
        pid: row.get("pid")?,
        vmm_socket: row.get("vmm_socket")?,
        terminated_at_ms: row.get("terminated_at_ms")?,
        id,
    })
}

impl Tx<'_> {
    pub fn insert_instance(&self, r: &InstanceRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO instances (id, reservation_id, image_id, instance_type, state_code, state_name,
                    state_reason_code, state_reason_message, state_changed_ms, private_ip, mac, key_name,
                    user_data, shutdown_behavior, metadata_options, launch_index, launch_time_ms,
                    client_token, request_hash, pid, vmm_socket, terminated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                    ?18, ?19, ?20, ?21, ?22)",
                params![
                    r.id,
                    r.reservation_id,
                    r.image_id,
                    r.instance_type,
                    r.state.code(),
                    r.state.name(),
                    r.state_reason.as_ref().map(|s| &s.code),
                    r.state_reason.as_ref().map(|s| &s.message),
                    r.state_changed_ms,
                    r.private_ip.map(|ip| ip.to_string()),
                    r.mac,
                    r.key_name,
                    r.user_data,
                    r.shutdown_behavior.as_str(),
                    r.metadata_options.to_string(),
                    r.launch_index,
                    r.launch_time_ms,
                    r.client_token,
                    r.request_hash,
                    r.pid,
                    r.vmm_socket,
                    r.terminated_at_ms,
                ],
            )
            .map_err(|e| StoreError::from_constraint(e, "instance", &r.id))?;
        Ok(())
    }

    pub fn get_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(read_error("instance"))
    }

    /// The instance, or `NotFound`.
    pub fn instance(&self, id: &str) -> Result<InstanceRecord, StoreError> {
        self.get_instance(id)?.ok_or_else(|| StoreError::NotFound {
            kind: "instance",
            id: id.to_string(),
        })
    }

    /// Matching instances in launch order (`seq`).
    pub fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("id", &filter.ids);
        c.any_pattern("state_name", &filter.states);
        c.any_pattern("image_id", &filter.image_ids);
        c.any_pattern("instance_type", &filter.instance_types);
        c.any_pattern("reservation_id", &filter.reservation_ids);
        c.any_pattern("private_ip", &filter.private_ips);
        c.any_pattern("key_name", &filter.key_names);
        for (key, values) in &filter.tags {
            c.tag_matches("instances.id", key, values);
        }
        c.tag_key_matches("instances.id", &filter.tag_keys);
        if let Some(after) = filter.after_seq {
            c.raw("seq > ?", [Value::Integer(after)]);
        }
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {COLUMNS} FROM instances{} ORDER BY seq LIMIT {limit}",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        rows.collect::<Result<_, _>>()
            .map_err(read_error("instance"))
    }

    /// Moves instance `id` to `to` if it is in one of `from`, in this
    /// transaction. Entering `terminated` stamps `terminated_at_ms`.
    /// `reason` replaces the stored state reason (None clears it).
    pub fn transition_instance(
        &self,
        id: &str,
        from: &[InstanceState],
        to: InstanceState,
        reason: Option<&StateReason>,
    ) -> Result<StateChange, StoreError> {
        let previous = self.instance(id)?.state;
        if !from.contains(&previous) {
            return Err(StoreError::IncorrectInstanceState {
                id: id.to_string(),
                current: previous,
            });
        }
        let now = now_ms();
        self.conn.execute(
            "UPDATE instances SET state_code = ?2, state_name = ?3, state_reason_code = ?4,
                state_reason_message = ?5, state_changed_ms = ?6,
                terminated_at_ms = CASE WHEN ?2 = 48 THEN COALESCE(terminated_at_ms, ?6) ELSE NULL END
             WHERE id = ?1",
            params![
                id,
                to.code(),
                to.name(),
                reason.map(|r| &r.code),
                reason.map(|r| &r.message),
                now,
            ],
        )?;
        Ok(StateChange {
            id: id.to_string(),
            previous,
            current: to,
        })
    }

    fn update_instance(
        &self,
        id: &str,
        sql: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                &format!("UPDATE instances SET {sql} WHERE id = ?1"),
                params![id, value],
            )
            .map_err(|e| StoreError::from_constraint(e, "instance", id))?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "instance",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Records (or, with None, clears) the VM process serving the instance.
    pub fn set_instance_process(
        &self,
        id: &str,
        pid: Option<i32>,
        vmm_socket: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_instance(id, "pid = ?2", pid)?;
        self.update_instance(id, "vmm_socket = ?2", vmm_socket)
    }

    pub fn set_instance_type(&self, id: &str, instance_type: &str) -> Result<(), StoreError> {
        self.update_instance(id, "instance_type = ?2", instance_type)
    }

    pub fn set_user_data(&self, id: &str, user_data: Option<&[u8]>) -> Result<(), StoreError> {
        self.update_instance(id, "user_data = ?2", user_data)
    }

    pub fn set_metadata_options(
        &self,
        id: &str,
        options: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.update_instance(id, "metadata_options = ?2", options.to_string())
    }

    /// The instances an earlier RunInstances made with `token`, if any.
    /// A different `request_hash` means the token is being reused for a
    /// different request: `IdempotentMismatch`. Call it in the same write
    /// transaction as the inserts, so two racing requests cannot both miss.
    pub fn check_client_token(
        &self,
        token: &str,
        request_hash: &str,
    ) -> Result<Option<Vec<InstanceRecord>>, StoreError> {
        let mut statement = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM instances WHERE client_token = ?1 ORDER BY launch_index, seq"
        ))?;
        let found: Vec<InstanceRecord> = statement
            .query_map([token], from_row)?
            .collect::<Result<_, _>>()
            .map_err(read_error("instance"))?;
        if found.is_empty() {
            return Ok(None);
        }
        if found
            .iter()
            .any(|r| r.request_hash.as_deref() != Some(request_hash))
        {
            return Err(StoreError::IdempotentMismatch {
                token: token.to_string(),
            });
        }
        Ok(Some(found))
    }

    /// Deletes the record with its tags; its addresses go with it
    /// (cascade); volumes still attached become available.
    pub fn delete_instance(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
        self.conn.execute(
            "UPDATE volumes SET instance_id = NULL, device = NULL, attach_time_ms = NULL,
                attachment_state = NULL,
                state = CASE WHEN state = 'in-use' THEN 'available' ELSE state END
             WHERE instance_id = ?1",
            [id],
        )?;
        if self
            .conn
            .execute("DELETE FROM instances WHERE id = ?1", [id])?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "instance",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Deletes instances terminated before `before_ms` (EC2 keeps them
    /// describable for about an hour), returning their ids.
    pub fn purge_terminated(&self, before_ms: i64) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = self
            .conn
            .prepare("SELECT id FROM instances WHERE state_code = 48 AND terminated_at_ms < ?1 ORDER BY seq")?
            .query_map([before_ms], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in &ids {
            self.delete_instance(id)?;
        }
        Ok(ids)
    }
}
