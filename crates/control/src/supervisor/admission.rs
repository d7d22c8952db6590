//! Admission control: RunInstances and StartInstances take no more of the
//! host than it has, and volumes, snapshots and images no more disk.
//!
//! Memory: every instance that has or is about to have a VMM (pending,
//! running, stopping, shutting-down) is committed its guest RAM plus
//! [`VMM_OVERHEAD_MIB`]. The memory there is to commit is what the kernel
//! could hand out now (`MemAvailable`) plus what the running VMMs already
//! hold (their RSS: it is part of what they were committed), times the
//! overcommit ratio. Counting the RSS back matters: a guest that touched
//! little of its RAM so far still owns all of it.
//!
//! vCPUs: committed vCPUs against the host's CPUs times their ratio (a
//! vCPU thread that waits costs little, so the default allows some).
//!
//! Disk: a new file needs its bytes plus [`DISK_RESERVE_BYTES`] free on
//! the data dir's filesystem (statvfs: what an unprivileged writer may use,
//! so the root-only reserve is never eaten).

use std::path::Path;

use thiserror::Error;

use super::Supervisor;
use crate::store::instances::InstanceFilter;
use crate::store::{StoreError, Tx};

/// What a VMM costs besides its guest's RAM, for admission. The cgroup's
/// memory.max (jail.rs) allows more, as a ceiling for bursts.
pub const VMM_OVERHEAD_MIB: u64 = 64;

/// Free space kept on the data dir's filesystem after any new file, so
/// that the store, the logs and running volumes still have room.
pub const DISK_RESERVE_BYTES: u64 = 256 << 20;

#[derive(Debug, Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown instance type {0}")]
    UnknownType(String),
    #[error(
        "this host has room for {fits} more instance(s) of this type: {memory_left_mib} MiB of \
         memory and {vcpus_left} vCPU(s) left for instances, and each needs {need_mib} MiB \
         (guest RAM + VMM) and {need_vcpus} vCPU(s)"
    )]
    Instances {
        fits: u64,
        memory_left_mib: u64,
        vcpus_left: u64,
        need_mib: u64,
        need_vcpus: u64,
    },
    #[error(
        "the data dir's filesystem has {free_mib} MiB free; this needs {need_mib} MiB and \
         {reserve_mib} MiB stay free"
    )]
    Disk {
        free_mib: u64,
        need_mib: u64,
        reserve_mib: u64,
    },
    #[error("{path}: cannot tell the free space: {source}")]
    Statvfs {
        path: String,
        source: std::io::Error,
    },
}

/// The ratios `flint serve` was given (`--memory-overcommit`,
/// `--vcpu-overcommit`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdmissionPolicy {
    pub memory_overcommit: f64,
    pub vcpu_overcommit: f64,
}

impl Default for AdmissionPolicy {
    /// Memory is never overcommitted (a guest that finds its RAM missing
    /// is OOM-killed on the host); vCPUs four to a CPU.
    fn default() -> Self {
        AdmissionPolicy {
            memory_overcommit: 1.0,
            vcpu_overcommit: 4.0,
        }
    }
}

/// What one instance asks of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    /// Guest RAM as the VMM gets it (after `--max-instance-memory`).
    pub memory_mib: u64,
    pub vcpus: u64,
}

impl Demand {
    fn committed_mib(self) -> u64 {
        self.memory_mib.saturating_add(VMM_OVERHEAD_MIB)
    }
}

/// The host as admission sees it at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostView {
    /// /proc/meminfo's MemAvailable.
    pub mem_available_mib: u64,
    /// The RSS of every running VMM process (and its children).
    pub vmm_rss_mib: u64,
    pub cpus: u64,
}

impl HostView {
    /// Reads the host now; `vmm_pids` are the processes the supervisor
    /// tracks (the jail's relay, whose child is the VMM, or the VMM).
    pub fn read(vmm_pids: &[i32]) -> HostView {
        let mem_available_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| kib_field(&m, "MemAvailable:"))
            .unwrap_or(0)
            / 1024;
        let vmm_rss_kib: u64 = vmm_pids.iter().map(|pid| tree_rss_kib(*pid)).sum();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        HostView {
            mem_available_mib,
            vmm_rss_mib: vmm_rss_kib / 1024,
            cpus,
        }
    }
}

