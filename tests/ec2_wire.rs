//! Flint's EC2 wire format against botocore's own serializer, signer and
//! parser (tests/ec2_wire/botocore_wire.py), offline:
//!
//! (a) requests botocore serializes and signs for RunInstances (tags, block
//!     device mappings, metadata options, user data), DescribeInstances
//!     (filters, MaxResults/NextToken, ids) and TerminateInstances parse
//!     with Flint's request parser into the expected values, and their
//!     SigV4 signatures verify;
//! (b) replies built with Flint's response builder (DescribeInstances,
//!     RunInstances, two error documents) parse with botocore into the
//!     expected dicts (checked on the Python side).
//!
//! botocore comes from a venv at /var/cache/flint/venv (or $FLINT_VENV),
//! created here with pip if missing. If that is impossible the test says
//! so loudly and passes, since the wire format is also unit-tested.

// The wire-format crate (flint-ec2-wire); its own unit tests live in
// crates/ec2-wire/src/tests/.
use ec2_wire as ec2;

use std::collections::HashMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use ec2::error::Ec2Error;
use ec2::request::{Ec2Request, Filter};
use ec2::response::{XmlWriter, ec2_response};
use ec2::sigv4::{self, Authentication, HttpParts, SigV4Error};
use serde_json::Value;

const DEFAULT_VENV: &str = "/var/cache/flint/venv";

/// The venv's python with botocore importable, creating the venv if
/// needed; Err says why it cannot be had.
fn botocore_python() -> Result<PathBuf, String> {
    let venv =
        std::env::var_os("FLINT_VENV").map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from);
    let python = venv.join("bin/python3");
    let has_botocore = |python: &Path| {
        Command::new(python)
            .args(["-c", "import botocore"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_botocore(&python) {
        return Ok(python);
    }
    let parent = venv.parent().ok_or("venv path has no parent")?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // Other test binaries may want the same venv: one creator at a time.
    let lock_path = parent.join(".venv.lock");
    let lock = fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own; released when `lock` drops.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("cannot lock {}", lock_path.display()));
    }
    if has_botocore(&python) {
        return Ok(python);
    }
    let run = |program: &Path, args: &[&str]| -> Result<(), String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {args:?} failed: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(
        Path::new("python3"),
        &["-m", "venv", &venv.to_string_lossy()],
    )?;
    run(
        &venv.join("bin/pip"),
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "botocore",
        ],
    )?;
    if has_botocore(&python) {
        Ok(python)
    } else {
        Err("botocore still not importable after pip install".into())
    }
}

