"""flint serve benchmark (run by benches/serve.sh): numbers, never pass/fail.

- RunInstances -> running, excluding the guest's boot: the daemon's own path
  (root volume clone of a real AMI file, IP/MAC, TAP-less config, spawn,
  first state report), with the stand-in VMM (tests/support/standin_vmm.py)
  that reports "running" at once. Measured as a boto3 client sees it.
- DescribeInstances latency with 1,000 instance records (run in batches of
  20 through the API, then terminated: terminated records stay
  describable), whole list (paged by botocore at MaxResults=1000) and one id.
- Requests per second on the Unix socket: keep-alive HTTP/1.1 clients in
  threads, DescribeRegions (the cheapest action) and DescribeInstances with
  one id.
"""
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
from botocore.config import Config

# The tests' harness (it needs FLINT_BIN and FLINT_STANDIN too): one
# free_port for both.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "serve_instances"))
from harness import free_port  # noqa: E402

FLINT = os.environ["FLINT_BIN"]
STANDIN = os.environ["FLINT_STANDIN"]
AMI = os.environ["FLINT_BENCH_AMI"]


def metric(name, value, unit):
    print(f"{name:<44} {value:>12.2f} {unit}", flush=True)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def main():
    data = tempfile.mkdtemp(prefix="flint-bench-serve-")
    port = free_port()
    sock = os.path.join(data, "flint.sock")
    env = dict(os.environ, FLINT_STANDIN_BOOT_MS="0")
    log = open(os.path.join(data, "serve.log"), "wb")
    daemon = subprocess.Popen(
        [FLINT, "serve", "--data-dir", data, "--socket", sock, "--listen", f"127.0.0.1:{port}",
         "--insecure-no-auth", "--bridge", "none", "--subnet", "172.31.0.0/16",
         "--vmm-command", f"{sys.executable} {STANDIN}", "--no-jail",
         "--stop-timeout", "5", "--terminate-timeout", "3"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench",
                           config=Config(retries={"max_attempts": 1}, read_timeout=120))
        # RegisterImage reads from the daemon's import dir only: a hard link
        # there when on the same filesystem, else a sparse (reflink) copy.
        staged = os.path.join(data, "import", "bench.raw")
        try:
            os.link(AMI, staged)
        except OSError:
            subprocess.run(["cp", "--reflink=auto", "--sparse=always", AMI, staged], check=True)
        image = ec2.register_image(Name="bench", ImageLocation=staged,
                                   BootMode="legacy-bios")["ImageId"]
        os.unlink(staged)
        print(f"image: {AMI} ({os.path.getsize(AMI) >> 20} MiB apparent, "
              f"{os.stat(AMI).st_blocks * 512 >> 20} MiB allocated)", flush=True)

        # RunInstances -> running.
        samples, api_ms = [], []
        for _ in range(10):
            t0 = time.perf_counter()
            iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                    InstanceType="t3.micro")["Instances"][0]["InstanceId"]
            api_ms.append((time.perf_counter() - t0) * 1000)
            while True:
                r = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
                if r["State"]["Name"] == "running":
                    break
                time.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
            ec2.terminate_instances(InstanceIds=[iid])
        metric("run-instances-call (median)", statistics.median(api_ms), "ms")
        metric("run-instances-to-running (median)", statistics.median(samples), "ms")
        metric("run-instances-to-running (max)", max(samples), "ms")

        # 1,000 records, from a tiny image so the clones stay cheap; 20 per call
        # (the per-request limit).
        tiny = os.path.join(data, "import", "tiny.raw")
        with open(tiny, "wb") as f:
            f.truncate(1 << 20)
        tiny_image = ec2.register_image(Name="tiny", ImageLocation=tiny)["ImageId"]
        t0 = time.perf_counter()
        while True:
            n = sum(len(r["Instances"]) for r in ec2.describe_instances(MaxResults=1000)["Reservations"])
            if n >= 1000:
                break
            ids = [i["InstanceId"] for i in ec2.run_instances(
                ImageId=tiny_image, MinCount=20, MaxCount=20, InstanceType="t3.nano")["Instances"]]
            ec2.terminate_instances(InstanceIds=ids)
        print(f"seeded {n} records in {time.perf_counter() - t0:.1f} s", flush=True)
        lat = []
        for _ in range(10):
            t0 = time.perf_counter()
            got = ec2.describe_instances(MaxResults=1000)
            lat.append((time.perf_counter() - t0) * 1000)
        count = sum(len(r["Instances"]) for r in got["Reservations"])
        metric(f"describe-instances {count} records (median)", statistics.median(lat), "ms")
        # The same on the wire, without botocore's XML parsing.
        conn = UnixHTTPConnection(sock)
        lat, size = [], 0
        for _ in range(10):
            t0 = time.perf_counter()
            conn.request("POST", "/", body="Action=DescribeInstances&Version=2016-11-15&MaxResults=1000",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            size = len(conn.getresponse().read())
            lat.append((time.perf_counter() - t0) * 1000)
        conn.close()
        metric(f"describe-instances {count} records, raw HTTP (median)", statistics.median(lat), "ms")
        print(f"  reply size {size >> 10} KiB", flush=True)
        one = got["Reservations"][0]["Instances"][0]["InstanceId"]
        lat = []
        for _ in range(50):
            t0 = time.perf_counter()
            ec2.describe_instances(InstanceIds=[one])
            lat.append((time.perf_counter() - t0) * 1000)
        metric("describe-instances one id of 1000 (median)", statistics.median(lat), "ms")

        # Requests per second on the Unix socket.
        for label, body in [
            ("describe-regions", "Action=DescribeRegions&Version=2016-11-15"),
            ("describe-instances-one-id",
             "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=" + urllib.parse.quote(one)),
        ]:
            for threads in (1, 4):
                metric(f"{label} req/s, {threads} keep-alive client(s)",
                       requests_per_second(sock, body, threads, 3.0), "req/s")
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(data, ignore_errors=True)


def requests_per_second(sock, body, threads, seconds):
    counts = [0] * threads
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def worker(k):
        conn = UnixHTTPConnection(sock)
        while time.perf_counter() < stop:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            counts[k] += 1
        conn.close()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
