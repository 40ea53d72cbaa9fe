//! The clinical workflow's tables: `clinical_role` and `role_shift` (who
//! holds a role when), `escalation_policy` (per department),
//! `urgent_message` and `urgent_ack` (an urgent message's escalation and
//! acknowledgements), `thread_invite` (a backup an escalation asked into a
//! thread), `push_token` (where the push gateway reaches a device), and
//! the changes of membership member clients are asked to commit.

use sqlx::Any;

use super::batch::marks;

/// A role's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    /// Its id.
    pub role_id: String,
    /// Its name.
    pub name: String,
    /// Its department.
    pub department: String,
}

/// Makes a role; false if one with its name (folded: `name_key`) exists.
pub async fn insert_role<'c, E>(
    executor: E,
    role: &RoleRow,
    name_key: &str,
    by_user: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let inserted = sqlx::query(
        "INSERT INTO clinical_role (role_id, name, name_key, department, created_by, \
         created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name_key) DO NOTHING",
    )
    .bind(&role.role_id)
    .bind(&role.name)
    .bind(name_key)
    .bind(&role.department)
    .bind(by_user)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Every role, by name.
pub async fn roles<'c, E>(executor: E) -> Result<Vec<RoleRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as("SELECT role_id, name, department FROM clinical_role ORDER BY name_key")
        .fetch_all(executor)
        .await
}

/// Role `role_id`, if there is one.
pub async fn role<'c, E>(executor: E, role_id: &str) -> Result<Option<RoleRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as("SELECT role_id, name, department FROM clinical_role WHERE role_id = $1")
        .bind(role_id)
        .fetch_optional(executor)
        .await
}

/// A shift's row, with its holder's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShiftRow {
    /// Its id.
    pub shift_id: String,
    /// The role.
    pub role_id: String,
    /// The holder.
    pub user_id: String,
    /// Their display name.
    pub display_name: String,
    /// From.
    pub starts_at_ms: i64,
    /// Until.
    pub ends_at_ms: i64,
    /// The zone it was planned in.
    pub timezone: String,
}

const SHIFT_COLUMNS: &str = "s.shift_id, s.role_id, s.user_id, u.display_name, s.starts_at_ms, \
     s.ends_at_ms, s.timezone";

/// Adds a shift.
pub async fn insert_shift<'c, E>(
    executor: E,
    shift: &ShiftRow,
    by_user: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO role_shift (shift_id, role_id, user_id, starts_at_ms, ends_at_ms, \
         timezone, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&shift.shift_id)
    .bind(&shift.role_id)
    .bind(&shift.user_id)
    .bind(shift.starts_at_ms)
    .bind(shift.ends_at_ms)
    .bind(&shift.timezone)
    .bind(by_user)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Cancels a shift of `role_id`; false if it has none such (or it was
/// cancelled already).
pub async fn cancel_shift<'c, E>(
    executor: E,
    role_id: &str,
    shift_id: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let cancelled = sqlx::query(
        "UPDATE role_shift SET cancelled_at_ms = $3 \
         WHERE role_id = $1 AND shift_id = $2 AND cancelled_at_ms IS NULL",
    )
    .bind(role_id)
    .bind(shift_id)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(cancelled.rows_affected() == 1)
}

/// The shifts not cancelled that end after `since_ms`, in start order.
pub async fn shifts_since<'c, E>(executor: E, since_ms: i64) -> Result<Vec<ShiftRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {SHIFT_COLUMNS} FROM role_shift s JOIN app_user u ON u.user_id = s.user_id \
         WHERE s.cancelled_at_ms IS NULL AND s.ends_at_ms > $1 \
         ORDER BY s.starts_at_ms, s.shift_id"
    ))
    .bind(since_ms)
    .fetch_all(executor)
    .await
}

/// Who holds `role_id` at `at_ms`: of the shifts then of active users,
/// the one that started last.
pub async fn holder_at<'c, E>(
    executor: E,
    role_id: &str,
    at_ms: i64,
) -> Result<Option<ShiftRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {SHIFT_COLUMNS} FROM role_shift s JOIN app_user u ON u.user_id = s.user_id \
         WHERE s.role_id = $1 AND s.cancelled_at_ms IS NULL AND s.starts_at_ms <= $2 \
           AND s.ends_at_ms > $2 AND u.status = 'active' \
         ORDER BY s.starts_at_ms DESC, s.shift_id DESC LIMIT 1"
    ))
    .bind(role_id)
    .bind(at_ms)
    .fetch_optional(executor)
    .await
}

