//! The base64 rules of EC2's blob parameters (UserData, PublicKeyMaterial)
//! over the `base64` crate, and the colon-separated hex of key-pair
//! fingerprints.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),
}

/// Standard alphabet, padding optional (botocore pads, hand-made requests
/// often do not), bits past the last whole byte must be zero.
const EC2_BLOB: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Standard alphabet with `=` padding.
pub fn base64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Stricter than the metadata service's decoder on purpose: EC2 refuses
/// user data and key material in the URL-safe alphabet or with bytes after
/// the padding, so this decoder does too. Standard alphabet; padding
/// optional; ASCII whitespace (line breaks in PEM or in a user's file)
/// ignored.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, CodecError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    Ok(EC2_BLOB.decode(compact)?)
}

pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
