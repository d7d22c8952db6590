"""Real EC2 clients against `flint serve` running real VMs in the emulated
KVM host (tests/serve_e2e.rs forwards a port of this machine to it).

- boto3: create_instances -> wait_until_running -> user data on the console
  -> stop -> wait_until_stopped -> start -> wait_until_running -> terminate
  -> the instance_terminated waiter; on the way, EBS volumes attached at
  every phase of the guest's life and detached again (volume_phases below).
- the aws CLI from PyPI and, when installed, Debian's awscli (2.9.19):
  run-instances / describe-instances / get-console-output /
  terminate-instances / `aws ec2 wait instance-terminated`.

Whatever happens, the image is tagged flint-e2e-clients=pass|fail at the
end: the scenario in the emulated host waits for that tag. Prints
`PASS name` per check; exits 1 on the first failure.
"""
import json
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["FLINT_ENDPOINT"]
IMAGE = os.environ["FLINT_IMAGE_ID"]
PYPI_AWS = os.environ["FLINT_PYPI_AWS"]
DEBIAN_AWS = "/usr/bin/aws"
# A guest boot in the emulated host takes minutes.
BOOT_WAIT_S = 1500
# "full": the boto3 instance also reboots and stops/starts (two more boots
# in the emulated host); "boot": it is terminated once its first boot's
# checks passed (for the second AMI: its boot and identity are the point).
LIFECYCLE = os.environ.get("FLINT_CLIENTS_LIFECYCLE", "full")
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDFLINTE2E", AWS_SECRET_ACCESS_KEY="flint-e2e",
           AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="", AWS_EC2_METADATA_DISABLED="true")


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"PASS {name}", flush=True)


def client():
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=120)
    return boto3.client("ec2", endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="AKIDFLINTE2E", aws_secret_access_key="flint-e2e",
                        config=cfg)


def waiter_config():
    # The waiters' own polling, with room for the emulated host's pace.
    return {"Delay": 3, "MaxAttempts": 200}


def console_text(ec2, instance_id):
    # botocore decodes the base64 Output itself (its decode_console_output
    # handler), as the aws CLI does.
    return ec2.get_console_output(InstanceId=instance_id).get("Output", "")


