//! The incremental HTTP parser: pipelining, keep-alive, bodies, limits,
//! garbage.

use crate::imds::http::{
    HttpConnection, HttpError, MAX_BODY, MAX_HEAD, Request, Response, error_response,
};

fn feed_all(bytes: &[u8]) -> Result<Vec<Request>, HttpError> {
    HttpConnection::new().feed(bytes)
}

fn feed_bytewise(bytes: &[u8]) -> Result<Vec<Request>, HttpError> {
    let mut connection = HttpConnection::new();
    let mut requests = Vec::new();
    for byte in bytes {
        requests.extend(connection.feed(std::slice::from_ref(byte))?);
    }
    Ok(requests)
}

#[test]
fn imds_parser_reads_a_simple_request() {
    let requests = feed_all(
        b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/8 \r\n\r\n",
    )
    .unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str(), r.minor_version),
        ("GET", "/latest/meta-data/", 1)
    );
    assert_eq!(r.header("host"), Some("169.254.169.254"));
    assert_eq!(r.header("USER-AGENT"), Some("curl/8"));
    assert!(r.keep_alive);
}

#[test]
fn imds_parser_keep_alive_rules() {
    let cases: [(&[u8], bool); 5] = [
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
    ];
    for (bytes, keep_alive) in cases {
        let requests = feed_all(bytes).unwrap();
        assert_eq!(
            requests[0].keep_alive,
            keep_alive,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

const PIPELINE: &[u8] = b"GET /a HTTP/1.1\r\n\r\n\
    PUT /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
    \r\nGET /c HTTP/1.1\nHost: x\n\n\
    HEAD /d HTTP/1.1\r\nConnection: close\r\n\r\n\
    GET /e HTTP/1.1\r\n\r\n";

#[test]
fn imds_parser_pipelines_in_one_feed_and_byte_by_byte() {
    let whole = feed_all(PIPELINE).unwrap();
    let targets: Vec<&str> = whole.iter().map(|r| r.target.as_str()).collect();
    // The body "hello" is skipped, a stray CRLF and bare LFs are tolerated,
    // and nothing after "Connection: close" is parsed.
    assert_eq!(targets, ["/a", "/b", "/c", "/d"]);
    assert_eq!(feed_bytewise(PIPELINE).unwrap(), whole);
    for split in 1..PIPELINE.len() {
        let mut connection = HttpConnection::new();
        let mut requests = connection.feed(&PIPELINE[..split]).unwrap();
        requests.extend(connection.feed(&PIPELINE[split..]).unwrap());
        assert_eq!(requests, whole, "split at {split}");
    }
}

#[test]
fn imds_parser_skips_a_body_split_across_feeds() {
    let mut connection = HttpConnection::new();
    assert!(
        connection
            .feed(b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n01")
            .unwrap()
            .len()
            == 1
    );
    assert!(connection.feed(b"2345").unwrap().is_empty());
    let next = connection.feed(b"6789GET /y HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].target, "/y");
}

#[test]
fn imds_parser_bounds_the_head() {
    let head_of = |len: usize| {
        let prefix = b"GET / HTTP/1.1\r\nX-Pad: ";
        let mut bytes = prefix.to_vec();
        bytes.resize(len - 4, b'a');
        bytes.extend_from_slice(b"\r\n\r\n");
        bytes
    };
    assert_eq!(feed_all(&head_of(MAX_HEAD)).unwrap().len(), 1);
    assert_eq!(
        feed_all(&head_of(MAX_HEAD + 1)),
        Err(HttpError::HeadTooLarge)
    );
    assert_eq!(
        feed_bytewise(&head_of(MAX_HEAD + 1)),
        Err(HttpError::HeadTooLarge)
    );
    // An endless header line with no newline at all.
    assert_eq!(feed_all(&vec![b'G'; 100_000]), Err(HttpError::HeadTooLarge));
    assert_eq!(HttpError::HeadTooLarge.status(), 431);
}

#[test]
fn imds_parser_bounds_the_header_count() {
    let with_headers = |n: usize| {
        let mut bytes = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            bytes.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    };
    assert_eq!(feed_all(&with_headers(32)).unwrap()[0].headers.len(), 32);
    assert_eq!(feed_all(&with_headers(33)), Err(HttpError::TooManyHeaders));
}

#[test]
fn imds_parser_refuses_bad_bodies() {
    let big = format!("PUT / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
    assert_eq!(feed_all(big.as_bytes()), Err(HttpError::BodyTooLarge));
    let exact = format!("PUT / HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n");
    assert_eq!(feed_all(exact.as_bytes()).unwrap().len(), 1);
    let cases: [(&[u8], HttpError, u16); 5] = [
        (
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            HttpError::TransferEncoding,
            411,
        ),
        (
            b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            HttpError::BadContentLength,
            400,
        ),
        (
            b"PUT / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            HttpError::BadContentLength,
            400,
        ),
        (
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            HttpError::BadContentLength,
            400,
        ),
        (
            b"PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            HttpError::BodyTooLarge,
            413,
        ),
    ];
    for (bytes, error, status) in cases {
        assert_eq!(feed_all(bytes), Err(error.clone()));
        assert_eq!(error.status(), status);
    }
}

#[test]
fn imds_parser_turns_garbage_into_400_and_then_ignores_the_connection() {
    for garbage in [
        &b"\x00\x01\x02\x03\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / FOO/1.1\r\n\r\n",
        b"GET /\r\n\r\n",
        b"G E T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
    ] {
        let mut connection = HttpConnection::new();
        let error = connection.feed(garbage).unwrap_err();
        assert!(
            matches!(error, HttpError::Malformed(_)),
            "{garbage:?}: {error:?}"
        );
        assert_eq!(error.status(), 400);
        let response = error_response(&error);
        assert!(response.close);
        assert_eq!(
            String::from_utf8(response.to_bytes()).unwrap(),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\
             Server: EC2ws\r\nConnection: close\r\n\r\n400 - Bad Request"
        );
        assert_eq!(connection.feed(b"GET / HTTP/1.1\r\n\r\n").unwrap(), vec![]);
    }
}

#[test]
fn imds_response_encoding_is_deterministic() {
    let mut response = Response::new(200, "application/json", "{}").with_header("X-Test", "1");
    response.close = true;
    let expected = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
                    X-Test: 1\r\nServer: EC2ws\r\nConnection: close\r\n\r\n{}";
    assert_eq!(String::from_utf8(response.to_bytes()).unwrap(), expected);
    assert_eq!(response.to_bytes(), response.clone().to_bytes());
    response.head_only = true;
    assert!(
        String::from_utf8(response.to_bytes())
            .unwrap()
            .ends_with("Connection: close\r\n\r\n")
    );
}

/// Mutated requests in random chunks through the parser and the handler:
/// whatever the bytes, nothing panics and every answer encodes.
#[test]
fn imds_mutated_input_never_panics() {
    use crate::imds::tests::{full_config, imds};
    let mut service = imds(full_config());
    let now = std::time::Instant::now();
    let seeds: [&[u8]; 4] = [
        b"GET /latest/meta-data/public-keys/0/openssh-key HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET http://h/latest/%41 HTTP/1.0\r\n\r\n",
        b"HEAD /latest/dynamic/instance-identity/document?q HTTP/1.1\r\nConnection: close\r\n\r\n",
    ];
    let interesting = b"\r\n\0%/.:=? \x80\xff";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let mut bytes = seeds[round % seeds.len()].repeat(1 + round % 3);
        for _ in 0..(next() % 6) {
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = interesting[(next() as usize) % interesting.len()],
                1 => bytes[at] = next() as u8,
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, interesting[(next() as usize) % interesting.len()]),
            }
        }
        let mut connection = HttpConnection::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = 1 + (next() as usize) % rest.len().min(40);
            match connection.feed(&rest[..n]) {
                Ok(requests) => {
                    for request in &requests {
                        let response = service.handle(request, now);
                        assert!(response.to_bytes().starts_with(b"HTTP/1.1 "));
                    }
                }
                Err(error) => {
                    assert!(error_response(&error).close);
                    break;
                }
            }
            rest = &rest[n..];
        }
    }
}
