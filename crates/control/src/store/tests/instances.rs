use super::super::instances::{InstanceFilter, InstanceState, StateChange, StateReason};
use super::super::{Store, StoreError};
use super::{TempDir, insert, instance, ip, open};

use InstanceState::*;

fn ids(store: &mut Store, filter: &InstanceFilter) -> Vec<String> {
    store
        .read(|t| t.list_instances(filter))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn id(n: u32) -> String {
    instance(n).id
}

#[test]
fn insert_and_read_back_every_field() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let mut record = instance(7);
    record.private_ip = Some(ip("10.0.0.9"));
    record.state_reason = Some(StateReason {
        code: "pending".into(),
        message: "pending".into(),
    });
    record.client_token = Some("tok".into());
    record.request_hash = Some("hash".into());
    record.pid = Some(4242);
    record.vmm_socket = Some("/var/lib/flint/instances/i-7/vmm.sock".into());
    insert(&mut store, &record);
    let mut back = store.read(|t| t.instance(&record.id)).unwrap();
    assert!(back.seq > 0);
    back.seq = 0;
    assert_eq!(back, record);
    assert!(
        store
            .read(|t| t.get_instance("i-nothere"))
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.read(|t| t.instance("i-nothere")),
        Err(StoreError::NotFound {
            kind: "instance",
            ..
        })
    ));
}

#[test]
fn state_codes_and_names_are_ec2s() {
    let expected = [
        (Pending, 0, "pending"),
        (Running, 16, "running"),
        (ShuttingDown, 32, "shutting-down"),
        (Terminated, 48, "terminated"),
        (Stopping, 64, "stopping"),
        (Stopped, 80, "stopped"),
    ];
    for (state, code, name) in expected {
        assert_eq!((state.code(), state.name()), (code, name));
        assert_eq!(InstanceState::from_code(i64::from(code)), Some(state));
        assert_eq!(InstanceState::from_name(name), Some(state));
    }
    assert_eq!(InstanceState::from_code(1), None);
    assert_eq!(InstanceState::from_name("Running"), None);
}

