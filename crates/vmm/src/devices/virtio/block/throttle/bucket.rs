//! A token bucket on an injected nanosecond clock.
//!
//! Balances are kept in nano-tokens (one token = 10^9 nano-tokens), so a
//! rate of R tokens per second adds exactly R nano-tokens per nanosecond:
//! refills are one multiplication, with no rounding drift however often
//! they happen. i128 because an st1 credit bucket holds up to 16 TiB of
//! byte credits, 1.8 * 10^22 nano-tokens.
//!
//! A request larger than the whole bucket would never fit: it may go when
//! the bucket is full and leaves the balance negative (a debt that the
//! refill pays back before anything else goes), so the long-run rate is
//! still the bucket's rate and nothing starves.

/// Nano-tokens per token.
const NANO: i128 = 1_000_000_000;

#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// In nano-tokens.
    capacity: i128,
    /// Tokens per second, which is nano-tokens per nanosecond. At least 1.
    rate: i128,
    /// In nano-tokens; negative while a request larger than the bucket is
    /// being paid for.
    balance: i128,
    /// Clock reading of the last refill (ns).
    last: u64,
}

impl TokenBucket {
    /// A bucket of `capacity` tokens that refills at `rate_per_s` and
    /// starts with `initial` tokens (capped at the capacity).
    pub fn new(capacity: u64, rate_per_s: u64, initial: u64, now: u64) -> Self {
        let capacity = i128::from(capacity.max(1)) * NANO;
        TokenBucket {
            capacity,
            rate: i128::from(rate_per_s.max(1)),
            balance: (i128::from(initial) * NANO).min(capacity),
            last: now,
        }
    }

    /// Adds what the elapsed time earned. A clock reading older than the
    /// last one earns nothing (and does not move `last` back).
    pub fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        if self.balance < self.capacity {
            let earned = self.rate * i128::from(elapsed);
            self.balance = (self.balance + earned).min(self.capacity);
        }
    }

    /// What must be in the bucket before a request of `cost` tokens goes:
    /// its cost, or a full bucket if it costs more than the bucket holds.
    fn needed(&self, cost: u64) -> i128 {
        (i128::from(cost) * NANO).min(self.capacity)
    }

    /// Nanoseconds until a request of `cost` may go (0: now). Call
    /// `refill` first.
    pub fn wait_ns(&self, cost: u64) -> u64 {
        let missing = self.needed(cost) - self.balance;
        if missing <= 0 {
            return 0;
        }
        // Rounded up so that the bucket really holds enough by then.
        let ns = (missing + self.rate - 1) / self.rate;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Spends `cost` tokens (the caller checked `wait_ns(cost) == 0`).
    pub fn take(&mut self, cost: u64) {
        self.balance -= i128::from(cost) * NANO;
    }

    /// Whole tokens in the bucket (0 while in debt).
    pub fn tokens(&self) -> u64 {
        u64::try_from((self.balance / NANO).max(0)).unwrap_or(u64::MAX)
    }

    /// How full the bucket is, 0.0 ..= 100.0 (0 while in debt).
    pub fn percent(&self) -> f64 {
        (self.balance.max(0) as f64) * 100.0 / (self.capacity as f64)
    }
}