/// How many of `new` fit beside `active`, taken in order (the first that
/// does not fit ends the count); an error naming what is short when fewer
/// than `min` do.
pub fn admit(
    policy: AdmissionPolicy,
    host: HostView,
    active: &[Demand],
    new: &[Demand],
    min: usize,
) -> Result<usize, AdmissionError> {
    let memory_budget = scaled(
        host.mem_available_mib.saturating_add(host.vmm_rss_mib),
        policy.memory_overcommit,
    );
    let memory_committed: u64 = active.iter().map(|d| d.committed_mib()).sum();
    let mut memory_left_mib = memory_budget.saturating_sub(memory_committed);
    let vcpu_budget = scaled(host.cpus, policy.vcpu_overcommit);
    let mut vcpus_left = vcpu_budget.saturating_sub(active.iter().map(|d| d.vcpus).sum());
    let mut fits = 0;
    for d in new {
        if d.committed_mib() > memory_left_mib || d.vcpus > vcpus_left {
            break;
        }
        memory_left_mib -= d.committed_mib();
        vcpus_left -= d.vcpus;
        fits += 1;
    }
    if fits < min {
        // The first that did not fit (none when fewer than `min` were
        // asked for at all: nothing to name, no panic).
        let short = new.get(fits).copied().unwrap_or(Demand {
            memory_mib: 0,
            vcpus: 0,
        });
        return Err(AdmissionError::Instances {
            fits: fits as u64,
            memory_left_mib,
            vcpus_left,
            need_mib: short.committed_mib(),
            need_vcpus: short.vcpus,
        });
    }
    Ok(fits)
}

/// The states in which an instance has, or is about to have, a VMM.
const HOLDING_STATES: [&str; 4] = ["pending", "running", "stopping", "shutting-down"];

impl Supervisor {
    /// What an instance of `instance_type` asks of this host.
    pub fn demand_of(&self, instance_type: &str) -> Result<Demand, AdmissionError> {
        let (vcpus, memory_mib) = super::types::shape(instance_type)
            .ok_or_else(|| AdmissionError::UnknownType(instance_type.to_string()))?;
        let memory_mib = match self.cfg.max_memory_mib {
            Some(cap) => memory_mib.min(cap),
            None => memory_mib,
        };
        Ok(Demand {
            memory_mib,
            vcpus: u64::from(vcpus),
        })
    }

    /// How many of `new` this host takes now beside every instance that
    /// holds a VMM (read in `t`, the transaction that will record the new
    /// ones, so two requests cannot both take the last room).
    pub fn admit_in(
        &self,
        t: &Tx<'_>,
        new: &[Demand],
        min: usize,
    ) -> Result<usize, AdmissionError> {
        let filter = InstanceFilter {
            states: HOLDING_STATES.map(String::from).to_vec(),
            ..InstanceFilter::default()
        };
        let active = t
            .list_instances(&filter)?
            .iter()
            .map(|r| self.demand_of(&r.instance_type))
            .collect::<Result<Vec<_>, _>>()?;
        let host = HostView::read(&self.live_pids());
        admit(self.cfg.admission, host, &active, new, min)
    }

    /// The pids of every VM process the supervisor tracks.
    fn live_pids(&self) -> Vec<i32> {
        let slots: Vec<_> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        slots
            .iter()
            // A slot held by a launch (which may be cloning a disk) is
            // skipped rather than waited for inside the caller's write
            // transaction: its VMM holds little memory yet, and leaving it
            // out only makes admission stricter.
            .filter_map(|slot| {
                let slot = slot.try_lock().ok()?;
                slot.process.as_ref().map(|p| p.pid)
            })
            .collect()
    }
}

/// Whether a new file of `bytes` fits on `dir`'s filesystem with the
/// reserve left over.
pub fn check_disk(dir: &Path, bytes: u64) -> Result<(), AdmissionError> {
    let free = free_bytes(dir).map_err(|source| AdmissionError::Statvfs {
        path: dir.display().to_string(),
        source,
    })?;
    check_disk_space(free, bytes)
}

/// [`check_disk`] on a known amount of free space.
pub fn check_disk_space(free: u64, bytes: u64) -> Result<(), AdmissionError> {
    if bytes.saturating_add(DISK_RESERVE_BYTES) > free {
        return Err(AdmissionError::Disk {
            free_mib: free >> 20,
            need_mib: bytes.div_ceil(1 << 20),
            reserve_mib: DISK_RESERVE_BYTES >> 20,
        });
    }
    Ok(())
}

