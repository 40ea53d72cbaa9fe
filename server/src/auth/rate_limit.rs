//! Token-bucket rate limits on the unauthenticated routes (enrollment,
//! challenge, login), per client address and per device. Refused requests
//! get 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What is being limited, and how hard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Enrollment attempts from one address: 10 at once, then 1 per 6 s.
    EnrollPerAddress,
    /// Challenge and login requests from one address: 60, then 1 per s.
    AuthPerAddress,
    /// Challenge and login requests for one device: 20, then 1 per 3 s.
    AuthPerDevice,
}

impl Limit {
    fn burst(self) -> f64 {
        match self {
            Self::EnrollPerAddress => 10.0,
            Self::AuthPerAddress => 60.0,
            Self::AuthPerDevice => 20.0,
        }
    }

    fn per_second(self) -> f64 {
        match self {
            Self::EnrollPerAddress => 1.0 / 6.0,
            Self::AuthPerAddress => 1.0,
            Self::AuthPerDevice => 1.0 / 3.0,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets, keyed by limit and key (an address or a device id).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(Limit, String), Bucket>>,
}

/// Beyond the limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// Takes one token from `key`'s bucket for `limit`, or says how long to
    /// wait for one.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED {
            // Full buckets carry no information: forget them.
            buckets.retain(|(limit, _), bucket| {
                refill(bucket, *limit, now);
                bucket.tokens < limit.burst()
            });
        }
        let bucket = buckets.entry((limit, key.to_owned())).or_insert(Bucket {
            tokens: limit.burst(),
            updated: now,
        });
        refill(bucket, limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second();
            Err(RetryAfter(Duration::from_secs_f64(wait.ceil().max(1.0))))
        }
    }
}

fn refill(bucket: &mut Bucket, limit: Limit, now: Instant) {
    let elapsed = now.duration_since(bucket.updated).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * limit.per_second()).min(limit.burst());
    bucket.updated = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let limiter = RateLimiter::default();
        for _ in 0..10 {
            limiter.check(Limit::EnrollPerAddress, "10.0.0.1").unwrap();
        }
        let RetryAfter(wait) = limiter
            .check(Limit::EnrollPerAddress, "10.0.0.1")
            .unwrap_err();
        assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(6));
        // Other keys and other limits are separate.
        limiter.check(Limit::EnrollPerAddress, "10.0.0.2").unwrap();
        limiter.check(Limit::AuthPerAddress, "10.0.0.1").unwrap();
    }
}
