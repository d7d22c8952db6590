//! The EC2 Query API wire format: form-encoded requests in, XML replies and
//! errors out, EC2 ids, and SigV4 request signatures. No actions and no
//! server here: those are built on top.
//!
//! Depends on no other Flint crate, on purpose: the daemon
//! (`flint_control`) builds on it, and `tests/ec2_wire.rs` checks it
//! against botocore.

pub mod clock;
pub mod error;
pub mod form;
pub mod ids;
pub mod random;
pub mod request;
pub mod response;
pub mod sigv4;

#[cfg(test)]
mod tests;
