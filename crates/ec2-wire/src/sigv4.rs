//! AWS Signature Version 4 for the EC2 Query API, header form:
//!
//! ```text
//! Authorization: AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ec2/aws4_request,
//!                SignedHeaders=content-type;host;x-amz-date, Signature=<64 hex>
//! X-Amz-Date: 20150830T123600Z
//! ```
//!
//! The canonical request is built as botocore's `SigV4Auth` builds it
//! (method, normalised path, sorted query, the signed headers with values
//! trimmed and inner whitespace collapsed, the body's SHA-256), then the
//! string to sign and the derived key as the SigV4 spec lays out. Any
//! region is accepted (and reported); the service must be `ec2`. Query-
//! string (presigned) authentication is not supported.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::clock;
use super::error::Ec2Error;

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const SERVICE: &str = "ec2";
/// How far a request's X-Amz-Date may be from our clock, as on AWS.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 15 * 60;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    #[error("unsupported signing algorithm {0:?}; only AWS4-HMAC-SHA256 is accepted")]
    UnsupportedAlgorithm(String),
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(String),
    #[error("the request is signed but has no valid X-Amz-Date header")]
    MissingDate,
    #[error("signed header {0:?} is not in the request")]
    MissingSignedHeader(String),
    #[error("the host header must be signed")]
    HostNotSigned,
    #[error(
        "the credential scope {0:?} does not match this request (date, service ec2, aws4_request)"
    )]
    ScopeMismatch(String),
    #[error("X-Amz-Content-SHA256 does not match the body")]
    PayloadHashMismatch,
    #[error("unknown access key {0:?}")]
    UnknownAccessKey(String),
    #[error("request time {request} is more than 15 minutes from the server's time {server}")]
    Expired { request: String, server: String },
    #[error("the signature does not match")]
    SignatureMismatch,
}

impl From<SigV4Error> for Ec2Error {
    fn from(e: SigV4Error) -> Self {
        match e {
            SigV4Error::UnknownAccessKey(_) => Ec2Error::unknown_access_key(),
            SigV4Error::Expired { .. } => {
                Ec2Error::request_expired(format!("Request has expired: {e}"))
            }
            SigV4Error::ScopeMismatch(_)
            | SigV4Error::PayloadHashMismatch
            | SigV4Error::SignatureMismatch => Ec2Error::signature_does_not_match(),
            SigV4Error::UnsupportedAlgorithm(_)
            | SigV4Error::MalformedAuthorization(_)
            | SigV4Error::MissingDate
            | SigV4Error::MissingSignedHeader(_)
            | SigV4Error::HostNotSigned => Ec2Error::incomplete_signature(e.to_string()),
        }
    }
}

/// The parts of an HTTP request a signature covers.
#[derive(Clone, Debug)]
pub struct HttpParts<'a> {
    pub method: &'a str,
    /// The request-target as received: path, then optionally `?query`.
    pub target: &'a str,
    /// Every header, in order, names in any case.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

impl<'a> HttpParts<'a> {
    fn header_values<'s>(&'s self, lowercase_name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(lowercase_name))
            .map(|(_, value)| *value)
    }

    fn single_header(&self, lowercase_name: &str) -> Result<Option<&'a str>, SigV4Error> {
        let mut values = self.header_values(lowercase_name);
        let first = values.next();
        if values.next().is_some() {
            return Err(SigV4Error::MalformedAuthorization(format!(
                "more than one {lowercase_name} header"
            )));
        }
        Ok(first)
    }
}

/// Who signed a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// No Authorization header: the daemon decides whether that is allowed.
    Unsigned,
    Signed {
        access_key: String,
        region: String,
    },
}

/// Verifies the request's signature against `credentials` (access key id →
/// secret key) at time `now` (Unix seconds).
pub fn verify(
    request: &HttpParts<'_>,
    credentials: &HashMap<String, String>,
    now: i64,
) -> Result<Authentication, SigV4Error> {
    verify_for_service(request, credentials, now, SERVICE)
}

