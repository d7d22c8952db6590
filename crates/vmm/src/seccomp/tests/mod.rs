//! Filters are per thread, so each test installs one on a thread of its own.
//! A forbidden call ends the whole process (exit code 2), so the tests that
//! expect one, and the larger allow-list scenarios, run in a child process:
//! this test binary re-executed with `CHILD_ENV` naming the scenario.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::*;

/// What the filters allow, read from their JSON.
mod rules;

const CHILD_ENV: &str = "FLINT_SECCOMP_TEST_CHILD";
const CHILD_DIR_ENV: &str = "FLINT_SECCOMP_TEST_DIR";
const CHILD_TEST: &str = "seccomp::tests::child_scenario";

/// (Seccomp mode, number of filters) of the calling thread.
fn seccomp_status(text: &str) -> (u32, u32) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no {name} in /proc/thread-self/status"))
    };
    (field("Seccomp:"), field("Seccomp_filters:"))
}

fn own_status() -> (u32, u32) {
    seccomp_status(&std::fs::read_to_string("/proc/thread-self/status").unwrap())
}

/// Reads an already-open file with plain read(2) (no statx size hint, no
/// seek), which every filter allows.
fn read_all(mut file: File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

/// What every thread does: eventfds, locks (with contention, so futex
/// really runs), condvar timeouts, heap use small and large, clocks,
/// std's HashMap (random keys).
fn basic_operations(event: &EventFd, shared: &Mutex<u64>) {
    event.write(3).unwrap();
    assert_eq!(event.read().unwrap(), 3);
    for _ in 0..20_000 {
        *shared.lock().unwrap() += 1;
    }
    let pair = (Mutex::new(false), Condvar::new());
    let guard = pair.0.lock().unwrap();
    let (_guard, timeout) = pair
        .1
        .wait_timeout(guard, Duration::from_millis(2))
        .unwrap();
    assert!(timeout.timed_out());
    let small: Vec<Box<[u8; 48]>> = (0..50_000).map(|_| Box::new([7u8; 48])).collect();
    assert_eq!(small.len(), 50_000);
    drop(small);
    let mut big = vec![1u8; 64 << 20];
    big[(64 << 20) - 1] = 2;
    big.resize(96 << 20, 3);
    assert_eq!(big[(96 << 20) - 1], 3);
    drop(big);
    let mut map = HashMap::new();
    map.insert("k", 1);
    assert_eq!(map["k"], 1);
    let start = Instant::now();
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(std::time::SystemTime::now() > std::time::UNIX_EPOCH);
}

fn filter_applies_to_its_thread_only(kind: ThreadKind) {
    let before = own_status();
    let event = Arc::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let shared = Arc::new(Mutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    // An unfiltered thread contending for the lock.
    let contender = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                *shared.lock().unwrap() += 1;
            }
        })
    };
    let filtered = {
        let (event, shared) = (event.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("test-{kind}"))
            .spawn(move || {
                // Opened before the filter (open is not allowed everywhere);
                // procfs builds the text when it is read.
                let status = File::open("/proc/thread-self/status").unwrap();
                install(kind).unwrap();
                let after = seccomp_status(&read_all(status));
                basic_operations(&event, &shared);
                after
            })
            .unwrap()
    };
    let after = filtered.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    contender.join().unwrap();
    assert_eq!(after, (2, before.1 + 1), "{kind} thread after install");
    assert_eq!(own_status(), before, "the test thread must be unaffected");
    // The test thread itself can still do what the filters forbid.
    let socket =
        std::env::temp_dir().join(format!("flint-seccomp-{}-{kind}.sock", std::process::id()));
    UnixListener::bind(&socket).unwrap();
    std::fs::remove_file(&socket).unwrap();
}

#[test]
fn vmm_filter_applies_to_its_thread_only() {
    filter_applies_to_its_thread_only(ThreadKind::Vmm);
}

#[test]
fn vcpu_filter_applies_to_its_thread_only() {
    filter_applies_to_its_thread_only(ThreadKind::Vcpu);
}

#[test]
fn api_filter_applies_to_its_thread_only() {
    filter_applies_to_its_thread_only(ThreadKind::Api);
}

