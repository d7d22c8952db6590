use super::super::error::Ec2Error;
use super::super::form::{MAX_BODY_BYTES, MAX_PARAMS, decode_component};
use super::super::request::*;

fn parse(body: &str) -> Result<Ec2Request, RequestError> {
    Ec2Request::parse(body.as_bytes())
}

fn ok(body: &str) -> Ec2Request {
    parse(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

#[test]
fn action_version_and_scalars() {
    let r = ok("Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&InstanceType=t3.micro");
    assert_eq!(r.action(), "RunInstances");
    assert_eq!(r.version(), Some("2016-11-15"));
    assert!(r.is_current_version());
    assert_eq!(r.string("ImageId"), Some("ami-12345678"));
    assert_eq!(r.required_string("InstanceType"), Ok("t3.micro"));
    assert_eq!(r.string("KeyName"), None);
    assert_eq!(
        r.param_names().collect::<Vec<_>>(),
        ["ImageId", "InstanceType"]
    );
}

#[test]
fn other_versions_are_accepted_and_recorded() {
    let r = ok("Action=DescribeInstances&Version=2014-10-01");
    assert_eq!(r.version(), Some("2014-10-01"));
    assert!(!r.is_current_version());
    let r = ok("Action=DescribeInstances");
    assert_eq!(r.version(), None);
    assert!(r.is_current_version());
}

#[test]
fn percent_decoding_and_plus_as_space() {
    let r = ok("Action=X&KeyName=my+key%20%26%3D%2B&Value=%C3%BCn%C3%AFcode&Empty=&Bare");
    assert_eq!(r.string("KeyName"), Some("my key &=+"));
    assert_eq!(r.string("Value"), Some("ünïcode"));
    assert_eq!(r.string("Empty"), Some(""));
    assert_eq!(r.string("Bare"), Some(""));
    let r = ok("&&Action=X&&A=1&");
    assert_eq!(r.string("A"), Some("1"));
    assert_eq!(decode_component(b"%41%6a%6A"), Ok("Ajj".to_string()));
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [
        "Action=X&A=%",
        "Action=X&A=%4",
        "Action=X&A=%zz",
        "Action=X&A=%C3",
        "Action=X&=v",
        "Action=X&%FF=1",
    ] {
        match parse(body) {
            Err(RequestError::Malformed(_)) => {}
            other => panic!("{body:?}: {other:?}"),
        }
    }
    let e: Ec2Error = parse("Action=X&A=%zz").unwrap_err().into();
    assert_eq!((e.code, e.status), ("MalformedQueryString", 400));
}

#[test]
fn repeated_keys_are_errors() {
    for body in [
        "Action=X&A=1&A=2",
        "Action=X&Action=Y",
        "Action=X&Version=1&Version=2",
        "Action=X&A=1&A=1",
    ] {
        assert!(
            matches!(parse(body), Err(RequestError::DuplicateParameter(_))),
            "{body}"
        );
    }
    let e: Ec2Error = parse("Action=X&A=1&A=2").unwrap_err().into();
    assert_eq!(e.code, "InvalidQueryParameter");
}

#[test]
fn missing_or_empty_action() {
    for body in [
        "",
        "Version=2016-11-15",
        "Action=&Version=2016-11-15",
        "Action",
    ] {
        assert_eq!(
            parse(body).unwrap_err(),
            RequestError::MissingAction,
            "{body:?}"
        );
    }
    let e: Ec2Error = RequestError::MissingAction.into();
    assert_eq!((e.code, e.status), ("MissingAction", 400));
}

#[test]
fn body_and_parameter_count_limits() {
    let mut body = "Action=X&UserData=".to_string();
    body.push_str(&"A".repeat(MAX_BODY_BYTES - body.len()));
    assert!(parse(&body).is_ok());
    body.push('A');
    let err = parse(&body).unwrap_err();
    assert!(matches!(err, RequestError::BodyTooLarge { .. }), "{err:?}");
    assert_eq!(Ec2Error::from(err).status, 413);

    let many: Vec<String> = (0..MAX_PARAMS - 1).map(|i| format!("P{i}=1")).collect();
    assert!(parse(&format!("Action=X&{}", many.join("&"))).is_ok());
    let err = parse(&format!("Action=X&Extra=1&{}", many.join("&"))).unwrap_err();
    assert_eq!(err, RequestError::TooManyParameters { max: MAX_PARAMS });
}

#[test]
fn booleans() {
    let r = ok("Action=X&A=true&B=false&C=True&D=FALSE&E=yes&F=1&G=");
    assert_eq!(r.bool("A"), Ok(Some(true)));
    assert_eq!(r.bool("B"), Ok(Some(false)));
    assert_eq!(r.bool("C"), Ok(Some(true)));
    assert_eq!(r.bool("D"), Ok(Some(false)));
    assert_eq!(r.bool("Z"), Ok(None));
    for name in ["E", "F", "G"] {
        let e: Ec2Error = r.bool(name).unwrap_err().into();
        assert_eq!(e.code, "InvalidParameterValue", "{name}");
        assert!(e.message.contains(name), "{}", e.message);
    }
}

#[test]
fn integers_with_ranges() {
    let r = ok("Action=X&A=5&B=0&C=-3&D=1001&E=abc&F=&G=1.5&H=+5&I=99999999999999999999999&J=-");
    assert_eq!(r.int("A", 1..=1000), Ok(Some(5)));
    assert_eq!(r.int("C", -5..=5), Ok(Some(-3)));
    assert_eq!(r.int("Missing", 1..=10), Ok(None));
    for name in ["B", "D", "E", "F", "G", "H", "I", "J"] {
        let err = r.int(name, 1..=1000).unwrap_err();
        assert!(
            matches!(&err, RequestError::InvalidValue { name: n, .. } if n == name),
            "{name}: {err:?}"
        );
        let e: Ec2Error = err.into();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("from 1 to 1000"), "{}", e.message);
    }
}

#[test]
fn required_strings() {
    let r = ok("Action=X&Empty=&A=a");
    assert_eq!(r.required_string("A"), Ok("a"));
    assert_eq!(
        r.required_string("Empty"),
        Err(RequestError::MissingParameter("Empty".into()))
    );
    let e: Ec2Error = r.required_string("ImageId").unwrap_err().into();
    assert_eq!(e.code, "MissingParameter");
    assert!(e.message.ends_with("ImageId"), "{}", e.message);
}

#[test]
fn string_lists_in_index_order() {
    let r = ok(
        "Action=X&InstanceId.2=i-b&InstanceId.10=i-j&InstanceId.1=i-a&InstanceId.3=i-c\
        &InstanceId.4=i-d&InstanceId.5=i-e&InstanceId.6=i-f&InstanceId.7=i-g&InstanceId.8=i-h&InstanceId.9=i-i",
    );
    assert_eq!(
        r.string_list("InstanceId").unwrap(),
        [
            "i-a", "i-b", "i-c", "i-d", "i-e", "i-f", "i-g", "i-h", "i-i", "i-j"
        ]
    );
    assert_eq!(r.string_list("Owner").unwrap(), Vec::<&str>::new());
    // A parameter whose name merely starts the same is not an item.
    let r = ok("Action=X&InstanceIds=1&InstanceId.1=i-a");
    assert_eq!(r.string_list("InstanceId").unwrap(), ["i-a"]);
}

#[test]
fn list_gaps_and_bad_indexes_are_errors() {
    for body in [
        "Action=X&InstanceId.1=a&InstanceId.3=c",
        "Action=X&InstanceId.2=b",
        "Action=X&InstanceId.0=a",
        "Action=X&InstanceId.01=a",
        "Action=X&InstanceId.1001=a",
        "Action=X&InstanceId.x=a",
        "Action=X&InstanceId.=a",
        "Action=X&InstanceId.-1=a",
        "Action=X&InstanceId.1=a&InstanceId.1.Foo=b",
    ] {
        let err = ok(body).string_list("InstanceId").unwrap_err();
        assert!(
            matches!(err, RequestError::InvalidList(_)),
            "{body}: {err:?}"
        );
        assert_eq!(Ec2Error::from(err).code, "InvalidParameter");
    }
    let message = ok("Action=X&InstanceId.1=a&InstanceId.3=c")
        .string_list("InstanceId")
        .unwrap_err()
        .to_string();
    assert!(message.contains("InstanceId.2"), "{message}");
    let r = ok("Action=X&InstanceId.1000=a");
    assert!(r.string_list("InstanceId").is_err(), "1..999 are missing");
}

#[test]
fn a_full_list_of_1000_is_accepted() {
    let items: Vec<String> = (1..=1000)
        .map(|i| format!("InstanceId.{i}=i-{i:08x}"))
        .collect();
    let r = ok(&format!("Action=X&{}", items.join("&")));
    let ids = r.string_list("InstanceId").unwrap();
    assert_eq!(ids.len(), 1000);
    assert_eq!(ids[999], "i-000003e8");
}

#[test]
fn lists_of_structures_with_nested_lists() {
    let r = ok("Action=RunInstances\
        &TagSpecification.1.ResourceType=instance\
        &TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web\
        &TagSpecification.1.Tag.2.Key=env&TagSpecification.1.Tag.2.Value=\
        &TagSpecification.2.ResourceType=volume\
        &TagSpecification.2.Tag.1.Key=k&TagSpecification.2.Tag.1.Value=v");
    let specs = r.structs("TagSpecification").unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].string("ResourceType"), Some("instance"));
    let tags: Vec<(&str, Option<&str>)> = specs[0]
        .structs("Tag")
        .unwrap()
        .iter()
        .map(|t| (t.required_string("Key").unwrap(), t.string("Value")))
        .collect();
    assert_eq!(tags, [("Name", Some("web")), ("env", Some(""))]);
    assert_eq!(specs[1].structs("Tag").unwrap()[0].string("Key"), Some("k"));
    assert_eq!(
        specs[1].wire_name("Tag.1.Key"),
        "TagSpecification.2.Tag.1.Key"
    );
    let e: Ec2Error = specs[1].required_string("Missing").unwrap_err().into();
    assert!(
        e.message.ends_with("TagSpecification.2.Missing"),
        "{}",
        e.message
    );
}