def wait_console(ec2, instance_id, needle, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if needle in console_text(ec2, instance_id):
            return True
        time.sleep(10)
    return False


# The guest's view of its disks: a unit (installed by the user data, so it
# runs again after a reboot) prints the serials of its virtio disks on the
# console whenever they change: "FLINT-DISKS boot=<id> <serial>,<serial>,".
DISK_WATCH_USER_DATA = r"""#!/bin/sh
echo FLINT-BOTO3 user-data ran on $(hostname) >/dev/console
# EC2's identity as the guest sees it (SMBIOS, systemd, cloud-init).
echo "FLINT-IDENTITY $(cat /sys/class/dmi/id/sys_vendor)|$(cat /sys/class/dmi/id/product_name)|$(systemd-detect-virt)|$(cloud-init query platform)|" >/dev/console
cat >/usr/local/sbin/flint-disks <<'SCRIPT'
#!/bin/sh
b=$(cut -c1-8 /proc/sys/kernel/random/boot_id)
l=x
while :; do
    # (sysfs serials have no newline of their own)
    s=$(for f in /sys/block/vd*/serial; do [ -e "$f" ] && echo "$(cat "$f")"; done | sort | tr '\n' ,)
    [ "$s" != "$l" ] && echo "FLINT-DISKS boot=$b $s" >/dev/console
    l=$s
    sleep 1
done
SCRIPT
chmod 755 /usr/local/sbin/flint-disks
cat >/etc/systemd/system/flint-disks.service <<'UNIT'
[Unit]
Description=Flint test: virtio disk serials on the console
[Service]
ExecStart=/usr/local/sbin/flint-disks
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now flint-disks.service
"""

# Console markers of a boot's phases, in order (a phase starts when its
# marker is on the console). Attaching right after `running` lands in the
# firmware (SeaBIOS); acpiphp registers the hot-plug slots during the
# kernel's PCI scan, before the kernel enables ACPI events.
PHASE_MARKERS = [
    ("firmware", "SeaBIOS"),
    ("bootloader", "GRUB"),
    ("kernel", "Linux version"),
    ("acpiphp", "acpiphp: Slot"),
    # systemd's banner ("Welcome to Debian GNU/Linux 13 (trixie)!"); GRUB's
    # menu entry has no version number.
    ("userspace", "Debian GNU/Linux 1"),
    ("booted", "FLINT-DISKS"),
]


def phase_of(text):
    """The last phase whose marker the console shows."""
    seen = "vmm-started"
    for name, marker in PHASE_MARKERS:
        if marker in text:
            seen = name
    return seen


def serial_of(volume_id):
    # The volume id without its dash: the virtio-blk serial (20 bytes).
    return volume_id.replace("-", "")


def guest_disks(text):
    """The serials of the guest's last FLINT-DISKS line (None: no line yet)."""
    lines = [l for l in text.splitlines() if l.startswith("FLINT-DISKS ") or " FLINT-DISKS " in l]
    if not lines:
        return None
    last = lines[-1][lines[-1].index("FLINT-DISKS "):].split(" ", 2)
    return set(filter(None, (last[2] if len(last) > 2 else "").strip().split(",")))


def wait_guest_disks(ec2, instance_id, pred, timeout_s):
    deadline = time.time() + timeout_s
    disks = None
    while time.time() < deadline:
        disks = guest_disks(console_text(ec2, instance_id))
        if disks is not None and pred(disks):
            return disks
        time.sleep(5)
    return disks


class Phases:
    """Volumes attached at the phases of one instance's life."""

    # Every volume a phase attaches, created before the instance runs so
    # that an attach takes one API call (the firmware phase lasts seconds).
    LABELS = ["firmware", "bootloader", "kernel", "acpiphp", "userspace", "booted",
              "before-reboot", "rebooting", "before-stop", "firmware-after-start"]

    def __init__(self, ec2):
        self.ec2 = ec2
        self.devices = iter(f"/dev/sd{c}" for c in "fghijklmnopqrstuvwxyz")
        self.attached = {}  # volume id -> (phase wanted, phase seen, ms)
        self.ready = {label: self.new_volume(label, wait=False) for label in self.LABELS}
        self.ec2.get_waiter("volume_available").wait(VolumeIds=list(self.ready.values()),
                                                     WaiterConfig=waiter_config())

    def new_volume(self, label, wait=True):
        vol = self.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, VolumeType="gp3",
                                     TagSpecifications=[{"ResourceType": "volume",
                                                         "Tags": [{"Key": "phase", "Value": label}]}])
        if wait:
            self.ec2.get_waiter("volume_available").wait(VolumeIds=[vol["VolumeId"]],
                                                         WaiterConfig=waiter_config())
        return vol["VolumeId"]

    def attach(self, instance_id, label, t0):
        vol = self.ready.pop(label)
        att = self.ec2.attach_volume(VolumeId=vol, InstanceId=instance_id, Device=next(self.devices))
        ms = int((time.time() - t0) * 1000)
        # (After a reboot or a restart the console still holds the earlier
        # boots: the phase seen is meaningful for the first boot only.)
        seen = phase_of(console_text(self.ec2, instance_id))
        print(f"phase {label}: {vol} attached {ms} ms after running, console phase {seen},"
              f" state {att['State']}", flush=True)
        self.attached[vol] = (label, seen, ms)
        return vol

    def detach(self, vol, force=False):
        self.ec2.detach_volume(VolumeId=vol, Force=force)
        start = time.time()
        self.ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=waiter_config())
        secs = time.time() - start
        print(f"phase {self.attached.get(vol, ('?',))[0]}: {vol} detached{' (force)' if force else ''}"
              f" in {secs:.1f} s", flush=True)
        return secs


def wait_running_now(ec2, instance_id):
    """Polls until the instance is running (faster than the waiter's 3 s:
    the firmware phase lasts seconds); returns the time it was seen."""
    deadline = time.time() + 300
    while ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
            "State"]["Name"] != "running":
        if time.time() > deadline:
            check("phases-instance-running", False, "not running within 300 s")
        time.sleep(0.2)
    return time.time()


