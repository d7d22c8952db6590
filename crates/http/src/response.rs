//! The response encoder.

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// When a server writes a `Connection` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// `Connection: close` on a closing answer, nothing otherwise.
    CloseOnly,
    /// `Connection: close` or `Connection: keep-alive` on every answer.
    Always,
}

/// A server's fixed choices of headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// The `Server` header's value, written after the extra headers.
    pub server: Option<&'static str>,
    pub connection: ConnectionHeader,
}

/// One answer. Encoding is deterministic: no Date or Last-Modified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers, written in order after Content-Type and
    /// Content-Length.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// HEAD: headers (with the body's Content-Length) but no body.
    pub head_only: bool,
    /// Close the connection after sending this.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            head_only: false,
            close: false,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Status line, Content-Type, Content-Length, the extra headers, the
    /// Server header, the Connection header, the body (unless HEAD).
    pub fn encode(&self, style: &Style) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        head.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(server) = style.server {
            head.push_str(&format!("Server: {server}\r\n"));
        }
        match (self.close, style.connection) {
            (true, _) => head.push_str("Connection: close\r\n"),
            (false, ConnectionHeader::Always) => head.push_str("Connection: keep-alive\r\n"),
            (false, ConnectionHeader::CloseOnly) => {}
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// The reason phrase of a status (RFC 9110's, with the RFC 7231 names
/// clients and the metadata service's golden answers know for 413 and
/// 422); "Unknown" for a code without one.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}
