//! Single-use tickets for the live-events WebSocket. A browser's
//! WebSocket cannot send an `Authorization` header, and a token must never
//! go in a URL (proxies and logs keep URLs), so a signed-in device asks for
//! a ticket (`POST /v1/events/ticket`) and offers it as a WebSocket
//! subprotocol. A ticket is 256 random bits, stored only as its SHA-256,
//! valid for [`TICKET_LIFETIME`], opens one socket for the session that
//! asked for it (whose liveness is then checked as for a token), and is
//! deleted by the upgrade that uses it. The CLI sends its token instead.

use std::time::Duration;

use crate::auth::sessions::Caller;
use crate::db::Database;
use crate::db::events_ticket::{self, TicketHolder};
use crate::ids::{RandomError, random_bytes};

/// How long a ticket may wait to be used.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(30);

/// Why a ticket could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn hash(ticket: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, ticket.as_bytes())
        .as_ref()
        .to_vec()
}

/// Issues a ticket for the caller's session: the ticket and when it expires.
pub async fn issue(
    database: &Database,
    caller: &Caller,
    now_ms: i64,
) -> Result<(String, i64), TicketError> {
    let ticket = curbside_proto::b64::encode(&random_bytes::<32>()?);
    let lifetime = i64::try_from(TICKET_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    let expires_at_ms = now_ms.saturating_add(lifetime);
    let holder = TicketHolder {
        session_id: caller.session_id.clone(),
        user_id: caller.user_id.clone(),
        device_id: caller.device_id.clone(),
    };
    events_ticket::insert(database.pool(), &hash(&ticket), &holder, expires_at_ms).await?;
    Ok((ticket, expires_at_ms))
}

/// Takes (deletes) a ticket and returns whose session it opens, if it is
/// known and unexpired.
pub async fn take(database: &Database, ticket: &str) -> Result<Option<TicketHolder>, sqlx::Error> {
    events_ticket::take(database.pool(), &hash(ticket), crate::clock::now_ms()).await
}
