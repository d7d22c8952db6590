use std::path::Path;

use super::*;

#[test]
fn mirror_paths_stay_under_the_root() {
    let root = Path::new("/var/lib/flint/jail/i-1");
    assert_eq!(
        mirror_path(root, Path::new("/var/lib/flint/volumes/vol-1.raw")),
        Path::new("/var/lib/flint/jail/i-1/var/lib/flint/volumes/vol-1.raw")
    );
    assert_eq!(mirror_path(root, Path::new("/")), root);
}

#[test]
fn rlimits_grow_with_vcpus() {
    let small = Rlimits::for_vm(1);
    let big = Rlimits::for_vm(64);
    assert!(big.nproc > small.nproc);
    assert!(
        small.fsize >= 64 << 40,
        "a 64 TiB volume must stay writable"
    );
    assert!(small.nofile >= 1024);
}

#[test]
fn a_spec_with_root_ids_or_a_relative_root_is_refused() {
    let spec = |uid, root: &str| JailSpec {
        uid,
        gid: uid,
        root: root.into(),
        cgroup: None,
        rlimits: Rlimits::for_vm(1),
        binds: vec![],
        keep_fds: vec![],
    };
    assert!(matches!(spec(0, "/tmp").check(), Err(JailError::RootIds)));
    assert!(matches!(
        spec(900_000, "relative").check(),
        Err(JailError::Root(_))
    ));
}

#[test]
fn the_cgroup_join_writes_our_pid() {
    let dir = std::env::temp_dir().join(format!("flint-jail-cg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    join_cgroup(&dir).unwrap();
    let written = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(written, std::process::id().to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}