/// An escalation policy's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    /// The department (`*`: any without its own).
    pub department: String,
    /// Re-alert after.
    pub realert_after_ms: i64,
    /// Escalate after (from sending).
    pub escalate_after_ms: i64,
    /// The backup role, or
    pub backup_role: Option<String>,
    /// the backup user.
    pub backup_user: Option<String>,
}

const POLICY_COLUMNS: &str =
    "department, realert_after_ms, escalate_after_ms, backup_role, backup_user";

/// Sets a department's policy.
pub async fn set_policy<'c, E>(
    executor: E,
    policy: &PolicyRow,
    by_user: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO escalation_policy (department, realert_after_ms, escalate_after_ms, \
         backup_role, backup_user, updated_by, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (department) DO UPDATE SET realert_after_ms = excluded.realert_after_ms, \
         escalate_after_ms = excluded.escalate_after_ms, backup_role = excluded.backup_role, \
         backup_user = excluded.backup_user, updated_by = excluded.updated_by, \
         updated_at_ms = excluded.updated_at_ms",
    )
    .bind(&policy.department)
    .bind(policy.realert_after_ms)
    .bind(policy.escalate_after_ms)
    .bind(&policy.backup_role)
    .bind(&policy.backup_user)
    .bind(by_user)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Every policy, by department.
pub async fn policies<'c, E>(executor: E) -> Result<Vec<PolicyRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM escalation_policy ORDER BY department"
    ))
    .fetch_all(executor)
    .await
}

/// The policy for an urgent message of `sender` in `thread_id`: that of
/// its recipients' departments first by name (compared as bytes, the same
/// on both databases), else the `*` one.
pub async fn policy_for<'c, E>(
    executor: E,
    thread_id: &str,
    sender: &str,
) -> Result<Option<PolicyRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let candidates: Vec<PolicyRow> = sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM escalation_policy p \
         WHERE p.department IN (SELECT u.department FROM thread_member m \
             JOIN app_user u ON u.user_id = m.user_id \
             WHERE m.thread_id = $1 AND m.removed_seq IS NULL AND m.user_id <> $2) \
            OR p.department = '*'"
    ))
    .bind(thread_id)
    .bind(sender)
    .fetch_all(executor)
    .await?;
    Ok(candidates.into_iter().min_by(|a, b| {
        (a.department == "*", a.department.as_bytes())
            .cmp(&(b.department == "*", b.department.as_bytes()))
    }))
}

/// An urgent message's escalation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UrgentRow {
    /// The thread.
    pub thread_id: String,
    /// The message.
    pub seq: i64,
    /// Its sender.
    pub sender_user: String,
    /// When.
    pub sent_at_ms: i64,
    /// A `curbside_proto::clinical::UrgentStage`.
    pub stage: String,
    /// When the next step is due.
    pub next_step_ms: Option<i64>,
    /// When to re-alert.
    pub realert_at_ms: Option<i64>,
    /// When to escalate.
    pub escalate_at_ms: Option<i64>,
    /// The backup role, or
    pub backup_role: Option<String>,
    /// the backup user (as the policy was at sending).
    pub backup_user: Option<String>,
    /// Whom it escalated to.
    pub escalated_to: Option<String>,
}

const URGENT_COLUMNS: &str = "thread_id, seq, sender_user, sent_at_ms, stage, next_step_ms, \
     realert_at_ms, escalate_at_ms, backup_role, backup_user, escalated_to";

/// Records an urgent message for escalation.
pub async fn insert_urgent<'c, E>(executor: E, urgent: &UrgentRow) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(&format!(
        "INSERT INTO urgent_message ({URGENT_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&urgent.thread_id)
    .bind(urgent.seq)
    .bind(&urgent.sender_user)
    .bind(urgent.sent_at_ms)
    .bind(&urgent.stage)
    .bind(urgent.next_step_ms)
    .bind(urgent.realert_at_ms)
    .bind(urgent.escalate_at_ms)
    .bind(&urgent.backup_role)
    .bind(&urgent.backup_user)
    .bind(&urgent.escalated_to)
    .execute(executor)
    .await?;
    Ok(())
}