struct Instance<'a> {
    id: &'a str,
    state: (u16, &'a str),
    private_ip: &'a str,
    reason: &'a str,
    state_reason: Option<(&'a str, &'a str)>,
    key_name: Option<&'a str>,
    launch_index: u32,
    instance_type: &'a str,
    launch_ms: i64,
    root_volume: Option<(&'a str, i64)>,
    client_token: &'a str,
    tags: &'a [(&'a str, &'a str)],
    http_tokens: &'a str,
    hop_limit: u8,
}

const RUNNING: Instance = Instance {
    id: "i-0123456789abcdef0",
    state: (16, "running"),
    private_ip: "10.0.0.4",
    reason: "",
    state_reason: None,
    key_name: Some("my key & co"),
    launch_index: 0,
    instance_type: "t3.micro",
    launch_ms: 1_714_979_289_010,
    root_volume: Some(("vol-0123456789abcdef0", 1_714_979_290_000)),
    client_token: "flint-token-1",
    tags: &[
        ("Name", "web <1> & 'quoted' \"x\""),
        ("env", "ünïcode\r\nline"),
    ],
    http_tokens: "required",
    hop_limit: 2,
};

const STOPPED: Instance = Instance {
    id: "i-12345678",
    state: (80, "stopped"),
    private_ip: "10.0.0.5",
    reason: "User initiated (2024-05-06 08:00:00 GMT)",
    state_reason: Some((
        "Client.UserInitiatedShutdown",
        "Client.UserInitiatedShutdown: User initiated shutdown",
    )),
    key_name: None,
    launch_index: 1,
    instance_type: "t3.small",
    launch_ms: 946_684_799_999,
    root_volume: None,
    client_token: "",
    tags: &[],
    http_tokens: "optional",
    hop_limit: 1,
};

/// One `instancesSet` item, with the element names of botocore's Instance
/// shape.
fn write_instance(x: &mut XmlWriter, i: &Instance) {
    x.text("instanceId", i.id)
        .text("imageId", "ami-0123456789abcdef0")
        .element("instanceState", |x| {
            x.int("code", i.state.0).text("name", i.state.1);
        })
        .text(
            "privateDnsName",
            &format!("ip-{}.ec2.internal", i.private_ip.replace('.', "-")),
        )
        .text("dnsName", "")
        .text("reason", i.reason)
        .opt_text("keyName", i.key_name)
        .int("amiLaunchIndex", i.launch_index)
        .list("productCodes", Vec::<()>::new(), |_, _| {})
        .text("instanceType", i.instance_type)
        .timestamp_ms("launchTime", i.launch_ms)
        .element("placement", |x| {
            x.text("availabilityZone", "us-east-1a")
                .text("groupName", "")
                .text("tenancy", "default");
        })
        .element("monitoring", |x| {
            x.text("state", "disabled");
        })
        .text("subnetId", "subnet-0123456789abcdef0")
        .text("vpcId", "vpc-0123456789abcdef0")
        .text("privateIpAddress", i.private_ip)
        .list("groupSet", Vec::<()>::new(), |_, _| {})
        .text("architecture", "x86_64")
        .text("rootDeviceType", "ebs")
        .text("rootDeviceName", "/dev/xvda")
        .list(
            "blockDeviceMapping",
            i.root_volume,
            |x, (volume, attached)| {
                x.text("deviceName", "/dev/xvda").element("ebs", |x| {
                    x.text("volumeId", volume)
                        .text("status", "attached")
                        .timestamp_ms("attachTime", attached)
                        .bool("deleteOnTermination", true);
                });
            },
        )
        .text("virtualizationType", "hvm")
        .text("clientToken", i.client_token)
        .list("tagSet", i.tags, |x, (key, value)| {
            x.text("key", key).text("value", value);
        })
        .bool("ebsOptimized", false)
        .bool("enaSupport", true)
        .bool("sourceDestCheck", true)
        .element("metadataOptions", |x| {
            x.text("state", "applied")
                .text("httpTokens", i.http_tokens)
                .int("httpPutResponseHopLimit", i.hop_limit)
                .text("httpEndpoint", "enabled")
                .text("instanceMetadataTags", "disabled");
        })
        .text("bootMode", "legacy-bios");
    if let Some((code, message)) = i.state_reason {
        x.element("stateReason", |x| {
            x.text("code", code).text("message", message);
        });
    }
}

/// The members of a Reservation, which RunInstances returns at its top
/// level and DescribeInstances inside each `reservationSet` item.
fn write_reservation(x: &mut XmlWriter) {
    x.text("reservationId", "r-0123456789abcdef0")
        .text("ownerId", "000000000000")
        .list("groupSet", Vec::<()>::new(), |_, _| {})
        .list("instancesSet", [RUNNING, STOPPED], |x, i| {
            write_instance(x, &i)
        });
}

fn write_replies(dir: &Path) {
    let run = ec2_response(
        "RunInstances",
        "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE",
        write_reservation,
    )
    .unwrap();
    let describe = ec2_response(
        "DescribeInstances",
        "8f7724cf-496f-496e-8fe3-example",
        |x| {
            x.list("reservationSet", [()], |x, ()| write_reservation(x))
                .text("nextToken", "eyJhZnRlciI6ImktMiJ9");
        },
    )
    .unwrap();
    let not_found = Ec2Error::instance_not_found(&["i-0123456789abcdef0", "i-12345678"])
        .to_xml("d8b2d9a5-2f7e-4f41-9b0f-example");
    let dry_run = Ec2Error::dry_run_operation().to_xml("0f8f7e39-2b3a-4a53-8d57-example");
    for (name, xml) in [
        ("run_instances.xml", run),
        ("describe_instances.xml", describe),
        ("error_not_found.xml", not_found),
        ("error_dry_run.xml", dry_run),
    ] {
        fs::write(dir.join(name), xml).unwrap();
    }
}

struct Recorded {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Recorded {
    fn from_json(value: &Value) -> Recorded {
        let text = |key: &str| value[key].as_str().unwrap().to_string();
        let headers = value["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_string(),
                    pair[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Recorded {
            method: text("method"),
            target: text("target"),
            headers,
            body: text("body"),
        }
    }

    fn parts<'a>(&'a self, body: &'a [u8]) -> HttpParts<'a> {
        HttpParts {
            method: &self.method,
            target: &self.target,
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            body,
        }
    }

    fn parse(&self) -> Ec2Request {
        Ec2Request::parse(self.body.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", self.body))
    }
}

fn check_signature(request: &Recorded, credentials: &HashMap<String, String>, access_key: &str) {
    let now = ec2::clock::now_unix_ms() / 1000;
    assert_eq!(
        sigv4::verify(&request.parts(request.body.as_bytes()), credentials, now),
        Ok(Authentication::Signed {
            access_key: access_key.to_string(),
            region: "us-east-1".to_string(),
        }),
        "{}",
        request.body
    );
    let tampered = format!("{}&Extra=1", request.body);
    assert_eq!(
        sigv4::verify(&request.parts(tampered.as_bytes()), credentials, now),
        Err(SigV4Error::SignatureMismatch)
    );
    let content_type = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
}

const RUN_INSTANCES_PARAMS: &[&str] = &[
    "ImageId",
    "InstanceType",
    "MinCount",
    "MaxCount",
    "KeyName",
    "UserData",
    "ClientToken",
    "DryRun",
    "InstanceInitiatedShutdownBehavior",
    "BlockDeviceMapping.N.DeviceName",
    "BlockDeviceMapping.N.NoDevice",
    "BlockDeviceMapping.N.Ebs.VolumeSize",
    "BlockDeviceMapping.N.Ebs.VolumeType",
    "BlockDeviceMapping.N.Ebs.DeleteOnTermination",
    "TagSpecification.N.ResourceType",
    "TagSpecification.N.Tag.N.Key",
    "TagSpecification.N.Tag.N.Value",
    "MetadataOptions.HttpTokens",
    "MetadataOptions.HttpPutResponseHopLimit",
    "MetadataOptions.HttpEndpoint",
    "MetadataOptions.InstanceMetadataTags",
];

fn check_run_instances(request: &Ec2Request) {
    assert_eq!(request.action(), "RunInstances");
    assert_eq!(request.version(), Some("2016-11-15"));
    request.reject_unknown(RUN_INSTANCES_PARAMS).unwrap();
    assert!(request.reject_unknown(&RUN_INSTANCES_PARAMS[1..]).is_err());
    assert_eq!(
        request.required_string("ImageId"),
        Ok("ami-0123456789abcdef0")
    );
    assert_eq!(request.string("InstanceType"), Some("t3.micro"));
    assert_eq!(request.int("MinCount", 1..=1000), Ok(Some(1)));
    assert_eq!(request.int("MaxCount", 1..=1000), Ok(Some(2)));
    assert_eq!(request.string("KeyName"), Some("my key & co"));
    // botocore base64-encodes RunInstances user data itself.
    assert_eq!(
        request.string("UserData"),
        Some("IyEvYmluL3NoCmVjaG8gImhlbGxvIGZyb20gdXNlciBkYXRhIiA+IC90bXAvZmxpbnQK")
    );
    assert_eq!(request.string("ClientToken"), Some("flint-token-1"));
    assert_eq!(request.bool("DryRun"), Ok(Some(false)));
    assert_eq!(
        request.string("InstanceInitiatedShutdownBehavior"),
        Some("terminate")
    );

    let mappings = request.structs("BlockDeviceMapping").unwrap();
    assert_eq!(mappings.len(), 2);
    assert_eq!(mappings[0].string("DeviceName"), Some("/dev/xvda"));
    let ebs = mappings[0].child("Ebs");
    assert_eq!(ebs.int("VolumeSize", 1..=16384), Ok(Some(16)));
    assert_eq!(ebs.string("VolumeType"), Some("gp3"));
    assert_eq!(ebs.bool("DeleteOnTermination"), Ok(Some(true)));
    assert_eq!(mappings[1].string("DeviceName"), Some("/dev/sdb"));
    assert_eq!(mappings[1].string("NoDevice"), Some(""));
    assert!(!mappings[1].child("Ebs").is_present());

    let specs = request.structs("TagSpecification").unwrap();
    let read_tags = |spec: &ec2::request::Scope<'_>| -> Vec<(String, String)> {
        spec.structs("Tag")
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t.required_string("Key").unwrap().into(),
                    t.string("Value").unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].string("ResourceType"), Some("instance"));
    assert_eq!(
        read_tags(&specs[0]),
        [
            ("Name".into(), "web 1".into()),
            ("env".into(), "ünïcode/+=&?%".into())
        ]
    );
    assert_eq!(specs[1].string("ResourceType"), Some("volume"));
    assert_eq!(read_tags(&specs[1]), [("empty".into(), String::new())]);

    let metadata = request.child("MetadataOptions");
    assert_eq!(metadata.string("HttpTokens"), Some("required"));
    assert_eq!(metadata.int("HttpPutResponseHopLimit", 1..=64), Ok(Some(2)));
    assert_eq!(metadata.string("HttpEndpoint"), Some("enabled"));
    assert_eq!(metadata.string("InstanceMetadataTags"), Some("enabled"));
}

fn check_describe_with_filters(request: &Ec2Request) {
    assert_eq!(request.action(), "DescribeInstances");
    request
        .reject_unknown(&[
            "Filter.N.Name",
            "Filter.N.Value.N",
            "MaxResults",
            "NextToken",
            "InstanceId.N",
        ])
        .unwrap();
    assert_eq!(
        request.filters().unwrap(),
        [
            Filter {
                name: "instance-state-name".into(),
                values: vec!["running".into(), "pending".into()],
            },
            Filter {
                name: "tag:Name".into(),
                values: vec!["web*".into()],
            },
        ]
    );
    assert_eq!(request.int("MaxResults", 5..=1000), Ok(Some(5)));
    assert_eq!(request.string("NextToken"), Some("eyJhZnRlciI6ImktMSJ9/+="));
    assert_eq!(
        request.string_list("InstanceId").unwrap(),
        Vec::<&str>::new()
    );
}

#[test]
fn botocore_round_trip() {
    // scripts/install-deps makes the venv; PyPI is reachable wherever the
    // tests run, so a missing botocore is a failure, not a skip.
    let python = botocore_python().unwrap_or_else(|why| panic!("no botocore venv: {why}"));
    let dir = std::env::temp_dir().join(format!("flint-ec2-wire-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    write_replies(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ec2_wire/botocore_wire.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "botocore_wire.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let recorded: Value =
        serde_json::from_slice(&fs::read(dir.join("requests.json")).unwrap()).unwrap();
    let access_key = recorded["access_key"].as_str().unwrap();
    let credentials = HashMap::from([(
        access_key.to_string(),
        recorded["secret_key"].as_str().unwrap().to_string(),
    )]);
    let requests: Vec<Recorded> = recorded["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(Recorded::from_json)
        .collect();
    assert_eq!(requests.len(), 5);
    for request in &requests {
        assert_eq!(
            (request.method.as_str(), request.target.as_str()),
            ("POST", "/")
        );
        check_signature(request, &credentials, access_key);
    }

    check_run_instances(&requests[0].parse());
    check_describe_with_filters(&requests[1].parse());

    let by_id = requests[2].parse();
    assert_eq!(by_id.action(), "DescribeInstances");
    assert_eq!(
        by_id.string_list("InstanceId").unwrap(),
        ["i-0123456789abcdef0", "i-12345678"]
    );
    assert_eq!(by_id.filters().unwrap(), []);

    let terminate = requests[3].parse();
    assert_eq!(terminate.action(), "TerminateInstances");
    terminate
        .reject_unknown(&["InstanceId.N", "DryRun", "Force"])
        .unwrap();
    let ids = terminate.string_list("InstanceId").unwrap();
    assert_eq!(ids, ["i-0123456789abcdef0", "i-12345678"]);
    assert!(
        ids.iter()
            .all(|id| ec2::ids::is_valid(ec2::ids::ResourceKind::Instance, id))
    );

    let dry_run = requests[4].parse();
    assert_eq!(dry_run.bool("DryRun"), Ok(Some(true)));
    // A ClientToken botocore generated itself (an idempotency token).
    assert_eq!(dry_run.string("ClientToken").map(str::len), Some(36));

    fs::remove_dir_all(&dir).unwrap();
}
