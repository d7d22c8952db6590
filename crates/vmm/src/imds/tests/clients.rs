//! The request sequences of cloud-init 22.4's Ec2 datasource and of
//! botocore's InstanceMetadataFetcher, replayed against the service, and a
//! raw-bytes round trip through the HTTP parser.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::*;
use crate::imds::HttpConnection;
use flint_contract::metadata::HttpTokens;

/// cloud-init's MetadataMaterializer: "x/" is a child directory, "N=name"
/// means N/openssh-key stored under `name`, "security-credentials" is
/// skipped, leaves that look like JSON objects are parsed and multi-line
/// leaves become lists. Every fetch must answer 200.
fn materialize(service: &mut Imds, base: &str, token: &str, now: Instant) -> Value {
    let response = get(service, base, Some(token), now);
    assert_eq!(response.status, 200, "{base}");
    let listing = text(&response);
    let base = base.trim_end_matches('/');
    let mut out = Map::new();
    for field in listing.lines().map(str::trim).filter(|f| !f.is_empty()) {
        let name = field.trim_end_matches('/');
        if name == "security-credentials" {
            continue;
        }
        if field.ends_with('/') {
            let child = materialize(service, &format!("{base}/{name}/"), token, now);
            out.insert(name.to_string(), child);
            continue;
        }
        let (key, resource) = match field.split_once('=') {
            Some((index, key_name)) if index.parse::<u32>().is_ok() => {
                (key_name.to_string(), format!("{index}/openssh-key"))
            }
            _ => (field.to_string(), field.to_string()),
        };
        let leaf = get(service, &format!("{base}/{resource}"), Some(token), now);
        assert_eq!(leaf.status, 200, "{base}/{resource}");
        let blob = text(&leaf);
        let value = if blob.trim().starts_with('{') && blob.trim().ends_with('}') {
            serde_json::from_str(&blob).expect("leaf that looks like JSON is JSON")
        } else if blob.contains('\n') {
            Value::from(blob.lines().collect::<Vec<_>>())
        } else {
            Value::from(blob)
        };
        out.insert(key, value);
    }
    Value::Object(out)
}

#[test]
fn imds_cloud_init_22_4_crawl() {
    let mut config = full_config();
    config.metadata_options.http_tokens = HttpTokens::Required;
    let mut service = imds(config);
    let now = Instant::now();
    // _maybe_fetch_api_token: PUT {url}/latest/api/token, 6 h TTL.
    let put = request(
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
    );
    let response = service.handle(&put, now);
    assert_eq!(response.status, 200);
    let token = text(&response);
    // get_metadata_api_version: the first extended version that has
    // meta-data/instance-id wins.
    for version in ["2021-03-23", "2018-09-24", "2016-09-02", "2009-04-04"] {
        let probe = get(
            &mut service,
            &format!("/{version}/meta-data/instance-id"),
            Some(&token),
            now,
        );
        assert_eq!(text(&probe), "i-0f1e2d3c4b5a69788", "{version}");
    }
    let version = "2021-03-23";
    let user_data = get(
        &mut service,
        &format!("/{version}/user-data"),
        Some(&token),
        now,
    );
    assert_eq!(user_data.body, b"#cloud-config\nhostname: flint-test\n");

    let md = materialize(&mut service, &format!("/{version}/meta-data/"), &token, now);
    assert_eq!(md["instance-id"], "i-0f1e2d3c4b5a69788");
    assert_eq!(md["ami-launch-index"], "0");
    assert_eq!(md["local-ipv4"], "10.0.1.25");
    assert_eq!(md["public-keys"], json!({ "my-key": TEST_KEY }));
    assert_eq!(md["placement"]["availability-zone"], "eu-west-1b");
    assert_eq!(md["block-device-mapping"]["root"], "/dev/xvda");
    assert_eq!(md["security-groups"], json!(["web", "ssh"]));
    assert_eq!(
        md["iam"]["info"]["InstanceProfileArn"],
        "arn:aws:iam::123456789012:instance-profile/web"
    );
    assert!(
        md["iam"].get("security-credentials").is_none(),
        "cloud-init skips credentials"
    );
    assert_eq!(
        md["tags"]["instance"],
        json!({ "Name": "web-1", "env": "test" })
    );
    assert_eq!(md["events"]["maintenance"]["scheduled"], "[]");
    let nic = &md["network"]["interfaces"]["macs"]["0a:1b:2c:3d:4e:5f"];
    assert_eq!(nic["device-number"], "0");
    assert_eq!(nic["local-ipv4s"], "10.0.1.25");
    assert_eq!(nic["subnet-ipv4-cidr-block"], "10.0.1.0/24");
    assert_eq!(nic["vpc-id"], "vpc-0123456789abcdef0");

    // get_instance_identity crawls dynamic/instance-identity (no slash).
    let identity = materialize(
        &mut service,
        &format!("/{version}/dynamic/instance-identity"),
        &token,
        now,
    );
    let document = &identity["document"];
    assert_eq!(document["instanceId"], "i-0f1e2d3c4b5a69788");
    assert_eq!(document["region"], "eu-west-1");
    assert_eq!(document["availabilityZone"], "eu-west-1b");
    assert_eq!(document["privateIp"], "10.0.1.25");
    assert_eq!(document["billingProducts"], Value::Null);
}

