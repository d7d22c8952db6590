#!/usr/bin/env python3
"""A stand-in for `flint vmm --config FILE` in fast tests (no KVM, no guest).

It reads the VM config the supervisor wrote, serves the per-VM control
socket (crates/vmm/src/api: GET /vm, PUT /vm/shutdown|stop|reboot, GET/PUT
/vm/metadata) and exits with flint vmm's exit codes:

  0  powered off: after PUT /vm/shutdown, SIGTERM, or SIGUSR1 (the guest
     powering itself off)
  2  VMM failure: SIGUSR2 (a crash), after "flint vmm: ..." on stderr
  4  hard stop: PUT /vm/stop, or a graceful shutdown that outlasted the
     config's shutdown_timeout_s

It also serves the volume endpoints of the control socket contract:

  GET    /vm/disks                 every disk (the boot disks of the config,
                                   root included, and the hot-plugged ones)
  PUT    /vm/disks                 hot-plug: 200 entry; 400 malformed, 409 id
                                   already there, 422 file cannot be opened,
                                   507 no free hot-plug slot
  GET    /vm/disks/{id}            200 entry; 404 when not there
  DELETE /vm/disks/{id}            202, "detaching" until the simulated guest
                                   ejects it (FLINT_STANDIN_EJECT_MS later),
                                   never while the guest is "hung"
  DELETE /vm/disks/{id}?force=true 200, removed now
  PATCH  /vm/disks/{id}            {"resize":true} -> {"size_bytes":N} (the
                                   file's size now); {"limits":L} -> entry
  GET    /vm/disks/{id}/metrics    EBS-style counters (made up, growing)
  GET    /vm/metrics               Prometheus text

and, for tests only: PUT /standin/guest {"hung": bool} (whether the
guest ignores eject requests), GET /standin/events (the disk requests it
got, in order: [method, path, body]).

It writes console lines as a guest would (boot banner, the user data), so
GetConsoleOutput has something to show. Knobs (environment, inherited
from flint serve):

  FLINT_STANDIN_BOOT_MS      time in "starting" before "running" (200)
  FLINT_STANDIN_IGNORE_SHUTDOWN=1  the guest ignores the power button
  FLINT_STANDIN_HANG=1       ignores /vm/stop and SIGTERM too (SIGKILL only)
  FLINT_STANDIN_FAIL=1       exits 1 at once ("flint vmm: ..." config error)
  FLINT_STANDIN_EJECT_MS     how long the guest takes to eject a disk (300)
  FLINT_STANDIN_HOTPLUG_SLOTS  hot-plug slots (8); more disks get 507
"""
import base64
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin_disks import DiskBus  # noqa: E402

args = sys.argv[1:]
if len(args) != 2 or args[0] != "--config":
    print("flint vmm: usage: standin --config FILE", file=sys.stderr)
    sys.exit(1)
with open(args[1]) as f:
    config = json.load(f)

if os.environ.get("FLINT_STANDIN_FAIL") == "1":
    print("flint vmm: stand-in told to fail", file=sys.stderr, flush=True)
    sys.exit(1)

