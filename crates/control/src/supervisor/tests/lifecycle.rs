//! The supervisor driving the stand-in VMM through EC2's lifecycle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TempDir;
use crate::store::images::{ImageRecord, ImageState};
use crate::store::instances::{InstanceRecord, InstanceState, ShutdownBehavior};
use crate::store::ips::Subnet;
use crate::store::{Store, now_ms};
use crate::supervisor::records::{self, LaunchRequest};
use crate::supervisor::{Supervisor, SupervisorConfig, process};

struct Fixture {
    dir: TempDir,
    sup: Arc<Supervisor>,
    store: Store,
    image: ImageRecord,
}

fn standin() -> Vec<String> {
    vec![
        "python3".into(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/standin_vmm.py"
        )
        .into(),
    ]
}

fn fixture(tag: &str, tweak: impl FnOnce(&mut SupervisorConfig)) -> Fixture {
    let dir = TempDir::new(tag);
    let mut cfg = SupervisorConfig::new(dir.path(), Subnet::parse("172.31.0.0/20").unwrap());
    cfg.bridge = None;
    cfg.vmm_command = standin();
    cfg.stop_timeout = Duration::from_secs(5);
    cfg.kill_grace = Duration::from_secs(1);
    tweak(&mut cfg);
    let sup = Supervisor::new(cfg).unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let path = images.join("ami.raw");
    std::fs::write(&path, b"bootable?").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(3 << 20).unwrap();
    let image = ImageRecord {
        id: "ami-0123456789abcdef0".into(),
        name: "test".into(),
        location: path.to_string_lossy().into_owned(),
        path: path.to_string_lossy().into_owned(),
        size_bytes: 3 << 20,
        boot_mode: "legacy-bios".into(),
        state: ImageState::Available,
        created_ms: now_ms(),
    };
    store.write(|t| t.insert_image(&image)).unwrap();
    Fixture {
        dir,
        sup,
        store,
        image,
    }
}

impl Fixture {
    fn launch(&mut self, req: &LaunchRequest) -> InstanceRecord {
        let (cfg, image) = (self.sup.config().clone(), self.image.clone());
        let record = self
            .store
            .write(|t| records::insert_instance(t, &cfg, &image, req, "r-0123456789abcdef0", 0))
            .unwrap();
        self.sup.kick(&record.id, false);
        record
    }

    fn get(&mut self, id: &str) -> InstanceRecord {
        self.store.read(|t| t.instance(id)).unwrap()
    }

    fn wait_for(&mut self, id: &str, state: InstanceState) -> InstanceRecord {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let record = self.get(id);
            if record.state == state {
                return record;
            }
            assert!(
                Instant::now() < deadline,
                "{id} stuck in {} waiting for {state}: {:?}",
                record.state,
                record.state_reason
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn transition(&mut self, id: &str, from: &[InstanceState], to: InstanceState) {
        self.store
            .write(|t| t.transition_instance(id, from, to, None))
            .unwrap();
    }

    fn pid(&mut self, id: &str) -> i32 {
        self.store
            .read(|t| t.vmm_process(id))
            .unwrap()
            .expect("a process")
            .pid
    }
}

fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a child the test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn launch_stop_start_terminate() {
    let mut f = fixture("life", |_| {});
    let mut req = LaunchRequest::new("t3.micro");
    req.user_data = Some(b"#!/bin/sh\necho hello from user data\n".to_vec());
    req.root_size_gib = Some(2);
    let record = f.launch(&req);
    let id = record.id.clone();
    let running = f.wait_for(&id, InstanceState::Running);
    assert_eq!(running.private_ip.unwrap().to_string(), "172.31.0.4");
    let volumes = f
        .store
        .read(|t| t.list_volumes(&[], std::slice::from_ref(&id)))
        .unwrap();
    let root = std::path::PathBuf::from(&volumes[0].path);
    assert_eq!(std::fs::metadata(&root).unwrap().len(), 2 << 30);
    let vm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.sup.layout().vm_config(&id)).unwrap())
            .unwrap();
    assert_eq!(vm["vcpus"], 2);
    assert_eq!(vm["nics"][0]["ip"], "172.31.0.4/20");
    assert_eq!(vm["nics"][0]["mac"], record.mac.as_str());
    assert_eq!(vm["metadata"]["local_ipv4"], "172.31.0.4");
    let console = String::from_utf8(f.sup.console_output(&id)).unwrap();
    assert!(console.contains("hello from user data"), "{console}");

    // Stop: graceful, the process exits 0, stopped with the user's reason.
    let pid = f.pid(&id);
    f.transition(&id, &[InstanceState::Running], InstanceState::Stopping);
    f.sup.kick(&id, false);
    let stopped = f.wait_for(&id, InstanceState::Stopped);
    assert_eq!(
        stopped.state_reason.unwrap().code,
        "Client.UserInitiatedShutdown"
    );
    assert!(f.store.read(|t| t.vmm_process(&id)).unwrap().is_none());
    assert!(!process::is_same_process(pid, 0));

