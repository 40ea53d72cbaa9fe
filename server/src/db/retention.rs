//! What decides how long thread content lives, and what the sweep reads
//! and writes to purge it: `retention_policy` (the organisation's maximum
//! age, one row), `legal_hold` (holds on a thread or a user, current or
//! lifted), each thread's lifespans (the log's `lifespan` entries) and how
//! far the sweep passed over its entries, and `erasure_due` (recalls whose
//! erasure a hold suspended).
//!
//! A hold covers a thread if it names the thread, or a user who is or was
//! a member of it ([`HELD`]). Nothing a hold covers is purged.

use std::sync::LazyLock;

use sqlx::Any;

/// Whether a current hold covers the thread `t.thread_id` (for a query
/// over `thread t`).
const HELD: &str = "EXISTS (SELECT 1 FROM legal_hold h WHERE h.lifted_at_ms IS NULL AND \
     ((h.scope = 'thread' AND h.target_id = t.thread_id) OR \
      (h.scope = 'user' AND h.target_id IN \
         (SELECT hm.user_id FROM thread_member hm WHERE hm.thread_id = t.thread_id))))";

/// The retention policy's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    /// The maximum age of thread content, if the policy is on.
    pub max_age_ms: Option<i64>,
    /// When it was last set.
    pub updated_at_ms: Option<i64>,
    /// By whom.
    pub updated_by: Option<String>,
}

/// The retention policy.
pub async fn policy<'c, E>(executor: E) -> Result<PolicyRow, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT max_age_ms, updated_at_ms, updated_by FROM retention_policy WHERE policy_row = 1",
    )
    .fetch_one(executor)
    .await
}

/// Sets the retention policy's maximum age (`None`: off).
pub async fn set_policy<'c, E>(
    executor: E,
    max_age_ms: Option<i64>,
    now_ms: i64,
    by_user: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "UPDATE retention_policy SET max_age_ms = $1, updated_at_ms = $2, updated_by = $3 \
         WHERE policy_row = 1",
    )
    .bind(max_age_ms)
    .bind(now_ms)
    .bind(by_user)
    .execute(executor)
    .await?;
    Ok(())
}

/// A legal hold's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HoldRow {
    /// Its id.
    pub hold_id: String,
    /// `thread` or `user`.
    pub scope: String,
    /// The thread's or the user's id.
    pub target_id: String,
    /// Why.
    pub reason: String,
    /// Who placed it.
    pub placed_by: String,
    /// When.
    pub placed_at_ms: i64,
    /// Who lifted it.
    pub lifted_by: Option<String>,
    /// When.
    pub lifted_at_ms: Option<i64>,
}

const HOLD_COLUMNS: &str =
    "hold_id, scope, target_id, reason, placed_by, placed_at_ms, lifted_by, lifted_at_ms";

/// Every hold, newest first.
pub async fn holds<'c, E>(executor: E) -> Result<Vec<HoldRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM legal_hold ORDER BY placed_at_ms DESC, hold_id"
    ))
    .fetch_all(executor)
    .await
}

/// Hold `hold_id`, if there is one.
pub async fn hold<'c, E>(executor: E, hold_id: &str) -> Result<Option<HoldRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM legal_hold WHERE hold_id = $1"
    ))
    .bind(hold_id)
    .fetch_optional(executor)
    .await
}

/// Places a hold.
pub async fn place<'c, E>(executor: E, hold: &HoldRow) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO legal_hold (hold_id, scope, target_id, reason, placed_by, placed_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&hold.hold_id)
    .bind(&hold.scope)
    .bind(&hold.target_id)
    .bind(&hold.reason)
    .bind(&hold.placed_by)
    .bind(hold.placed_at_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Lifts hold `hold_id` if it is current; returns whether it did.
pub async fn lift<'c, E>(
    executor: E,
    hold_id: &str,
    by_user: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let lifted = sqlx::query(
        "UPDATE legal_hold SET lifted_by = $1, lifted_at_ms = $2 \
         WHERE hold_id = $3 AND lifted_at_ms IS NULL",
    )
    .bind(by_user)
    .bind(now_ms)
    .bind(hold_id)
    .execute(executor)
    .await?;
    Ok(lifted.rows_affected() == 1)
}

/// Takes the retention policy's row for the transaction (its first
/// write): every transaction that places or lifts a hold, purges or
/// erases takes it first, so that on PostgreSQL (whose READ COMMITTED
/// would let a purge miss a hold committed a moment after its check) they
/// happen one after the other; on SQLite the write lock already orders
/// them.
pub async fn serialize_with_holds<'c, E>(executor: E) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("UPDATE retention_policy SET policy_row = policy_row WHERE policy_row = 1")
        .execute(executor)
        .await?;
    Ok(())
}

/// Whether a thread `thread_id` exists.
pub async fn thread_exists<'c, E>(executor: E, thread_id: &str) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM thread WHERE thread_id = $1")
        .bind(thread_id)
        .fetch_optional(executor)
        .await?;
    Ok(found.is_some())
}

/// Whether a current hold covers thread `thread_id`.
pub async fn is_held<'c, E>(executor: E, thread_id: &str) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT 1 FROM thread t WHERE t.thread_id = $1 AND {HELD}"));
    let held: Option<i64> = sqlx::query_scalar(&SQL)
        .bind(thread_id)
        .fetch_optional(executor)
        .await?;
    Ok(held.is_some())
}

/// A thread whose content may be due for purging.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    /// The thread.
    pub thread_id: String,
    /// Its log's last entry.
    pub last_seq: i64,
    /// Its first change of lifespan, if it ever had one.
    pub lifespan_since_seq: Option<i64>,
    /// The entries through this one are done with as far as lifespans go.
    pub lifespan_through_seq: i64,
    /// The entries through this one are done with as far as the retention
    /// policy goes.
    pub retention_through_seq: i64,
}

