//! Images, volumes, key pairs and tags.

use super::super::StoreError;
use super::super::images::{ImageFilter, ImageRecord, ImageState};
use super::super::key_pairs::KeyPairRecord;
use super::super::tags::{TAG_LIMIT, Tag, TagFilter};
use super::super::volumes::{AttachmentState, VolumeRecord, VolumeState};
use super::{TempDir, insert, instance, open};

pub fn volume(n: u32, attached: Option<(&str, &str)>) -> VolumeRecord {
    VolumeRecord {
        id: format!("vol-{n:017x}"),
        size_gib: 8,
        volume_type: "gp3".into(),
        path: format!("/var/lib/flint/volumes/vol-{n:017x}.img"),
        state: if attached.is_some() {
            VolumeState::InUse
        } else {
            VolumeState::Available
        },
        instance_id: attached.map(|(i, _)| i.to_string()),
        device: attached.map(|(_, d)| d.to_string()),
        delete_on_termination: attached.is_some(),
        created_ms: 1_700_000_000_000 + i64::from(n),
        attach_time_ms: attached.map(|_| 1_700_000_000_500),
        ..VolumeRecord::default()
    }
}

fn image(n: u32, name: &str) -> ImageRecord {
    ImageRecord {
        id: format!("ami-{n:017x}"),
        name: name.into(),
        location: format!("/srv/images/{name}.qcow2"),
        path: format!("/var/lib/flint/images/ami-{n:017x}.raw"),
        size_bytes: 2 << 30,
        boot_mode: "legacy-bios".into(),
        state: ImageState::Pending,
        created_ms: 1_700_000_000_000 + i64::from(n),
    }
}

