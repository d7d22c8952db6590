//! The daemon's half of the per-instance jail (the VMM's is
//! `flint vmm --jail`): a uid/gid per running instance, the jail dir, the
//! instance's files made the jail uid's, and a cgroup v2 with limits.
//!
//! ```text
//! DATA_DIR/jail/<id>/                   the VMM's `/` (0700, the jail uid's);
//!                                       its owner IS the allocation record,
//!                                       so a re-adopted VM keeps its uid
//! /sys/fs/cgroup/flint.slice/<id>/      memory.max, cpu.max, pids.max
//! ```
//!
//! The jail dir and the cgroup go when the VM process has ended
//! ([`release`]); the volumes the jail uid owned go back to root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{SupervisorConfig, SupervisorError};

/// `flint serve --jail-uids` default: 65 536 ids well above any distro's
/// users and systemd's dynamic range.
pub const DEFAULT_UIDS: (u32, u32) = (900_000, 965_535);
/// Where cgroup v2 is mounted on a modern host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Guest RAM + this is an instance's memory.max: the VMM's own heap,
/// io_uring rings, device queues, page cache of its volumes.
pub const VMM_OVERHEAD_MIB: u64 = 256;
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailSettings {
    /// Jail uids (= gids), inclusive.
    pub uids: (u32, u32),
    /// The cgroup v2 hierarchy's root.
    pub cgroup_root: PathBuf,
}

impl Default for JailSettings {
    fn default() -> Self {
        JailSettings {
            uids: DEFAULT_UIDS,
            cgroup_root: PathBuf::from(CGROUP_ROOT),
        }
    }
}

impl JailSettings {
    /// The Flint parent cgroup.
    pub fn parent(&self) -> PathBuf {
        self.cgroup_root.join("flint.slice")
    }

    pub fn cgroup(&self, id: &str) -> PathBuf {
        self.parent().join(id)
    }
}

/// `FIRST-LAST`.
pub fn parse_uids(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("--jail-uids {s:?}: want FIRST-LAST"))?;
    let (a, b): (u32, u32) = (
        a.parse()
            .map_err(|_| format!("--jail-uids {s:?}: {a:?} is no uid"))?,
        b.parse()
            .map_err(|_| format!("--jail-uids {s:?}: {b:?} is no uid"))?,
    );
    if a == 0 || a > b {
        return Err(format!("--jail-uids {s:?}: want 0 < FIRST <= LAST"));
    }
    Ok((a, b))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let path = path.to_path_buf();
    move |source| SupervisorError::Io { path, source }
}

fn jail_error(what: String) -> SupervisorError {
    SupervisorError::Jail(what)
}

/// At daemon start: cgroup v2 with the memory, cpu and pids controllers,
/// and the Flint parent cgroup handing them down.
pub fn check_host(s: &JailSettings) -> Result<(), SupervisorError> {
    let available =
        std::fs::read_to_string(s.cgroup_root.join("cgroup.controllers")).map_err(|e| {
            jail_error(format!(
                "{} is not a cgroup v2 hierarchy ({e}); jailing needs cgroup v2 \
                 (or run flint serve --no-jail)",
                s.cgroup_root.display()
            ))
        })?;
    let missing: Vec<_> = CONTROLLERS
        .iter()
        .filter(|c| !available.split_whitespace().any(|a| a == **c))
        .collect();
    if !missing.is_empty() {
        return Err(jail_error(format!(
            "cgroup v2 at {} lacks the {missing:?} controller(s) (bound to cgroup v1?); \
             jailing needs them (or run flint serve --no-jail)",
            s.cgroup_root.display()
        )));
    }
    let parent = s.parent();
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let enable = "+memory +cpu +pids";
    for dir in [&s.cgroup_root, &parent] {
        let control = dir.join("cgroup.subtree_control");
        std::fs::write(&control, enable).map_err(io(&control))?;
    }
    Ok(())
}

/// What `launch` needs of the jail.
#[derive(Debug)]
pub struct Jail {
    pub uid: u32,
    pub root: PathBuf,
    pub cgroup: PathBuf,
}

impl Jail {
    /// The `flint vmm` options.
    pub fn args(&self) -> Vec<String> {
        let uid = self.uid.to_string();
        vec![
            "--jail".into(),
            "--jail-uid".into(),
            uid.clone(),
            "--jail-gid".into(),
            uid,
            "--jail-root".into(),
            self.root.to_string_lossy().into_owned(),
            "--jail-cgroup".into(),
            self.cgroup.to_string_lossy().into_owned(),
        ]
    }
}

pub fn jail_dir(cfg: &SupervisorConfig, id: &str) -> PathBuf {
    cfg.layout.data_dir().join("jail").join(id)
}

/// The uid of `id`'s jail if it has one (its dir's owner).
pub fn uid_of(cfg: &SupervisorConfig, id: &str) -> Option<u32> {
    std::fs::metadata(jail_dir(cfg, id)).ok().map(|m| m.uid())
}

