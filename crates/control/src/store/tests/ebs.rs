//! Volumes of their own (migration 3): provisioned performance, snapshot
//! origin, attachment states, ClientToken; snapshots; modifications.

use super::super::modifications::{ModificationState, VolumeSpec};
use super::super::schema::MIGRATIONS;
use super::super::snapshots::{SnapshotRecord, SnapshotState};
use super::super::volumes::{AttachmentState, VolumeRecord, VolumeState};
use super::super::{Store, StoreError};
use super::resources::volume;
use super::{TempDir, insert, instance, open};

fn snapshot(n: u32, volume_id: &str) -> SnapshotRecord {
    SnapshotRecord {
        id: format!("snap-{n:017x}"),
        volume_id: volume_id.into(),
        volume_size_gib: 8,
        description: "nightly".into(),
        path: format!("/var/lib/flint/snapshots/snap-{n:017x}.raw"),
        state: SnapshotState::Pending,
        progress: 0,
        state_message: None,
        start_ms: 1_700_000_000_000 + i64::from(n),
        completion_ms: None,
    }
}

#[test]
fn volume_fields_round_trip_and_client_tokens_replay() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let v = VolumeRecord {
        volume_type: "io2".into(),
        iops: Some(4000),
        throughput: None,
        snapshot_id: Some("snap-00000000000000001".into()),
        state: VolumeState::Creating,
        client_token: Some("tok".into()),
        request_hash: Some("h1".into()),
        ..volume(1, None)
    };
    store.write(|t| t.insert_volume(&v)).unwrap();
    let back = store.read(|t| t.get_volume(&v.id)).unwrap().unwrap();
    assert_eq!(
        back,
        VolumeRecord {
            state_changed_ms: v.created_ms,
            ..v.clone()
        }
    );
    let replay = store
        .read(|t| t.volume_by_client_token("tok", "h1"))
        .unwrap();
    assert_eq!(replay.map(|r| r.id), Some(v.id.clone()));
    assert!(matches!(
        store.read(|t| t.volume_by_client_token("tok", "h2")),
        Err(StoreError::IdempotentMismatch { .. })
    ));
    assert_eq!(
        store
            .read(|t| t.volume_by_client_token("other", "h1"))
            .unwrap(),
        None
    );
    store
        .write(|t| t.transition_volume(&v.id, &[VolumeState::Creating], VolumeState::Available))
        .unwrap();
    assert!(matches!(
        store.write(|t| t.transition_volume(&v.id, &[VolumeState::Creating], VolumeState::Error)),
        Err(StoreError::IncorrectVolumeState {
            current: VolumeState::Available,
            ..
        })
    ));
    store
        .write(|t| t.set_volume_spec(&v.id, 20, "gp3", Some(6000), Some(500)))
        .unwrap();
    let spec = store.read(|t| t.get_volume(&v.id)).unwrap().unwrap();
    assert_eq!(
        (
            spec.size_gib,
            spec.volume_type.as_str(),
            spec.iops,
            spec.throughput
        ),
        (20, "gp3", Some(6000), Some(500))
    );
    assert_eq!(
        store
            .read(|t| t.volumes_in_state(&[VolumeState::Available]))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn attachments_move_through_their_states() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let owner = instance(1);
    insert(&mut store, &owner);
    let v = volume(2, None);
    store.write(|t| t.insert_volume(&v)).unwrap();
    store
        .write(|t| {
            t.attach_volume(
                &v.id,
                &owner.id,
                "/dev/sdf",
                true,
                AttachmentState::Attaching,
            )
        })
        .unwrap();
    let attaching = store.read(|t| t.get_volume(&v.id)).unwrap().unwrap();
    assert_eq!(attaching.state, VolumeState::InUse);
    assert_eq!(attaching.attachment_state, Some(AttachmentState::Attaching));
    assert!(attaching.delete_on_termination && attaching.is_on(&owner.id));
    for state in [AttachmentState::Attached, AttachmentState::Detaching] {
        store
            .write(|t| t.set_attachment_state(&v.id, state))
            .unwrap();
        let now = store.read(|t| t.get_volume(&v.id)).unwrap().unwrap();
        assert_eq!(now.attachment_state, Some(state));
    }
    store
        .write(|t| t.set_delete_on_termination(&v.id, false))
        .unwrap();
    store.write(|t| t.detach_volume(&v.id)).unwrap();
    let done = store.read(|t| t.get_volume(&v.id)).unwrap().unwrap();
    assert_eq!(
        (
            done.state,
            done.attachment_state,
            done.device,
            done.delete_on_termination
        ),
        (VolumeState::Available, None, None, false)
    );
    assert!(matches!(
        store.write(|t| t.set_attachment_state(&v.id, AttachmentState::Attached)),
        Err(StoreError::IncorrectVolumeState { .. })
    ));
    // Deleted volumes are purged once past their retention.
    store
        .write(|t| t.set_volume_state(&v.id, VolumeState::Deleted))
        .unwrap();
    assert_eq!(
        store.write(|t| t.purge_deleted_volumes(0)).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.write(|t| t.purge_deleted_volumes(i64::MAX)).unwrap(),
        std::slice::from_ref(&v.id)
    );
    assert_eq!(store.read(|t| t.get_volume(&v.id)).unwrap(), None);
}

