"""Drives a running `flint serve` with real boto3 (tests/serve_api.rs runs
this). Environment: FLINT_ENDPOINT (open mode), FLINT_STRICT_ENDPOINT
(--credentials mode, key AKIDFLINTTEST / flint-secret), FLINT_WORK (scratch
dir), FLINT_DATA (the open daemon's data dir), FLINT_BIN and FLINT_SOCKET
(the CLI against the open daemon's Unix socket). Exits non-zero on the
first failed check, naming it."""

import base64
import datetime
import hashlib
import http.client
import json
import os
import subprocess
import sys
import traceback
import urllib.parse

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["FLINT_ENDPOINT"]
STRICT = os.environ["FLINT_STRICT_ENDPOINT"]
WORK = os.environ["FLINT_WORK"]
DATA = os.environ["FLINT_DATA"]
FLINT = os.environ.get("FLINT_BIN")
SOCKET = os.environ.get("FLINT_SOCKET")


def client(endpoint=EP, key="AKIDFLINTTEST", secret="flint-secret", unsigned=False):
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"})
    if unsigned:
        cfg = cfg.merge(Config(signature_version=botocore.UNSIGNED))
    return boto3.client(
        "ec2", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)


ec2 = client()


def error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert 400 <= status < 500, f"{code}: status {status}"
        return e
    raise AssertionError(f"expected error {code}, got success")


CHECKS = []


def check(f):
    CHECKS.append(f)
    return f


@check
def regions_zones_account():
    r = ec2.describe_regions()["Regions"]
    assert r == [{"RegionName": "us-east-1", "Endpoint": "ec2.us-east-1.amazonaws.com",
                  "OptInStatus": "opt-in-not-required"}], r
    assert ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["eu-*"]}])["Regions"] == []
    error("InvalidParameterValue", ec2.describe_regions, RegionNames=["mars-1"])
    z = ec2.describe_availability_zones()["AvailabilityZones"]
    assert len(z) == 1 and z[0]["ZoneName"] == "us-east-1a" and z[0]["State"] == "available", z
    assert z[0]["ZoneId"] == "use1-az1", z
    a = ec2.describe_account_attributes(AttributeNames=["supported-platforms"])["AccountAttributes"]
    assert a == [{"AttributeName": "supported-platforms",
                  "AttributeValues": [{"AttributeValue": "VPC"}]}], a
    error("DryRunOperation", ec2.describe_regions, DryRun=True)


@check
def instance_types():
    all_types = ec2.describe_instance_types()["InstanceTypes"]
    names = [t["InstanceType"] for t in all_types]
    assert "t3.micro" in names and "m5.large" in names and "c5.large" in names, names
    micro = ec2.describe_instance_types(InstanceTypes=["t3.micro"])["InstanceTypes"][0]
    assert micro["VCpuInfo"]["DefaultVCpus"] == 2 and micro["MemoryInfo"]["SizeInMiB"] == 1024, micro
    assert micro["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"], micro
    assert micro["BurstablePerformanceSupported"] is True
    t3 = ec2.describe_instance_types(Filters=[{"Name": "instance-type", "Values": ["t3.*"]}])
    assert len(t3["InstanceTypes"]) == 7, t3
    pages = list(ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 5}))
    assert len(pages) >= 3, len(pages)
    paged = [t["InstanceType"] for p in pages for t in p["InstanceTypes"]]
    assert sorted(paged) == sorted(names) and len(set(paged)) == len(paged), paged
    error("InvalidInstanceType", ec2.describe_instance_types, InstanceTypes=["t9.huge"])
    error("InvalidPaginationToken", ec2.describe_instance_types, NextToken="zz")
    error("InvalidParameterValue", ec2.describe_instance_types, MaxResults=1000)
    error("InvalidParameterValue", ec2.describe_instance_types,
          Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


IMPORT = os.path.join(DATA, "import")


def make_disks():
    # RegisterImage reads from the daemon's import dir only.
    raw = os.path.join(IMPORT, "disk.raw")
    with open(raw, "wb") as f:
        f.truncate(8 << 20)
        f.seek(1 << 20)
        f.write(b"flint test disk" * 100)
    qcow = os.path.join(IMPORT, "disk.qcow2")
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow], check=True)
    backed = os.path.join(IMPORT, "backed.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw, backed],
                   check=True)
    return raw, qcow, backed


