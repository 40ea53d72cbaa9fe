//! Authentication: enrollment codes, login challenges, session tokens, the
//! session cache and rate limits. The HTTP handlers in `http::auth`,
//! `http::enroll` and `http::admin` use these.

pub mod rate_limit;
pub mod sessions;
pub mod tickets;
pub mod tokens;

use std::time::Duration;

use crate::db::{app_user, enrollment_code};
use crate::ids::{RandomError, new_id, random_bytes};

use rate_limit::RateLimiter;
use sessions::SessionCache;
use tokens::TokenIssuer;

/// How long a login challenge may be answered.
pub const CHALLENGE_LIFETIME_MS: i64 = 60_000;

/// Everything authentication needs, shared by the handlers.
#[derive(Debug)]
pub struct Auth {
    /// Signs and checks session tokens.
    pub tokens: TokenIssuer,
    /// The live sessions.
    pub sessions: SessionCache,
    /// Limits on unauthenticated attempts.
    pub limits: RateLimiter,
    /// This server's id, named in login messages and token claims.
    pub server_id: String,
    /// How long a token is valid.
    pub token_lifetime: Duration,
    /// How long an enrollment code is valid.
    pub enrollment_code_lifetime: Duration,
}

/// A new enrollment code in canonical form: 20 characters of Crockford
/// base32 (100 bits), each from one random byte (256 is a multiple of 32,
/// so there is no bias).
pub fn new_enrollment_code() -> Result<String, RandomError> {
    let alphabet = curbside_proto::identity::ENROLLMENT_CODE_ALPHABET;
    Ok(
        random_bytes::<{ curbside_proto::identity::ENROLLMENT_CODE_LEN }>()?
            .iter()
            .map(|byte| char::from(alphabet[usize::from(byte % 32)]))
            .collect(),
    )
}

/// What the database keeps of an enrollment code: its SHA-256. A code has
/// 100 random bits, so a fast hash is enough.
pub fn enrollment_code_hash(canonical_code: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, canonical_code.as_bytes())
        .as_ref()
        .to_vec()
}

/// A code just issued: the code itself (shown once) and its id.
#[derive(Clone)]
pub struct IssuedCode {
    /// The code, in canonical form.
    pub code: String,
    /// Its id, to list and revoke it by.
    pub code_id: String,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("code_id", &self.code_id)
            .finish_non_exhaustive()
    }
}

/// Issues an enrollment code valid until `expires_at_ms`, for `user_id`, or
/// (with `None`) for a first administrator whom enrollment creates.
pub async fn issue_enrollment_code<'c, E>(
    executor: E,
    user_id: Option<&str>,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<IssuedCode, IssueError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let code = new_enrollment_code()?;
    let code_id = new_id()?;
    enrollment_code::insert(
        executor,
        &enrollment_code_hash(&code),
        &code_id,
        user_id,
        now_ms,
        expires_at_ms,
    )
    .await?;
    Ok(IssuedCode { code, code_id })
}

/// Why a code could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The database refused.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The issue could not be recorded in the audit log.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

/// Issues an administrator's enrollment code from the server's console
/// (at first start, or `curbside-server admin-code`), recording it in the
/// audit log in the same transaction: a privileged act with no session
/// behind it is still on the record.
pub async fn issue_admin_code(
    database: &crate::db::Database,
    signer: &crate::audit::AuditSigner,
    policy: crate::config::CheckpointPolicy,
    now_ms: i64,
    expires_at_ms: i64,
) -> Result<String, IssueError> {
    let mut tx = database.pool().begin().await?;
    let code = issue_enrollment_code(&mut *tx, None, now_ms, expires_at_ms)
        .await?
        .code;
    let entry = crate::audit::NewEntry {
        time_ms: now_ms,
        actor_user: None,
        actor_device: None,
        client_addr: None,
        request_id: "console".to_owned(),
        action: "admin.enrollment_code.issue".to_owned(),
        resource_type: "user".to_owned(),
        resource_id: None,
        outcome: curbside_proto::audit::Outcome::Allowed,
        reason: "server_console".to_owned(),
        evidence: None,
    };
    crate::audit::append_in(&mut tx, &[entry], signer, policy).await?;
    tx.commit().await?;
    Ok(code)
}

/// On a database without users, issues a first-administrator code unless an
/// unused, unexpired one exists; returns it to be shown once.
pub async fn first_admin_code(
    database: &crate::db::Database,
    signer: &crate::audit::AuditSigner,
    policy: crate::config::CheckpointPolicy,
    now_ms: i64,
    lifetime: Duration,
) -> Result<Option<String>, IssueError> {
    let users = app_user::count(database.pool()).await?;
    let pending = enrollment_code::count_pending_first_admin(database.pool(), now_ms).await?;
    if users > 0 || pending > 0 {
        return Ok(None);
    }
    let expires = now_ms + i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2);
    Ok(Some(
        issue_admin_code(database, signer, policy, now_ms, expires).await?,
    ))
}
