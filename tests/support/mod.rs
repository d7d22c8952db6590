//! Runs end-to-end scenarios through `tests/emuhost/run` and reads their
//! results. At most FLINT_E2E_SLOTS (default 2) scenarios run at once on the
//! machine, one per lock file target/.e2e.lock.N: an emulated KVM host runs
//! its guests on one of its CPUs (images/emuhost/init), so it keeps about
//! one of this machine's cores busy. The benchmarks take every slot.

#![allow(dead_code)] // each test binary uses a different part

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Further runs of a failed scenario. Measured on this kind of machine: the
/// emulated host's kernel died in about half of the ~7-minute AMI runs, so
/// one retry still failed one suite run in four.
const MAX_RETRIES: usize = 2;

pub struct Scenario {
    name: String,
    timeout_s: u32,
    disks: Vec<(String, PathBuf)>,
    files: Vec<PathBuf>,
    guest_script: Option<PathBuf>,
    forward: Option<(u16, u16)>,
    envs: Vec<(String, String)>,
    retry: bool,
}

/// A run in progress (see `Scenario::spawn`): its e2e slot is held until it
/// is finished.
pub struct Running {
    child: std::process::Child,
    log_path: PathBuf,
    _lock: File,
    /// When the runner started (after the wait for a slot).
    started: std::time::Instant,
}

/// What a run produced.
pub struct Outcome {
    pub passed: bool,
    /// The runner's own report (stderr): verdict, reason, log tail.
    pub report: String,
    pub log_path: PathBuf,
    pub log: String,
    /// How long the runner took, from its start (not counting the wait
    /// for a slot) to its exit.
    pub runner_time: std::time::Duration,
}

impl Scenario {
    /// `name` is a script in tests/scenarios/ (without `.sh`).
    pub fn new(name: &str) -> Self {
        Scenario {
            name: name.to_string(),
            timeout_s: 600,
            disks: Vec::new(),
            files: Vec::new(),
            guest_script: None,
            forward: None,
            envs: Vec::new(),
            retry: true,
        }
    }

    pub fn timeout(mut self, seconds: u32) -> Self {
        self.timeout_s = seconds;
        self
    }

    pub fn disk(mut self, name: &str, path: &Path) -> Self {
        self.disks.push((name.to_string(), path.to_path_buf()));
        self
    }