def attach_at_phases(ec2, phases, instance_id):
    """Attaches one volume as soon as each boot phase shows on the console
    (the first one as soon as the instance is running: the firmware)."""
    t0 = wait_running_now(ec2, instance_id)
    vols = [phases.attach(instance_id, "firmware", t0)]
    for label, marker in PHASE_MARKERS[1:5]:
        deadline = time.time() + BOOT_WAIT_S
        while marker not in console_text(ec2, instance_id):
            if time.time() > deadline:
                check(f"phase-{label}-reached", False, f"no {marker!r} on the console")
            time.sleep(0.3)
        vols.append(phases.attach(instance_id, label, t0))
    return vols


def volume_phases_after_boot(ec2, phases, inst, early):
    """Issue 23: every volume attached during the boot is in the guest and
    detaches (no Force) once the guest runs; then a reboot and a stop with
    volumes attached and detached across them, and a forced detach."""
    seen_phases = {phases.attached[v][1] for v in early}
    print(f"phases covered at attach time: {sorted(seen_phases)}", flush=True)
    check("phases-cover-boot", len(seen_phases) >= 4, sorted(seen_phases))
    # The first attach lands before the kernel runs (SeaBIOS or GRUB).
    first_seen = phases.attached[early[0]][1]
    check("phase-firmware-before-kernel", first_seen in ("vmm-started", "firmware", "bootloader"),
          first_seen)
    booted = phases.attach(inst.id, "booted", time.time())
    serials = {serial_of(v) for v in early + [booted]}
    disks = wait_guest_disks(ec2, inst.id, lambda d: serials <= d, 600)
    check("phases-guest-sees-every-volume", disks is not None and serials <= disks, (serials, disks))
    for vol in early + [booted]:
        v = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
        check(f"phase-{phases.attached[vol][0]}-attached",
              v["State"] == "in-use" and v["Attachments"][0]["State"] == "attached", v)
        secs = phases.detach(vol)
        check(f"phase-{phases.attached[vol][0]}-detach-completes", secs < 120, secs)
    disks = wait_guest_disks(ec2, inst.id, lambda d: not (serials & d), 300)
    check("phases-guest-let-go-of-every-volume", disks is not None and not (serials & disks),
          (serials, disks))
    if LIFECYCLE != "full":
        return phases

    # Rebooting (RebootInstances resets the VM): a volume attached before it
    # is detached and one attached right after it, both while the new
    # boot's firmware runs; the second is in the guest after the reboot.
    held = phases.attach(inst.id, "before-reboot", time.time())
    wait_guest_disks(ec2, inst.id, lambda d: serial_of(held) in d, 300)
    ec2.reboot_instances(InstanceIds=[inst.id])
    during = phases.attach(inst.id, "rebooting", time.time())
    secs = phases.detach(held)
    check("phase-rebooting-detach-completes", secs < 600, secs)
    # (Only the new boot's watcher can print this set.)
    disks = wait_guest_disks(ec2, inst.id, lambda d: serial_of(during) in d and serial_of(held) not in d,
                             BOOT_WAIT_S)
    check("phase-rebooting-attach-seen-after-reboot",
          disks is not None and serial_of(during) in disks and serial_of(held) not in disks,
          (during, held, disks))
    secs = phases.detach(during)
    check("phase-after-reboot-detach-completes", secs < 120, secs)

    # Shutting down: StopInstances, then an attach is refused (EC2: only a
    # running or stopped instance takes one) and a detach completes when the
    # guest lets go or its VM ends.
    last = phases.attach(inst.id, "before-stop", time.time())
    wait_guest_disks(ec2, inst.id, lambda d: serial_of(last) in d, 300)
    extra = phases.new_volume("stopping")
    inst.stop()
    try:
        ec2.attach_volume(VolumeId=extra, InstanceId=inst.id, Device="/dev/sdz")
        refused = None
    except ClientError as e:
        refused = e.response["Error"]["Code"]
    check("phase-stopping-attach-refused", refused == "IncorrectInstanceState", refused)
    secs = phases.detach(last)
    check("phase-stopping-detach-completes", secs < 600, secs)
    ec2.delete_volume(VolumeId=extra)
    return phases


