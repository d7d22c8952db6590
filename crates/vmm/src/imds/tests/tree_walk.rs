//! The tree: every listed entry answers, paths are sanitised, and the
//! values are the configured ones.

use std::collections::BTreeSet;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use flint_contract::metadata::{HttpTokens, MetadataUpdate};

/// Walks the whole tree from `/` the way a crawler does and returns every
/// path fetched. Asserts on the way: every listed entry answers 200, with
/// and without a trailing slash, and listings are clean.
fn walk(service: &mut Imds, token: Option<&str>) -> BTreeSet<String> {
    let now = Instant::now();
    let mut seen = BTreeSet::new();
    let mut queue = vec![("/".to_string(), true)];
    while let Some((path, is_dir)) = queue.pop() {
        assert!(seen.len() < 10_000, "tree walk does not terminate");
        if !seen.insert(path.clone()) {
            continue;
        }
        let response = get(service, &path, token, now);
        assert_eq!(response.status, 200, "{path}: {}", text(&response));
        let other = if path.len() > 1 && path.ends_with('/') {
            path.trim_end_matches('/').to_string()
        } else {
            format!("{path}/")
        };
        let again = get(service, &other, token, now);
        assert_eq!(
            (again.status, &again.body),
            (200, &response.body),
            "{other}"
        );
        if !is_dir {
            continue;
        }
        assert_eq!(response.content_type, "text/plain", "{path}");
        let listing = text(&response);
        assert!(
            !listing.ends_with('\n') && !listing.starts_with('\n'),
            "{path}: {listing:?}"
        );
        let lines: Vec<&str> = listing.split('\n').filter(|l| !l.is_empty()).collect();
        let unique: BTreeSet<&str> = lines.iter().copied().collect();
        assert_eq!(unique.len(), lines.len(), "{path} lists duplicates");
        let base = if path.ends_with('/') {
            path.clone()
        } else {
            format!("{path}/")
        };
        let depth = path.matches('/').count();
        for line in lines {
            // Roots list directories without a slash: versions at "/", and
            // dynamic + meta-data at a version root (user-data is a leaf).
            let (name, child_is_dir) = if let Some(dir) = line.strip_suffix('/') {
                (dir, true)
            } else if let Some((index, _key_name)) = line.split_once('=') {
                (index, true) // public-keys: "0=my-key" → 0/
            } else if path == "/" || (depth == 2 && line != "user-data") {
                (line, true)
            } else {
                (line, false)
            };
            let child = format!("{base}{name}");
            queue.push((
                if child_is_dir {
                    format!("{child}/")
                } else {
                    child
                },
                child_is_dir,
            ));
        }
    }
    seen
}

#[test]
fn imds_every_listed_entry_answers_for_several_configs() {
    let default_paths = walk(&mut imds(MetadataConfig::default()), None);
    assert!(
        default_paths
            .contains("/latest/meta-data/network/interfaces/macs/06:00:00:00:00:01/vpc-id")
    );
    assert!(default_paths.contains("/2009-04-04/meta-data/events/maintenance/scheduled"));
    assert!(
        !default_paths
            .iter()
            .any(|p| p.contains("user-data") || p.contains("/iam/"))
    );
    assert!(
        !default_paths
            .iter()
            .any(|p| p.contains("/tags/") || p.contains("public-keys"))
    );

    let full_paths = walk(&mut imds(full_config()), None);
    for expected in [
        "/latest/user-data",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/latest/meta-data/iam/security-credentials/web-role",
        "/latest/meta-data/iam/info",
        "/latest/meta-data/tags/instance/Name",
        "/latest/meta-data/block-device-mapping/ebs1",
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        "/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f/security-group-ids",
        "/2021-03-23/dynamic/instance-identity/signature",
    ] {
        assert!(full_paths.contains(expected), "{expected} not reached");
    }
    // Same tree under every version; 28 versions plus the root listing.
    assert_eq!((full_paths.len() - 1) % 28, 0);

    // Tags enabled with no tags: an empty listing that still answers.
    let mut config = MetadataConfig::default();
    config.metadata_options.instance_metadata_tags = Toggle::Enabled;
    let mut service = imds(config);
    walk(&mut service, None);
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/tags/instance/",
            None,
            Instant::now()
        )),
        ""
    );

    // IMDSv2 only: the same walk with a token.
    let mut config = full_config();
    config.metadata_options.http_tokens = HttpTokens::Required;
    let mut service = imds(config);
    let token = token(&mut service, Instant::now());
    assert_eq!(walk(&mut service, Some(&token)), full_paths);
}

