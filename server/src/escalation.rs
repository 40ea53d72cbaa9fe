//! Escalation of urgent messages nobody acknowledged.
//!
//! An urgent message is recorded with the escalation policy of its
//! recipients' department as it was when it was sent (`http::threads::
//! urgent`). This task looks a few times a second for messages whose next
//! step is due, and takes it in one transaction with its audit entry (no
//! actor: the server acts):
//! - **re-alert** (`thread.urgent.realert`): the recipients are alerted
//!   again: an `urgent` event to their connected devices, and a
//!   high-priority notice through the push gateway to those asleep;
//! - **escalate** (`thread.urgent.escalate`): the backup (whoever holds the
//!   policy's role at that moment, or its named user) is asked into the
//!   thread. The server cannot add anyone to an MLS group, so it records
//!   the invitation (`thread_invite`) and tells the members' devices; the
//!   first member client to see it (on the event, or at its next command)
//!   commits the backup's devices' addition and passes the urgent message
//!   on to them, since a newcomer cannot decrypt what was sent before. A
//!   backup who is a member already is alerted like the others. With no
//!   backup on duty the entry says so (`no_backup`, denied).
//!
//! Each step moves the message from one stage to the next with a
//! conditional `UPDATE`, written first, so that a message acknowledged
//! meanwhile, or moved by another replica, is left alone.

use std::time::Duration;

use curbside_proto::audit::Outcome;
use curbside_proto::clinical::UrgentStage;

use crate::audit::{AuditError, NewEntry};
use crate::db::Database;
use crate::db::clinical::{self, UrgentRow};
use crate::pipeline::writer::AuditLog;
use crate::push::{Events, Notice};

/// How often due steps are looked for, at most.
const EVERY: Duration = Duration::from_millis(250);
/// Steps taken per look, at most.
const PER_LOOK: i64 = 100;

/// Starts the task; it runs until aborted.
pub fn start(
    database: Database,
    audit: AuditLog,
    events: std::sync::Arc<Events>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = look(&database, &audit, &events, crate::clock::now_ms()).await {
                tracing::warn!(%error, "escalation of urgent messages failed; trying again");
            }
        }
    })
}

/// Takes every step due at `now_ms`; returns how many.
pub async fn look(
    database: &Database,
    audit: &AuditLog,
    events: &Events,
    now_ms: i64,
) -> Result<usize, AuditError> {
    let due = clinical::due(database.pool(), now_ms, PER_LOOK).await?;
    let mut taken = 0;
    for urgent in due {
        let stage = UrgentStage::parse(&urgent.stage);
        let done = match stage {
            Some(UrgentStage::Sent) => realert(database, audit, events, &urgent).await?,
            Some(UrgentStage::Realerted) => {
                escalate(database, audit, events, &urgent, now_ms).await?
            }
            _ => false,
        };
        taken += usize::from(done);
    }
    Ok(taken)
}

/// The audit entry of a step.
fn entry(
    urgent: &UrgentRow,
    action: &str,
    outcome: Outcome,
    reason: &str,
    evidence: String,
) -> NewEntry {
    NewEntry {
        time_ms: crate::clock::now_ms(),
        actor_user: None,
        actor_device: None,
        client_addr: None,
        request_id: "escalation".to_owned(),
        action: action.to_owned(),
        resource_type: "thread".to_owned(),
        resource_id: Some(urgent.thread_id.clone()),
        outcome,
        reason: reason.to_owned(),
        evidence: Some(evidence),
    }
}

async fn realert(
    database: &Database,
    audit: &AuditLog,
    events: &Events,
    urgent: &UrgentRow,
) -> Result<bool, AuditError> {
    let mut tx = database.pool().begin().await?;
    let next = urgent.escalate_at_ms;
    if !clinical::advance(
        &mut *tx,
        &urgent.thread_id,
        urgent.seq,
        UrgentStage::Sent.as_str(),
        UrgentStage::Realerted.as_str(),
        next,
    )
    .await?
    {
        return Ok(false);
    }
    audit
        .append_in(
            &mut tx,
            &[entry(
                urgent,
                "thread.urgent.realert",
                Outcome::Allowed,
                "not_acknowledged",
                format!("seq={}", urgent.seq),
            )],
        )
        .await?;
    tx.commit().await?;
    events.announce(Notice::Urgent {
        thread_id: urgent.thread_id.clone(),
        seq: urgent.seq,
        stage: UrgentStage::Realerted,
        backup_user: None,
    });
    Ok(true)
}

async fn escalate(
    database: &Database,
    audit: &AuditLog,
    events: &Events,
    urgent: &UrgentRow,
    now_ms: i64,
) -> Result<bool, AuditError> {
    let pool = database.pool();
    // Who is on duty now, read before the transaction (SQLite's write
    // comes first in it).
    let backup = match (&urgent.backup_role, &urgent.backup_user) {
        (Some(role), _) => clinical::holder_at(pool, role, now_ms)
            .await?
            .map(|shift| shift.user_id),
        (None, Some(user)) => crate::db::app_user::find(pool, user)
            .await?
            .filter(|user| user.status == curbside_proto::identity::UserStatus::Active)
            .map(|user| user.user_id),
        (None, None) => None,
    };
    let mut tx = pool.begin().await?;
    if !clinical::advance(
        &mut *tx,
        &urgent.thread_id,
        urgent.seq,
        UrgentStage::Realerted.as_str(),
        UrgentStage::Escalated.as_str(),
        None,
    )
    .await?
    {
        return Ok(false);
    }
    let step = match &backup {
        None => entry(
            urgent,
            "thread.urgent.escalate",
            Outcome::Denied,
            "no_backup",
            format!(
                "seq={} backup={}",
                urgent.seq,
                urgent
                    .backup_role
                    .as_deref()
                    .map_or_else(|| "none".to_owned(), |role| format!("role:{role}"))
            ),
        ),
        Some(user) => {
            clinical::set_escalated_to(&mut *tx, &urgent.thread_id, urgent.seq, user).await?;
            let member = clinical::is_member_user(&mut *tx, &urgent.thread_id, user).await?;
            if !member {
                clinical::invite(&mut *tx, &urgent.thread_id, user, urgent.seq, now_ms).await?;
            }
            entry(
                urgent,
                "thread.urgent.escalate",
                Outcome::Allowed,
                if member {
                    "backup_already_member"
                } else {
                    "backup_invited"
                },
                format!("seq={} to={user}", urgent.seq),
            )
        }
    };
    audit.append_in(&mut tx, &[step]).await?;
    tx.commit().await?;
    events.announce(Notice::Urgent {
        thread_id: urgent.thread_id.clone(),
        seq: urgent.seq,
        stage: UrgentStage::Escalated,
        backup_user: backup,
    });
    Ok(true)
}
