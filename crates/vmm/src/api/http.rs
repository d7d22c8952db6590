//! Just enough HTTP/1.1 for the control socket: one request at a time per
//! connection (keep-alive), parsed with httparse, bounded sizes.

use std::io::{self, Read, Write};

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    pub close: bool,
}

pub enum ReadOutcome {
    Request(Request),
    /// The peer closed the connection between requests.
    Closed,
    /// Not HTTP, or over the limits: answer 400 and close.
    Bad(String),
}

/// Reads one request; `buf` carries bytes already read past the previous one.
pub fn read_request(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<ReadOutcome> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                let mut content_length = 0usize;
                let mut close = req.version == Some(0);
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        match std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                        {
                            Some(n) if n <= MAX_BODY => content_length = n,
                            _ => return Ok(ReadOutcome::Bad("bad Content-Length".into())),
                        }
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Ok(ReadOutcome::Bad("chunked bodies are not supported".into()));
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close = h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                while buf.len() < head_len + content_length {
                    if !fill(stream, buf)? {
                        return Ok(ReadOutcome::Bad("body shorter than Content-Length".into()));
                    }
                }
                let body = buf[head_len..head_len + content_length].to_vec();
                buf.drain(..head_len + content_length);
                return Ok(ReadOutcome::Request(Request {
                    method,
                    path,
                    body,
                    close,
                }));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Ok(ReadOutcome::Bad("request head too large".into()));
                }
                if !fill(stream, buf)? {
                    return Ok(if buf.is_empty() {
                        ReadOutcome::Closed
                    } else {
                        ReadOutcome::Bad("connection closed mid-request".into())
                    });
                }
            }
            Err(e) => return Ok(ReadOutcome::Bad(format!("malformed request: {e}"))),
        }
    }
}

fn fill(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    extra_headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    // JSON unless the caller names another type.
    if !extra_headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pipelined_requests_and_rejects_garbage() {
        let raw = b"GET /vm HTTP/1.1\r\nHost: x\r\n\r\nPUT /vm/stop HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let mut stream = &raw[..];
        let mut buf = Vec::new();
        let ReadOutcome::Request(a) = read_request(&mut stream, &mut buf).unwrap() else {
            panic!("first request")
        };
        assert_eq!((a.method.as_str(), a.path.as_str()), ("GET", "/vm"));
        let ReadOutcome::Request(b) = read_request(&mut stream, &mut buf).unwrap() else {
            panic!("second request")
        };
        assert_eq!(b.body, b"{}");
        assert!(matches!(
            read_request(&mut stream, &mut buf).unwrap(),
            ReadOutcome::Closed
        ));
        let mut garbage = &b"\x00\x01\x02 nonsense\r\n\r\n"[..];
        assert!(matches!(
            read_request(&mut garbage, &mut Vec::new()).unwrap(),
            ReadOutcome::Bad(_)
        ));
        let mut huge = &b"PUT / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"[..];
        assert!(matches!(
            read_request(&mut huge, &mut Vec::new()).unwrap(),
            ReadOutcome::Bad(_)
        ));
    }
}