#[test]
fn images_insert_list_update_delete() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    store
        .write(|t| {
            t.insert_image(&image(1, "debian-12"))?;
            t.insert_image(&image(2, "debian-12-test"))?;
            t.insert_image(&image(3, "alpine"))
        })
        .unwrap();
    match store.write(|t| t.insert_image(&image(4, "alpine"))) {
        Err(StoreError::Duplicate { kind: "image", id }) => assert!(id.contains("alpine")),
        other => panic!("{other:?}"),
    }
    store
        .write(|t| t.set_image_state("ami-00000000000000001", ImageState::Available, Some(123)))
        .unwrap();
    let first = store
        .read(|t| t.get_image("ami-00000000000000001"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.state, first.size_bytes),
        (ImageState::Available, 123)
    );
    let names = |filter: ImageFilter, store: &mut super::super::Store| -> Vec<String> {
        store
            .read(|t| t.list_images(&filter))
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect()
    };
    let debian = ImageFilter {
        names: vec!["debian-*".into()],
        ..Default::default()
    };
    assert_eq!(names(debian, &mut store), ["debian-12", "debian-12-test"]);
    let available = ImageFilter {
        states: vec!["available".into()],
        ..Default::default()
    };
    assert_eq!(names(available, &mut store), ["debian-12"]);
    store
        .write(|t| {
            t.set_tags("ami-00000000000000003", &[("os".into(), "alpine".into())])?;
            t.delete_image("ami-00000000000000003")
        })
        .unwrap();
    assert!(
        store
            .read(|t| t.tags_of("ami-00000000000000003"))
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.write(|t| t.delete_image("ami-00000000000000003")),
        Err(StoreError::NotFound { kind: "image", .. })
    ));
    assert!(matches!(
        store.write(|t| t.set_image_state("ami-00000000000000009", ImageState::Failed, None)),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn key_pairs_are_unique_by_name_and_id() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let key = |name: &str, id: u32| KeyPairRecord {
        name: name.into(),
        id: format!("key-{id:017x}"),
        key_type: "ed25519".into(),
        fingerprint: "SHA256:abc".into(),
        public_key: "ssh-ed25519 AAAA test".into(),
        created_ms: 1,
    };
    store
        .write(|t| t.insert_key_pair(&key("alice", 1)))
        .unwrap();
    store.write(|t| t.insert_key_pair(&key("bob", 2))).unwrap();
    for duplicate in [key("alice", 3), key("carol", 1)] {
        assert!(matches!(
            store.write(|t| t.insert_key_pair(&duplicate)),
            Err(StoreError::Duplicate {
                kind: "key pair",
                ..
            })
        ));
    }
    let mut bad_type = key("dave", 4);
    bad_type.key_type = "dsa".into();
    assert!(matches!(
        store.write(|t| t.insert_key_pair(&bad_type)),
        Err(StoreError::Constraint(_))
    ));
    assert_eq!(
        store.read(|t| t.get_key_pair("alice")).unwrap(),
        Some(key("alice", 1))
    );
    let all = store.read(|t| t.list_key_pairs(&[], &[])).unwrap();
    assert_eq!(
        all.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    let by_id = store
        .read(|t| t.list_key_pairs(&[], &[key("bob", 2).id]))
        .unwrap();
    assert_eq!(by_id, [key("bob", 2)]);
    assert!(store.write(|t| t.delete_key_pair("alice")).unwrap());
    assert!(!store.write(|t| t.delete_key_pair("alice")).unwrap());
    assert_eq!(store.read(|t| t.get_key_pair("alice")).unwrap(), None);
}

#[test]
fn volumes_attach_and_detach_with_state_checks() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let owner = instance(1);
    insert(&mut store, &owner);
    store
        .write(|t| {
            t.insert_volume(&volume(1, Some((&owner.id, "/dev/xvda"))))?;
            t.insert_volume(&volume(2, None))?;
            t.insert_volume(&volume(3, None))
        })
        .unwrap();
    let v2 = volume(2, None).id;
    let v3 = volume(3, None).id;
    store
        .write(|t| t.attach_volume(&v2, &owner.id, "/dev/sdf", false, AttachmentState::Attached))
        .unwrap();
    // The same device twice on one instance.
    assert!(matches!(
        store.write(|t| t.attach_volume(
            &v3,
            &owner.id,
            "/dev/sdf",
            false,
            AttachmentState::Attached
        )),
        Err(StoreError::Duplicate {
            kind: "attachment",
            ..
        })
    ));
    // Attaching an attached volume.
    assert!(matches!(
        store.write(|t| t.attach_volume(
            &v2,
            &owner.id,
            "/dev/sdg",
            false,
            AttachmentState::Attached
        )),
        Err(StoreError::IncorrectVolumeState {
            current: VolumeState::InUse,
            ..
        })
    ));
    // To an instance that does not exist: refused at commit.
    assert!(matches!(
        store.write(|t| t.attach_volume(
            &v3,
            "i-0000000000000dead",
            "/dev/sdg",
            false,
            AttachmentState::Attached
        )),
        Err(StoreError::MissingReference { .. })
    ));
    let attached = store
        .read(|t| t.list_volumes(&[], std::slice::from_ref(&owner.id)))
        .unwrap();
    assert_eq!(
        attached.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        [volume(1, None).id, v2.clone()]
    );
    assert!(attached[1].attach_time_ms.is_some());
    store.write(|t| t.detach_volume(&v2)).unwrap();
    let detached = store.read(|t| t.get_volume(&v2)).unwrap().unwrap();
    assert_eq!(
        (
            detached.state,
            detached.instance_id,
            detached.attach_time_ms
        ),
        (VolumeState::Available, None, None)
    );
    assert!(matches!(
        store.write(|t| t.detach_volume(&v2)),
        Err(StoreError::IncorrectVolumeState {
            current: VolumeState::Available,
            ..
        })
    ));
    store
        .write(|t| t.set_volume_state(&v3, VolumeState::Deleting))
        .unwrap();
    store.write(|t| t.delete_volume(&v3)).unwrap();
    assert_eq!(
        store
            .read(|t| t.list_volumes(std::slice::from_ref(&v3), &[]))
            .unwrap(),
        []
    );
    assert!(matches!(
        store.write(|t| t.delete_volume(&v3)),
        Err(StoreError::NotFound { kind: "volume", .. })
    ));
    // An attachment must name both instance and device.
    let mut half = volume(4, None);
    half.device = Some("/dev/sdh".into());
    assert!(matches!(
        store.write(|t| t.insert_volume(&half)),
        Err(StoreError::Constraint(_))
    ));
}

#[test]
fn tags_upsert_delete_describe_and_limit() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    store
        .write(|t| {
            t.set_tags(
                "i-1",
                &pairs(&[("Name", "a"), ("env", "prod"), ("team", "x")]),
            )?;
            t.set_tags("i-1", &pairs(&[("Name", "b")]))?;
            t.set_tags("vol-1", &pairs(&[("Name", "disk")]))
        })
        .unwrap();
    assert_eq!(
        store.read(|t| t.tags_of("i-1")).unwrap(),
        pairs(&[("Name", "b"), ("env", "prod"), ("team", "x")])
    );
    let many = store
        .read(|t| t.tags_of_many(&["i-1".into(), "vol-1".into(), "i-none".into()]))
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many["vol-1"], pairs(&[("Name", "disk")]));
    let deleted = store
        .write(|t| {
            t.delete_tags(
                "i-1",
                &[("env".into(), Some("dev".into())), ("team".into(), None)],
            )
        })
        .unwrap();
    assert_eq!(deleted, 1, "env=prod stays: the value did not match");
    let described = store
        .read(|t| {
            t.list_tags(&TagFilter {
                resource_id_patterns: vec!["i-*".into()],
                keys: vec!["Name".into(), "env".into()],
                ..Default::default()
            })
        })
        .unwrap();
    let tag = |k: &str, v: &str| Tag {
        resource_id: "i-1".into(),
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(described, [tag("Name", "b"), tag("env", "prod")]);
    assert_eq!(store.write(|t| t.delete_tags("i-1", &[])).unwrap(), 2);

    let fifty: Vec<(String, String)> = (0..TAG_LIMIT)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    store.write(|t| t.set_tags("i-2", &fifty)).unwrap();
    store
        .write(|t| t.set_tags("i-2", &pairs(&[("k0", "overwrite is fine")])))
        .unwrap();
    assert!(matches!(
        store.write(|t| t.set_tags(
            "i-2",
            &pairs(&[("Name", "one too many"), ("k1", "changed")])
        )),
        Err(StoreError::TagLimitExceeded {
            limit: TAG_LIMIT,
            ..
        })
    ));
    let tags = store.read(|t| t.tags_of("i-2")).unwrap();
    assert_eq!(tags.len(), TAG_LIMIT);
    assert!(
        tags.contains(&("k1".into(), "v".into())),
        "the rejected request changed nothing"
    );
}