/// `verify` for any service name: AWS's published SigV4 test suite signs
/// for a service called `service`.
pub(super) fn verify_for_service(
    request: &HttpParts<'_>,
    credentials: &HashMap<String, String>,
    now: i64,
    expected_service: &str,
) -> Result<Authentication, SigV4Error> {
    let Some(authorization) = request.single_header("authorization")? else {
        return Ok(Authentication::Unsigned);
    };
    let auth = parse_authorization(authorization)?;
    let amz_date = request
        .single_header("x-amz-date")?
        .ok_or(SigV4Error::MissingDate)?;
    let request_time = clock::parse_amz_date(amz_date).ok_or(SigV4Error::MissingDate)?;

    let scope_parts: Vec<&str> = auth.credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope_parts[..] else {
        return Err(SigV4Error::MalformedAuthorization(
            "Credential must be AKID/YYYYMMDD/region/service/aws4_request".to_string(),
        ));
    };
    if access_key.is_empty()
        || region.is_empty()
        || date != &amz_date[..8]
        || service != expected_service
        || terminator != "aws4_request"
    {
        return Err(SigV4Error::ScopeMismatch(
            auth.credential
                .split_once('/')
                .map_or("", |(_, s)| s)
                .to_string(),
        ));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(SigV4Error::HostNotSigned);
    }
    if let Some(claimed) = request.single_header("x-amz-content-sha256")?
        && claimed != hex::encode(Sha256::digest(request.body))
    {
        return Err(SigV4Error::PayloadHashMismatch);
    }
    let secret = credentials
        .get(access_key)
        .ok_or_else(|| SigV4Error::UnknownAccessKey(access_key.chars().take(128).collect()))?;
    // Checked after the key so that an unknown key is reported as such
    // whatever the clock says, and before the signature so that a stale
    // replay is not confirmed as correctly signed.
    if (now - request_time).abs() > MAX_CLOCK_SKEW_SECONDS {
        return Err(SigV4Error::Expired {
            request: amz_date.to_string(),
            server: clock::amz_date(now),
        });
    }

    let canonical = canonical_request(request, &auth.signed_headers)?;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    // The signature was checked to be 64 lowercase hex digits when the
    // header was parsed; `verify_slice` compares in constant time, so the
    // check does not tell an attacker how many leading bytes matched.
    let claimed = hex::decode(auth.signature)
        .map_err(|_| SigV4Error::MalformedAuthorization("Signature is not hex".into()))?;
    if signing_mac(secret, amz_date, &scope, &canonical)
        .verify_slice(&claimed)
        .is_ok()
    {
        Ok(Authentication::Signed {
            access_key: access_key.to_string(),
            region: region.to_string(),
        })
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

/// Signs a request as a SigV4 client would, returning the `X-Amz-Date`
/// and `Authorization` headers to add. Every header already in `request`
/// is signed (it must include `host`). For tests and for clients of the
/// daemon that speak to it over TCP.
pub fn sign(
    request: &HttpParts<'_>,
    access_key: &str,
    secret: &str,
    region: &str,
    unix_seconds: i64,
) -> Result<[(&'static str, String); 2], SigV4Error> {
    let amz_date = clock::amz_date(unix_seconds);
    let mut with_date = request.clone();
    with_date.headers.push(("x-amz-date", &amz_date));
    let mut names: Vec<String> = with_date
        .headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    if !names.iter().any(|n| n == "host") {
        return Err(SigV4Error::HostNotSigned);
    }
    let signed: Vec<&str> = names.iter().map(String::as_str).collect();
    let canonical = canonical_request(&with_date, &signed)?;
    let scope = format!("{}/{region}/{SERVICE}/aws4_request", &amz_date[..8]);
    let sig = signature(secret, &amz_date, &scope, &canonical);
    let authorization = format!(
        "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={}, Signature={sig}",
        signed.join(";")
    );
    Ok([("X-Amz-Date", amz_date), ("Authorization", authorization)])
}

struct AuthorizationHeader<'a> {
    credential: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthorizationHeader<'_>, SigV4Error> {
    let malformed = |why: &str| SigV4Error::MalformedAuthorization(why.to_string());
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm(
            algorithm.chars().take(64).collect(),
        ));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value"))?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(malformed(
                    "unknown component (expected Credential, SignedHeaders, Signature)",
                ));
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(malformed("a component appears twice"));
        }
    }
    let credential = credential.ok_or_else(|| malformed("missing Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("missing Signature"))?;
    if signature.len() != 64
        || !signature
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(malformed("Signature must be 64 lowercase hex digits"));
    }
    let signed_headers: Vec<&str> = signed_headers.split(';').collect();
    if signed_headers.iter().any(|h| {
        h.is_empty()
            || h.bytes()
                .any(|b| b.is_ascii_uppercase() || b.is_ascii_whitespace())
    }) {
        return Err(malformed(
            "SignedHeaders must be lowercase names separated by ';'",
        ));
    }
    Ok(AuthorizationHeader {
        credential,
        signed_headers,
        signature,
    })
}

fn canonical_request(
    request: &HttpParts<'_>,
    signed_headers: &[&str],
) -> Result<String, SigV4Error> {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target, ""));
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_path(path));
    out.push('\n');
    out.push_str(&canonical_query(query));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = request
            .header_values(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigV4Error::MissingSignedHeader(
                name.chars().take(64).collect(),
            ));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(&hex::encode(Sha256::digest(request.body)));
    Ok(out)
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed first).
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The HMAC over the string to sign, keyed with the key derived from the
/// secret and the scope: finalized, it is the signature.
fn signing_mac(secret: &str, amz_date: &str, scope: &str, canonical_request: &str) -> HmacSha256 {
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope.split('/') {
        let mut mac = new_mac(&key);
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    let mut mac = new_mac(&key);
    mac.update(string_to_sign.as_bytes());
    mac
}

/// The request's signature, lowercase hex.
fn signature(secret: &str, amz_date: &str, scope: &str, canonical_request: &str) -> String {
    hex::encode(
        signing_mac(secret, amz_date, scope, canonical_request)
            .finalize()
            .into_bytes(),
    )
}

/// The path with `.`/`..` and empty segments removed (as botocore's
/// `remove_dot_segments`), then percent-encoded again, `/` kept: SigV4
/// double-encodes paths for every service but S3.
fn canonical_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').fold(Vec::new(), |mut kept, segment| {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
        kept
    });
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(normalized.as_bytes(), true)
}

/// Query pairs decoded (`%XX` only), re-encoded the SigV4 way, sorted by
/// name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `%XX` decoding that keeps malformed escapes as they are (the signature
/// then simply fails to match).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_digit = |b: u8| char::from(b).to_digit(16);
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| Some((hex_digit(h[0])? * 16 + hex_digit(h[1])?) as u8));
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 encoding: unreserved characters as they are, the rest `%XX`
/// uppercase; `/` kept when encoding a path.
fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
