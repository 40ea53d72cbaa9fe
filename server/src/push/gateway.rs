//! The push gateway: wakes the devices that are not connected.
//!
//! A device registers a token (`PUT /v1/push-token`); when an entry,
//! welcome or urgent alert concerns it and it has no connection to this
//! process, the server POSTs a notice to the configured gateway in the
//! shape of the Matrix push gateway API (`/_matrix/push/v1/notify`, the
//! role Sygnal plays for Synapse) with ids only: the thread's id as
//! `room_id`, the entry's sequence number as `event_id` and the priority
//! (`high` for urgent messages and their alerts). No content, sender or
//! name ever goes to the gateway, which in turn hands it to the platform's
//! push service. The device then connects and fetches as usual.
//!
//! Each notice is tried up to [`ATTEMPTS`] times, with a pause that
//! doubles from [`FIRST_PAUSE`] (plus up to a quarter more, at random, so
//! that retries after an outage do not come in step); every attempt is
//! audited (`push.gateway.notify`, allowed or denied with the failure as
//! reason). A token the gateway names in `rejected` is deleted, as the API
//! says. An escalation also wakes the backup's devices, at high priority:
//! they are not members yet, and must be for the backup to read it.
//!
//! Bounded: at most [`QUEUED`] notices wait (more are dropped: a wake-up
//! is a prompt, and a device fetches everything when it connects) and
//! [`IN_FLIGHT`] deliveries run at once; they end with the task.
//!
//! Only the process that made a change notifies (a notice heard from
//! another replica is not sent again); a device connected to another
//! replica only may be woken needlessly, which costs nothing but a notice.
//! Whether any device has a token is looked at again every
//! [`RECOUNT`], so a token registered through another replica counts here
//! too.

use std::sync::Arc;
use std::time::Duration;

use curbside_proto::audit::Outcome;
use curbside_proto::clinical::{
    GatewayAnswer, GatewayDevice, GatewayNotification, GatewayNotify, UrgentStage,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::mpsc;

use super::notice::Notice;
use super::registry::Events;
use crate::audit::NewEntry;
use crate::config::PushGateway;
use crate::db::clinical::{self, TokenRow};
use crate::db::{delivery, thread_entry};
use crate::pipeline::writer::AuditLog;

/// Tries per notice.
pub const ATTEMPTS: u32 = 5;
/// The pause after the first failure; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The audit action of an attempt.
const ACTION: &str = "push.gateway.notify";
/// Notices waiting for the task, at most.
const QUEUED: usize = 4096;
/// Deliveries under way at once, at most.
const IN_FLIGHT: usize = 64;
/// How often the task looks whether any device has a token.
const RECOUNT: Duration = Duration::from_secs(30);

/// Starts the gateway's task for `events`; its notices are audited in
/// `audit`.
pub fn start(
    events: &Arc<Events>,
    audit: AuditLog,
    gateway: &PushGateway,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let client = client(gateway)?;
    let (sender, receiver) = mpsc::channel(QUEUED);
    events.attach_gateway(sender);
    Ok(tokio::spawn(run(
        events.clone(),
        audit,
        client,
        gateway.url.clone(),
        receiver,
    )))
}

/// An HTTPS client for the gateway: its CA file, or the system's roots.
fn client(gateway: &PushGateway) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let config = match &gateway.ca {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|error| {
                    format!("{} is not a readable PEM file ({error})", path.display())
                })?;
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!("{} holds no usable certificate", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|error| error.to_string())?
                .with_no_client_auth()
        }
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())
}

/// One notice for one device.
struct Job {
    token: TokenRow,
    thread_id: String,
    seq: i64,
    high: bool,
}

async fn run(
    events: Arc<Events>,
    audit: AuditLog,
    client: reqwest::Client,
    url: url::Url,
    mut notices: mpsc::Receiver<Notice>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    // Dropped with the task, which aborts what is under way.
    let mut deliveries = tokio::task::JoinSet::new();
    let mut recount = tokio::time::interval(RECOUNT);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            received = notices.recv_many(&mut batch, 256) => {
                if received == 0 {
                    return;
                }
            }
            _ = recount.tick() => {
                if clinical::count_tokens(events.database.pool()).await.is_ok_and(|count| count > 0) {
                    events.tokens_changed();
                }
                continue;
            }
        }
        while deliveries.try_join_next().is_some() {}
        for notice in batch.drain(..) {
            let jobs = match jobs(&events, notice).await {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::warn!(%error, "cannot read whom to wake through the push gateway");
                    continue;
                }
            };
            for job in jobs {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                deliveries.spawn(deliver(
                    events.clone(),
                    audit.clone(),
                    client.clone(),
                    url.clone(),
                    job,
                    slot,
                ));
            }
        }
    }
}

