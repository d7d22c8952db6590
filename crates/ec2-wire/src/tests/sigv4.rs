//! Known-good signatures: AWS's published SigV4 test suite (get-vanilla,
//! post-x-www-form-urlencoded) and an EC2 request signed by botocore's
//! `SigV4Auth` (credentials AKIDEXAMPLE, time 2015-08-30T12:36:00Z).

use std::collections::HashMap;

use super::super::error::Ec2Error;
use super::super::sigv4::*;

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z.
const SIGNED_AT: i64 = 1_440_938_160;
const EC2_BODY: &[u8] = b"Action=DescribeInstances&Version=2016-11-15";
/// botocore 1.44 `SigV4Auth(creds, "ec2", "us-east-1")` on EC2_BODY.
const EC2_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, \
    SignedHeaders=content-type;host;x-amz-date, \
    Signature=4fcc5630a02ce5e6f9df927c6a75deb6f20cea96d43b4ccbddc3566973877b92";

fn credentials() -> HashMap<String, String> {
    HashMap::from([(ACCESS_KEY.to_string(), SECRET.to_string())])
}

fn ec2_request<'a>(authorization: &'a str, body: &'a [u8]) -> HttpParts<'a> {
    HttpParts {
        method: "POST",
        target: "/",
        headers: vec![
            ("Host", "localhost:8773"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", authorization),
            ("User-Agent", "not signed, free to change"),
        ],
        body,
    }
}

fn signed_by(key: &str, region: &str) -> Authentication {
    Authentication::Signed {
        access_key: key.to_string(),
        region: region.to_string(),
    }
}

#[test]
fn aws_suite_get_vanilla() {
    let request = HttpParts {
        method: "GET",
        target: "/",
        headers: vec![
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        ],
        body: b"",
    };
    assert_eq!(
        verify_for_service(&request, &credentials(), SIGNED_AT, "service"),
        Ok(signed_by(ACCESS_KEY, "us-east-1"))
    );
    // The same request is not an EC2 request.
    assert!(matches!(
        verify(&request, &credentials(), SIGNED_AT),
        Err(SigV4Error::ScopeMismatch(_))
    ));
}

#[test]
fn aws_suite_post_x_www_form_urlencoded() {
    let request = HttpParts {
        method: "POST",
        target: "/",
        headers: vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            ),
        ],
        body: b"Param1=value1",
    };
    assert!(verify_for_service(&request, &credentials(), SIGNED_AT, "service").is_ok());
}

#[test]
fn botocore_signed_ec2_request_verifies() {
    let request = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    assert_eq!(
        verify(&request, &credentials(), SIGNED_AT + 600),
        Ok(signed_by(ACCESS_KEY, "us-east-1"))
    );
}

#[test]
fn sign_reproduces_botocore() {
    let unsigned = HttpParts {
        method: "POST",
        target: "/",
        headers: vec![
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "localhost:8773"),
        ],
        body: EC2_BODY,
    };
    let [date, authorization] =
        sign(&unsigned, ACCESS_KEY, SECRET, "us-east-1", SIGNED_AT).unwrap();
    assert_eq!(date, ("X-Amz-Date", "20150830T123600Z".to_string()));
    assert_eq!(
        authorization,
        ("Authorization", EC2_AUTHORIZATION.to_string())
    );
}

