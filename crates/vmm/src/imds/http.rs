//! HTTP/1.1 for one guest TCP connection to the metadata service, on the
//! shared `flint_http` parser and encoder. The guest is hostile: the
//! parser never holds more than one request head (8 KiB), skips request
//! bodies without storing them, and turns anything it does not understand
//! into an error that maps to a 4xx answer followed by closing the
//! connection. What is the metadata service's own: its limits, its
//! lossy header decoding, EC2's "404 - Not Found" error bodies, the
//! `Server: EC2ws` header and the IP TTL of token answers.

use std::ops::{Deref, DerefMut};

use flint_http::{BodyPolicy, Config, ConnectionHeader, Limits, Style};

pub use flint_http::{HttpError, Request};

/// The request line and headers together.
pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;
/// Request bodies are read past and thrown away (the IMDS has no use for
/// them), but only up to this size.
pub const MAX_BODY: usize = 16 * 1024;

const CONFIG: Config = Config {
    limits: Limits {
        max_head: MAX_HEAD,
        max_headers: MAX_HEADERS,
        max_body: MAX_BODY,
    },
    body: BodyPolicy::Discard,
    strict_utf8: false,
};

const STYLE: Style = Style {
    server: Some("EC2ws"),
    connection: ConnectionHeader::CloseOnly,
};

/// Parser state of one connection, with the metadata service's limits.
/// Feed it whatever the TCP socket yields.
pub struct HttpConnection(flint_http::HttpConnection);

impl Default for HttpConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConnection {
    pub fn new() -> Self {
        HttpConnection(flint_http::HttpConnection::new(CONFIG))
    }

    /// The requests these bytes complete, in order (see
    /// [`flint_http::HttpConnection::feed`]). On `Err`, send
    /// [`error_response`] and close.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<Request>, HttpError> {
        self.0.feed(input)
    }
}

/// The answer to a parse error, before closing the connection.
pub fn error_response(error: &HttpError) -> Response {
    let mut response = Response::error(error.status());
    response.close = true;
    response
}

/// One answer: the shared response and the IP TTL of the packets carrying
/// it. Derefs to [`flint_http::Response`] for its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub http: flint_http::Response,
    /// IP TTL for the packets carrying this response (token PUTs only).
    pub ip_ttl: Option<u8>,
}

impl Deref for Response {
    type Target = flint_http::Response;
    fn deref(&self) -> &Self::Target {
        &self.http
    }
}

impl DerefMut for Response {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.http
    }
}

pub const TEXT_PLAIN: &str = "text/plain";
pub const APPLICATION_JSON: &str = "application/json";
pub const OCTET_STREAM: &str = "application/octet-stream";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            http: flint_http::Response::new(status, content_type, body),
            ip_ttl: None,
        }
    }

    /// An error with the wording of EC2's documentation ("404 - Not
    /// Found") as a short plain-text body.
    pub fn error(status: u16) -> Self {
        let body = format!("{status} - {}", flint_http::reason(status));
        Response::new(status, TEXT_PLAIN, body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.http.headers.push((name, value.into()));
        self
    }

    /// Deterministic: no Date or Last-Modified.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.http.encode(&STYLE)
    }
}
