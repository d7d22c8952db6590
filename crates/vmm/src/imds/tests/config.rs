//! The metadata document: parsing, defaults, validation, runtime updates.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use flint_contract::metadata::{HttpTokens, MetadataError, MetadataOptionsUpdate, MetadataUpdate};

fn invalid_field(json: &str) -> String {
    match MetadataConfig::from_json(json) {
        Err(MetadataError::Invalid { field, .. }) => field,
        other => panic!("{json}: expected a validation error, got {other:?}"),
    }
}

#[test]
fn imds_empty_document_is_the_default_instance() {
    let config = MetadataConfig::from_json("{}").unwrap();
    assert_eq!(config, MetadataConfig::default());
    assert_eq!(config.metadata_options.http_put_response_hop_limit, 1);
    assert_eq!(config.metadata_options.http_tokens, HttpTokens::Optional);
    assert_eq!(config.metadata_options.http_endpoint, Toggle::Enabled);
    assert_eq!(
        config.metadata_options.instance_metadata_tags,
        Toggle::Disabled
    );
    assert_eq!(config.local_hostname(), "ip-172-31-16-10.ec2.internal");
}

#[test]
fn imds_full_document_parses() {
    let json = r#"{
        "instance_id": "i-0abc",
        "region": "eu-central-1",
        "availability_zone": "eu-central-1c",
        "local_ipv4": "10.9.8.7",
        "public_keys": [{"name": "k", "openssh_key": "ssh-rsa AAAA k"}],
        "user_data_base64": "I2Nsb3VkLWNvbmZpZwo=",
        "tags": {"Name": "db"},
        "block_device_mapping": {"ami": "/dev/xvda", "root": "/dev/xvda", "ebs1": "/dev/sdf"},
        "metadata_options": {"http_tokens": "required", "http_put_response_hop_limit": 2,
                             "instance_metadata_tags": "enabled"}
    }"#;
    let config = MetadataConfig::from_json(json).unwrap();
    assert_eq!(config.user_data.as_deref(), Some(&b"#cloud-config\n"[..]));
    assert_eq!(
        config.local_hostname(),
        "ip-10-9-8-7.eu-central-1.compute.internal"
    );
    assert_eq!(config.hostname(), config.local_hostname());
    assert_eq!(config.metadata_options.http_tokens, HttpTokens::Required);
    assert_eq!(config.metadata_options.http_endpoint, Toggle::Enabled);
    assert_eq!(config.block_device_mapping["ebs1"], "/dev/sdf");
    // Serializes back to an equal document (user data as base64).
    let text = serde_json::to_string(&config).unwrap();
    assert!(text.contains("\"user_data_base64\":\"I2Nsb3VkLWNvbmZpZwo=\""));
    assert_eq!(MetadataConfig::from_json(&text).unwrap(), config);
    assert_eq!(
        MetadataConfig::from_json(&serde_json::to_string(&full_config()).unwrap()).unwrap(),
        full_config()
    );
}