boot_ms = int(os.environ.get("FLINT_STANDIN_BOOT_MS", "200"))
ignore_shutdown = os.environ.get("FLINT_STANDIN_IGNORE_SHUTDOWN") == "1"
hang = os.environ.get("FLINT_STANDIN_HANG") == "1"
timeout_s = config.get("shutdown_timeout_s", 30)
metadata = config.get("metadata") or {}
console_path = (config.get("console") or {}).get("file")
started = time.monotonic()
lock = threading.Lock()
state = {"boots": 1, "state": "starting"}
def console(line):
    # Never fatal: exiting must work even when the instance dir is gone.
    if console_path:
        try:
            with open(console_path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


bus = DiskBus(config, console, lock)


def finish(code, reason=None):
    if reason:
        print(f"flint vmm: {reason}", file=sys.stderr, flush=True)
    try:
        os.unlink(config["api_socket"])
    except OSError:
        pass
    console(f"standin: exit {code}")
    os._exit(code)


def boot():
    console(f"standin: booting {config['identity']['instance_id']} "
            f"({config['vcpus']} vCPUs, {config['memory_mib']} MiB) "
            f"boot {state['boots']} disk {config['image']['serial']}")
    ud = metadata.get("user_data_base64")
    if ud:
        console("standin: user-data: " + base64.b64decode(ud).decode("utf-8", "replace"))
    time.sleep(boot_ms / 1000)
    with lock:
        if state["state"] == "starting":
            state["state"] = "running"
    console("standin: login:")


def graceful():
    with lock:
        state["state"] = "shutting-down"
    if ignore_shutdown or hang:
        def deadline():
            time.sleep(timeout_s)
            if not hang:
                finish(4, f"hard stop: the guest did not shut down within {timeout_s} s")
        threading.Thread(target=deadline, daemon=True).start()
        return
    def off():
        time.sleep(0.1)
        console("standin: Power down")
        finish(0)
    threading.Thread(target=off, daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def address_string(self):
        return "vm"

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def body_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def do_PATCH(self):
        if self.path.startswith("/vm/disks/"):
            return self.reply(*bus.patch(self.path, self.body_json()))
        return self.reply(404, {"error": "no such path"})

    def do_DELETE(self):
        if self.path.startswith("/vm/disks/"):
            return self.reply(*bus.delete(self.path))
        return self.reply(404, {"error": "no such path"})

    def do_GET(self):
        if self.path.startswith("/vm/disks"):
            return self.reply(*bus.get(self.path))
        if self.path == "/standin/events":
            with lock:
                return self.reply(200, bus.events)
        if self.path == "/vm/metrics":
            data = bus.prometheus().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True
            return
        if self.path == "/vm":
            with lock:
                body = {"state": state["state"], "boots": state["boots"],
                        "vcpus": config["vcpus"], "memory_mib": config["memory_mib"],
                        "pid": os.getpid()}
            self.reply(200, body)
        elif self.path == "/vm/metadata":
            with lock:
                self.reply(200, metadata)
        else:
            self.reply(404, {"error": "no such path"})

    def do_PUT(self):
        if self.path == "/vm/disks":
            return self.reply(*bus.put(self.body_json()))
        if self.path == "/standin/guest":
            body = self.body_json()
            if isinstance(body, dict) and "hung" in body:
                bus.guest["hung"] = bool(body["hung"])
            return self.reply(200, bus.guest)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/vm/shutdown":
            self.reply(202, {"accepted": "shutdown"})
            graceful()
        elif self.path == "/vm/stop":
            self.reply(202, {"accepted": "stop"})
            if not hang:
                threading.Thread(target=lambda: (time.sleep(0.05), finish(4, "hard stop: API")),
                                 daemon=True).start()
        elif self.path == "/vm/reboot":
            self.reply(202, {"accepted": "reboot"})
            with lock:
                state["boots"] += 1
                state["state"] = "starting"
            console("standin: reboot")
            threading.Thread(target=boot, daemon=True).start()
        elif self.path == "/vm/metadata":
            try:
                update = json.loads(body or b"{}")
            except ValueError as e:
                self.reply(400, {"error": f"bad metadata update: {e}"})
                return
            with lock:
                for key in ("tags", "block_device_mapping"):
                    if key in update:
                        metadata[key] = update[key]
                if "metadata_options" in update:
                    opts = metadata.setdefault("metadata_options", {})
                    opts.update({k: v for k, v in update["metadata_options"].items() if v is not None})
                if "user_data_base64" in update:
                    metadata["user_data_base64"] = update["user_data_base64"]
                self.reply(200, metadata)
        else:
            self.reply(404, {"error": "no such path"})


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def on_signal(signum, frame):
    if signum == signal.SIGUSR1:
        console("standin: the guest powers off")
        finish(0)
    elif signum == signal.SIGUSR2:
        finish(2, "KVM internal error (stand-in crash)")
    elif signum == signal.SIGTERM and not hang:
        graceful()


for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
    signal.signal(s, on_signal)
sock = config["api_socket"]
try:
    os.unlink(sock)
except OSError:
    pass
server = Server(sock, Handler)
os.chmod(sock, 0o600)
threading.Thread(target=boot, daemon=True).start()


def orphan_watch():
    # A test that died (or removed its data dir) leaves no VM behind.
    while os.path.exists(args[1]):
        time.sleep(1)
    finish(4, "the VM config disappeared")


threading.Thread(target=orphan_watch, daemon=True).start()
server.serve_forever()
