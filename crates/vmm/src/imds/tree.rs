//! The metadata tree as EC2 serves it, and path resolution into it.
//!
//! The tree of one version (meta-data/, dynamic/, user-data) is built from
//! the configuration once, and again after each update; requests only walk
//! it. Every version serves the same tree: EC2 hides categories newer than
//! the requested version, but the clients we care about (cloud-init,
//! botocore, the aws CLI) only ever read categories that exist in the
//! versions they ask for, so one tree keeps this simple.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use thiserror::Error;

use super::http::{APPLICATION_JSON, OCTET_STREAM, TEXT_PLAIN};
use flint_contract::metadata::{Credentials, MetadataConfig};

/// What `GET /` lists: the dated builds of EC2's metadata, then `latest`.
pub const VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
    "latest",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("request target is not an absolute path")]
    NotAbsolute,
    #[error("invalid percent-encoding in the path")]
    BadEncoding,
    #[error("dot segments are not allowed in metadata paths")]
    DotSegment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir(Vec<Entry>),
    Leaf(Leaf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path segment that reaches `node`.
    pub name: String,
    /// The line the parent's listing shows: "name/" for directories, but
    /// EC2 has exceptions ("0=key-name" in public-keys, no slash at a
    /// version root).
    pub listed_as: String,
    pub node: Node,
}

/// What a path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A directory: its listing, entries separated by "\n", no final newline.
    Listing(String),
    Leaf(&'a Leaf),
    NotFound,
}

/// Splits a request target into decoded path segments. The query string is
/// ignored, empty segments (duplicate or trailing slashes) vanish, and `.`
/// or `..` is refused rather than resolved: nothing here maps to files, but
/// a metadata path has no business climbing.
pub fn split_path(target: &str) -> Result<Vec<String>, PathError> {
    let mut path = target;
    // Absolute form ("GET http://169.254.169.254/latest/ HTTP/1.1"), as a
    // client configured with a proxy sends it.
    // `get` rather than slicing: byte 7 of a hostile target need not be a
    // character boundary.
    if let Some(rest) = path
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .and_then(|_| path.get(7..))
    {
        path = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut segments = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let segment = percent_decode(raw)?;
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        segments.push(segment);
    }
    Ok(segments)
}

fn percent_decode(raw: &str) -> Result<String, PathError> {
    if !raw.contains('%') {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::BadEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| PathError::BadEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::BadEncoding)
}

/// Resolves decoded segments: `[]` is the version list, `[version, ...]` a
/// path inside `version_tree`. Leaves resolve whether or not the request had
/// a trailing slash, and directories too, as on EC2.
pub fn lookup<'a>(version_tree: &'a Node, segments: &[String]) -> Lookup<'a> {
    let Some((version, rest)) = segments.split_first() else {
        return Lookup::Listing(VERSIONS.join("\n"));
    };
    if !VERSIONS.contains(&version.as_str()) {
        return Lookup::NotFound;
    }
    let mut node = version_tree;
    for segment in rest {
        let Node::Dir(entries) = node else {
            return Lookup::NotFound;
        };
        match entries.iter().find(|e| &e.name == segment) {
            Some(entry) => node = &entry.node,
            None => return Lookup::NotFound,
        }
    }
    match node {
        Node::Dir(entries) => Lookup::Listing(listing(entries)),
        Node::Leaf(leaf) => Lookup::Leaf(leaf),
    }
}

fn listing(entries: &[Entry]) -> String {
    let lines: Vec<&str> = entries.iter().map(|e| e.listed_as.as_str()).collect();
    lines.join("\n")
}

fn leaf(name: &str, body: impl Into<Vec<u8>>) -> Entry {
    leaf_typed(name, body, TEXT_PLAIN)
}

fn leaf_typed(name: &str, body: impl Into<Vec<u8>>, content_type: &'static str) -> Entry {
    Entry {
        name: name.to_string(),
        listed_as: name.to_string(),
        node: Node::Leaf(Leaf {
            body: body.into(),
            content_type,
        }),
    }
}

fn dir(name: &str, entries: Vec<Entry>) -> Entry {
    Entry {
        name: name.to_string(),
        listed_as: format!("{name}/"),
        node: Node::Dir(entries),
    }
}

/// A directory listed without the trailing slash (version roots).
fn bare_dir(name: &str, entries: Vec<Entry>) -> Entry {
    Entry {
        listed_as: name.to_string(),
        ..dir(name, entries)
    }
}

