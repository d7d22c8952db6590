//! `flint serve`: the host daemon (EC2 API server, wire format, state store,
//! VM supervisor). Being built: see issue 6.

// Items land before the server that uses them.
#![allow(dead_code)]

pub mod api;
pub mod catalog;
pub mod ec2;
pub mod server;
pub mod store;
pub mod supervisor;
