//! IMDSv1/IMDSv2 rules: token PUTs, token checks on GET, endpoint off,
//! methods — with whole responses compared byte for byte.

use std::time::{Duration, Instant};

use super::*;
use flint_contract::metadata::{HttpTokens, MetadataOptionsUpdate, MetadataUpdate};

fn golden(status_line: &str, content_type: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra}Server: EC2ws\r\n\r\n{body}",
        body.len()
    )
}

fn bytes(response: &Response) -> String {
    String::from_utf8(response.to_bytes()).unwrap()
}

const OK_INSTANCE_ID: &str = "i-1234567890abcdef0";

#[derive(Debug, Clone, Copy)]
enum TokenCase {
    Missing,
    Valid,
    Invalid,
    Expired,
}

fn with_options(tokens: HttpTokens, endpoint: Toggle) -> MetadataUpdate {
    MetadataUpdate {
        metadata_options: Some(MetadataOptionsUpdate {
            http_tokens: Some(tokens),
            http_endpoint: Some(endpoint),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn imds_token_matrix_golden_responses() {
    let ok = golden("200 OK", "text/plain", "", OK_INSTANCE_ID);
    let unauthorized = golden("401 Unauthorized", "text/plain", "", "401 - Unauthorized");
    let forbidden = golden("403 Forbidden", "text/plain", "", "403 - Forbidden");
    for tokens in [HttpTokens::Optional, HttpTokens::Required] {
        for endpoint in [Toggle::Enabled, Toggle::Disabled] {
            for case in [
                TokenCase::Missing,
                TokenCase::Valid,
                TokenCase::Invalid,
                TokenCase::Expired,
            ] {
                let mut service = imds(MetadataConfig::default());
                let t0 = Instant::now();
                // Tokens are minted while the endpoint is on, then the
                // options under test are applied.
                let valid = token(&mut service, t0);
                let short = text(&put_token(&mut service, "1", t0));
                service.apply(&with_options(tokens, endpoint)).unwrap();
                let now = t0 + Duration::from_secs(5);
                let sent = match case {
                    TokenCase::Missing => None,
                    TokenCase::Valid => Some(valid.as_str()),
                    TokenCase::Invalid => Some("not-a-token"),
                    TokenCase::Expired => Some(short.as_str()),
                };
                let response = get(&mut service, "/latest/meta-data/instance-id", sent, now);
                let expected = match (endpoint, tokens, case) {
                    (Toggle::Disabled, _, _) => &forbidden,
                    (_, _, TokenCase::Valid) => &ok,
                    (_, HttpTokens::Optional, TokenCase::Missing) => &ok,
                    _ => &unauthorized,
                };
                assert_eq!(
                    &bytes(&response),
                    expected,
                    "{tokens:?} {endpoint:?} {case:?}"
                );
                assert_eq!(response.ip_ttl, None);
            }
        }
    }
}

#[test]
fn imds_token_put_golden_and_ttl_edges() {
    let mut service = imds(MetadataConfig::default());
    let now = Instant::now();
    for ttl in ["1", "21600"] {
        let response = put_token(&mut service, ttl, now);
        let token = text(&response);
        assert_eq!(token.len(), 56);
        let extra = format!("X-Aws-Ec2-Metadata-Token-Ttl-Seconds: {ttl}\r\n");
        assert_eq!(
            bytes(&response),
            golden("200 OK", "text/plain", &extra, &token)
        );
        assert_eq!(response.ip_ttl, Some(1));
    }
    let bad_request = golden("400 Bad Request", "text/plain", "", "400 - Bad Request");
    for ttl in ["0", "21601", "abc", "", "-5", "1.5", "6 hours"] {
        let response = put_token(&mut service, ttl, now);
        assert_eq!(bytes(&response), bad_request, "ttl {ttl:?}");
        assert_eq!(
            response.ip_ttl,
            Some(1),
            "hop limit applies to every token PUT answer"
        );
    }
    let missing = service.handle(&request("PUT", "/latest/api/token", &[]), now);
    assert_eq!(bytes(&missing), bad_request);
    let twice = request(
        "PUT",
        "/latest/api/token",
        &[
            ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
            ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
        ],
    );
    assert_eq!(bytes(&service.handle(&twice, now)), bad_request);
}

#[test]
fn imds_token_put_through_a_proxy_is_forbidden() {
    let mut service = imds(MetadataConfig::default());
    let req = request(
        "PUT",
        "/latest/api/token",
        &[
            ("X-aws-ec2-metadata-token-ttl-seconds", "21600"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    );
    let response = service.handle(&req, Instant::now());
    assert_eq!(
        bytes(&response),
        golden("403 Forbidden", "text/plain", "", "403 - Forbidden")
    );
}

#[test]
fn imds_hop_limit_is_the_ip_ttl_of_token_responses() {
    let mut config = MetadataConfig::default();
    config.metadata_options.http_put_response_hop_limit = 2;
    let mut service = imds(config);
    let now = Instant::now();
    assert_eq!(put_token(&mut service, "60", now).ip_ttl, Some(2));
    let update = MetadataUpdate {
        metadata_options: Some(MetadataOptionsUpdate {
            http_put_response_hop_limit: Some(64),
            ..Default::default()
        }),
        ..Default::default()
    };
    service.apply(&update).unwrap();
    assert_eq!(put_token(&mut service, "60", now).ip_ttl, Some(64));
    // Only token PUT answers carry it.
    assert_eq!(
        get(&mut service, "/latest/meta-data/", None, now).ip_ttl,
        None
    );
}

#[test]
fn imds_headers_are_case_insensitive() {
    let mut service = imds(MetadataConfig::default());
    let now = Instant::now();
    let put = request(
        "PUT",
        "/latest/api/token",
        &[("x-AWS-ec2-METADATA-token-TTL-seconds", "60")],
    );
    let token = text(&service.handle(&put, now));
    let get = request(
        "GET",
        "/latest/meta-data/instance-id",
        &[("X-AWS-EC2-METADATA-TOKEN", &token)],
    );
    assert_eq!(text(&service.handle(&get, now)), OK_INSTANCE_ID);
}

#[test]
fn imds_required_tokens_expire_with_their_ttl() {
    let mut config = MetadataConfig::default();
    config.metadata_options.http_tokens = HttpTokens::Required;
    let mut service = imds(config);
    let t0 = Instant::now();
    let token = text(&put_token(&mut service, "1", t0));
    let path = "/latest/meta-data/instance-id";
    let at = |ms| t0 + Duration::from_millis(ms);
    assert_eq!(get(&mut service, path, Some(&token), at(999)).status, 200);
    assert_eq!(get(&mut service, path, Some(&token), at(1000)).status, 401);
    assert_eq!(get(&mut service, path, None, at(0)).status, 401);
    // Two token headers are not a valid token, even if one is.
    let fresh = text(&put_token(&mut service, "60", t0));
    let both = request(
        "GET",
        path,
        &[
            ("X-aws-ec2-metadata-token", &fresh),
            ("X-aws-ec2-metadata-token", "x"),
        ],
    );
    assert_eq!(service.handle(&both, t0).status, 401);
}

#[test]
fn imds_methods_other_than_get_head_and_token_put_are_405() {
    let mut service = imds(MetadataConfig::default());
    let now = Instant::now();
    for method in ["GET", "HEAD", "POST", "DELETE"] {
        let response = service.handle(&request(method, "/latest/api/token", &[]), now);
        let body = if method == "HEAD" {
            ""
        } else {
            "405 - Method Not Allowed"
        };
        let expected = format!(
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\
             Allow: PUT\r\nServer: EC2ws\r\n\r\n{body}"
        );
        assert_eq!(bytes(&response), expected, "{method}");
    }
    for method in ["PUT", "POST", "DELETE", "OPTIONS", "get"] {
        let response = service.handle(&request(method, "/latest/meta-data/", &[]), now);
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.headers, vec![("Allow", "GET, HEAD".to_string())]);
    }
    // A token on another version's path is not the token API.
    let put = request(
        "PUT",
        "/2021-03-23/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(service.handle(&put, now).status, 405);
}

#[test]
fn imds_head_answers_headers_only() {
    let mut service = imds(MetadataConfig::default());
    let response = service.handle(
        &request("HEAD", "/latest/meta-data/instance-id", &[]),
        Instant::now(),
    );
    assert_eq!(
        bytes(&response),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\nServer: EC2ws\r\n\r\n"
    );
}

#[test]
fn imds_disabled_endpoint_forbids_everything() {
    let mut config = MetadataConfig::default();
    config.metadata_options.http_endpoint = Toggle::Disabled;
    let mut service = imds(config);
    let now = Instant::now();
    assert_eq!(put_token(&mut service, "21600", now).status, 403);
    assert_eq!(put_token(&mut service, "21600", now).ip_ttl, None);
    for target in ["/", "/latest/meta-data/", "/nope", "/latest/api/token"] {
        assert_eq!(get(&mut service, target, None, now).status, 403, "{target}");
    }
    assert_eq!(
        service.handle(&request("DELETE", "/", &[]), now).status,
        403
    );
}

#[test]
fn imds_connection_close_is_echoed() {
    let mut service = imds(MetadataConfig::default());
    let mut req = request("GET", "/latest/meta-data/ami-id", &[]);
    req.keep_alive = false;
    let response = service.handle(&req, Instant::now());
    assert!(response.close);
    assert_eq!(
        bytes(&response),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\nServer: EC2ws\r\n\
         Connection: close\r\n\r\nami-0abcdef1234567890"
    );
}