IMAGES = {}


@check
def images():
    raw, qcow, backed = make_disks()
    source = open(raw, "rb").read()
    a = ec2.register_image(Name="flint-raw-1", ImageLocation=raw, Description="raw one",
                           TagSpecifications=[{"ResourceType": "image",
                                               "Tags": [{"Key": "os", "Value": "debian"}]}])["ImageId"]
    b = ec2.register_image(Name="flint-qcow-1", ImageLocation=qcow, BootMode="uefi")["ImageId"]
    IMAGES.update(raw=a, qcow=b)
    for image_id in (a, b):
        converted = open(os.path.join(DATA, "images", image_id + ".raw"), "rb").read()
        assert converted == source, f"{image_id}: imported disk differs from the source"
    got = ec2.describe_images(ImageIds=[a, b])["Images"]
    by_id = {i["ImageId"]: i for i in got}
    ia, ib = by_id[a], by_id[b]
    assert ia["Name"] == "flint-raw-1" and ia["State"] == "available", ia
    assert ia["Description"] == "raw one" and ia["RootDeviceName"] == "/dev/xvda", ia
    assert ia["BootMode"] == "legacy-bios" and ib["BootMode"] == "uefi", (ia, ib)
    assert ia["Tags"] == [{"Key": "os", "Value": "debian"}], ia
    assert "Tags" not in ib, ib
    assert ia["Architecture"] == "x86_64" and ia["Public"] is False, ia
    assert ia["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 1, ia
    assert isinstance(ia["CreationDate"], str) and ia["CreationDate"].endswith("Z"), ia
    assert {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} == {a, b}
    assert ec2.describe_images(Owners=["amazon"])["Images"] == []
    f = ec2.describe_images(Filters=[{"Name": "name", "Values": ["flint-q*"]}])["Images"]
    assert [i["ImageId"] for i in f] == [b], f
    f = ec2.describe_images(Filters=[{"Name": "tag:os", "Values": ["debian"]}])["Images"]
    assert [i["ImageId"] for i in f] == [a], f
    f = ec2.describe_images(Filters=[{"Name": "boot-mode", "Values": ["uefi"]},
                                     {"Name": "state", "Values": ["available"]}])["Images"]
    assert [i["ImageId"] for i in f] == [b], f
    p1 = ec2.describe_images(MaxResults=5)
    assert "NextToken" not in p1, p1
    error("InvalidAMIName.Duplicate", ec2.register_image, Name="flint-raw-1", ImageLocation=raw)
    # Only regular files inside the import dir, never through a symlink.
    outside = os.path.join(WORK, "outside.raw")
    with open(outside, "wb") as f:
        f.write(open(raw, "rb").read())
    link = os.path.join(IMPORT, "shadow-link")
    os.symlink("/etc/shadow", link)
    link_inside = os.path.join(IMPORT, "raw-link")
    os.symlink(raw, link_inside)
    os.makedirs(os.path.join(IMPORT, "sub"), exist_ok=True)
    os.symlink(WORK, os.path.join(IMPORT, "sub", "escape"))
    os.mknod(os.path.join(IMPORT, "null"), 0o600 | 0o020000, os.makedev(1, 3))
    for bad in ["relative/disk.raw", WORK + "/../" + os.path.basename(WORK) + "/disk.raw",
                WORK, WORK + "/missing.raw", "/dev/null", backed, "/etc/shadow", outside,
                link, link_inside, os.path.join(IMPORT, "null"), IMPORT, IMPORT + "/",
                IMPORT + "/../flint.db", IMPORT + "/sub/../../flint.db",
                "../flint.db", "sub/escape/outside.raw", os.path.join(IMPORT, "sub", "escape",
                                                                      "outside.raw")]:
        e = error("InvalidParameterValue", ec2.register_image, Name="bad-one",
                  ImageLocation=bad)
        if bad in ("/etc/shadow", outside):
            assert "import directory" in str(e), e
    # A path relative to the import dir is fine.
    rel = ec2.register_image(Name="flint-relative", ImageLocation="disk.raw")["ImageId"]
    assert ec2.deregister_image(ImageId=rel)["Return"] is True
    error("InvalidParameterValue", ec2.register_image, Name="bad-two", ImageLocation=raw,
          Architecture="arm64")
    error("InvalidParameterValue", ec2.register_image, Name="bad-two", ImageLocation=raw,
          BootMode="coreboot")
    error("InvalidAMIName.Malformed", ec2.register_image, Name="bad*name", ImageLocation=raw)
    error("MissingParameter", ec2.register_image, Name="nolocation")
    error("DryRunOperation", ec2.register_image, Name="dry-run-image", ImageLocation=raw, DryRun=True)
    assert ec2.describe_images(Filters=[{"Name": "name", "Values": ["dry-run-image"]}])["Images"] == []
    error("InvalidAMIID.Malformed", ec2.describe_images, ImageIds=["ami-xyz"])
    error("InvalidAMIID.NotFound", ec2.describe_images, ImageIds=["ami-0123456789abcdef0"])
    error("InvalidParameterCombination", ec2.describe_images, ImageIds=[a], MaxResults=5)
    c = ec2.register_image(Name="flint-raw-2", ImageLocation=raw)["ImageId"]
    error("DryRunOperation", ec2.deregister_image, ImageId=c, DryRun=True)
    assert ec2.deregister_image(ImageId=c)["Return"] is True
    assert not os.path.exists(os.path.join(DATA, "images", c + ".raw"))
    error("InvalidAMIID.NotFound", ec2.deregister_image, ImageId=c)
    error("InvalidAMIID.Malformed", ec2.deregister_image, ImageId="ami-1")


def openssl(args, data):
    return subprocess.run(["openssl"] + args, input=data, capture_output=True, check=True).stdout


KEYS = {}


@check
def key_pairs():
    rsa = ec2.create_key_pair(KeyName="rsa-key",
                              TagSpecifications=[{"ResourceType": "key-pair",
                                                  "Tags": [{"Key": "team", "Value": "a"}]}])
    assert rsa["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----"), rsa["KeyMaterial"][:40]
    der = openssl(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"], rsa["KeyMaterial"].encode())
    want = ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())
    assert rsa["KeyFingerprint"] == want, (rsa["KeyFingerprint"], want)
    assert rsa["KeyPairId"].startswith("key-") and rsa["Tags"] == [{"Key": "team", "Value": "a"}]
    ed = ec2.create_key_pair(KeyName="ed-key", KeyType="ed25519")
    assert ed["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    path = os.path.join(WORK, "ed")
    with open(path, "w") as f:
        f.write(ed["KeyMaterial"] + "\n")
    os.chmod(path, 0o600)
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", path],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    assert printed == "SHA256:" + ed["KeyFingerprint"].rstrip("="), (printed, ed["KeyFingerprint"])
    # Import an RSA public key: MD5 of the DER SubjectPublicKeyInfo.
    gen = os.path.join(WORK, "imp")
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", gen], check=True)
    pub = open(gen + ".pub").read()
    imp = ec2.import_key_pair(KeyName="imported", PublicKeyMaterial=pub.encode())
    spki_pem = subprocess.run(["ssh-keygen", "-e", "-m", "PKCS8", "-f", gen + ".pub"],
                              capture_output=True, check=True).stdout
    spki = openssl(["pkey", "-pubin", "-outform", "DER"], spki_pem)
    want = ":".join(f"{b:02x}" for b in hashlib.md5(spki).digest())
    assert imp["KeyFingerprint"] == want, (imp["KeyFingerprint"], want)
    KEYS.update(rsa=rsa["KeyPairId"], ed=ed["KeyPairId"], imported=imp["KeyPairId"])
    all_keys = ec2.describe_key_pairs()["KeyPairs"]
    assert sorted(k["KeyName"] for k in all_keys) == ["ed-key", "imported", "rsa-key"], all_keys
    assert all("PublicKey" not in k for k in all_keys)
    one = ec2.describe_key_pairs(KeyNames=["imported"], IncludePublicKey=True)["KeyPairs"][0]
    assert one["PublicKey"].split()[:2] == pub.split()[:2], one
    assert one["KeyType"] == "rsa" and isinstance(one["CreateTime"], datetime.datetime), one
    by_id = ec2.describe_key_pairs(KeyPairIds=[KEYS["ed"]])["KeyPairs"]
    assert [k["KeyName"] for k in by_id] == ["ed-key"], by_id
    f = ec2.describe_key_pairs(Filters=[{"Name": "key-type", "Values": ["ed25519"]}])["KeyPairs"]
    assert [k["KeyName"] for k in f] == ["ed-key"], f
    f = ec2.describe_key_pairs(Filters=[{"Name": "tag:team", "Values": ["a"]}])["KeyPairs"]
    assert [k["KeyName"] for k in f] == ["rsa-key"], f
    error("InvalidKeyPair.Duplicate", ec2.create_key_pair, KeyName="rsa-key")
    error("InvalidKeyPair.Duplicate", ec2.import_key_pair, KeyName="ed-key", PublicKeyMaterial=pub.encode())
    error("InvalidKeyPair.Format", ec2.import_key_pair, KeyName="junk", PublicKeyMaterial=b"not a key")
    error("InvalidKeyPair.Format", ec2.import_key_pair, KeyName="junk",
          PublicKeyMaterial=b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ")
    error("InvalidKeyPair.NotFound", ec2.describe_key_pairs, KeyNames=["nope"])
    error("InvalidParameterValue", ec2.create_key_pair, KeyName="k2", KeyType="dsa")
    error("DryRunOperation", ec2.create_key_pair, KeyName="dry", DryRun=True)
    error("InvalidKeyPair.NotFound", ec2.describe_key_pairs, KeyNames=["dry"])
    tmp = ec2.create_key_pair(KeyName="to-delete", KeyType="ed25519")["KeyPairId"]
    assert ec2.delete_key_pair(KeyPairId=tmp)["Return"] is True
    assert ec2.delete_key_pair(KeyName="to-delete")["Return"] is True  # idempotent, as EC2
    error("InvalidKeyPair.NotFound", ec2.describe_key_pairs, KeyPairIds=[tmp])


@check
def tags():
    a = IMAGES["raw"]
    k = KEYS["rsa"]
    ec2.create_tags(Resources=[a, k], Tags=[{"Key": f"k{i}", "Value": f"v{i}"} for i in range(4)])
    every = ec2.describe_tags()["Tags"]
    mine = [t for t in every if t["ResourceId"] in (a, k)]
    assert len(mine) == 10, mine  # 4 each + os=debian + team=a
    t = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [a]},
                                   {"Name": "key", "Values": ["k1"]}])["Tags"]
    assert t == [{"Key": "k1", "ResourceId": a, "ResourceType": "image", "Value": "v1"}], t
    t = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["key-pair"]}])["Tags"]
    assert {x["ResourceId"] for x in t} == {k} and len(t) == 5, t
    t = ec2.describe_tags(Filters=[{"Name": "value", "Values": ["v?"]}])["Tags"]
    assert len(t) == 8, t
    pages = list(ec2.get_paginator("describe_tags").paginate(PaginationConfig={"PageSize": 5}))
    assert len(pages) >= 2 and all(len(p["Tags"]) <= 5 for p in pages), pages
    paged = [(x["ResourceId"], x["Key"]) for p in pages for x in p["Tags"]]
    assert sorted(paged) == sorted((x["ResourceId"], x["Key"]) for x in every), paged
    ec2.delete_tags(Resources=[a], Tags=[{"Key": "k0", "Value": "wrong"}, {"Key": "k1"}])
    left = {x["Key"] for x in ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [a]}])["Tags"]}
    assert left == {"os", "k0", "k2", "k3"}, left
    img = ec2.describe_images(ImageIds=[a])["Images"][0]
    assert {x["Key"] for x in img["Tags"]} == left, img
    error("InvalidID", ec2.create_tags, Resources=["foo-123"], Tags=[{"Key": "a", "Value": "b"}])
    error("InvalidAMIID.Malformed", ec2.create_tags, Resources=["ami-zz"], Tags=[{"Key": "a", "Value": "b"}])
    error("InvalidInstanceID.NotFound", ec2.create_tags, Resources=["i-0123456789abcdef0"],
          Tags=[{"Key": "a", "Value": "b"}])
    error("InvalidParameterValue", ec2.create_tags, Resources=[a], Tags=[{"Key": "aws:x", "Value": "b"}])
    error("DryRunOperation", ec2.create_tags, Resources=[a], Tags=[{"Key": "dry", "Value": "b"}], DryRun=True)
    error("InvalidParameterValue", ec2.describe_tags, Filters=[{"Name": "colour", "Values": ["x"]}])
    error("InvalidPaginationToken", ec2.describe_tags, NextToken="00ff")
    many = [{"Key": f"m{i}", "Value": ""} for i in range(50)]
    error("TagLimitExceeded", ec2.create_tags, Resources=[a], Tags=many)