    // Start: a new process on the same volume, same address and MAC.
    std::fs::write(&root, b"guest data").unwrap();
    f.transition(&id, &[InstanceState::Stopped], InstanceState::Pending);
    f.sup.kick(&id, false);
    let again = f.wait_for(&id, InstanceState::Running);
    assert_eq!(
        (again.private_ip, &again.mac),
        (running.private_ip, &running.mac)
    );
    assert_eq!(std::fs::read(&root).unwrap(), b"guest data");
    assert_ne!(f.pid(&id), pid);

    // Terminate: the volume and the address go; the record stays.
    f.transition(&id, &[InstanceState::Running], InstanceState::ShuttingDown);
    f.sup.kick(&id, false);
    let gone = f.wait_for(&id, InstanceState::Terminated);
    assert!(gone.terminated_at_ms.is_some());
    assert!(!root.exists());
    assert!(
        f.store
            .read(|t| t.list_volumes(&[], std::slice::from_ref(&id)))
            .unwrap()
            .is_empty()
    );
    assert!(f.store.read(|t| t.ips_of(&id)).unwrap().is_empty());
    drop(f.dir);
}

#[test]
fn guest_power_off_follows_the_shutdown_behavior_and_a_crash_stops_with_a_reason() {
    let mut f = fixture("poweroff", |_| {});
    let stop = f.launch(&LaunchRequest::new("t3.nano"));
    let mut req = LaunchRequest::new("t3.nano");
    req.shutdown_behavior = ShutdownBehavior::Terminate;
    let term = f.launch(&req);
    let crash = f.launch(&LaunchRequest::new("t3.nano"));
    for r in [&stop, &term, &crash] {
        f.wait_for(&r.id, InstanceState::Running);
    }
    let pids = [f.pid(&stop.id), f.pid(&term.id), f.pid(&crash.id)];
    signal(pids[0], libc::SIGUSR1);
    signal(pids[1], libc::SIGUSR1);
    signal(pids[2], libc::SIGUSR2);
    let r = f.wait_for(&stop.id, InstanceState::Stopped);
    assert_eq!(
        r.state_reason.unwrap().code,
        "Client.InstanceInitiatedShutdown"
    );
    let r = f.wait_for(&term.id, InstanceState::Terminated);
    assert_eq!(
        r.state_reason.unwrap().code,
        "Client.InstanceInitiatedShutdown"
    );
    let r = f.wait_for(&crash.id, InstanceState::Stopped);
    let reason = r.state_reason.unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert!(reason.message.contains("stand-in crash"), "{reason:?}");
}

#[test]
fn a_vmm_that_ignores_shutdown_is_hard_stopped_and_one_that_hangs_is_killed() {
    let mut f = fixture("hang", |cfg| {
        cfg.stop_timeout = Duration::from_millis(500);
        cfg.vmm_command = vec![
            "env".into(),
            "FLINT_STANDIN_HANG=1".into(),
            "python3".into(),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/support/standin_vmm.py"
            )
            .into(),
        ];
    });
    let r = f.launch(&LaunchRequest::new("t3.nano"));
    f.wait_for(&r.id, InstanceState::Running);
    f.transition(&r.id, &[InstanceState::Running], InstanceState::Stopping);
    let started = Instant::now();
    f.sup.kick(&r.id, false);
    let stopped = f.wait_for(&r.id, InstanceState::Stopped);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        stopped.state_reason.unwrap().code,
        "Client.UserInitiatedShutdown"
    );
}

#[test]
fn a_launch_that_fails_terminates_a_new_instance_with_the_reason() {
    let mut f = fixture("fail", |cfg| {
        cfg.vmm_command = vec!["/nonexistent/flint".into(), "vmm".into()];
    });
    let r = f.launch(&LaunchRequest::new("t3.nano"));
    let done = f.wait_for(&r.id, InstanceState::Terminated);
    let reason = done.state_reason.unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert!(reason.message.contains("launch failed"), "{reason:?}");
}