#[test]
fn structure_lists_reject_scalars_and_gaps() {
    for body in [
        "Action=X&TagSpecification.1=instance",
        "Action=X&TagSpecification.1.=instance",
        "Action=X&TagSpecification.2.ResourceType=instance",
        "Action=X&TagSpecification.1.ResourceType=a&TagSpecification.1.Tag.2.Key=k",
    ] {
        let r = ok(body);
        let result = r
            .structs("TagSpecification")
            .and_then(|specs| specs.iter().try_for_each(|s| s.structs("Tag").map(drop)));
        assert!(
            matches!(result, Err(RequestError::InvalidList(_))),
            "{body}: {result:?}"
        );
    }
}

#[test]
fn nested_structures() {
    let r = ok(
        "Action=X&MetadataOptions.HttpTokens=required&MetadataOptions.HttpPutResponseHopLimit=2\
        &BlockDeviceMapping.1.DeviceName=/dev/xvda&BlockDeviceMapping.1.Ebs.VolumeSize=16\
        &BlockDeviceMapping.1.Ebs.DeleteOnTermination=true",
    );
    let metadata = r.child("MetadataOptions");
    assert!(metadata.is_present());
    assert_eq!(metadata.string("HttpTokens"), Some("required"));
    assert_eq!(metadata.int("HttpPutResponseHopLimit", 1..=64), Ok(Some(2)));
    assert!(!r.child("Placement").is_present());
    assert!(
        !r.child("Metadata").is_present(),
        "a prefix of a name is not a structure"
    );
    let mappings = r.structs("BlockDeviceMapping").unwrap();
    let ebs = mappings[0].child("Ebs");
    assert_eq!(ebs.int("VolumeSize", 1..=16384), Ok(Some(16)));
    assert_eq!(ebs.bool("DeleteOnTermination"), Ok(Some(true)));
    let e: Ec2Error = ok("Action=X&BlockDeviceMapping.1.Ebs.VolumeSize=big")
        .structs("BlockDeviceMapping")
        .unwrap()[0]
        .child("Ebs")
        .int("VolumeSize", 1..=16384)
        .unwrap_err()
        .into();
    assert!(
        e.message.contains("BlockDeviceMapping.1.Ebs.VolumeSize"),
        "{}",
        e.message
    );
}