def raw(method, body=b"", target="/", headers=None, endpoint=EP):
    host, port = urllib.parse.urlparse(endpoint).netloc.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    c.request(method, target, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data.decode()


@check
def wire_errors():
    for body, code in [
        (b"Action=DescribeRegions&Version=2016-11-15&Bogus=1", "UnknownParameter"),
        (b"Action=NoSuchAction&Version=2016-11-15", "InvalidAction"),
        (b"Version=2016-11-15", "MissingAction"),
        (b"Action=DescribeRegions&RegionName.%zz=1", "MalformedQueryString"),
        (b"Action=DescribeRegions&RegionName.0=us-east-1", "UnknownParameter"),
        (b"Action=DescribeRegions&RegionName.2=us-east-1", "InvalidParameter"),
        (b"Action=DescribeImages&ImageId.1=ami-bad", "InvalidAMIID.Malformed"),
        (b"Action=DescribeTags&MaxResults=abc", "InvalidParameterValue"),
        (b"Action=DescribeRegions&DryRun=maybe", "InvalidParameterValue"),
        (b"\xff\xfe\x00garbage", "MalformedQueryString"),
    ]:
        status, text = raw("POST", body)
        assert 400 <= status < 500 and f"<Code>{code}</Code>" in text, (body, status, text)
    status, text = raw("POST", b"x" * ((1 << 20) + 10))
    assert status == 413 and "RequestEntityTooLarge" in text, (status, text)
    status, text = raw("GET", target="/?Action=DescribeRegions&Version=2016-11-15")
    assert status == 200 and "<regionName>us-east-1</regionName>" in text, (status, text)
    status, text = raw("DELETE")
    assert status == 405, (status, text)
    # Not HTTP at all: a 4xx, and the daemon lives on.
    host, port = urllib.parse.urlparse(EP).netloc.split(":")
    import socket
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"\x00\x01 NOT HTTP\r\n\r\n")
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert ec2.describe_regions()["Regions"]