/// Urgent messages whose next step is due at `now_ms`, the most overdue
/// first, at most `limit`.
pub async fn due<'c, E>(executor: E, now_ms: i64, limit: i64) -> Result<Vec<UrgentRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {URGENT_COLUMNS} FROM urgent_message \
         WHERE next_step_ms IS NOT NULL AND next_step_ms <= $1 ORDER BY next_step_ms LIMIT $2"
    ))
    .bind(now_ms)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Moves urgent message `seq` of `thread_id` from stage `from` to `to`,
/// its next step due at `next_step_ms`; false if it was not at `from`
/// (acknowledged meanwhile, or another replica moved it).
pub async fn advance<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
    from: &str,
    to: &str,
    next_step_ms: Option<i64>,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let moved = sqlx::query(
        "UPDATE urgent_message SET stage = $4, next_step_ms = $5 \
         WHERE thread_id = $1 AND seq = $2 AND stage = $3",
    )
    .bind(thread_id)
    .bind(seq)
    .bind(from)
    .bind(to)
    .bind(next_step_ms)
    .execute(executor)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Records whom urgent message `seq` of `thread_id` escalated to.
pub async fn set_escalated_to<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
    user_id: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query("UPDATE urgent_message SET escalated_to = $3 WHERE thread_id = $1 AND seq = $2")
        .bind(thread_id)
        .bind(seq)
        .bind(user_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Urgent message `seq` of `thread_id`, if it is one.
pub async fn urgent<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
) -> Result<Option<UrgentRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {URGENT_COLUMNS} FROM urgent_message WHERE thread_id = $1 AND seq = $2"
    ))
    .bind(thread_id)
    .bind(seq)
    .fetch_optional(executor)
    .await
}

/// The urgent messages of `thread_id`, newest first, at most `limit`.
pub async fn of_thread<'c, E>(
    executor: E,
    thread_id: &str,
    limit: i64,
) -> Result<Vec<UrgentRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(&format!(
        "SELECT {URGENT_COLUMNS} FROM urgent_message WHERE thread_id = $1 \
         ORDER BY seq DESC LIMIT $2"
    ))
    .bind(thread_id)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// An acknowledgement.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AckRow {
    /// The message.
    pub seq: i64,
    /// Who.
    pub user_id: String,
    /// When.
    pub at_ms: i64,
}

/// Records `user_id`'s acknowledgement of urgent message `seq`; false if
/// they had acknowledged it already (or are no longer a member).
pub async fn acknowledge<'c, E>(
    executor: E,
    thread_id: &str,
    seq: i64,
    user_id: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    // Only while the user is a member (checked again here, in the
    // transaction, against a removal in between).
    let inserted = sqlx::query(
        "INSERT INTO urgent_ack (thread_id, seq, user_id, at_ms) SELECT $1, $2, $3, $4 \
         WHERE EXISTS (SELECT 1 FROM thread_member WHERE thread_id = $1 AND user_id = $3 \
             AND removed_seq IS NULL) \
         ON CONFLICT (thread_id, seq, user_id) DO NOTHING",
    )
    .bind(thread_id)
    .bind(seq)
    .bind(user_id)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Stops urgent message `seq`'s escalation: it was acknowledged; a backup
/// it asked in whom no client has added yet is no longer asked.
pub async fn mark_acknowledged(
    tx: &mut sqlx::Transaction<'_, Any>,
    thread_id: &str,
    seq: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE urgent_message SET stage = 'acknowledged', next_step_ms = NULL \
         WHERE thread_id = $1 AND seq = $2",
    )
    .bind(thread_id)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM thread_invite WHERE thread_id = $1 AND urgent_seq = $2 AND done_seq IS NULL",
    )
    .bind(thread_id)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stops the escalation of whichever of `seqs` of `thread_id` are urgent
