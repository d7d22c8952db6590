"""boto3 against `flint serve` with the stand-in VMM. Usage:
scenarios.py NAME DATA_DIR; prints PASS lines, exits non-zero on failure."""
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FLINT, add_key_pair, check, error_code, register_image,  # noqa: E402
                     run_scenario, vm_socket, waiter)

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


def cli_output(d):
    """The `flint` CLI as `aws ec2`: instances launched with `flint
    run-instances`, then --query and --output json|text|table on several
    verbs, each compared byte for byte with what the aws CLI (the venv's)
    prints for the same command line against the same daemon; --help and
    unknown verbs."""
    ec2 = d.client()
    ami = register_image(d)
    add_key_pair(d, "flint-test", KEY)
    sock = os.path.join(d.data_dir, "flint.sock")
    aws_bin = os.path.join(os.path.dirname(sys.executable), "aws")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDFLINTTEST", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")

    def flint(*args):
        return subprocess.run([FLINT, *args, "--socket", sock], capture_output=True, text=True,
                              env=env, timeout=60)

    def aws(*args):
        return subprocess.run([aws_bin, "ec2", *args, "--endpoint-url",
                               f"http://127.0.0.1:{d.port}"],
                              capture_output=True, text=True, env=env, timeout=60)

    out = flint("run-instances", "--image-id", ami, "--instance-type", "t3.micro", "--count", "2",
                "--key-name", "flint-test", "--user-data", "#!/bin/sh\necho hi\n",
                "--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli}]",
                "--query", "Instances[].InstanceId", "--output", "text")
    check("cli-run-instances", out.returncode == 0, out.stderr)
    ids = out.stdout.split()
    check("cli-run-text", len(ids) == 2 and all(i.startswith("i-") for i in ids)
          and out.stdout == "\t".join(ids) + "\n", out.stdout)
    waiter(ec2, "instance_running")(ids)
    cases = [
        ("describe-instances", "--query", "Reservations[].Instances[].InstanceId", "--output", "text"),
        ("describe-instances", "--query", "Reservations[].Instances[].InstanceId"),
        ("describe-instances",),
        ("describe-instances", "--output", "text"),
        ("describe-instances", "--query",
         "Reservations[].Instances[].{Id:InstanceId,Type:InstanceType,State:State.Name,Tags:Tags}"),
        ("describe-instances", "--query",
         "Reservations[].Instances[].{Id:InstanceId,Type:InstanceType,State:State.Name,Tags:Tags}",
         "--output", "text"),
        ("describe-instances", "--query",
         "Reservations[].Instances[?State.Name==`running`][].[InstanceId, PrivateIpAddress]",
         "--output", "text"),
        ("describe-instances", "--query", "Reservations[0].Instances[0].State"),
        ("describe-instances", "--query", "length(Reservations[].Instances[])", "--output", "text"),
        ("describe-instances", "--filters", "Name=tag:Name,Values=cli", "--query",
         "Reservations[].Instances[].Tags[]", "--output", "text"),
        ("describe-instances", "--query", "Reservations[].Instances[?InstanceId=='nope'][]"),
        ("describe-key-pairs", "--query", "KeyPairs[0]"),
        ("describe-key-pairs", "--output", "text"),
        ("describe-images", "--output", "text"),
        ("describe-images", "--query", "Images[0].{Name:Name,Id:ImageId,Root:RootDeviceName}"),
        # --no-paginate: the aws CLI would page with MaxResults=1000, more
        # than the daemon's DescribeVolumes takes (flint accepts the flag).
        # Selected fields: this aws CLI leaves the volumes' OwnerId out.
        ("describe-volumes", "--no-paginate", "--output", "text", "--query",
         "Volumes[].[VolumeId,Size,State,Attachments[0].InstanceId,Attachments[0].Device]"),
        ("describe-instance-status", "--no-paginate", "--output", "text"),
        ("describe-instance-types", "--query", "InstanceTypes[?VCpuInfo.DefaultVCpus > `2`].InstanceType",
         "--output", "text"),
        ("describe-regions", "--query", "Regions[0]", "--output", "text"),
    ]
    for case in cases:
        f, a = flint(*case), aws(*case)
        check("cli-vs-aws " + " ".join(case),
              (f.returncode, f.stdout) == (a.returncode, a.stdout) and a.returncode == 0,
              f"\nflint ({f.returncode}):\n{f.stdout}{f.stderr}\naws ({a.returncode}):\n{a.stdout}{a.stderr}")
    table = flint("describe-instances", "--query", "Reservations[].Instances[].[InstanceId,InstanceType]",
                  "--output", "table")
    check("cli-table", table.returncode == 0 and all(i in table.stdout for i in ids)
          and table.stdout.splitlines()[0].startswith("---") and "| t3.micro" in table.stdout, table.stdout)
    bad = flint("describe-instances", "--output", "yaml")
    check("cli-bad-output", bad.returncode == 252 and "--output" in bad.stderr, bad.stderr)
    bad = flint("describe-instances", "--query", "Reservations[")
    check("cli-bad-query", bad.returncode == 255 and "Bad value for --query" in bad.stderr, bad.stderr)
    top = subprocess.run([FLINT, "--help"], capture_output=True, text=True)
    check("cli-help-lists-verbs", top.returncode == 0 and all(
        v in top.stdout for v in ("serve", "kvm-check", "vmm", "run-instances", "describe-instances",
                                  "create-volume", "describe-volume-metrics")), top.stdout)
    for flag in ("--help", "-h"):
        h = subprocess.run([FLINT, "run-instances", flag], capture_output=True, text=True)
        check("cli-verb-help" + flag, h.returncode == 0 and all(
            o in h.stdout for o in ("--image-id", "--instance-type", "--count", "--key-name", "--user-data",
                                    "--block-device-mappings", "--tag-specifications", "--query",
                                    "--output")), h.stdout + h.stderr)
    typo = subprocess.run([FLINT, "describe-instance"], capture_output=True, text=True)
    check("cli-unknown-verb", typo.returncode == 252 and "describe-instances" in typo.stderr, typo.stderr)
    ec2.terminate_instances(InstanceIds=ids)
    waiter(ec2, "instance_terminated")(ids)


