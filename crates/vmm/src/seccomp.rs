//! Seccomp filters, one per kind of VMM thread.
//!
//! The rules live in `resources/seccomp/{vmm,vcpu,api}.json` (seccompiler's
//! JSON format), are embedded in the binary and compiled when a thread
//! installs its filter. Anything a filter does not allow raises SIGSYS; the
//! handler installed by [`install_sigsys_handler`] prints one line naming the
//! thread and the system call and exits the process with code 2, so a missing
//! rule is an immediate, readable failure rather than a hang or a core dump.
//!
//! Filters are per thread (no TSYNC) and inherited by threads created after
//! they are installed. The VMM filter therefore also allows what a vCPU
//! thread does (vCPU threads of later boots start under it and then stack
//! their own filter), and the API thread must be started before the main
//! thread installs the VMM filter.

mod syscall_names;

use std::cell::Cell;
use std::fmt;
use std::sync::Once;

use seccompiler::{BpfProgram, TargetArch, sock_filter};
use thiserror::Error;

/// Exit code of a process killed by a forbidden system call.
pub const EXIT_FORBIDDEN_SYSCALL: i32 = 2;

/// The kinds of threads in a `flint vmm` process, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// The main thread: builds each boot and runs the device event loop.
    Vmm,
    /// A vCPU thread: KVM_RUN and the MMIO/PIO device emulation it triggers.
    Vcpu,
    /// The control-socket thread.
    Api,
}

impl ThreadKind {
    pub const ALL: [ThreadKind; 3] = [ThreadKind::Vmm, ThreadKind::Vcpu, ThreadKind::Api];

    /// The filter's name: its key in the JSON and its file name.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Vmm => "vmm",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::Api => "api",
        }
    }

    /// The JSON rules (resources/seccomp/<name>.json).
    pub fn rules(self) -> &'static str {
        match self {
            ThreadKind::Vmm => include_str!("../../../resources/seccomp/vmm.json"),
            ThreadKind::Vcpu => include_str!("../../../resources/seccomp/vcpu.json"),
            ThreadKind::Api => include_str!("../../../resources/seccomp/api.json"),
        }
    }

    fn code(self) -> u8 {
        match self {
            ThreadKind::Vmm => 1,
            ThreadKind::Vcpu => 2,
            ThreadKind::Api => 3,
        }
    }
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("cannot compile the {kind} seccomp filter: {source}")]
    Compile {
        kind: ThreadKind,
        source: seccompiler::Error,
    },
    #[error("resources/seccomp/{kind}.json has no \"{kind}\" filter")]
    Missing { kind: ThreadKind },
    #[error("cannot install the {kind} seccomp filter: {source}")]
    Apply {
        kind: ThreadKind,
        source: seccompiler::Error,
    },
    #[error("cannot install the SIGSYS handler: {0}")]
    SigsysHandler(std::io::Error),
    #[error("the jail relay's seccomp filter: {0}")]
    Relay(String),
}

/// The rules of the jail's relay process (resources/seccomp/relay.json).
const RELAY_RULES: &str = include_str!("../../../resources/seccomp/relay.json");

/// Installs the filter of the jail's relay (jail/relay.rs): the process
/// outside the VMM's PID namespace that waits for the VMM, forwards
/// termination signals to it and exits as it did. It may do only that;
/// anything else kills it at once (no report: it has nothing to say, and
/// the daemon sees the death of the pid it tracks).
pub fn install_relay() -> Result<(), SeccompError> {
    let program = compile_relay()?;
    seccompiler::apply_filter(&program).map_err(|e| SeccompError::Relay(e.to_string()))
}

/// The relay's filter as BPF, behind the clone3 prelude.
pub fn compile_relay() -> Result<BpfProgram, SeccompError> {
    let mut filters = seccompiler::compile_from_json(RELAY_RULES.as_bytes(), TargetArch::x86_64)
        .map_err(|e| SeccompError::Relay(e.to_string()))?;
    let rules = filters
        .remove("relay")
        .ok_or_else(|| SeccompError::Relay("relay.json has no \"relay\" filter".into()))?;
    let mut program = clone3_prelude();
    program.extend(rules);
    Ok(program)
}

/// Compiles the filter of `kind` to BPF (x86_64), behind the clone3 prelude
/// (see [`clone3_prelude`]).
pub fn compile(kind: ThreadKind) -> Result<BpfProgram, SeccompError> {
    let mut filters = seccompiler::compile_from_json(kind.rules().as_bytes(), TargetArch::x86_64)
        .map_err(|source| SeccompError::Compile { kind, source })?;
    let rules = filters
        .remove(kind.name())
        .ok_or(SeccompError::Missing { kind })?;
    let mut program = clone3_prelude();
    program.extend(rules);
    Ok(program)
}

