#!/usr/bin/env python3
"""Drives botocore's own EC2 client against Flint's wire format, offline.

Usage: botocore_wire.py WORKDIR

WORKDIR holds XML replies built by Flint's response builder (written by
tests/ec2_wire.rs). For each call below, botocore serializes and signs the
request as it would for EC2; a `before-send` hook records the request
(method, target, headers incl. the Host http.client would add, body) and
answers with one of those XML files, which botocore then parses with its
EC2 parser. The parsed results are compared here with the dicts botocore
must produce; the recorded requests go to WORKDIR/requests.json for the
Rust side to parse with Flint's request parser and SigV4 verifier.

Nothing leaves the process: the endpoint is never contacted.
"""

import datetime
import json
import os
import pprint
import sys
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

ACCESS_KEY = "AKIDFLINTWIRETEST"
SECRET_KEY = "flint/wire+test/secret"
ENDPOINT = "http://localhost:8773"
UTC = datetime.timezone.utc

USER_DATA = '#!/bin/sh\necho "hello from user data" > /tmp/flint\n'


class Body:
    """The `raw` of an AWSResponse: botocore reads it through stream()."""

    def __init__(self, data):
        self.data = data

    def stream(self, **_kwargs):
        yield self.data


class Wire:
    def __init__(self, workdir, client):
        self.workdir = workdir
        self.requests = []
        self.reply = None
        client.meta.events.register("before-send.ec2.*", self.before_send)

    def answer_with(self, name, status=200):
        with open(os.path.join(self.workdir, name), "rb") as f:
            self.reply = (status, f.read())

    def before_send(self, request, **_kwargs):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        url = urlsplit(request.url)
        headers = [[k, v if isinstance(v, str) else v.decode()] for k, v in request.headers.items()]
        # http.client sends Host from the URL; botocore signs that value.
        headers.append(["Host", url.netloc])
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        self.requests.append(
            {
                "method": request.method,
                "target": target,
                "headers": headers,
                "body": body.decode("ascii"),
            }
        )
        status, data = self.reply
        return AWSResponse(request.url, status, {"Content-Type": "text/xml;charset=UTF-8"}, Body(data))


FAILURES = []


def check(label, got, want):
    if got != want:
        FAILURES.append(label)
        print(f"MISMATCH in {label}\n--- botocore parsed:\n{pprint.pformat(got)}\n--- expected:\n{pprint.pformat(want)}")
    else:
        print(f"ok: {label}")


def without_http_metadata(parsed):
    parsed = dict(parsed)
    meta = parsed.pop("ResponseMetadata")
    return parsed, meta["RequestId"], meta["HTTPStatusCode"]


# What botocore must make of the XML that tests/ec2_wire.rs builds.
RUNNING = {
    "InstanceId": "i-0123456789abcdef0",
    "ImageId": "ami-0123456789abcdef0",
    "State": {"Code": 16, "Name": "running"},
    "PrivateDnsName": "ip-10-0-0-4.ec2.internal",
    "PublicDnsName": "",
    "StateTransitionReason": "",
    "KeyName": "my key & co",
    "AmiLaunchIndex": 0,
    "ProductCodes": [],
    "InstanceType": "t3.micro",
    "LaunchTime": datetime.datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=UTC),
    "Placement": {"AvailabilityZone": "us-east-1a", "GroupName": "", "Tenancy": "default"},
    "Monitoring": {"State": "disabled"},
    "SubnetId": "subnet-0123456789abcdef0",
    "VpcId": "vpc-0123456789abcdef0",
    "PrivateIpAddress": "10.0.0.4",
    "SecurityGroups": [],
    "Architecture": "x86_64",
    "RootDeviceType": "ebs",
    "RootDeviceName": "/dev/xvda",
    "BlockDeviceMappings": [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {
                "VolumeId": "vol-0123456789abcdef0",
                "Status": "attached",
                "AttachTime": datetime.datetime(2024, 5, 6, 7, 8, 10, 0, tzinfo=UTC),
                "DeleteOnTermination": True,
            },
        }
    ],
    "VirtualizationType": "hvm",
    "ClientToken": "flint-token-1",
    "Tags": [
        {"Key": "Name", "Value": "web <1> & 'quoted' \"x\""},
        {"Key": "env", "Value": "ünïcode\r\nline"},
    ],
    "EbsOptimized": False,
    "EnaSupport": True,
    "SourceDestCheck": True,
    "MetadataOptions": {
        "State": "applied",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "disabled",
    },
    "BootMode": "legacy-bios",
}