#[test]
fn filters() {
    let r = ok(
        "Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=running\
        &Filter.1.Value.2=pending&Filter.2.Name=tag%3AName&Filter.2.Value.1=web*",
    );
    assert_eq!(
        r.filters().unwrap(),
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
    assert_eq!(ok("Action=X").filters().unwrap(), []);
}

#[test]
fn bad_filters() {
    let cases = [
        ("Action=X&Filter.1.Value.1=a", "MissingParameter"),
        ("Action=X&Filter.1.Name=a", "MissingParameter"),
        (
            "Action=X&Filter.1.Name=a&Filter.1.Value.2=b",
            "InvalidParameter",
        ),
        (
            "Action=X&Filter.1.Name=a&Filter.1.Value.1=b&Filter.3.Name=c&Filter.3.Value.1=d",
            "InvalidParameter",
        ),
        ("Action=X&Filter.1=a", "InvalidParameter"),
    ];
    for (body, code) in cases {
        let e: Ec2Error = ok(body).filters().unwrap_err().into();
        assert_eq!(e.code, code, "{body}: {e}");
    }
}

const RUN_INSTANCES_PARAMS: &[&str] = &[
    "ImageId",
    "InstanceId.N",
    "TagSpecification.N.ResourceType",
    "TagSpecification.N.Tag.N.Key",
    "TagSpecification.N.Tag.N.Value",
    "MetadataOptions.HttpTokens",
    "Filter.N.Name",
    "Filter.N.Value.N",
];

#[test]
fn unknown_parameters_are_rejected() {
    let r = ok(
        "Action=X&Version=2016-11-15&ImageId=a&InstanceId.1=i&InstanceId.2=j\
        &TagSpecification.1.Tag.12.Key=k&MetadataOptions.HttpTokens=required\
        &Filter.1.Name=n&Filter.1.Value.7=v",
    );
    assert_eq!(r.reject_unknown(RUN_INSTANCES_PARAMS), Ok(()));
    for (extra, reported) in [
        ("imageId=a", "imageId"),
        ("InstanceId=i", "InstanceId"),
        ("InstanceId.0=i", "InstanceId.0"),
        ("InstanceId.1001=i", "InstanceId.1001"),
        ("InstanceId.N=i", "InstanceId.N"),
        ("InstanceId.1.Extra=i", "InstanceId.1.Extra"),
        (
            "TagSpecification.1.Tag.1.Colour=red",
            "TagSpecification.1.Tag.1.Colour",
        ),
        (
            "MetadataOptions.HttpEndpoint=enabled",
            "MetadataOptions.HttpEndpoint",
        ),
        ("MetadataOptions=1", "MetadataOptions"),
        ("ImageId.1=a", "ImageId.1"),
    ] {
        let r = ok(&format!("Action=X&ImageId=b&{extra}"));
        let err = r.reject_unknown(RUN_INSTANCES_PARAMS).unwrap_err();
        assert_eq!(
            err,
            RequestError::UnknownParameter(reported.into()),
            "{extra}"
        );
        let e: Ec2Error = err.into();
        assert_eq!((e.code, e.status), ("UnknownParameter", 400));
        assert!(e.message.contains(reported));
    }
    assert_eq!(ok("Action=X").reject_unknown(&[]), Ok(()));
}

#[test]
fn hostile_names_do_not_panic() {
    for body in [
        "Action=X&....=1",
        "Action=X&.=1",
        "Action=X&InstanceId..1=1",
        "Action=X&%E2%80%AE=1",
        "Action=X&Filter.1.Name.1=1",
        "Action=X&Filter.1.Value=1",
        "Action=X&Filter.99999999999999999999.Name=1",
    ] {
        let r = ok(body);
        let _ = r.filters();
        let _ = r.string_list("InstanceId");
        let _ = r.structs("Filter");
        let _ = r.reject_unknown(RUN_INSTANCES_PARAMS);
    }
}
