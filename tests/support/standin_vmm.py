#!/usr/bin/env python3
"""A stand-in for `flint vmm --config FILE` in fast tests (no KVM, no guest).

It reads the VM config the supervisor wrote, serves the per-VM control
socket (src/vmm/api: GET /vm, PUT /vm/shutdown|stop|reboot, GET/PUT
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
eject_ms = int(os.environ.get("FLINT_STANDIN_EJECT_MS", "300"))
hotplug_slots = int(os.environ.get("FLINT_STANDIN_HOTPLUG_SLOTS", "8"))
guest = {"hung": False}
events = []
# Boot disks: the root (the image) on slot 1, the config's disks after it.
HOTPLUG_FIRST_SLOT = 16


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def boot_disk(entry, slot):
    return {"id": entry.get("id") or entry.get("serial") or f"disk{slot}",
            "path": entry["path"], "read_only": entry.get("read_only", False),
            "serial": entry.get("serial"), "slot": slot, "state": "attached",
            "size_bytes": file_size(entry["path"]), "limits": entry.get("limits"),
            "hotplugged": False, "reads": 0}


disks = {}
if config.get("image"):
    d = boot_disk(config["image"], 1)
    disks[d["id"]] = d
for n, entry in enumerate(config.get("disks") or []):
    d = boot_disk(entry, 2 + n)
    disks[d["id"]] = d


def public(d):
    return {k: d[k] for k in ("id", "path", "read_only", "serial", "slot", "state",
                              "size_bytes", "limits")}


def eject_later(disk_id):
    def run():
        deadline = time.monotonic() + eject_ms / 1000
        while True:
            time.sleep(0.05)
            with lock:
                d = disks.get(disk_id)
                if d is None or d["state"] != "detaching":
                    return
                if time.monotonic() >= deadline and not guest["hung"]:
                    del disks[disk_id]
                    console(f"standin: the guest ejected {disk_id}")
                    return
    threading.Thread(target=run, daemon=True).start()


def console(line):
    # Never fatal: exiting must work even when the instance dir is gone.
    if console_path:
        try:
            with open(console_path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


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
            return ValueError

    def disks_get(self):
        parts = self.path.split("?")[0].split("/")
        if self.path == "/vm/disks":
            with lock:
                return self.reply(200, [public(d) for d in sorted(disks.values(),
                                                                    key=lambda d: d["slot"])])
        if len(parts) == 4:
            with lock:
                d = disks.get(parts[3])
                return self.reply(200, public(d)) if d else self.reply(404, {"error": "no such disk"})
        if len(parts) == 5 and parts[4] == "metrics":
            with lock:
                d = disks.get(parts[3])
                if not d:
                    return self.reply(404, {"error": "no such disk"})
                d["reads"] += 1
                n = d["reads"]
                burst = None
                if (d.get("limits") or {}).get("volume_type") in ("gp2", "st1", "sc1"):
                    burst = 100.0
                return self.reply(200, {
                    "VolumeReadOps": 10 * n, "VolumeWriteOps": 5 * n,
                    "VolumeReadBytes": 40960 * n, "VolumeWriteBytes": 20480 * n,
                    "VolumeTotalReadTime": 0.01 * n, "VolumeTotalWriteTime": 0.02 * n,
                    "VolumeQueueLength": 0, "VolumeIdleTime": 1.0 * n,
                    "BurstBalance": burst, "VolumeThrottledOps": 0, "VolumeThrottledBytes": 0})
        return self.reply(404, {"error": "no such path"})

    def disks_put(self):
        events.append(["PUT", self.path, None])
        body = self.body_json()
        if body is ValueError or not isinstance(body, dict) or not body.get("id") \
                or not str(body.get("path", "")).startswith("/"):
            return self.reply(400, {"error": "malformed disk"})
        events[-1][2] = body
        with lock:
            if body["id"] in disks:
                return self.reply(409, {"error": "already attached"})
            try:
                fd = os.open(body["path"], os.O_RDONLY if body.get("read_only") else os.O_RDWR)
                os.close(fd)
            except OSError as e:
                return self.reply(422, {"error": f"cannot open: {e}"})
            used = {d["slot"] for d in disks.values() if d["hotplugged"]}
            free = [n for n in range(HOTPLUG_FIRST_SLOT, HOTPLUG_FIRST_SLOT + hotplug_slots)
                    if n not in used]
            if not free:
                return self.reply(507, {"error": "no free hot-plug slot"})
            d = {"id": body["id"], "path": body["path"], "read_only": bool(body.get("read_only")),
                 "serial": body.get("serial"), "slot": free[0], "state": "attached",
                 "size_bytes": file_size(body["path"]), "limits": body.get("limits"),
                 "hotplugged": True, "reads": 0}
            disks[d["id"]] = d
            console(f"standin: hot-plugged {d['id']} serial {d['serial']} slot {d['slot']}")
            return self.reply(200, public(d))

    def disks_delete(self):
        events.append(["DELETE", self.path, None])
        path, _, query = self.path.partition("?")
        parts = path.split("/")
        if len(parts) != 4:
            return self.reply(404, {"error": "no such path"})
        with lock:
            d = disks.get(parts[3])
            if not d:
                return self.reply(404, {"error": "no such disk"})
            if "force=true" in query.split("&"):
                del disks[parts[3]]
                return self.reply(200, {"removed": parts[3]})
            d["state"] = "detaching"
        eject_later(parts[3])
        return self.reply(202, {"accepted": "eject"})

    def do_PATCH(self):
        body = self.body_json()
        events.append(["PATCH", self.path, None if body is ValueError else body])
        parts = self.path.split("/")
        if not self.path.startswith("/vm/disks/") or len(parts) != 4:
            return self.reply(404, {"error": "no such path"})
        if body is ValueError or not isinstance(body, dict):
            return self.reply(400, {"error": "malformed"})
        with lock:
            d = disks.get(parts[3])
            if not d:
                return self.reply(404, {"error": "no such disk"})
            if body.get("resize"):
                d["size_bytes"] = file_size(d["path"])
                return self.reply(200, {"size_bytes": d["size_bytes"]})
            if "limits" in body:
                d["limits"] = body["limits"]
                return self.reply(200, public(d))
        return self.reply(400, {"error": "nothing to do"})

    def do_DELETE(self):
        if self.path.startswith("/vm/disks/"):
            return self.disks_delete()
        return self.reply(404, {"error": "no such path"})

    def do_GET(self):
        if self.path.startswith("/vm/disks"):
            return self.disks_get()
        if self.path == "/standin/events":
            with lock:
                return self.reply(200, events)
        if self.path == "/vm/metrics":
            with lock:
                text = "".join(f'flint_disk_present{{id="{d["id"]}"}} 1\n' for d in disks.values())
            data = text.encode()
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
            return self.disks_put()
        if self.path == "/standin/guest":
            body = self.body_json()
            if isinstance(body, dict) and "hung" in body:
                guest["hung"] = bool(body["hung"])
            return self.reply(200, guest)
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