/// messages (recalled or purged: there is nothing left to escalate), and
/// withdraws the invitations they made that no client has acted on.
pub async fn withdraw(
    tx: &mut sqlx::Transaction<'_, Any>,
    thread_id: &str,
    seqs: &[i64],
) -> Result<(), sqlx::Error> {
    if seqs.is_empty() {
        return Ok(());
    }
    let marks = marks(2, seqs.len());
    let stop_sql = format!(
        "UPDATE urgent_message SET next_step_ms = NULL \
         WHERE thread_id = $1 AND seq IN ({marks}) AND next_step_ms IS NOT NULL"
    );
    let withdraw_sql = format!(
        "DELETE FROM thread_invite WHERE thread_id = $1 AND urgent_seq IN ({marks}) \
         AND done_seq IS NULL"
    );
    let mut stop = sqlx::query(&stop_sql).bind(thread_id);
    for seq in seqs {
        stop = stop.bind(*seq);
    }
    stop.execute(&mut **tx).await?;
    let mut withdraw = sqlx::query(&withdraw_sql).bind(thread_id);
    for seq in seqs {
        withdraw = withdraw.bind(*seq);
    }
    withdraw.execute(&mut **tx).await?;
    Ok(())
}

/// The acknowledgements of urgent messages `seqs` of `thread_id`, in
/// order.
pub async fn acks<'c, E>(
    executor: E,
    thread_id: &str,
    seqs: &[i64],
) -> Result<Vec<AckRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT seq, user_id, at_ms FROM urgent_ack WHERE thread_id = $1 AND seq IN ({}) \
         ORDER BY at_ms, user_id",
        marks(2, seqs.len())
    );
    let mut query = sqlx::query_as::<_, AckRow>(&sql).bind(thread_id);
    for seq in seqs {
        query = query.bind(*seq);
    }
    query.fetch_all(executor).await
}

/// Whether `user_id` is a current member of `thread_id` (on any device).
pub async fn is_member_user<'c, E>(
    executor: E,
    thread_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM thread_member WHERE thread_id = $1 AND user_id = $2 \
         AND removed_seq IS NULL LIMIT 1",
    )
    .bind(thread_id)
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    Ok(found.is_some())
}

/// Asks member clients to add `user_id`'s devices to `thread_id`, for
/// urgent message `urgent_seq`.
pub async fn invite<'c, E>(
    executor: E,
    thread_id: &str,
    user_id: &str,
    urgent_seq: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO thread_invite (thread_id, user_id, urgent_seq, created_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (thread_id, user_id, urgent_seq) DO NOTHING",
    )
    .bind(thread_id)
    .bind(user_id)
    .bind(urgent_seq)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// After commit `seq` of `thread_id` added `device_id`: the invitations of
/// its user there are done (its membership row, evicted or not, was made
/// afresh by `thread_member::add_member`).
pub async fn added<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
    seq: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "UPDATE thread_invite SET done_seq = $3 WHERE thread_id = $1 AND done_seq IS NULL \
         AND user_id = (SELECT user_id FROM device WHERE device_id = $2)",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(seq)
    .execute(executor)
    .await?;
    Ok(())
}

/// After commit `seq` of `thread_id` removed `device_id` from the MLS
/// group: it is evicted.
pub async fn evicted<'c, E>(
    executor: E,
    thread_id: &str,
    device_id: &str,
    seq: i64,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "UPDATE thread_member SET evicted_seq = $3 \
         WHERE thread_id = $1 AND device_id = $2 AND evicted_seq IS NULL",
    )
    .bind(thread_id)
    .bind(device_id)
    .bind(seq)
    .execute(executor)
    .await?;
    Ok(())
}

/// A device the caller's device is asked to add to a thread.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingAddRow {
    /// The thread.
    pub thread_id: String,
    /// The user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The urgent message an escalation asked them in for.
    pub urgent_seq: Option<i64>,
}