#[test]
fn imds_listings_match_ec2() {
    let mut service = imds(full_config());
    let now = Instant::now();
    let mut listing = |path: &str| text(&get(&mut service, path, None, now));
    let root = listing("/");
    assert!(root.starts_with("1.0\n2007-01-19\n2007-03-01\n"));
    assert!(root.contains("\n2009-04-04\n") && root.contains("\n2016-09-02\n"));
    assert!(root.contains("\n2018-09-24\n") && root.contains("\n2021-03-23\n"));
    assert!(root.ends_with("\nlatest"));
    assert_eq!(listing("/latest"), "dynamic\nmeta-data\nuser-data");
    assert_eq!(listing("/latest/dynamic/"), "instance-identity/");
    assert_eq!(
        listing("/latest/dynamic/instance-identity"),
        "document\npkcs7\nrsa2048\nsignature"
    );
    assert_eq!(
        listing("/latest/meta-data/"),
        "ami-id\nami-launch-index\nami-manifest-path\nblock-device-mapping/\nevents/\nhostname\n\
         iam/\nidentity-credentials/\ninstance-action\ninstance-id\ninstance-life-cycle\n\
         instance-type\nlocal-hostname\nlocal-ipv4\nmac\nmetrics/\nnetwork/\nplacement/\nprofile\n\
         public-keys/\nreservation-id\nsecurity-groups\nservices/\nsystem\ntags/"
    );
    assert_eq!(listing("/latest/meta-data/public-keys/"), "0=my-key");
    assert_eq!(listing("/latest/meta-data/public-keys/0/"), "openssh-key");
    assert_eq!(
        listing("/latest/meta-data/public-keys/0/openssh-key"),
        TEST_KEY
    );
    assert_eq!(
        listing("/latest/meta-data/block-device-mapping/"),
        "ami\nebs1\nroot"
    );
    assert_eq!(
        listing("/latest/meta-data/block-device-mapping/ebs1"),
        "/dev/sdf"
    );
    assert_eq!(
        listing("/latest/meta-data/events/maintenance/scheduled"),
        "[]"
    );
    assert_eq!(
        listing("/latest/meta-data/iam/"),
        "info\nsecurity-credentials/"
    );
    assert_eq!(
        listing("/latest/meta-data/iam/security-credentials/"),
        "web-role"
    );
    assert_eq!(listing("/latest/meta-data/tags/instance"), "Name\nenv");
    assert_eq!(listing("/latest/meta-data/tags/instance/Name"), "web-1");
    assert_eq!(
        listing("/latest/meta-data/network/interfaces/macs/"),
        "0a:1b:2c:3d:4e:5f/"
    );
    let mac = "/latest/meta-data/network/interfaces/macs/0a:1b:2c:3d:4e:5f";
    assert_eq!(
        listing(&format!("{mac}/")),
        "device-number\ninterface-id\nlocal-hostname\nlocal-ipv4s\nmac\nowner-id\n\
         security-group-ids\nsecurity-groups\nsubnet-id\nsubnet-ipv4-cidr-block\nvpc-id\n\
         vpc-ipv4-cidr-block\nvpc-ipv4-cidr-blocks"
    );
    assert_eq!(listing(&format!("{mac}/security-groups")), "web\nssh");
    assert_eq!(
        listing(&format!("{mac}/vpc-ipv4-cidr-blocks")),
        "10.0.0.0/16\n10.1.0.0/16"
    );
    assert_eq!(listing(&format!("{mac}/owner-id")), "123456789012");
    assert_eq!(
        listing("/latest/meta-data/hostname"),
        "ip-10-0-1-25.eu-west-1.compute.internal"
    );
    assert_eq!(
        listing("/latest/meta-data/placement/"),
        "availability-zone\navailability-zone-id\nregion"
    );
    assert_eq!(listing("/latest/meta-data/placement/region"), "eu-west-1");
    assert_eq!(listing("/latest/meta-data/services/partition"), "aws");
    assert_eq!(
        listing("/latest/meta-data/services/domain"),
        "amazonaws.com"
    );
    assert_eq!(listing("/latest/meta-data/instance-action"), "none");
    assert_eq!(listing("/latest/meta-data/system"), "nitro");
    assert_eq!(listing("/latest/meta-data/profile"), "default-hvm");
    assert_eq!(
        listing("/latest/meta-data/instance-life-cycle"),
        "on-demand"
    );
    assert_eq!(listing("/latest/meta-data/ami-manifest-path"), "(unknown)");
    assert_eq!(listing("/latest/meta-data/mac"), "0a:1b:2c:3d:4e:5f");
}

