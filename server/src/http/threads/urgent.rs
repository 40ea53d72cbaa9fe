//! Urgent messages: recorded for escalation with the message itself, and
//! acknowledged by their recipients (explicitly: reading is not
//! acknowledging). The first acknowledgement stops the escalation that
//! `crate::escalation` runs; every one is audited and announced, so the
//! sender sees who acknowledged.

use axum::Json;
use axum::extract::{Path, State};
use curbside_proto::clinical::{AckRequest, UrgentStage, UrgentStatus};
use curbside_proto::routes;
use sqlx::{Any, Transaction};

use super::checks::{limit_writes, membership, to_i64};
use crate::auth::sessions::Caller;
use crate::clock::now_ms;
use crate::db::clinical::{self, UrgentRow};
use crate::http::access::Access;
use crate::http::error::{Error, Result};
use crate::http::extract;
use crate::http::state::AppState;
use crate::push::Notice;

/// Without a policy for its recipients' department (or `*`), an urgent
/// message re-alerts them once after five minutes, and escalates to no
/// one.
const DEFAULT_REALERT_MS: i64 = 5 * 60 * 1000;

/// Records urgent message `seq` of `thread_id`, just appended in `tx`, for
/// escalation under the policy of its recipients' department as it is now.
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    thread_id: &str,
    seq: i64,
    sender: &str,
    now: i64,
) -> Result<()> {
    let policy = clinical::policy_for(&mut **tx, thread_id, sender).await?;
    let (realert_at, escalate_at, backup_role, backup_user) = match policy {
        Some(policy) => (
            now.saturating_add(policy.realert_after_ms),
            Some(now.saturating_add(policy.escalate_after_ms)),
            policy.backup_role,
            policy.backup_user,
        ),
        None => (now.saturating_add(DEFAULT_REALERT_MS), None, None, None),
    };
    clinical::insert_urgent(
        &mut **tx,
        &UrgentRow {
            thread_id: thread_id.to_owned(),
            seq,
            sender_user: sender.to_owned(),
            sent_at_ms: now,
            stage: UrgentStage::Sent.as_str().to_owned(),
            next_step_ms: Some(realert_at),
            realert_at_ms: Some(realert_at),
            escalate_at_ms: escalate_at,
            backup_role,
            backup_user,
            escalated_to: None,
        },
    )
    .await?;
    Ok(())
}

/// The urgent messages `rows` of `thread_id` as the API gives them, with
/// their acknowledgements.
async fn with_acks(
    state: &AppState,
    thread_id: &str,
    rows: Vec<UrgentRow>,
) -> Result<Vec<UrgentStatus>> {
    let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
    let acks = clinical::acks(state.database.pool(), thread_id, &seqs).await?;
    Ok(rows
        .into_iter()
        .map(|row| UrgentStatus {
            seq: u64::try_from(row.seq).unwrap_or(0),
            stage: UrgentStage::parse(&row.stage).unwrap_or(UrgentStage::Sent),
            acks: acks
                .iter()
                .filter(|ack| ack.seq == row.seq)
                .map(|ack| curbside_proto::clinical::Ack {
                    user_id: ack.user_id.clone(),
                    at_ms: ack.at_ms,
                })
                .collect(),
            sender_user: row.sender_user,
            escalated_to: row.escalated_to,
        })
        .collect())
}

/// The urgent messages of a thread as the API gives them, newest first
/// (the 100 latest).
pub(super) async fn statuses(state: &AppState, thread_id: &str) -> Result<Vec<UrgentStatus>> {
    let rows = clinical::of_thread(state.database.pool(), thread_id, 100).await?;
    with_acks(state, thread_id, rows).await
}

#[utoipa::path(
    post,
    path = routes::THREAD_ACK,
    operation_id = "thread.urgent.ack",
    tag = "thread",
    params(("thread_id" = String, Path, description = "The thread's id")),
    request_body = AckRequest,
    security(("session" = [])),
    responses((status = 200, description = "The urgent message, acknowledged by the caller", body = UrgentStatus)),
)]
pub(super) async fn ack(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(thread_id): Path<String>,
    extract::Json(request): extract::Json<AckRequest>,
) -> Result<Json<UrgentStatus>> {
    membership(&state, &access, &caller, &thread_id).await?;
    limit_writes(&state, &caller)?;
    let seq = to_i64(request.seq)?;
    access.evidence(format!("seq={seq}"));
    let now = now_ms();
    let mut tx = state.database.pool().begin().await?;
    // Written first (SQLite): a second acknowledgement by the same user
    // inserts nothing and changes nothing.
    let first_by_user =
        clinical::acknowledge(&mut *tx, &thread_id, seq, &caller.user_id, now).await?;
    let Some(urgent) = clinical::urgent(&mut *tx, &thread_id, seq).await? else {
        access.reason("not_urgent");
        return Err(Error::InvalidRequest(format!(
            "entry {seq} of this thread is not an urgent message: acknowledge an urgent one by \
             its number (`curbside thread show THREAD` lists them)"
        )));
    };
    if urgent.sender_user == caller.user_id {
        access.reason("own_message");
        return Err(Error::InvalidRequest(
            "you sent this urgent message: its recipients acknowledge it".to_owned(),
        ));
    }
    // A second acknowledgement by the same user is allowed, and recorded,
    // and changes nothing.
    if first_by_user {
        clinical::mark_acknowledged(&mut tx, &thread_id, seq).await?;
    }
    access.commit(&state, tx).await?;
    if first_by_user {
        state.events.announce(Notice::Acknowledged {
            thread_id: thread_id.clone(),
            seq,
            user_id: caller.user_id.clone(),
            at_ms: now,
        });
    }
    let row = clinical::urgent(state.database.pool(), &thread_id, seq)
        .await?
        .ok_or(Error::NotFound)?;
    let status = with_acks(&state, &thread_id, vec![row])
        .await?
        .pop()
        .ok_or(Error::NotFound)?;
    Ok(Json(status))
}
