//! EBS volume-type rate limits for virtio-blk, as pure logic on a clock the
//! caller passes in (nanoseconds from any fixed origin).
//!
//! - `contract::ebs` — volume types, `Limits` and their validation, and
//!   the `Performance` (rates, buckets, I/O unit) each set of limits stands
//!   for: the table the daemon validates volumes by.
//! - `bucket`  — a token bucket in nano-tokens.
//! - `limiter` — `Throttle`: the buckets of one volume; `admit` a request
//!   or learn how long it must wait; BurstBalance.
//!
//! No limits means no `Throttle` at all: the request path tests one
//! `Option` and does nothing else.

mod bucket;
pub mod limiter;

#[cfg(test)]
mod tests;

pub use limiter::Throttle;
