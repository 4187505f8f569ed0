//! Per-tenant token buckets for the ingestion and request rate limits.
//!
//! Our own bucket rather than the `governor` crate: a tenant's rate and burst change at run
//! time (runtime config reloads, distributors joining or leaving divide the rate anew), and
//! here they are simply read at each call, so a change applies to the next request with the
//! tokens already accumulated kept; governor fixes the quota when a limiter is built, so every
//! change would mean rebuilding (and refilling) the tenant's limiter. The semantics are those
//! of Go's `golang.org/x/time/rate` that Mimir uses: a bucket starts full, refills at `rate`
//! tokens per second up to `burst`, and `n` items pass only if `n` tokens are there (no debt).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// What a bucket says about `n` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Not enough tokens now; a later retry can pass.
    RateLimited,
    /// More items than the burst: this request can never pass with these limits.
    OverBurst,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One token bucket per tenant.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `n` tokens from `tenant`'s bucket if it has them. `rate` is tokens per second
    /// (infinite: no limit), `burst` the bucket's size.
    pub fn allow_n(
        &self,
        tenant: &str,
        now: Instant,
        rate: f64,
        burst: usize,
        n: usize,
    ) -> Decision {
        if rate.is_infinite() || n == 0 {
            return Decision::Allowed;
        }
        if n > burst {
            return Decision::OverBurst;
        }
        let burst = burst as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match buckets.get_mut(tenant) {
            Some(b) => b,
            None => buckets.entry(tenant.to_string()).or_insert(Bucket {
                tokens: burst,
                last: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.max(0.0)).min(burst);
        if now > bucket.last {
            bucket.last = now;
        }
        if bucket.tokens >= n as f64 {
            bucket.tokens -= n as f64;
            Decision::Allowed
        } else {
            Decision::RateLimited
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_starts_full_refills_at_rate_and_caps_at_burst() {
        let l = RateLimiter::new();
        let t0 = Instant::now();
        // rate 10/s, burst 100: the first 100 pass at once, then nothing.
        assert_eq!(l.allow_n("a", t0, 10.0, 100, 60), Decision::Allowed);
        assert_eq!(l.allow_n("a", t0, 10.0, 100, 40), Decision::Allowed);
        assert_eq!(l.allow_n("a", t0, 10.0, 100, 1), Decision::RateLimited);
        // 1.5 s later: 15 tokens.
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(l.allow_n("a", t1, 10.0, 100, 16), Decision::RateLimited);
        assert_eq!(l.allow_n("a", t1, 10.0, 100, 15), Decision::Allowed);
        // A refused request takes nothing.
        assert_eq!(l.allow_n("a", t1, 10.0, 100, 1), Decision::RateLimited);
        // Much later: capped at the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(l.allow_n("a", t2, 10.0, 100, 100), Decision::Allowed);
        assert_eq!(l.allow_n("a", t2, 10.0, 100, 1), Decision::RateLimited);
        // Another tenant has its own bucket.
        assert_eq!(l.allow_n("b", t2, 10.0, 100, 100), Decision::Allowed);
    }

    #[test]
    fn over_burst_and_unlimited() {
        let l = RateLimiter::new();
        let t0 = Instant::now();
        assert_eq!(l.allow_n("a", t0, 10.0, 100, 101), Decision::OverBurst);
        assert_eq!(
            l.allow_n("a", t0, f64::INFINITY, 0, 1_000_000),
            Decision::Allowed
        );
        assert_eq!(l.allow_n("a", t0, 0.0, 5, 0), Decision::Allowed);
    }

    #[test]
    fn a_changed_rate_applies_to_the_next_call() {
        let l = RateLimiter::new();
        let t0 = Instant::now();
        assert_eq!(l.allow_n("a", t0, 1.0, 10, 10), Decision::Allowed);
        let t1 = t0 + Duration::from_secs(1);
        // At 1/s one token came back; at 100/s (limit raised) a hundred would have, capped at
        // the new burst.
        assert_eq!(l.allow_n("a", t1, 100.0, 1000, 2), Decision::Allowed);
        assert_eq!(l.allow_n("a", t1, 100.0, 1000, 98), Decision::Allowed);
        assert_eq!(l.allow_n("a", t1, 100.0, 1000, 1), Decision::RateLimited);
        // Rate divided by two distributors: half the refill.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(l.allow_n("a", t2, 50.0, 1000, 51), Decision::RateLimited);
        assert_eq!(l.allow_n("a", t2, 50.0, 1000, 50), Decision::Allowed);
    }
}