#[test]
fn a_new_supervisor_adopts_live_vms_and_settles_dead_ones() {
    let mut f = fixture("adopt", |_| {});
    let live = f.launch(&LaunchRequest::new("t3.nano"));
    let dead = f.launch(&LaunchRequest::new("t3.nano"));
    let stopping = f.launch(&LaunchRequest::new("t3.nano"));
    for r in [&live, &dead, &stopping] {
        f.wait_for(&r.id, InstanceState::Running);
    }
    // A second supervisor on the same data dir stands in for the daemon
    // after a restart (the first one's threads keep watching, which is
    // harmless: both settle through the same transactions).
    let cfg = f.sup.config().clone();
    let dead_pid = f.pid(&dead.id);
    let live_pid = f.pid(&live.id);
    // Make the dead one look dead to the new supervisor: a bogus start time.
    f.store
        .write(|t| {
            let mut p = t.vmm_process(&dead.id)?.unwrap();
            p.start_ticks += 1;
            t.set_vmm_process(&dead.id, Some(&p))
        })
        .unwrap();
    f.store
        .write(|t| {
            t.transition_instance(
                &stopping.id,
                &[InstanceState::Running],
                InstanceState::Stopping,
                None,
            )
        })
        .unwrap();
    let second = Supervisor::new(cfg).unwrap();
    let report = second.adopt_all().unwrap();
    assert!(report.adopted.contains(&live.id), "{report:?}");
    assert!(report.adopted.contains(&stopping.id), "{report:?}");
    assert_eq!(report.reconciled, vec![dead.id.clone()]);
    let r = f.get(&dead.id);
    assert_eq!(r.state, InstanceState::Stopped);
    // The adopted stopping one is stopped by the new supervisor.
    f.wait_for(&stopping.id, InstanceState::Stopped);
    // The adopted live one is watched: its power-off is noticed.
    signal(live_pid, libc::SIGUSR1);
    f.wait_for(&live.id, InstanceState::Stopped);
    signal(dead_pid, libc::SIGKILL);
}

#[test]
fn a_vmm_spawned_just_before_the_daemon_died_is_adopted_not_launched_twice() {
    let mut f = fixture("journal", |_| {});
    // A pending record whose launch was journalled and spawned, but whose
    // pid never reached the store: what a daemon killed between the two
    // leaves behind.
    let (cfg, image) = (f.sup.config().clone(), f.image.clone());
    let record = f
        .store
        .write(|t| {
            records::insert_instance(
                t,
                &cfg,
                &image,
                &LaunchRequest::new("t3.nano"),
                "r-0123456789abcdef0",
                0,
            )
        })
        .unwrap();
    let token = process::new_launch_token();
    f.store
        .write(|t| t.set_launch_token(&record.id, Some(&token)))
        .unwrap();
    let log = f.dir.path().join("orphan.log");
    let config = f.dir.path().join("orphan.json");
    let mut orphan = process::spawn(
        &["sh".into(), "-c".into(), "sleep 300".into(), "sh".into()],
        &[],
        &config,
        &log,
        &token,
    )
    .unwrap();
    let orphan_pid = i32::try_from(orphan.id()).unwrap();
    // (sh may not have exec'd sleep yet: the token is in its environment
    // either way.)
    let second = Supervisor::new(cfg).unwrap();
    let report = second.adopt_all().unwrap();
    assert_eq!(report.adopted, vec![record.id.clone()], "{report:?}");
    assert!(
        report.launched.is_empty(),
        "launched a second VMM: {report:?}"
    );
    assert_eq!(f.pid(&record.id), orphan_pid);
    let journal = f.store.read(|t| t.launch_token(&record.id)).unwrap();
    assert_eq!(journal, None, "the recorded pid ends the journal entry");
    // A journal entry whose process is gone: launched again as before.
    let stale = f
        .store
        .write(|t| {
            let r = records::insert_instance(
                t,
                &second.config().clone(),
                &f.image,
                &LaunchRequest::new("t3.nano"),
                "r-0123456789abcdef1",
                0,
            )?;
            t.set_launch_token(&r.id, Some("00000000000000000000000000000000"))?;
            Ok::<_, crate::store::StoreError>(r)
        })
        .unwrap();
    let third = Supervisor::new(second.config().clone()).unwrap();
    let report = third.adopt_all().unwrap();
    assert!(report.launched.contains(&stale.id), "{report:?}");
    f.wait_for(&stale.id, InstanceState::Running);
    let _ = orphan.kill();
    let _ = orphan.wait();
}

#[test]
fn the_launch_token_finds_the_topmost_process_that_carries_it() {
    let dir = TempDir::new("token");
    let token = process::new_launch_token();
    assert_eq!(token.len(), 32);
    assert_ne!(token, process::new_launch_token());
    // A parent that forks a child (as the jail's relay forks the VMM):
    // both carry the token; the parent is the one the daemon tracks.
    let mut parent = process::spawn(
        &[
            "sh".into(),
            "-c".into(),
            "sleep 300 & wait".into(),
            "sh".into(),
        ],
        &[],
        &dir.path().join("c.json"),
        &dir.path().join("c.log"),
        &token,
    )
    .unwrap();
    let pid = i32::try_from(parent.id()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait for the child to exist, so that two processes carry the token.
    while std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the child never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let found = process::find_launched(&token);
    assert_eq!(found.map(|(p, _)| p), Some(pid));
    assert!(process::find_launched("not-a-token").is_none());
    signal(pid, libc::SIGKILL);
    let _ = parent.wait();
}
