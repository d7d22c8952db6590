"""boto3 against `flint serve` with the stand-in VMM. Usage:
scenarios.py NAME DATA_DIR; prints PASS lines, exits non-zero on failure."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (add_key_pair, check, error_code, register_image, run_scenario,  # noqa: E402
                     vm_socket, waiter)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZsaW50LXRlc3Qta2V5LWZvci10aGUtc3RhbmRpbiEh flint-test"


def describe_one(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]


def lifecycle(d):
    ec2, res = d.client(), d.resource()
    ami = register_image(d)
    add_key_pair(d, "flint-test", KEY)
    [inst] = res.create_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", KeyName="flint-test",
        UserData="#!/bin/sh\necho user-data-ran\n",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                              "Ebs": {"VolumeSize": 2, "VolumeType": "gp3", "DeleteOnTermination": True}}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
                           {"ResourceType": "volume", "Tags": [{"Key": "Disk", "Value": "root"}]}],
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                         "InstanceMetadataTags": "enabled"})
    check("run-pending", inst.state["Name"] == "pending", inst.state)
    inst.wait_until_running(WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    inst.reload()
    iid = inst.id
    check("running", inst.state == {"Code": 16, "Name": "running"}, inst.state)
    check("private-ip", inst.private_ip_address == "172.31.0.4", inst.private_ip_address)
    check("private-dns", inst.private_dns_name == "ip-172-31-0-4.ec2.internal", inst.private_dns_name)
    check("placement", inst.placement["AvailabilityZone"] == "us-east-1a", inst.placement)
    check("key-name", inst.key_name == "flint-test")
    check("tags", inst.tags == [{"Key": "Name", "Value": "web"}], inst.tags)
    check("metadata-options", inst.metadata_options["HttpTokens"] == "required"
          and inst.metadata_options["HttpPutResponseHopLimit"] == 2, inst.metadata_options)
    [bdm] = inst.block_device_mappings
    vol_id = bdm["Ebs"]["VolumeId"]
    check("root-mapping", bdm["DeviceName"] == "/dev/xvda" and bdm["Ebs"]["DeleteOnTermination"], bdm)
    [eni] = inst.network_interfaces_attribute
    mac = eni["MacAddress"]
    check("eni", eni["PrivateIpAddress"] == "172.31.0.4" and mac.startswith("0e:"), eni)
    vm = d.vm_config(iid)
    check("vm-config", vm["vcpus"] == 2 and vm["memory_mib"] == 1024
          and vm["image"]["serial"] == vol_id.replace("-", "", 1)
          and vm["nics"][0]["ip"] == "172.31.0.4/20" and vm["nics"][0]["mac"] == mac
          and vm["metadata"]["public_keys"][0]["openssh_key"].split()[:2] == KEY.split()[:2]
          and vm["metadata"]["tags"] == {"Name": "web"}
          and vm["metadata"]["metadata_options"]["http_tokens"] == "required", vm)
    [vol] = ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"]
    check("volume", vol["Size"] == 2 and vol["State"] == "in-use"
          and vol["Attachments"][0]["InstanceId"] == iid and vol["Tags"] == [{"Key": "Disk", "Value": "root"}], vol)
    vol_path = os.path.join(d.data_dir, "volumes", vol_id + ".raw")
    check("volume-file", os.path.getsize(vol_path) == 2 << 30)
    by_instance = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
    check("volume-filter", [v["VolumeId"] for v in by_instance] == [vol_id], by_instance)
    out = ec2.get_console_output(InstanceId=iid, Latest=True)
    check("console-output", "user-data-ran" in out["Output"], out)
    status = ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"]
    check("instance-status", status[0]["InstanceStatus"]["Status"] == "ok", status)

    # Live metadata options, reboot.
    ec2.modify_instance_metadata_options(InstanceId=iid, HttpTokens="optional", HttpEndpoint="enabled")
    _, live = vm_socket(d, iid, "GET", "/vm/metadata")
    check("metadata-pushed-live", live["metadata_options"]["http_tokens"] == "optional", live)
    code, _ = error_code(ec2.modify_instance_attribute, InstanceId=iid, InstanceType={"Value": "t3.small"})
    check("modify-running-refused", code == "IncorrectInstanceState", code)
    ec2.reboot_instances(InstanceIds=[iid])
    time.sleep(0.5)
    _, vmstat = vm_socket(d, iid, "GET", "/vm")
    check("rebooted", vmstat["boots"] == 2, vmstat)

    # Stop / start: same address and MAC, the disk kept.
    with open(vol_path, "r+b") as f:
        f.seek(1 << 20)
        f.write(b"written-by-the-guest")
    r = ec2.stop_instances(InstanceIds=[iid])
    change = r["StoppingInstances"][0]
    check("stop-reply", change["PreviousState"]["Name"] == "running"
          and change["CurrentState"]["Name"] == "stopping", change)
    waiter(ec2, "instance_stopped")([iid])
    stopped = describe_one(ec2, iid)
    check("stopped-reason", stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
          and stopped["StateTransitionReason"].startswith("User initiated ("), stopped)
    r = ec2.stop_instances(InstanceIds=[iid])
    check("stop-stopped-is-a-no-op", r["StoppingInstances"][0]["CurrentState"]["Name"] == "stopped", r)
    code, _ = error_code(ec2.reboot_instances, InstanceIds=[iid])
    check("reboot-stopped-refused", code == "IncorrectInstanceState", code)
    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "t3.small"})
    ec2.modify_instance_attribute(InstanceId=iid, UserData={"Value": b"#!/bin/sh\necho second-boot\n"})
    ec2.start_instances(InstanceIds=[iid])
    waiter(ec2, "instance_running")([iid])
    again = describe_one(ec2, iid)
    check("start-same-ip-mac", again["PrivateIpAddress"] == "172.31.0.4"
          and again["NetworkInterfaces"][0]["MacAddress"] == mac, again)
    check("start-new-type", again["InstanceType"] == "t3.small" and d.vm_config(iid)["memory_mib"] == 2048)
    with open(vol_path, "rb") as f:
        f.seek(1 << 20)
        check("disk-kept", f.read(20) == b"written-by-the-guest")
    # botocore decodes GetConsoleOutput's base64.
    check("new-user-data", "second-boot" in ec2.get_console_output(InstanceId=iid)["Output"])
    r = ec2.start_instances(InstanceIds=[iid])
    check("start-running-is-a-no-op", r["StartingInstances"][0]["CurrentState"]["Name"] == "running", r)

    # Terminate: waiter, record kept, volume and file gone.
    r = ec2.terminate_instances(InstanceIds=[iid])
    check("terminate-reply", r["TerminatingInstances"][0]["CurrentState"]["Name"] == "shutting-down", r)
    waiter(ec2, "instance_terminated")([iid])
    gone = describe_one(ec2, iid)
    check("terminated-describable", gone["State"]["Name"] == "terminated", gone)
    check("volume-deleted", not os.path.exists(vol_path)
          and ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"] == [])
    code, _ = error_code(ec2.describe_volumes, VolumeIds=[vol_id])
    check("volume-not-found", code == "InvalidVolume.NotFound", code)
    code, _ = error_code(ec2.start_instances, InstanceIds=[iid])
    check("start-terminated-refused", code == "IncorrectInstanceState", code)
    code, _ = error_code(ec2.stop_instances, InstanceIds=[iid])
    check("stop-terminated-refused", code == "IncorrectInstanceState", code)
    r = ec2.terminate_instances(InstanceIds=[iid])
    check("terminate-terminated-is-a-no-op", r["TerminatingInstances"][0]["CurrentState"]["Name"] == "terminated")


def requests(d):
    """ClientToken, DryRun, bad ids and input, filters, pagination."""
    ec2 = d.client()
    ami = register_image(d)
    args = dict(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano")
    a = ec2.run_instances(ClientToken="token-1", **args)
    b = ec2.run_instances(ClientToken="token-1", **args)
    check("client-token-replay", a["Instances"][0]["InstanceId"] == b["Instances"][0]["InstanceId"]
          and a["ReservationId"] == b["ReservationId"])
    code, status = error_code(ec2.run_instances, ClientToken="token-1", **dict(args, InstanceType="t3.micro"))
    check("client-token-mismatch", (code, status) == ("IdempotentParameterMismatch", 400), code)
    code, status = error_code(ec2.run_instances, DryRun=True, **args)
    check("run-dry-run", (code, status) == ("DryRunOperation", 412), (code, status))
    iid = a["Instances"][0]["InstanceId"]
    code, status = error_code(ec2.stop_instances, InstanceIds=[iid], DryRun=True)
    check("stop-dry-run", code == "DryRunOperation", code)
    code, _ = error_code(ec2.describe_instances, InstanceIds=["i-nothex"])
    check("malformed-id", code == "InvalidInstanceID.Malformed", code)
    code, _ = error_code(ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"])
    check("unknown-id", code == "InvalidInstanceID.NotFound", code)
    code, _ = error_code(ec2.terminate_instances, InstanceIds=[iid, "i-0123456789abcdef0"])
    check("one-unknown-id-changes-nothing", code == "InvalidInstanceID.NotFound"
          and describe_one(ec2, iid)["State"]["Name"] in ("pending", "running"), code)
    code, _ = error_code(ec2.run_instances, **dict(args, ImageId="ami-0123456789abcdef9"))
    check("unknown-ami", code == "InvalidAMIID.NotFound", code)
    code, _ = error_code(ec2.run_instances, **dict(args, ImageId="ami-x"))
    check("malformed-ami", code == "InvalidAMIID.Malformed", code)
    code, _ = error_code(ec2.run_instances, **dict(args, KeyName="nope"))
    check("unknown-key", code == "InvalidKeyPair.NotFound", code)
    code, _ = error_code(ec2.run_instances, **dict(args, UserData="x" * (16 * 1024 + 1)))
    check("user-data-too-big", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.run_instances, **dict(args, InstanceType="x9.mega"))
    check("unknown-type", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.run_instances, **dict(args, BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 1}}]), )
    check("root-size-ok-at-image-size", code is None, code)
    code, _ = error_code(ec2.run_instances, **dict(args, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdf", "VirtualName": "ephemeral0"}]))
    check("instance-store-mapping", code == "UnsupportedOperation", code)
    code, _ = error_code(ec2.run_instances, **dict(args, MinCount=3, MaxCount=2))
    check("min-above-max", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.get_console_output, InstanceId="i-0123456789abcdef0")
    check("console-unknown", code == "InvalidInstanceID.NotFound", code)

    # Seven more, tagged alternately; filters and pages.
    r = ec2.run_instances(ImageId=ami, MinCount=7, MaxCount=7, InstanceType="t3.micro",
                          TagSpecifications=[{"ResourceType": "instance",
                                              "Tags": [{"Key": "Group", "Value": "seven"}]}])
    seven = [i["InstanceId"] for i in r["Instances"]]
    check("seven-launched", len(seven) == 7 and len({i["PrivateIpAddress"] for i in r["Instances"]}) == 7)
    waiter(ec2, "instance_running")(seven)

    def ids(**kw):
        out = []
        for page in ec2.get_paginator("describe_instances").paginate(**kw):
            for res in page["Reservations"]:
                out += [i["InstanceId"] for i in res["Instances"]]
        return out
    check("filter-tag", sorted(ids(Filters=[{"Name": "tag:Group", "Values": ["sev*"]}])) == sorted(seven))
    check("filter-tag-key", sorted(ids(Filters=[{"Name": "tag-key", "Values": ["Group"]}])) == sorted(seven))
    check("filter-type", sorted(ids(Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}])) == sorted(seven))
    check("filter-state", iid in ids(Filters=[{"Name": "instance-state-name", "Values": ["running"]}]))
    check("filter-state-code", iid in ids(Filters=[{"Name": "instance-state-code", "Values": ["16"]}]))
    check("filter-image", len(ids(Filters=[{"Name": "image-id", "Values": [ami]}])) >= 9)
    ip = r["Instances"][2]["PrivateIpAddress"]
    check("filter-ip", ids(Filters=[{"Name": "private-ip-address", "Values": [ip]}]) == [seven[2]])
    check("filter-id", ids(Filters=[{"Name": "instance-id", "Values": [seven[0]]}]) == [seven[0]])
    check("filter-none", ids(Filters=[{"Name": "tag:Group", "Values": ["other"]}]) == [])
    code, _ = error_code(ec2.describe_instances, Filters=[{"Name": "bogus", "Values": ["x"]}])
    check("filter-unknown", code == "InvalidParameterValue", code)
    page = ec2.describe_instances(MaxResults=5)
    n = sum(len(x["Instances"]) for x in page["Reservations"])
    check("page-1", n == 5 and "NextToken" in page, n)
    everything = ids(PaginationConfig={"PageSize": 5})
    check("pages-cover-all", len(everything) == len(set(everything)) == len(ids()), everything)
    code, _ = error_code(ec2.describe_instances, MaxResults=4)
    check("max-results-range", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.describe_instances, MaxResults=5, NextToken="zz")
    check("bad-token", code == "InvalidPaginationToken", code)
    r = ec2.describe_instance_status(IncludeAllInstances=True, MaxResults=5)
    check("status-page", len(r["InstanceStatuses"]) == 5 and "NextToken" in r)


def concurrency(d):
    """Conflicting requests at once: each one succeeds or fails with an EC2
    error (never a 5xx), and the instance ends in one consistent state."""
    ec2 = d.client()
    ami = register_image(d)
    iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    waiter(ec2, "instance_running")([iid])
    results = []

    def go(action):
        c = d.client()
        fn = {"stop": c.stop_instances, "start": c.start_instances,
              "terminate": c.terminate_instances, "reboot": c.reboot_instances}[action]
        code, status = error_code(fn, InstanceIds=[iid])
        results.append((action, code, status))
    threads = [threading.Thread(target=go, args=(a,)) for a in
               ["stop", "start", "stop", "reboot", "terminate", "start", "stop", "terminate"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("no-5xx", all(s is None or s < 500 for _, _, s in results), results)
    check("only-state-errors", all(c in (None, "IncorrectInstanceState") for _, c, _ in results), results)
    waiter(ec2, "instance_terminated")([iid])
    check("terminated-in-the-end", describe_one(ec2, iid)["State"]["Name"] == "terminated")


def guest_events(d):
    """The guest powering off (per shutdown behavior) and the VMM crashing."""
    ec2 = d.client()
    ami = register_image(d)
    stop = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    term = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1,
                             InstanceInitiatedShutdownBehavior="terminate")["Instances"][0]["InstanceId"]
    crash = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    waiter(ec2, "instance_running")([stop, term, crash])
    for iid, sig in ((stop, signal.SIGUSR1), (term, signal.SIGUSR1), (crash, signal.SIGUSR2)):
        _, st = vm_socket(d, iid, "GET", "/vm")
        os.kill(st["pid"], sig)
    waiter(ec2, "instance_stopped")([stop, crash])
    waiter(ec2, "instance_terminated")([term])
    check("poweroff-stops", describe_one(ec2, stop)["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown")
    check("poweroff-terminates", describe_one(ec2, term)["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown")
    reason = describe_one(ec2, crash)["StateReason"]
    check("crash-stops-with-reason", reason["Code"] == "Server.InternalError" and "crash" in reason["Message"], reason)
    ec2.start_instances(InstanceIds=[crash])
    waiter(ec2, "instance_running")([crash])
    check("crashed-restarts", describe_one(ec2, crash)["State"]["Name"] == "running")


def restart(d):
    """SIGKILL of the daemon leaves VMs running; the next daemon re-adopts
    them and reconciles what changed while it was away."""
    ec2 = d.client()
    ami = register_image(d)
    r = ec2.run_instances(ImageId=ami, MinCount=3, MaxCount=3)
    keep, crash, quiet = [i["InstanceId"] for i in r["Instances"]]
    waiter(ec2, "instance_running")([keep, crash, quiet])
    pids = {iid: vm_socket(d, iid, "GET", "/vm")[1]["pid"] for iid in (keep, crash, quiet)}
    d.kill9()
    time.sleep(0.3)
    check("vms-outlive-the-daemon", all(os.path.exists(f"/proc/{p}") for p in pids.values()))
    os.kill(pids[crash], signal.SIGUSR2)
    os.kill(pids[quiet], signal.SIGUSR1)
    time.sleep(1)
    d.start()
    ec2 = d.client()
    check("adopted-running", describe_one(ec2, keep)["State"]["Name"] == "running")
    c = describe_one(ec2, crash)
    check("crash-reconciled", c["State"]["Name"] == "stopped"
          and c["StateReason"]["Code"] == "Server.InternalError", c)
    q = describe_one(ec2, quiet)
    check("poweroff-reconciled", q["State"]["Name"] == "stopped"
          and q["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown", q)
    check("same-vm-process", vm_socket(d, keep, "GET", "/vm")[1]["pid"] == pids[keep])
    ec2.stop_instances(InstanceIds=[keep])
    waiter(ec2, "instance_stopped")([keep])
    check("adopted-stops", not os.path.exists(f"/proc/{pids[keep]}") or
          open(f"/proc/{pids[keep]}/stat").read().split(")")[-1].split()[0] == "Z")
    ec2.start_instances(InstanceIds=[keep, crash])
    waiter(ec2, "instance_running")([keep, crash])
    ec2.terminate_instances(InstanceIds=[keep, crash, quiet])
    waiter(ec2, "instance_terminated")([keep, crash, quiet])
    check("all-terminated", True)


def private_data(d):
    """Everything under the data dir is root's alone: 0700 directories,
    0600 files (sockets: the control socket is 0660 for group flint), and
    a process running as nobody can read none of it."""
    import stat
    import subprocess
    ec2 = d.client()
    ami = register_image(d)
    add_key_pair(d, "flint-test", KEY)
    iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                            KeyName="flint-test",
                            UserData="#!/bin/sh\necho secret-user-data\n")["Instances"][0]["InstanceId"]
    waiter(ec2, "instance_running")([iid])
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig={"Delay": 1})
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig={"Delay": 1})
    check("console-has-user-data", "secret-user-data" in ec2.get_console_output(
        InstanceId=iid, Latest=True).get("Output", ""))
    # A file an older Flint (or an administrator) left world-readable is
    # tightened at the next start.
    old = os.path.join(d.data_dir, "instances", iid, "old-notes.txt")
    with open(old, "w") as f:
        f.write("left by hand")
    os.chmod(old, 0o644)
    d.stop()
    d.start()
    check("old-file-tightened", stat.S_IMODE(os.stat(old).st_mode) == 0o600,
          oct(os.stat(old).st_mode))
    paths, bad = [], []
    for root, dirs, files in os.walk(d.data_dir):
        for name in dirs:
            p = os.path.join(root, name)
            if stat.S_IMODE(os.lstat(p).st_mode) != 0o700:
                bad.append((p, oct(os.lstat(p).st_mode)))
        for name in files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            paths.append(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            allowed = 0o660 if stat.S_ISSOCK(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) & ~allowed:
                bad.append((p, oct(st.st_mode)))
    check("data-dir-0700", stat.S_IMODE(os.stat(d.data_dir).st_mode) == 0o700)
    check("modes", not bad, bad)
    kinds = {os.path.basename(p) for p in paths}
    check("covers-everything", {"flint.db", "vm.json", "console.log", "vmm.log"} <= kinds
          and any(p.endswith(vol + ".raw") for p in paths)
          and any(p.endswith(snap + ".raw") for p in paths)
          and any("/images/" in p for p in paths)
          and any("/import/" in p for p in paths), sorted(kinds))
    # A local user (nobody) tries every file by its full path.
    probe = ("import sys\nok = []\nfor p in sys.argv[1:]:\n    try:\n"
             "        open(p, 'rb').read(1)\n        ok.append(p)\n    except OSError:\n"
             "        pass\nprint('\\n'.join(ok))\n")
    # The system Python: the test venv may be in a directory nobody cannot
    # enter.
    out = subprocess.run(["/usr/bin/python3", "-c", probe, "/etc/passwd"] + paths, user=65534, group=65534,
                         extra_groups=[], capture_output=True, text=True, cwd="/")
    check("nobody-ran", out.returncode == 0, out.stderr)
    # /etc/passwd: the control, proving the probe can read what nobody may.
    check("nobody-reads-nothing", out.stdout.strip() == "/etc/passwd", out.stdout)
    ec2.terminate_instances(InstanceIds=[iid])
    waiter(ec2, "instance_terminated")([iid])


SCENARIOS = {f.__name__: f for f in (lifecycle, requests, concurrency, guest_events, restart,
                                     private_data)}

if __name__ == "__main__":
    run_scenario(SCENARIOS)
