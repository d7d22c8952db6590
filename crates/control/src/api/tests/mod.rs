//! Unit tests of the api helpers (the actions themselves are exercised
//! through the real daemon and boto3 in tests/serve_api.rs).

mod keygen;

use md5::{Digest, Md5};

use super::codec::{base64_decode, base64_encode, colon_hex};
use super::filters::wildcard_match;
use super::keygen::parse_public_key;
use super::paging::{PageRequest, decode_token, encode_token, paginate};
use crate::catalog::{catalog, instance_type};

#[test]
fn fingerprints_are_colon_separated_hex() {
    assert_eq!(
        colon_hex(&Md5::digest(b"")),
        "d4:1d:8c:d9:8f:00:b2:04:e9:80:09:98:ec:f8:42:7e"
    );
    assert_eq!(colon_hex(&[]), "");
    assert_eq!(colon_hex(&[0x0a]), "0a");
}

#[test]
fn base64_round_trips_and_rejects_garbage() {
    for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
        assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
    }
    assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_decode("Zm9v\nYg==").unwrap(), b"foob");
    assert!(base64_decode("Zm9v!").is_err());
    assert!(base64_decode("Zm9vY").is_err());
    assert!(base64_decode("Zg==Zg").is_err());
}

/// EC2's rules for blob parameters (UserData, PublicKeyMaterial): standard
/// alphabet only, padding optional, whitespace ignored, nothing after the
/// padding, no stray bits past the last byte.
#[test]
fn base64_follows_ec2_blob_rules() {
    assert_eq!(base64_decode("Zg").unwrap(), b"f");
    assert_eq!(base64_decode("Zg=").unwrap(), b"f");
    assert_eq!(base64_decode(" Zm9v\r\nYmFy\n").unwrap(), b"foobar");
    assert_eq!(base64_decode("+/8=").unwrap(), vec![0xfb, 0xff]);
    assert_eq!(base64_decode("").unwrap(), b"");
    for bad in ["-_8=", "Zh==", "Zg==\u{e9}", "Zm9v=Zm9v"] {
        assert!(base64_decode(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn ec2_wildcards() {
    assert!(wildcard_match("t3.*", "t3.micro"));
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match("a?c", "abc"));
    assert!(!wildcard_match("a?c", "ac"));
    assert!(wildcard_match("a\\*c", "a*c"));
    assert!(!wildcard_match("a\\*c", "abc"));
    assert!(wildcard_match("*b*b*", "abab"));
    assert!(!wildcard_match("Foo", "foo"));
    // No exponential blow-up.
    assert!(!wildcard_match(&"*a".repeat(50), &"a".repeat(40)));
}

#[test]
fn pagination_tokens_are_scoped_and_checked() {
    let t = encode_token("DescribeTags", "i-1\u{1}k");
    assert_eq!(decode_token("DescribeTags", &t).unwrap(), "i-1\u{1}k");
    assert!(decode_token("DescribeImages", &t).is_err());
    for bad in ["zz", "0", "ff", "00"] {
        assert_eq!(
            decode_token("DescribeTags", bad).unwrap_err().code,
            "InvalidPaginationToken"
        );
    }
    let page = PageRequest {
        max_results: Some(2),
        after: None,
    };
    let (items, next) = paginate(vec![3, 1, 2], |n| n.to_string(), &page, "X");
    assert_eq!(items, vec![1, 2]);
    let page = PageRequest {
        max_results: Some(2),
        after: Some(decode_token("X", &next.unwrap()).unwrap()),
    };
    assert_eq!(
        paginate(vec![3, 1, 2], |n| n.to_string(), &page, "X"),
        (vec![3], None)
    );
}

#[test]
fn catalog_loads_with_ec2_sizes() {
    assert!(catalog().len() >= 15);
    assert_eq!(instance_type("t3.micro"), Some((2, 1024)));
    assert_eq!(instance_type("m5.large"), Some((2, 8192)));
    assert_eq!(instance_type("c5.xlarge"), Some((4, 8192)));
    assert_eq!(instance_type("t9.huge"), None);
}

#[test]
fn public_keys_parse_and_reject_junk() {
    // RFC 8709 style ed25519 key (32 zero bytes of key material).
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[0u8; 32]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let line = format!("ssh-ed25519 {} me@host", base64_encode(&blob));
    let key = parse_public_key(&line).unwrap();
    assert_eq!(key.line(), format!("ssh-ed25519 {}", base64_encode(&blob)));
    assert!(parse_public_key("ssh-dss AAAA").is_err());
    assert!(parse_public_key("ssh-ed25519 AAAA").is_err());
    assert!(parse_public_key(&format!("ssh-rsa {}", base64_encode(&blob))).is_err());
    assert!(parse_public_key("").is_err());
}
