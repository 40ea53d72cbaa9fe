//! Sessions are database rows; this cache keeps checking them off the
//! database on most requests.
//!
//! A request's session is looked up in memory first. An entry is trusted
//! for [`REVALIDATE_AFTER`], then re-read from the database, so a revocation
//! made on another replica takes effect within that time. Revocations made
//! on this server (logout, device removal, user deactivation, role change)
//! evict the entries at once, and bump a generation counter so that a
//! database read that raced with the revocation is not cached: on a single
//! server, revocation takes effect on the very next request. Idle time is
//! tracked in memory and written to the database at most every
//! [`LAST_SEEN_WRITE_EVERY_MS`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use curbside_proto::identity::{Role, UserStatus};

use crate::db::{Database, session};

/// How long a cached session is trusted before the database is asked again.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(5);
/// Dead entries are pruned after every this many database re-reads.
const PRUNE_EVERY: u64 = 256;
/// How often a session's last-seen time is written to the database.
pub const LAST_SEEN_WRITE_EVERY_MS: i64 = 30_000;

/// The caller of an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The session (the token's `jti`).
    pub session_id: String,
    /// The signed-in user.
    pub user_id: String,
    /// The device of the session.
    pub device_id: String,
    /// The user's role.
    pub role: Role,
    /// Whether the organisation's messaging policy has a version the user
    /// has not accepted (threads refuse them until they do).
    pub policy_pending: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    caller: Caller,
    expires_at_ms: i64,
    last_seen_ms: i64,
    written_last_seen_ms: i64,
    checked: Instant,
}

/// Why a session is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Ended, expired, idle too long, or its user or device is gone.
    #[error("the session has ended")]
    Ended,
    /// Expired just now: idle too long, or past its lifetime.
    #[error("the session has expired")]
    Expired,
    /// The database could not be asked.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The in-memory view of live sessions.
#[derive(Debug)]
pub struct SessionCache {
    entries: Mutex<HashMap<String, Entry>>,
    generation: AtomicU64,
    inserts: AtomicU64,
    idle_timeout_ms: i64,
}