/// The threads no hold covers that have entries the sweep has not passed
/// over: under a lifespan, or (when `made_before_ms` is given: the
/// retention policy's cutoff) in a thread made before it; in id order
/// after `after_id`, at most `limit`.
pub async fn candidates<'c, E>(
    executor: E,
    made_before_ms: Option<i64>,
    after_id: &str,
    limit: i64,
) -> Result<Vec<Candidate>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT t.thread_id, t.last_seq, t.lifespan_since_seq, t.lifespan_through_seq, \
               t.retention_through_seq FROM thread t \
             WHERE t.thread_id > $2 \
               AND ((t.lifespan_since_seq IS NOT NULL AND t.lifespan_through_seq < t.last_seq) \
                 OR (t.created_at_ms < $1 AND t.retention_through_seq < t.last_seq)) \
               AND NOT {HELD} \
             ORDER BY t.thread_id LIMIT $3"
        )
    });
    sqlx::query_as(&SQL)
        .bind(made_before_ms.unwrap_or(i64::MIN))
        .bind(after_id)
        .bind(limit)
        .fetch_all(executor)
        .await
}

/// A change of a thread's lifespan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LifespanChange {
    /// Its place in the log: it applies to the messages after it.
    pub seq: i64,
    /// The lifespan from then on (`None`: messages stay).
    pub lifespan_ms: Option<i64>,
}

/// Every change of `thread_id`'s lifespan, in order.
pub async fn lifespans<'c, E>(
    executor: E,
    thread_id: &str,
) -> Result<Vec<LifespanChange>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as("SELECT seq, lifespan_ms FROM thread_lifespan WHERE thread_id = $1 ORDER BY seq")
        .bind(thread_id)
        .fetch_all(executor)
        .await
}

/// An entry the sweep reads.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    /// Its place in the log.
    pub seq: i64,
    /// When the server accepted it.
    pub created_at_ms: i64,
    /// 1 if it is a message whose content is still there, else 0.
    pub has_content: i64,
}

/// The first `limit` entries of `thread_id` after `after_seq` and before
/// `before_seq`, in order.
pub async fn entries<'c, E>(
    executor: E,
    thread_id: &str,
    after_seq: i64,
    before_seq: i64,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT seq, created_at_ms, CASE WHEN kind = 'application' AND recalled_at_ms IS NULL \
         AND purged_at_ms IS NULL THEN 1 ELSE 0 END AS has_content FROM thread_entry \
         WHERE thread_id = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4",
    )
    .bind(thread_id)
    .bind(after_seq)
    .bind(before_seq)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Records how far the sweep has passed over `thread_id`'s entries for
/// its lifespans (`retention` false) or the retention policy (true).
pub async fn set_through<'c, E>(
    executor: E,
    thread_id: &str,
    retention: bool,
    seq: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let column = if retention {
        "retention_through_seq"
    } else {
        "lifespan_through_seq"
    };
    sqlx::query(&format!(
        "UPDATE thread SET {column} = $1 WHERE thread_id = $2 AND {column} < $1"
    ))
    .bind(seq)
    .bind(thread_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Erases the content of the messages of `thread_id` at `seqs` (their
/// bodies become empty) and marks them purged at `now_ms`; returns how
/// many.
pub async fn purge_messages<'c, E>(
    executor: E,
    thread_id: &str,
    seqs: &[i64],
    now_ms: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if seqs.is_empty() {
        return Ok(0);
    }
    let marks: Vec<String> = (0..seqs.len()).map(|n| format!("${}", n + 4)).collect();
    let sql = format!(
        "UPDATE thread_entry SET body = $1, purged_at_ms = $2 WHERE thread_id = $3 \
         AND kind = 'application' AND recalled_at_ms IS NULL AND purged_at_ms IS NULL \
         AND seq IN ({})",
        marks.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(Vec::<u8>::new())
        .bind(now_ms)
        .bind(thread_id);
    for seq in seqs {
        query = query.bind(*seq);
    }
    Ok(query.execute(executor).await?.rows_affected())
}

/// Records that message `seq` of `thread_id` was recalled while held: it
/// is to be erased once no hold covers it.
pub async fn erase_later<'c, E>(executor: E, thread_id: &str, seq: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("INSERT INTO erasure_due (thread_id, seq) VALUES ($1, $2)")
        .bind(thread_id)
        .bind(seq)
        .execute(executor)
        .await?;
    Ok(())
}

/// A recalled message whose erasure no hold suspends any more.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ErasureDue {
    /// The thread.
    pub thread_id: String,
    /// The message.
    pub seq: i64,
}

/// At most `limit` recalled messages a hold kept that none covers now.
pub async fn erasures_due<'c, E>(executor: E, limit: i64) -> Result<Vec<ErasureDue>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT d.thread_id, d.seq FROM erasure_due d JOIN thread t \
               ON t.thread_id = d.thread_id \
             WHERE NOT {HELD} ORDER BY d.thread_id, d.seq LIMIT $1"
        )
    });
    sqlx::query_as(&SQL).bind(limit).fetch_all(executor).await
}

/// Erases recalled message `seq` of `thread_id` (its body becomes empty)
/// and forgets that it was due.
pub async fn erase_recalled_now(
    connection: &mut sqlx::AnyConnection,
    thread_id: &str,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE thread_entry SET body = $1 WHERE thread_id = $2 AND seq = $3")
        .bind(Vec::<u8>::new())
        .bind(thread_id)
        .bind(seq)
        .execute(&mut *connection)
        .await?;
    sqlx::query("DELETE FROM erasure_due WHERE thread_id = $1 AND seq = $2")
        .bind(thread_id)
        .bind(seq)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
