//! `flint vmm --jail` on the local /dev/kvm (needs root; skipped
//! otherwise): a real jailed VMM running a guest of a few halting
//! instructions (any KVM flavour runs it). Checks what the kernel says
//! about the jailed process (ids, capabilities, no_new_privs, seccomp on
//! every thread, its root, its cgroup) and runs the containment drill.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An ELF64 kernel whose entry point runs `cli; hlt; jmp .-3` at 1 MiB.
fn halting_kernel(path: &Path) {
    const LOAD: u64 = 0x10_0000;
    const CODE_OFFSET: u64 = 0x1000;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes());
    elf.extend_from_slice(&0x3eu16.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&LOAD.to_le_bytes());
    elf.extend_from_slice(&64u64.to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes());
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 64, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&5u32.to_le_bytes());
    for word in [CODE_OFFSET, LOAD, LOAD, 4, 4, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.resize(CODE_OFFSET as usize, 0);
    elf.extend_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]);
    std::fs::write(path, elf).unwrap();
}

fn usable() -> bool {
    // SAFETY: geteuid has no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("needs root and /dev/kvm: skipped");
        return false;
    }
    true
}

/// A scratch dir with the jail root (0700, owned by `uid`), the kernel,
/// a volume owned by `uid` and another instance's volume.
struct Scene {
    dir: PathBuf,
    root: PathBuf,
    kernel: PathBuf,
    volume: PathBuf,
    foreign: PathBuf,
    uid: u32,
}

impl Scene {
    fn new(name: &str, uid: u32) -> Scene {
        let dir = std::env::temp_dir().join(format!("flint-jail-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let kernel = dir.join("halt.elf");
        halting_kernel(&kernel);
        std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o644)).unwrap();
        let volume = dir.join("vol.raw");
        std::fs::File::create(&volume)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        std::os::unix::fs::chown(&volume, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o600)).unwrap();
        let foreign = dir.join("other-instance.raw");
        std::fs::write(&foreign, b"secret").unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600)).unwrap();
        Scene {
            dir,
            root,
            kernel,
            volume,
            foreign,
            uid,
        }
    }

    fn vmm(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flint"));
        let uid = self.uid.to_string();
        cmd.arg("vmm")
            .args(["--jail", "--jail-uid", &uid, "--jail-gid", &uid])
            .arg("--jail-root")
            .arg(&self.root)
            .arg("--kernel")
            .arg(&self.kernel)
            .args(["--memory", "64", "--shutdown-timeout", "1"])
            .arg("--disk")
            .arg(format!("{},serial=vol-jail", self.volume.display()))
            .arg("--console")
            .arg(self.dir.join("console.log"))
            .args(extra);
        cmd
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Vmm(Child);

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn state(sock: &Path) -> Option<String> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.write_all(b"GET /vm HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["state"].as_str().map(str::to_string)
}

fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}

/// The cgroup v2 mount point, if any.
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