/// clone3(2) takes its flags in a struct that a filter cannot inspect, so
/// allowing it would allow creating processes. Every filter makes it fail
/// with ENOSYS instead (seccompiler's JSON has a single match action, hence
/// these few instructions in front of the compiled rules): glibc then falls
/// back to clone(2), whose flags the VMM filter checks (threads only).
fn clone3_prelude() -> BpfProgram {
    // BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, BPF_RET | BPF_K.
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_DATA_NR: u32 = 0;
    const SECCOMP_DATA_ARCH: u32 = 4;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        // Other ABIs go straight to the compiled rules (which kill the
        // process for a foreign architecture).
        insn(BPF_JMP_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
        insn(BPF_JMP_JEQ_K, 0, 1, libc::SYS_clone3 as u32),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]
}

/// Installs the filter of `kind` on the calling thread only. Threads this
/// thread creates afterwards inherit it. Also makes sure the SIGSYS handler
/// is installed (once per process).
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    let program = compile(kind)?;
    install_sigsys_handler()?;
    THREAD_KIND.with(|k| k.set(kind.code()));
    seccompiler::apply_filter(&program).map_err(|source| SeccompError::Apply { kind, source })
}

thread_local! {
    /// The kind of the last filter this thread installed (0: none), for the
    /// SIGSYS report. Const-initialised and without a destructor, so reading
    /// it from a signal handler neither allocates nor locks.
    static THREAD_KIND: Cell<u8> = const { Cell::new(0) };
}

static SIGSYS_HANDLER: Once = Once::new();

/// Installs the process-wide SIGSYS handler. Idempotent; the first call must
/// happen before any filter that forbids rt_sigaction is in force on the
/// calling thread ([`install`] calls it before applying its filter). The
/// first call also primes glibc's malloc (see [`prime_glibc_malloc`]).
pub fn install_sigsys_handler() -> Result<(), SeccompError> {
    let mut result = Ok(());
    SIGSYS_HANDLER.call_once(|| {
        prime_glibc_malloc();
        // SAFETY: a zeroed sigaction is a valid value to fill in; the
        // handler is an `extern "C"` function with the SA_SIGINFO signature
        // and only makes async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigsys as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigfillset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) != 0 {
                result = Err(SeccompError::SigsysHandler(std::io::Error::last_os_error()));
            }
        }
    });
    result
}

/// glibc reads /proc/sys/vm/overcommit_memory the first time it shrinks the
/// heap of a thread arena (and caches the answer). If that first time came
/// on a filtered thread (a free on a vCPU thread, or its exit), the open
/// would be refused. So shrink one thread arena here, unfiltered: a helper
/// thread frees 4 MiB of 32 KiB blocks (below the mmap threshold, so they
/// come from its arena), newest first, which trims the arena's heap.
fn prime_glibc_malloc() {
    let primer = std::thread::Builder::new()
        .name("seccomp-prime".into())
        .spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..128).map(|_| vec![1u8; 32 << 10]).collect();
            while let Some(block) = blocks.pop() {
                drop(std::hint::black_box(block));
            }
        });
    if let Ok(primer) = primer {
        let _ = primer.join();
    }
}

/// The SIGSYS part of `siginfo_t` on x86_64 (`_sigsys` in the kernel's
/// union, which starts at offset 16).
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// A line assembled on the stack (no allocation in a signal handler).
struct Line {
    bytes: [u8; 192],
    len: usize,
}

impl Line {
    fn push(&mut self, s: &[u8]) {
        for &b in s {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// Formats the report for a forbidden system call.
fn report_line(thread: &[u8], kind: u8, nr: i64) -> Line {
    let mut line = Line {
        bytes: [0; 192],
        len: 0,
    };
    line.push(b"flint vmm: seccomp: thread '");
    line.push(thread);
    line.push(b"' (");
    line.push(match kind {
        1 => b"vmm".as_slice(),
        2 => b"vcpu",
        3 => b"api",
        _ => b"inherited",
    });
    line.push(b" filter) made a forbidden system call ");
    if nr < 0 {
        line.push(b"-");
    }
    line.push_number(nr.unsigned_abs());
    line.push(b" (");
    line.push(syscall_names::name(nr).as_bytes());
    line.push(b"); exiting\n");
    line
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSYS (SA_SIGINFO),
    // whose layout SigsysInfo mirrors.
    let nr = unsafe { (*info.cast::<SigsysInfo>()).syscall };
    let mut name = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes (NUL included) into the
    // 17-byte buffer. Every filter allows it.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    let name_len = name.iter().position(|&b| b == 0).unwrap_or(16);
    let kind = THREAD_KIND.with(Cell::get);
    let line = report_line(&name[..name_len], kind, i64::from(nr));
    // SAFETY: write(2) and _exit(2) are async-signal-safe and allowed by
    // every filter; the buffer is live for the call.
    unsafe {
        libc::write(2, line.bytes.as_ptr().cast(), line.len);
        libc::_exit(EXIT_FORBIDDEN_SYSCALL);
    }
}

#[cfg(test)]
mod tests;
