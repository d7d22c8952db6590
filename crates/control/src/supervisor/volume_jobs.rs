//! The file work behind the volume actions, on threads of their own after
//! the request's transaction has committed: making a volume's file (empty
//! and sparse, or a copy of a snapshot), deleting it, copying a volume
//! into a snapshot, applying a ModifyVolume; and, when the daemon starts,
//! finishing whatever a previous daemon left half-done (every step is
//! idempotent: copies go to a temporary name and are renamed into place).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;
use tracing::{error, warn};

use super::{DELETED_VOLUME_RETENTION_MS, Supervisor, SupervisorError, volume};
use crate::store::modifications::ModificationState;
use crate::store::snapshots::SnapshotState;
use crate::store::volumes::{AttachmentState, VolumeRecord, VolumeState};
use crate::store::{StoreError, now_ms};
use flint_contract::socket::DiskState;

fn io(path: &Path) -> impl Fn(std::io::Error) -> SupervisorError + '_ {
    move |source| SupervisorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An empty volume: a sparse file of `size_bytes`, made under a temporary
/// name and renamed into place.
fn make_empty(path: &Path, size_bytes: u64) -> Result<(), SupervisorError> {
    let tmp = path.with_extension("raw.partial");
    let file = crate::private::private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.set_len(size_bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Grows (never shrinks) the file at `path` to `size_bytes`; a file not
/// made yet (a root volume before its first launch) is left to be made at
/// the right size.
fn grow(path: &Path, size_bytes: u64) -> Result<(), SupervisorError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let len = file.metadata().map_err(io(path))?.len();
    if size_bytes > len {
        file.set_len(size_bytes).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
    }
    Ok(())
}

impl Supervisor {
    fn job(self: &Arc<Self>, name: String, work: impl FnOnce(&Arc<Supervisor>) + Send + 'static) {
        let sup = self.clone();
        if let Err(e) = std::thread::Builder::new()
            .name(name)
            .spawn(move || work(&sup))
        {
            error!("flint serve: cannot start a volume job: {e}");
        }
    }

    /// creating → available once the file is there (error if it cannot be
    /// made).
    pub fn create_volume_file(self: &Arc<Self>, id: &str) {
        let id = id.to_string();
        self.job(format!("create-{id}"), move |sup| {
            let outcome = sup.make_volume_file(&id);
            let state = match &outcome {
                Ok(()) => VolumeState::Available,
                Err(e) => {
                    error!(volume_id = %id, "flint serve: volume {id}: {e}");
                    VolumeState::Error
                }
            };
            let moved = sup
                .store()
                .write(|t| t.transition_volume(&id, &[VolumeState::Creating], state));
            if let Err(e) = moved {
                error!(volume_id = %id, "flint serve: volume {id}: {e}");
            }
        });
    }

    pub(super) fn make_volume_file(&self, id: &str) -> Result<(), SupervisorError> {
        let (v, snapshot) = self.store().read(|t| {
            let v = t.get_volume(id)?.ok_or_else(|| StoreError::NotFound {
                kind: "volume",
                id: id.to_string(),
            })?;
            let snapshot = match &v.snapshot_id {
                Some(s) => t.get_snapshot(s)?,
                None => None,
            };
            Ok::<_, StoreError>((v, snapshot))
        })?;
        let path = Path::new(&v.path);
        let size = v.size_gib.saturating_mul(volume::GIB);
        match (&v.snapshot_id, snapshot) {
            (None, _) => make_empty(path, size),
            (Some(_), Some(s)) => volume::clone_image(Path::new(&s.path), path, size).map(|_| ()),
            (Some(s), None) => Err(SupervisorError::Config(format!("snapshot {s} is gone"))),
        }
    }

    /// deleting → deleted once the file is gone.
    pub fn delete_volume_file(self: &Arc<Self>, id: &str) {
        let id = id.to_string();
        self.job(format!("delete-{id}"), move |sup| {
            let path = match sup.store().read(|t| t.get_volume(&id)) {
                Ok(Some(v)) => v.path,
                Ok(None) => return,
                Err(e) => {
                    error!(volume_id = %id, "flint serve: volume {id}: {e}");
                    return;
                }
            };
            if let Err(e) = volume::delete(Path::new(&path)) {
                error!(volume_id = %id, "flint serve: volume {id}: {e}");
                return;
            }
            let moved = sup.store().write(|t| {
                t.transition_volume(&id, &[VolumeState::Deleting], VolumeState::Deleted)
            });
            if let Err(e) = moved {
                error!(volume_id = %id, "flint serve: volume {id}: {e}");
            }
        });
    }

    /// pending → completed once the volume's file is copied (error if the
    /// volume or its file is gone).
    pub fn take_snapshot(self: &Arc<Self>, id: &str) {
        let id = id.to_string();
        self.job(format!("snapshot-{id}"), move |sup| {
            let outcome = sup.copy_into_snapshot(&id);
            let (state, message) = match &outcome {
                Ok(()) => (SnapshotState::Completed, None),
                Err(e) => {
                    error!(snapshot_id = %id, "flint serve: snapshot {id}: {e}");
                    (SnapshotState::Error, Some(e.to_string()))
                }
            };
            let done = sup
                .store()
                .write(|t| t.finish_snapshot(&id, state, message.as_deref()));
            if let Err(e) = done {
                error!(snapshot_id = %id, "flint serve: snapshot {id}: {e}");
            }
        });
    }

    fn copy_into_snapshot(&self, id: &str) -> Result<(), SupervisorError> {
        let (snapshot, v) = self.store().read(|t| {
            let s = t.get_snapshot(id)?.ok_or_else(|| StoreError::NotFound {
                kind: "snapshot",
                id: id.to_string(),
            })?;
            let v = t.get_volume(&s.volume_id)?;
            Ok::<_, StoreError>((s, v))
        })?;
        let v = v.ok_or_else(|| {
            SupervisorError::Config(format!("volume {} is gone", snapshot.volume_id))
        })?;
        let source = Path::new(&v.path);
        if !source.exists() {
            // A root volume whose instance never launched: nothing written.
            return make_empty(Path::new(&snapshot.path), v.size_gib * volume::GIB);
        }
        // Progress is written when it has moved by 10 points (a copy of
        // a large volume reports as it goes, without a write per extent).
        let mut shown = 0u8;
        let mut report = |percent: u8| {
            if percent >= shown.saturating_add(10) && percent < 100 {
                shown = percent;
                let _ = self.store().write(|t| t.set_snapshot_progress(id, percent));
            }
        };
        let method =
            volume::clone_with_progress(source, Path::new(&snapshot.path), 0, &mut report)?;
        if method == volume::CloneMethod::SparseCopy {
            warn!(
                snapshot_id = %id,
                volume_id = %v.id,
                "flint serve: snapshot {id}: no reflink on this filesystem, sparse copy of {}",
                v.path
            );
        }
        Ok(())
    }

    /// Applies modification `seq` of volume `id` (already recorded as the
    /// volume's new spec): grow the file, tell a running VM.
    pub fn apply_modification(self: &Arc<Self>, id: &str, seq: i64) {
        let id = id.to_string();
        self.job(format!("modify-{id}"), move |sup| {
            let (state, message) = match sup.modify_volume_now(&id, seq) {
                Ok(None) => (ModificationState::Completed, None),
                Ok(Some(note)) => (ModificationState::Completed, Some(note)),
                Err(e) => {
                    error!(volume_id = %id, "flint serve: volume {id}: modification failed: {e}");
                    (ModificationState::Failed, Some(e.to_string()))
                }
            };
            let done = sup
                .store()
                .write(|t| t.set_modification_state(seq, state, message.as_deref()));
            if let Err(e) = done {
                error!(volume_id = %id, "flint serve: volume {id}: {e}");
            }
        });
    }

    /// Ok(Some(note)): the file is changed but the running VM did not take
    /// it (it will at its next start).
    fn modify_volume_now(&self, id: &str, seq: i64) -> Result<Option<String>, SupervisorError> {
        let Some(v) = self.store().read(|t| t.get_volume(id))? else {
            return Err(SupervisorError::Config(format!("volume {id} is gone")));
        };
        let instance = v.instance_id.clone();
        let apply = |has_process: bool| -> Result<Option<String>, SupervisorError> {
            grow(Path::new(&v.path), v.size_gib.saturating_mul(volume::GIB))?;
            self.store()
                .write(|t| t.set_modification_state(seq, ModificationState::Optimizing, None))?;
            let live = has_process && v.attachment_state == Some(AttachmentState::Attached);
            let (Some(instance), true) = (&instance, live) else {
                return Ok(None);
            };
            let told = self
                .resize_disk(instance, id)
                .and_then(|_| self.set_disk_limits(instance, &v));
            Ok(told.err().map(|e| {
                format!(
                    "the running VM did not take the change ({e}); it applies at the next start"
                )
            }))
        };
        match &instance {
            Some(i) => self.with_slot(i, apply),
            None => apply(false),
        }
    }

    /// Deleted volumes past their retention go for good.
    pub fn purge_deleted_volumes(&self) {
        let before = now_ms() - DELETED_VOLUME_RETENTION_MS;
        if let Err(e) = self.store().write(|t| t.purge_deleted_volumes(before)) {
            warn!("flint serve: purging deleted volumes: {e}");
        }
    }

    /// After [`Supervisor::adopt_all`]: finish the volume work a previous
    /// daemon left (creations, deletions, snapshots, modifications,
    /// hot-plugs in either direction).
    pub fn recover_volumes(self: &Arc<Self>) -> Result<(), SupervisorError> {
        let (pending, snapshots, modifications) = self.store().read(|t| {
            Ok::<_, StoreError>((
                t.volumes_in_state(&[
                    VolumeState::Creating,
                    VolumeState::Deleting,
                    VolumeState::InUse,
                ])?,
                t.list_snapshots(&[])?,
                t.unfinished_modifications()?,
            ))
        })?;
        for v in &pending {
            match v.state {
                VolumeState::Creating => self.create_volume_file(&v.id),
                VolumeState::Deleting => self.delete_volume_file(&v.id),
                _ => self.recover_attachment(v),
            }
        }
        for s in snapshots
            .iter()
            .filter(|s| s.state == SnapshotState::Pending)
        {
            self.take_snapshot(&s.id);
        }
        for m in &modifications {
            self.apply_modification(&m.volume_id, m.seq);
        }
        Ok(())
    }

    /// An attachment left attaching or detaching: ask the VM (if it runs)
    /// where the disk is and carry on from there.
    fn recover_attachment(self: &Arc<Self>, v: &VolumeRecord) {
        let (Some(instance), Some(state)) = (v.instance_id.as_deref(), v.attachment_state) else {
            return;
        };
        if state == AttachmentState::Attached {
            return;
        }
        let has_process = self.has_process(instance);
        let result: Result<(), SupervisorError> = (|| {
            if !has_process {
                self.store().write(|t| match state {
                    AttachmentState::Detaching => t.detach_volume(&v.id),
                    _ => t.set_attachment_state(&v.id, AttachmentState::Attached),
                })?;
                return Ok(());
            }
            let present = self.disk(instance, &v.id)?;
            match (state, present) {
                (AttachmentState::Attaching, Some(_)) => {
                    self.store()
                        .write(|t| t.set_attachment_state(&v.id, AttachmentState::Attached))?;
                    self.push_block_devices(instance);
                }
                (AttachmentState::Attaching, None) => match self.plug(instance, v)? {
                    Ok(()) => {
                        self.store()
                            .write(|t| t.set_attachment_state(&v.id, AttachmentState::Attached))?;
                        self.push_block_devices(instance);
                    }
                    Err(refused) => {
                        warn!(
                            volume_id = %v.id,
                            instance_id = %instance,
                            "flint serve: volume {}: the VM refused it (status {}): detached",
                            v.id, refused.status
                        );
                        self.store().write(|t| t.detach_volume(&v.id))?;
                    }
                },
                (_, None) => self.finish_detach(instance, &v.id),
                (_, Some(entry)) => {
                    let ejecting = entry.state == DiskState::Detaching;
                    if !ejecting
                        && self.unplug(instance, &v.id, false)? == super::disks::Eject::Gone
                    {
                        self.finish_detach(instance, &v.id);
                    } else {
                        self.watch_eject(instance, &v.id);
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            error!(
                volume_id = %v.id,
                instance_id = %instance,
                "flint serve: volume {}: recovering its attachment: {e}",
                v.id
            );
            if state == AttachmentState::Detaching {
                self.watch_eject(instance, &v.id);
            }
        }
    }
}
