//! The incremental, bounded request parser.

use thiserror::Error;

/// Size bounds of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers together, through the blank line.
    pub max_head: usize,
    pub max_headers: usize,
    /// The largest Content-Length accepted.
    pub max_body: usize,
}

/// What becomes of request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPolicy {
    /// Collected into [`Request::body`]; the request is yielded once its
    /// body is complete.
    Keep,
    /// Read past and thrown away, never stored; the request is yielded as
    /// soon as its head is in ([`Request::body`] stays empty).
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub limits: Limits,
    pub body: BodyPolicy,
    /// Refuse a header value that is not UTF-8 ([`HttpError::NotUtf8`]);
    /// otherwise such values are made UTF-8 lossily.
    pub strict_utf8: bool,
}

/// Why a request is refused. After any of them the connection is done:
/// answer with [`HttpError::status`], then close.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("request head too large")]
    HeadTooLarge,
    #[error("too many request headers")]
    TooManyHeaders,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("Transfer-Encoding (chunked bodies) is not supported")]
    TransferEncoding,
    #[error("header {0} is not UTF-8")]
    NotUtf8(String),
}

impl HttpError {
    /// The status of the answer to send before closing.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::BadContentLength | HttpError::NotUtf8(_) => 400,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::TransferEncoding => 411,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent (origin or absolute form, with query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Names as sent; values trimmed (and made UTF-8 lossily unless the
    /// parser is strict).
    pub headers: Vec<(String, String)>,
    /// False when the client asked to close after this request.
    pub keep_alive: bool,
    /// The body under [`BodyPolicy::Keep`]; empty under `Discard`.
    pub body: Vec<u8>,
}

impl Request {
    /// Values of every header called `name` (case-insensitive).
    pub fn header_values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The header's value when it appears exactly once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.header_values(name);
        let first = values.next()?;
        values.next().is_none().then_some(first)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header_values(name).next().is_some()
    }

    /// Whether a comma-separated header (Connection, Expect) lists
    /// `option`, case-insensitively.
    pub fn has_option(&self, name: &str, option: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|o| o.trim().eq_ignore_ascii_case(option))
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

/// Parser state of one connection. Feed it whatever the transport yields.
pub struct HttpConnection {
    config: Config,
    /// Bytes of the request head being received (≤ `max_head`).
    buf: Vec<u8>,
    /// How far `buf` was already searched for the blank line ending a head,
    /// so that a head arriving byte by byte is scanned once, not n² times.
    scanned: usize,
    /// Body bytes of the current request still to come.
    body_left: usize,
    /// Under `Keep`: the request whose head is in and whose body is being
    /// collected.
    pending: Option<Request>,
    /// The pending request asked for `100 Continue` and has not had it.
    continue_wanted: bool,
    state: State,
}

impl HttpConnection {
    pub fn new(config: Config) -> Self {
        HttpConnection {
            config,
            buf: Vec::new(),
            scanned: 0,
            body_left: 0,
            pending: None,
            continue_wanted: false,
            state: State::Open,
        }
    }