#[test]
fn imds_identity_document_is_ec2s_pretty_json() {
    let mut service = imds(MetadataConfig::default());
    let response = get(
        &mut service,
        "/latest/dynamic/instance-identity/document",
        None,
        Instant::now(),
    );
    assert_eq!(response.content_type, "application/json");
    assert_eq!(
        text(&response),
        r#"{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0abcdef1234567890",
  "instanceId" : "i-1234567890abcdef0",
  "instanceType" : "t3.micro",
  "kernelId" : null,
  "pendingTime" : "2024-01-01T00:00:00Z",
  "privateIp" : "172.31.16.10",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}"#
    );
    let signature = text(&get(
        &mut service,
        "/latest/dynamic/instance-identity/signature",
        None,
        Instant::now(),
    ));
    assert_eq!(
        STANDARD.decode(&signature).unwrap(),
        b"flint: unsigned instance identity (signature)"
    );
}

#[test]
fn imds_user_data_is_raw_bytes_or_404() {
    let mut config = MetadataConfig::default();
    let now = Instant::now();
    let mut service = imds(config.clone());
    assert_eq!(
        get(&mut service, "/latest/user-data", None, now).status,
        404
    );
    assert_eq!(
        text(&get(&mut service, "/latest/", None, now)),
        "dynamic\nmeta-data"
    );
    config.user_data = Some(vec![0x1f, 0x8b, 0x08, 0x00, 0xff]); // gzip, not UTF-8
    let mut service = imds(config);
    let response = get(&mut service, "/2009-04-04/user-data", None, now);
    assert_eq!(
        (response.status, response.content_type),
        (200, "application/octet-stream")
    );
    assert_eq!(response.body, vec![0x1f, 0x8b, 0x08, 0x00, 0xff]);
    // Removed at run time: 404 again.
    let remove = MetadataUpdate {
        user_data_base64: Some(String::new()),
        ..Default::default()
    };
    service.apply(&remove).unwrap();
    assert_eq!(
        get(&mut service, "/latest/user-data", None, now).status,
        404
    );
}

#[test]
fn imds_paths_are_sanitised() {
    let mut service = imds(MetadataConfig::default());
    let now = Instant::now();
    let mut status = |target: &str| get(&mut service, target, None, now).status;
    for ok in [
        "/latest/meta-data/instance-id",
        "/latest/meta-data/instance-id/",
        "//latest///meta-data//instance-id",
        "/latest/meta-data/instance-id?x=1&y=/../..",
        "/latest/meta-data/instance-id#frag",
        "/latest/meta-data/instance%2Did",
        "http://169.254.169.254/latest/meta-data/instance-id",
        "HTTP://169.254.169.254",
        "/latest/meta-data",
        "/",
    ] {
        assert_eq!(status(ok), 200, "{ok}");
    }
    for not_found in [
        "/latest/meta-data/../user-data",
        "/latest/meta-data/./instance-id",
        "/latest/%2e%2e/meta-data",
        "/../../etc/passwd",
        "/LATEST/meta-data/",
        "/2030-01-01/meta-data/",
        "/latest/meta-data/instance-id/extra",
        "/latest/meta-data/nope",
        "/latest/api/",
        "/latest/meta-data/instance%2Fid",
    ] {
        assert_eq!(status(not_found), 404, "{not_found}");
    }
    // Non-ASCII anywhere, including where a scheme would end.
    for odd in [
        "/ééé",
        "/latest/meta-data/é",
        "httpé://x/latest",
        "http:/é/latest",
    ] {
        assert!(matches!(status(odd), 400 | 404), "{odd}");
    }
    for bad in [
        "*",
        "latest/meta-data",
        "/latest/meta-data/%zz",
        "/latest/%ff%fe",
        "/latest/%4",
    ] {
        assert_eq!(status(bad), 400, "{bad}");
    }
}

#[test]
fn imds_hostnames_and_partitions_follow_the_region() {
    let mut config = MetadataConfig::default();
    let now = Instant::now();
    let mut service = imds(config.clone());
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/local-hostname",
            None,
            now
        )),
        "ip-172-31-16-10.ec2.internal"
    );
    config.region = "cn-north-1".into();
    config.availability_zone = "cn-north-1a".into();
    config.hostname = Some("web.example.internal".into());
    let mut service = imds(config);
    assert_eq!(
        text(&get(&mut service, "/latest/meta-data/hostname", None, now)),
        "web.example.internal"
    );
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/local-hostname",
            None,
            now
        )),
        "ip-172-31-16-10.cn-north-1.compute.internal"
    );
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/services/partition",
            None,
            now
        )),
        "aws-cn"
    );
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/services/domain",
            None,
            now
        )),
        "amazonaws.com.cn"
    );
}