#[test]
fn imds_unknown_fields_and_bad_types_are_json_errors() {
    for json in [
        r#"{"instance_idd": "i-0abc"}"#,
        r#"{"metadata_options": {"http_tokens": "sometimes"}}"#,
        r#"{"metadata_options": {"hop_limit": 2}}"#,
        r#"{"public_keys": [{"name": "k", "openssh_key": "x", "extra": 1}]}"#,
        r#"{"local_ipv4": "10.0.0.300"}"#,
        r#"{"user_data_base64": "not base64!"}"#,
        r#"{"metadata_options": {"http_put_response_hop_limit": 300}}"#,
        "[1, 2]",
        "",
    ] {
        let error = MetadataConfig::from_json(json).unwrap_err();
        assert!(matches!(error, MetadataError::Json(_)), "{json}: {error}");
    }
    let error = MetadataConfig::from_json(r#"{"instance_idd": "i-0abc"}"#).unwrap_err();
    assert!(error.to_string().contains("instance_idd"), "{error}");
}

/// The metadata file's `user_data_base64` is read leniently (it may be
/// written by hand): wrapped lines, missing padding and the URL-safe
/// alphabet are accepted; characters outside base64, a dangling final
/// character and data after the padding are not.
#[test]
fn imds_user_data_base64_is_read_leniently() {
    let user_data = |b64: &str| {
        let json = format!(r#"{{"user_data_base64": {}}}"#, serde_json::json!(b64));
        MetadataConfig::from_json(&json).map(|c| c.user_data)
    };
    assert_eq!(user_data("Zm9v\nYmE").unwrap(), Some(b"fooba".to_vec()));
    assert_eq!(user_data("Zm9vYmE=").unwrap(), Some(b"fooba".to_vec()));
    assert_eq!(user_data("-_8=").unwrap(), Some(vec![0xfb, 0xff]));
    assert_eq!(user_data("+/8=").unwrap(), Some(vec![0xfb, 0xff]));
    assert_eq!(user_data("").unwrap(), None);
    for bad in ["Zm9v!", "Zm9vY", "Zg==Zg"] {
        let error = user_data(bad).unwrap_err().to_string();
        assert!(error.contains("invalid base64"), "{bad}: {error}");
    }
}

#[test]
fn imds_user_data_is_limited_to_16_kib() {
    let encode = |n: usize| STANDARD.encode(vec![b'x'; n]);
    let at_limit = format!(r#"{{"user_data_base64": "{}"}}"#, encode(16 * 1024));
    assert_eq!(
        MetadataConfig::from_json(&at_limit)
            .unwrap()
            .user_data
            .unwrap()
            .len(),
        16384
    );
    let over = format!(r#"{{"user_data_base64": "{}"}}"#, encode(16 * 1024 + 1));
    let error = MetadataConfig::from_json(&over).unwrap_err().to_string();
    assert!(error.contains("16384"), "{error}");
    let config = MetadataConfig {
        user_data: Some(vec![0; 16 * 1024 + 1]),
        ..MetadataConfig::default()
    };
    assert!(config.validate().is_err());
}

#[test]
fn imds_validation_names_the_bad_field() {
    let cases = [
        (r#"{"instance_id": "x-123"}"#, "instance_id"),
        (r#"{"instance_id": "i-XYZ"}"#, "instance_id"),
        (r#"{"ami_id": "ami-"}"#, "ami_id"),
        (r#"{"account_id": "12345"}"#, "account_id"),
        (
            r#"{"availability_zone": "eu-west-1a"}"#,
            "availability_zone",
        ),
        (r#"{"availability_zone": "us-east-1"}"#, "availability_zone"),
        (
            r#"{"instance_life_cycle": "forever"}"#,
            "instance_life_cycle",
        ),
        (r#"{"mac": "06:00:00:00:00"}"#, "mac"),
        (
            r#"{"subnet_ipv4_cidr_block": "10.0.0.0/33"}"#,
            "subnet_ipv4_cidr_block",
        ),
        (
            r#"{"vpc_ipv4_cidr_blocks": ["10.0.0.0"]}"#,
            "vpc_ipv4_cidr_blocks[0]",
        ),
        (r#"{"security_groups": []}"#, "security_groups"),
        (r#"{"security_groups": ["a\nb"]}"#, "security_groups[0]"),
        (
            r#"{"security_group_ids": ["group"]}"#,
            "security_group_ids[0]",
        ),
        (
            r#"{"public_keys": [{"name": "k", "openssh_key": "ssh-rsa A\n"}]}"#,
            "public_keys[0].openssh_key",
        ),
        (r#"{"tags": {"has space": "v"}}"#, "tags[\"has space\"]"),
        (r#"{"tags": {"a/b": "v"}}"#, "tags[\"a/b\"]"),
        (r#"{"tags": {"_index": "v"}}"#, "tags[\"_index\"]"),
        (
            r#"{"block_device_mapping": {"ebs1": "/dev/sd f"}}"#,
            "block_device_mapping[\"ebs1\"]",
        ),
        (r#"{"pending_time": "yesterday"}"#, "pending_time"),
        (r#"{"hostname": "a b"}"#, "hostname"),
        (
            r#"{"metadata_options": {"http_put_response_hop_limit": 0}}"#,
            "metadata_options.http_put_response_hop_limit",
        ),
        (
            r#"{"metadata_options": {"http_put_response_hop_limit": 65}}"#,
            "metadata_options.http_put_response_hop_limit",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(invalid_field(json), field, "{json}");
    }
    let too_many_tags: Vec<String> = (0..51).map(|i| format!("\"k{i}\": \"v\"")).collect();
    assert_eq!(
        invalid_field(&format!("{{\"tags\": {{{}}}}}", too_many_tags.join(","))),
        "tags"
    );
    let iam = r#"{"iam": {"instance_profile_arn": "arn:aws:iam::1:instance-profile/p",
        "instance_profile_id": "AIPA1", "role_name": "bad/role",
        "credentials": {"access_key_id": "A", "secret_access_key": "S", "token": "T",
                        "expiration": "2030-01-01T00:00:00Z", "last_updated": "2030-01-01T00:00:00Z"}}}"#;
    assert_eq!(invalid_field(iam), "iam.role_name");
}

#[test]
fn imds_updates_replace_and_merge() {
    let mut service = imds(MetadataConfig::default());
    let now = Instant::now();
    assert_eq!(
        get(&mut service, "/latest/meta-data/tags/instance/", None, now).status,
        404
    );
    let update: MetadataUpdate = serde_json::from_str(
        r#"{"tags": {"Name": "renamed"},
            "metadata_options": {"instance_metadata_tags": "enabled"},
            "block_device_mapping": {"ami": "/dev/xvda", "root": "/dev/xvda", "ebs2": "/dev/sdg"},
            "user_data_base64": "aGVsbG8="}"#,
    )
    .unwrap();
    service.apply(&update).unwrap();
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/tags/instance/Name",
            None,
            now
        )),
        "renamed"
    );
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/block-device-mapping/",
            None,
            now
        )),
        "ami\nebs2\nroot"
    );
    assert_eq!(
        text(&get(&mut service, "/latest/user-data", None, now)),
        "hello"
    );
    // Options merge field by field.
    let options = service.config().metadata_options;
    assert_eq!(options.http_tokens, HttpTokens::Optional);
    assert_eq!(options.http_put_response_hop_limit, 1);
    // Tags replaced wholesale; disabling hides them again.
    let update = MetadataUpdate {
        tags: Some(Default::default()),
        metadata_options: Some(MetadataOptionsUpdate {
            instance_metadata_tags: Some(Toggle::Disabled),
            ..Default::default()
        }),
        ..Default::default()
    };
    service.apply(&update).unwrap();
    assert!(service.config().tags.is_empty());
    assert_eq!(
        get(&mut service, "/latest/meta-data/tags/", None, now).status,
        404
    );
}

#[test]
fn imds_rejected_update_changes_nothing() {
    let mut service = imds(full_config());
    let before = service.config().clone();
    let bad_hop = MetadataUpdate {
        tags: Some([("fine".to_string(), "x".to_string())].into()),
        metadata_options: Some(MetadataOptionsUpdate {
            http_put_response_hop_limit: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(service.apply(&bad_hop).is_err());
    let bad_user_data = MetadataUpdate {
        user_data_base64: Some("%%%".into()),
        ..Default::default()
    };
    let error = service.apply(&bad_user_data).unwrap_err();
    assert!(error.to_string().contains("user_data_base64"), "{error}");
    assert_eq!(service.config(), &before);
    let now = Instant::now();
    assert_eq!(
        text(&get(
            &mut service,
            "/latest/meta-data/tags/instance",
            None,
            now
        )),
        "Name\nenv"
    );
    for json in [
        r#"{"instance_id": "i-1"}"#,
        r#"{"metadata_options": {"bogus": 1}}"#,
    ] {
        assert!(
            serde_json::from_str::<MetadataUpdate>(json).is_err(),
            "{json}"
        );
    }
}