#[test]
fn filters_compile_and_fit_in_a_bpf_program() {
    for kind in ThreadKind::ALL {
        let program = compile(kind).unwrap_or_else(|e| panic!("{e}"));
        // The kernel's limit (BPF_MAXINSNS).
        assert!(
            program.len() <= 4096,
            "{kind}: {} instructions",
            program.len()
        );
        let json: Value = serde_json::from_str(kind.rules()).unwrap();
        let filter = &json[kind.name()];
        assert_eq!(filter["mismatch_action"], "trap", "{kind}");
        assert_eq!(filter["match_action"], "allow", "{kind}");
    }
    // The jail's relay: a few calls, anything else kills it.
    let relay = super::compile_relay().unwrap_or_else(|e| panic!("{e}"));
    assert!(relay.len() <= 4096);
    let json: Value =
        serde_json::from_str(include_str!("../../../../../resources/seccomp/relay.json")).unwrap();
    assert_eq!(json["relay"]["mismatch_action"], "kill_process");
    let allowed: Vec<&str> = json["relay"]["filter"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["syscall"].as_str())
        .collect();
    for never in [
        "openat",
        "execve",
        "socket",
        "clone",
        "ioctl",
        "io_uring_setup",
        "mmap",
    ] {
        assert!(!allowed.contains(&never), "the relay may {never}");
    }
}

// ----- child processes ---------------------------------------------------

fn run_child(scenario: &str, dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario);
    if let Some(dir) = dir {
        cmd.env(CHILD_DIR_ENV, dir);
    }
    cmd.output().unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The entry point of the child processes; does nothing in a normal run.
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else {
        return;
    };
    install_sigsys_handler().unwrap();
    crate::vcpu::install_kick_handler().unwrap();
    let (kind, action) = scenario.split_once(':').unwrap();
    let kind = match kind {
        "vmm" => ThreadKind::Vmm,
        "vcpu" => ThreadKind::Vcpu,
        "api" => ThreadKind::Api,
        other => panic!("unknown kind {other}"),
    };
    let thread_name = match kind {
        ThreadKind::Vmm => "flint-main".to_string(),
        ThreadKind::Vcpu => "vcpu0".to_string(),
        ThreadKind::Api => "api".to_string(),
    };
    let action = action.to_string();
    let dir = std::env::var_os(CHILD_DIR_ENV).map(PathBuf::from);
    // Whatever runs before install() is unfiltered set-up.
    let listener = (action == "serve").then(|| {
        let path = dir.as_ref().unwrap().join("api.sock");
        UnixListener::bind(&path).unwrap()
    });
    if action == "serve" {
        // Created by the main thread, used by the API thread.
        let volume = crate::devices::virtio::block::Volume::new("vol-seccomp", Some(gp2()));
        let _ = API_VOLUME.set(volume.unwrap());
    }
    if action == "log" {
        // As `flint` does in main, before any thread starts.
        install_log_subscriber();
    }
    let worker = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            install(kind).unwrap();
            forbidden_or_allowed(&action, listener, dir.as_deref());
            // Process exit (atexit handlers, stdio flush) under the filter.
            std::process::exit(0);
        })
        .unwrap();
    let _ = worker.join();
    std::process::exit(1);
}

fn forbidden_or_allowed(action: &str, listener: Option<UnixListener>, dir: Option<&Path>) {
    // Each call below is a plain system call with valid arguments; the
    // point is only whether the filter lets it through.
    match action {
        "socket" => {
            // SAFETY: socket(2) takes no pointers; the descriptor it may
            // return is leaked, which is harmless in this short-lived child.
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        }
        "execve" => {
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: `path` is a NUL-terminated C string and `argv` and
            // `envp` are NULL-terminated arrays of valid pointers, all of
            // which outlive the call.
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        }
        "spawn" => {
            let _ = Command::new("/bin/true").status();
        }
        "openat" => {
            let _ = File::open("/etc/hostname");
        }
        "io_uring_setup" => {
            let _ = io_uring::IoUring::new(4);
        }
        "ioctl_create_vm" => {
            let event = EventFd::new(EFD_NONBLOCK).unwrap();
            // SAFETY: KVM_CREATE_VM (0xae01) takes an integer argument, no
            // pointer; on an eventfd it can only fail (or be killed by the
            // filter), touching no memory of ours.
            unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&event), 0xae01) };
        }
        "mmap_exec" => {
            // SAFETY: an anonymous private mapping at an address the kernel
            // chooses cannot alias any existing memory; it is never used.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        }
        "fork" => {
            // SAFETY: the filter is expected to kill the process on fork; if
            // it did not, both processes go on to exit(0) and the child
            // touches only what was copied into its own address space.
            unsafe { libc::fork() };
        }
        "sched_fifo" => {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: `param` is a valid sched_param that outlives the call.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        }
        "loop_policy" => loop_policy_switches(),
        "log" => log_events(),
        "serve" => serve_one(listener.unwrap()),
        "boot" => boot_path(dir.unwrap()),
        "hotplug" => crate::disks::tests::hotplug_cycle(dir.unwrap()),
        other => panic!("unknown action {other}"),
    }
}

