//! The parser, the encoder and the blocking reader.

use std::io::{self, Read};

use crate::*;

const LIMITS: Limits = Limits {
    max_head: 256,
    max_headers: 8,
    max_body: 64,
};

fn config(body: BodyPolicy, strict_utf8: bool) -> Config {
    Config {
        limits: LIMITS,
        body,
        strict_utf8,
    }
}

const KEEP: Config = Config {
    limits: LIMITS,
    body: BodyPolicy::Keep,
    strict_utf8: true,
};
const DISCARD: Config = Config {
    limits: LIMITS,
    body: BodyPolicy::Discard,
    strict_utf8: false,
};

fn feed_all(config: Config, bytes: &[u8]) -> Result<Vec<Request>, HttpError> {
    HttpConnection::new(config).feed(bytes)
}

fn feed_bytewise(config: Config, bytes: &[u8]) -> Result<Vec<Request>, HttpError> {
    let mut connection = HttpConnection::new(config);
    let mut requests = Vec::new();
    for byte in bytes {
        requests.extend(connection.feed(std::slice::from_ref(byte))?);
    }
    Ok(requests)
}

const PIPELINE: &[u8] = b"GET /a HTTP/1.1\r\n\r\n\
    PUT /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
    \r\nGET /c HTTP/1.1\nHost: x\n\n\
    POST /d HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz\
    GET /e HTTP/1.1\r\n\r\n";

#[test]
fn pipelined_requests_in_one_feed_byte_by_byte_and_at_every_split() {
    for config in [KEEP, DISCARD] {
        let whole = feed_all(config, PIPELINE).unwrap();
        let targets: Vec<&str> = whole.iter().map(|r| r.target.as_str()).collect();
        // A stray CRLF and bare LFs are tolerated; nothing after
        // "Connection: close" is parsed.
        assert_eq!(targets, ["/a", "/b", "/c", "/d"]);
        assert_eq!(feed_bytewise(config, PIPELINE).unwrap(), whole);
        for split in 1..PIPELINE.len() {
            let mut connection = HttpConnection::new(config);
            let mut requests = connection.feed(&PIPELINE[..split]).unwrap();
            requests.extend(connection.feed(&PIPELINE[split..]).unwrap());
            assert_eq!(requests, whole, "split at {split}");
        }
        let bodies: Vec<&[u8]> = whole.iter().map(|r| &r.body[..]).collect();
        match config.body {
            BodyPolicy::Keep => assert_eq!(bodies, [&b""[..], b"hello", b"", b"xyz"]),
            BodyPolicy::Discard => assert!(bodies.iter().all(|b| b.is_empty())),
        }
        assert!(!whole[3].keep_alive);
    }
}

#[test]
fn next_request_buffers_at_most_one_head() {
    let many = b"GET / HTTP/1.1\r\n\r\n".repeat(1000);
    let mut connection = HttpConnection::new(KEEP);
    let mut input = &many[..];
    let mut count = 0;
    while let Some(request) = connection.next_request(&mut input).unwrap() {
        count += 1;
        assert_eq!(request.target, "/");
        // What is not in `input` is answered or within one head's bytes.
        assert!(many.len() - input.len() <= count * 18 + LIMITS.max_head);
    }
    assert_eq!(count, 1000);
    assert!(input.is_empty());
}

#[test]
fn an_error_after_good_requests_comes_after_them_with_next_request() {
    let bytes = b"GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\r\nContent-Length: x\r\n\r\n";
    let mut connection = HttpConnection::new(KEEP);
    let mut input = &bytes[..];
    assert_eq!(
        connection.next_request(&mut input).unwrap().unwrap().target,
        "/ok"
    );
    assert_eq!(
        connection.next_request(&mut input),
        Err(HttpError::BadContentLength)
    );
    assert!(connection.is_finished());
    // `feed` drops the good one with the error.
    assert_eq!(feed_all(KEEP, bytes), Err(HttpError::BadContentLength));
}

