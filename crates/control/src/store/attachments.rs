//! Volume attachments: which instance, at which device, in which state.
//! The volume's own state follows: in-use from the moment an attachment
//! exists (attaching included, as on EC2) until it is gone.

use rusqlite::params;

use super::volumes::{AttachmentState, VolumeState};
use super::{StoreError, Tx, now_ms};

impl Tx<'_> {
    /// available → in-use at `device` of `instance_id`, the attachment in
    /// `state` (attaching for a hot-plug still to be done, attached for a
    /// stopped instance). A device name already in use on that instance is
    /// `Duplicate`.
    pub fn attach_volume(
        &self,
        id: &str,
        instance_id: &str,
        device: &str,
        delete_on_termination: bool,
        state: AttachmentState,
    ) -> Result<(), StoreError> {
        let current = self.volume(id)?.state;
        if current != VolumeState::Available {
            return Err(StoreError::IncorrectVolumeState {
                id: id.to_string(),
                current,
            });
        }
        let now = now_ms();
        self.conn
            .execute(
                "UPDATE volumes SET state = 'in-use', instance_id = ?2, device = ?3,
                    delete_on_termination = ?4, attach_time_ms = ?5, attachment_state = ?6,
                    state_changed_ms = ?5
                 WHERE id = ?1",
                params![
                    id,
                    instance_id,
                    device,
                    delete_on_termination,
                    now,
                    state.as_str()
                ],
            )
            .map_err(|e| {
                StoreError::from_constraint(e, "attachment", &format!("{instance_id}:{device}"))
            })?;
        Ok(())
    }

    /// Moves an existing attachment to `state`.
    pub fn set_attachment_state(&self, id: &str, state: AttachmentState) -> Result<(), StoreError> {
        let volume = self.volume(id)?;
        if volume.instance_id.is_none() {
            return Err(StoreError::IncorrectVolumeState {
                id: id.to_string(),
                current: volume.state,
            });
        }
        self.conn.execute(
            "UPDATE volumes SET attachment_state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    pub fn set_delete_on_termination(&self, id: &str, value: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE volumes SET delete_on_termination = ?2 WHERE id = ?1",
            params![id, value],
        )?;
        Ok(())
    }

    /// in-use → available: the attachment is gone.
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
                attach_time_ms = NULL, attachment_state = NULL, state_changed_ms = ?2
             WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }
}
