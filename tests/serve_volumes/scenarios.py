"""boto3 against `flint serve`'s EBS API with the stand-in VMM. Usage:
scenarios.py NAME DATA_DIR; prints PASS lines, exits non-zero on failure."""
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "serve_instances"))
from harness import (Daemon, check, error_code, register_image, vm_socket,  # noqa: E402
                     waiter)

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
    iid = ec2.run_instances(ImageId=register_image(d) if not kw.pop("have_image", False)
                            else "ami-0123456789abcdef0",
                            MinCount=1, MaxCount=1, **kw)["Instances"][0]["InstanceId"]
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


def hotplug(d):
    ec2 = d.client()
    iid = running_instance(d, ec2)
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=2, VolumeType="gp3",
                            TagSpecifications=[{"ResourceType": "volume",
                                                "Tags": [{"Key": "Name", "Value": "data"}]}])
    vid = vol["VolumeId"]
    check("create-reply", vol["State"] == "creating" and vol["Size"] == 2
          and vol["Iops"] == 3000 and vol["Throughput"] == 125
          and vol["Tags"] == [{"Key": "Name", "Value": "data"}], vol)
    volume_waiter(ec2, "volume_available")([vid])
    path = os.path.join(d.data_dir, "volumes", vid + ".raw")
    check("volume-file-sparse", os.path.getsize(path) == 2 << 30
          and os.stat(path).st_blocks == 0)

    # Hot attach to the running instance.
    a = ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdf")
    check("attach-reply", a["State"] == "attaching" and a["Device"] == "/dev/sdf"
          and a["InstanceId"] == iid, a)
    volume_waiter(ec2, "volume_in_use")([vid])
    v = one_volume(ec2, vid)
    check("attached", v["Attachments"][0]["State"] == "attached"
          and v["Attachments"][0]["Device"] == "/dev/sdf"
          and v["Attachments"][0]["DeleteOnTermination"] is False, v)
    status, disk = standin_disk(d, iid, vid)
    check("standin-has-the-disk", status == 200 and disk["serial"] == vid.replace("-", "", 1)
          and len(disk["serial"]) == 20 and disk["path"] == path and disk["state"] == "attached"
          and disk["limits"] == {"volume_type": "gp3", "size_gib": 2, "iops": 3000,
                                 "throughput_mibps": 125}, disk)
    check("instance-mapping", mapping(ec2, iid)["/dev/sdf"] == (vid, "attached"))
    _, meta = vm_socket(d, iid, "GET", "/vm/metadata")
    check("metadata-mapping", meta["block_device_mapping"].get("ebs1") == "sdf", meta)
    ctype, text = metrics(d)
    check("metrics", ctype.startswith("text/plain") and
          f'flint_volume_read_ops_total{{volume_id="{vid}",instance_id="{iid}"}}' in text
          and f'flint_volume_size_bytes{{volume_id="{vid}"}} {2 << 30}' in text, text)
    by_filter = ec2.describe_volumes(Filters=[
        {"Name": "attachment.instance-id", "Values": [iid]},
        {"Name": "attachment.status", "Values": ["attached"]},
        {"Name": "tag:Name", "Values": ["data"]}])["Volumes"]
    check("filter-attachment", [x["VolumeId"] for x in by_filter] == [vid], by_filter)
    code, _ = error_code(ec2.attach_volume, VolumeId=vid, InstanceId=iid, Device="/dev/sdg")
    check("attach-twice", code == "VolumeInUse", code)
    code, _ = error_code(ec2.delete_volume, VolumeId=vid)
    check("delete-in-use", code == "VolumeInUse", code)
    root = mapping(ec2, iid)["/dev/xvda"][0]
    code, _ = error_code(ec2.detach_volume, VolumeId=root)
    check("root-detach-refused", code == "OperationNotPermitted", code)
    other = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    volume_waiter(ec2, "volume_available")([other])
    code, _ = error_code(ec2.attach_volume, VolumeId=other, InstanceId=iid, Device="/dev/xvdf")
    check("device-alias-in-use", code == "InvalidParameterValue", code)

    # Detach: detaching until the guest ejects, then available.
    r = ec2.detach_volume(VolumeId=vid)
    check("detach-reply", r["State"] == "detaching", r)
    volume_waiter(ec2, "volume_available")([vid])
    check("standin-lost-the-disk", standin_disk(d, iid, vid)[0] == 404)
    check("mapping-follows", "/dev/sdf" not in mapping(ec2, iid))
    _, meta = vm_socket(d, iid, "GET", "/vm/metadata")
    check("metadata-follows", "ebs1" not in meta["block_device_mapping"], meta)

    # A hung guest: detaching until Force.
    ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdh")
    volume_waiter(ec2, "volume_in_use")([vid])
    vm_socket(d, iid, "PUT", "/standin/guest", {"hung": True})
    ec2.detach_volume(VolumeId=vid)
    time.sleep(1.5)
    v = one_volume(ec2, vid)
    check("hung-stays-detaching", v["State"] == "in-use"
          and v["Attachments"][0]["State"] == "detaching", v)
    by_status = ec2.describe_volumes(Filters=[{"Name": "attachment.status",
                                               "Values": ["detaching"]}])["Volumes"]
    check("filter-detaching", [x["VolumeId"] for x in by_status] == [vid], by_status)
    r = ec2.detach_volume(VolumeId=vid, Force=True)
    check("force-detach", r["State"] == "detached", r)
    check("forced-available", one_volume(ec2, vid)["State"] == "available")
    vm_socket(d, iid, "PUT", "/standin/guest", {"hung": False})

    # Attach to a stopped instance: in the VM config at the next start.
    ec2.stop_instances(InstanceIds=[iid])
    waiter(ec2, "instance_stopped")([iid])
    a = ec2.attach_volume(VolumeId=vid, InstanceId=iid, Device="/dev/sdg")
    ec2.attach_volume(VolumeId=other, InstanceId=iid, Device="/dev/sdf")
    v = one_volume(ec2, vid)
    check("stopped-attach", v["State"] == "in-use"
          and v["Attachments"][0]["State"] == "attached", v)
    ec2.start_instances(InstanceIds=[iid])
    waiter(ec2, "instance_running")([iid])
    vm = d.vm_config(iid)
    check("vm-config-disks-in-device-order",
          [x["id"] for x in vm["disks"]] == [other, vid]
          and vm["disks"][1]["serial"] == vid.replace("-", "", 1)
          and vm["disks"][1]["limits"]["volume_type"] == "gp3"
          and vm["image"]["id"] == root and vm["image"]["limits"]["volume_type"] == "gp3", vm)
    check("vm-config-metadata", vm["metadata"]["block_device_mapping"]
          == {"ami": "/dev/xvda", "root": "/dev/xvda", "ebs1": "sdf", "ebs2": "sdg"}, vm)
    status, disk = standin_disk(d, iid, vid)
    check("boot-disk-present", status == 200 and disk["state"] == "attached", disk)
    # Detach while stopped is immediate.
    ec2.stop_instances(InstanceIds=[iid])
    waiter(ec2, "instance_stopped")([iid])
    r = ec2.detach_volume(VolumeId=other)
    check("stopped-detach", r["State"] == "detached"
          and one_volume(ec2, other)["State"] == "available", r)
    # The root volume of a stopped instance can be detached, and back.
    ec2.detach_volume(VolumeId=root)
    code, _ = error_code(ec2.start_instances, InstanceIds=[iid])
    check("start-without-root-refused", code == "IncorrectInstanceState", code)
    ec2.attach_volume(VolumeId=root, InstanceId=iid, Device="/dev/xvda")
    ec2.start_instances(InstanceIds=[iid])
    waiter(ec2, "instance_running")([iid])
    check("root-back", mapping(ec2, iid)["/dev/xvda"] == (root, "attached"))
    ec2.delete_volume(VolumeId=other)
    volume_waiter(ec2, "volume_deleted")([other])
    check("deleted", not os.path.exists(os.path.join(d.data_dir, "volumes", other + ".raw")))


