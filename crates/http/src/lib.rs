//! HTTP/1.1 for Flint's servers: the daemon's EC2 Query API
//! (`flint serve`), the per-VM control socket and the instance metadata
//! service. httparse does the grammar; this crate holds what the three
//! share:
//!
//! - [`HttpConnection`], one incremental, bounded request parser: fed
//!   whatever bytes the transport yields (a blocking socket, smoltcp), it
//!   never buffers more than one request head, bounds heads, header counts
//!   and bodies ([`Limits`]), keeps bodies or skips them ([`BodyPolicy`]),
//!   applies the HTTP/1.0 and 1.1 keep-alive rules, is strict about
//!   Content-Length, refuses Transfer-Encoding, and signals a request that
//!   waits for `100 Continue`;
//! - [`HttpError`], every way a request can be refused, with its status;
//! - [`Response`], the one encoder of answers ([`Style`] says which
//!   Server and Connection headers a server writes);
//! - [`BlockingReader`], requests off a blocking [`std::io::Read`] stream.

mod blocking;
mod parser;
mod response;

#[cfg(test)]
mod tests;

pub use blocking::{BlockingReader, Event};
pub use parser::{BodyPolicy, Config, HttpConnection, HttpError, Limits, Request};
pub use response::{CONTINUE, ConnectionHeader, Response, Style, reason};