#[test]
fn bodies_split_across_feeds() {
    for config in [KEEP, DISCARD] {
        let mut connection = HttpConnection::new(config);
        let first = connection
            .feed(b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n01")
            .unwrap();
        // Discard yields the request at its head; Keep once the body is in.
        assert_eq!(first.len(), usize::from(config.body == BodyPolicy::Discard));
        assert!(connection.mid_request());
        assert!(connection.feed(b"2345").unwrap().is_empty());
        let next = connection.feed(b"6789GET /y HTTP/1.1\r\n\r\n").unwrap();
        let targets: Vec<&str> = next.iter().map(|r| r.target.as_str()).collect();
        match config.body {
            BodyPolicy::Keep => {
                assert_eq!(targets, ["/x", "/y"]);
                assert_eq!(next[0].body, b"0123456789");
            }
            BodyPolicy::Discard => assert_eq!(targets, ["/y"]),
        }
        assert!(!connection.mid_request());
    }
}

#[test]
fn head_limit() {
    let head_of = |len: usize| {
        let mut bytes = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        bytes.resize(len - 4, b'a');
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes
    };
    for config in [KEEP, DISCARD] {
        assert_eq!(
            feed_all(config, &head_of(LIMITS.max_head)).unwrap().len(),
            1
        );
        assert_eq!(
            feed_all(config, &head_of(LIMITS.max_head + 1)),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(
            feed_bytewise(config, &head_of(LIMITS.max_head + 1)),
            Err(HttpError::HeadTooLarge)
        );
        assert_eq!(
            feed_all(config, &[b'G'; 10_000]),
            Err(HttpError::HeadTooLarge)
        );
    }
    assert_eq!(HttpError::HeadTooLarge.status(), 431);
    // Pipelined heads each within the limit are fine together.
    let many = b"GET / HTTP/1.1\r\n\r\n".repeat(100);
    assert_eq!(feed_all(KEEP, &many).unwrap().len(), 100);
}

#[test]
fn header_count_limit() {
    let with_headers = |n: usize| {
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            bytes.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    };
    assert_eq!(
        feed_all(KEEP, &with_headers(8)).unwrap()[0].headers.len(),
        8
    );
    assert_eq!(
        feed_all(KEEP, &with_headers(9)),
        Err(HttpError::TooManyHeaders)
    );
    assert_eq!(HttpError::TooManyHeaders.status(), 431);
}

#[test]
fn body_limit_and_content_length_strictness() {
    for config in [KEEP, DISCARD] {
        let at = |n: usize| {
            format!(
                "PUT / HTTP/1.1\r\nContent-Length: {n}\r\n\r\n{}",
                "b".repeat(n)
            )
        };
        assert_eq!(
            feed_all(config, at(LIMITS.max_body).as_bytes())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            feed_all(config, at(LIMITS.max_body + 1).as_bytes()),
            Err(HttpError::BodyTooLarge)
        );
        let cases: [(&[u8], HttpError); 8] = [
            (
                b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::TransferEncoding,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HttpError::BadContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                HttpError::BodyTooLarge,
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(feed_all(config, bytes), Err(error), "{bytes:?}");
        }
    }
    // Duplicates that agree, and leading zeros, are one length.
    let agreeing = b"PUT / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 002\r\n\r\nok";
    assert_eq!(feed_all(KEEP, agreeing).unwrap()[0].body, b"ok");
    assert_eq!(HttpError::TransferEncoding.status(), 411);
    assert_eq!(HttpError::BadContentLength.status(), 400);
    assert_eq!(HttpError::BodyTooLarge.status(), 413);
}

#[test]
fn keep_alive_matrix() {
    let cases: [(&[u8], bool); 10] = [
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nConnection: TE\r\nConnection: close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n", false),
    ];
    for (bytes, keep_alive) in cases {
        for config in [KEEP, DISCARD] {
            let requests = feed_all(config, bytes).unwrap();
            assert_eq!(requests[0].keep_alive, keep_alive, "{bytes:?}");
            assert_eq!(
                requests[0].minor_version,
                u8::from(bytes.contains(&b'1') && !bytes.starts_with(b"GET / HTTP/1.0"))
            );
        }
    }
}

#[test]
fn expect_100_continue_is_signalled_once_while_the_body_is_missing() {
    let mut connection = HttpConnection::new(KEEP);
    let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    assert!(connection.feed(head).unwrap().is_empty());
    assert!(connection.take_continue());
    assert!(!connection.take_continue());
    assert!(connection.feed(b"ab").unwrap().is_empty());
    assert!(!connection.take_continue());
    assert_eq!(connection.feed(b"cd").unwrap()[0].body, b"abcd");
    // Body already there, or none expected: no 100 Continue.
    let mut connection = HttpConnection::new(KEEP);
    let whole = [&head[..], b"abcd"].concat();
    assert_eq!(connection.feed(&whole).unwrap().len(), 1);
    assert!(!connection.take_continue());
    let mut connection = HttpConnection::new(KEEP);
    connection
        .feed(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert!(!connection.take_continue());
}

#[test]
fn non_utf8_headers_are_refused_when_strict_and_lossy_otherwise() {
    let bytes = b"GET / HTTP/1.1\r\nX-Amz-Date: 2024\xff\xfe\r\n\r\n";
    assert_eq!(
        feed_all(config(BodyPolicy::Keep, true), bytes),
        Err(HttpError::NotUtf8("X-Amz-Date".into()))
    );
    assert_eq!(HttpError::NotUtf8(String::new()).status(), 400);
    let lossy = feed_all(config(BodyPolicy::Keep, false), bytes).unwrap();
    assert_eq!(lossy[0].header("x-amz-date"), Some("2024\u{fffd}\u{fffd}"));
    // Valid UTF-8 beyond ASCII passes either way.
    let utf8 = "GET / HTTP/1.1\r\nX-Name: été\r\n\r\n";
    assert_eq!(
        feed_all(KEEP, utf8.as_bytes()).unwrap()[0].header("x-name"),
        Some("été")
    );
}

#[test]
fn garbage_is_malformed_and_later_bytes_are_ignored() {
    for garbage in [
        &b"\x00\x01\x02\x03\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / FOO/1.1\r\n\r\n",
        b"GET /\r\n\r\n",
        b"G E T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
    ] {
        let mut connection = HttpConnection::new(DISCARD);
        let error = connection.feed(garbage).unwrap_err();
        assert!(
            matches!(error, HttpError::Malformed(_)),
            "{garbage:?}: {error:?}"
        );
        assert_eq!(error.status(), 400);
        assert!(connection.is_finished());
        assert_eq!(connection.feed(b"GET / HTTP/1.1\r\n\r\n").unwrap(), vec![]);
    }
}

#[test]
fn header_lookup() {
    let requests = feed_all(
        KEEP,
        b"GET /p?q HTTP/1.1\r\nHost:  h  \r\nX-A: 1\r\nx-a: 2\r\n\r\n",
    )
    .unwrap();
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/p?q"));
    assert_eq!(r.header("HOST"), Some("h"));
    assert_eq!(r.header("x-a"), None, "a repeated header is not one value");
    assert_eq!(r.header_values("X-A").collect::<Vec<_>>(), ["1", "2"]);
    assert!(r.has_header("x-a") && !r.has_header("x-b"));
}

#[test]
fn response_encoding() {
    let imds = Style {
        server: Some("EC2ws"),
        connection: ConnectionHeader::CloseOnly,
    };
    let mut response = Response::new(200, "application/json", "{}").with_header("X-Test", "1");
    assert_eq!(
        String::from_utf8(response.encode(&imds)).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         X-Test: 1\r\nServer: EC2ws\r\n\r\n{}"
    );
    response.close = true;
    response.head_only = true;
    assert_eq!(
        String::from_utf8(response.encode(&imds)).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         X-Test: 1\r\nServer: EC2ws\r\nConnection: close\r\n\r\n"
    );
    let always = Style {
        server: None,
        connection: ConnectionHeader::Always,
    };
    let response = Response::new(507, "text/plain", "x")
        .with_header("A", "1")
        .with_header("B", "2");
    assert_eq!(
        String::from_utf8(response.encode(&always)).unwrap(),
        "HTTP/1.1 507 Insufficient Storage\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\
         A: 1\r\nB: 2\r\nConnection: keep-alive\r\n\r\nx"
    );
    assert_eq!(reason(431), "Request Header Fields Too Large");
    assert_eq!(reason(599), "Unknown");
    assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
}

/// A stream that yields its chunks one per read, a timeout between
/// chunks when asked.
struct Chunks {
    chunks: Vec<Option<Vec<u8>>>,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.chunks.is_empty() {
            return Ok(0);
        }
        match self.chunks.remove(0) {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(mut chunk) => {
                let n = chunk.len().min(buf.len());
                let rest = chunk.split_off(n);
                buf[..n].copy_from_slice(&chunk);
                if !rest.is_empty() {
                    self.chunks.insert(0, Some(rest));
                }
                Ok(n)
            }
        }
    }
}

#[test]
fn blocking_reader_pipelines_and_reports_eof() {
    let mut stream = PIPELINE;
    let mut reader = BlockingReader::new(KEEP, 7);
    let mut targets = Vec::new();
    loop {
        match reader.next_event(&mut stream, |_| false).unwrap() {
            Event::Request(r) => targets.push(r.target),
            Event::Closed => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(targets, ["/a", "/b", "/c", "/d"]);
    let mut truncated = &b"GET / HTTP/1.1\r\nHost"[..];
    let mut reader = BlockingReader::new(KEEP, 4096);
    assert_eq!(
        reader.next_event(&mut truncated, |_| false).unwrap(),
        Event::Truncated
    );
    let mut empty = &b""[..];
    assert_eq!(
        BlockingReader::new(KEEP, 4096)
            .next_event(&mut empty, |_| false)
            .unwrap(),
        Event::Closed
    );
    let mut bad = &b"GET / HTTP/1.1\r\nContent-Length: 65\r\n\r\n"[..];
    assert_eq!(
        BlockingReader::new(KEEP, 4096)
            .next_event(&mut bad, |_| false)
            .unwrap(),
        Event::Error(HttpError::BodyTooLarge)
    );
}

#[test]
fn blocking_reader_continue_and_timeouts() {
    let mut stream = Chunks {
        chunks: vec![
            None,
            Some(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".to_vec()),
            None,
            Some(b"ok".to_vec()),
            None,
        ],
    };
    let mut reader = BlockingReader::new(KEEP, 4096);
    let mut waits = Vec::new();
    let mut keep_waiting = |mid: bool| {
        waits.push(mid);
        true
    };
    assert_eq!(
        reader.next_event(&mut stream, &mut keep_waiting).unwrap(),
        Event::Continue
    );
    let Event::Request(r) = reader.next_event(&mut stream, &mut keep_waiting).unwrap() else {
        panic!("request")
    };
    assert_eq!(r.body, b"ok");
    // Idle before the request, mid-request while the body was awaited.
    assert_eq!(waits, [false, true]);
    let error = reader.next_event(&mut stream, |_| false).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
}