#[test]
fn tampering_is_detected() {
    let creds = credentials();
    let tampered_body = ec2_request(
        EC2_AUTHORIZATION,
        b"Action=TerminateInstances&Version=2016-11-15",
    );
    assert_eq!(
        verify(&tampered_body, &creds, SIGNED_AT),
        Err(SigV4Error::SignatureMismatch)
    );

    let mut other_host = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    other_host.headers[0].1 = "localhost:8774";
    assert_eq!(
        verify(&other_host, &creds, SIGNED_AT),
        Err(SigV4Error::SignatureMismatch)
    );

    let mut other_path = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    other_path.target = "/x";
    assert_eq!(
        verify(&other_path, &creds, SIGNED_AT),
        Err(SigV4Error::SignatureMismatch)
    );

    let wrong_secret = HashMap::from([(ACCESS_KEY.to_string(), "not the secret".to_string())]);
    let e = verify(
        &ec2_request(EC2_AUTHORIZATION, EC2_BODY),
        &wrong_secret,
        SIGNED_AT,
    )
    .unwrap_err();
    assert_eq!(e, SigV4Error::SignatureMismatch);
    let e: Ec2Error = e.into();
    assert_eq!((e.code, e.status), ("SignatureDoesNotMatch", 403));

    let flipped = EC2_AUTHORIZATION.replace("4fcc5630", "4fcc5631");
    assert_eq!(
        verify(&ec2_request(&flipped, EC2_BODY), &creds, SIGNED_AT),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn unknown_key_and_clock_skew() {
    let e = verify(
        &ec2_request(EC2_AUTHORIZATION, EC2_BODY),
        &HashMap::new(),
        SIGNED_AT,
    )
    .unwrap_err();
    assert_eq!(e, SigV4Error::UnknownAccessKey(ACCESS_KEY.into()));
    let e: Ec2Error = e.into();
    assert_eq!((e.code, e.status), ("AuthFailure", 401));

    let request = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    for now in [SIGNED_AT + 15 * 60 + 1, SIGNED_AT - 15 * 60 - 1] {
        let e = verify(&request, &credentials(), now).unwrap_err();
        assert!(matches!(e, SigV4Error::Expired { .. }), "{e:?}");
        assert_eq!(Ec2Error::from(e).code, "RequestExpired");
    }
    assert!(verify(&request, &credentials(), SIGNED_AT - 15 * 60).is_ok());
}

#[test]
fn unsigned_requests_are_reported_as_such() {
    let mut request = ec2_request("", EC2_BODY);
    request.headers.retain(|(name, _)| *name != "Authorization");
    assert_eq!(
        verify(&request, &credentials(), SIGNED_AT),
        Ok(Authentication::Unsigned)
    );
}

#[test]
fn malformed_authorization_headers() {
    let good_rest = "Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, \
        SignedHeaders=content-type;host;x-amz-date, \
        Signature=4fcc5630a02ce5e6f9df927c6a75deb6f20cea96d43b4ccbddc3566973877b92";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("AWS4-HMAC-SHA1 {good_rest}"),
            "UnsupportedAlgorithm",
        ),
        ("AWS4-HMAC-SHA256".to_string(), "Malformed"),
        ("Basic dXNlcjpwYXNz".to_string(), "UnsupportedAlgorithm"),
        (
            format!("AWS4-HMAC-SHA256 {good_rest}, Signature=00"),
            "Malformed",
        ),
        (
            good_rest.replace("Signature=4f", "Signature=4F"),
            "UnsupportedAlgorithm",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("Signature=4fcc", "Signature=4fc")
            ),
            "Malformed",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("content-type;", "Content-Type;")
            ),
            "Malformed",
        ),
        (
            format!("AWS4-HMAC-SHA256 {}", good_rest.replace("host;", ";")),
            "Malformed",
        ),
        (
            format!("AWS4-HMAC-SHA256 {}, Extra=1", good_rest),
            "Malformed",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("Credential=", "Credential ")
            ),
            "Malformed",
        ),
        (
            format!("AWS4-HMAC-SHA256 {}", good_rest.replace("/ec2/", "/ec2/x/")),
            "Malformed",
        ),
        (
            format!("AWS4-HMAC-SHA256 {}", good_rest.replace("/ec2/", "/s3/")),
            "Scope",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("20150830", "20150831")
            ),
            "Scope",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("aws4_request", "aws5_request")
            ),
            "Scope",
        ),
        (
            format!("AWS4-HMAC-SHA256 {}", good_rest.replace("AKIDEXAMPLE", "")),
            "Scope",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("content-type;host;", "content-type;")
            ),
            "Host",
        ),
        (
            format!(
                "AWS4-HMAC-SHA256 {}",
                good_rest.replace("host;", "host;x-missing;")
            ),
            "MissingSignedHeader",
        ),
    ];
    for (authorization, expected) in &cases {
        let err = verify(
            &ec2_request(authorization, EC2_BODY),
            &credentials(),
            SIGNED_AT,
        )
        .unwrap_err();
        let kind = match &err {
            SigV4Error::UnsupportedAlgorithm(_) => "UnsupportedAlgorithm",
            SigV4Error::MalformedAuthorization(_) => "Malformed",
            SigV4Error::ScopeMismatch(_) => "Scope",
            SigV4Error::HostNotSigned => "Host",
            SigV4Error::MissingSignedHeader(_) => "MissingSignedHeader",
            _ => "other",
        };
        assert_eq!(kind, *expected, "{authorization}: {err:?}");
        let e: Ec2Error = err.into();
        assert!(e.status < 500);
    }
}