/// What an unprivileged writer may still write on `dir`'s filesystem.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path and a pointer to writable memory the
    // size of a statvfs; the kernel fills it or returns -1.
    if unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the whole struct.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn scaled(value: u64, ratio: f64) -> u64 {
    if !ratio.is_finite() || ratio <= 0.0 {
        return 0;
    }
    // (f64 → u64 saturates.)
    (value as f64 * ratio) as u64
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// VmRSS of `pid` and its children (one level: the relay and its VMM).
fn tree_rss_kib(pid: i32) -> u64 {
    let rss = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| kib_field(&s, "VmRSS:"))
            .unwrap_or(0)
    };
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    rss(&pid.to_string()) + children.split_whitespace().map(rss).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn host(available: u64, rss: u64, cpus: u64) -> HostView {
        HostView {
            mem_available_mib: available,
            vmm_rss_mib: rss,
            cpus,
        }
    }

    fn micro() -> Demand {
        Demand {
            memory_mib: 1024,
            vcpus: 1,
        }
    }

    #[test]
    fn memory_already_committed_counts_even_when_untouched() {
        let policy = AdmissionPolicy::default();
        // 8 GiB free, one running 4 GiB guest that touched 512 MiB so far.
        let big = Demand {
            memory_mib: 4096,
            vcpus: 2,
        };
        let h = host(8192, 512, 16);
        // Budget 8704, committed 4160: 4544 left; a 4 GiB guest needs 4160.
        assert_eq!(admit(policy, h, &[big], &[big; 5], 1).ok(), Some(1));
        // A second running one leaves 384 MiB: nothing fits.
        let err = admit(policy, h, &[big, big], &[big], 1).unwrap_err();
        assert!(
            matches!(
                err,
                AdmissionError::Instances {
                    fits: 0,
                    memory_left_mib: 384,
                    vcpus_left: 60,
                    need_mib: 4160,
                    need_vcpus: 2,
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("384 MiB"), "{err}");
    }

    #[test]
    fn max_count_shrinks_to_what_fits_and_min_count_is_the_floor() {
        let policy = AdmissionPolicy::default();
        let h = host(4 * 1088, 0, 64);
        assert_eq!(admit(policy, h, &[], &[micro(); 10], 1).ok(), Some(4));
        assert_eq!(admit(policy, h, &[], &[micro(); 10], 4).ok(), Some(4));
        assert!(admit(policy, h, &[], &[micro(); 10], 5).is_err());
        // Overcommitting memory twice doubles the room.
        let twice = AdmissionPolicy {
            memory_overcommit: 2.0,
            ..policy
        };
        assert_eq!(admit(twice, h, &[], &[micro(); 10], 1).ok(), Some(8));
    }

    #[test]
    fn vcpus_are_limited_by_their_ratio() {
        let h = host(1 << 20, 0, 2);
        let policy = AdmissionPolicy::default();
        // 2 CPUs × 4: eight 1-vCPU guests, then no more.
        assert_eq!(admit(policy, h, &[], &[micro(); 100], 1).ok(), Some(8));
        let active = vec![micro(); 8];
        let err = admit(policy, h, &active, &[micro()], 1).unwrap_err();
        assert!(
            matches!(err, AdmissionError::Instances { vcpus_left: 0, .. }),
            "{err:?}"
        );
        let strict = AdmissionPolicy {
            vcpu_overcommit: 1.0,
            ..policy
        };
        assert_eq!(admit(strict, h, &[], &[micro(); 100], 1).ok(), Some(2));
        // A nonsense ratio admits nothing rather than everything.
        let nan = AdmissionPolicy {
            vcpu_overcommit: f64::NAN,
            ..policy
        };
        assert!(admit(nan, h, &[], &[micro()], 1).is_err());
    }

    #[test]
    fn mixed_shapes_are_taken_in_order() {
        let policy = AdmissionPolicy::default();
        let small = Demand {
            memory_mib: 448,
            vcpus: 1,
        };
        let big = Demand {
            memory_mib: 4096,
            vcpus: 2,
        };
        // Room for 2048 MiB: the small one fits, the big one after it not,
        // and nothing after the big one is tried.
        let h = host(2048, 0, 8);
        assert_eq!(admit(policy, h, &[], &[small, big, small], 1).ok(), Some(1));
        let err = admit(policy, h, &[], &[small, big, small], 3).unwrap_err();
        assert!(
            matches!(
                err,
                AdmissionError::Instances {
                    fits: 1,
                    need_mib: 4160,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(admit(policy, h, &[], &[], 0).ok(), Some(0));
        // A MinCount above what was asked for is an error, not a panic.
        assert!(admit(policy, h, &[], &[], 1).is_err());
    }

    #[test]
    fn disk_space_keeps_the_reserve() {
        assert!(check_disk_space(10 * 1024 * MIB, MIB).is_ok());
        assert!(check_disk_space(DISK_RESERVE_BYTES + MIB, MIB).is_ok());
        let err = check_disk_space(DISK_RESERVE_BYTES + MIB, 2 * MIB).unwrap_err();
        assert!(
            matches!(
                err,
                AdmissionError::Disk {
                    free_mib: 257,
                    need_mib: 2,
                    reserve_mib: 256,
                }
            ),
            "{err:?}"
        );
        // The real filesystem answers, and nothing fits on it that is
        // bigger than it.
        let free = free_bytes(Path::new("/")).unwrap();
        assert!(free > 0);
        assert!(matches!(
            check_disk(Path::new("/"), free),
            Err(AdmissionError::Disk { .. })
        ));
        assert!(matches!(
            check_disk(Path::new("/no/such/dir"), 0),
            Err(AdmissionError::Statvfs { .. })
        ));
    }

    #[test]
    fn the_host_view_reads_this_machine() {
        let me = i32::try_from(std::process::id()).unwrap();
        let view = HostView::read(&[me]);
        assert!(view.mem_available_mib > 0);
        assert!(view.cpus >= 1);
        // This test process has some RSS of its own.
        assert!(view.vmm_rss_mib > 0 || tree_rss_kib(me) > 0);
    }
}
