//! IMDSv2 session tokens: opaque random strings with a TTL of 1..=21600 s,
//! kept in a bounded store. Time is whatever `Instant` the caller passes, so
//! tests control expiry without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use thiserror::Error;

pub const MIN_TTL_SECONDS: u32 = 1;
/// Six hours, EC2's maximum session length.
pub const MAX_TTL_SECONDS: u32 = 21_600;
/// Live tokens kept at most; past that the expired go first, then the
/// oldest. A guest minting tokens in a loop costs us bounded memory.
pub const MAX_LIVE_TOKENS: usize = 4096;
/// 40 random bytes → 56 base64 characters, the length of EC2's tokens.
const TOKEN_BYTES: usize = 40;
pub const TOKEN_LEN: usize = TOKEN_BYTES.div_ceil(3) * 4;

#[derive(Debug, Error)]
pub enum TokenError {
    #[error("cannot get random bytes from the kernel: {0}")]
    ReadRandom(std::io::Error),
    #[error("token TTL {0:?} is not a whole number of seconds in 1..=21600")]
    BadTtl(String),
}

/// Parses the value of `X-aws-ec2-metadata-token-ttl-seconds`: decimal
/// digits only (no sign, no fraction), 1..=21600.
pub fn parse_ttl(value: &str) -> Result<u32, TokenError> {
    let digits = value.trim();
    let bad = || TokenError::BadTtl(value.chars().take(32).collect());
    // The length cap keeps the parse from overflowing; leading zeros fit.
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ttl: u64 = digits.parse().map_err(|_| bad())?;
    if !(u64::from(MIN_TTL_SECONDS)..=u64::from(MAX_TTL_SECONDS)).contains(&ttl) {
        return Err(bad());
    }
    Ok(ttl as u32)
}

struct Live {
    expires: Instant,
    /// Issue order, to find the oldest when the store is full.
    serial: u64,
}

pub struct TokenStore {
    /// Opened once, so that issuing a token after the seccomp filter is in
    /// place needs only read(2).
    live: HashMap<String, Live>,
    next_serial: u64,
    capacity: usize,
}

impl TokenStore {
    pub fn new() -> Result<Self, TokenError> {
        Self::with_capacity(MAX_LIVE_TOKENS)
    }

    pub fn with_capacity(capacity: usize) -> Result<Self, TokenError> {
        Ok(TokenStore {
            live: HashMap::new(),
            next_serial: 0,
            capacity: capacity.max(1),
        })
    }

    /// Mints a token valid for `ttl_seconds` from `now` (clamped to EC2's
    /// range; callers validate with [`parse_ttl`] first).
    pub fn issue(&mut self, ttl_seconds: u32, now: Instant) -> Result<String, TokenError> {
        let ttl = ttl_seconds.clamp(MIN_TTL_SECONDS, MAX_TTL_SECONDS);
        let mut bytes = [0u8; TOKEN_BYTES];
        fill_random(&mut bytes).map_err(TokenError::ReadRandom)?;
        let token = URL_SAFE.encode(bytes);
        if self.live.len() >= self.capacity {
            self.make_room(now);
        }
        let Some(expires) = now.checked_add(Duration::from_secs(u64::from(ttl))) else {
            // Only on a clock near the end of `Instant`'s range.
            return Err(TokenError::BadTtl(ttl.to_string()));
        };
        self.live.insert(
            token.clone(),
            Live {
                expires,
                serial: self.next_serial,
            },
        );
        self.next_serial += 1;
        Ok(token)
    }

