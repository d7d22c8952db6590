//! HTTP/1.1 for the EC2 Query API: just what botocore, the aws CLI and curl
//! send. Requests are read with the shared `flint_http` parser (strict
//! UTF-8 headers, bounded heads); bodies need
//! a Content-Length (no chunked uploads) of at most 1 MiB; keep-alive and
//! pipelining work; a connection idle for [`IDLE_TIMEOUT`] or slower than
//! [`REQUEST_TIMEOUT`] to send one request is closed. POST form bodies and
//! GET query strings are both accepted (parameters may be in both).
//! Every failure is an EC2 error document with a 4xx status.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::super::api::Call;
use super::Shared;
use super::auth::authenticate;
use super::reply::{Reply, XML};
use ec2_wire::error::Ec2Error;
use ec2_wire::form::{self, MAX_BODY_BYTES};
use ec2_wire::ids::new_request_id;
use ec2_wire::request::Ec2Request;
use ec2_wire::sigv4::HttpParts;
use flint_http::{
    BlockingReader, BodyPolicy, Config, ConnectionHeader, Event, HttpError, Limits, Request,
    Response, Style,
};

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

const STYLE: Style = Style {
    server: Some("flint"),
    connection: ConnectionHeader::Always,
};

fn config() -> Config {
    Config {
        limits: Limits {
            max_head: MAX_HEADER_BYTES,
            max_headers: MAX_HEADERS,
            max_body: MAX_BODY_BYTES,
        },
        body: BodyPolicy::Keep,
        strict_utf8: true,
    }
}

fn write_reply(stream: &mut Stream, reply: &Reply) -> std::io::Result<()> {
    let mut response = Response::new(reply.status, reply.content_type, reply.body.clone())
        .with_header("x-amzn-RequestId", reply.request_id.clone());
    response.close = reply.close;
    stream.write_all(&response.encode(&STYLE))?;
    stream.flush()
}

/// Over the connection cap: one error reply, then close.
pub fn refuse_busy(mut stream: Stream) {
    let _ = stream.set_timeouts(Duration::from_secs(1));
    let reply = Reply::error(&Ec2Error::request_limit_exceeded(), new_request_id(), true);
    let _ = write_reply(&mut stream, &reply);
}

/// The EC2 error for a request the HTTP layer refuses.
pub(super) fn http_error(e: &HttpError) -> Ec2Error {
    match e {
        HttpError::HeadTooLarge => Ec2Error::new(
            "RequestHeaderSectionTooLarge",
            431,
            format!("The request head is larger than {MAX_HEADER_BYTES} bytes"),
        ),
        HttpError::TooManyHeaders => Ec2Error::new(
            "RequestHeaderSectionTooLarge",
            431,
            format!("More than {MAX_HEADERS} headers"),
        ),
        HttpError::TransferEncoding => Ec2Error::new(
            "MissingContentLength",
            411,
            "Chunked request bodies are not supported; send Content-Length",
        ),
        HttpError::BodyTooLarge => Ec2Error::request_entity_too_large(MAX_BODY_BYTES),
        HttpError::BadContentLength => {
            Ec2Error::new("MalformedHTTPRequest", 400, "Invalid Content-Length")
        }
        HttpError::NotUtf8(name) => Ec2Error::new(
            "MalformedHTTPRequest",
            400,
            format!("Header {name} is not UTF-8"),
        ),
        HttpError::Malformed(reason) => Ec2Error::new(
            "MalformedHTTPRequest",
            400,
            format!("Malformed HTTP request: {reason}"),
        ),
    }
}

