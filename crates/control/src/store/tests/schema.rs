use std::os::unix::fs::PermissionsExt;

use super::super::schema::{LATEST_VERSION, MIGRATIONS};
use super::super::{DB_FILE, Store, StoreError};
use super::{TempDir, insert, instance, open};

#[test]
fn migrates_an_empty_directory_to_the_latest_version() {
    let dir = TempDir::new();
    let nested = dir.path().join("a/b");
    let store = Store::open(&nested).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    assert_eq!(store.path(), nested.join(DB_FILE));
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let file_mode = std::fs::metadata(nested.join(DB_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(file_mode & 0o777, 0o600);
    let versions: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, MIGRATIONS.len() as i64);
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_again() {
    let dir = TempDir::new();
    {
        let mut store = open(&dir);
        insert(&mut store, &instance(1));
    }
    let mut store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    let back = store.read(|t| t.instance("i-00000000000000001")).unwrap();
    assert_eq!(back.user_data.as_deref(), Some(&b"#!/bin/sh\n\x00\xff"[..]));
    let versions: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, LATEST_VERSION);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = TempDir::new();
    {
        let store = open(&dir);
        store
            .conn
            .execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?1, 0)",
                [LATEST_VERSION + 7],
            )
            .unwrap();
    }
    match Store::open(dir.path()) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (LATEST_VERSION + 7, LATEST_VERSION));
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a newer database was opened"),
    }
    let message = Store::open(dir.path()).err().unwrap().to_string();
    assert!(message.contains("newer than this flint"), "{message}");
}

#[test]
fn a_later_migration_upgrades_an_existing_database_in_place() {
    let dir = TempDir::new();
    {
        let mut store = open(&dir);
        insert(&mut store, &instance(1));
    }
    let v2 = "ALTER TABLE instances ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated';";
    let mut with_v2: Vec<&str> = MIGRATIONS.to_vec();
    with_v2.push(v2);
    let mut store = Store::open_with_migrations(dir.path(), &with_v2).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION + 1);
    let note: String = store
        .conn
        .query_row("SELECT note FROM instances", [], |r| r.get(0))
        .unwrap();
    assert_eq!(note, "migrated");
    assert!(
        store
            .read(|t| t.get_instance("i-00000000000000001"))
            .unwrap()
            .is_some()
    );
    drop(store);
    // This binary's schema is now older than the file's.
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::SchemaTooNew { .. })
    ));
}

#[test]
fn a_failing_migration_leaves_the_previous_version_intact() {
    let dir = TempDir::new();
    drop(open(&dir));
    let mut broken: Vec<&str> = MIGRATIONS.to_vec();
    broken.push("CREATE TABLE half_done (x INTEGER); THIS IS NOT SQL;");
    assert!(matches!(
        Store::open_with_migrations(dir.path(), &broken),
        Err(StoreError::Sqlite(_))
    ));
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
    let half: i64 = store
        .conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        half, 0,
        "the failed migration's first statement was rolled back"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();
    assert!(Store::open(dir.path()).is_err());
}

#[test]
fn an_unusable_data_dir_is_an_io_error() {
    let dir = TempDir::new();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(Store::open(&file), Err(StoreError::Io { .. })));
}
