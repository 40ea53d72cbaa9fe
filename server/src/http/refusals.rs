//! Refusals in bulk: per-address limits for requests without a session,
//! and one audit entry per address, reason and interval for repeated
//! refusals, in place of one per request.
//!
//! Every audited request writes a permanent entry, and auditing fails
//! closed, so a flood of unauthenticated requests (11,400 a second from
//! one address were measured, 185 GiB of log a day) was a way to fill the
//! disk and take the server down for everyone. So:
//! - Each address (an IPv6 client's /64) may be refused
//!   [`REFUSAL_BURST`] times, then once per [`REFUSAL_REFILL`], with an
//!   entry of its own each time: a colleague's mistyped code or failed
//!   sign-in is on the record as it happened.
//! - Past that, its refusals are counted in memory and written every
//!   [`FLUSH_EVERY`] as one entry per address, user (if signed in) and
//!   reason (`access.refusals`, see `docs/audit-format.md`) whose count
//!   says how many there were. An answer without a session waits
//!   [`TARPIT`] first, so a flooding client slows itself down instead of
//!   the server.
//! - While an address is past its allowance, its requests without a
//!   session (enrollment and sign-in included) are refused before any
//!   work is done; signed-in requests from it are served as usual, so a
//!   flood from behind a shared address does not lock colleagues out.
//! - Refusals of signed-in users for going too fast (429) are counted the
//!   same way, keyed by user, but answered at once: the user is known, and
//!   their own limits hold them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use curbside_proto::audit::Outcome;

use crate::audit::{AuditLog, NewEntry};
use crate::auth::rate_limit::{Limit, RateLimiter, RetryAfter};

/// How many refusals an address gets an entry of its own for at once.
pub const REFUSAL_BURST: u32 = 30;
/// How often an address earns another refusal with an entry of its own.
pub const REFUSAL_REFILL: Duration = Duration::from_secs(1);
/// How often counted refusals are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// How long a counted refusal's answer waits.
pub const TARPIT: Duration = Duration::from_secs(1);
/// The action of a counted-refusals entry.
pub const ACTION: &str = "access.refusals";
/// Its resource type: the resource id is the count.
pub const RESOURCE_TYPE: &str = "refusal_count";
/// The most distinct keys counted between flushes; refusals past it are
/// counted under one key with no address.
const MAX_KEYS: usize = 10_000;

/// What a counted refusal is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    client_addr: Option<String>,
    actor_user: Option<String>,
    reason: String,
}

#[derive(Debug)]
struct Count {
    refusals: u64,
    first_ms: i64,
    last_ms: i64,
}

/// The per-address allowances and the refusals counted since the last
/// flush.
#[derive(Debug, Default)]
pub struct Refusals {
    allowances: RateLimiter,
    counted: Mutex<HashMap<Key, Count>>,
}

impl Refusals {
    /// Whether `key` (an address, or `user:ID`) has refusals with entries
    /// of their own left, and if not, when it will.
    pub fn allowance(&self, key: &str) -> Result<(), RetryAfter> {
        self.allowances.peek(Limit::RefusalsPerKey, key)
    }

    /// Spends one of `key`'s refusals with an entry of its own; `false`
    /// when there is none left and this refusal must be counted instead.
    pub fn spend(&self, key: &str) -> bool {
        self.allowances.check(Limit::RefusalsPerKey, key).is_ok()
    }

    /// Counts one refusal instead of writing its entry.
    pub fn count(
        &self,
        client_addr: Option<String>,
        actor_user: Option<String>,
        reason: &str,
        now_ms: i64,
    ) {
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = Key {
            client_addr,
            actor_user,
            reason: reason.to_owned(),
        };
        if counted.len() >= MAX_KEYS && !counted.contains_key(&key) {
            key.client_addr = None;
            key.actor_user = None;
        }
        let count = counted.entry(key).or_insert(Count {
            refusals: 0,
            first_ms: now_ms,
            last_ms: now_ms,
        });
        count.refusals += 1;
        count.last_ms = now_ms;
    }

