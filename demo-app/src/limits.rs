//! Per-connection limits of the relay: a token bucket for the message rate, and a log of
//! refusals that writes one line per kind of refusal and connection, not one per message.

use std::collections::BTreeMap;
use std::time::Instant;

/// Messages a connection may send at once.
pub const BURST: u32 = 200;

/// Messages per second it may send on average.
pub const PER_SECOND: u32 = 50;

/// A token bucket: `burst` tokens, refilled at `per_second`; a message takes one.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        Self { tokens: f64::from(burst), burst: f64::from(burst), per_second: f64::from(per_second), last: now }
    }

    /// Take a token at `now`, or say in how many milliseconds one will be there.
    pub fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err((((1.0 - self.tokens) / self.per_second) * 1000.0).ceil() as u64)
    }
}

/// Refusals of one connection: the first of each code is logged at once, the rest counted
/// and summed up in one line when the connection ends.
#[derive(Debug, Default)]
pub struct RefusalLog {
    counts: BTreeMap<&'static str, u64>,
}

impl RefusalLog {
    /// Record a refusal; returns the line to log, for the first of its code only.
    pub fn record(&mut self, peer: u64, code: &'static str, message: &str) -> Option<String> {
        let count = self.counts.entry(code).or_default();
        *count += 1;
        (*count == 1).then(|| format!("demo-app: refused a message from peer {peer}: {code}: {message}"))
    }

    /// The closing summary, if more than the first of some code was refused.
    pub fn summary(&self, peer: u64) -> Option<String> {
        let repeated: Vec<String> =
            self.counts.iter().filter(|(_, n)| **n > 1).map(|(code, n)| format!("{n} × {code}")).collect();
        (!repeated.is_empty()).then(|| format!("demo-app: peer {peer} left; refused in all: {}", repeated.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_refill_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, 10, start);
        assert!((0..3).all(|_| bucket.take(start).is_ok()));
        assert_eq!(bucket.take(start), Err(100), "one token per 100 ms at 10/s");
        assert!(bucket.take(start + Duration::from_millis(100)).is_ok());
        assert!(bucket.take(start + Duration::from_millis(100)).is_err());
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(later).is_ok()).count(), 3);
    }

    #[test]
    fn a_refusal_is_logged_once_per_code_and_summed_up_at_the_end() {
        let mut log = RefusalLog::default();
        assert!(log.record(7, "RATE_LIMITED", "slow down").is_some());
        assert!((0..2999).all(|_| log.record(7, "RATE_LIMITED", "slow down").is_none()));
        assert!(log.record(7, "TOO_LARGE", "big").is_some());
        assert_eq!(log.summary(7).as_deref(), Some("demo-app: peer 7 left; refused in all: 3000 × RATE_LIMITED"));
        assert_eq!(RefusalLog::default().summary(1), None);
    }
}
