//! `flint serve` end to end without VMs: the real binary on a temporary
//! data dir, a loopback port and a Unix socket, driven by real boto3
//! (tests/serve_api/boto3_checks.py) for every image, key-pair, tag,
//! region / zone / account and instance-type action, the wire-level
//! errors, pagination, filters, SigV4 strict mode (a second daemon with
//! --credentials) and the `flint` CLI over the socket (its JSON compared
//! with boto3's). Then SIGTERM: both daemons exit 0 and remove their
//! sockets.
//!
//! Needs the venv that scripts/install-deps makes (/var/cache/flint/venv or
//! $FLINT_VENV) with boto3; fails, rather than skips, without it.

mod support;

use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Daemon {
    child: Child,
    socket: PathBuf,
    endpoint: String,
    data: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let port = free_port();
        let socket = dir.join("flint.sock");
        let data = dir.join("data");
        let child = Command::new(env!("CARGO_BIN_EXE_flint"))
            .arg("serve")
            // No VMs here, and no cgroup v2 needed.
            .arg("--no-jail")
            .arg("--data-dir")
            .arg(&data)
            .arg("--socket")
            .arg(&socket)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flint serve");
        let daemon = Daemon {
            child,
            socket,
            endpoint: format!("http://127.0.0.1:{port}"),
            data,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&daemon.socket).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(Instant::now() < deadline, "flint serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// SIGTERM; the daemon must exit 0 and take its socket with it.
    fn stop(mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "flint serve exited with {status}");
        assert!(!self.socket.exists(), "socket left behind");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn boto3_and_cli_against_flint_serve() {
    let python = support::venv_python();
    let dir = scratch("serve-api");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let open = Daemon::start(&dir.join("open"), &["--insecure-no-auth"]);

    // A second daemon in strict mode, and refusals of bad set-ups.
    let creds = dir.join("credentials");
    std::fs::write(&creds, "# test keys\nAKIDFLINTTEST flint-secret\n").expect("credentials");
    let set_mode = |mode: u32| {
        std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod credentials")
    };
    // Readable by others: refused at start.
    set_mode(0o644);
    let refused = Command::new(env!("CARGO_BIN_EXE_flint"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("exposed"))
        .arg("--socket")
        .arg(dir.join("exposed.sock"))
        .args(["--listen", "127.0.0.1:0", "--credentials"])
        .arg(&creds)
        .output()
        .expect("run");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("readable by its group or others"),
        "a world-readable credentials file must be refused: {refused:?}"
    );
    set_mode(0o600);
    // --listen without --credentials needs --insecure-no-auth.
    let refused = Command::new(env!("CARGO_BIN_EXE_flint"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("unauth"))
        .arg("--socket")
        .arg(dir.join("unauth.sock"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("--insecure-no-auth"),
        "--listen without --credentials must be refused: {refused:?}"
    );
    let strict = Daemon::start(
        &dir.join("strict"),
        &["--credentials", creds.to_str().expect("utf-8 path")],
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_flint"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("third"))
        .arg("--socket")
        .arg(&open.socket)
        .output()
        .expect("run");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("another daemon"),
        "a second daemon on a live socket must be refused: {refused:?}"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_flint"))
        .args(["serve", "--listen", "0.0.0.0:0", "--insecure-no-auth"])
        .arg("--data-dir")
        .arg(dir.join("third"))
        .arg("--socket")
        .arg(dir.join("third.sock"))
        .output()
        .expect("run");
    assert!(
        !refused.status.success(),
        "non-loopback --listen must be refused"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&open.socket)
            .expect("socket")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o660, "socket mode");

    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_api/boto3_checks.py"))
        .env("FLINT_ENDPOINT", &open.endpoint)
        .env("FLINT_STRICT_ENDPOINT", &strict.endpoint)
        .env("FLINT_WORK", &work)
        .env("FLINT_DATA", &open.data)
        .env("FLINT_BIN", env!("CARGO_BIN_EXE_flint"))
        .env("FLINT_SOCKET", &open.socket)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "boto3 checks failed:\n{stdout}\n{stderr}"
    );

    open.stop();
    strict.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