    /// The entries for what was counted since the last flush, which it
    /// forgets.
    fn take(&self, now_ms: i64) -> Vec<NewEntry> {
        let counted =
            std::mem::take(&mut *self.counted.lock().unwrap_or_else(PoisonError::into_inner));
        counted
            .into_iter()
            .map(|(key, count)| NewEntry {
                time_ms: now_ms,
                actor_user: key.actor_user,
                actor_device: None,
                client_addr: key.client_addr,
                request_id: format!("refusals:{}-{}", count.first_ms, count.last_ms),
                action: ACTION.to_owned(),
                resource_type: RESOURCE_TYPE.to_owned(),
                resource_id: Some(count.refusals.to_string()),
                outcome: Outcome::Denied,
                reason: key.reason,
            })
            .collect()
    }

    /// Puts back entries that could not be written, to be tried again.
    fn restore(&self, entries: Vec<NewEntry>) {
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in entries {
            let refusals = entry
                .resource_id
                .as_deref()
                .and_then(|count| count.parse().ok())
                .unwrap_or(1);
            let (first_ms, last_ms) = entry
                .request_id
                .strip_prefix("refusals:")
                .and_then(|span| span.split_once('-'))
                .and_then(|(first, last)| Some((first.parse().ok()?, last.parse().ok()?)))
                .unwrap_or((entry.time_ms, entry.time_ms));
            let key = Key {
                client_addr: entry.client_addr,
                actor_user: entry.actor_user,
                reason: entry.reason,
            };
            let count = counted.entry(key).or_insert(Count {
                refusals: 0,
                first_ms,
                last_ms,
            });
            count.refusals += refusals;
            count.first_ms = count.first_ms.min(first_ms);
            count.last_ms = count.last_ms.max(last_ms);
        }
    }

    /// Writes what was counted; what cannot be written now is kept for the
    /// next flush. Returns how many entries were written.
    pub async fn flush(&self, audit: &AuditLog) -> usize {
        let entries = self.take(crate::server::now_ms());
        let mut written = 0;
        let mut failed = Vec::new();
        for entry in entries {
            match audit.append(entry.clone()).await {
                Ok(_) => written += 1,
                Err(_) => failed.push(entry),
            }
        }
        if !failed.is_empty() {
            tracing::warn!(
                entries = failed.len(),
                "cannot write the counted refusals to the audit log yet; keeping them"
            );
            self.restore(failed);
        }
        written
    }

    /// Flushes every [`FLUSH_EVERY`] until aborted.
    pub fn start_flushing(self: &Arc<Self>, audit: AuditLog) -> tokio::task::JoinHandle<()> {
        let refusals = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FLUSH_EVERY);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                refusals.flush(&audit).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_per_address_user_and_reason() {
        let refusals = Refusals::default();
        for _ in 0..REFUSAL_BURST {
            assert!(refusals.spend("10.0.0.1"));
        }
        assert!(!refusals.spend("10.0.0.1"));
        assert!(refusals.allowance("10.0.0.1").is_err());
        assert!(refusals.allowance("10.0.0.2").is_ok());

        let addr = || Some("10.0.0.1".to_owned());
        refusals.count(addr(), None, "unauthenticated", 100);
        refusals.count(addr(), None, "unauthenticated", 250);
        refusals.count(addr(), None, "rate_limited", 300);
        refusals.count(addr(), Some("u".to_owned()), "rate_limited", 310);
        let mut entries = refusals.take(400);
        entries.sort_by(|a, b| (&a.reason, &a.actor_user).cmp(&(&b.reason, &b.actor_user)));
        assert_eq!(entries.len(), 3);
        let counts: Vec<_> = entries
            .iter()
            .map(|entry| entry.resource_id.clone().unwrap())
            .collect();
        assert_eq!(counts, ["1", "1", "2"]);
        let unauthenticated = &entries[2];
        assert_eq!(unauthenticated.request_id, "refusals:100-250");
        assert_eq!(unauthenticated.action, ACTION);
        assert_eq!(unauthenticated.outcome, Outcome::Denied);
        assert!(refusals.take(500).is_empty());

        // What could not be written is counted again with what follows.
        refusals.restore(vec![unauthenticated.clone()]);
        refusals.count(addr(), None, "unauthenticated", 600);
        let again = refusals.take(700);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].resource_id.as_deref(), Some("3"));
        assert_eq!(again[0].request_id, "refusals:100-600");
    }
}