@check
def sigv4_strict():
    good = client(STRICT)
    assert good.describe_regions()["Regions"][0]["RegionName"] == "us-east-1"
    assert good.describe_key_pairs()["KeyPairs"] == []
    error("SignatureDoesNotMatch", client(STRICT, secret="wrong").describe_regions)
    error("AuthFailure", client(STRICT, key="AKIDUNKNOWN").describe_regions)
    error("MissingAuthenticationToken", client(STRICT, unsigned=True).describe_regions)
    # Open mode takes unsigned requests.
    assert client(unsigned=True).describe_regions()["Regions"]
    # A non-ASCII X-Amz-Date of the right byte length (once a panic, a
    # 500): refused as an incomplete signature.
    authorization = ("AWS4-HMAC-SHA256 Credential=AKIDFLINTTEST/20150830/us-east-1/ec2/"
                     "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
    for date in ["201\u00e9830T123600Z".encode(), b"2015\xff830T123600Z"]:
        status, text = raw("POST", b"Action=DescribeRegions&Version=2016-11-15", endpoint=STRICT,
                           headers={"Authorization": authorization, "X-Amz-Date": date})
        assert status in (400, 403) and "<Code>" in text, (date, status, text)
    # The metrics need a signature too.
    status, text = raw("GET", target="/metrics", endpoint=STRICT)
    assert status == 403 and "MissingAuthenticationToken" in text, (status, text)
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    for target in ["/metrics", "/metrics/volumes"]:
        signed = AWSRequest(method="GET", url=STRICT + target)
        SigV4Auth(Credentials("AKIDFLINTTEST", "flint-secret"), "ec2", "us-east-1").add_auth(signed)
        status, text = raw("GET", target=target, endpoint=STRICT, headers=dict(signed.headers))
        assert status == 200, (target, status, text)
    status, text = raw("GET", target="/metrics")
    assert status == 200, (status, text)


@check
def host_header():
    """DNS rebinding: TCP requests must name this endpoint in Host."""
    port = urllib.parse.urlparse(EP).port
    query = "/?Action=DescribeRegions&Version=2016-11-15"
    # Loopback names with any port: a port forward may sit in between.
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}",
                 f"localhost:{port + 1}"]:
        status, text = raw("GET", target=query, headers={"Host": host})
        assert status == 200, (host, status, text)
    for host in [f"evil.example:{port}", "evil.example", "localhost:http", "localhost.evil.example"]:
        status, text = raw("GET", target=query, headers={"Host": host})
        assert status == 400 and "<Code>InvalidHostHeader</Code>" in text, (host, status, text)
    status, text = raw("GET", target="/metrics", headers={"Host": "evil.example"})
    assert status == 400, (status, text)
    # A header that is not UTF-8 is a clean 400.
    status, text = raw("GET", target=query, headers={"X-Odd": b"\xff\xfe"})
    assert status == 400 and "MalformedHTTPRequest" in text, (status, text)