/// The subscriber `flint` installs for `--log-format json` (a superset of
/// the human format's work: it also reads the clock for a timestamp).
fn install_log_subscriber() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .json()
        .flatten_event(true)
        .init();
}

/// Events logged under the filter: the first use of a call site registers
/// it, the first event on a thread sets up its buffer.
fn log_events() {
    tracing::warn!(volume_id = "vol-seccomp", "flint vmm: logged under seccomp");
    for i in 0..3 {
        tracing::info!(i, "flint vmm: again");
    }
    tracing::debug!("filtered out at info");
    println!("log done");
}

#[test]
fn every_filter_allows_logging() {
    for kind in ["vmm", "vcpu", "api"] {
        let output = run_child(&format!("{kind}:log"), None);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{kind}: {}",
            describe(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("log done"), "{kind}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .find(|l| l.contains("logged under seccomp"))
            .unwrap_or_else(|| panic!("{kind}: {}", describe(&output)));
        let event: Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["level"], "WARN", "{line}");
        assert_eq!(event["volume_id"], "vol-seccomp", "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
    }
}

/// Each case: (kind, action, system call named in the report).
const FORBIDDEN: [(&str, &str, &str); 11] = [
    ("vcpu", "socket", "socket"),
    // Rings are made with their block device; an io_uring's operations
    // are out of seccomp's sight, so a vCPU may not make one.
    ("vcpu", "io_uring_setup", "io_uring_setup"),
    ("vcpu", "ioctl_create_vm", "ioctl"),
    ("vcpu", "mmap_exec", "mmap"),
    ("vcpu", "openat", "openat"),
    ("vmm", "socket", "socket"),
    ("vmm", "execve", "execve"),
    ("vmm", "fork", "clone"),
    ("vmm", "sched_fifo", "sched_setscheduler"),
    ("api", "openat", "openat"),
    ("api", "fork", "clone"),
];

#[test]
fn forbidden_syscalls_end_the_process_with_code_2_and_a_report() {
    for (kind, action, syscall) in FORBIDDEN {
        let output = run_child(&format!("{kind}:{action}"), None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let thread = match kind {
            "vmm" => "flint-main",
            "vcpu" => "vcpu0",
            _ => "api",
        };
        assert_eq!(
            output.status.code(),
            Some(2),
            "{kind}:{action}: {}",
            describe(&output)
        );
        let expected = format!("thread '{thread}' ({kind} filter) made a forbidden system call");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("flint vmm: seccomp: "))
            .unwrap_or_else(|| panic!("{kind}:{action}: no report: {}", describe(&output)));
        assert!(line.contains(&expected), "{kind}:{action}: {line}");
        assert!(
            line.contains(&format!("({syscall});")),
            "{kind}:{action}: {line}"
        );
    }
}

/// posix_spawn blocks every signal around its clone: a trapped call with
/// SIGSYS blocked is fatal at once (the kernel's default action, no report).
/// clone3 gets ENOSYS, then clone without CLONE_THREAD is trapped.
#[test]
fn spawning_a_process_from_the_vmm_thread_is_fatal() {
    use std::os::unix::process::ExitStatusExt;
    let output = run_child("vmm:spawn", None);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGSYS),
        "{}",
        describe(&output)
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flint-seccomp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gp2() -> flint_contract::ebs::Limits {
    serde_json::from_str(r#"{"volume_type":"gp2","size_gib":100}"#).unwrap()
}

/// The volume the API thread reads and changes in the serve scenario.
static API_VOLUME: std::sync::OnceLock<Arc<crate::devices::virtio::block::Volume>> =
    std::sync::OnceLock::new();

/// Serves one HTTP exchange as the API thread does (api::serve's calls,
/// with the volume endpoints' clock, lock and eventfd use).
fn serve_one(listener: UnixListener) {
    if let Some(volume) = API_VOLUME.get() {
        assert_eq!(volume.metrics().burst_balance, Some(100.0));
        volume.set_limits(None).unwrap();
        volume.set_limits(Some(gp2())).unwrap();
        serde_json::to_string(&volume.metrics()).unwrap();
    }
    let (mut stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let body = serde_json::json!({ "state": "running", "seen": got.len() }).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
}

#[test]
fn api_filter_serves_a_request() {
    let dir = temp_dir("api");
    let path = dir.join("api.sock");
    let client = std::thread::spawn(move || {
        for _ in 0..500 {
            if let Ok(mut s) = UnixStream::connect(&path) {
                s.write_all(b"GET /vm HTTP/1.1\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                return reply;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the child never listened");
    });
    let output = run_child("api:serve", Some(&dir));
    let reply = client.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("\"state\":\"running\""));
}

fn kvm_usable() -> bool {
    kvm_ioctls::Kvm::new().is_ok()
}

/// What the main thread does for a boot, under the VMM filter: open files,
/// build the KVM VM and vCPUs, run a guest, start vCPU threads (which stack
/// the vCPU filter and do device-side KVM calls), the event loop, io_uring,
/// timerfds, block-style file I/O, and tear it all down.
fn boot_path(dir: &Path) {
    use crate::bus::Bus;
    use crate::irq::IrqLine;
    use crate::power::PowerControl;
    use crate::runtime::Fault;
    use crate::vcpu::{VcpuContext, VcpuThread};
    use crate::vm::{KvmIrqLine, Vm};
    use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
    use kvm_ioctls::{IoEventAddress, NoDatamatch};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    use vm_memory::GuestAddress;

    // Block-style file I/O and the console file.
    let disk_path = dir.join("disk.img");
    let mut disk = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&disk_path)
        .unwrap();
    disk.write_all(&[0x5a; 8192]).unwrap();
    disk.write_all_at(&[1, 2, 3], 4096).unwrap();
    let mut three = [0u8; 3];
    disk.read_exact_at(&mut three, 4096).unwrap();
    assert_eq!(three, [1, 2, 3]);
    // SAFETY: fallocate on an open file we own (punch a hole, as discard).
    let rc = unsafe {
        libc::fallocate(
            disk.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            4096,
        )
    };
    assert_eq!(rc, 0);
    disk.sync_data().unwrap();
    disk.sync_all().unwrap();
    assert_eq!(disk.metadata().unwrap().len(), 8192);
    let mut all = Vec::new();
    File::open(&disk_path)
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all.len(), 8192);
    std::fs::read(&disk_path).unwrap();
    let mut console = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("console.log"))
        .unwrap();
    console.write_all(b"boot\n").unwrap();
    println!("stdout works");
    eprintln!("stderr works");

    // io_uring, with a completion eventfd.
    let completion = EventFd::new(EFD_NONBLOCK).unwrap();
    let mut ring = io_uring::IoUring::new(8).unwrap();
    ring.submitter()
        .register_eventfd(completion.as_raw_fd())
        .unwrap();
    let nop = io_uring::opcode::Nop::new().build().user_data(7);
    // SAFETY: a NOP references no memory.
    unsafe { ring.submission().push(&nop).unwrap() };
    ring.submit_and_wait(1).unwrap();
    assert_eq!(ring.completion().next().unwrap().user_data(), 7);
    let read =
        io_uring::opcode::Read::new(io_uring::types::Fd(disk.as_raw_fd()), three.as_mut_ptr(), 3)
            .offset(8000)
            .build()
            .user_data(8);
    // SAFETY: `three` outlives the wait below.
    unsafe { ring.submission().push(&read).unwrap() };
    ring.submit_and_wait(1).unwrap();
    assert_eq!(ring.completion().next().unwrap().result(), 3);
    assert_eq!(three, [0x5a; 3]);
    drop(ring);

    // clone3 fails softly (its flags cannot be checked); threads still
    // start through clone(2), as the vCPU thread below shows.
    // SAFETY: clone3 with a null argument: refused before it is read.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOSYS)
    );

    // timerfd.
    let mut timer = vmm_sys_util::timerfd::TimerFd::new().unwrap();
    timer.reset(Duration::from_millis(1), None).unwrap();
    assert!(timer.wait().is_ok());

    // A block device on a throttled volume (its throttle timerfd, eventfds,
    // io_uring), with the limits changed and the metrics read.
    {
        use crate::devices::virtio::block::{Block, BlockConfig, Volume};
        let volume = Volume::new("vol-boot", Some(gp2())).unwrap();
        let block = Block::new(BlockConfig {
            path: disk_path.clone(),
            volume: Some(volume.clone()),
            ..BlockConfig::default()
        })
        .unwrap();
        volume.set_limits(None).unwrap();
        assert_eq!(volume.metrics().read_ops, 0);
        drop(block);
    }

    // The minimal guest, then a VM as instance::boot_and_run builds it.
    if !kvm_usable() {
        println!("no usable /dev/kvm: KVM part skipped");
        return;
    }
    crate::kvm_check::run().unwrap();
    let mem = crate::memory::create_guest_memory(256 << 20).unwrap();
    let vm = Vm::new(&mem).unwrap();
    let supported = vm
        .kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .unwrap();
    let entry = crate::boot::EntryPoint::Linux64 {
        entry: GuestAddress(0x100_0000),
    };
    let vcpu0 = vm.fd.create_vcpu(0).unwrap();
    crate::cpu::configure_vcpu(&vcpu0, 0, 2, &supported, &mem, Some(entry)).unwrap();
    let vcpu1 = vm.fd.create_vcpu(1).unwrap();
    crate::cpu::configure_vcpu(&vcpu1, 1, 2, &supported, &mem, Some(entry)).unwrap();
    drop(vcpu0);

    let vm = Arc::new(vm);
    let gsi = vm.allocate_msi_gsi().unwrap();
    vm.set_msi_route(gsi, 0xfee0_0000, 0x31).unwrap();
    let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
    vm.fd.register_irqfd(&irqfd, gsi).unwrap();
    let notify = EventFd::new(EFD_NONBLOCK).unwrap();
    let notify_addr = IoEventAddress::Mmio(0xe000_0000);
    vm.fd
        .register_ioevent(&notify, &notify_addr, NoDatamatch)
        .unwrap();

    // A vCPU thread (vcpu1 is an AP waiting for SIPI: KVM_RUN blocks until
    // kicked), stacking the vCPU filter and doing device-side work first.
    let power = PowerControl::new().unwrap();
    let fault = Fault::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = VcpuContext {
        index: 1,
        pio: Arc::new(Bus::new()),
        mmio: Arc::new(Bus::new()),
        power: power.clone(),
        fault: fault.clone(),
        stop: stop.clone(),
        long_mode: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    };
    let device_vm = vm.clone();
    let device_irqfd = irqfd.try_clone().unwrap();
    let device_notify = notify.try_clone().unwrap();
    let mut vcpu_ring = io_uring::IoUring::new(4).unwrap();
    let before_run = Box::new(move || -> Result<(), String> {
        install(ThreadKind::Vcpu).map_err(|e| e.to_string())?;
        let line = KvmIrqLine {
            vm: device_vm.fd.clone(),
            gsi: 4,
        };
        line.set_level(true);
        line.set_level(false);
        device_vm
            .set_msi_route(gsi, 0xfee0_0000, 0x32)
            .map_err(|e| e.to_string())?;
        device_irqfd.write(1).map_err(|e| e.to_string())?;
        device_vm
            .fd
            .unregister_irqfd(&device_irqfd, gsi)
            .map_err(|e| e.to_string())?;
        device_vm
            .fd
            .register_irqfd(&device_irqfd, gsi)
            .map_err(|e| e.to_string())?;
        let clone = device_notify.try_clone().map_err(|e| e.to_string())?;
        device_vm
            .fd
            .unregister_ioevent(&clone, &IoEventAddress::Mmio(0xe000_0000), NoDatamatch)
            .map_err(|e| e.to_string())?;
        device_vm
            .fd
            .register_ioevent(&clone, &IoEventAddress::Mmio(0xe000_1000), NoDatamatch)
            .map_err(|e| e.to_string())?;
        // A block device's ring (made with the device, before any filter)
        // waited on, as a driver's queue reset does on the vCPU.
        let nop = io_uring::opcode::Nop::new().build();
        // SAFETY: a NOP references no memory.
        unsafe { vcpu_ring.submission().push(&nop) }.map_err(|e| e.to_string())?;
        vcpu_ring.submit_and_wait(1).map_err(|e| e.to_string())?;
        let _ = std::io::stdout().write_all(b"vcpu device work done\n");
        Ok(())
    });
    let thread = VcpuThread::spawn(vcpu1, ctx, before_run).unwrap();

    // The event loop, woken by an eventfd.
    struct Wake(i32, Arc<AtomicBool>);
    impl MutEventSubscriber for Wake {
        fn process(&mut self, events: Events, _: &mut EventOps) {
            let mut buf = [0u8; 8];
            // SAFETY: reads 8 bytes from the registered eventfd into buf.
            unsafe { libc::read(events.fd(), buf.as_mut_ptr().cast(), 8) };
            self.1.store(true, Ordering::SeqCst);
        }
        fn init(&mut self, ops: &mut EventOps) {
            ops.add(Events::new_raw(self.0, vmm_sys_util::epoll::EventSet::IN))
                .unwrap();
        }
    }
    let woke = Arc::new(AtomicBool::new(false));
    let mut events: EventManager<Box<dyn MutEventSubscriber + Send>> = EventManager::new().unwrap();
    events.add_subscriber(Box::new(Wake(power.event().as_raw_fd(), woke.clone())));
    power.request(crate::power::PowerAction::Reset);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !woke.load(Ordering::SeqCst) && Instant::now() < deadline {
        events.run_with_timeout(100).unwrap();
    }
    assert!(woke.load(Ordering::SeqCst));
    // Let the vCPU finish its device work and block in KVM_RUN.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fault.get(), None);

    // Stop: flag plus kicks (tgkill with the kick signal), then join.
    stop.store(true, Ordering::Release);
    thread.join();
    assert_eq!(fault.get(), None);
    vm.release_msi_gsi(gsi).unwrap();
    drop(events);
    drop(vm);
    drop(mem);
    std::fs::remove_file(&disk_path).unwrap();
    println!("boot path done");
}

