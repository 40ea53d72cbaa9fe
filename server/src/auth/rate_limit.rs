//! Token-bucket rate limits: on the unauthenticated routes (enrollment,
//! challenge, login), per client address and per address and device; and
//! per user on what a signed-in user could otherwise do at machine speed
//! (claiming others' key packages, thread writes, new threads, directory
//! and audit reads). Refused requests get 429 with `Retry-After`.

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
    /// Failed logins for one device from one address: 20, then 1 per 3 s.
    /// Only failures count, and only those from the same address, so that
    /// nobody can lock a device out, by asking for challenges or by bogus
    /// logins from elsewhere.
    FailedLoginsPerAddressAndDevice,
    /// Key-package claims by one user: 100 at once, then 1 per s, so no
    /// one can drain a colleague's packages.
    ClaimPerUser,
    /// Thread writes (new threads, commits, messages) by one user: 1000 at
    /// once, then 100 per s: far above any person, well below a flood.
    ThreadWritesPerUser,
    /// New threads started by one user: 30 at once, then 1 per minute. A
    /// person starts a few a day; burying a colleague's real threads under
    /// junk ones takes hundreds.
    ThreadCreatesPerUser,
    /// Directory searches by one user, a token per 25 users a page may hold
    /// (2 for the default page): 60 at once, then 2 per s, so a person
    /// typing is never slowed, and listing the whole directory goes at 50
    /// people a second.
    DirectorySearchPerUser,
    /// Directory look-ups of one user by id, by one user: 600 at once,
    /// then 20 per s (clients check every member of a large thread).
    DirectoryReadPerUser,
    /// Audit log pages read by one reviewer: 60 at once, then 5 per s.
    AuditSearchPerUser,
    /// Audit log exports by one reviewer: 20 at once, then 1 per 10 s.
    AuditExportPerUser,
    /// Requests of one signed-in user, whatever they are (each writes an
    /// audit entry): 2000 at once, then 200 per s.
    RequestsPerUser,
    /// Refusals with an audit entry of their own, per address (or per
    /// user, for signed-in users going too fast): 30, then 1 per s; past
    /// that they are counted (`http::refusals`).
    RefusalsPerKey,
}

impl Limit {
    fn burst(self) -> f64 {
        match self {
            Self::EnrollPerAddress => 10.0,
            Self::AuthPerAddress => 60.0,
            Self::FailedLoginsPerAddressAndDevice => 20.0,
            Self::ClaimPerUser => 100.0,
            Self::ThreadWritesPerUser => 1000.0,
            Self::RefusalsPerKey => 30.0,
            Self::ThreadCreatesPerUser => 30.0,
            Self::DirectorySearchPerUser | Self::AuditSearchPerUser => 60.0,
            Self::DirectoryReadPerUser => 600.0,
            Self::AuditExportPerUser => 20.0,
            Self::RequestsPerUser => 2000.0,
        }
    }

    fn per_second(self) -> f64 {
        match self {
            Self::EnrollPerAddress => 1.0 / 6.0,
            Self::AuthPerAddress => 1.0,
            Self::FailedLoginsPerAddressAndDevice => 1.0 / 3.0,
            Self::ClaimPerUser => 1.0,
            Self::ThreadWritesPerUser => 100.0,
            Self::RefusalsPerKey => 1.0,
            Self::ThreadCreatesPerUser => 1.0 / 60.0,
            Self::DirectorySearchPerUser => 2.0,
            Self::DirectoryReadPerUser => 20.0,
            Self::AuditSearchPerUser => 5.0,
            Self::AuditExportPerUser => 0.1,
            Self::RequestsPerUser => 200.0,
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
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<(Limit, String), Bucket>,
    checks: u64,
}

/// Beyond the limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

/// The most buckets kept; past it, after a sweep of full buckets, all are
/// forgotten rather than let memory grow.
const MAX_TRACKED: usize = 100_000;
/// Full buckets are swept away every this many checks.
const SWEEP_EVERY: u64 = 1024;

impl RateLimiter {
    /// Takes one token from `key`'s bucket for `limit`, or says how long to
    /// wait for one.
    pub fn check(&self, limit: Limit, key: &str) -> Result<(), RetryAfter> {
        self.take(limit, key, 1.0)
    }

    /// Takes `cost` tokens (at least one must be left) from `key`'s bucket
    /// for `limit`: a request that does more work costs more.
    pub fn check_cost(&self, limit: Limit, key: &str, cost: f64) -> Result<(), RetryAfter> {
        self.take(limit, key, cost)
    }

    /// Says whether `key` has a token left for `limit`, without taking it.
    pub fn peek(&self, limit: Limit, key: &str) -> Result<(), RetryAfter> {
        self.take(limit, key, 0.0)
    }

    fn take(&self, limit: Limit, key: &str, cost: f64) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.checks += 1;
        if state.checks.is_multiple_of(SWEEP_EVERY) || state.buckets.len() >= MAX_TRACKED {
            // Full buckets carry no information: forget them.
            state.buckets.retain(|(limit, _), bucket| {
                refill(bucket, *limit, now);
                bucket.tokens < limit.burst()
            });
            if state.buckets.len() >= MAX_TRACKED {
                state.buckets.clear();
            }
        }
        let bucket = state
            .buckets
            .entry((limit, key.to_owned()))
            .or_insert(Bucket {
                tokens: limit.burst(),
                updated: now,
            });
        refill(bucket, limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= cost;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second();
            Err(RetryAfter(Duration::from_secs_f64(wait.ceil().max(1.0))))
        }
    }
}

/// The rate-limit key for a client address: the address itself for IPv4,
/// its /64 network for IPv6 (one subscriber usually holds a whole /64).
pub fn address_key(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
        },
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
        // Peeking takes nothing.
        for _ in 0..50 {
            limiter
                .peek(Limit::FailedLoginsPerAddressAndDevice, "d")
                .unwrap();
        }
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: std::net::IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1");
    }
}