/// The devices `notice` concerns that have a token and no connection
/// here, with what to tell each.
async fn jobs(events: &Events, notice: Notice) -> Result<Vec<Job>, sqlx::Error> {
    let pool = events.database.pool();
    let (thread_id, seq, high, devices) = match notice {
        Notice::Entry { thread_id, seq } => {
            let Some(entry) = thread_entry::named(pool, &[(thread_id.as_str(), seq)])
                .await?
                .pop()
            else {
                return Ok(Vec::new());
            };
            // Messages wake devices; changes of members and the rest wait
            // for the device's next fetch.
            if entry.kind != "application" {
                return Ok(Vec::new());
            }
            let mut devices = delivery::current_members(pool, &thread_id, seq).await?;
            devices.retain(|device| *device != entry.sender_device);
            (thread_id, seq, entry.urgent != 0, devices)
        }
        Notice::Urgent {
            thread_id,
            seq,
            stage,
            backup_user,
        } => {
            let sender = clinical::urgent(pool, &thread_id, seq)
                .await?
                .map(|urgent| urgent.sender_user);
            let mut devices = Vec::new();
            for member in crate::db::thread_member::current_members(pool, &thread_id).await? {
                if Some(&member.user_id) != sender.as_ref() || stage == UrgentStage::Escalated {
                    devices.push(member.device_id);
                }
            }
            // The backup is not a member yet: woken all the same.
            if let Some(backup) = backup_user {
                for device in crate::db::device::list_for_user(pool, &backup).await? {
                    if !devices.contains(&device.device_id) {
                        devices.push(device.device_id);
                    }
                }
            }
            (thread_id, seq, true, devices)
        }
        Notice::Welcome {
            device_id,
            welcome_id,
        } => {
            let Some(welcome) = delivery::welcome(pool, &welcome_id, &device_id).await? else {
                return Ok(Vec::new());
            };
            (
                welcome.thread_id,
                welcome.joined_seq,
                false,
                vec![device_id],
            )
        }
        Notice::Receipt { .. } | Notice::Acknowledged { .. } => return Ok(Vec::new()),
    };
    let connected: Vec<String> = events.each_here(&devices, |connection| {
        connection.subscriber.device_id.clone()
    });
    let asleep: Vec<String> = devices
        .into_iter()
        .filter(|device| !connected.contains(device))
        .collect();
    Ok(clinical::tokens_of(pool, &asleep)
        .await?
        .into_iter()
        .map(|token| Job {
            token,
            thread_id: thread_id.clone(),
            seq,
            high,
        })
        .collect())
}

/// The audit entry of one attempt.
fn entry(job: &Job, outcome: Outcome, reason: &str, attempt: u32) -> NewEntry {
    NewEntry {
        time_ms: crate::clock::now_ms(),
        actor_user: None,
        actor_device: None,
        client_addr: None,
        request_id: "push-gateway".to_owned(),
        action: ACTION.to_owned(),
        resource_type: "device".to_owned(),
        resource_id: Some(job.token.device_id.clone()),
        outcome,
        reason: reason.to_owned(),
        evidence: Some(format!(
            "thread={} seq={} prio={} attempt={attempt}/{ATTEMPTS}",
            job.thread_id,
            job.seq,
            if job.high { "high" } else { "low" }
        )),
    }
}

/// Sends `job`'s notice, trying again after a failure; audits each try.
/// `_slot` is its place among the deliveries under way.
async fn deliver(
    events: Arc<Events>,
    audit: AuditLog,
    client: reqwest::Client,
    url: url::Url,
    job: Job,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let body = GatewayNotify {
        notification: GatewayNotification {
            event_id: job.seq.to_string(),
            room_id: job.thread_id.clone(),
            prio: if job.high { "high" } else { "low" }.to_owned(),
            devices: vec![GatewayDevice {
                app_id: job.token.app_id.clone(),
                pushkey: job.token.token.clone(),
            }],
        },
    };
    let mut pause = FIRST_PAUSE;
    for attempt in 1..=ATTEMPTS {
        let failure = match client.post(url.clone()).json(&body).send().await {
            Ok(response) if response.status().is_success() => {
                let answer: GatewayAnswer = response.json().await.unwrap_or_default();
                if answer.rejected.contains(&job.token.token) {
                    // The gateway will never deliver to it: forget it.
                    let _ = clinical::delete_token(
                        events.database.pool(),
                        &job.token.device_id,
                        Some(&job.token.token),
                    )
                    .await;
                    let _ = audit
                        .append(entry(&job, Outcome::Denied, "token_rejected", attempt))
                        .await;
                } else {
                    let _ = audit
                        .append(entry(&job, Outcome::Allowed, "ok", attempt))
                        .await;
                }
                return;
            }
            Ok(response) if response.status().is_client_error() => {
                // A request the gateway will never take: not retried.
                let _ = audit
                    .append(entry(&job, Outcome::Denied, "gateway_refused", attempt))
                    .await;
                return;
            }
            Ok(_) => "gateway_error",
            Err(error) if error.is_timeout() => "gateway_timeout",
            Err(_) => "gateway_unreachable",
        };
        let _ = audit
            .append(entry(&job, Outcome::Denied, failure, attempt))
            .await;
        if attempt < ATTEMPTS {
            let jitter = crate::ids::random_bytes::<2>()
                .map_or(0, |bytes| u64::from(u16::from_le_bytes(bytes)));
            let spread = u64::try_from(pause.as_millis() / 4).unwrap_or(0);
            let extra = Duration::from_millis(jitter % (spread + 1));
            tokio::time::sleep(pause + extra).await;
            pause *= 2;
        }
    }
    tracing::warn!(
        attempts = ATTEMPTS,
        "the push gateway did not take a notice; the device will fetch when it connects"
    );
}