# Admission: 4 vCPUs in all, whatever this machine has (+0.5: the daemon
# rounds the product down), and memory to spare.
CPUS = len(os.sched_getaffinity(0))
CAPACITY_ARGS = ["--vcpu-overcommit", f"{4.5 / CPUS:.6f}", "--memory-overcommit", "1000"]


def live(ec2):
    return sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                  if i["State"]["Name"] != "terminated")


def capacity(d):
    """RunInstances and StartInstances take no more of the host than it has:
    MaxCount shrinks to what fits, MinCount above it and a start of a
    stopped instance on a full host are InsufficientInstanceCapacity with
    nothing changed, freed room is usable again; memory likewise."""
    ec2 = d.client()
    ami = register_image(d)
    micro = dict(ImageId=ami, InstanceType="t2.micro")  # 1 vCPU, 1 GiB
    r = ec2.run_instances(MinCount=1, MaxCount=6, **micro)
    four = [i["InstanceId"] for i in r["Instances"]]
    check("max-count-shrinks-to-capacity", len(four) == 4, four)
    waiter(ec2, "instance_running")(four)
    code, status = error_code(ec2.run_instances, MinCount=1, MaxCount=1, **micro)
    check("full-host-refuses", (code, status) == ("InsufficientInstanceCapacity", 500), (code, status))
    code, status = error_code(ec2.run_instances, MinCount=1, MaxCount=1, DryRun=True, **micro)
    check("dry-run-checks-no-capacity", code == "DryRunOperation", code)
    ec2.stop_instances(InstanceIds=[four[0]])
    waiter(ec2, "instance_stopped")([four[0]])
    code, _ = error_code(ec2.run_instances, MinCount=2, MaxCount=2, **micro)
    check("min-count-above-room-refused", code == "InsufficientInstanceCapacity", code)
    check("refused-launch-left-nothing", live(ec2) == sorted(four), live(ec2))
    fifth = ec2.run_instances(MinCount=1, MaxCount=1, **micro)["Instances"][0]["InstanceId"]
    check("stopped-instance-frees-its-room", fifth.startswith("i-"), fifth)
    waiter(ec2, "instance_running")([fifth])
    code, _ = error_code(ec2.start_instances, InstanceIds=[four[0]])
    check("start-on-full-host-refused", code == "InsufficientInstanceCapacity", code)
    check("refused-start-stays-stopped",
          describe_one(ec2, four[0])["State"]["Name"] == "stopped", describe_one(ec2, four[0])["State"])
    ec2.terminate_instances(InstanceIds=[fifth])
    waiter(ec2, "instance_terminated")([fifth])
    ec2.start_instances(InstanceIds=[four[0]])
    waiter(ec2, "instance_running")([four[0]])
    check("start-after-room-freed", True)

    # Memory: a daemon that may commit almost none of it.
    other = os.path.join(d.data_dir, "tight")
    os.makedirs(other)
    from harness import Daemon
    tight = Daemon(other, args=["--memory-overcommit", "0.001"]).start()
    try:
        ec2t = tight.client()
        code, _ = error_code(ec2t.run_instances, MinCount=1, MaxCount=1, ImageId=register_image(tight),
                             InstanceType="t3.nano")
        check("memory-short-refused", code == "InsufficientInstanceCapacity", code)
        check("memory-short-nothing-made", live(ec2t) == [], live(ec2t))
    finally:
        tight.stop()


