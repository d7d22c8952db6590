//! The metadata document and its updates as the daemon writes them and
//! the VMM reads them.

use super::*;

#[test]
fn the_document_round_trips_with_its_user_data() {
    let config = MetadataConfig {
        user_data: Some(b"#!/bin/sh\necho hi\n\x00\xff".to_vec()),
        tags: BTreeMap::from([("Name".into(), "web".into())]),
        public_keys: vec![PublicKey {
            name: "k".into(),
            openssh_key: "ssh-ed25519 AAAA k".into(),
        }],
        ..MetadataConfig::default()
    };
    config.validate().unwrap();
    let text = serde_json::to_string(&config).unwrap();
    assert!(text.contains(r#""user_data_base64":"IyEvYmluL3NoCmVjaG8gaGkKAP8=""#));
    assert_eq!(MetadataConfig::from_json(&text).unwrap(), config);
    // Without user data the field is not written.
    let bare = serde_json::to_string(&MetadataConfig::default()).unwrap();
    assert!(!bare.contains("user_data"));
}

#[test]
fn updates_carry_only_what_changes() {
    let tags = MetadataUpdate {
        tags: Some(BTreeMap::from([("Name".into(), "db".into())])),
        ..MetadataUpdate::default()
    };
    let text = serde_json::to_string(&tags).unwrap();
    assert_eq!(text, r#"{"tags":{"Name":"db"}}"#);
    assert_eq!(serde_json::from_str::<MetadataUpdate>(&text).unwrap(), tags);
    let options = MetadataOptions {
        http_tokens: HttpTokens::Required,
        http_put_response_hop_limit: 2,
        ..MetadataOptions::default()
    };
    let update = MetadataUpdate {
        metadata_options: Some(options.into()),
        ..MetadataUpdate::default()
    };
    let text = serde_json::to_string(&update).unwrap();
    assert_eq!(
        text,
        r#"{"metadata_options":{"http_tokens":"required","http_endpoint":"enabled","http_put_response_hop_limit":2,"instance_metadata_tags":"disabled"}}"#
    );
    let read: MetadataUpdate = serde_json::from_str(&text).unwrap();
    assert_eq!(read, update);
    let applied = MetadataConfig::default().updated(&read).unwrap();
    assert_eq!(applied.metadata_options, options);
    // null and absent fields are read alike.
    let nulls: MetadataUpdate =
        serde_json::from_str(r#"{"tags":null,"user_data_base64":null}"#).unwrap();
    assert_eq!(nulls, MetadataUpdate::default());
    let mapping = MetadataUpdate {
        block_device_mapping: Some(BTreeMap::from([("ebs1".into(), "sdf".into())])),
        ..MetadataUpdate::default()
    };
    let text = serde_json::to_string(&mapping).unwrap();
    assert_eq!(text, r#"{"block_device_mapping":{"ebs1":"sdf"}}"#);
    let applied = MetadataConfig::default()
        .updated(&serde_json::from_str(&text).unwrap())
        .unwrap();
    assert_eq!(applied.block_device_mapping["ebs1"], "sdf");
}
