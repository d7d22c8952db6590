//! `Throttle`: one volume's buckets, asked once per request whether it may
//! go now or how long it must wait.
//!
//! Every request passes a rate bucket for IOPS and one for throughput
//! (each holding `WINDOW` worth of its rate, so short bursts are smoothed,
//! not refused), and a credit bucket where the type has one. A request
//! goes only when every bucket can pay, and then pays in all of them, so
//! a refusal changes nothing and the answer is the longest wait.

use super::bucket::TokenBucket;
use flint_contract::ebs::{Credits, Limits, LimitsError, Performance};

/// How much of its rate a rate bucket holds: the longest stretch over
/// which a volume can run above its rate before being held to it.
pub const WINDOW_MS: u64 = 100;

/// What one request costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Operations, in the type's I/O units.
    pub ops: u64,
    /// Bytes of throughput.
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Throttle {
    limits: Limits,
    performance: Performance,
    iops: TokenBucket,
    iops_credits: Option<TokenBucket>,
    throughput: TokenBucket,
    throughput_credits: Option<TokenBucket>,
}

fn rate_bucket(rate: u64, now: u64) -> TokenBucket {
    let capacity = (rate * WINDOW_MS / 1000).max(1);
    TokenBucket::new(capacity, rate, capacity, now)
}

/// A credit bucket; `carried` is the balance of the one it replaces.
fn credit_bucket(credits: Credits, carried: Option<u64>, now: u64) -> TokenBucket {
    let initial = carried.unwrap_or(credits.initial);
    TokenBucket::new(credits.capacity, credits.refill, initial, now)
}

impl Throttle {
    pub fn new(limits: Limits, now: u64) -> Result<Self, LimitsError> {
        Self::replacing(limits, None, now)
    }

    /// New limits applied live: credit balances carry over (capped at the
    /// new bucket), as EBS keeps a gp2's credits when the volume is
    /// modified; rate buckets start full.
    pub fn replacing(
        limits: Limits,
        previous: Option<&mut Throttle>,
        now: u64,
    ) -> Result<Self, LimitsError> {
        let performance = limits.performance()?;
        let (old_iops, old_bytes) = match previous {
            Some(p) => {
                p.refill(now);
                (
                    p.iops_credits.as_ref().map(TokenBucket::tokens),
                    p.throughput_credits.as_ref().map(TokenBucket::tokens),
                )
            }
            None => (None, None),
        };
        Ok(Throttle {
            limits,
            performance,
            iops: rate_bucket(performance.iops, now),
            iops_credits: performance
                .iops_credits
                .map(|c| credit_bucket(c, old_iops, now)),
            throughput: rate_bucket(performance.throughput, now),
            throughput_credits: performance
                .throughput_credits
                .map(|c| credit_bucket(c, old_bytes, now)),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn performance(&self) -> &Performance {
        &self.performance
    }

    /// The cost of a transfer of `len` bytes (0 for requests that move no
    /// data, such as discard: one operation, no throughput).
    pub fn cost(&self, len: u64) -> Cost {
        let shift = self.performance.io_unit_shift;
        let units = len.div_ceil(1 << shift).max(1);
        let bytes = if self.performance.whole_units && len > 0 {
            units << shift
        } else {
            len
        };
        Cost { ops: units, bytes }
    }

    fn refill(&mut self, now: u64) {
        self.iops.refill(now);
        self.throughput.refill(now);
        if let Some(b) = &mut self.iops_credits {
            b.refill(now);
        }
        if let Some(b) = &mut self.throughput_credits {
            b.refill(now);
        }
    }

    /// Lets the request go (and charges it) or says how many nanoseconds
    /// until it could. Charging nothing on a refusal keeps the buckets
    /// exact however often the same request asks.
    pub fn admit(&mut self, cost: Cost, now: u64) -> Result<(), u64> {
        self.refill(now);
        let mut wait = self.iops.wait_ns(cost.ops);
        wait = wait.max(self.throughput.wait_ns(cost.bytes));
        if let Some(b) = &self.iops_credits {
            wait = wait.max(b.wait_ns(cost.ops));
        }
        if let Some(b) = &self.throughput_credits {
            wait = wait.max(b.wait_ns(cost.bytes));
        }
        if wait > 0 {
            return Err(wait);
        }
        self.iops.take(cost.ops);
        self.throughput.take(cost.bytes);
        if let Some(b) = &mut self.iops_credits {
            b.take(cost.ops);
        }
        if let Some(b) = &mut self.throughput_credits {
            b.take(cost.bytes);
        }
        Ok(())
    }

    /// EBS's BurstBalance: the credit bucket's fill in percent, for the
    /// types that report one (gp2 below 1 TiB, st1, sc1), else None.
    pub fn burst_balance(&mut self, now: u64) -> Option<f64> {
        if !self.performance.reports_burst_balance {
            return None;
        }
        self.refill(now);
        self.iops_credits
            .as_ref()
            .or(self.throughput_credits.as_ref())
            .map(TokenBucket::percent)
    }

    /// Credits left in the burst bucket (ops for gp2/standard, bytes for
    /// st1/sc1), for tests and reports.
    pub fn credits(&mut self, now: u64) -> Option<u64> {
        self.refill(now);
        self.iops_credits
            .as_ref()
            .or(self.throughput_credits.as_ref())
            .map(TokenBucket::tokens)
    }
}