#[test]
fn imds_cloud_init_sees_403_when_the_endpoint_is_disabled() {
    let mut config = MetadataConfig::default();
    config.metadata_options.http_endpoint = Toggle::Disabled;
    let mut service = imds(config);
    // cloud-init's _imds_exception_cb: 403 → "HTTP endpoint is disabled".
    assert_eq!(put_token(&mut service, "21600", Instant::now()).status, 403);
}

#[test]
fn imds_botocore_credential_and_region_fetch() {
    let mut service = imds(full_config());
    let now = Instant::now();
    // botocore sends lower-case header names.
    let put = request(
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    );
    let token = text(&service.handle(&put, now));
    let role = get(
        &mut service,
        "/latest/meta-data/iam/security-credentials/",
        Some(&token),
        now,
    );
    // The whole body is taken as the role name.
    assert_eq!(text(&role), "web-role");
    let creds = get(
        &mut service,
        "/latest/meta-data/iam/security-credentials/web-role",
        Some(&token),
        now,
    );
    assert_eq!(creds.content_type, "application/json");
    assert_eq!(
        text(&creds),
        "{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2030-01-01T00:00:00Z\",\n  \
         \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"ASIAEXAMPLEKEYID0001\",\n  \
         \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",\n  \
         \"Token\" : \"IQoJb3JpZ2luX2VjEXAMPLETOKEN\",\n  \"Expiration\" : \"2030-01-01T06:00:00Z\"\n}"
    );
    let parsed: Value = serde_json::from_str(&text(&creds)).unwrap();
    for field in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(parsed[field].is_string(), "{field}");
    }
    // IMDSRegionProvider asks with a trailing slash and drops the letter.
    let zone = get(
        &mut service,
        "/latest/meta-data/placement/availability-zone/",
        Some(&token),
        now,
    );
    assert_eq!(text(&zone), "eu-west-1b");
    // IMDSv1 fallback (no token) works while tokens are optional.
    let v1 = get(
        &mut service,
        "/latest/meta-data/iam/security-credentials/",
        None,
        now,
    );
    assert_eq!(text(&v1), "web-role");
}

#[test]
fn imds_without_a_role_has_no_iam_directory() {
    let mut service = imds(MetadataConfig::default());
    let now = Instant::now();
    assert_eq!(
        get(&mut service, "/latest/meta-data/iam/", None, now).status,
        404
    );
    assert_eq!(
        get(
            &mut service,
            "/latest/meta-data/iam/security-credentials/",
            None,
            now
        )
        .status,
        404
    );
    let ec2 = get(
        &mut service,
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
        None,
        now,
    );
    let doc: Value = serde_json::from_str(&text(&ec2)).unwrap();
    assert_eq!(doc["Code"], "Success");
    assert_eq!(doc["AccessKeyId"], "");
}

#[test]
fn imds_raw_bytes_round_trip_with_pipelining() {
    let mut service = imds(MetadataConfig::default());
    let mut connection = HttpConnection::new();
    let now = Instant::now();
    let stream = b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n\
                   X-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n\
                   GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n\
                   GET /latest/meta-data/nope HTTP/1.1\r\nConnection: close\r\n\r\n\
                   GET /ignored-after-close HTTP/1.1\r\n\r\n";
    let mut requests = Vec::new();
    for chunk in stream.chunks(7) {
        requests.extend(connection.feed(chunk).unwrap());
    }
    assert_eq!(requests.len(), 3);
    let answers: Vec<Response> = requests.iter().map(|r| service.handle(r, now)).collect();
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].ip_ttl, Some(1));
    assert_eq!(
        String::from_utf8(answers[1].to_bytes()).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nServer: EC2ws\r\n\r\n172.31.16.10"
    );
    assert_eq!(
        String::from_utf8(answers[2].to_bytes()).unwrap(),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 15\r\nServer: EC2ws\r\n\
         Connection: close\r\n\r\n404 - Not Found"
    );
}
