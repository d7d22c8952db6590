//! EC2 resource ids (`i-0123456789abcdef0`) and request ids (UUIDv4).
//!
//! Validation here is syntactic only: whether a well-formed id names
//! something is the caller's question, which is how EC2 tells
//! `InvalidInstanceID.Malformed` (this module says no) from
//! `InvalidInstanceID.NotFound` (the store says no).

use std::fmt;

use thiserror::Error;

use super::random;

/// Hex digits after the prefix in ids we mint (EC2's current long form).
pub const LONG_ID_HEX: usize = 17;
/// Hex digits in EC2's legacy short ids, still accepted on input.
pub const SHORT_ID_HEX: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Instance,
    Image,
    Volume,
    Snapshot,
    Reservation,
    NetworkInterface,
    KeyPair,
    Subnet,
    Vpc,
    SecurityGroup,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 10] = [
        ResourceKind::Instance,
        ResourceKind::Image,
        ResourceKind::Volume,
        ResourceKind::Snapshot,
        ResourceKind::Reservation,
        ResourceKind::NetworkInterface,
        ResourceKind::KeyPair,
        ResourceKind::Subnet,
        ResourceKind::Vpc,
        ResourceKind::SecurityGroup,
    ];

    /// The id prefix, dash included.
    pub fn prefix(self) -> &'static str {
        match self {
            ResourceKind::Instance => "i-",
            ResourceKind::Image => "ami-",
            ResourceKind::Volume => "vol-",
            ResourceKind::Snapshot => "snap-",
            ResourceKind::Reservation => "r-",
            ResourceKind::NetworkInterface => "eni-",
            ResourceKind::KeyPair => "key-",
            ResourceKind::Subnet => "subnet-",
            ResourceKind::Vpc => "vpc-",
            ResourceKind::SecurityGroup => "sg-",
        }
    }

    /// How EC2 names the kind in messages ("The instance ID ...").
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::Instance => "instance",
            ResourceKind::Image => "image",
            ResourceKind::Volume => "volume",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Reservation => "reservation",
            ResourceKind::NetworkInterface => "network interface",
            ResourceKind::KeyPair => "key pair",
            ResourceKind::Subnet => "subnet",
            ResourceKind::Vpc => "vpc",
            ResourceKind::SecurityGroup => "security group",
        }
    }

    /// The kind an id claims by its prefix, whether or not the rest is valid
    /// (CreateTags takes ids of any kind and must say which one is bad).
    pub fn of(id: &str) -> Option<ResourceKind> {
        // No prefix begins another (`i-` is not the start of `ami-`), so
        // the first match is the only one.
        ResourceKind::ALL
            .into_iter()
            .find(|kind| id.starts_with(kind.prefix()))
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("invalid {kind} id {id:?}: expected {prefix} followed by {LONG_ID_HEX} (or {SHORT_ID_HEX}) lowercase hex digits", prefix = kind.prefix())]
    Malformed { kind: ResourceKind, id: String },
}

/// A new random id of `kind`: prefix + 17 lowercase hex digits.
pub fn new_id(kind: ResourceKind) -> String {
    let bytes: [u8; 9] = random::bytes();
    let mut hex = hex::encode(bytes);
    hex.truncate(LONG_ID_HEX);
    format!("{}{hex}", kind.prefix())
}

/// Whether `id` is a syntactically valid id of `kind`.
pub fn is_valid(kind: ResourceKind, id: &str) -> bool {
    let Some(hex) = id.strip_prefix(kind.prefix()) else {
        return false;
    };
    (hex.len() == LONG_ID_HEX || hex.len() == SHORT_ID_HEX)
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn validate(kind: ResourceKind, id: &str) -> Result<(), IdError> {
    if is_valid(kind, id) {
        Ok(())
    } else {
        Err(IdError::Malformed {
            kind,
            // Ids come from requests: keep what we echo back bounded.
            id: id.chars().take(64).collect(),
        })
    }
}

/// A random (version 4, RFC 9562) UUID in its lowercase hyphenated form, as
/// EC2's `requestId`.
pub fn new_request_id() -> String {
    let mut bytes: [u8; 16] = random::bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC variant
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