def full_disk(d):
    """A data dir filled to 100 %: the running VM keeps running and the API
    answers; calls that need space fail with EC2's capacity errors; once
    there is room again they work."""
    import errno
    from harness import ROOMY, Daemon
    small = os.path.join(d.data_dir, "small")
    os.makedirs(small)
    # 320 MiB: room for the image, the store and the 256 MiB the daemon
    # keeps free.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320m,mode=0700", "flint-full-disk", small], check=True)
    daemon = None
    try:
        daemon = Daemon(small, args=ROOMY).start()
        ec2 = daemon.client()
        ami = register_image(daemon)
        iid = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano",
                                UserData="#!/bin/sh\necho hello\n")["Instances"][0]["InstanceId"]
        waiter(ec2, "instance_running")([iid])
        vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
        ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig={"Delay": 1})
        filler = os.path.join(small, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\xff" * (1 << 20))
                    f.flush()
            except OSError as e:
                check("disk-filled", e.errno == errno.ENOSPC, e)
        code, status = error_code(ec2.create_volume, AvailabilityZone="us-east-1a", Size=1)
        check("full-create-volume", (code, status) == ("InsufficientVolumeCapacity", 500), (code, status))
        code, _ = error_code(ec2.create_snapshot, VolumeId=vol)
        check("full-create-snapshot", code == "InsufficientCapacity", code)
        code, _ = error_code(ec2.run_instances, ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.nano")
        check("full-run-instances", code == "InsufficientInstanceCapacity", code)
        check("full-vm-keeps-running", describe_one(ec2, iid)["State"]["Name"] == "running",
              describe_one(ec2, iid)["State"])
        check("full-console-output", "hello" in ec2.get_console_output(InstanceId=iid).get("Output", ""))
        check("full-daemon-alive", daemon.proc.poll() is None)
        os.unlink(filler)
        vol2 = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
        check("room-again-create-volume", vol2.startswith("vol-"), vol2)
        ec2.terminate_instances(InstanceIds=[iid])
        waiter(ec2, "instance_terminated")([iid])
    finally:
        if daemon:
            daemon.stop()
        subprocess.run(["umount", "-l", small], check=False)


SCENARIOS = {f.__name__: f for f in (lifecycle, requests, concurrency, guest_events, restart,
                                     private_data, cli_output, capacity, full_disk)}

if __name__ == "__main__":
    run_scenario(SCENARIOS, args={"capacity": CAPACITY_ARGS})
