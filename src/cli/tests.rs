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

mod output_formats {
    use super::super::help;
    use super::super::model::model;
    use super::super::output::{self, Format, KeyOrder, legacy_literals};
    use super::super::xml_json::Json;
    use jmespath::Variable;
    use serde_json::json;

    fn var(v: serde_json::Value) -> Variable {
        Variable::try_from(v).unwrap()
    }

    fn text(v: serde_json::Value) -> String {
        output::render(&var(v), Format::Text, "T", &KeyOrder::default())
    }

    fn s(x: &str) -> Json {
        Json::Str(x.to_string())
    }

    // Expected strings are what awscli's text.format_text prints for the
    // same values (checked with the aws CLI 1.46).
    #[test]
    fn text_is_awscli_text() {
        assert_eq!(text(json!("i-1")), "i-1\n");
        assert_eq!(text(json!(3)), "3\n");
        assert_eq!(text(json!(null)), "None\n");
        assert_eq!(text(json!(["a", "b", true])), "a\tb\tTrue\n");
        assert_eq!(text(json!([])), "");
        // Objects: sorted keys; a list's objects share the union of its
        // scalar keys (missing ones empty); nested values on their own
        // lines, under their key upper-cased.
        assert_eq!(
            text(json!([{"b": 1, "a": "x"}, {"a": "y", "c": false}])),
            "x\t1\t\ny\t\tFalse\n"
        );
        assert_eq!(
            text(json!({"Reservations": [{"ReservationId": "r-1",
                "Instances": [{"InstanceId": "i-1", "State": {"Name": "running", "Code": 16},
                               "Tags": [{"Key": "Name", "Value": "web"}]}]}]})),
            "RESERVATIONS\tr-1\nINSTANCES\ti-1\nSTATE\t16\trunning\nTAGS\tName\tweb\n"
        );
        assert_eq!(text(json!({"Ids": ["i-1", "i-2"]})), "IDS\ti-1\nIDS\ti-2\n");
        assert_eq!(text(json!([["a", "b"], ["c"]])), "a\tb\nc\n");
        // A key scalar in one object and a list in another: Python's str().
        assert_eq!(
            text(json!([{"M": null}, {"M": [{"Key": "it's"}]}])),
            "None\n[{'Key': \"it's\"}]\n"
        );
    }

    #[test]
    fn json_keeps_the_reply_and_multiselect_order() {
        let reply = Json::Obj(vec![(
            "KeyPairs".into(),
            Json::Arr(vec![Json::Obj(vec![
                ("KeyPairId".into(), s("key-1")),
                ("KeyName".into(), s("k")),
                ("CreateTime".into(), s("t")),
            ])]),
        )]);
        let run = |expr: &str| {
            let e = output::compile(expr).unwrap();
            let order = KeyOrder::new(&reply, Some(&e));
            let v = output::search(&e, output::to_value(&reply)).unwrap();
            output::render(&v, Format::Json, "T", &order)
        };
        assert_eq!(
            run("KeyPairs[0]"),
            "{\n    \"KeyPairId\": \"key-1\",\n    \"KeyName\": \"k\",\n    \"CreateTime\": \"t\"\n}\n"
        );
        assert_eq!(
            run("KeyPairs[].{Z: KeyName, A: KeyPairId}"),
            "[\n    {\n        \"Z\": \"k\",\n        \"A\": \"key-1\"\n    }\n]\n"
        );
        assert_eq!(run("KeyPairs[].KeyName"), "[\n    \"k\"\n]\n");
        assert_eq!(run("KeyPairs[?KeyName=='x']"), "[]\n");
        assert_eq!(run("nothing"), "null\n");
        assert_eq!(run("length(KeyPairs)"), "1\n");
        // The deprecated `literal` form, as Python jmespath reads it.
        assert_eq!(run("KeyPairs[?KeyName==`k`].KeyName"), "[\n    \"k\"\n]\n");
    }

    #[test]
    fn legacy_literals_become_json_strings() {
        assert_eq!(legacy_literals("a[?b==`running`]"), "a[?b==`\"running\"`]");
        assert_eq!(legacy_literals("a[?b==` x`]"), "a[?b==`\"x\"`]");
        // JSON literals, raw strings and quoted identifiers are untouched.
        for same in [
            "a[?b==`\"x\"`]",
            "a[?b==`2`]",
            "a[?b=='`x`']",
            "\"`q`\".a",
            "a[?b==`[1]`]",
        ] {
            assert_eq!(legacy_literals(same), same);
        }
        assert!(output::compile("a[?b==`running`]").is_ok());
        assert!(output::compile("a[").is_err());
    }

    #[test]
    fn output_formats_parse_and_tables_are_boxed() {
        assert_eq!(Format::parse("json"), Ok(Format::Json));
        assert_eq!(Format::parse("text"), Ok(Format::Text));
        assert_eq!(Format::parse("table"), Ok(Format::Table));
        assert!(Format::parse("yaml").is_err());
        let t = output::render(
            &var(json!({"Regions": [{"RegionName": "us-east-1", "Endpoint": "e"}]})),
            Format::Table,
            "DescribeRegions",
            &KeyOrder::default(),
        );
        assert_eq!(
            t,
            "-------------------\n| DescribeRegions |\n-------------------\n\
             -------------------------\n|        Regions        |\n\
             +----------+------------+\n| Endpoint | RegionName |\n\
             +----------+------------+\n| e        | us-east-1  |\n\
             +----------+------------+\n"
        );
        let t = output::render(
            &var(json!(["a", "bb"])),
            Format::Table,
            "X",
            &KeyOrder::default(),
        );
        assert_eq!(t, "------\n| X  |\n+----+\n| a  |\n| bb |\n+----+\n");
        assert_eq!(
            output::render(&var(json!({})), Format::Table, "X", &KeyOrder::default()),
            ""
        );
    }

    #[test]
    fn help_lists_verbs_and_options() {
        let m = model().unwrap();
        let overview = help::overview(m);
        for verb in [
            "run-instances",
            "describe-instances",
            "create-key-pair",
            "create-tags",
        ] {
            assert!(overview.contains(verb), "{verb} in {overview}");
        }
        let h = help::verb_help(m, "run-instances", "RunInstances", "RunInstancesRequest");
        for option in [
            "--image-id <value>",
            "--instance-type",
            "--count N|MIN:MAX",
            "--key-name",
            "--user-data",
            "--block-device-mappings <shorthand|JSON> ...",
            "--tag-specifications",
            "--dry-run | --no-dry-run",
            "--query EXPR",
            "--output json|text|table",
        ] {
            assert!(h.contains(option), "{option} in {h}");
        }
        assert!(h.contains("The ID of the AMI."));
        let close = help::close_matches(m, "describe-instance");
        assert_eq!(close[0], "describe-instances");
        assert!(close.contains(&"describe-instance-types".to_string()));
        assert_eq!(
            help::close_matches(m, "descibe-instances")[0],
            "describe-instances"
        );
        assert!(help::close_matches(m, "zzzzzzzz").is_empty());
    }
}
