//! HTTP/1.1 for one guest TCP connection to the metadata service: an
//! incremental, bounded request parser (httparse does the grammar) and the
//! response encoder. The guest is hostile: the parser never holds more than
//! one request head (8 KiB), skips request bodies without storing them, and
//! turns anything it does not understand into an error that maps to a 4xx
//! answer followed by closing the connection.

use thiserror::Error;

/// The request line and headers together.
pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;
/// Request bodies are read past and thrown away (the IMDS has no use for
/// them), but only up to this size.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_HEADERS} request headers")]
    TooManyHeaders,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("request body larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("Transfer-Encoding (chunked bodies) is not supported")]
    TransferEncoding,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::BadContentLength => 400,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::TransferEncoding => 411,
        }
    }

    /// The answer to send before closing the connection.
    pub fn to_response(&self) -> Response {
        let mut response = Response::error(self.status());
        response.close = true;
        response
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (origin or absolute form, with query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Names as sent; values lossily made UTF-8 and trimmed.
    pub headers: Vec<(String, String)>,
    /// False when the client asked to close after this request.
    pub keep_alive: bool,
}

impl Request {
    /// Values of every header called `name` (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The header's value when it appears exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = None;
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return None;
                }
                found = Some(v.as_str());
            }
        }
        found
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header_values(name).next().is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The last request asked to close; later bytes are ignored.
    Closing,
    /// A parse error was reported; later bytes are ignored.
    Failed,
}

/// Parser state of one connection. Feed it whatever the TCP socket yields.
pub struct HttpConnection {
    /// Bytes of the request head being received (≤ MAX_HEAD).
    buf: Vec<u8>,
    /// How far `buf` was already searched for the blank line ending a head,
    /// so that a head arriving byte by byte is scanned once, not n² times.
    scanned: usize,
    /// Body bytes of the last request still to skip.
    body_left: usize,
    state: State,
}

impl Default for HttpConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConnection {
    pub fn new() -> Self {
        HttpConnection {
            buf: Vec::new(),
            scanned: 0,
            body_left: 0,
            state: State::Open,
        }
    }

    /// Takes the next bytes of the stream; returns the requests they
    /// complete, in order. After a request without keep-alive, further
    /// bytes are ignored: answer what was returned, then close. On `Err`
    /// the connection is finished: send `err.to_response()` and close
    /// (requests completed earlier in the same call are dropped with it).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Vec<Request>, HttpError> {
        let mut requests = Vec::new();
        if self.state != State::Open {
            return Ok(requests);
        }
        loop {
            if self.body_left > 0 {
                let n = self.body_left.min(input.len());
                self.body_left -= n;
                input = &input[n..];
                if self.body_left > 0 {
                    break;
                }
            }
            match self.next_request() {
                Ok(Some(request)) => {
                    let keep_alive = request.keep_alive;
                    requests.push(request);
                    if !keep_alive {
                        self.state = State::Closing;
                        self.buf = Vec::new();
                        break;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.state = State::Failed;
                    self.buf = Vec::new();
                    return Err(e);
                }
            }
            if input.is_empty() {
                break;
            }
            // Never buffer more than one head: the rest of `input` waits in
            // the caller's slice until this head is parsed.
            let n = (MAX_HEAD - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..n]);
            input = &input[n..];
        }
        Ok(requests)
    }

    /// Parses one request out of `buf` if its head is complete.
    fn next_request(&mut self) -> Result<Option<Request>, HttpError> {
        // RFC 9112 §2.2: ignore empty lines before a request line (some
        // clients send a CRLF after a body).
        let blank = self
            .buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            self.buf.drain(..blank);
            self.scanned = 0;
        }
        let Some(head_len) = find_head_end(&self.buf, self.scanned) else {
            self.scanned = self.buf.len().saturating_sub(2);
            if self.buf.len() >= MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        };
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&self.buf[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::Malformed("incomplete request head".into()));
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        }
        let request = Request {
            method: parsed.method.unwrap_or_default().to_string(),
            target: parsed.path.unwrap_or_default().to_string(),
            minor_version: parsed.version.unwrap_or(1),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value);
                    (h.name.to_string(), value.trim().to_string())
                })
                .collect(),
            keep_alive: false,
        };
        let body_len = content_length(&request)?;
        let request = Request {
            keep_alive: wants_keep_alive(&request),
            ..request
        };
        self.buf.drain(..head_len);
        self.scanned = 0;
        // Part of the body may already sit in `buf`.
        let in_buf = body_len.min(self.buf.len());
        self.buf.drain(..in_buf);
        self.body_left = body_len - in_buf;
        Ok(Some(request))
    }
}

/// Length of the head (through its blank line) if `buf` holds one. Bare LF
/// line ends are accepted as httparse accepts them.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.min(buf.len());
    buf[start..]
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .find_map(|(i, _)| {
            let i = start + i;
            match buf.get(i + 1..) {
                Some([b'\n', ..]) => Some(i + 2),
                Some([b'\r', b'\n', ..]) => Some(i + 3),
                _ => None,
            }
        })
}

fn content_length(request: &Request) -> Result<usize, HttpError> {
    if request.has_header("transfer-encoding") {
        return Err(HttpError::TransferEncoding);
    }
    let mut length = None;
    for value in request.header_values("content-length") {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadContentLength);
        }
        // More than 5 digits is over MAX_BODY whatever the digits are.
        let n = if value.trim_start_matches('0').len() > 5 {
            usize::MAX
        } else {
            value
                .parse::<usize>()
                .map_err(|_| HttpError::BadContentLength)?
        };
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::BadContentLength);
        }
        length = Some(n);
    }
    let n = length.unwrap_or(0);
    if n > MAX_BODY {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(n)
}

fn wants_keep_alive(request: &Request) -> bool {
    let has_option = |option: &str| {
        request
            .header_values("connection")
            .flat_map(|v| v.split(','))
            .any(|o| o.trim().eq_ignore_ascii_case(option))
    };
    if request.minor_version == 0 {
        has_option("keep-alive") && !has_option("close")
    } else {
        !has_option("close")
    }
}

/// One answer. `to_bytes` is deterministic: no Date or Last-Modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers, written after Content-Type and Content-Length.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// HEAD: headers (with the body's Content-Length) but no body.
    pub head_only: bool,
    /// Close the connection after sending this.
    pub close: bool,
    /// IP TTL for the packets carrying this response (token PUTs only).
    pub ip_ttl: Option<u8>,
}

pub const TEXT_PLAIN: &str = "text/plain";
pub const APPLICATION_JSON: &str = "application/json";
pub const OCTET_STREAM: &str = "application/octet-stream";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            head_only: false,
            close: false,
            ip_ttl: None,
        }
    }

    /// An error with the wording of EC2's documentation ("404 - Not
    /// Found") as a short plain-text body.
    pub fn error(status: u16) -> Self {
        Response::new(status, TEXT_PLAIN, format!("{status} - {}", reason(status)))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        head.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Server: EC2ws\r\n");
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}