    /// True while `token` was issued here and `now` is before its expiry.
    /// An expired token is forgotten on the way.
    pub fn is_valid(&mut self, token: &str, now: Instant) -> bool {
        if token.len() != TOKEN_LEN {
            return false;
        }
        match self.live.get(token) {
            Some(live) if now < live.expires => true,
            Some(_) => {
                self.live.remove(token);
                false
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.live.retain(|_, live| now < live.expires);
        while self.live.len() >= self.capacity {
            let oldest = self
                .live
                .iter()
                .min_by_key(|(_, live)| live.serial)
                .map(|(token, _)| token.clone());
            match oldest {
                Some(token) => self.live.remove(&token),
                None => break,
            };
        }
    }
}

/// `buf` filled by getrandom(2): no file to open (a jailed VMM has no
/// /dev/urandom), and allowed by every seccomp filter of the VMM.
fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: writes at most rest.len() bytes into rest, which we own.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imds_ttl_parsing_accepts_exactly_1_to_21600() {
        assert_eq!(parse_ttl("1").unwrap(), 1);
        assert_eq!(parse_ttl("21600").unwrap(), 21600);
        assert_eq!(parse_ttl(" 60 ").unwrap(), 60);
        assert_eq!(parse_ttl("0021600").unwrap(), 21600);
        for bad in [
            "0",
            "21601",
            "",
            "-1",
            "+5",
            "1.5",
            "abc",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn imds_tokens_are_56_url_safe_chars_and_distinct() {
        let mut store = TokenStore::new().unwrap();
        let now = Instant::now();
        let a = store.issue(60, now).unwrap();
        let b = store.issue(60, now).unwrap();
        assert_eq!(a.len(), 56);
        assert_eq!(TOKEN_LEN, 56);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_=".contains(&c))
        );
        assert_ne!(a, b);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn imds_token_expires_exactly_at_its_ttl() {
        let mut store = TokenStore::new().unwrap();
        let t0 = Instant::now();
        let token = store.issue(1, t0).unwrap();
        assert!(store.is_valid(&token, t0));
        assert!(store.is_valid(&token, t0 + Duration::from_millis(999)));
        assert!(!store.is_valid(&token, t0 + Duration::from_secs(1)));
        // Forgotten once seen expired.
        assert_eq!(store.len(), 0);
        let long = store.issue(21600, t0).unwrap();
        assert!(store.is_valid(&long, t0 + Duration::from_secs(21599)));
        assert!(!store.is_valid(&long, t0 + Duration::from_secs(21600)));
    }

    #[test]
    fn imds_unknown_or_malformed_tokens_are_invalid() {
        let mut store = TokenStore::new().unwrap();
        let now = Instant::now();
        let token = store.issue(60, now).unwrap();
        assert!(!store.is_valid("", now));
        assert!(!store.is_valid(&"A".repeat(56), now));
        assert!(!store.is_valid(&format!("{token}x"), now));
        assert!(!store.is_valid(&"é".repeat(28), now));
        assert!(store.is_valid(&token, now));
    }

    #[test]
    fn imds_full_store_evicts_expired_first_then_oldest() {
        let mut store = TokenStore::with_capacity(3).unwrap();
        let t0 = Instant::now();
        let short = store.issue(1, t0).unwrap();
        let old = store.issue(100, t0).unwrap();
        let mid = store.issue(100, t0).unwrap();
        // Full at t0+2s: the expired one goes, the two live ones stay.
        let t2 = t0 + Duration::from_secs(2);
        let new1 = store.issue(100, t2).unwrap();
        assert_eq!(store.len(), 3);
        assert!(!store.is_valid(&short, t2));
        assert!(store.is_valid(&old, t2) && store.is_valid(&mid, t2) && store.is_valid(&new1, t2));
        // Full with nothing expired: the oldest goes.
        let new2 = store.issue(100, t2).unwrap();
        assert_eq!(store.len(), 3);
        assert!(!store.is_valid(&old, t2));
        assert!(store.is_valid(&mid, t2) && store.is_valid(&new1, t2) && store.is_valid(&new2, t2));
    }

    #[test]
    fn imds_default_store_never_exceeds_4096_tokens() {
        let mut store = TokenStore::new().unwrap();
        let now = Instant::now();
        let first = store.issue(21600, now).unwrap();
        for _ in 0..MAX_LIVE_TOKENS + 10 {
            store.issue(21600, now).unwrap();
        }
        assert_eq!(store.len(), MAX_LIVE_TOKENS);
        assert!(!store.is_valid(&first, now));
    }
}
