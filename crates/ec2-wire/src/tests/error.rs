use super::super::error::Ec2Error;
use super::super::ids::ResourceKind;

#[test]
fn error_document_is_ec2s() {
    let e = Ec2Error::instance_not_found(&["i-1234567890abcdef0"]);
    assert_eq!(
        String::from_utf8(e.to_xml("ea966190-f9aa-478e-9ede-example")).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
         <Code>InvalidInstanceID.NotFound</Code>\
         <Message>The instance ID &apos;i-1234567890abcdef0&apos; does not exist</Message>\
         </Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"
    );
}

#[test]
fn messages_are_escaped_and_bounded() {
    let e = Ec2Error::invalid_action(&format!("<x>&{}", "A".repeat(10_000)));
    let xml = String::from_utf8(e.to_xml("r")).unwrap();
    assert!(xml.contains("&lt;x&gt;&amp;"));
    assert!(xml.len() < 1000, "{}", xml.len());
}

#[test]
fn not_found_names_every_id() {
    let e = Ec2Error::instance_not_found(&["i-1", "i-2"]);
    assert_eq!(e.message, "The instance IDs 'i-1, i-2' do not exist");
    assert_eq!(
        Ec2Error::volume_not_found(&["vol-1"]).code,
        "InvalidVolume.NotFound"
    );
    assert_eq!(
        Ec2Error::ami_not_found(&["ami-1"]).message,
        "The image id '[ami-1]' does not exist"
    );
}

#[test]
fn every_kind_has_malformed_and_not_found_codes() {
    for kind in ResourceKind::ALL {
        let malformed = Ec2Error::malformed_id(kind, "x");
        assert!(malformed.code.ends_with(".Malformed"), "{malformed}");
        assert!(malformed.message.contains(kind.prefix()));
        let missing = Ec2Error::not_found(kind, &["x"]);
        assert!(missing.code.ends_with(".NotFound"), "{missing}");
        assert_eq!((malformed.status, missing.status), (400, 400));
    }
    assert_eq!(
        Ec2Error::instance_id_malformed("i-x").code,
        "InvalidInstanceID.Malformed"
    );
    assert_eq!(
        Ec2Error::ami_id_malformed("ami-x").code,
        "InvalidAMIID.Malformed"
    );
}

#[test]
fn codes_and_statuses() {
    let cases = [
        (Ec2Error::missing_action(), "MissingAction", 400),
        (Ec2Error::invalid_action("Foo"), "InvalidAction", 400),
        (
            Ec2Error::missing_parameter("ImageId"),
            "MissingParameter",
            400,
        ),
        (Ec2Error::unknown_parameter("Foo"), "UnknownParameter", 400),
        (
            Ec2Error::invalid_parameter_value("MaxCount", "0", "must be positive"),
            "InvalidParameterValue",
            400,
        ),
        (
            Ec2Error::invalid_parameter_combination("x"),
            "InvalidParameterCombination",
            400,
        ),
        (Ec2Error::invalid_parameter("x"), "InvalidParameter", 400),
        (
            Ec2Error::malformed_query_string("x"),
            "MalformedQueryString",
            400,
        ),
        (
            Ec2Error::invalid_query_parameter("x"),
            "InvalidQueryParameter",
            400,
        ),
        (
            Ec2Error::request_entity_too_large(1),
            "RequestEntityTooLarge",
            413,
        ),
        (Ec2Error::invalid_filter("x"), "InvalidFilter", 400),
        (
            Ec2Error::invalid_pagination_token("x"),
            "InvalidPaginationToken",
            400,
        ),
        (Ec2Error::dry_run_operation(), "DryRunOperation", 412),
        (
            Ec2Error::idempotent_parameter_mismatch("t"),
            "IdempotentParameterMismatch",
            400,
        ),
        (Ec2Error::auth_failure("x"), "AuthFailure", 401),
        (Ec2Error::unknown_access_key(), "AuthFailure", 401),
        (
            Ec2Error::signature_does_not_match(),
            "SignatureDoesNotMatch",
            403,
        ),
        (
            Ec2Error::incomplete_signature("x"),
            "IncompleteSignature",
            400,
        ),
        (
            Ec2Error::missing_authentication_token(),
            "MissingAuthenticationToken",
            403,
        ),
        (Ec2Error::request_expired("x"), "RequestExpired", 400),
        (
            Ec2Error::unauthorized_operation(),
            "UnauthorizedOperation",
            403,
        ),
        (
            Ec2Error::key_pair_not_found("k"),
            "InvalidKeyPair.NotFound",
            400,
        ),
        (
            Ec2Error::key_pair_duplicate("k"),
            "InvalidKeyPair.Duplicate",
            400,
        ),
        (Ec2Error::key_pair_format("x"), "InvalidKeyPair.Format", 400),
        (
            Ec2Error::ami_name_duplicate("n"),
            "InvalidAMIName.Duplicate",
            400,
        ),
        (Ec2Error::invalid_id("x"), "InvalidID", 400),
        (
            Ec2Error::incorrect_instance_state("i-1", "stopped", "stopped"),
            "IncorrectInstanceState",
            400,
        ),
        (Ec2Error::incorrect_state("x"), "IncorrectState", 400),
        (Ec2Error::volume_in_use("vol-1"), "VolumeInUse", 400),
        (
            Ec2Error::invalid_user_data("bad padding"),
            "InvalidUserData.Malformed",
            400,
        ),
        (
            Ec2Error::tag_limit_exceeded("i-1", 50),
            "TagLimitExceeded",
            400,
        ),
        (
            Ec2Error::insufficient_free_addresses("subnet-1"),
            "InsufficientFreeAddressesInSubnet",
            400,
        ),
        (
            Ec2Error::instance_limit_exceeded(10),
            "InstanceLimitExceeded",
            400,
        ),
        (
            Ec2Error::unsupported_operation("x"),
            "UnsupportedOperation",
            400,
        ),
        // Transient, and botocore's legacy retries want EC2's 503 here.
        (
            Ec2Error::request_limit_exceeded(),
            "RequestLimitExceeded",
            503,
        ),
        (Ec2Error::internal_error("x"), "InternalError", 500),
    ];
    for (error, code, status) in cases {
        assert_eq!((error.code, error.status), (code, status), "{error}");
        assert!(!error.message.is_empty());
    }
}

#[test]
fn display_carries_code_and_message() {
    let e = Ec2Error::dry_run_operation();
    assert_eq!(
        e.to_string(),
        "DryRunOperation (412): Request would have succeeded, but DryRun flag is set."
    );
}