#[test]
fn a_jailed_vmm_runs_with_no_privileges_in_its_own_root() {
    if !usable() {
        return;
    }
    let uid = 900_000 + std::process::id() % 60_000;
    let scene = Scene::new("run", uid);
    let sock = scene.dir.join("vm.sock");
    // A cgroup of our own, with limits where the controllers are there.
    let cgroup = cgroup2_mount().map(|m| m.join(format!("flint-jail-test-{}", std::process::id())));
    if let Some(cg) = &cgroup {
        std::fs::create_dir_all(cg).unwrap();
        for (file, value) in [
            ("memory.max", "335544320"),
            ("cpu.max", "100000 100000"),
            ("pids.max", "256"),
        ] {
            if cg.join(file).exists() {
                std::fs::write(cg.join(file), value).unwrap();
            } else {
                eprintln!("{file}: no such controller on this host's cgroup v2: not checked");
            }
        }
    }
    let mut cmd = scene.vmm(&["--api-socket", sock.to_str().unwrap()]);
    if let Some(cg) = &cgroup {
        cmd.arg("--jail-cgroup").arg(cg);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let relay = child.id();
    let mut vmm = Vmm(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while state(&sock).as_deref() != Some("running") {
        if let Ok(Some(status)) = vmm.0.try_wait() {
            let err = stderr_of(&mut vmm.0);
            panic!("the jailed VMM exited ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "the jailed VMM did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The relay (the pid we spawned) holds no privileges either.
    let status = std::fs::read_to_string(format!("/proc/{relay}/status")).unwrap();
    assert!(!status_field(&status, "Uid").starts_with("0\t"), "{status}");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2", "the relay's filter");
    // The VMM is the relay's only child, pid 1 of its PID namespace.
    let children = std::fs::read_to_string(format!("/proc/{relay}/task/{relay}/children")).unwrap();
    let inner: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{inner}/status")).unwrap();
    assert_eq!(
        status_field(&status, "NSpid").split_whitespace().last(),
        Some("1")
    );
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{inner}/task"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tasks.len() >= 3, "main, API and vCPU threads: {tasks:?}");
    for task in &tasks {
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let ids = status_field(&status, "Uid");
        assert!(
            ids.split_whitespace().all(|id| id == uid.to_string()),
            "{task:?}: Uid {ids}"
        );
        let gids = status_field(&status, "Gid");
        assert!(gids.split_whitespace().all(|id| id == uid.to_string()));
        assert_eq!(status_field(&status, "Groups"), "");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(
                status_field(&status, set),
                "0000000000000000",
                "{task:?}: {set}"
            );
        }
        assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{task:?}");
        assert_eq!(status_field(&status, "Seccomp"), "2", "{task:?}");
    }
    // Its root holds only the binds (under the scratch dir's path).
    let root = PathBuf::from(format!("/proc/{inner}/root"));
    let top: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let first = scene.dir.components().nth(1).unwrap();
    assert_eq!(top, [first.as_os_str().to_string_lossy()], "{top:?}");
    let inside = root.join(scene.dir.strip_prefix("/").unwrap());
    let mut files: Vec<String> = std::fs::read_dir(&inside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["console.log", "console.log.1", "halt.elf", "vol.raw"]
    );
    // Namespaces of its own.
    for ns in ["mnt", "pid", "ipc", "uts"] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let its = std::fs::read_link(format!("/proc/{inner}/ns/{ns}")).unwrap();
        assert_ne!(ours, its, "{ns} namespace shared");
    }
    let limits = std::fs::read_to_string(format!("/proc/{inner}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains("4096")),
        "{limits}"
    );
    if let Some(cg) = &cgroup {
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
        for pid in [relay, inner] {
            assert!(
                procs.lines().any(|p| p == pid.to_string()),
                "{pid} not in {procs}"
            );
        }
        for (file, value) in [
            ("memory.max", "335544320"),
            ("cpu.max", "100000 100000"),
            ("pids.max", "256"),
        ] {
            if let Ok(set) = std::fs::read_to_string(cg.join(file)) {
                assert_eq!(set.trim(), value);
            }
        }
    }

    // SIGTERM to the relay reaches the VMM: a graceful stop that the
    // halting guest ignores ends in a hard stop after 1 s (exit code 4),
    // passed on by the relay.
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(relay as i32, libc::SIGTERM) };
    let status = vmm.0.wait().unwrap();
    let err = stderr_of(&mut vmm.0);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(err.contains("hard stop"), "{err}");
    // The VMM is gone with its namespace.
    assert!(
        !Path::new(&format!("/proc/{inner}")).exists() || {
            std::thread::sleep(Duration::from_millis(200));
            !Path::new(&format!("/proc/{inner}")).exists()
        }
    );
    if let Some(cg) = &cgroup {
        std::fs::remove_dir(cg).unwrap();
    }
}

#[test]
fn the_containment_drill_cannot_get_out() {
    if !usable() {
        return;
    }
    let uid = 900_000 + (std::process::id() + 1) % 60_000;
    let scene = Scene::new("drill", uid);
    let out = scene
        .vmm(&["--jail-selftest", "--jail-selftest-deny"])
        .arg(&scene.foreign)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("SUCCEEDED"), "{stdout}\n{stderr}");
    for attempt in [
        "open /etc/shadow",
        "open /dev/sda",
        "mknod a block device",
        "setuid(0)",
        "mount a tmpfs",
        "fork past the process limits",
    ] {
        assert!(
            stdout.contains(&format!("{attempt}: refused")),
            "{attempt}: {stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("open {}: refused", scene.foreign.display())),
        "{stdout}"
    );
    // The last step: execve under the VMM's seccomp filter is killed.
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("execve"), "{stderr}");
}

/// What a finished child wrote to its piped stderr.
fn stderr_of(child: &mut std::process::Child) -> String {
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    err
}
