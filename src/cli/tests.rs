use super::model::{model, operation_of_verb, option_name};
use super::shorthand::parse;
use super::xml_json;
use serde_json::json;

#[test]
fn names_follow_botocore() {
    assert_eq!(operation_of_verb("describe-key-pairs"), "DescribeKeyPairs");
    assert_eq!(option_name("InstanceIds"), "instance-ids");
    assert_eq!(option_name("DryRun"), "dry-run");
    assert_eq!(option_name("KeyPairIds"), "key-pair-ids");
    assert_eq!(option_name("IncludePublicKey"), "include-public-key");
}

#[test]
fn shorthand_forms() {
    assert_eq!(
        parse("Name=tag:env,Values=prod,dev").unwrap(),
        json!({"Name": "tag:env", "Values": ["prod", "dev"]})
    );
    assert_eq!(
        parse("ResourceType=instance,Tags=[{Key=a,Value=b},{Key=c,Value=}]").unwrap(),
        json!({"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}, {"Key": "c", "Value": ""}]})
    );
    assert_eq!(
        parse("Key=\"a,b\",Value=c").unwrap(),
        json!({"Key": "a,b", "Value": "c"})
    );
    assert_eq!(parse("[{\"Key\":\"k\"}]").unwrap(), json!([{"Key": "k"}]));
    for bad in ["Name", "=x", "Tags=[{Key=a", "Key='open"] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn replies_become_aws_cli_json() {
    let m = model().expect("model loads");
    let xml = br#"<?xml version="1.0"?><DescribeKeyPairsResponse xmlns="x"><requestId>r</requestId>
      <keySet><item><keyPairId>key-1</keyPairId><keyName>a &amp; b</keyName></item></keySet>
      </DescribeKeyPairsResponse>"#;
    let doc = xml_json::parse(xml).unwrap();
    let out = m.shape(&m.operations["DescribeKeyPairs"][1]).unwrap();
    let mut text = String::new();
    xml_json::print(&xml_json::convert(m, &doc, out), 0, &mut text);
    assert_eq!(
        text,
        "{\n    \"KeyPairs\": [\n        {\n            \"KeyPairId\": \"key-1\",\n            \"KeyName\": \"a & b\"\n        }\n    ]\n}"
    );
    assert!(xml_json::parse(b"<a><b></a>").is_err());
    assert!(xml_json::parse(b"").is_err());
}