/// The tree below one version root.
pub fn build_version_tree(cfg: &MetadataConfig) -> Node {
    let mut root = vec![
        bare_dir(
            "dynamic",
            vec![dir("instance-identity", instance_identity(cfg))],
        ),
        bare_dir("meta-data", meta_data(cfg)),
    ];
    if let Some(data) = &cfg.user_data {
        root.push(leaf_typed("user-data", data.clone(), OCTET_STREAM));
    }
    Node::Dir(root)
}

fn meta_data(cfg: &MetadataConfig) -> Vec<Entry> {
    let mac = cfg.mac();
    let local_ipv4 = cfg.local_ipv4.to_string();
    let (partition, domain) = cfg.partition_and_domain();
    let mut md = vec![
        leaf("ami-id", cfg.ami_id.as_str()),
        leaf("ami-launch-index", cfg.ami_launch_index.to_string()),
        leaf("ami-manifest-path", cfg.ami_manifest_path.as_str()),
        dir(
            "block-device-mapping",
            cfg.block_device_mapping
                .iter()
                .map(|(name, device)| leaf(name, device.as_str()))
                .collect(),
        ),
        dir(
            "events",
            vec![dir(
                "maintenance",
                vec![leaf("history", "[]"), leaf("scheduled", "[]")],
            )],
        ),
        leaf("hostname", cfg.hostname()),
    ];
    if let Some(iam) = &cfg.iam {
        let info = jackson_object(&[
            ("Code", json!("Success")),
            ("LastUpdated", json!(iam.credentials.last_updated)),
            ("InstanceProfileArn", json!(iam.instance_profile_arn)),
            ("InstanceProfileId", json!(iam.instance_profile_id)),
        ]);
        let role = credential_document(Some(&iam.credentials), &iam.credentials.last_updated);
        md.push(dir(
            "iam",
            vec![
                leaf_typed("info", info, APPLICATION_JSON),
                dir(
                    "security-credentials",
                    vec![leaf_typed(&iam.role_name, role, APPLICATION_JSON)],
                ),
            ],
        ));
    }
    let ec2_info = jackson_object(&[
        ("Code", json!("Success")),
        ("LastUpdated", json!(cfg.pending_time)),
        ("AccountId", json!(cfg.account_id)),
    ]);
    let ec2_instance = credential_document(cfg.identity_credentials.as_ref(), &cfg.pending_time);
    md.extend([
        dir(
            "identity-credentials",
            vec![dir(
                "ec2",
                vec![
                    leaf_typed("info", ec2_info, APPLICATION_JSON),
                    dir(
                        "security-credentials",
                        vec![leaf_typed("ec2-instance", ec2_instance, APPLICATION_JSON)],
                    ),
                ],
            )],
        ),
        leaf("instance-action", "none"),
        leaf("instance-id", cfg.instance_id.as_str()),
        leaf("instance-life-cycle", cfg.instance_life_cycle.as_str()),
        leaf("instance-type", cfg.instance_type.as_str()),
        leaf("local-hostname", cfg.local_hostname()),
        leaf("local-ipv4", local_ipv4.as_str()),
        leaf("mac", mac.as_str()),
        // EC2's answer on every Nitro instance.
        dir(
            "metrics",
            vec![leaf(
                "vhostmd",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            )],
        ),
        dir(
            "network",
            vec![dir(
                "interfaces",
                vec![dir("macs", vec![dir(&mac, interface(cfg))])],
            )],
        ),
        dir(
            "placement",
            vec![
                leaf("availability-zone", cfg.availability_zone.as_str()),
                leaf("availability-zone-id", cfg.availability_zone_id.as_str()),
                leaf("region", cfg.region.as_str()),
            ],
        ),
        leaf("profile", "default-hvm"),
    ]);
    if !cfg.public_keys.is_empty() {
        md.push(public_keys(cfg));
    }
    md.extend([
        leaf("reservation-id", cfg.reservation_id.as_str()),
        leaf("security-groups", cfg.security_groups.join("\n")),
        dir(
            "services",
            vec![leaf("domain", domain), leaf("partition", partition)],
        ),
        leaf("system", "nitro"),
    ]);
    if cfg.tags_enabled() {
        let tags = cfg.tags.iter().map(|(k, v)| leaf(k, v.as_str())).collect();
        md.push(dir("tags", vec![dir("instance", tags)]));
    }
    md
}