    /// Takes the next bytes of the stream; returns the requests they
    /// complete, in order. After a request without keep-alive, further
    /// bytes are ignored: answer what was returned, then close. On `Err`
    /// the connection is finished: answer the error and close (requests
    /// completed earlier in the same call are dropped with it; use
    /// [`HttpConnection::next_request`] to answer them first).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Vec<Request>, HttpError> {
        let mut requests = Vec::new();
        while let Some(request) = self.next_request(&mut input)? {
            requests.push(request);
        }
        Ok(requests)
    }

    /// The next complete request, taking from the front of `input` only
    /// the bytes needed for it; `Ok(None)` once `input` is used up (or
    /// ignored, after a closing request or an error) without completing
    /// one.
    pub fn next_request(&mut self, input: &mut &[u8]) -> Result<Option<Request>, HttpError> {
        let result = self.advance(input);
        if result.is_err() {
            self.state = State::Failed;
            self.buf = Vec::new();
            self.pending = None;
            self.continue_wanted = false;
        }
        result
    }

    fn advance(&mut self, input: &mut &[u8]) -> Result<Option<Request>, HttpError> {
        if self.state != State::Open {
            *input = &[];
            return Ok(None);
        }
        loop {
            if self.body_left > 0 {
                let n = self.body_left.min(input.len());
                if let Some(pending) = &mut self.pending {
                    pending.body.extend_from_slice(&input[..n]);
                }
                self.body_left -= n;
                *input = &input[n..];
                if self.body_left > 0 {
                    return Ok(None);
                }
            }
            if let Some(request) = self.pending.take() {
                self.continue_wanted = false;
                return Ok(Some(self.finish(request)));
            }
            if let Some(request) = self.parse_head()? {
                match self.config.body {
                    BodyPolicy::Keep => {
                        self.continue_wanted =
                            self.body_left > 0 && request.has_option("expect", "100-continue");
                        self.pending = Some(request);
                        continue;
                    }
                    BodyPolicy::Discard => return Ok(Some(self.finish(request))),
                }
            }
            if input.is_empty() {
                return Ok(None);
            }
            // Never buffer more than one head: the rest of `input` waits in
            // the caller's slice until this head is parsed.
            let n = (self.config.limits.max_head - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..n]);
            *input = &input[n..];
        }
    }

    fn finish(&mut self, request: Request) -> Request {
        if !request.keep_alive {
            self.state = State::Closing;
            self.buf = Vec::new();
        }
        request
    }

    /// True once per request whose head asked for `Expect: 100-continue`
    /// while its body is not all in: the caller sends [`crate::CONTINUE`]
    /// (only under [`BodyPolicy::Keep`]).
    pub fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.continue_wanted)
    }

    /// Part of a request has been received (a head or a body is
    /// incomplete): EOF now truncates a request.
    pub fn mid_request(&self) -> bool {
        self.state == State::Open && (!self.buf.is_empty() || self.body_left > 0)
    }

    /// No more requests will come (a closing request or an error was seen).
    pub fn is_finished(&self) -> bool {
        self.state != State::Open
    }

    /// Parses one request head out of `buf` if it is complete, and takes
    /// the part of its body that is already in `buf`.
    fn parse_head(&mut self) -> Result<Option<Request>, HttpError> {
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
        let limits = self.config.limits;
        let Some(head_len) = find_head_end(&self.buf, self.scanned) else {
            self.scanned = self.buf.len().saturating_sub(2);
            if self.buf.len() >= limits.max_head {
                return Err(HttpError::HeadTooLarge);
            }
            return Ok(None);
        };
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&self.buf[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HttpError::Malformed("incomplete request head".into()));
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        }
        let mut header_list = Vec::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let value = if self.config.strict_utf8 {
                std::str::from_utf8(h.value)
                    .map_err(|_| HttpError::NotUtf8(h.name.chars().take(64).collect()))?
                    .into()
            } else {
                String::from_utf8_lossy(h.value)
            };
            header_list.push((h.name.to_string(), value.trim().to_string()));
        }
        let mut request = Request {
            method: parsed.method.unwrap_or_default().to_string(),
            target: parsed.path.unwrap_or_default().to_string(),
            minor_version: parsed.version.unwrap_or(1),
            headers: header_list,
            keep_alive: false,
            body: Vec::new(),
        };
        let body_len = content_length(&request, limits.max_body)?;
        request.keep_alive = wants_keep_alive(&request);
        self.buf.drain(..head_len);
        self.scanned = 0;
        // Part of the body may already sit in `buf`.
        let in_buf = body_len.min(self.buf.len());
        if self.config.body == BodyPolicy::Keep {
            request.body.reserve_exact(body_len);
            request.body.extend_from_slice(&self.buf[..in_buf]);
        }
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

/// The body length: Content-Length must be digits only, and repeated
/// Content-Length headers must agree; no header means no body.
fn content_length(request: &Request, max_body: usize) -> Result<usize, HttpError> {
    if request.has_header("transfer-encoding") {
        return Err(HttpError::TransferEncoding);
    }
    let mut length = None;
    for value in request.header_values("content-length") {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadContentLength);
        }
        // Too many digits for usize is over any limit, whatever they are.
        let n = value.parse::<usize>().unwrap_or(usize::MAX);
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::BadContentLength);
        }
        length = Some(n);
    }
    let n = length.unwrap_or(0);
    if n > max_body {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(n)
}

/// HTTP/1.1 keeps the connection unless `Connection` lists `close`;
/// HTTP/1.0 closes it unless `Connection` lists `keep-alive` (and not
/// `close`).
fn wants_keep_alive(request: &Request) -> bool {
    let close = request.has_option("connection", "close");
    if request.minor_version == 0 {
        request.has_option("connection", "keep-alive") && !close
    } else {
        !close
    }
}
