"""The stand-in VMM's disks: the per-VM socket's /vm/disks contract over
plain files, with a simulated guest that ejects a disk some time after it
is asked to (never while it is "hung"). Used by standin_vmm.py; every
method returns (HTTP status, JSON body)."""
import os
import threading
import time

# Boot disks take slots from 1 (the root), hot-plugged ones from here.
HOTPLUG_FIRST_SLOT = 16


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def public(d):
    return {k: d[k] for k in ("id", "path", "read_only", "serial", "slot", "state",
                              "size_bytes", "limits")}


class DiskBus:
    def __init__(self, config, console, lock):
        self.console = console
        self.lock = lock
        self.eject_ms = int(os.environ.get("FLINT_STANDIN_EJECT_MS", "300"))
        self.slots = int(os.environ.get("FLINT_STANDIN_HOTPLUG_SLOTS", "8"))
        self.guest = {"hung": False}
        self.events = []
        self.disks = {}
        boot = ([config["image"]] if config.get("image") else []) + list(config.get("disks") or [])
        for n, entry in enumerate(boot):
            d = self.entry(entry, 1 + n, hotplugged=False)
            self.disks[d["id"]] = d

    @staticmethod
    def entry(body, slot, hotplugged):
        return {"id": body.get("id") or body.get("serial") or f"disk{slot}",
                "path": body["path"], "read_only": bool(body.get("read_only")),
                "serial": body.get("serial"), "slot": slot, "state": "attached",
                "size_bytes": file_size(body["path"]), "limits": body.get("limits"),
                "hotplugged": hotplugged, "reads": 0}

    def get(self, path):
        parts = path.split("?")[0].split("/")
        with self.lock:
            if path == "/vm/disks":
                return 200, [public(d) for d in sorted(self.disks.values(), key=lambda d: d["slot"])]
            d = self.disks.get(parts[3]) if len(parts) > 3 else None
            if len(parts) == 4:
                return (200, public(d)) if d else (404, {"error": "no such disk"})
            if len(parts) == 5 and parts[4] == "metrics":
                if not d:
                    return 404, {"error": "no such disk"}
                d["reads"] += 1
                n = d["reads"]
                bursty = (d.get("limits") or {}).get("volume_type") in ("gp2", "st1", "sc1")
                return 200, {
                    "VolumeReadOps": 10 * n, "VolumeWriteOps": 5 * n,
                    "VolumeReadBytes": 40960 * n, "VolumeWriteBytes": 20480 * n,
                    "VolumeTotalReadTime": 0.01 * n, "VolumeTotalWriteTime": 0.02 * n,
                    "VolumeQueueLength": 0, "VolumeIdleTime": 1.0 * n,
                    "BurstBalance": 100.0 if bursty else None,
                    "VolumeThrottledOps": 0, "VolumeThrottledBytes": 0}
        return 404, {"error": "no such path"}

    def prometheus(self):
        with self.lock:
            return "".join(f'flint_disk_present{{id="{d["id"]}"}} 1\n' for d in self.disks.values())

    def put(self, body):
        self.events.append(["PUT", "/vm/disks", body])
        if not isinstance(body, dict) or not body.get("id") \
                or not str(body.get("path", "")).startswith("/"):
            return 400, {"error": "malformed disk"}
        with self.lock:
            if body["id"] in self.disks:
                return 409, {"error": "already attached"}
            try:
                os.close(os.open(body["path"], os.O_RDONLY if body.get("read_only") else os.O_RDWR))
            except OSError as e:
                return 422, {"error": f"cannot open: {e}"}
            used = {d["slot"] for d in self.disks.values() if d["hotplugged"]}
            free = [n for n in range(HOTPLUG_FIRST_SLOT, HOTPLUG_FIRST_SLOT + self.slots)
                    if n not in used]
            if not free:
                return 507, {"error": "no free hot-plug slot"}
            d = self.entry(body, free[0], hotplugged=True)
            self.disks[d["id"]] = d
            self.console(f"standin: hot-plugged {d['id']} serial {d['serial']} slot {d['slot']}")
            return 200, public(d)

    def delete(self, path):
        self.events.append(["DELETE", path, None])
        path, _, query = path.partition("?")
        parts = path.split("/")
        if len(parts) != 4:
            return 404, {"error": "no such path"}
        disk_id = parts[3]
        with self.lock:
            d = self.disks.get(disk_id)
            if not d:
                return 404, {"error": "no such disk"}
            if "force=true" in query.split("&"):
                del self.disks[disk_id]
                return 200, {"removed": disk_id}
            d["state"] = "detaching"
        threading.Thread(target=self.eject_later, args=(disk_id,), daemon=True).start()
        return 202, {"accepted": "eject"}

    def eject_later(self, disk_id):
        deadline = time.monotonic() + self.eject_ms / 1000
        while True:
            time.sleep(0.05)
            with self.lock:
                d = self.disks.get(disk_id)
                if d is None or d["state"] != "detaching":
                    return
                if time.monotonic() >= deadline and not self.guest["hung"]:
                    del self.disks[disk_id]
                    self.console(f"standin: the guest ejected {disk_id}")
                    return

    def patch(self, path, body):
        self.events.append(["PATCH", path, body])
        parts = path.split("/")
        if len(parts) != 4:
            return 404, {"error": "no such path"}
        if not isinstance(body, dict):
            return 400, {"error": "malformed"}
        with self.lock:
            d = self.disks.get(parts[3])
            if not d:
                return 404, {"error": "no such disk"}
            if body.get("resize"):
                d["size_bytes"] = file_size(d["path"])
                return 200, {"size_bytes": d["size_bytes"]}
            if "limits" in body:
                d["limits"] = body["limits"]
                return 200, public(d)
        return 400, {"error": "nothing to do"}
