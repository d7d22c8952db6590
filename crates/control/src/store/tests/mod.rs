//! Store tests on real SQLite files in fresh temporary directories.

mod ebs;
mod instances;
mod ips;
mod pattern;
mod resources;
mod schema;
mod transactions;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Store;
use super::instances::{InstanceRecord, InstanceState, ShutdownBehavior};

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flint-store-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn open(dir: &TempDir) -> Store {
    Store::open(dir.path()).unwrap()
}

/// A pending instance numbered `n` (which makes its id and MAC unique).
pub fn instance(n: u32) -> InstanceRecord {
    InstanceRecord {
        seq: 0,
        id: format!("i-{n:017x}"),
        reservation_id: format!("r-{:017x}", n / 2),
        image_id: "ami-0123456789abcdef0".into(),
        instance_type: "t3.micro".into(),
        state: InstanceState::Pending,
        state_reason: None,
        state_changed_ms: 1_700_000_000_000,
        private_ip: None,
        mac: format!(
            "02:00:00:{:02x}:{:02x}:{:02x}",
            n >> 16 & 0xff,
            n >> 8 & 0xff,
            n & 0xff
        ),
        key_name: Some("k".into()),
        user_data: Some(b"#!/bin/sh\n\x00\xff".to_vec()),
        shutdown_behavior: ShutdownBehavior::Stop,
        metadata_options: serde_json::json!({"http_tokens": "required", "hop_limit": 2}),
        launch_index: 0,
        launch_time_ms: 1_700_000_000_000 + i64::from(n),
        client_token: None,
        request_hash: None,
        pid: None,
        vmm_socket: None,
        terminated_at_ms: None,
    }
}

pub fn insert(store: &mut Store, record: &InstanceRecord) {
    store.write(|t| t.insert_instance(record)).unwrap();
}

pub fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}
