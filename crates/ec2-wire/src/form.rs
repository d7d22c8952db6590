//! `application/x-www-form-urlencoded` decoding, strict: a bad `%` escape
//! or a name or value that is not UTF-8 is an error, never replaced with
//! U+FFFD, so that what a handler reads is exactly what the client sent.

use thiserror::Error;

/// Why a form body cannot be read (the request layer maps these to EC2's
/// errors).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormError {
    #[error("the request body is {size} bytes; at most {max} are allowed")]
    BodyTooLarge { size: usize, max: usize },
    #[error("the request has more than {max} parameters")]
    TooManyParameters { max: usize },
    #[error("malformed form body: {0}")]
    Malformed(String),
}

/// The largest request body accepted (EC2's own cap is in this range; user
/// data, the largest legitimate parameter, is 16 KiB before base64).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The most `name=value` pairs one request may carry.
pub const MAX_PARAMS: usize = 10_000;

/// Splits and decodes a form body into (name, value) pairs, in order.
/// Empty pieces (`a=1&&b=2`) are skipped; a piece without `=` has an empty
/// value, as browsers and Python's `parse_qsl(keep_blank_values=True)` do.
pub fn decode_pairs(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(FormError::BodyTooLarge {
            size: body.len(),
            max: MAX_BODY_BYTES,
        });
    }
    let mut pairs = Vec::new();
    for piece in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if pairs.len() == MAX_PARAMS {
            return Err(FormError::TooManyParameters { max: MAX_PARAMS });
        }
        let (raw_name, raw_value) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &b""[..]),
        };
        let name = decode_component(raw_name)
            .map_err(|why| FormError::Malformed(format!("parameter name: {why}")))?;
        if name.is_empty() {
            return Err(FormError::Malformed(
                "a parameter has an empty name".to_string(),
            ));
        }
        let value = decode_component(raw_value)
            .map_err(|why| FormError::Malformed(format!("value of {}: {why}", shorten(&name))))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Decodes one name or value: `+` is a space, `%XX` a byte; the bytes must
/// be UTF-8.
pub fn decode_component(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let byte = raw
                    .get(i + 1..i + 3)
                    .and_then(|hex| Some(hex_value(hex[0])? << 4 | hex_value(hex[1])?))
                    .ok_or_else(|| format!("invalid percent-escape at offset {i}"))?;
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not valid UTF-8 once decoded".to_string())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Names echoed in errors are the client's; keep them readable and short.
pub fn shorten(text: &str) -> String {
    const MAX: usize = 128;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}
