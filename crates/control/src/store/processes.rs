//! The VM process serving an instance, as the supervisor records it: pid,
//! the process's start time (to tell it from a later process that got the
//! same pid) and its control socket. Kept apart from `InstanceRecord`
//! because only the supervisor reads or writes it.

use rusqlite::{OptionalExtension, params};

use super::{StoreError, Tx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmmProcess {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: clock ticks after boot.
    pub start_ticks: u64,
    pub socket: String,
}

impl Tx<'_> {
    /// Records (or, with None, clears) the process serving instance `id`.
    pub fn set_vmm_process(
        &self,
        id: &str,
        process: Option<&VmmProcess>,
    ) -> Result<(), StoreError> {
        let ticks = process
            .map(|p| i64::try_from(p.start_ticks))
            .transpose()
            .map_err(|_| StoreError::Constraint(format!("instance {id}: start time")))?;
        let changed = self.conn.execute(
            // A recorded process ends the launch's journal entry.
            "UPDATE instances SET pid = ?2, vmm_socket = ?3, vmm_start_ticks = ?4,
                 launch_token = CASE WHEN ?2 IS NULL THEN launch_token END
             WHERE id = ?1",
            params![
                id,
                process.map(|p| p.pid),
                process.map(|p| &p.socket),
                ticks
            ],
        )?;
        one_instance(changed, id)
    }

    /// The recorded process of instance `id`, if all of it is recorded.
    pub fn vmm_process(&self, id: &str) -> Result<Option<VmmProcess>, StoreError> {
        let row: Option<(Option<i32>, Option<String>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT pid, vmm_socket, vmm_start_ticks FROM instances WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(match row {
            Some((Some(pid), Some(socket), Some(ticks))) => Some(VmmProcess {
                pid,
                start_ticks: u64::try_from(ticks).unwrap_or(0),
                socket,
            }),
            _ => None,
        })
    }

    /// The launch journal: records that a VMM for `id` is about to be
    /// spawned with `token` in its environment (None: clears it).
    pub fn set_launch_token(&self, id: &str, token: Option<&str>) -> Result<(), StoreError> {
        let changed = self.conn.execute(
            "UPDATE instances SET launch_token = ?2 WHERE id = ?1",
            params![id, token],
        )?;
        one_instance(changed, id)
    }

    /// The token of a launch whose pid was never recorded, if any.
    pub fn launch_token(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT launch_token FROM instances WHERE id = ?1",
                [id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }
}

/// An UPDATE of one instance's row: it must have found the row.
fn one_instance(changed: usize, id: &str) -> Result<(), StoreError> {
    if changed == 0 {
        return Err(StoreError::NotFound {
            kind: "instance",
            id: id.to_string(),
        });
    }
    Ok(())
}