#[test]
fn date_header_problems() {
    let mut no_date = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    no_date.headers.retain(|(name, _)| *name != "X-Amz-Date");
    assert_eq!(
        verify(&no_date, &credentials(), SIGNED_AT),
        Err(SigV4Error::MissingDate)
    );
    let mut bad_date = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    bad_date.headers[2].1 = "Sun, 30 Aug 2015 12:36:00 GMT";
    assert_eq!(
        verify(&bad_date, &credentials(), SIGNED_AT),
        Err(SigV4Error::MissingDate)
    );
    // A non-ASCII date of the right byte length is refused, not a panic.
    for date in ["201é830T123600Z", "20150830T1é360Z"] {
        let mut odd_date = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
        odd_date.headers[2].1 = date;
        assert_eq!(
            verify(&odd_date, &credentials(), SIGNED_AT),
            Err(SigV4Error::MissingDate)
        );
    }
    let mut two_auth = ec2_request(EC2_AUTHORIZATION, EC2_BODY);
    two_auth.headers.push(("authorization", EC2_AUTHORIZATION));
    assert!(matches!(
        verify(&two_auth, &credentials(), SIGNED_AT),
        Err(SigV4Error::MalformedAuthorization(_))
    ));
}

fn round_trip(request: &HttpParts<'_>) -> Result<Authentication, SigV4Error> {
    let [date, auth] = sign(request, "AKIDFLINT", "s3cr3t", "eu-west-1", SIGNED_AT)?;
    let mut signed = request.clone();
    signed.headers.push((date.0, &date.1));
    signed.headers.push((auth.0, &auth.1));
    let creds = HashMap::from([("AKIDFLINT".to_string(), "s3cr3t".to_string())]);
    verify(&signed, &creds, SIGNED_AT)
}

#[test]
fn sign_and_verify_round_trip_with_awkward_parts() {
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let request = HttpParts {
        method: "POST",
        target: "/a/./b/../c//d/%7E?b=2&a=1&a=0&sp=x%20y&e",
        headers: vec![
            ("host", "127.0.0.1:9999"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Custom", "  two   spaces  "),
            ("x-custom", "second value"),
        ],
        body: &body,
    };
    assert_eq!(
        round_trip(&request),
        Ok(signed_by("AKIDFLINT", "eu-west-1"))
    );

    let no_host = HttpParts {
        method: "POST",
        target: "/",
        headers: vec![("Content-Type", "x")],
        body: b"",
    };
    assert_eq!(round_trip(&no_host), Err(SigV4Error::HostNotSigned));
}

#[test]
fn whitespace_in_signed_header_values_is_folded() {
    let request = HttpParts {
        method: "POST",
        target: "/",
        headers: vec![("Host", "h"), ("X-Custom", "a  b")],
        body: b"",
    };
    let [date, auth] = sign(&request, ACCESS_KEY, SECRET, "us-east-1", SIGNED_AT).unwrap();
    let mut received = request.clone();
    received.headers[1].1 = "   a b ";
    received.headers.push((date.0, &date.1));
    received.headers.push((auth.0, &auth.1));
    assert!(verify(&received, &credentials(), SIGNED_AT).is_ok());
}

#[test]
fn payload_hash_header_must_match_the_body() {
    let hash = "0000000000000000000000000000000000000000000000000000000000000000";
    let request = HttpParts {
        method: "POST",
        target: "/",
        headers: vec![("Host", "h"), ("X-Amz-Content-SHA256", hash)],
        body: b"Action=X",
    };
    assert_eq!(round_trip(&request), Err(SigV4Error::PayloadHashMismatch));
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"Action=X"));
    let request = HttpParts {
        headers: vec![("Host", "h"), ("X-Amz-Content-SHA256", &actual)],
        ..request
    };
    assert!(round_trip(&request).is_ok());
}
