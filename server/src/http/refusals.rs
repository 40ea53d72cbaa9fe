//! Refusals in bulk: per-address limits for requests without a session,
//! and one audit entry per address, user, action and reason for repeated
//! refusals, in place of one per request.
//!
//! Every audited request writes a permanent entry, and auditing fails
//! closed, so a flood of refused requests (11,400 a second from one
//! address were measured, 185 GiB of log a day) was a way to fill the disk
//! and take the server down for everyone. So:
//! - Each address (an IPv6 client's /64), or each user for a refused
//!   request that names one (a signed-in user's, or a replayed token's),
//!   may be refused [`REFUSAL_BURST`] times, then once per
//!   [`REFUSAL_REFILL`], with an entry of its own each time: a colleague's
//!   mistyped code or failed sign-in is on the record as it happened.
//! - Past that, its refusals are counted in memory and written every
//!   [`FLUSH_EVERY`] as one entry per address, user, action and reason
//!   whose `resource_type` is `refusal_count` and whose resource id is the
//!   count (see `docs/audit-format.md`).
//! - A counted refusal without a valid session (no token, a bad one, or a
//!   session that has ended) is answered after [`TARPIT`], so a flooding
//!   client slows itself down instead of the server; at most
//!   [`TARPIT_PER_ADDRESS`] wait at once per address, and past that the
//!   answer comes at once and closes the connection.
//! - While an address is past its allowance, its requests without a
//!   session to routes other than sign-in itself are refused before any
//!   work; enrollment, challenge and login keep their own per-address
//!   limits, so one flooding machine behind a shared address cannot lock
//!   its colleagues out of signing in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use curbside_proto::audit::Outcome;

use crate::audit::NewEntry;
use crate::auth::rate_limit::{Limit, RateLimiter, RetryAfter};
use crate::pipeline::writer::AuditLog;

/// How many refusals a key gets an entry of its own for at once.
pub const REFUSAL_BURST: u32 = 30;
/// How often a key earns another refusal with an entry of its own.
pub const REFUSAL_REFILL: Duration = Duration::from_secs(1);
/// How often counted refusals are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// How long a counted refusal without a session waits for its answer.
pub const TARPIT: Duration = Duration::from_secs(1);
/// How many refusals of one address may wait at once.
pub const TARPIT_PER_ADDRESS: usize = 64;
/// The resource type of a counted-refusals entry: its resource id is the
/// count.
pub const RESOURCE_TYPE: &str = "refusal_count";
/// The most distinct keys counted between flushes; past it, refusals are
/// counted under a wider address (an IPv4 /24, an IPv6 /48) and no user.
const MAX_KEYS: usize = 10_000;
/// How long the last flush at shutdown may take.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a counted refusal is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    client_addr: Option<String>,
    actor_user: Option<String>,
    action: String,
    reason: String,
}

#[derive(Debug)]
struct Count {
    refusals: u64,
    first_ms: i64,
    last_ms: i64,
}

/// The per-key allowances, the refusals counted since the last flush, and
/// the refusals waiting in the tarpit.
#[derive(Debug, Default)]
pub struct Refusals {
    allowances: RateLimiter,
    counted: Mutex<HashMap<Key, Count>>,
    waiting: Mutex<HashMap<String, usize>>,
}

/// One refusal waiting in the tarpit; leaves it on drop.
#[derive(Debug)]
pub struct Waiting<'a> {
    refusals: &'a Refusals,
    address: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self
            .refusals
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = waiting.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                waiting.remove(&self.address);
            }
        }
    }
}

