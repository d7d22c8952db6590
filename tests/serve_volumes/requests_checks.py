"""The serve_volumes scenarios about snapshots, ModifyVolume and bad or
repeated requests."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (AZ, FAST, one_volume, running_instance, standin_disk, until,  # noqa: E402
                    volume_waiter)
from harness import check, error_code, register_image, vm_socket, waiter  # noqa: E402


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

    iid = running_instance(d, ec2, BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "Iops": 4000,
                                            "Throughput": 200}}])
    root = [v for v in ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id",
                                                       "Values": [iid]}])["Volumes"]][0]
    check("root-provisioned", (root["Iops"], root["Throughput"]) == (4000, 200), root)
    check("root-limits-in-vm-config", d.vm_config(iid)["image"]["limits"]
          == {"volume_type": "gp3", "size_gib": 8, "iops": 4000, "throughput_mibps": 200})
    code, _ = error_code(ec2.run_instances, ImageId=register_image(d), MinCount=1, MaxCount=1,
                         BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                               "Ebs": {"VolumeType": "gp2", "Iops": 300}}])
    check("root-iops-rules", code == "InvalidParameterCombination", code)
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
    created = one_volume(ec2, seven[6])["CreateTime"].strftime("%Y-%m-%dT%H:%M:%S")
    check("filter-create-time", seven[6] in [v["VolumeId"] for v in ec2.describe_volumes(
        Filters=[{"Name": "create-time", "Values": [created + "*"]}])["Volumes"]], created)
    code, _ = error_code(ec2.describe_volumes, VolumeIds=[vid], MaxResults=5)
    check("ids-with-max-results", code == "InvalidParameterCombination", code)

    # DeleteOnTermination: set through ModifyInstanceAttribute; terminate
    # deletes that one and detaches the other.
    keep, drop = seven[0], seven[1]
    ec2.attach_volume(VolumeId=keep, InstanceId=iid, Device="/dev/sdf")
    ec2.attach_volume(VolumeId=drop, InstanceId=iid, Device="/dev/sdg")
    volume_waiter(ec2, "volume_in_use")([keep, drop])
    # The VMM refusing a hot-plug undoes the attachment: no free slot
    # (the stand-in has 3), a file it cannot open.
    ec2.attach_volume(VolumeId=seven[2], InstanceId=iid, Device="/dev/sdh")
    volume_waiter(ec2, "volume_in_use")([seven[2]])
    code, _ = error_code(ec2.attach_volume, VolumeId=seven[3], InstanceId=iid, Device="/dev/sdi")
    check("no-free-slot", code == "AttachmentLimitExceeded"
          and one_volume(ec2, seven[3])["State"] == "available", code)
    ec2.detach_volume(VolumeId=seven[2], Force=True)
    gone = os.path.join(d.data_dir, "volumes", seven[4] + ".raw")
    os.rename(gone, gone + ".away")
    code, status = error_code(ec2.attach_volume, VolumeId=seven[4], InstanceId=iid, Device="/dev/sdi")
    check("unopenable-file", (code, status) == ("InternalError", 500)
          and one_volume(ec2, seven[4])["State"] == "available", (code, status))
    os.rename(gone + ".away", gone)
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