#[test]
fn vmm_filter_allows_the_boot_path() {
    let dir = temp_dir("boot");
    let output = run_child("vmm:boot", Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("boot path done"), "{}", describe(&output));
    if kvm_usable() {
        assert!(
            stdout.contains("vcpu device work done"),
            "{}",
            describe(&output)
        );
    }
}

/// The event loop's policy switches (SCHED_BATCH and back, as the main
/// loop makes them) under the VMM filter; a trapped call would end this
/// process with code 2 (loop_policy's own tests read the policy back).
fn loop_policy_switches() {
    use crate::devices::virtio::block::IoWork;
    use crate::loop_policy::{LoopPolicy, Policy};
    let work = Arc::new(IoWork::default());
    let mut policy = LoopPolicy::new(work.clone(), true);
    let mut batched = false;
    for _ in 0..10_000 {
        work.add(1);
        batched |= policy.before_sleep() == Policy::Batch;
    }
    assert!(batched, "a probe ran");
    drop(policy); // back to SCHED_OTHER
    println!("loop policy done");
}

#[test]
fn vmm_filter_allows_the_event_loop_policy() {
    let output = run_child("vmm:loop_policy", None);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("loop policy done"), "{}", describe(&output));
}

#[test]
fn vmm_filter_allows_disk_hot_plug() {
    if !kvm_usable() {
        return;
    }
    let dir = temp_dir("hotplug");
    // Files are made here: the main loop only opens, grows and locks them.
    crate::disks::tests::hotplug_files(&dir);
    let output = run_child("vmm:hotplug", Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("hotplug cycle done"),
        "{}",
        describe(&output)
    );
}
