//! VM processes: spawning `flint vmm` detached from the daemon, telling a
//! live one from a recycled pid, waiting for one that is not our child,
//! and killing one only if it is still the same process.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::SupervisorError;
use super::layout::START_MARKER;

/// The size past which a VMM log is moved to `LOG.1` at the next start.
pub const VMM_LOG_MAX: u64 = 1 << 20;

/// The environment variable that carries a launch's journal token into the
/// VMM process (and its children: the jail's relay and the VMM itself).
pub const LAUNCH_TOKEN_ENV: &str = "FLINT_LAUNCH_TOKEN";

/// A new launch token: 128 random bits, hex (unique even where
/// getrandom(2) is refused: see `random::fill`).
pub fn new_launch_token() -> String {
    let mut bytes = [0u8; 16];
    ec2_wire::random::fill(&mut bytes);
    hex::encode(bytes)
}

/// Starts `command... EXTRA... --config CONFIG` in a session of its own, so that
/// neither the daemon's death nor a signal to its process group reaches
/// the VM; stdin is /dev/null, stdout and stderr append to `log`;
/// `launch_token` goes into its environment (see [`find_launched`]).
pub fn spawn(
    command: &[String],
    extra: &[String],
    config: &Path,
    log: &Path,
    launch_token: &str,
) -> Result<Child, SupervisorError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| SupervisorError::Spawn("the VMM command is empty".into()))?;
    let io = |source| SupervisorError::Io {
        path: log.to_path_buf(),
        source,
    };
    // The VMM's log grows by one marker and the VMM's messages per start:
    // kept to about two of VMM_LOG_MAX by moving a big one aside first.
    if std::fs::metadata(log).is_ok_and(|m| m.len() > VMM_LOG_MAX) {
        let mut old = log.as_os_str().to_os_string();
        old.push(".1");
        let _ = std::fs::rename(log, old);
    }
    let mut out = crate::private::private_options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    writeln!(out, "{START_MARKER} at {} ms", crate::store::now_ms()).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .args(extra)
        .arg("--config")
        .arg(config)
        .env(LAUNCH_TOKEN_ENV, launch_token)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory of the
    // parent; it runs in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| SupervisorError::Spawn(format!("cannot start {program}: {e}")))
}

/// The start time of `pid` (field 22 of /proc/PID/stat, clock ticks after
/// boot), or None if there is no such process or it is a zombie.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Field 22 of a /proc/PID/stat line, None for a zombie or a dead task.
/// The command name (field 2) may hold spaces and parentheses, so fields
/// are counted after its last ')'.
pub fn parse_stat(stat: &str) -> Option<u64> {
    let mut fields = fields_after_comm(stat)?;
    let state = fields.next()?;
    if state == "Z" || state == "X" || state == "x" {
        return None;
    }
    // After the state (field 3), field 22 is the 19th further on.
    fields.nth(18)?.parse().ok()
}

/// The process a launch with `token` spawned, found by the token in its
/// environment, with its start time: the topmost of the processes that
/// carry it (the jail's relay forks the VMM, which inherits the variable).
/// None when no live process carries it.
pub fn find_launched(token: &str) -> Option<(i32, u64)> {
    let needle = format!("{LAUNCH_TOKEN_ENV}={token}");
    let carries = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
    };
    let found: Vec<i32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| carries(*pid))
        .collect();
    found
        .iter()
        .copied()
        .find(|pid| parent_of(*pid).is_none_or(|parent| !found.contains(&parent)))
        .and_then(|pid| Some((pid, start_ticks(pid)?)))
}

/// Field 4 of /proc/PID/stat: the parent's pid.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    fields_after_comm(&stat)?.nth(1)?.parse().ok()
}

/// The fields of a /proc/PID/stat line from field 3 (the state) on: the
/// command name (field 2) may hold spaces and parentheses, so they start
/// after its last ')'.
fn fields_after_comm(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

/// Whether `pid` is still the process that started at `ticks`.
pub fn is_same_process(pid: i32, ticks: u64) -> bool {
    pid > 0 && start_ticks(pid) == Some(ticks)
}

/// Sends `signal` to `pid` if it is still the process that started at
/// `ticks` (a recycled pid is left alone).
pub fn signal_if_same(pid: i32, ticks: u64, signal: i32) -> bool {
    if !is_same_process(pid, ticks) {
        return false;
    }
    // SAFETY: kill(2) with a checked positive pid; no memory involved.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Blocks until `pid` (not our child: an adopted VM) has exited or is no
/// longer the process that started at `ticks`. Uses a pidfd where the
/// kernel has them (5.3+), else polls /proc.
pub fn wait_foreign(pid: i32, ticks: u64) {
    if let Some(fd) = pidfd_open(pid) {
        // The pidfd may name a recycled pid if the VM died just before it
        // was opened: check after opening.
        if !is_same_process(pid, ticks) {
            return;
        }
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd, the count says so; the fd is owned
            // by `fd` and stays open across the call.
            let n = unsafe { libc::poll(&mut poll, 1, 1000) };
            if n > 0 || !is_same_process(pid, ticks) {
                return;
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
    }
    while is_same_process(pid, ticks) {
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The last `flint vmm: ...` line the VMM wrote after its last start
/// marker: its one-line reason for a non-zero exit. None when it said
/// nothing (a clean power-off, or killed without a word).
pub fn last_words(log: &Path) -> Option<String> {
    let text = read_tail(log, 16 * 1024)?;
    let text = String::from_utf8_lossy(&text);
    let run = match text.rfind(START_MARKER) {
        Some(at) => &text[at..],
        None => &text[..],
    };
    run.lines()
        .rev()
        .filter_map(message_of)
        .find(|message| message.starts_with("flint vmm: "))
        .map(|message| {
            message
                .trim_start_matches("flint vmm: ")
                .chars()
                .take(200)
                .collect()
        })
}

/// A log line's message: the line itself, or (`--log-format json`) its
/// object's `message` field.
fn message_of(line: &str) -> Option<String> {
    if !line.starts_with('{') {
        return Some(line.to_string());
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value.get("message")?.as_str().map(str::to_string)
}

/// The last `max` bytes of a file.
pub fn read_tail(path: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut out = Vec::new();
    file.take(max).read_to_end(&mut out).ok()?;
    Some(out)
}
