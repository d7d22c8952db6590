//! HTTP/1.1 for the EC2 Query API: just what botocore, the aws CLI and curl
//! send. Requests are read with httparse into a bounded buffer; bodies need
//! a Content-Length (no chunked uploads) of at most 1 MiB; keep-alive and
//! pipelining work; a connection idle for [`IDLE_TIMEOUT`] or slower than
//! [`REQUEST_TIMEOUT`] to send one request is closed. POST form bodies and
//! GET query strings are both accepted (parameters may be in both).
//! Every failure is an EC2 error document with a 4xx status.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::api::Call;
use super::Shared;
use super::auth::authenticate;
use super::reply::{Reply, XML, reason};
use ec2_wire::error::Ec2Error;
use ec2_wire::form::{self, MAX_BODY_BYTES};
use ec2_wire::ids::new_request_id;
use ec2_wire::request::Ec2Request;
use ec2_wire::sigv4::HttpParts;

pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads wake this often to notice a shutdown.
const TICK: Duration = Duration::from_millis(500);

pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub fn set_blocking(&self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_nonblocking(false),
            Stream::Tcp(s) => s.set_nonblocking(false),
        }
    }

    fn set_timeouts(&self, read: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(REQUEST_TIMEOUT))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(read))?;
                s.set_write_timeout(Some(REQUEST_TIMEOUT))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

fn write_reply(stream: &mut Stream, reply: &Reply) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         x-amzn-RequestId: {}\r\nServer: flint\r\nConnection: {}\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len(),
        reply.request_id,
        if reply.close { "close" } else { "keep-alive" }
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&reply.body);
    stream.write_all(&out)?;
    stream.flush()
}

/// Over the connection cap: one error reply, then close.
pub fn refuse_busy(mut stream: Stream) {
    let _ = stream.set_timeouts(Duration::from_secs(1));
    let reply = Reply::error(&Ec2Error::request_limit_exceeded(), new_request_id(), true);
    let _ = write_reply(&mut stream, &reply);
}

enum Head {
    /// Bytes of the head, and the parsed parts we need.
    Complete(usize),
    Partial,
}

fn parse_head(buf: &[u8]) -> Result<Head, Ec2Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Head::Complete(n)),
        Ok(httparse::Status::Partial) => Ok(Head::Partial),
        Err(httparse::Error::TooManyHeaders) => Err(Ec2Error::new(
            "RequestHeaderSectionTooLarge",
            431,
            format!("More than {MAX_HEADERS} headers"),
        )),
        Err(e) => Err(Ec2Error::new(
            "MalformedHTTPRequest",
            400,
            format!("Malformed HTTP request: {e}"),
        )),
    }
}