fn interface(cfg: &MetadataConfig) -> Vec<Entry> {
    vec![
        leaf("device-number", cfg.device_number.to_string()),
        leaf("interface-id", cfg.interface_id.as_str()),
        leaf("local-hostname", cfg.local_hostname()),
        leaf("local-ipv4s", cfg.local_ipv4.to_string()),
        leaf("mac", cfg.mac()),
        leaf("owner-id", cfg.account_id.as_str()),
        leaf("security-group-ids", cfg.security_group_ids.join("\n")),
        leaf("security-groups", cfg.security_groups.join("\n")),
        leaf("subnet-id", cfg.subnet_id.as_str()),
        leaf(
            "subnet-ipv4-cidr-block",
            cfg.subnet_ipv4_cidr_block.as_str(),
        ),
        leaf("vpc-id", cfg.vpc_id.as_str()),
        leaf("vpc-ipv4-cidr-block", cfg.vpc_ipv4_cidr_block.as_str()),
        leaf(
            "vpc-ipv4-cidr-blocks",
            cfg.vpc_ipv4_cidr_blocks().join("\n"),
        ),
    ]
}

/// public-keys/ lists "0=name"; the key itself is at 0/openssh-key. The
/// odd listing is what cloud-init's crawler expects: it turns "N=name" into
/// a fetch of N/openssh-key.
fn public_keys(cfg: &MetadataConfig) -> Entry {
    let keys = cfg
        .public_keys
        .iter()
        .enumerate()
        .map(|(i, key)| Entry {
            name: i.to_string(),
            listed_as: format!("{i}={}", key.name),
            node: Node::Dir(vec![leaf("openssh-key", key.openssh_key.as_str())]),
        })
        .collect();
    dir("public-keys", keys)
}

/// The signature entries cannot carry a real AWS signature (only AWS holds
/// the key), so they serve a fixed, clearly labelled base64 placeholder; a
/// guest verifying the identity document against AWS's public certificate
/// will reject it, which is the honest outcome.
fn signature_placeholder(kind: &str) -> String {
    STANDARD.encode(format!("flint: unsigned instance identity ({kind})").as_bytes())
}

fn instance_identity(cfg: &MetadataConfig) -> Vec<Entry> {
    let document = jackson_object(&[
        ("accountId", json!(cfg.account_id)),
        ("architecture", json!("x86_64")),
        ("availabilityZone", json!(cfg.availability_zone)),
        ("billingProducts", Value::Null),
        ("devpayProductCodes", Value::Null),
        ("marketplaceProductCodes", Value::Null),
        ("imageId", json!(cfg.ami_id)),
        ("instanceId", json!(cfg.instance_id)),
        ("instanceType", json!(cfg.instance_type)),
        ("kernelId", Value::Null),
        ("pendingTime", json!(cfg.pending_time)),
        ("privateIp", json!(cfg.local_ipv4.to_string())),
        ("ramdiskId", Value::Null),
        ("region", json!(cfg.region)),
        ("version", json!("2017-09-30")),
    ]);
    vec![
        leaf_typed("document", document, APPLICATION_JSON),
        leaf("pkcs7", signature_placeholder("pkcs7")),
        leaf("rsa2048", signature_placeholder("rsa2048")),
        leaf("signature", signature_placeholder("signature")),
    ]
}

/// The credential document botocore reads (it needs AccessKeyId,
/// SecretAccessKey, Token and Expiration). Without configured credentials
/// the key fields are empty rather than invented.
fn credential_document(creds: Option<&Credentials>, fallback_time: &str) -> String {
    let field = |f: fn(&Credentials) -> &String| creds.map_or(String::new(), |c| f(c).clone());
    jackson_object(&[
        ("Code", json!("Success")),
        (
            "LastUpdated",
            json!(creds.map_or(fallback_time, |c| &c.last_updated)),
        ),
        ("Type", json!("AWS-HMAC")),
        ("AccessKeyId", json!(field(|c| &c.access_key_id))),
        ("SecretAccessKey", json!(field(|c| &c.secret_access_key))),
        ("Token", json!(field(|c| &c.token))),
        (
            "Expiration",
            json!(creds.map_or(fallback_time, |c| &c.expiration)),
        ),
    ])
}

/// EC2's JSON documents come from Jackson's pretty printer: two-space
/// indent, `"key" : value`, fields in a fixed order, no final newline.
/// serde_json's pretty printer writes `"key": value`, hence this.
pub fn jackson_object(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("{\n");
    for (i, (key, value)) in fields.iter().enumerate() {
        out.push_str(&format!("  {} : {}", Value::from(*key), value));
        out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
    }
    out.push('}');
    out
}