def snapshots(d):
    ec2 = d.client()
    vid = ec2.create_volume(AvailabilityZone=AZ, Size=1, VolumeType="gp2")["VolumeId"]
    volume_waiter(ec2, "volume_available")([vid])
    v = one_volume(ec2, vid)
    check("gp2-baseline-iops", v["Iops"] == 100 and "Throughput" not in v, v)
    path = os.path.join(d.data_dir, "volumes", vid + ".raw")
    payload = os.urandom(4096)
    with open(path, "r+b") as f:
        f.seek(300 << 20)
        f.write(payload)
    snap = ec2.create_snapshot(VolumeId=vid, Description="first",
                               TagSpecifications=[{"ResourceType": "snapshot",
                                                   "Tags": [{"Key": "K", "Value": "v"}]}])
    sid = snap["SnapshotId"]
    check("snapshot-reply", snap["State"] == "pending" and snap["VolumeId"] == vid
          and snap["VolumeSize"] == 1 and snap["Description"] == "first", snap)
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
    s = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
    check("snapshot-completed", s["Progress"] == "100%" and s["Tags"] == [{"Key": "K", "Value": "v"}]
          and s["OwnerId"] == "000000000000", s)
    check("snapshot-owner-self", [x["SnapshotId"] for x in
                                  ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]] == [sid])
    check("snapshot-owner-amazon", ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"] == [])
    check("snapshot-filter", [x["SnapshotId"] for x in ec2.describe_snapshots(
        Filters=[{"Name": "volume-id", "Values": [vid]}, {"Name": "tag:K", "Values": ["v"]}])
        ["Snapshots"]] == [sid])
    # Writes after the snapshot do not reach it.
    with open(path, "r+b") as f:
        f.seek(300 << 20)
        f.write(b"\0" * 4096)
    code, _ = error_code(ec2.create_volume, AvailabilityZone=AZ, SnapshotId=sid, Size=0)
    check("from-snapshot-too-small", code == "InvalidParameterValue", code)
    copy = ec2.create_volume(AvailabilityZone=AZ, SnapshotId=sid, VolumeType="gp3")
    check("from-snapshot-size", copy["Size"] == 1 and copy["SnapshotId"] == sid, copy)
    big = ec2.create_volume(AvailabilityZone=AZ, SnapshotId=sid, Size=3)["VolumeId"]
    volume_waiter(ec2, "volume_available")([copy["VolumeId"], big])
    for name, other in (("same-bytes", copy["VolumeId"]), ("same-bytes-grown", big)):
        with open(os.path.join(d.data_dir, "volumes", other + ".raw"), "rb") as f:
            f.seek(300 << 20)
            check(name, f.read(4096) == payload)
    check("grown-size", os.path.getsize(os.path.join(d.data_dir, "volumes", big + ".raw")) == 3 << 30)
    check("filter-snapshot-id", sorted(x["VolumeId"] for x in ec2.describe_volumes(
        Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Volumes"]) == sorted([copy["VolumeId"], big]))
    ec2.delete_snapshot(SnapshotId=sid)
    code, _ = error_code(ec2.describe_snapshots, SnapshotIds=[sid])
    check("snapshot-deleted", code == "InvalidSnapshot.NotFound", code)
    code, _ = error_code(ec2.create_volume, AvailabilityZone=AZ, SnapshotId=sid)
    check("from-deleted-snapshot", code == "InvalidSnapshot.NotFound", code)

    # ModifyVolume while attached to a running VM.
    iid = running_instance(d, ec2)
    ec2.attach_volume(VolumeId=big, InstanceId=iid, Device="/dev/sdf")
    volume_waiter(ec2, "volume_in_use")([big])
    m = ec2.modify_volume(VolumeId=big, Size=5)["VolumeModification"]
    check("modify-reply", m["ModificationState"] == "modifying" and m["TargetSize"] == 5
          and m["OriginalSize"] == 3, m)
    done = until("modification completed", lambda: [
        x for x in ec2.describe_volumes_modifications(VolumeIds=[big])["VolumesModifications"]
        if x["ModificationState"] == "completed"])
    check("modification-completed", done[0]["Progress"] == 100 and "EndTime" in done[0], done)
    check("file-grown", os.path.getsize(os.path.join(d.data_dir, "volumes", big + ".raw")) == 5 << 30)
    _, events = vm_socket(d, iid, "GET", "/standin/events")
    check("standin-got-resize", ["PATCH", f"/vm/disks/{big}", {"resize": True}] in events, events)
    _, disk = standin_disk(d, iid, big)
    check("standin-size", disk["size_bytes"] == 5 << 30 and disk["limits"]["size_gib"] == 5, disk)
    ec2.modify_volume(VolumeId=big, VolumeType="io2", Iops=2000)
    until("io2 limits", lambda: standin_disk(d, iid, big)[1]["limits"]
          == {"volume_type": "io2", "size_gib": 5, "iops": 2000})
    v = one_volume(ec2, big)
    check("modified-volume", v["VolumeType"] == "io2" and v["Iops"] == 2000 and v["Size"] == 5, v)
    until("second modification done", lambda: ec2.describe_volumes_modifications(
        VolumeIds=[big])["VolumesModifications"][0]["ModificationState"] == "completed")
    code, _ = error_code(ec2.modify_volume, VolumeId=big, Size=4)
    check("no-shrink", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.modify_volume, VolumeId=big, VolumeType="gp2", Iops=300)
    check("modify-rules", code == "InvalidParameterCombination", code)
    code, _ = error_code(ec2.modify_volume, VolumeId=big, Size=5)
    check("modify-no-change", code == "InvalidParameterCombination", code)
    mods = ec2.describe_volumes_modifications(
        Filters=[{"Name": "target-volume-type", "Values": ["io2"]}])["VolumesModifications"]
    check("modifications-filter", [x["VolumeId"] for x in mods] == [big], mods)


def requests(d):
    """Bad input, ClientToken, DryRun, filters, pages, DeleteOnTermination."""
    ec2 = d.client()
    bad = [
        (dict(Size=0, VolumeType="gp2"), "InvalidParameterValue"),
        (dict(Size=16385, VolumeType="gp2"), "InvalidParameterValue"),
        (dict(Size=3, VolumeType="io1", Iops=100), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="io1"), "InvalidParameterCombination"),
        (dict(Size=10, VolumeType="io1", Iops=501), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="io2", Iops=50), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp2", Iops=300), "InvalidParameterCombination"),
        (dict(Size=10, VolumeType="gp3", Iops=2000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp3", Throughput=3000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp3", Iops=3000, Throughput=1000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp2", Throughput=200), "InvalidParameterCombination"),
        (dict(Size=100, VolumeType="st1"), "InvalidParameterValue"),
        (dict(Size=1025, VolumeType="standard"), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp9"), "InvalidParameterValue"),
        (dict(VolumeType="gp3"), "MissingParameter"),
        (dict(Size=10, SnapshotId="snap-nothex"), "InvalidSnapshotID.Malformed"),
        (dict(Size=10, SnapshotId="snap-0123456789abcdef0"), "InvalidSnapshot.NotFound"),
        (dict(Size=10, Encrypted=True), "UnsupportedOperation"),
    ]
    for n, (kw, want) in enumerate(bad):
        code, status = error_code(ec2.create_volume, AvailabilityZone=AZ, **kw)
        check(f"create-bad-{n}", (code, status) == (want, 400), (kw, code, status))
    ok = [dict(Size=4, VolumeType="io1", Iops=200), dict(Size=125, VolumeType="sc1"),
          dict(Size=10, VolumeType="gp3", Iops=5000, Throughput=1000),
          dict(Size=4, VolumeType="io2", Iops=4000), dict(Size=1, VolumeType="standard")]
    for n, kw in enumerate(ok):
        code, _ = error_code(ec2.create_volume, AvailabilityZone=AZ, DryRun=True, **kw)
        check(f"create-ok-{n}", code == "DryRunOperation", (kw, code))
    code, _ = error_code(ec2.create_volume, Size=1)
    check("az-required", code == "MissingParameter", code)
    code, _ = error_code(ec2.create_volume, Size=1, AvailabilityZone="us-east-1z")
    check("az-unknown", code == "InvalidParameterValue", code)
    check("az-id", error_code(ec2.create_volume, Size=1, AvailabilityZoneId="use1-az1",
                              DryRun=True)[0] == "DryRunOperation")
    check("dry-run-creates-nothing", ec2.describe_volumes()["Volumes"] == [])

    a = ec2.create_volume(AvailabilityZone=AZ, Size=1, ClientToken="tok-1")
    b = ec2.create_volume(AvailabilityZone=AZ, Size=1, ClientToken="tok-1")
    check("client-token-replay", a["VolumeId"] == b["VolumeId"])
    code, _ = error_code(ec2.create_volume, AvailabilityZone=AZ, Size=2, ClientToken="tok-1")
    check("client-token-mismatch", code == "IdempotentParameterMismatch", code)
    vid = a["VolumeId"]
    volume_waiter(ec2, "volume_available")([vid])

    for fn, kw, want in [
        (ec2.describe_volumes, dict(VolumeIds=["vol-nothex"]), "InvalidVolumeID.Malformed"),
        (ec2.describe_volumes, dict(VolumeIds=["vol-0123456789abcdef0"]), "InvalidVolume.NotFound"),
        (ec2.delete_volume, dict(VolumeId="vol-0123456789abcdef0"), "InvalidVolume.NotFound"),
        (ec2.attach_volume, dict(VolumeId=vid, InstanceId="i-0123456789abcdef0", Device="/dev/sdf"),
         "InvalidInstanceID.NotFound"),
        (ec2.attach_volume, dict(VolumeId="vol-x", InstanceId="i-0123456789abcdef0", Device="/dev/sdf"),
         "InvalidVolumeID.Malformed"),
        (ec2.detach_volume, dict(VolumeId=vid), "IncorrectState"),
        (ec2.modify_volume, dict(VolumeId="vol-0123456789abcdef0", Size=9), "InvalidVolume.NotFound"),
        (ec2.create_snapshot, dict(VolumeId="vol-0123456789abcdef0"), "InvalidVolume.NotFound"),
        (ec2.delete_snapshot, dict(SnapshotId="snap-0123456789abcdef0"), "InvalidSnapshot.NotFound"),
        (ec2.describe_snapshots, dict(SnapshotIds=["snap-zz"]), "InvalidSnapshotID.Malformed"),
        (ec2.delete_volume, dict(VolumeId=vid, DryRun=True), "DryRunOperation"),
        (ec2.create_snapshot, dict(VolumeId=vid, DryRun=True), "DryRunOperation"),
        (ec2.modify_volume, dict(VolumeId=vid, Size=2, DryRun=True), "DryRunOperation"),
        (ec2.describe_volumes, dict(Filters=[{"Name": "bogus", "Values": ["x"]}]), "InvalidParameterValue"),
        (ec2.describe_volumes, dict(MaxResults=4), "InvalidParameterValue"),
        (ec2.describe_volumes, dict(MaxResults=5, NextToken="zz"), "InvalidPaginationToken"),
    ]:
        code, _ = error_code(fn, **kw)
        check(f"{fn.__name__}-{want}", code == want, (kw, code))
    check("dry-runs-changed-nothing", one_volume(ec2, vid)["Size"] == 1
          and ec2.describe_snapshots()["Snapshots"] == [])

    iid = running_instance(d, ec2)
    for device in ["/dev/foo", "/dev/sdf0", "/dev/xvdda", "sdz16", "/dev/nvme1n1"]:
        code, _ = error_code(ec2.attach_volume, VolumeId=vid, InstanceId=iid, Device=device)
        check(f"bad-device-{device}", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.attach_volume, VolumeId=vid, InstanceId=iid, Device="/dev/sdf", DryRun=True)
    check("attach-dry-run", code == "DryRunOperation" and one_volume(ec2, vid)["State"] == "available")
    code, _ = error_code(ec2.attach_volume, VolumeId=vid, InstanceId=iid, Device="/dev/xvda")
    check("root-device-taken", code == "InvalidParameterValue", code)

    # Seven more volumes: filters and pages.
    seven = [ec2.create_volume(AvailabilityZone=AZ, Size=n + 1, VolumeType="gp3" if n % 2 else "gp2")
             ["VolumeId"] for n in range(7)]
    volume_waiter(ec2, "volume_available")(seven)
    pages = list(ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 5}))
    listed = [v["VolumeId"] for p in pages for v in p["Volumes"]]
    check("pages", len(pages) >= 2 and len(listed) == len(set(listed)) == 9, listed)
    gp3 = [v["VolumeId"] for v in ec2.describe_volumes(
        Filters=[{"Name": "volume-type", "Values": ["gp3"]},
                 {"Name": "status", "Values": ["available"]}])["Volumes"]]
    check("filter-type-status", sorted(gp3) == sorted(seven[1::2]), gp3)
    check("filter-size", [v["VolumeId"] for v in ec2.describe_volumes(
        Filters=[{"Name": "size", "Values": ["7"]}])["Volumes"]] == [seven[6]])
    code, _ = error_code(ec2.describe_volumes, VolumeIds=[vid], MaxResults=5)
    check("ids-with-max-results", code == "InvalidParameterCombination", code)

    # DeleteOnTermination: set through ModifyInstanceAttribute; terminate
    # deletes that one and detaches the other.
    keep, drop = seven[0], seven[1]
    ec2.attach_volume(VolumeId=keep, InstanceId=iid, Device="/dev/sdf")
    ec2.attach_volume(VolumeId=drop, InstanceId=iid, Device="/dev/sdg")
    volume_waiter(ec2, "volume_in_use")([keep, drop])
    ec2.modify_instance_attribute(InstanceId=iid, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdg", "Ebs": {"DeleteOnTermination": True}}])
    check("dot-set", one_volume(ec2, drop)["Attachments"][0]["DeleteOnTermination"] is True)
    code, _ = error_code(ec2.modify_instance_attribute, InstanceId=iid, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdp", "Ebs": {"DeleteOnTermination": True}}])
    check("dot-unknown-device", code == "InvalidInstanceAttributeValue", code)
    ec2.terminate_instances(InstanceIds=[iid])
    waiter(ec2, "instance_terminated")([iid])
    check("terminate-detaches", one_volume(ec2, keep)["State"] == "available")
    code, _ = error_code(ec2.describe_volumes, VolumeIds=[drop])
    check("terminate-deletes-dot", code == "InvalidVolume.NotFound"
          and not os.path.exists(os.path.join(d.data_dir, "volumes", drop + ".raw")), code)


def restart(d):
    """SIGKILL of the daemon while a detach waits for the guest."""
    ec2 = d.client()
    iid = running_instance(d, ec2)
    a, b = [ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"] for _ in range(2)]
    volume_waiter(ec2, "volume_available")([a, b])
    ec2.attach_volume(VolumeId=a, InstanceId=iid, Device="/dev/sdf")
    ec2.attach_volume(VolumeId=b, InstanceId=iid, Device="/dev/sdg")
    volume_waiter(ec2, "volume_in_use")([a, b])
    vm_socket(d, iid, "PUT", "/standin/guest", {"hung": True})
    ec2.detach_volume(VolumeId=a)
    ec2.detach_volume(VolumeId=b)
    time.sleep(0.5)
    d.kill9()
    # While the daemon is away, the guest lets go of one of them.
    vm_socket(d, iid, "DELETE", f"/vm/disks/{a}?force=true")
    d.start()
    ec2 = d.client()
    volume_waiter(ec2, "volume_available")([a])
    check("reconciled-gone", one_volume(ec2, a)["State"] == "available")
    v = one_volume(ec2, b)
    check("still-detaching", v["Attachments"][0]["State"] == "detaching", v)
    vm_socket(d, iid, "PUT", "/standin/guest", {"hung": False})
    volume_waiter(ec2, "volume_available")([b])
    check("watched-again", standin_disk(d, iid, b)[0] == 404)
    # And an attach the daemon never confirmed (crash right after the
    # commit): the record says attaching, the VM has no disk yet.
    ec2.attach_volume(VolumeId=a, InstanceId=iid, Device="/dev/sdf")
    volume_waiter(ec2, "volume_in_use")([a])
    vm_socket(d, iid, "DELETE", f"/vm/disks/{a}?force=true")
    d.kill9()
    with d.db() as db:
        db.execute("UPDATE volumes SET attachment_state = 'attaching' WHERE id = ?", (a,))
    d.start()
    ec2 = d.client()
    until("re-plugged", lambda: one_volume(ec2, a)["Attachments"][0]["State"] == "attached")
    check("re-plugged", standin_disk(d, iid, a)[0] == 200)


SCENARIOS = {f.__name__: f for f in (hotplug, snapshots, requests, restart)}

if __name__ == "__main__":
    name, data_dir = sys.argv[1], sys.argv[2]
    daemon = Daemon(data_dir, env={"FLINT_STANDIN_EJECT_MS": "300"}).start()
    try:
        SCENARIOS[name](daemon)
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
