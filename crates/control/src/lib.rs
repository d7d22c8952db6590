//! `flint serve`: the host daemon (EC2 API server, state store, VM
//! supervisor, host networking). The EC2 wire format is the crate
//! `ec2_wire`; the types it shares with the VMM are `flint_contract`. It
//! never depends on the VMM: it reaches a running VM only through the
//! per-VM socket.

pub mod api;
pub mod catalog;
pub mod private;
pub mod server;
pub mod store;
pub mod supervisor;
