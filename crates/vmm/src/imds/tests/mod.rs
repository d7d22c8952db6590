//! Tests of the IMDS as a guest sees it: requests in, responses out.

mod clients;
mod config;
mod parser;
mod token_matrix;
mod tree_walk;

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Imds, Request, Response};
use flint_contract::metadata::{
    Credentials, IamInstanceProfile, MetadataConfig, PublicKey, Toggle,
};

pub const TEST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlintTestKeyOnlyForUnitTests flint@test";

pub fn imds(config: MetadataConfig) -> Imds {
    Imds::new(config).expect("valid test config")
}

pub fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        method: method.to_string(),
        target: target.to_string(),
        minor_version: 1,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        keep_alive: true,
        body: Vec::new(),
    }
}

pub fn get(imds: &mut Imds, target: &str, token: Option<&str>, now: Instant) -> Response {
    let headers: Vec<(&str, &str)> = token
        .map(|t| vec![("X-aws-ec2-metadata-token", t)])
        .unwrap_or_default();
    imds.handle(&request("GET", target, &headers), now)
}

pub fn put_token(imds: &mut Imds, ttl: &str, now: Instant) -> Response {
    let req = request(
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
    );
    imds.handle(&req, now)
}

/// A token from a fresh PUT; panics unless the PUT answered 200.
pub fn token(imds: &mut Imds, now: Instant) -> String {
    let response = put_token(imds, "21600", now);
    assert_eq!(response.status, 200, "{}", text(&response));
    text(&response)
}

pub fn text(response: &Response) -> String {
    String::from_utf8(response.body.clone()).expect("UTF-8 body")
}

/// Everything a config can carry: IAM role, identity credentials, a key,
/// user data, tags (enabled), extra block devices and VPC CIDRs, outside
/// us-east-1.
pub fn full_config() -> MetadataConfig {
    MetadataConfig {
        instance_id: "i-0f1e2d3c4b5a69788".into(),
        ami_id: "ami-0123456789abcdef0".into(),
        instance_type: "m5.large".into(),
        region: "eu-west-1".into(),
        availability_zone: "eu-west-1b".into(),
        availability_zone_id: "euw1-az2".into(),
        local_ipv4: "10.0.1.25".parse().unwrap(),
        mac: "0A:1B:2C:3D:4E:5F".into(),
        subnet_ipv4_cidr_block: "10.0.1.0/24".into(),
        vpc_ipv4_cidr_block: "10.0.0.0/16".into(),
        vpc_ipv4_cidr_blocks: vec!["10.0.0.0/16".into(), "10.1.0.0/16".into()],
        security_groups: vec!["web".into(), "ssh".into()],
        security_group_ids: vec!["sg-0aaaaaaaaaaaaaaaa".into(), "sg-0bbbbbbbbbbbbbbbb".into()],
        public_keys: vec![PublicKey {
            name: "my-key".into(),
            openssh_key: TEST_KEY.into(),
        }],
        user_data: Some(b"#cloud-config\nhostname: flint-test\n".to_vec()),
        tags: BTreeMap::from([
            ("Name".to_string(), "web-1".to_string()),
            ("env".to_string(), "test".to_string()),
        ]),
        iam: Some(IamInstanceProfile {
            instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/web".into(),
            instance_profile_id: "AIPAEXAMPLEPROFILEID1".into(),
            role_name: "web-role".into(),
            credentials: Credentials {
                access_key_id: "ASIAEXAMPLEKEYID0001".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                token: "IQoJb3JpZ2luX2VjEXAMPLETOKEN".into(),
                expiration: "2030-01-01T06:00:00Z".into(),
                last_updated: "2030-01-01T00:00:00Z".into(),
            },
        }),
        block_device_mapping: BTreeMap::from([
            ("ami".to_string(), "/dev/xvda".to_string()),
            ("ebs1".to_string(), "/dev/sdf".to_string()),
            ("root".to_string(), "/dev/xvda".to_string()),
        ]),
        pending_time: "2030-01-01T00:00:00Z".into(),
        metadata_options: flint_contract::metadata::MetadataOptions {
            instance_metadata_tags: Toggle::Enabled,
            ..Default::default()
        },
        ..MetadataConfig::default()
    }
}