#[test]
fn transitions_check_the_current_state() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    insert(&mut store, &instance(1));
    let i = id(1);
    let change = store
        .write(|t| t.transition_instance(&i, &[Pending], Running, None))
        .unwrap();
    assert_eq!(
        change,
        StateChange {
            id: i.clone(),
            previous: Pending,
            current: Running,
        }
    );
    // Starting a running instance is IncorrectInstanceState, nothing changes.
    match store.write(|t| t.transition_instance(&i, &[Stopped], Pending, None)) {
        Err(StoreError::IncorrectInstanceState { current, .. }) => assert_eq!(current, Running),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.read(|t| t.instance(&i)).unwrap().state, Running);

    let reason = StateReason {
        code: "Client.UserInitiatedShutdown".into(),
        message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
    };
    store
        .write(|t| {
            t.transition_instance(&i, &[Running], Stopping, Some(&reason))?;
            t.transition_instance(&i, &[Stopping], Stopped, Some(&reason))
        })
        .unwrap();
    let stopped = store.read(|t| t.instance(&i)).unwrap();
    assert_eq!(
        (stopped.state, stopped.state_reason.as_ref()),
        (Stopped, Some(&reason))
    );
    assert_eq!(stopped.terminated_at_ms, None);

    store
        .write(|t| t.transition_instance(&i, &[Stopped], Terminated, None))
        .unwrap();
    let terminated = store.read(|t| t.instance(&i)).unwrap();
    assert_eq!(terminated.state_reason, None);
    let at = terminated.terminated_at_ms.expect("terminated_at set");
    assert!(at >= terminated.launch_time_ms);
    // Terminating again (allowed by the caller) keeps the first time.
    store
        .write(|t| t.transition_instance(&i, &[Terminated], Terminated, None))
        .unwrap();
    assert_eq!(
        store.read(|t| t.instance(&i)).unwrap().terminated_at_ms,
        Some(at)
    );

    assert!(matches!(
        store.write(|t| t.transition_instance("i-0000000000000dead", &[Pending], Running, None)),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn updates_of_single_fields() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    insert(&mut store, &instance(1));
    let i = id(1);
    store
        .write(|t| {
            t.set_instance_process(&i, Some(99), Some("/run/vmm.sock"))?;
            t.set_instance_type(&i, "m5.large")?;
            t.set_user_data(&i, None)?;
            t.set_metadata_options(&i, &serde_json::json!({"http_tokens": "optional"}))
        })
        .unwrap();
    let r = store.read(|t| t.instance(&i)).unwrap();
    assert_eq!(
        (r.pid, r.vmm_socket.as_deref()),
        (Some(99), Some("/run/vmm.sock"))
    );
    assert_eq!(r.instance_type, "m5.large");
    assert_eq!(r.user_data, None);
    assert_eq!(r.metadata_options["http_tokens"], "optional");
    store
        .write(|t| t.set_instance_process(&i, None, None))
        .unwrap();
    assert_eq!(store.read(|t| t.instance(&i)).unwrap().pid, None);
    assert!(matches!(
        store.write(|t| t.set_instance_type("i-0000000000000dead", "x")),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn filters_by_field_state_and_wildcards() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    for n in 1..=6 {
        let mut r = instance(n);
        r.instance_type = if n % 2 == 0 { "t3.micro" } else { "m5.large" }.into();
        r.private_ip = Some(ip(&format!("10.0.0.{}", n + 3)));
        insert(&mut store, &r);
    }
    store
        .write(|t| {
            t.transition_instance(&id(2), &[Pending], Running, None)?;
            t.transition_instance(&id(3), &[Pending], Running, None)
        })
        .unwrap();
    let all = ids(&mut store, &InstanceFilter::default());
    assert_eq!(all, (1..=6).map(id).collect::<Vec<_>>());
    let running = InstanceFilter {
        states: vec!["running".into()],
        ..Default::default()
    };
    assert_eq!(ids(&mut store, &running), [id(2), id(3)]);
    let run_star = InstanceFilter {
        states: vec!["run*".into(), "stopped".into()],
        instance_types: vec!["t3.*".into()],
        ..Default::default()
    };
    assert_eq!(ids(&mut store, &run_star), [id(2)]);
    let by_ids = InstanceFilter {
        ids: vec![id(5), id(1), "i-0000000000000dead".into()],
        ..Default::default()
    };
    assert_eq!(ids(&mut store, &by_ids), [id(1), id(5)]);
    let by_ip = InstanceFilter {
        private_ips: vec!["10.0.0.?".into()],
        instance_types: vec!["m5.large".into()],
        ..Default::default()
    };
    assert_eq!(ids(&mut store, &by_ip), [id(1), id(3), id(5)]);
    // Case-sensitive, as EC2's filters are.
    let upper = InstanceFilter {
        states: vec!["RUNNING".into()],
        ..Default::default()
    };
    assert!(ids(&mut store, &upper).is_empty());
}

#[test]
fn filters_by_tags() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    for n in 1..=4 {
        insert(&mut store, &instance(n));
    }
    let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
    store
        .write(|t| {
            t.set_tags(&id(1), &[tag("Name", "web-1"), tag("env", "prod")])?;
            t.set_tags(&id(2), &[tag("Name", "web-2"), tag("env", "dev")])?;
            t.set_tags(&id(3), &[tag("Name", "db*1")])
        })
        .unwrap();
    let f = |tags: Vec<(&str, Vec<&str>)>, keys: Vec<&str>| InstanceFilter {
        tags: tags
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
            .collect(),
        tag_keys: keys.into_iter().map(String::from).collect(),
        ..Default::default()
    };
    assert_eq!(
        ids(&mut store, &f(vec![("Name", vec!["web-*"])], vec![])),
        [id(1), id(2)]
    );
    assert_eq!(
        ids(
            &mut store,
            &f(
                vec![("Name", vec!["web-*"]), ("env", vec!["prod", "qa"])],
                vec![]
            )
        ),
        [id(1)]
    );
    assert_eq!(ids(&mut store, &f(vec![], vec!["env"])), [id(1), id(2)]);
    assert_eq!(
        ids(&mut store, &f(vec![], vec!["e*", "Name"])),
        [id(1), id(2), id(3)]
    );
    // An escaped `*` is a literal star; a `[` is no character class.
    assert_eq!(
        ids(&mut store, &f(vec![("Name", vec!["db\\*1"])], vec![])),
        [id(3)]
    );
    assert!(
        ids(
            &mut store,
            &f(vec![("Name", vec!["db\\*2", "[dw]*"])], vec![])
        )
        .is_empty()
    );
    assert!(ids(&mut store, &f(vec![("name", vec!["*"])], vec![])).is_empty());
}

#[test]
fn pagination_by_seq() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    for n in 1..=7 {
        insert(&mut store, &instance(n));
    }
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .read(|t| {
                t.list_instances(&InstanceFilter {
                    after_seq: after,
                    limit: Some(3),
                    ..Default::default()
                })
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.seq);
        pages.push(page.into_iter().map(|r| r.id).collect::<Vec<_>>());
    }
    assert_eq!(
        pages,
        [
            vec![id(1), id(2), id(3)],
            vec![id(4), id(5), id(6)],
            vec![id(7)]
        ]
    );
}

#[test]
fn client_token_replay_and_mismatch() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    assert_eq!(
        store.read(|t| t.check_client_token("tok", "h1")).unwrap(),
        None
    );
    let mut first = instance(1);
    let mut second = instance(2);
    for (index, r) in [&mut first, &mut second].into_iter().enumerate() {
        r.client_token = Some("tok".into());
        r.request_hash = Some("h1".into());
        r.launch_index = index as u32;
    }
    store
        .write(|t| {
            assert!(t.check_client_token("tok", "h1")?.is_none());
            t.insert_instance(&second)?;
            t.insert_instance(&first)
        })
        .unwrap();
    let replay = store
        .read(|t| t.check_client_token("tok", "h1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        replay.iter().map(|r| r.launch_index).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(matches!(
        store.read(|t| t.check_client_token("tok", "h2")),
        Err(StoreError::IdempotentMismatch { token }) if token == "tok"
    ));
    assert_eq!(
        store.read(|t| t.check_client_token("other", "h1")).unwrap(),
        None
    );
}