pub fn serve_connection(shared: &Shared, mut stream: Stream) {
    if stream.set_timeouts(TICK).is_err() {
        return;
    }
    let tcp = matches!(stream, Stream::Tcp(_));
    let mut reader = BlockingReader::new(config(), 16 * 1024);
    loop {
        let reply = match read_request(shared, &mut stream, &mut reader) {
            Some(Ok(request)) => handle_request(shared, request, tcp),
            Some(Err(e)) => Reply::error(&http_error(&e), new_request_id(), true),
            None => return,
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

/// The next request off the connection: None when the connection is done
/// (EOF, idle for [`IDLE_TIMEOUT`], a request slower than
/// [`REQUEST_TIMEOUT`], shutdown), `Some(Err)` for a refused request
/// (answered, then the connection closes). Reads wake every [`TICK`].
fn read_request(
    shared: &Shared,
    stream: &mut Stream,
    reader: &mut BlockingReader,
) -> Option<Result<Request, HttpError>> {
    let started = Instant::now();
    let keep_waiting = |mid_request: bool| {
        let limit = if mid_request {
            REQUEST_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        !shared.shutting_down.load(Ordering::SeqCst) && started.elapsed() < limit
    };
    loop {
        match reader.next_event(stream, keep_waiting) {
            Ok(Event::Request(request)) => return Some(Ok(request)),
            Ok(Event::Error(e)) => return Some(Err(e)),
            Ok(Event::Continue) => {
                if stream.write_all(flint_http::CONTINUE).is_err() {
                    return None;
                }
            }
            Ok(Event::Closed | Event::Truncated) | Err(_) => return None,
        }
    }
}

/// One request's reply: the DNS rebinding check, the metrics paths, then
/// the EC2 Query API.
fn handle_request(shared: &Shared, request: Request, tcp: bool) -> Reply {
    let close = !request.keep_alive || shared.shutting_down.load(Ordering::SeqCst);
    let request_id = new_request_id();
    if tcp
        && let Some(listen) = shared.listen
        && !host_allowed(request.header("host"), listen, request.minor_version)
    {
        let e = Ec2Error::new(
            "InvalidHostHeader",
            400,
            "The Host header must name this endpoint (localhost, 127.0.0.1, [::1] \
             or the listen address)",
        );
        return Reply::error(&e, request_id, close);
    }
    let parts = HttpParts {
        method: &request.method,
        target: &request.target,
        headers: request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
        body: &request.body,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if request.method == "GET" && super::metrics::is_metrics(&request.target) {
            // The metrics are no more public than the API.
            authenticate(&parts, shared.credentials.as_ref())?;
        }
        if request.method == "GET"
            && let Some(reply) = super::metrics::reply(shared, &request.target, &request_id, close)
        {
            return Ok(reply);
        }
        handle(shared, &parts, &request_id).map(|xml| Reply {
            status: 200,
            body: xml,
            content_type: XML,
            request_id: request_id.clone(),
            close,
        })
    }))
    .unwrap_or_else(|_| Err(Ec2Error::internal_error("the request handler failed")));
    outcome.unwrap_or_else(|e| Reply::error(&e, request_id.clone(), close))
}

/// Whether a TCP request's Host names this daemon: the listen address, or
/// localhost / 127.0.0.1 / [::1], each with a port or none. A
/// browser tricked by DNS rebinding sends the attacker's name and is
/// refused. Only HTTP/1.0 may leave Host out.
pub fn host_allowed(host: Option<&str>, listen: SocketAddr, minor_version: u8) -> bool {
    let Some(host) = host else {
        return minor_version == 0;
    };
    let host = host.to_ascii_lowercase();
    let (name, port) = if host.starts_with('[') {
        match host.split_once(']') {
            Some((inner, "")) => (format!("{inner}]"), None),
            Some((inner, tail)) => match tail.strip_prefix(':') {
                Some(port) => (format!("{inner}]"), Some(port)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name.to_string(), Some(port)),
            None => (host.clone(), None),
        }
    };
    // Any port: the client may reach the daemon through a port forward or
    // a relay (the e2e tests do), and the name is what DNS rebinding
    // cannot fake.
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let listen_name = match listen.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    name == listen_name || matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
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
