"""Real EC2 clients against `flint serve` running real VMs in the emulated
KVM host (tests/serve_e2e.rs forwards a port of this machine to it).

- boto3: create_instances -> wait_until_running -> user data on the console
  -> stop -> wait_until_stopped -> start -> wait_until_running -> terminate
  -> the instance_terminated waiter.
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

ENDPOINT = os.environ["FLINT_ENDPOINT"]
IMAGE = os.environ["FLINT_IMAGE_ID"]
PYPI_AWS = os.environ["FLINT_PYPI_AWS"]
DEBIAN_AWS = "/usr/bin/aws"
# A guest boot in the emulated host takes minutes.
BOOT_WAIT_S = 1500
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


def boto3_lifecycle():
    ec2 = client()
    res = boto3.resource("ec2", endpoint_url=ENDPOINT, region_name="us-east-1",
                         aws_access_key_id="AKIDFLINTE2E", aws_secret_access_key="flint-e2e")
    user_data = "#!/bin/sh\necho FLINT-BOTO3 user-data ran on $(hostname) >/dev/console\n"
    (inst,) = res.create_instances(
        ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType="t2.micro", KeyName="e2e",
        UserData=user_data,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "boto3"}]}])
    check("boto3-create-instances", inst.id.startswith("i-"), inst.id)
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
    status = ec2.describe_instance_status(InstanceIds=[inst.id])["InstanceStatuses"]
    check("boto3-instance-status", status and status[0]["InstanceState"]["Name"] == "running", status)

    inst.stop()
    inst.wait_until_stopped(WaiterConfig=waiter_config())
    inst.reload()
    check("boto3-stopped", inst.state["Name"] == "stopped", inst.state)
    check("boto3-stop-reason", "User initiated" in (inst.state_transition_reason or ""),
          inst.state_transition_reason)
    inst.start()
    inst.wait_until_running(WaiterConfig=waiter_config())
    inst.reload()
    check("boto3-restart-keeps-private-ip", inst.private_ip_address == first_ip,
          (first_ip, inst.private_ip_address))
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
        cli_lifecycle("aws-pypi", PYPI_AWS)
        if os.path.exists(DEBIAN_AWS):
            cli_lifecycle("aws-debian", DEBIAN_AWS)
        else:
            raise AssertionError(f"{DEBIAN_AWS} missing: install Debian's awscli (scripts/install-deps)")
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
