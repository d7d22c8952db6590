//! Requests off a blocking stream (a Unix or TCP socket with a read
//! timeout), for the two socket servers.

use std::io::{ErrorKind, Read};

use crate::parser::{Config, HttpConnection, HttpError, Request};

/// What [`BlockingReader::next_event`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Request(Request),
    /// The request being read waits for `100 Continue`: write
    /// [`crate::CONTINUE`], then ask for the next event.
    Continue,
    /// The peer closed between requests, or the last request asked to
    /// close: the connection is done.
    Closed,
    /// The peer closed in the middle of a request.
    Truncated,
    /// The request is refused: answer with `status()`, then close.
    Error(HttpError),
}

/// An [`HttpConnection`] and the bytes read past the request it yielded
/// (at most one read's worth).
pub struct BlockingReader {
    connection: HttpConnection,
    chunk: Box<[u8]>,
    /// `chunk[start..end]` is read but not yet given to the parser.
    start: usize,
    end: usize,
}

impl BlockingReader {
    /// `read_size`: the most bytes one `read` asks for.
    pub fn new(config: Config, read_size: usize) -> Self {
        BlockingReader {
            connection: HttpConnection::new(config),
            chunk: vec![0; read_size.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Reads until a request is complete, it needs `100 Continue`, the
    /// peer closes or the request is refused. A read that times out
    /// (`WouldBlock` / `TimedOut`, from the stream's read timeout) asks
    /// `keep_waiting(mid_request)`; when that says no, the timeout is
    /// returned as the `Err`. Other read errors are returned as they are.
    pub fn next_event(
        &mut self,
        stream: &mut impl Read,
        mut keep_waiting: impl FnMut(bool) -> bool,
    ) -> std::io::Result<Event> {
        loop {
            let mut input = &self.chunk[self.start..self.end];
            let before = input.len();
            let result = self.connection.next_request(&mut input);
            self.start += before - input.len();
            match result {
                Ok(Some(request)) => return Ok(Event::Request(request)),
                Err(e) => return Ok(Event::Error(e)),
                Ok(None) => {}
            }
            if self.connection.take_continue() {
                return Ok(Event::Continue);
            }
            if self.connection.is_finished() {
                return Ok(Event::Closed);
            }
            match stream.read(&mut self.chunk) {
                Ok(0) if self.connection.mid_request() => return Ok(Event::Truncated),
                Ok(0) => return Ok(Event::Closed),
                Ok(n) => (self.start, self.end) = (0, n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if !keep_waiting(self.connection.mid_request()) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Part of a request has been received.
    pub fn mid_request(&self) -> bool {
        self.connection.mid_request() || self.start < self.end
    }
}