/// The lowest uid of `range` that no jail dir under `jails` owns.
pub fn free_uid(jails: &Path, range: (u32, u32)) -> Option<u32> {
    let taken: std::collections::HashSet<u32> = std::fs::read_dir(jails)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok().map(|m| m.uid()))
        .collect();
    (range.0..=range.1).find(|u| !taken.contains(u))
}

/// Everything before a jailed VMM may start: its uid (the one it had if
/// its jail dir survived a daemon restart), the jail dir, the cgroup and
/// its limits, the volumes and console log made the jail uid's. Undone if
/// any step fails.
pub fn prepare(
    cfg: &SupervisorConfig,
    s: &JailSettings,
    id: &str,
    vcpus: u8,
    memory_mib: u64,
    files: &[PathBuf],
) -> Result<Jail, SupervisorError> {
    let root = jail_dir(cfg, id);
    let jails = root.parent().unwrap_or(&root).to_path_buf();
    std::fs::create_dir_all(&jails).map_err(io(&jails))?;
    std::fs::set_permissions(&jails, std::fs::Permissions::from_mode(0o700)).map_err(io(&jails))?;
    let uid = match uid_of(cfg, id).filter(|u| (s.uids.0..=s.uids.1).contains(u)) {
        Some(uid) => uid,
        None => free_uid(&jails, s.uids)
            .ok_or_else(|| jail_error(format!("no free jail uid in {}-{}", s.uids.0, s.uids.1)))?,
    };
    let jail = Jail {
        uid,
        root,
        cgroup: s.cgroup(id),
    };
    let made = make(&jail, vcpus, memory_mib, files);
    if made.is_err() {
        release(cfg, s, id);
    }
    made.map(|()| jail)
}

fn make(jail: &Jail, vcpus: u8, memory_mib: u64, files: &[PathBuf]) -> Result<(), SupervisorError> {
    let root = &jail.root;
    std::fs::create_dir_all(root).map_err(io(root))?;
    std::os::unix::fs::chown(root, Some(jail.uid), Some(jail.uid)).map_err(io(root))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).map_err(io(root))?;
    for file in files {
        if !file.exists() {
            std::fs::File::create(file).map_err(io(file))?;
        }
        std::os::unix::fs::chown(file, Some(jail.uid), Some(jail.uid)).map_err(io(file))?;
    }
    let cg = &jail.cgroup;
    std::fs::create_dir_all(cg).map_err(io(cg))?;
    for (name, value) in limits(vcpus, memory_mib) {
        let file = cg.join(name);
        std::fs::write(&file, value).map_err(io(&file))?;
    }
    Ok(())
}