/// A refusal counted rather than written: who, what and why.
#[derive(Debug, Clone)]
pub struct Refused<'a> {
    /// The client's address as limits count it.
    pub address: Option<String>,
    /// The user the request named, if any.
    pub actor_user: Option<String>,
    /// The request's action.
    pub action: &'a str,
    /// Why it was refused.
    pub reason: &'a str,
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

    /// A place in the tarpit for a refusal from `address`, unless as many
    /// as it may have are waiting already.
    pub fn wait(&self, address: &str) -> Option<Waiting<'_>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let count = waiting.entry(address.to_owned()).or_insert(0);
        if *count >= TARPIT_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Waiting {
            refusals: self,
            address: address.to_owned(),
        })
    }

    /// Counts one refusal instead of writing its entry.
    pub fn count(&self, refused: &Refused<'_>, now_ms: i64) {
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = Key {
            client_addr: refused.address.clone(),
            actor_user: refused.actor_user.clone(),
            action: refused.action.to_owned(),
            reason: refused.reason.to_owned(),
        };
        if counted.len() >= MAX_KEYS && !counted.contains_key(&key) {
            key.client_addr = key.client_addr.as_deref().map(wider);
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

    /// How many refusals are counted and not yet written.
    pub fn pending(&self) -> u64 {
        self.counted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|count| count.refusals)
            .sum()
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
                action: key.action,
                resource_type: RESOURCE_TYPE.to_owned(),
                resource_id: Some(count.refusals.to_string()),
                outcome: Outcome::Denied,
                reason: key.reason,
                evidence: None,
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
                action: entry.action,
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

    /// Writes what was counted, all entries at once (the audit writer puts
    /// them in one transaction); what cannot be written now is kept for the
    /// next flush. Returns how many entries were written.
    pub async fn flush(&self, audit: &AuditLog) -> usize {
        let entries = self.take(crate::clock::now_ms());
        let mut appends = tokio::task::JoinSet::new();
        for entry in entries {
            let audit = audit.clone();
            appends.spawn(async move { audit.append(entry.clone()).await.map_err(|_| entry) });
        }
        let mut written = 0;
        let mut failed = Vec::new();
        while let Some(appended) = appends.join_next().await {
            match appended {
                Ok(Ok(_)) => written += 1,
                Ok(Err(entry)) => failed.push(entry),
                Err(_) => {}
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

    /// Flushes every [`FLUSH_EVERY`] until `stop` says so; then flushes one
    /// last time (for at most a few seconds) and says what, if anything,
    /// could not be written.
    pub fn start_flushing(
        self: &Arc<Self>,
        audit: AuditLog,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let refusals = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FLUSH_EVERY);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        refusals.flush(&audit).await;
                    }
                    _ = stop.changed() => break,
                }
            }
            let _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, refusals.flush(&audit)).await;
            let lost = refusals.pending();
            if lost > 0 {
                tracing::warn!(
                    refusals = lost,
                    "counted refusals could not be written to the audit log before shutdown"
                );
            }
        })
    }
}

/// A wider address than a rate-limit key, for counting past the key limit:
/// an IPv4 /24, an IPv6 /48.
fn wider(address: &str) -> String {
    let bare = address.split('/').next().unwrap_or(address);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<'a>(user: Option<&str>, action: &'a str, reason: &'a str) -> Refused<'a> {
        Refused {
            address: Some("10.0.0.1".to_owned()),
            actor_user: user.map(str::to_owned),
            action,
            reason,
        }
    }

    #[test]
    fn refusals_are_counted_per_address_user_action_and_reason() {
        let refusals = Refusals::default();
        for _ in 0..REFUSAL_BURST {
            assert!(refusals.spend("10.0.0.1"));
        }
        assert!(!refusals.spend("10.0.0.1"));
        assert!(refusals.allowance("10.0.0.1").is_err());
        assert!(refusals.allowance("10.0.0.2").is_ok());

        refusals.count(&refused(None, "thread.list", "no_token"), 100);
        refusals.count(&refused(None, "thread.list", "no_token"), 250);
        refusals.count(&refused(None, "auth.login", "rate_limited"), 300);
        refusals.count(&refused(Some("u"), "auth.login", "rate_limited"), 310);
        assert_eq!(refusals.pending(), 4);
        let mut entries = refusals.take(400);
        entries.sort_by(|a, b| (&a.action, &a.actor_user).cmp(&(&b.action, &b.actor_user)));
        assert_eq!(entries.len(), 3);
        let counts: Vec<_> = entries
            .iter()
            .map(|entry| entry.resource_id.clone().unwrap())
            .collect();
        assert_eq!(counts, ["1", "1", "2"]);
        let listed = &entries[2];
        assert_eq!(listed.action, "thread.list");
        assert_eq!(listed.request_id, "refusals:100-250");
        assert_eq!(listed.resource_type, RESOURCE_TYPE);
        assert_eq!(listed.outcome, Outcome::Denied);
        assert!(refusals.take(500).is_empty());

        // What could not be written is counted again with what follows.
        refusals.restore(vec![listed.clone()]);
        refusals.count(&refused(None, "thread.list", "no_token"), 600);
        let again = refusals.take(700);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].resource_id.as_deref(), Some("3"));
        assert_eq!(again[0].request_id, "refusals:100-600");
    }

    #[test]
    fn the_tarpit_holds_a_bounded_number_per_address() {
        let refusals = Refusals::default();
        let held: Vec<_> = (0..TARPIT_PER_ADDRESS)
            .map(|_| refusals.wait("10.0.0.1").unwrap())
            .collect();
        assert!(refusals.wait("10.0.0.1").is_none());
        assert!(refusals.wait("10.0.0.2").is_some());
        drop(held);
        assert!(refusals.wait("10.0.0.1").is_some());
        assert_eq!(wider("10.1.2.3"), "10.1.2.0/24");
        assert_eq!(wider("2001:db8:1:2::/64"), "2001:db8:1::/48");
    }
}
