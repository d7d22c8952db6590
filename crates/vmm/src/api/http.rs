//! HTTP/1.1 for the control socket, on the shared `flint_http` parser and
//! encoder: keep-alive, pipelining, bounded sizes, bodies kept for the
//! JSON requests, no Server header.

use std::io::{self, Write};

use flint_http::{BlockingReader, BodyPolicy, Config, ConnectionHeader, Limits, Style};

pub use flint_http::{Event, Request};

const CONFIG: Config = Config {
    limits: Limits {
        max_head: 16 * 1024,
        max_headers: 32,
        max_body: 64 * 1024,
    },
    body: BodyPolicy::Keep,
    strict_utf8: false,
};

const STYLE: Style = Style {
    server: None,
    connection: ConnectionHeader::CloseOnly,
};

/// Reads the requests of one connection.
pub fn reader() -> BlockingReader {
    BlockingReader::new(CONFIG, 4096)
}

/// One answer; `Connection: close` when `close`.
pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    content_type: &'static str,
    allow: Option<&'static str>,
    body: &str,
    close: bool,
) -> io::Result<()> {
    let mut response = flint_http::Response::new(status, content_type, body);
    if let Some(allow) = allow {
        response.headers.push(("Allow", allow.to_string()));
    }
    response.close = close;
    stream.write_all(&response.encode(&STYLE))?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(stream: &mut &[u8], reader: &mut BlockingReader) -> Event {
        reader.next_event(stream, |_| false).unwrap()
    }

    #[test]
    fn parses_pipelined_requests_and_rejects_garbage() {
        let raw = b"GET /vm HTTP/1.1\r\nHost: x\r\n\r\nPUT /vm/stop HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let mut stream = &raw[..];
        let mut reader = reader();
        let Event::Request(a) = next(&mut stream, &mut reader) else {
            panic!("first request")
        };
        assert_eq!((a.method.as_str(), a.target.as_str()), ("GET", "/vm"));
        let Event::Request(b) = next(&mut stream, &mut reader) else {
            panic!("second request")
        };
        assert_eq!(b.body, b"{}");
        assert_eq!(next(&mut stream, &mut reader), Event::Closed);
        let mut garbage = &b"\x00\x01\x02 nonsense\r\n\r\n"[..];
        assert!(matches!(
            next(&mut garbage, &mut super::reader()),
            Event::Error(_)
        ));
        let mut huge = &b"PUT / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"[..];
        assert!(matches!(
            next(&mut huge, &mut super::reader()),
            Event::Error(_)
        ));
    }

    #[test]
    fn responses_name_their_type_and_close() {
        let mut out = Vec::new();
        write_response(&mut out, 405, "application/json", Some("PUT"), "{}", true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nAllow: PUT\r\nConnection: close\r\n\r\n{}"
        );
    }
}
