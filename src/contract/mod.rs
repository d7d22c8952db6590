//! Every type that crosses the boundary between the daemon (`control`)
//! and the VMM (`vmm`), and the rules both sides apply to them. It depends
//! on nothing else of Flint (serde, serde_json, thiserror and std only),
//! so that either side can be built, tested and split off without the
//! other.

pub mod config;
pub mod ebs;
pub mod exit;
pub mod metadata;
pub mod socket;