#[test]
fn delete_and_purge_take_tags_addresses_and_attachments_along() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let subnet = super::super::ips::Subnet::parse("10.0.0.0/24").unwrap();
    for n in 1..=3 {
        let r = instance(n);
        store
            .write(|t| {
                t.insert_instance(&r)?;
                t.allocate_ip(&subnet, &r.id)?;
                t.set_tags(&r.id, &[("Name".into(), format!("n{n}"))])
            })
            .unwrap();
    }
    store
        .write(|t| {
            t.insert_volume(&super::resources::volume(1, Some((&id(1), "/dev/xvdb"))))?;
            t.transition_instance(&id(1), &[Pending], Terminated, None)?;
            t.transition_instance(&id(2), &[Pending], Terminated, None)
        })
        .unwrap();
    // Terminated just now: a cut-off in the past purges nothing.
    assert!(store.write(|t| t.purge_terminated(0)).unwrap().is_empty());
    let purged = store.write(|t| t.purge_terminated(i64::MAX)).unwrap();
    assert_eq!(purged, [id(1), id(2)]);
    assert_eq!(ids(&mut store, &InstanceFilter::default()), [id(3)]);
    store
        .read(|t| {
            assert!(t.tags_of(&id(1))?.is_empty());
            assert!(t.ips_of(&id(1))?.is_empty());
            assert_eq!(t.ips_of(&id(3))?.len(), 1);
            let volume = t.get_volume("vol-00000000000000001")?.unwrap();
            assert_eq!((volume.instance_id, volume.device), (None, None));
            assert_eq!(volume.state, super::super::volumes::VolumeState::Available);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert!(matches!(
        store.write(|t| t.delete_instance(&id(1))),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn corrupt_rows_are_errors_not_panics() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    insert(&mut store, &instance(1));
    insert(&mut store, &instance(2));
    store
        .conn
        .execute(
            "UPDATE instances SET metadata_options = 'not json' WHERE id = ?1",
            [id(1)],
        )
        .unwrap();
    store
        .conn
        .execute(
            "UPDATE instances SET private_ip = '10.0.0.300' WHERE id = ?1",
            [id(2)],
        )
        .unwrap();
    for n in [1, 2] {
        match store.read(|t| t.get_instance(&id(n))) {
            Err(StoreError::Corrupt {
                what: "instance",
                detail,
            }) => assert!(detail.contains(&id(n)), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        store.read(|t| t.list_instances(&InstanceFilter::default())),
        Err(StoreError::Corrupt { .. })
    ));
    store
        .conn
        .execute(
            "UPDATE instances SET launch_time_ms = 'yesterday' WHERE id = ?1",
            [id(2)],
        )
        .unwrap();
    assert!(matches!(
        store.read(|t| t.get_instance(&id(2))),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn the_vmm_process_is_recorded_and_cleared() {
    use super::super::processes::VmmProcess;
    let dir = TempDir::new();
    let mut store = open(&dir);
    let record = instance(1);
    insert(&mut store, &record);
    let process = VmmProcess {
        pid: 4242,
        start_ticks: 123_456_789,
        socket: "/var/lib/flint/instances/x/vmm.sock".into(),
    };
    store
        .write(|t| t.set_vmm_process(&record.id, Some(&process)))
        .unwrap();
    let got = store.read(|t| t.vmm_process(&record.id)).unwrap();
    assert_eq!(got, Some(process));
    let read = store.read(|t| t.instance(&record.id)).unwrap();
    assert_eq!(read.pid, Some(4242));
    store
        .write(|t| t.set_vmm_process(&record.id, None))
        .unwrap();
    assert_eq!(store.read(|t| t.vmm_process(&record.id)).unwrap(), None);
    assert!(matches!(
        store.write(|t| t.set_vmm_process("i-00000000000000099", None)),
        Err(StoreError::NotFound { .. })
    ));
}