STOPPED = {
    "InstanceId": "i-12345678",
    "ImageId": "ami-0123456789abcdef0",
    "State": {"Code": 80, "Name": "stopped"},
    "PrivateDnsName": "ip-10-0-0-5.ec2.internal",
    "PublicDnsName": "",
    "StateTransitionReason": "User initiated (2024-05-06 08:00:00 GMT)",
    "StateReason": {
        "Code": "Client.UserInitiatedShutdown",
        "Message": "Client.UserInitiatedShutdown: User initiated shutdown",
    },
    "AmiLaunchIndex": 1,
    "ProductCodes": [],
    "InstanceType": "t3.small",
    "LaunchTime": datetime.datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    "Placement": {"AvailabilityZone": "us-east-1a", "GroupName": "", "Tenancy": "default"},
    "Monitoring": {"State": "disabled"},
    "SubnetId": "subnet-0123456789abcdef0",
    "VpcId": "vpc-0123456789abcdef0",
    "PrivateIpAddress": "10.0.0.5",
    "SecurityGroups": [],
    "Architecture": "x86_64",
    "RootDeviceType": "ebs",
    "RootDeviceName": "/dev/xvda",
    "BlockDeviceMappings": [],
    "VirtualizationType": "hvm",
    "ClientToken": "",
    "Tags": [],
    "EbsOptimized": False,
    "EnaSupport": True,
    "SourceDestCheck": True,
    "MetadataOptions": {
        "State": "applied",
        "HttpTokens": "optional",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "enabled",
        "InstanceMetadataTags": "disabled",
    },
    "BootMode": "legacy-bios",
}

RESERVATION = {
    "ReservationId": "r-0123456789abcdef0",
    "OwnerId": "000000000000",
    "Groups": [],
    "Instances": [RUNNING, STOPPED],
}


def main(workdir):
    session = botocore.session.get_session()
    client = session.create_client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )
    wire = Wire(workdir, client)

    # 1. RunInstances with tags, block device mappings, metadata options and
    #    user data (which botocore base64-encodes itself).
    wire.answer_with("run_instances.xml")
    parsed = client.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=2,
        KeyName="my key & co",
        UserData=USER_DATA,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 16, "VolumeType": "gp3", "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdb", "NoDevice": ""},
        ],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": "web 1"}, {"Key": "env", "Value": "ünïcode/+=&?%"}],
            },
            {"ResourceType": "volume", "Tags": [{"Key": "empty", "Value": ""}]},
        ],
        MetadataOptions={
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
            "InstanceMetadataTags": "enabled",
        },
        InstanceInitiatedShutdownBehavior="terminate",
        ClientToken="flint-token-1",
        DryRun=False,
    )
    parsed, request_id, status = without_http_metadata(parsed)
    check("RunInstances reply", parsed, RESERVATION)
    check("RunInstances requestId", (request_id, status), ("7a62c49f-347e-4fc4-9331-6e8eEXAMPLE", 200))

    # 2. DescribeInstances with filters and pagination.
    wire.answer_with("describe_instances.xml")
    parsed = client.describe_instances(
        Filters=[
            {"Name": "instance-state-name", "Values": ["running", "pending"]},
            {"Name": "tag:Name", "Values": ["web*"]},
        ],
        MaxResults=5,
        NextToken="eyJhZnRlciI6ImktMSJ9/+=",
    )
    parsed, request_id, status = without_http_metadata(parsed)
    check(
        "DescribeInstances reply",
        parsed,
        {"Reservations": [RESERVATION], "NextToken": "eyJhZnRlciI6ImktMiJ9"},
    )
    check("DescribeInstances requestId", request_id, "8f7724cf-496f-496e-8fe3-example")

    # 3. DescribeInstances by id.
    parsed = client.describe_instances(InstanceIds=["i-0123456789abcdef0", "i-12345678"])

    # 4. TerminateInstances answered with an error document.
    wire.answer_with("error_not_found.xml", status=400)
    try:
        client.terminate_instances(InstanceIds=["i-0123456789abcdef0", "i-12345678"])
        check("TerminateInstances raised", "no error", "ClientError")
    except ClientError as e:
        check(
            "TerminateInstances error",
            (e.response["Error"], e.response["ResponseMetadata"]["RequestId"], e.response["ResponseMetadata"]["HTTPStatusCode"]),
            (
                {
                    "Code": "InvalidInstanceID.NotFound",
                    "Message": "The instance IDs 'i-0123456789abcdef0, i-12345678' do not exist",
                },
                "d8b2d9a5-2f7e-4f41-9b0f-example",
                400,
            ),
        )

    # 5. DryRun answered with EC2's 412.
    wire.answer_with("error_dry_run.xml", status=412)
    try:
        client.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, DryRun=True)
        check("DryRun raised", "no error", "ClientError")
    except ClientError as e:
        check(
            "DryRun error",
            (e.response["Error"]["Code"], e.response["Error"]["Message"], e.response["ResponseMetadata"]["HTTPStatusCode"]),
            ("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412),
        )

    with open(os.path.join(workdir, "requests.json"), "w") as f:
        json.dump(
            {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "requests": wire.requests},
            f,
            indent=1,
        )
    print(f"botocore {botocore.__version__}: {len(wire.requests)} requests recorded")
    if FAILURES:
        print(f"botocore_wire: {len(FAILURES)} mismatches: {', '.join(FAILURES)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
