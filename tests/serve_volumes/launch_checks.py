"""The serve_volumes scenario about RunInstances' non-root block-device
mappings: data volumes made at launch (empty or from a snapshot), in the
VM config before the VM starts, shown attached, deleted at termination
when DeleteOnTermination; and the mappings this host refuses."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import AZ, FAST, mapping, one_volume, until, volume_waiter  # noqa: E402
from harness import check, error_code, register_image, vm_socket, waiter  # noqa: E402


def error_message(fn, **kw):
    """The error's code, with its message after a colon."""
    from botocore.exceptions import ClientError
    try:
        fn(**kw)
    except ClientError as e:
        return f'{e.response["Error"]["Code"]}: {e.response["Error"]["Message"]}'
    return None


def launch_mappings(d):
    ec2 = d.client()
    image = register_image(d)
    # A snapshot with known contents.
    src = ec2.create_volume(AvailabilityZone=AZ, Size=1, VolumeType="gp2")["VolumeId"]
    volume_waiter(ec2, "volume_available")([src])
    payload = os.urandom(4096)
    with open(os.path.join(d.data_dir, "volumes", src + ".raw"), "r+b") as f:
        f.seek(1 << 20)
        f.write(payload)
    sid = ec2.create_snapshot(VolumeId=src)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)

    args = dict(ImageId=image, MinCount=1, MaxCount=1)
    mappings = [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 4, "VolumeType": "gp3"}},
        {"DeviceName": "/dev/sdg", "Ebs": {"SnapshotId": sid}},
        {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3",
                                           "DeleteOnTermination": False, "Iops": 4000,
                                           "Throughput": 200}},
        {"DeviceName": "/dev/sdh", "NoDevice": ""},
    ]
    before = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    code = error_message(ec2.run_instances, DryRun=True, BlockDeviceMappings=mappings, **args)
    check("dry-run", code.startswith("DryRunOperation:")
          and {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]} == before, code)
    r = ec2.run_instances(BlockDeviceMappings=mappings, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "launched"}]}], **args)
    inst = r["Instances"][0]
    iid = inst["InstanceId"]
    check("reply-mappings", sorted(m["DeviceName"] for m in inst["BlockDeviceMappings"])
          == ["/dev/sdf", "/dev/sdg", "/dev/xvda"], inst["BlockDeviceMappings"])
    waiter(ec2, "instance_running")([iid])
    m = mapping(ec2, iid)
    check("describe-instance-mappings", set(m) == {"/dev/xvda", "/dev/sdf", "/dev/sdg"}
          and all(s == "attached" for _, s in m.values()), m)
    root, sdf, sdg = m["/dev/xvda"][0], m["/dev/sdf"][0], m["/dev/sdg"][0]
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    dot = {x["DeviceName"]: x["Ebs"]["DeleteOnTermination"]
           for x in described["BlockDeviceMappings"]}
    check("instance-delete-on-termination",
          dot == {"/dev/xvda": True, "/dev/sdf": False, "/dev/sdg": True}, dot)
    f, g = one_volume(ec2, sdf), one_volume(ec2, sdg)
    check("sdf-volume", f["Size"] == 8 and f["VolumeType"] == "gp3" and f["Iops"] == 4000
          and f["Throughput"] == 200 and f["State"] == "in-use" and f["SnapshotId"] == ""
          and f["Attachments"][0]["Device"] == "/dev/sdf"
          and f["Attachments"][0]["InstanceId"] == iid
          and f["Attachments"][0]["DeleteOnTermination"] is False
          and f["Tags"] == [{"Key": "Name", "Value": "launched"}], f)
    check("sdg-from-snapshot", g["Size"] == 1 and g["VolumeType"] == "gp2"
          and g["SnapshotId"] == sid and g["Attachments"][0]["DeleteOnTermination"] is True, g)
    with open(os.path.join(d.data_dir, "volumes", sdg + ".raw"), "rb") as fh:
        fh.seek(1 << 20)
        check("sdg-contents", fh.read(4096) == payload)
    check("sdf-sparse", os.path.getsize(os.path.join(d.data_dir, "volumes", sdf + ".raw"))
          == 8 << 30)
    vm = d.vm_config(iid)
    check("vm-config-disks", [x["id"] for x in vm["disks"]] == [sdf, sdg]
          and vm["disks"][0]["limits"] == {"volume_type": "gp3", "size_gib": 8, "iops": 4000,
                                           "throughput_mibps": 200}
          and vm["image"]["id"] == root, vm)
    check("vm-config-metadata", vm["metadata"]["block_device_mapping"]
          == {"ami": "/dev/xvda", "root": "/dev/xvda", "ebs1": "sdf", "ebs2": "sdg"}, vm)
    status, disks = vm_socket(d, iid, "GET", "/vm/disks")
    check("standin-boot-disks", status == 200, disks)

    # Refused mappings.
    def refused(name, want, maps):
        code, _ = error_code(ec2.run_instances, BlockDeviceMappings=maps, **args)
        check(f"refused-{name}", code == want, code)
    refused("instance-store", "UnsupportedOperation",
            [{"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}])
    refused("ebs-and-virtual-name", "InvalidParameterCombination",
            [{"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0", "Ebs": {"VolumeSize": 1}}])
    refused("bad-device", "InvalidBlockDeviceMapping",
            [{"DeviceName": "/dev/foo", "Ebs": {"VolumeSize": 1}}])
    refused("same-slot-twice", "InvalidBlockDeviceMapping",
            [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}},
             {"DeviceName": "/dev/xvdf", "Ebs": {"VolumeSize": 1}}])
    refused("no-size-no-snapshot", "InvalidBlockDeviceMapping",
            [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeType": "gp3"}}])
    refused("iops-on-gp2", "InvalidParameterCombination",
            [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "VolumeType": "gp2",
                                                "Iops": 300}}])
    refused("too-small-for-type", "InvalidBlockDeviceMapping",
            [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "VolumeType": "st1"}}])
    refused("snapshot-too-small-for-type", "InvalidBlockDeviceMapping",
            [{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": sid, "VolumeType": "sc1"}}])
    refused("unknown-snapshot", "InvalidSnapshot.NotFound",
            [{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}])
    refused("encrypted", "UnsupportedOperation",
            [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "Encrypted": True}}])
    refused("root-no-device", "InvalidBlockDeviceMapping",
            [{"DeviceName": "/dev/xvda", "NoDevice": ""}])
    many = [{"DeviceName": f"/dev/sd{chr(ord('b') + n)}", "Ebs": {"VolumeSize": 1}}
            for n in range(16)]
    refused("attachment-limit", "AttachmentLimitExceeded", many)
    check("refusals-made-nothing", len(ec2.describe_volumes()["Volumes"]) == len(before) + 3)

    # DescribeInstanceAttribute.
    def attr(name):
        return ec2.describe_instance_attribute(InstanceId=iid, Attribute=name)
    check("attr-type", attr("instanceType")["InstanceType"] == {"Value": "t3.micro"})
    check("attr-root", attr("rootDeviceName")["RootDeviceName"] == {"Value": "/dev/xvda"})
    bdm = attr("blockDeviceMapping")["BlockDeviceMappings"]
    check("attr-mappings", [(b["DeviceName"], b["Ebs"]["VolumeId"], b["Ebs"]["DeleteOnTermination"])
                            for b in bdm]
          == [("/dev/xvda", root, True), ("/dev/sdf", sdf, False), ("/dev/sdg", sdg, True)], bdm)
    check("attr-shutdown", attr("instanceInitiatedShutdownBehavior")
          ["InstanceInitiatedShutdownBehavior"] == {"Value": "stop"})
    check("attr-bools", attr("disableApiTermination")["DisableApiTermination"] == {"Value": False}
          and attr("sourceDestCheck")["SourceDestCheck"] == {"Value": True}
          and attr("ebsOptimized")["EbsOptimized"] == {"Value": False}
          and attr("enaSupport")["EnaSupport"] == {"Value": True}
          and attr("disableApiStop")["DisableApiStop"] == {"Value": False})
    check("attr-empty", attr("groupSet")["Groups"] == [] and attr("kernel")["KernelId"] == {}
          and attr("userData")["UserData"] == {} and attr("sriovNetSupport")["SriovNetSupport"] == {},
          attr("kernel"))
    check("attr-instance-id", attr("ramdisk")["InstanceId"] == iid)
    code, _ = error_code(ec2.describe_instance_attribute, InstanceId=iid, Attribute="bogus")
    check("attr-unknown", code == "InvalidParameterValue", code)
    code, _ = error_code(ec2.describe_instance_attribute, InstanceId="i-0123456789abcdef0",
                         Attribute="instanceType")
    check("attr-not-found", code == "InvalidInstanceID.NotFound", code)
    code, _ = error_code(ec2.describe_instance_attribute, InstanceId=iid, Attribute="userData",
                         DryRun=True)
    check("attr-dry-run", code == "DryRunOperation", code)
    ud = ec2.run_instances(UserData="hello", **args)["Instances"][0]["InstanceId"]
    got = ec2.describe_instance_attribute(InstanceId=ud, Attribute="userData")["UserData"]
    check("attr-user-data", got == {"Value": "aGVsbG8="}, got)
    ec2.terminate_instances(InstanceIds=[ud])

    # Termination deletes the DeleteOnTermination volumes, detaches sdf.
    ec2.terminate_instances(InstanceIds=[iid])
    waiter(ec2, "instance_terminated")([iid])
    left = {v["VolumeId"]: v for v in ec2.describe_volumes()["Volumes"]}
    check("terminated-keeps-sdf", sdf in left and left[sdf]["State"] == "available"
          and left[sdf]["Attachments"] == [] and root not in left and sdg not in left, left)
    # The files go after the termination's commit.
    until("files", lambda: os.path.exists(os.path.join(d.data_dir, "volumes", sdf + ".raw"))
          and not os.path.exists(os.path.join(d.data_dir, "volumes", sdg + ".raw"))
          and not os.path.exists(os.path.join(d.data_dir, "volumes", root + ".raw")))