pub fn serve_connection(shared: &Shared, mut stream: Stream) {
    if stream.set_timeouts(TICK).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let reply = match read_and_handle(shared, &mut stream, &mut buf) {
            Ok(Some(reply)) => reply,
            Ok(None) => return,
            Err(reply) => reply,
        };
        if write_reply(&mut stream, &reply).is_err() {
            return;
        }
        if reply.close {
            linger(&mut stream);
            return;
        }
        if shared.shutting_down.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Before closing after an error, reads (and drops) what the client is
/// still sending, briefly and boundedly: closing a socket with unread data
/// resets the connection, and the client would lose the error reply.
fn linger(stream: &mut Stream) {
    let _ = match stream {
        Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut drained = 0usize;
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline && drained < 4 * MAX_BODY_BYTES {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Fills `buf` from the stream; Ok(false) on EOF or timeout/shutdown.
fn fill(
    shared: &Shared,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<bool, ()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.shutting_down.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

/// One request off the connection: Ok(None) when the connection is done
/// (EOF, idle, shutdown), Err(reply) for a reply after which it closes.
fn read_and_handle(
    shared: &Shared,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
) -> Result<Option<Reply>, Reply> {
    let started = Instant::now();
    let fatal = |e: Ec2Error| Reply::error(&e, new_request_id(), true);
    // The head.
    let head_len = loop {
        match parse_head(buf).map_err(fatal)? {
            Head::Complete(n) => break n,
            Head::Partial if buf.len() > MAX_HEADER_BYTES => {
                return Err(fatal(Ec2Error::new(
                    "RequestHeaderSectionTooLarge",
                    431,
                    format!("The request head is larger than {MAX_HEADER_BYTES} bytes"),
                )));
            }
            Head::Partial => {}
        }
        let deadline = if buf.is_empty() {
            started + IDLE_TIMEOUT
        } else {
            started + REQUEST_TIMEOUT
        };
        match fill(shared, stream, buf, deadline) {
            Ok(true) => {}
            _ => return Ok(None),
        }
    };
    if head_len > MAX_HEADER_BYTES {
        return Err(fatal(Ec2Error::new(
            "RequestHeaderSectionTooLarge",
            431,
            format!("The request head is larger than {MAX_HEADER_BYTES} bytes"),
        )));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Parsed before, so this succeeds again; re-parsed so that the parts
    // can borrow from `buf` once the body is in.
    if req.parse(&buf[..head_len]).is_err() {
        return Err(fatal(Ec2Error::new(
            "MalformedHTTPRequest",
            400,
            "Malformed HTTP request",
        )));
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("/").to_string();
    let version = req.version.unwrap_or(1);
    let mut owned_headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| {
            fatal(Ec2Error::new(
                "MalformedHTTPRequest",
                400,
                format!("Header {} is not UTF-8", h.name),
            ))
        })?;
        owned_headers.push((h.name.to_string(), value.to_string()));
    }
    let header = |name: &str| {
        owned_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if header("transfer-encoding").is_some() {
        return Err(fatal(Ec2Error::new(
            "MissingContentLength",
            411,
            "Chunked request bodies are not supported; send Content-Length",
        )));
    }
    let content_length = match header("content-length") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            fatal(Ec2Error::new(
                "MalformedHTTPRequest",
                400,
                "Invalid Content-Length",
            ))
        })?,
    };
    if content_length > MAX_BODY_BYTES {
        return Err(fatal(Ec2Error::request_entity_too_large(MAX_BODY_BYTES)));
    }
    let mut close = match header("connection") {
        Some(v) if v.eq_ignore_ascii_case("close") => true,
        Some(v) if v.eq_ignore_ascii_case("keep-alive") => false,
        _ => version == 0,
    };
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        && buf.len() < head_len + content_length
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while buf.len() < head_len + content_length {
        match fill(shared, stream, buf, started + REQUEST_TIMEOUT) {
            Ok(true) => {}
            _ => return Ok(None),
        }
    }
    let body: Vec<u8> = buf[head_len..head_len + content_length].to_vec();
    buf.drain(..head_len + content_length);
    if shared.shutting_down.load(Ordering::SeqCst) {
        close = true;
    }
    let request_id = new_request_id();
    let parts = HttpParts {
        method: &method,
        target: &target,
        headers: owned_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
        body: &body,
    };
    if method == "GET"
        && let Some(reply) = super::metrics::reply(shared, &target, &request_id, close)
    {
        return Ok(Some(reply));
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| handle(shared, &parts, &request_id)))
        .unwrap_or_else(|_| Err(Ec2Error::internal_error("the request handler failed")));
    Ok(Some(match outcome {
        Ok(xml) => Reply {
            status: 200,
            body: xml,
            content_type: XML,
            request_id,
            close,
        },
        Err(e) => Reply::error(&e, request_id, close),
    }))
}

/// Authenticates, parses and dispatches one request.
fn handle(shared: &Shared, parts: &HttpParts<'_>, request_id: &str) -> Result<Vec<u8>, Ec2Error> {
    let (path, query) = match parts.target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (parts.target, ""),
    };
    let _ = path;
    match parts.method {
        "POST" | "GET" => {}
        other => {
            return Err(Ec2Error::new(
                "UnsupportedHttpVerb",
                405,
                format!(
                    "The HTTP method {} is not supported",
                    other.chars().take(16).collect::<String>()
                ),
            ));
        }
    }
    let auth = authenticate(parts, shared.credentials.as_ref())?;
    let mut pairs = form::decode_pairs(query.as_bytes())?;
    if parts.method == "POST" {
        pairs.extend(form::decode_pairs(parts.body)?);
    }
    let req = Ec2Request::from_pairs(pairs)?;
    let call = Call {
        ctx: &shared.ctx,
        req: &req,
        request_id,
        auth: &auth,
    };
    shared.registry.dispatch(&call)
}
