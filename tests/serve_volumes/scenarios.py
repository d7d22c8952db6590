"""boto3 against `flint serve`'s EBS API with the stand-in VMM. Usage:
scenarios.py NAME DATA_DIR; prints PASS lines, exits non-zero on failure.
hotplug and restart are here, snapshots and requests in requests_checks.py."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (AZ, mapping, metrics, one_volume, running_instance,  # noqa: E402
                    standin_disk, until, volume_waiter)
from harness import FLINT, check, error_code, run_scenario, vm_socket, waiter  # noqa: E402
from requests_checks import requests, snapshots  # noqa: E402
from launch_checks import launch_mappings  # noqa: E402


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


def cli(d, *args, expect=0):
    r = subprocess.run([FLINT, *args, "--socket", os.path.join(d.data_dir, "flint.sock")],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != expect:
        raise AssertionError(f"flint {' '.join(args)}: {r.returncode}: {r.stdout} {r.stderr}")
    if expect:
        return r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else None


def cli_verbs(d):
    """The flint CLI's volume verbs over the Unix socket (resources/
    ec2-cli-model.json), checked against boto3's view."""
    ec2 = d.client()
    iid = running_instance(d, ec2)
    v = cli(d, "create-volume", "--availability-zone", AZ, "--size", "4", "--volume-type", "io2",
            "--iops", "200", "--tag-specifications",
            "ResourceType=volume,Tags=[{Key=Via,Value=cli}]")
    vid = v["VolumeId"]
    check("cli-create", v["State"] == "creating" and v["Iops"] == 200, v)
    volume_waiter(ec2, "volume_available")([vid])
    listed = cli(d, "describe-volumes", "--volume-ids", vid)["Volumes"][0]
    check("cli-describe", listed["VolumeId"] == vid and listed["Tags"] == [{"Key": "Via", "Value": "cli"}]
          and listed["VolumeType"] == one_volume(ec2, vid)["VolumeType"], listed)
    a = cli(d, "attach-volume", "--volume-id", vid, "--instance-id", iid, "--device", "/dev/sdf")
    check("cli-attach", a["State"] == "attaching", a)
    volume_waiter(ec2, "volume_in_use")([vid])
    got = cli(d, "describe-volume-metrics", "--volume-ids", vid)["VolumeMetrics"]
    check("cli-metrics", len(got) == 1 and got[0]["InstanceId"] == iid
          and got[0]["Metrics"]["VolumeReadOps"] > 0 and "BurstBalance" in got[0]["Metrics"], got)
    err = cli(d, "describe-volume-metrics", "--volume-ids", "vol-0123456789abcdef0", expect=254)
    check("cli-metrics-unknown", "InvalidVolume.NotFound" in err, err)
    m = cli(d, "modify-volume", "--volume-id", vid, "--size", "5")
    check("cli-modify", m["VolumeModification"]["TargetSize"] == 5, m)
    until("cli modification", lambda: cli(d, "describe-volumes-modifications", "--volume-ids", vid)
          ["VolumesModifications"][0]["ModificationState"] == "completed")
    s = cli(d, "create-snapshot", "--volume-id", vid, "--description", "cli")
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[s["SnapshotId"]],
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    snaps = cli(d, "describe-snapshots", "--snapshot-ids", s["SnapshotId"])["Snapshots"]
    check("cli-snapshot", snaps[0]["State"] == "completed" and snaps[0]["VolumeSize"] == 5, snaps)
    cli(d, "delete-snapshot", "--snapshot-id", s["SnapshotId"])
    r = cli(d, "detach-volume", "--volume-id", vid)
    check("cli-detach", r["State"] == "detaching", r)
    volume_waiter(ec2, "volume_available")([vid])
    cli(d, "delete-volume", "--volume-id", vid)
    volume_waiter(ec2, "volume_deleted")([vid])
    check("cli-deleted", True)


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


SCENARIOS = {f.__name__: f for f in (hotplug, snapshots, requests, restart, cli_verbs,
                                          launch_mappings)}

if __name__ == "__main__":
    run_scenario(SCENARIOS, env={"FLINT_STANDIN_EJECT_MS": "300",
                                 "FLINT_STANDIN_HOTPLUG_SLOTS": "3"})
