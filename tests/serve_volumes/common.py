"""Helpers of the serve_volumes scenarios (on top of serve_instances'
harness: the daemon, the stand-in's socket, check())."""
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "serve_instances"))
from harness import register_image, vm_socket, waiter  # noqa: E402,F401

AZ = "us-east-1a"
FAST = {"Delay": 1, "MaxAttempts": 30}


def volume_waiter(ec2, name):
    w = ec2.get_waiter(name)
    return lambda ids: w.wait(VolumeIds=ids, WaiterConfig=FAST)


def one_volume(ec2, vid):
    return ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def until(what, fn, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_instance(d, ec2, **kw):
    iid = ec2.run_instances(ImageId=register_image(d), MinCount=1, MaxCount=1,
                            **kw)["Instances"][0]["InstanceId"]
    waiter(ec2, "instance_running")([iid])
    return iid


def standin_disk(d, iid, vid):
    return vm_socket(d, iid, "GET", f"/vm/disks/{vid}")


def mapping(ec2, iid):
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return {m["DeviceName"]: (m["Ebs"]["VolumeId"], m["Ebs"]["Status"])
            for m in inst["BlockDeviceMappings"]}


def metrics(d):
    with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/metrics", timeout=10) as r:
        return r.headers.get("Content-Type"), r.read().decode()
