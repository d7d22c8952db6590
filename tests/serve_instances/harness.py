"""Shared pieces of the serve_instances tests: a `flint serve` daemon with
the stand-in VMM on a private data dir, a boto3 client for it, and direct
access to the stand-in's control socket."""
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import boto3
from botocore.config import Config

FLINT = os.environ["FLINT_BIN"]
STANDIN = os.environ["FLINT_STANDIN"]
PASSED = []


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    PASSED.append(name)
    print(f"PASS {name}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# The stand-in VMM holds no guest memory: the daemon may commit far more
# than this machine has (scenarios that test admission set their own).
ROOMY = ["--memory-overcommit", "1000", "--vcpu-overcommit", "1000"]


class Daemon:
    def __init__(self, data_dir, env=None, args=None):
        self.data_dir = data_dir
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.args = ROOMY if args is None else args
        self.proc = None
        self.log = open(os.path.join(data_dir, "serve.log"), "ab")

    def start(self):
        self.proc = subprocess.Popen(
            [FLINT, "serve", "--data-dir", self.data_dir,
             "--socket", os.path.join(self.data_dir, "flint.sock"),
             "--listen", f"127.0.0.1:{self.port}", "--insecure-no-auth", "--bridge", "none",
             "--subnet", "172.31.0.0/20",
             "--vmm-command", f"{sys.executable} {STANDIN}", "--no-jail",
             "--stop-timeout", "5", "--terminate-timeout", "3", *self.args],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=self.env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"flint serve exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("flint serve did not listen")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def client(self):
        return boto3.client(
            "ec2", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
            aws_access_key_id="AKIDFLINTTEST", aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}, read_timeout=30))

    def resource(self):
        return boto3.resource(
            "ec2", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
            aws_access_key_id="AKIDFLINTTEST", aws_secret_access_key="secret",
            config=Config(retries={"max_attempts": 1}, read_timeout=30))

    def db(self):
        return sqlite3.connect(os.path.join(self.data_dir, "flint.db"), timeout=10)

    def instance_dir(self, iid):
        return os.path.join(self.data_dir, "instances", iid)

    def vm_config(self, iid):
        with open(os.path.join(self.instance_dir(iid), "vm.json")) as f:
            return json.load(f)


def register_image(daemon, size=3 << 20):
    """An AMI registered through RegisterImage (once per daemon: later calls
    return the same id), from a small raw file with a boot sector."""
    if getattr(daemon, "image_id", None):
        return daemon.image_id
    # RegisterImage reads from the daemon's import dir only.
    path = os.path.join(daemon.data_dir, "import", "standin-ami.raw")
    with open(path, "wb") as f:
        f.write(b"\xeb\x63\x90" + b"\0" * 509)
        f.truncate(size)
    daemon.image_id = daemon.client().register_image(
        Name="standin-test", ImageLocation=path, BootMode="legacy-bios")["ImageId"]
    return daemon.image_id


def add_key_pair(daemon, name, public_key):
    """A key pair imported through ImportKeyPair."""
    daemon.client().import_key_pair(KeyName=name, PublicKeyMaterial=public_key.encode())


def vm_socket(daemon, iid, method, path, body=None):
    """One request to the stand-in's control socket."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(os.path.join(daemon.instance_dir(iid), "vmm.sock"))
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: vm\r\nConnection: close\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    head, _, payload = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload or b"null")


def error_code(fn, *args, **kwargs):
    from botocore.exceptions import ClientError
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, None


def waiter(client, name):
    w = client.get_waiter(name)
    return lambda ids: w.wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 40})


def run_scenario(scenarios, env=None, args=None):
    """The scenario scripts' main: runs scenarios[argv[1]] against a daemon
    on the data dir argv[2] (started with `env` added, and args[NAME] instead
    of the roomy admission ratios if given), prints
    "scenario NAME: passed", then leaves no VM behind: terminates what is
    left and stops the daemon."""
    name, data_dir = sys.argv[1], sys.argv[2]
    daemon = Daemon(data_dir, env=env, args=(args or {}).get(name)).start()
    try:
        scenarios[name](daemon)
        print(f"scenario {name}: passed", flush=True)
    finally:
        try:
            ec2 = daemon.client()
            ids = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                   if i["State"]["Name"] != "terminated"]
            if ids:
                ec2.terminate_instances(InstanceIds=ids)
                waiter(ec2, "instance_terminated")(ids)
        except Exception as e:  # noqa: BLE001 - best effort clean-up
            print(f"clean-up: {e}", flush=True)
        daemon.stop()