/// In the threads `device_id` is a current member of: the enrolled
/// devices of active users who are members there on another device and
/// were never members themselves (a device enrolled since), and every
/// device of a user an escalation asked in that is neither a member nor
/// still in the MLS group.
pub async fn pending_adds<'c, E>(
    executor: E,
    device_id: &str,
) -> Result<Vec<PendingAddRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT DISTINCT m.thread_id, d.user_id, d.device_id, CAST(NULL AS BIGINT) AS urgent_seq \
         FROM thread_member me \
         JOIN thread_member m ON m.thread_id = me.thread_id AND m.removed_seq IS NULL \
         JOIN device d ON d.user_id = m.user_id AND d.removed_at_ms IS NULL \
         JOIN app_user u ON u.user_id = d.user_id AND u.status = 'active' \
         WHERE me.device_id = $1 AND me.removed_seq IS NULL \
           AND NOT EXISTS (SELECT 1 FROM thread_member x \
               WHERE x.thread_id = m.thread_id AND x.device_id = d.device_id) \
         UNION \
         SELECT i.thread_id, d.user_id, d.device_id, i.urgent_seq \
         FROM thread_member me \
         JOIN thread_invite i ON i.thread_id = me.thread_id AND i.done_seq IS NULL \
         JOIN device d ON d.user_id = i.user_id AND d.removed_at_ms IS NULL \
         JOIN app_user u ON u.user_id = d.user_id AND u.status = 'active' \
         WHERE me.device_id = $1 AND me.removed_seq IS NULL \
           AND NOT EXISTS (SELECT 1 FROM thread_member x \
               WHERE x.thread_id = i.thread_id AND x.device_id = d.device_id \
                 AND (x.removed_seq IS NULL OR x.evicted_seq IS NULL)) \
         ORDER BY 1, 2, 3",
    )
    .bind(device_id)
    .fetch_all(executor)
    .await
}

/// A device to remove from a thread's MLS group.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRemoveRow {
    /// The thread.
    pub thread_id: String,
    /// The device.
    pub device_id: String,
}

/// In the threads `device_id` is a current member of: the former members
/// no commit has removed from the MLS group yet.
pub async fn pending_removes<'c, E>(
    executor: E,
    device_id: &str,
) -> Result<Vec<PendingRemoveRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_as(
        "SELECT m.thread_id, m.device_id FROM thread_member me \
         JOIN thread_member m ON m.thread_id = me.thread_id \
         WHERE me.device_id = $1 AND me.removed_seq IS NULL \
           AND m.removed_seq IS NOT NULL AND m.evicted_seq IS NULL \
         ORDER BY m.thread_id, m.device_id",
    )
    .bind(device_id)
    .fetch_all(executor)
    .await
}

/// A device's push token.
#[derive(Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// The device.
    pub device_id: String,
    /// The gateway's `app_id`.
    pub app_id: String,
    /// The gateway's `pushkey` (kept out of `Debug`).
    pub token: String,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Sets `device_id`'s push token.
pub async fn set_token<'c, E>(executor: E, token: &TokenRow, now_ms: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO push_token (device_id, app_id, token, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (device_id) DO UPDATE SET app_id = excluded.app_id, token = excluded.token, \
         created_at_ms = excluded.created_at_ms",
    )
    .bind(&token.device_id)
    .bind(&token.app_id)
    .bind(&token.token)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes `device_id`'s push token (only if it is still `token`, when
/// given: the gateway rejected that one).
pub async fn delete_token<'c, E>(
    executor: E,
    device_id: &str,
    token: Option<&str>,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let deleted = match token {
        Some(token) => {
            sqlx::query("DELETE FROM push_token WHERE device_id = $1 AND token = $2")
                .bind(device_id)
                .bind(token)
                .execute(executor)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM push_token WHERE device_id = $1")
                .bind(device_id)
                .execute(executor)
                .await?
        }
    };
    Ok(deleted.rows_affected() > 0)
}

/// The push token of each of `devices` that has one and is an enrolled
/// device of an active user.
pub async fn tokens_of<'c, E>(executor: E, devices: &[String]) -> Result<Vec<TokenRow>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT t.device_id, t.app_id, t.token FROM push_token t \
         JOIN device d ON d.device_id = t.device_id JOIN app_user u ON u.user_id = d.user_id \
         WHERE t.device_id IN ({}) AND d.removed_at_ms IS NULL AND u.status = 'active'",
        marks(1, devices.len())
    );
    let mut query = sqlx::query_as::<_, TokenRow>(&sql);
    for device in devices {
        query = query.bind(device);
    }
    query.fetch_all(executor).await
}

/// How many push tokens there are.
pub async fn count_tokens<'c, E>(executor: E) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    sqlx::query_scalar("SELECT COUNT(*) FROM push_token")
        .fetch_one(executor)
        .await
}