def stop_and_start(ec2, phases, inst, first_ip):
    inst.wait_until_stopped(WaiterConfig=waiter_config())
    inst.reload()
    check("boto3-stopped", inst.state["Name"] == "stopped", inst.state)
    check("boto3-stop-reason", "User initiated" in (inst.state_transition_reason or ""),
          inst.state_transition_reason)
    inst.start()
    # Force works in any phase: attached in the firmware, removed at once.
    forced = phases.attach(inst.id, "firmware-after-start", wait_running_now(ec2, inst.id))
    secs = phases.detach(forced, force=True)
    check("phase-firmware-force-detach", secs < 60, secs)
    inst.wait_until_running(WaiterConfig=waiter_config())
    inst.reload()
    check("boto3-restart-keeps-private-ip", inst.private_ip_address == first_ip,
          (first_ip, inst.private_ip_address))


def boto3_lifecycle():
    ec2 = client()
    res = boto3.resource("ec2", endpoint_url=ENDPOINT, region_name="us-east-1",
                         aws_access_key_id="AKIDFLINTE2E", aws_secret_access_key="flint-e2e")
    user_data = DISK_WATCH_USER_DATA
    phases = Phases(ec2)
    (inst,) = res.create_instances(
        ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType="t2.micro", KeyName="e2e",
        UserData=user_data,
        # A data volume made with the instance (deleted with it: EC2's
        # default for a mapping).
        BlockDeviceMappings=[{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1, "VolumeType": "gp3"}}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "boto3"}]}])
    check("boto3-create-instances", inst.id.startswith("i-"), inst.id)
    early = attach_at_phases(ec2, phases, inst.id)
    inst.wait_until_running(WaiterConfig=waiter_config())
    inst.reload()
    check("boto3-running", inst.state["Name"] == "running" and inst.state["Code"] == 16, inst.state)
    check("boto3-private-ip", (inst.private_ip_address or "").startswith("172.31."), inst.private_ip_address)
    check("boto3-tags", {"Key": "Name", "Value": "boto3"} in (inst.tags or []), inst.tags)
    first_ip = inst.private_ip_address
    hostname = "ip-" + first_ip.replace(".", "-")
    check("boto3-user-data-reaches-guest",
          wait_console(ec2, inst.id, f"FLINT-BOTO3 user-data ran on {hostname}", BOOT_WAIT_S),
          console_text(ec2, inst.id)[-2000:])
    # (Printed right after the user-data line, but cloud-init's own query
    # takes a while to start in a nested guest.)
    wait_console(ec2, inst.id, "FLINT-IDENTITY ", 600)
    identity = [l for l in console_text(ec2, inst.id).splitlines() if "FLINT-IDENTITY " in l]
    check("boto3-guest-sees-ec2-identity",
          identity and identity[-1].split("FLINT-IDENTITY ", 1)[1].startswith("Amazon EC2|t2.micro|amazon|ec2|"),
          identity)
    inst.reload()
    mapped = [m["Ebs"]["VolumeId"] for m in inst.block_device_mappings if m["DeviceName"] == "/dev/sdb"]
    check("boto3-mapped-volume-listed", len(mapped) == 1, inst.block_device_mappings)
    disks = wait_guest_disks(ec2, inst.id, lambda d: serial_of(mapped[0]) in d, 300)
    check("boto3-mapped-volume-in-guest", disks is not None and serial_of(mapped[0]) in disks, disks)
    attr = ec2.describe_instance_attribute(InstanceId=inst.id, Attribute="instanceType")
    check("boto3-instance-attribute", attr.get("InstanceType", {}).get("Value") == "t2.micro", attr)
    status = ec2.describe_instance_status(InstanceIds=[inst.id])["InstanceStatuses"]
    check("boto3-instance-status", status and status[0]["InstanceState"]["Name"] == "running", status)

    # With the full lifecycle: stops the instance on the way (StopInstances
    # while a volume detaches).
    volume_phases_after_boot(ec2, phases, inst, early)
    if LIFECYCLE == "full":
        stop_and_start(ec2, phases, inst, first_ip)
    for vol in phases.attached:
        ec2.delete_volume(VolumeId=vol)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=list(phases.attached), WaiterConfig=waiter_config())
    check("phases-volumes-deleted", True)
    inst.terminate()
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[inst.id], WaiterConfig=waiter_config())
    inst.reload()
    check("boto3-terminated", inst.state["Name"] == "terminated" and inst.state["Code"] == 48, inst.state)
    vols = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst.id]}])
    check("boto3-root-volume-deleted", vols["Volumes"] == [], vols["Volumes"])