    /// Carries a file from tests/scenarios/ into the payload.
    pub fn file(mut self, name: &str) -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        self.files.push(repo.join("tests/scenarios").join(name));
        self
    }

    /// A script from tests/scenarios/ for the test guest, on a disk.
    pub fn guest_script(mut self, name: &str) -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        self.guest_script = Some(repo.join("tests/scenarios").join(name));
        self
    }

    /// Forwards 127.0.0.1:`host_port` here to `guest_port` of the emulated
    /// host (tests/emuhost/run --forward).
    pub fn forward(mut self, host_port: u16, guest_port: u16) -> Self {
        self.forward = Some((host_port, guest_port));
        self
    }

    /// Exports `name=value` to the scenario (tests/emuhost/run --env).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    /// The scenario is meant to fail (the runner's self-tests): no second
    /// run.
    pub fn no_retry(mut self) -> Self {
        self.retry = false;
        self
    }

    /// Runs the scenario, and again (up to MAX_RETRIES times) while it
    /// fails: the emulated host is flaky in ways no VMM controls
    /// (TESTING.md: guests that reset early, seen here for QEMU-KVM's
    /// guests and Flint's alike; the emulated host's own kernel dying of a
    /// TCG nested-SVM fault). Every failure is announced on stderr with its
    /// log kept, and the final report names every earlier run; a failure in
    /// every run is final.
    pub fn run(self) -> Outcome {
        let mut outcome = self.run_once("");
        let mut earlier: Vec<String> = Vec::new();
        for attempt in 1..=MAX_RETRIES {
            // A run that hit its timeout is not run again: three of them
            // could outlast CI's budget.
            if outcome.passed || !self.retry || outcome.report.contains("timed out") {
                break;
            }
            let why = if outcome.emulated_host_crashed() {
                "the emulated host's kernel died"
            } else {
                "the scenario failed"
            };
            let note = format!("run {attempt}: {why} (log {})", outcome.log_path.display());
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! {}: {note}; running it again\n",
                self.name
            );
            earlier.push(note);
            outcome = self.run_once(&format!("-retry{attempt}"));
        }
        if !earlier.is_empty() {
            outcome.report = format!(
                "(earlier runs of this scenario: {})\n{}",
                earlier.join("; "),
                outcome.report
            );
        }
        outcome
    }

    fn run_once(&self, suffix: &str) -> Outcome {
        self.spawn(suffix).finish()
    }

    /// Starts one run and returns at once, for tests that talk to the
    /// scenario while it runs; `suffix` names the log of a repeated run.
    pub fn spawn(&self, suffix: &str) -> Running {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lock = take_slot(repo);

        // Unique per run: one test binary may run a scenario several times
        // at once (e.g. once per AMI), and each run's log is its own.
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let label: String = self.envs.iter().map(|(_, v)| format!("-{v}")).collect();
        let log_path = repo.join("target/e2e-logs").join(format!(
            "{}{label}-{}-{run}{suffix}.log",
            self.name,
            std::process::id()
        ));
        let mut cmd = Command::new(repo.join("tests/emuhost/run"));
        cmd.arg("--timeout")
            .arg(self.timeout_s.to_string())
            .arg("--log")
            .arg(&log_path)
            .env("FLINT_BIN", env!("CARGO_BIN_EXE_flint"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(script) = &self.guest_script {
            cmd.arg("--guest-script").arg(script);
        }
        for file in &self.files {
            cmd.arg("--file").arg(file);
        }
        for (name, path) in &self.disks {
            cmd.arg("--disk").arg(format!("{name}={}", path.display()));
        }
        if let Some((host, guest)) = self.forward {
            cmd.arg("--forward").arg(format!("{host}:{guest}"));
        }
        for (name, value) in &self.envs {
            cmd.arg("--env").arg(format!("{name}={value}"));
        }
        cmd.arg(
            repo.join("tests/scenarios")
                .join(format!("{}.sh", self.name)),
        );
        let child = cmd.spawn().expect("start tests/emuhost/run");
        Running {
            child,
            log_path,
            _lock: lock,
            started: std::time::Instant::now(),
        }
    }
}

/// Waits for a free e2e slot and holds it (the lock lives as long as the
/// file).
fn take_slot(repo: &Path) -> File {
    let slots: usize = std::env::var("FLINT_E2E_SLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2);
    std::fs::create_dir_all(repo.join("target")).expect("create target/");
    loop {
        for slot in 0..slots {
            let path = repo.join(format!("target/.e2e.lock.{slot}"));
            let file = File::create(&path).expect("create e2e lock file");
            if file.try_lock().is_ok() {
                return file;
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

impl Running {
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The log so far (the runner creates it before the host boots).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Whether the run has ended.
    pub fn ended(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end of the run and reads its result.
    pub fn finish(self) -> Outcome {
        let output = self
            .child
            .wait_with_output()
            .expect("wait for tests/emuhost/run");
        let report = String::from_utf8_lossy(&output.stderr).into_owned();
        let log = std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Outcome {
            passed: output.status.success(),
            report,
            log_path: self.log_path,
            log,
            runner_time: self.started.elapsed(),
        }
    }
}

impl Outcome {
    /// The run ended because the emulated host itself died of the known
    /// emulator fault, or reset without a word — not because of a result.
    pub fn emulated_host_crashed(&self) -> bool {
        if !self
            .report
            .contains("the emulated host ended without a scenario result")
        {
            return false;
        }
        let panicked = self.log.contains("Kernel panic");
        let known_fault = self.log.contains("stack guard page was hit")
            || self.log.contains("corrupted stack end detected")
            // Its own boot's timer check failing on a loaded machine.
            || self.log.contains("IO-APIC + timer doesn't work");
        // The runner's own self-test kills the host with sysrq on purpose.
        let deliberate = self.log.contains("sysrq");
        !deliberate && (known_fault || !panicked)
    }

    /// Panics with the runner's report (which carries the log tail) unless
    /// the scenario passed.
    pub fn assert_pass(&self) -> &Self {
        assert!(
            self.passed,
            "scenario failed:\n{}\nlog: {}",
            self.report,
            self.log_path.display()
        );
        self
    }

    /// Panics unless the result NAME was reported with status=pass.
    pub fn assert_result(&self, name: &str) -> &Self {
        let wanted = format!("FLINT-RESULT name={name} status=pass");
        assert!(
            self.log.lines().any(|l| l.starts_with(&wanted)),
            "no passing result {name:?} in {}",
            self.log_path.display()
        );
        self
    }

    /// The value of metric NAME, if reported.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let prefix = format!("FLINT-METRIC name={name} value=");
        self.log.lines().find_map(|l| {
            l.strip_prefix(&prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }
}

/// The output directory of an images/ recipe, built (or reused) now.
pub fn image_dir(recipe: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("images/build"))
        .arg(recipe)
        .output()
        .expect("run images/build");
    assert!(
        out.status.success(),
        "images/build {recipe} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The venv that scripts/install-deps makes (/var/cache/flint/venv, or
/// $FLINT_VENV), with boto3, botocore and the aws CLI from PyPI. Tests
/// fail, rather than skip, without it.
pub fn venv() -> PathBuf {
    venv_importing(&["boto3", "botocore", "awscli"])
}

/// The venv (as `venv`), checked only for the Python `modules` a test
/// needs.
pub fn venv_importing(modules: &[&str]) -> PathBuf {
    let venv = std::env::var_os("FLINT_VENV")
        .map_or_else(|| PathBuf::from("/var/cache/flint/venv"), PathBuf::from);
    let ok = Command::new(venv.join("bin/python3"))
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output()
        .is_ok_and(|o| o.status.success());
    let names = match modules.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    assert!(
        ok,
        "{}/bin/python3 cannot import {names}: run scripts/install-deps (or set FLINT_VENV)",
        venv.display()
    );
    venv
}

/// The venv's Python.
pub fn venv_python() -> PathBuf {
    venv().join("bin/python3")
}

/// Runs scenario `name` of the Python `script` (a path below the repository)
/// with `python`, against this build's `flint` and the stand-in VMM, on a
/// fresh data dir in the temp dir named `{dir_prefix}-{name}-{pid}`
/// (removed after a pass, kept after a failure). Panics with the
/// scenario's output and the daemon's log (serve.log) unless it exits 0,
/// prints `scenario {name}: passed` and the daemon did not panic.
pub fn python_scenario(python: &Path, script: &str, dir_prefix: &str, name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("{dir_prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(python)
        .arg(root.join(script))
        .arg(name)
        .arg(&dir)
        .env("FLINT_BIN", env!("CARGO_BIN_EXE_flint"))
        .env("FLINT_STANDIN", root.join("tests/support/standin_vmm.py"))
        .output()
        .expect("run the scenario");
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "scenario {name} failed ({})\n--- output\n{stdout}\n--- errors\n{stderr}\n--- flint serve\n{log}",
            out.status
        );
    }
    assert!(
        stdout.contains(&format!("scenario {name}: passed")),
        "{stdout}"
    );
    assert!(!log.contains("panicked"), "flint serve panicked:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
