//! Just enough base64 for the IMDS: decoding user data from the metadata
//! JSON and encoding tokens and signature placeholders. No crate for it is
//! among the project's dependencies, and the alphabet fits in a few lines.

use thiserror::Error;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Base64Error {
    #[error("invalid base64 character {0:?} at offset {1}")]
    BadChar(char, usize),
    #[error("base64 input has a dangling final character")]
    Truncated,
}

/// Standard alphabet with `=` padding (RFC 4648 §4).
pub fn encode(data: &[u8]) -> String {
    encode_with(data, STANDARD)
}

/// URL-safe alphabet (RFC 4648 §5) with padding: no `+` or `/`, so a value
/// survives being pasted into a URL or a shell without quoting.
pub fn encode_url_safe(data: &[u8]) -> String {
    encode_with(data, URL_SAFE)
}

fn encode_with(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes either alphabet; padding is optional and ASCII whitespace is
/// skipped, so the output of `base64` (wrapped at 76 columns) is accepted.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut seen_pad = false;
    for (pos, c) in text.char_indices() {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            '=' => {
                seen_pad = true;
                continue;
            }
            c if c.is_ascii_whitespace() => continue,
            c => return Err(Base64Error::BadChar(c, pos)),
        };
        if seen_pad {
            // Data after padding: not something a base64 encoder produces.
            return Err(Base64Error::BadChar(c, pos));
        }
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits means one lone character: it cannot encode a byte.
    if bits >= 6 {
        return Err(Base64Error::Truncated);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imds_base64_round_trips_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn imds_base64_accepts_wrapped_unpadded_and_url_safe_input() {
        assert_eq!(decode("Zm9v\nYmE").unwrap(), b"fooba");
        assert_eq!(encode_url_safe(&[0xfb, 0xff]), "-_8=");
        assert_eq!(decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn imds_base64_rejects_garbage() {
        assert_eq!(decode("Zm9v!"), Err(Base64Error::BadChar('!', 4)));
        assert_eq!(decode("Zm9vY"), Err(Base64Error::Truncated));
        assert!(decode("Zg==Zg").is_err());
    }
}
