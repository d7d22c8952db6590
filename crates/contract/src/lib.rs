//! Every type that crosses the boundary between the daemon (`control`)
//! and the VMM (`vmm`), and the rules both sides apply to them. The daemon
//! writes a [`config::VmConfig`] as vm.json and starts `flint vmm` on it,
//! talks to the running VM only through the per-VM socket
//! ([`socket`]), and reads how it ended from its exit code ([`exit`]).
//!
//! - `config`   — the VM config: disks (id, serial, EBS limits, O_DIRECT),
//!   NICs, identity, boot mode, console, socket; MAX_DISKS and the rules
//!   of disk ids, serials and TAP names.
//! - `metadata` — what the instance metadata service serves, and its
//!   runtime updates.
//! - `ebs`      — EBS volume types: the one table of their rules, `Limits`
//!   and their validation, and the rates the VMM throttles by.
//! - `socket`   — the per-VM socket's paths, requests and replies.
//! - `exit`     — `flint vmm`'s exit codes.
//!
//! It depends on nothing else of Flint (serde, serde_json, thiserror, std,
//! and the `base64` crate for the metadata's `user_data_base64`): both
//! sides depend on it, and neither depends on the other.

pub mod config;
pub mod ebs;
pub mod exit;
pub mod metadata;
pub mod socket;