def aws(cli, *args):
    proc = subprocess.run([cli, "--endpoint-url", ENDPOINT, "--output", "json", "ec2", *args],
                          capture_output=True, text=True, env=ENV, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{cli} ec2 {' '.join(args)}: rc={proc.returncode} {proc.stderr[-1500:]}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def cli_lifecycle(label, cli):
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, env=ENV)
    print(f"{label}: {(version.stdout or version.stderr).strip()}", flush=True)
    run = aws(cli, "run-instances", "--image-id", IMAGE, "--instance-type", "t2.micro",
              "--count", "1", "--key-name", "e2e",
              "--tag-specifications", f"ResourceType=instance,Tags=[{{Key=Name,Value={label}}}]")
    instance_id = run["Instances"][0]["InstanceId"]
    check(f"{label}-run-instances", instance_id.startswith("i-"), run)
    aws(cli, "wait", "instance-running", "--instance-ids", instance_id)
    desc = aws(cli, "describe-instances", "--instance-ids", instance_id)
    inst = desc["Reservations"][0]["Instances"][0]
    check(f"{label}-describe-instances", inst["State"]["Name"] == "running"
          and {"Key": "Name", "Value": label} in inst.get("Tags", []), inst)
    # Firmware and GRUB print within seconds of the VM starting.
    deadline = time.time() + BOOT_WAIT_S
    output = ""
    while time.time() < deadline:
        # The CLI prints the decoded console text.
        output = (aws(cli, "get-console-output", "--instance-id", instance_id) or {}).get("Output", "")
        if "SeaBIOS" in output:
            break
        time.sleep(10)
    check(f"{label}-get-console-output", "SeaBIOS" in output, output[-500:])
    term = aws(cli, "terminate-instances", "--instance-ids", instance_id)
    check(f"{label}-terminate-instances",
          term["TerminatingInstances"][0]["CurrentState"]["Name"] in ("shutting-down", "terminated"), term)
    aws(cli, "wait", "instance-terminated", "--instance-ids", instance_id)
    check(f"{label}-terminated", True)


def main():
    verdict = "fail"
    try:
        boto3_lifecycle()
        # The CLIs' checks do not depend on the AMI (run, describe, the
        # firmware's first console line, terminate): once, on the default
        # one, is enough (each costs a guest start in the emulated host).
        if os.environ.get("FLINT_CLI_CHECKS", "1") == "1":
            cli_lifecycle("aws-pypi", PYPI_AWS)
            if os.path.exists(DEBIAN_AWS):
                cli_lifecycle("aws-debian", DEBIAN_AWS)
            else:
                raise AssertionError(
                    f"{DEBIAN_AWS} missing: install Debian's awscli (scripts/install-deps)")
        verdict = "pass"
    finally:
        # Nothing of ours may keep running (and competing for the emulated
        # host's CPU) after a failure.
        try:
            ec2 = client()
            mine = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
                {"Name": "tag:Name", "Values": ["boto3", "aws-pypi", "aws-debian"]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
            ])["Reservations"] for i in r["Instances"]]
            if mine:
                ec2.terminate_instances(InstanceIds=mine)
                ec2.get_waiter("instance_terminated").wait(InstanceIds=mine, WaiterConfig=waiter_config())
        except Exception as e:  # noqa: BLE001 - the verdict must still be sent
            print(f"cleanup: {e}", flush=True)
        client().create_tags(Resources=[IMAGE], Tags=[{"Key": "flint-e2e-clients", "Value": verdict}])
        print(f"clients: {verdict}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the report is the point
        print(f"FAIL {e}", flush=True)
        sys.exit(1)