def normal(value):
    """boto3 and aws-CLI JSON alike: datetimes as UTC datetimes."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value.endswith("Z"):
        try:
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def cli(*args, expect=0):
    r = subprocess.run([FLINT, *args, "--socket", SOCKET], capture_output=True, text=True)
    assert r.returncode == expect, (args, r.returncode, r.stdout, r.stderr)
    return r


@check
def flint_cli():
    if not FLINT:
        raise AssertionError("FLINT_BIN not set")
    pairs = [
        (["describe-regions"], lambda: ec2.describe_regions()),
        (["describe-availability-zones"], lambda: ec2.describe_availability_zones()),
        (["describe-images", "--owners", "self"], lambda: ec2.describe_images(Owners=["self"])),
        (["describe-images", "--image-ids", IMAGES["raw"]],
         lambda: ec2.describe_images(ImageIds=[IMAGES["raw"]])),
        (["describe-images", "--filters", "Name=name,Values=flint-q*,other"],
         lambda: ec2.describe_images(Filters=[{"Name": "name", "Values": ["flint-q*", "other"]}])),
        (["describe-key-pairs", "--include-public-key"],
         lambda: ec2.describe_key_pairs(IncludePublicKey=True)),
        (["describe-tags", "--filters", "Name=resource-type,Values=image"],
         lambda: ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["image"]}])),
        (["describe-instance-types", "--instance-types", "t3.micro", "c5.large"],
         lambda: ec2.describe_instance_types(InstanceTypes=["t3.micro", "c5.large"])),
        (["describe-account-attributes"], lambda: ec2.describe_account_attributes()),
    ]
    for args, call in pairs:
        got = json.loads(cli(*args).stdout)
        want = call()
        assert normal(got) == normal(want), (args, got, want)
    cli("create-tags", "--resources", IMAGES["qcow"],
        "--tags", "Key=cli,Value=yes", "Key=other,Value=")
    t = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [IMAGES["qcow"]]}])["Tags"]
    assert {(x["Key"], x["Value"]) for x in t} == {("cli", "yes"), ("other", "")}, t
    made = json.loads(cli("create-key-pair", "--key-name", "cli-key", "--key-type", "ed25519").stdout)
    assert made["KeyName"] == "cli-key" and made["KeyMaterial"].startswith("-----BEGIN OPENSSH"), made
    r = cli("describe-images", "--image-ids", "ami-0123456789abcdef0", expect=254)
    assert "An error occurred (InvalidAMIID.NotFound) when calling the DescribeImages operation:" \
        in r.stderr, r.stderr
    r = cli("describe-regions", "--dry-run", expect=254)
    assert "(DryRunOperation)" in r.stderr, r.stderr
    r = subprocess.run([FLINT, "describe-regions", "--socket", WORK + "/no.sock"],
                       capture_output=True, text=True)
    assert r.returncode == 255, (r.returncode, r.stderr)
    cli("describe-images", "--no-such-option", "x", expect=252)
    cli("describe-images", "--filters", "Name=a,Values=[b", expect=252)
    cli("no-such-verb", expect=252)


def main():
    failed = 0
    for f in CHECKS:
        try:
            f()
            print(f"ok   {f.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {f.__name__}")
            traceback.print_exc()
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