impl SessionCache {
    /// A cache ending sessions idle for longer than `idle_timeout`.
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            idle_timeout_ms: i64::try_from(idle_timeout.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks that the session `session_id` of `user_id` on `device_id` is
    /// live at `now_ms`, and marks it as seen.
    pub async fn check(
        &self,
        database: &Database,
        session_id: &str,
        user_id: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Caller, SessionError> {
        let cached = {
            let mut entries = self.lock();
            match entries.get_mut(session_id) {
                Some(entry) if entry.checked.elapsed() < REVALIDATE_AFTER => {
                    if entry.caller.user_id != user_id || entry.caller.device_id != device_id {
                        return Err(SessionError::Ended);
                    }
                    if now_ms - entry.last_seen_ms > self.idle_timeout_ms
                        || now_ms >= entry.expires_at_ms
                    {
                        // Dead, not revoked: no generation bump needed.
                        entries.remove(session_id);
                        None
                    } else {
                        entry.last_seen_ms = now_ms;
                        let write = now_ms - entry.written_last_seen_ms >= LAST_SEEN_WRITE_EVERY_MS;
                        if write {
                            entry.written_last_seen_ms = now_ms;
                        }
                        Some((entry.caller.clone(), write))
                    }
                }
                _ => None,
            }
        };
        if let Some((caller, write)) = cached {
            if write {
                touch(database, session_id, now_ms);
            }
            return Ok(caller);
        }
        self.check_in_database(database, session_id, user_id, device_id, now_ms)
            .await
    }

    async fn check_in_database(
        &self,
        database: &Database,
        session_id: &str,
        user_id: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Caller, SessionError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let remembered_last_seen = self.lock().get(session_id).map(|entry| entry.last_seen_ms);
        let Some(row) = session::find(database.pool(), session_id).await? else {
            return Err(SessionError::Ended);
        };
        let expires_at_ms = row.expires_at_ms;
        let last_seen = row.last_seen_at_ms.max(remembered_last_seen.unwrap_or(0));
        let role = Role::parse(&row.user_role);
        let live = row.user_id == user_id
            && row.device_id == device_id
            && row.ended_at_ms.is_none()
            && row.device_removed_at_ms.is_none()
            && UserStatus::parse(&row.user_status) == Some(UserStatus::Active);
        let (true, Some(role)) = (live, role) else {
            self.lock().remove(session_id);
            return Err(SessionError::Ended);
        };
        if now_ms >= expires_at_ms {
            self.lock().remove(session_id);
            return Err(SessionError::Expired);
        }
        if now_ms - last_seen > self.idle_timeout_ms {
            self.lock().remove(session_id);
            end_sessions(
                database.pool(),
                SessionsOf::Session(session_id),
                "idle",
                now_ms,
            )
            .await?;
            return Err(SessionError::Expired);
        }
        let written_last_seen_ms = if now_ms - last_seen >= LAST_SEEN_WRITE_EVERY_MS {
            touch(database, session_id, now_ms);
            now_ms
        } else {
            last_seen
        };
        let caller = Caller {
            session_id: session_id.to_owned(),
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            role,
            policy_pending: row.policy_version > row.policy_accepted,
        };
        let mut entries = self.lock();
        // A revocation since the read above may not be reflected in it.
        if self.generation.load(Ordering::SeqCst) == generation {
            entries.insert(
                session_id.to_owned(),
                Entry {
                    caller: caller.clone(),
                    expires_at_ms,
                    last_seen_ms: now_ms,
                    written_last_seen_ms,
                    checked: Instant::now(),
                },
            );
            if self.inserts.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
                // Sessions that ended by expiry or idleness are never asked
                // about again unless their token is replayed: drop them.
                let idle = self.idle_timeout_ms;
                entries.retain(|_, entry| {
                    now_ms < entry.expires_at_ms && now_ms - entry.last_seen_ms <= idle
                });
            }
        }
        Ok(caller)
    }

    /// Whether the session is still live at `now_ms`, without counting this
    /// as activity (a push connection is not the user doing something, so
    /// it must not hold off the idle timeout), and if not, why.
    pub async fn still_live(
        &self,
        database: &Database,
        session_id: &str,
        now_ms: i64,
    ) -> Result<Liveness, SessionError> {
        let remembered = self.lock().get(session_id).map(|entry| entry.last_seen_ms);
        let times = session::find_unended(database.pool(), session_id).await?;
        Ok(match times {
            None => Liveness::Ended,
            Some(times)
                if now_ms - times.last_seen_at_ms.max(remembered.unwrap_or(0))
                    > self.idle_timeout_ms =>
            {
                Liveness::Ended
            }
            Some(times) if now_ms >= times.expires_at_ms => Liveness::Expired,
            Some(times) if times.policy_version > times.policy_accepted => Liveness::PolicyPending,
            Some(_) => Liveness::Live,
        })
    }

    /// Forgets one session.
    pub fn evict(&self, session_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().remove(session_id);
    }

    /// Forgets every session of a user.
    pub fn evict_user(&self, user_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock()
            .retain(|_, entry| entry.caller.user_id != user_id);
    }

    /// How long a session may go unused before it ends (ms).
    pub fn idle_timeout_ms(&self) -> i64 {
        self.idle_timeout_ms
    }

    /// Forgets every session, so that each is read again from the database
    /// (a new policy version changes what every session may do).
    pub fn evict_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    /// Forgets every session of a device.
    pub fn evict_device(&self, device_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock()
            .retain(|_, entry| entry.caller.device_id != device_id);
    }
}

/// Whether a session can still be used, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It can.
    Live,
    /// Its lifetime ran out while it was in use: the device may sign in
    /// again.
    Expired,
    /// It was ended: logged out, idle past the timeout, its device removed
    /// or its user deactivated. A client stops rather than sign in again.
    Ended,
    /// It is live, but a messaging policy version was published that its
    /// user has not accepted: threads (and their live events) wait.
    PolicyPending,
}

/// Records in the background that the session was seen at `now_ms`. The
/// request does not wait for it: it is a write of its own, which can queue
/// behind the audit writer's transactions, and a lost one only makes the
/// session look idle for longer than it was (it may end sooner, never
/// later).
fn touch(database: &Database, session_id: &str, now_ms: i64) {
    let database = database.clone();
    let session_id = session_id.to_owned();
    tokio::spawn(async move {
        let written = session::record_seen(database.pool(), &session_id, now_ms).await;
        if let Err(error) = written {
            tracing::warn!(%error, "cannot record when a session was last seen");
        }
    });
}

pub use crate::db::session::SessionsOf;

/// Ends the live sessions `which` says, recording why; returns how many.
pub async fn end_sessions<'c, E>(
    executor: E,
    which: SessionsOf<'_>,
    reason: &'static str,
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    session::end(executor, which, reason, now_ms).await
}