/// The cgroup files of an instance: memory.max = guest RAM + the VMM's
/// overhead, cpu.max = one CPU per vCPU, pids.max for the VMM's threads.
pub fn limits(vcpus: u8, memory_mib: u64) -> [(&'static str, String); 3] {
    let vcpus = u64::from(vcpus.max(1));
    [
        (
            "memory.max",
            ((memory_mib + VMM_OVERHEAD_MIB) << 20).to_string(),
        ),
        ("cpu.max", format!("{} 100000", vcpus * 100_000)),
        ("pids.max", (136 + 8 * vcpus).to_string()),
    ]
}

/// After the VM process ended: the cgroup and the jail dir go, files the
/// jail uid owned in the volumes dir go back to root. Best effort.
pub fn release(cfg: &SupervisorConfig, s: &JailSettings, id: &str) {
    let root = jail_dir(cfg, id);
    if let Some(uid) = uid_of(cfg, id) {
        let volumes = cfg.layout.volumes_dir();
        for entry in std::fs::read_dir(&volumes).into_iter().flatten().flatten() {
            if entry.metadata().is_ok_and(|m| m.uid() == uid) {
                let _ = std::os::unix::fs::chown(entry.path(), Some(0), Some(0));
            }
        }
    }
    // An emptied cgroup may take a moment to be removable.
    let cg = s.cgroup(id);
    for _ in 0..20 {
        if !cg.exists() || std::fs::remove_dir(&cg).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Hot-attach: the volume file appears in the jail at its own path (a
/// hard link: the volumes and the jail dirs share the data dir's file
/// system), owned by the jail uid.
pub fn admit(cfg: &SupervisorConfig, id: &str, volume: &Path) -> Result<(), SupervisorError> {
    let Some(uid) = uid_of(cfg, id) else {
        return Ok(());
    };
    let root = jail_dir(cfg, id);
    let link = root.join(volume.strip_prefix("/").unwrap_or(volume));
    if let Some(dir) = link.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::os::unix::fs::chown(volume, Some(uid), Some(uid)).map_err(io(volume))?;
    if !link.exists() {
        std::fs::hard_link(volume, &link).map_err(io(&link))?;
    }
    Ok(())
}

/// Detach: the hot-attach link goes and the volume is root's again (a
/// volume bound at boot stays visible to that VMM until it exits).
pub fn dismiss(cfg: &SupervisorConfig, id: &str, volume: &Path) {
    let Some(uid) = uid_of(cfg, id) else {
        return;
    };
    let link = jail_dir(cfg, id).join(volume.strip_prefix("/").unwrap_or(volume));
    let _ = std::fs::remove_file(link);
    if std::fs::metadata(volume).is_ok_and(|m| m.uid() == uid) {
        let _ = std::os::unix::fs::chown(volume, Some(0), Some(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges_parse() {
        assert_eq!(parse_uids("900000-965535"), Ok((900_000, 965_535)));
        assert!(parse_uids("0-10").is_err());
        assert!(parse_uids("10-5").is_err());
        assert!(parse_uids("10").is_err());
    }

    #[test]
    fn limits_follow_the_instance() {
        let l = limits(2, 1024);
        assert_eq!(l[0], ("memory.max", ((1024 + 256) << 20).to_string()));
        assert_eq!(l[1], ("cpu.max", "200000 100000".to_string()));
        assert_eq!(l[2].0, "pids.max");
    }

    #[test]
    fn a_cgroup_is_made_with_limits_and_removed_with_the_jail() {
        // A fake cgroup root: cgroup v2 is files (the kernel's own checks
        // aside).
        let tmp = std::env::temp_dir().join(format!("flint-jail-sup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let data = tmp.join("data");
        let cg = tmp.join("cg");
        std::fs::create_dir_all(data.join("volumes")).unwrap();
        std::fs::create_dir_all(&cg).unwrap();
        let s = JailSettings {
            uids: (4_000_000, 4_000_001),
            cgroup_root: cg.clone(),
        };
        assert!(check_host(&s).is_err(), "no cgroup.controllers: refused");
        std::fs::write(cg.join("cgroup.controllers"), "cpu io memory").unwrap();
        let err = check_host(&s).unwrap_err().to_string();
        assert!(err.contains("pids"), "{err}");
        std::fs::write(cg.join("cgroup.controllers"), "cpuset cpu io memory pids").unwrap();
        check_host(&s).unwrap();
        assert_eq!(
            std::fs::read_to_string(s.parent().join("cgroup.subtree_control")).unwrap(),
            "+memory +cpu +pids"
        );

        let cfg = SupervisorConfig::new(
            &data,
            crate::store::ips::Subnet::parse("10.0.0.0/24").unwrap(),
        );
        // SAFETY: geteuid has no arguments.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("chown needs root: the rest is skipped");
            return;
        }
        let vol = data.join("volumes/vol-1.raw");
        std::fs::write(&vol, b"").unwrap();
        let a = prepare(&cfg, &s, "i-a", 2, 512, std::slice::from_ref(&vol)).unwrap();
        assert_eq!(a.uid, 4_000_000);
        assert_eq!(std::fs::metadata(&vol).unwrap().uid(), 4_000_000);
        let meta = std::fs::metadata(&a.root).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (4_000_000, 0o700));
        assert_eq!(
            std::fs::read_to_string(a.cgroup.join("cpu.max")).unwrap(),
            "200000 100000"
        );
        assert!(a.args().contains(&"--jail-cgroup".to_string()));
        // The same instance again (a daemon restart) keeps its uid; the
        // next one gets the next; the range can run out.
        assert_eq!(
            prepare(&cfg, &s, "i-a", 2, 512, &[]).unwrap().uid,
            4_000_000
        );
        assert_eq!(
            prepare(&cfg, &s, "i-b", 1, 512, &[]).unwrap().uid,
            4_000_001
        );
        let full = prepare(&cfg, &s, "i-c", 1, 512, &[]).unwrap_err();
        assert!(full.to_string().contains("no free jail uid"), "{full}");
        assert!(!jail_dir(&cfg, "i-c").exists() && !s.cgroup("i-c").exists());
        // Hot-attach links the volume into the jail at its own path.
        let hot = data.join("volumes/vol-2.raw");
        std::fs::write(&hot, b"").unwrap();
        let hot = std::fs::canonicalize(&hot).unwrap();
        admit(&cfg, "i-b", &hot).unwrap();
        let link = jail_dir(&cfg, "i-b").join(hot.strip_prefix("/").unwrap());
        assert_eq!(std::fs::metadata(&link).unwrap().uid(), 4_000_001);
        dismiss(&cfg, "i-b", &hot);
        assert!(!link.exists());
        assert_eq!(std::fs::metadata(&hot).unwrap().uid(), 0);

        // A real cgroup's files go with its rmdir; the fake's must go first.
        for (name, _) in limits(1, 1) {
            std::fs::remove_file(a.cgroup.join(name)).unwrap();
        }
        release(&cfg, &s, "i-a");
        assert!(!a.root.exists() && !a.cgroup.exists());
        assert_eq!(std::fs::metadata(&vol).unwrap().uid(), 0);
        release(&cfg, &s, "i-b");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