#[test]
fn snapshots_insert_finish_and_delete() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let v = volume(1, None);
    store.write(|t| t.insert_volume(&v)).unwrap();
    let (a, b) = (snapshot(1, &v.id), snapshot(2, &v.id));
    store
        .write(|t| {
            t.insert_snapshot(&a)?;
            t.insert_snapshot(&b)?;
            t.set_tags(&a.id, &[("K".into(), "v".into())])
        })
        .unwrap();
    assert!(matches!(
        store.write(|t| t.insert_snapshot(&a)),
        Err(StoreError::Duplicate {
            kind: "snapshot",
            ..
        })
    ));
    store
        .write(|t| t.set_snapshot_progress(&a.id, 150))
        .unwrap();
    assert_eq!(
        store
            .read(|t| t.get_snapshot(&a.id))
            .unwrap()
            .unwrap()
            .progress,
        99
    );
    store
        .write(|t| t.finish_snapshot(&a.id, SnapshotState::Completed, None))
        .unwrap();
    store
        .write(|t| t.finish_snapshot(&b.id, SnapshotState::Error, Some("volume gone")))
        .unwrap();
    let all = store.read(|t| t.list_snapshots(&[])).unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [&a.id, &b.id]
    );
    assert_eq!(
        (all[0].state, all[0].progress),
        (SnapshotState::Completed, 100)
    );
    assert!(all[0].completion_ms.is_some());
    assert_eq!(all[1].state_message.as_deref(), Some("volume gone"));
    let copy = VolumeRecord {
        snapshot_id: Some(a.id.clone()),
        ..volume(3, None)
    };
    store.write(|t| t.insert_volume(&copy)).unwrap();
    assert_eq!(store.read(|t| t.volumes_creating_from(&a.id)).unwrap(), 0);
    store
        .write(|t| t.set_volume_state(&copy.id, VolumeState::Creating))
        .unwrap();
    assert_eq!(store.read(|t| t.volumes_creating_from(&a.id)).unwrap(), 1);
    store.write(|t| t.delete_snapshot(&a.id)).unwrap();
    assert_eq!(store.read(|t| t.tags_of(&a.id)).unwrap(), []);
    assert!(matches!(
        store.write(|t| t.delete_snapshot(&a.id)),
        Err(StoreError::NotFound {
            kind: "snapshot",
            ..
        })
    ));
}

#[test]
fn the_latest_modification_of_each_volume_is_reported() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let spec = |size, kind: &str| VolumeSpec {
        size_gib: size,
        volume_type: kind.into(),
        iops: None,
        throughput: None,
    };
    let (first, second, other) = store
        .write(|t| {
            let first = t.insert_modification("vol-1", &spec(8, "gp2"), &spec(10, "gp2"))?;
            let other = t.insert_modification("vol-2", &spec(8, "gp2"), &spec(8, "gp3"))?;
            t.set_modification_state(first, ModificationState::Completed, None)?;
            let second = t.insert_modification("vol-1", &spec(10, "gp2"), &spec(12, "gp2"))?;
            Ok::<_, StoreError>((first, second, other))
        })
        .unwrap();
    assert!(first < second);
    let latest = store.read(|t| t.latest_modifications(&[])).unwrap();
    assert_eq!(
        latest.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [second, other]
    );
    assert_eq!(latest[0].original.size_gib, 10);
    let one = store
        .read(|t| t.latest_modifications(&["vol-2".to_string()]))
        .unwrap();
    assert_eq!((one.len(), one[0].target.volume_type.as_str()), (1, "gp3"));
    let unfinished = store.read(|t| t.unfinished_modifications()).unwrap();
    assert_eq!(
        unfinished.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [other, second]
    );
    store
        .write(|t| t.set_modification_state(second, ModificationState::Failed, Some("io")))
        .unwrap();
    let failed = store
        .read(|t| t.latest_modifications(&["vol-1".to_string()]))
        .unwrap();
    assert_eq!(failed[0].state, ModificationState::Failed);
    assert_eq!(failed[0].status_message.as_deref(), Some("io"));
    assert!(failed[0].end_ms.is_some());
}

#[test]
fn migration_3_marks_existing_attachments_attached() {
    let dir = TempDir::new();
    {
        let mut old = Store::open_with_migrations(dir.path(), &MIGRATIONS[..2]).unwrap();
        insert(&mut old, &instance(1));
        old.conn
            .execute(
                "INSERT INTO volumes (id, size_gib, volume_type, path, state, instance_id, device,
                    delete_on_termination, created_ms, attach_time_ms)
                 VALUES ('vol-00000000000000001', 8, 'gp3', '/x', 'in-use', ?1, '/dev/xvda', 1, 5, 5)",
                [instance(1).id],
            )
            .unwrap();
    }
    let mut store = open(&dir);
    let v = store
        .read(|t| t.get_volume("vol-00000000000000001"))
        .unwrap()
        .unwrap();
    assert_eq!(v.attachment_state, Some(AttachmentState::Attached));
    assert_eq!((v.iops, v.throughput, v.state_changed_ms), (None, None, 5));
}
