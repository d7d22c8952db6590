//! Unit tests of the wire format, one file per module. They go through what
//! the modules export, which is what the daemon will use.

mod clock;
mod error;
mod ids;
mod request;
mod response;
mod sigv4;
