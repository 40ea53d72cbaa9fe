//! The delivery service's thread log, with opaque payloads standing in for
//! MLS messages (the server never parses them): ordering, epochs and the
//! commit race, membership and who may see a thread, welcomes, receipts,
//! and refusals.

use curbside_cli::{Client, ClientError};
use curbside_proto::identity::Role;
use curbside_proto::threads::{
    Blob, CommitRequest, DEFAULT_MAX_MESSAGE_BYTES, EntryKind, MembershipChange, MessageRequest,
    NewThread,
};
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::people::{Person, first_admin, person};

backend_tests!(
    a_thread_orders_entries_for_its_members_only,
    of_two_commits_at_one_epoch_exactly_one_wins,
    receipts_and_unread_counts,
    bad_thread_requests_are_refused,
    a_deactivated_users_devices_leave_the_thread,
    the_message_limit_is_configurable,
    junk_threads_cannot_hide_real_ones,
);

fn status<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> u16 {
    match result {
        Err(ClientError::Api { status, .. }) => status.as_u16(),
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn thread_id(n: u8) -> String {
    format!("{:032x}", u128::from(n) << 64 | 0xc0ffee)
}

pub fn blob(text: &str) -> Blob {
    Blob(text.as_bytes().to_vec())
}

pub async fn send(
    client: &Client,
    thread: &str,
    epoch: u64,
    text: &str,
) -> Result<u64, ClientError> {
    client
        .send_message(
            thread,
            &MessageRequest {
                epoch,
                ciphertext: blob(text),
                attachments: Vec::new(),
                urgent: false,
            },
        )
        .await
        .map(|appended| appended.seq)
}

pub fn commit(epoch: u64, add: &[&Person], remove: &[&Person]) -> CommitRequest {
    let ids = |people: &[&Person]| people.iter().map(|p| p.device_id.clone()).collect();
    CommitRequest {
        epoch,
        commit: blob(&format!("commit at {epoch}")),
        change: MembershipChange {
            add: ids(add),
            remove: ids(remove),
        },
        welcome: (!add.is_empty()).then(|| blob(&format!("welcome at {}", epoch + 1))),
    }
}

/// Three clinicians; `ana` made a thread with `ben` at epoch 1.
pub async fn three(
    server: &curbside_tests::TestServer,
) -> (Person, Person, Person, Person, String) {
    let admin = first_admin(server).await;
    let ana = person(server, &admin, "Dr. Ana", Role::Clinician).await;
    let ben = person(server, &admin, "Dr. Ben", Role::Clinician).await;
    let cal = person(server, &admin, "Dr. Cal", Role::Clinician).await;
    let thread = thread_id(1);
    let created = ana
        .client
        .create_thread(&NewThread {
            thread_id: thread.clone(),
            epoch: 1,
            devices: vec![ben.device_id.clone()],
            welcome: blob("welcome for ben"),
        })
        .await
        .unwrap();
    assert_eq!((created.epoch, created.last_seq), (1, 0));
    (admin, ana, ben, cal, thread)
}

async fn a_thread_orders_entries_for_its_members_only(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (admin, ana, ben, cal, thread) = three(&server).await;

    // Ben's welcome waits until he acknowledges it.
    let welcomes = ben.client.welcomes().await.unwrap().welcomes;
    assert_eq!(welcomes.len(), 1);
    assert_eq!(welcomes[0].thread_id, thread);
    assert_eq!(welcomes[0].welcome, blob("welcome for ben"));
    assert_eq!((welcomes[0].epoch, welcomes[0].joined_seq), (1, 0));
    ben.client
        .ack_welcome(&welcomes[0].welcome_id)
        .await
        .unwrap();
    assert!(ben.client.welcomes().await.unwrap().welcomes.is_empty());

    // Messages both ways, in one order for everyone.
    assert_eq!(send(&ana.client, &thread, 1, "a1").await.unwrap(), 1);
    assert_eq!(send(&ben.client, &thread, 1, "b1").await.unwrap(), 2);
    let page = ben.client.entries(&thread, 0, 100).await.unwrap();
    assert_eq!(page.last_seq, 2);
    let seen: Vec<(u64, &str, Vec<u8>)> = page
        .entries
        .iter()
        .map(|e| (e.seq, e.sender_user.as_str(), e.body.0.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (1, ana.user.user_id.as_str(), b"a1".to_vec()),
            (2, ben.user.user_id.as_str(), b"b1".to_vec())
        ]
    );
    assert_eq!(
        ana.client
            .entries(&thread, 1, 100)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );

    // Ana adds Cal: Cal sees the thread from the commit that added him on.
    let added = ana
        .client
        .commit(&thread, &commit(1, &[&cal], &[]))
        .await
        .unwrap();
    assert_eq!((added.seq, added.epoch), (3, 2));
    let welcome = &cal.client.welcomes().await.unwrap().welcomes[0];
    assert_eq!((welcome.epoch, welcome.joined_seq), (2, 3));
    assert!(
        cal.client
            .entries(&thread, 0, 100)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(status(&send(&ana.client, &thread, 1, "stale").await), 409);
    assert_eq!(send(&ana.client, &thread, 2, "a2").await.unwrap(), 4);
    let cal_sees = cal.client.entries(&thread, 0, 100).await.unwrap().entries;
    assert_eq!(cal_sees.len(), 1);
    assert_eq!(cal_sees[0].body, blob("a2"));
    // Ben sees the commit, with its declared change.
    let ben_sees = ben.client.entries(&thread, 2, 100).await.unwrap().entries;
    assert_eq!(ben_sees[0].kind, EntryKind::Commit);
    assert_eq!(
        ben_sees[0].change.as_ref().unwrap().add,
        vec![cal.device_id.clone()]
    );

    // Ana removes Ben: he reads the log up to the commit that removed him,
    // learns who did it, and nothing after; everything else is 404.
    let removal = ana
        .client
        .commit(&thread, &commit(2, &[], &[&ben]))
        .await
        .unwrap();
    assert_eq!(send(&cal.client, &thread, 3, "c1").await.unwrap(), 6);
    let page = ben.client.entries(&thread, 0, 100).await.unwrap();
    assert_eq!(page.entries.last().unwrap().seq, removal.seq);
    assert_eq!(page.last_seq, removal.seq);
    let ended = page.ended.unwrap();
    assert_eq!(ended.seq, removal.seq);
    assert_eq!(ended.by_user.as_deref(), Some(ana.user.user_id.as_str()));
    assert_eq!(ended.reason, curbside_proto::threads::EndReason::Removed);
    assert!(
        ben.client
            .entries(&thread, removal.seq, 100)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(status(&send(&ben.client, &thread, 3, "b2").await), 404);
    assert_eq!(status(&ben.client.thread(&thread).await), 404);
    assert!(ben.client.threads().await.unwrap().threads.is_empty());

    // An outsider gets the same 404 as for a thread that does not exist.
    let unknown = thread_id(9);
    let outsider = status(&admin.client.entries(&thread, 0, 100).await);
    assert_eq!(
        outsider,
        status(&admin.client.entries(&unknown, 0, 100).await)
    );
    assert_eq!(outsider, 404);

    // The refusals are on the record, against the thread.
    let page = admin
        .client
        .audit_search(&curbside_proto::audit_review::SearchQuery {
            resource: Some(thread.clone()),
            outcome: Some(curbside_proto::audit::Outcome::Denied),
            ..Default::default()
        })
        .await
        .unwrap();
    let refused: Vec<(Option<&str>, &str, &str)> = page
        .entries
        .iter()
        .map(|r| {
            (
                r.entry.actor_user.as_deref(),
                r.entry.action.as_str(),
                r.entry.reason.as_str(),
            )
        })
        .collect();
    let ben_id = Some(ben.user.user_id.as_str());
    let admin_id = Some(admin.user.user_id.as_str());
    assert!(refused.contains(&(ben_id, "thread.message.send", "not_a_member")));
    assert!(refused.contains(&(ben_id, "thread.read", "not_a_member")));
    assert!(refused.contains(&(admin_id, "thread.entries.read", "not_a_member")));
    assert!(refused.contains(&(
        Some(ana.user.user_id.as_str()),
        "thread.message.send",
        "stale_epoch"
    )));
}

async fn of_two_commits_at_one_epoch_exactly_one_wins(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (_admin, ana, ben, _cal, thread) = three(&server).await;
    for round in 0..5u64 {
        let epoch = 1 + round * 2;
        let (from_ana, from_ben) = (commit(epoch, &[], &[]), commit(epoch, &[], &[]));
        let (a, b) = tokio::join!(
            ana.client.commit(&thread, &from_ana),
            ben.client.commit(&thread, &from_ben)
        );
        let (winner, loser) = match (&a, &b) {
            (Ok(_), Err(_)) => (&ana, &ben),
            (Err(_), Ok(_)) => (&ben, &ana),
            other => panic!("exactly one commit wins: {other:?}"),
        };
        assert_eq!(status(if a.is_err() { &a } else { &b }), 409);
        // The loser catches up and retries at the new epoch.
        let page = loser.client.entries(&thread, 0, 500).await.unwrap();
        let last = page.entries.last().unwrap();
        assert_eq!(last.sender_device, winner.device_id);
        let retried = loser
            .client
            .commit(&thread, &commit(epoch + 1, &[], &[]))
            .await
            .unwrap();
        assert_eq!(retried.epoch, epoch + 2);
    }
    let detail = ana.client.thread(&thread).await.unwrap();
    assert_eq!((detail.summary.epoch, detail.summary.last_seq), (11, 10));
}

async fn receipts_and_unread_counts(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (_admin, ana, ben, _cal, thread) = three(&server).await;
    for text in ["one", "two", "three"] {
        send(&ana.client, &thread, 1, text).await.unwrap();
    }
    let unread = |list: curbside_proto::threads::ThreadList| list.threads[0].unread;
    assert_eq!(unread(ben.client.threads().await.unwrap()), 3);
    assert_eq!(
        unread(ana.client.threads().await.unwrap()),
        0,
        "own messages"
    );

    ben.receipt(&thread, 3, false).await.unwrap();
    ben.receipt(&thread, 2, true).await.unwrap();
    assert_eq!(unread(ben.client.threads().await.unwrap()), 1);
    // Receipts only move forward, and never past the log.
    ben.receipt(&thread, 1, true).await.unwrap();
    assert_eq!(status(&ben.receipt(&thread, 9, true).await), 400);
    assert_eq!(status(&ben.receipt(&thread, 9, false).await), 400);

    let detail = ana.client.thread(&thread).await.unwrap();
    let ben_device = detail
        .members
        .iter()
        .find(|m| m.device_id == ben.device_id)
        .unwrap();
    assert_eq!(ben_device.delivered_seq, 3);
    let ben_read = detail
        .read
        .iter()
        .find(|r| r.user_id == ben.user.user_id)
        .unwrap();
    assert_eq!(ben_read.read_seq, 2);
}

async fn bad_thread_requests_are_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (_admin, ana, ben, cal, thread) = three(&server).await;
    let new = |id: &str, devices: Vec<String>| NewThread {
        thread_id: id.to_owned(),
        epoch: 1,
        devices,
        welcome: blob("w"),
    };

    let cases = [
        ana.client
            .create_thread(&new("not-hex", vec![ben.device_id.clone()]))
            .await,
        ana.client
            .create_thread(&new(&thread_id(2), Vec::new()))
            .await,
        ana.client
            .create_thread(&new(&thread_id(2), vec![ana.device_id.clone()]))
            .await,
        ana.client
            .create_thread(&new(&thread_id(2), vec!["0".repeat(32)]))
            .await,
    ];
    for case in &cases {
        assert_eq!(status(case), 400, "{case:?}");
    }
    assert_eq!(
        status(
            &ana.client
                .create_thread(&new(&thread, vec![cal.device_id.clone()]))
                .await
        ),
        409
    );

    // Commits: adding without a welcome, adding a member twice, removing a
    // stranger, no declared change at all.
    let mut no_welcome = commit(1, &[&cal], &[]);
    no_welcome.welcome = None;
    assert_eq!(status(&ana.client.commit(&thread, &no_welcome).await), 400);
    // MLS forbids a commit removing its own sender.
    assert_eq!(
        status(&ana.client.commit(&thread, &commit(1, &[], &[&ana])).await),
        400
    );
    // Adding a member again is a client bug, not a race: 400, not 409.
    assert_eq!(
        status(&ana.client.commit(&thread, &commit(1, &[&ben], &[])).await),
        400
    );
    assert_eq!(
        status(&ana.client.commit(&thread, &commit(1, &[], &[&cal])).await),
        400
    );
    let http = server.http();
    let url = |path: &str| format!("{}/v1/threads/{thread}/{path}", server.url);
    let raw = |path: &str, body: &'static str| {
        http.post(url(path))
            .bearer_auth(ana.token())
            .header("content-type", "application/json")
            .body(body)
    };
    let undeclared = raw("commits", r#"{"epoch":1,"commit":"AAAA"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(undeclared.status(), 400);
    let body = undeclared.text().await.unwrap();
    assert!(body.contains("change"), "{body}");

    // Messages: not base64url, too large, empty.
    let not_b64 = raw("messages", r#"{"epoch":1,"ciphertext":"%%%"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(not_b64.status(), 400);
    let too_big = MessageRequest {
        epoch: 1,
        ciphertext: Blob(vec![1; DEFAULT_MAX_MESSAGE_BYTES + 1]),
        attachments: Vec::new(),
        urgent: false,
    };
    assert_eq!(
        status(&ana.client.send_message(&thread, &too_big).await),
        413
    );
    assert_eq!(status(&send(&ana.client, &thread, 1, "").await), 400);

    // Unknown thread and welcome.
    assert_eq!(status(&send(&ana.client, &thread_id(7), 1, "x").await), 404);
    assert_eq!(status(&ana.client.ack_welcome(&"0".repeat(32)).await), 404);
    // Someone else's welcome is not yours to acknowledge.
    let bens = &ben.client.welcomes().await.unwrap().welcomes[0];
    assert_eq!(status(&ana.client.ack_welcome(&bens.welcome_id).await), 404);

    // Nothing above changed the thread.
    let detail = ana.client.thread(&thread).await.unwrap();
    assert_eq!((detail.summary.epoch, detail.summary.last_seq), (1, 0));
    assert_eq!(detail.members.len(), 2);
}

async fn a_deactivated_users_devices_leave_the_thread(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (admin, ana, mut ben, _cal, thread) = three(&server).await;
    admin
        .client
        .set_user_active(&ben.user.user_id, false)
        .await
        .unwrap();
    let members = ana.client.thread(&thread).await.unwrap().members;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].device_id, ana.device_id);
    // Ben's device is refused outright (its session ended), and audited.
    assert_eq!(status(&ben.client.entries(&thread, 0, 10).await), 401);
    let page = admin
        .client
        .audit_search(&curbside_proto::audit_review::SearchQuery {
            resource: Some(thread.clone()),
            actor: Some(ben.user.user_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = &page.entries.last().unwrap().entry;
    assert_eq!(
        (last.action.as_str(), last.reason.as_str()),
        ("thread.entries.read", "session_ended")
    );

    // Meanwhile the thread goes on; reactivation does not bring Ben's
    // device back into it (it would read what was said without him).
    send(&ana.client, &thread, 1, "while ben was away")
        .await
        .unwrap();
    admin
        .client
        .set_user_active(&ben.user.user_id, true)
        .await
        .unwrap();
    ben.login().await;
    // He reads the thread up to his deactivation, and learns of it.
    let page = ben.client.entries(&thread, 0, 10).await.unwrap();
    assert!(page.entries.iter().all(|entry| entry.seq < 2));
    let ended = page.ended.unwrap();
    assert_eq!(
        ended.reason,
        curbside_proto::threads::EndReason::Deactivated
    );
    assert_eq!(ended.by_user.as_deref(), Some(admin.user.user_id.as_str()));
    assert_eq!(status(&send(&ben.client, &thread, 1, "back").await), 404);
    assert!(ben.client.threads().await.unwrap().threads.is_empty());
    // Nor is the welcome to it, never used, offered to him again.
    assert!(ben.client.welcomes().await.unwrap().welcomes.is_empty());
    // Ana removes the device from the MLS group too: the commit is accepted.
    ana.client
        .commit(&thread, &commit(1, &[], &[&ben]))
        .await
        .unwrap();
}

async fn the_message_limit_is_configurable(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.max_message_bytes = 2048;
    let server = env.start_with(config, axum::Router::new()).await;
    let (_admin, ana, _ben, _cal, thread) = three(&server).await;
    let message = |size: usize| MessageRequest {
        epoch: 1,
        ciphertext: Blob(vec![7; size]),
        attachments: Vec::new(),
        urgent: false,
    };
    ana.client
        .send_message(&thread, &message(2048))
        .await
        .unwrap();
    let refused = ana.client.send_message(&thread, &message(2049)).await;
    assert_eq!(status(&refused), 413);
    let Err(ClientError::Api { message, .. }) = refused else {
        unreachable!()
    };
    assert!(message.contains("2048 bytes"), "{message}");
}

/// A clinician tries to bury a colleague's real threads under 1,000 junk
/// ones: past the per-user limit on new threads they are refused, every
/// thread stays reachable through paging, and the colleague can leave one.
async fn junk_threads_cannot_hide_real_ones(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (_admin, ana, ben, cal, real) = three(&server).await;
    // Two more real threads of Ben's, with Cal.
    let mut reals = vec![real];
    for n in 2..4u8 {
        cal.client
            .create_thread(&NewThread {
                thread_id: thread_id(n),
                epoch: 1,
                devices: vec![ben.device_id.clone()],
                welcome: blob("welcome"),
            })
            .await
            .unwrap();
        reals.push(thread_id(n));
    }

    let (mut junk, mut refused) = (Vec::new(), 0);
    for n in 0..1000u32 {
        let id = format!("{:032x}", u128::from(n) << 32 | 0x0bad);
        let made = ana
            .client
            .create_thread(&NewThread {
                thread_id: id.clone(),
                epoch: 1,
                devices: vec![ben.device_id.clone()],
                welcome: blob("junk"),
            })
            .await;
        match made {
            Ok(_) => junk.push(id),
            Err(error) => {
                assert_eq!(status::<()>(&Err(error)), 429);
                refused += 1;
            }
        }
    }
    assert!(junk.len() <= 32, "{} junk threads were made", junk.len());
    assert_eq!(junk.len() + refused, 1000);
    // Ana's ordinary work goes on: she is limited in new threads only.
    send(&ana.client, &reals[0], 1, "still here").await.unwrap();

    // Ben pages through all his threads, ten at a time.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = ben
            .client
            .threads_page(after.as_deref(), Some(10))
            .await
            .unwrap();
        assert!(page.threads.len() <= 10);
        seen.extend(page.threads.into_iter().map(|thread| thread.thread_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a thread was listed twice");
    assert_eq!(seen.len(), reals.len() + junk.len());
    for thread in reals.iter().chain(&junk) {
        assert!(seen.contains(thread), "thread {thread} is not reachable");
    }
    // The most recently active thread comes first.
    assert_eq!(seen[0], reals[0]);
    // A bad cursor or limit is refused.
    assert_eq!(
        status(&ben.client.threads_page(Some("nonsense"), None).await),
        400
    );
    assert_eq!(status(&ben.client.threads_page(None, Some(0)).await), 400);

    // Ben leaves a junk thread: it is gone from his list, he reads nothing
    // more of it, and Ana's messages there no longer reach him.
    let left = junk[0].clone();
    ben.client.leave_thread(&left).await.unwrap();
    let listed = ben.client.threads().await.unwrap().threads;
    assert!(listed.iter().all(|thread| thread.thread_id != left));
    assert_eq!(listed.len(), reals.len() + junk.len() - 1);
    let page = ben.client.entries(&left, 0, 10).await.unwrap();
    let ended = page.ended.unwrap();
    assert_eq!(ended.reason, curbside_proto::threads::EndReason::Left);
    assert_eq!(ended.by_user.as_deref(), Some(ben.user.user_id.as_str()));
    assert_eq!(status(&ben.client.leave_thread(&left).await), 404);
    let members = ana.client.thread(&left).await.unwrap().members;
    assert!(
        members
            .iter()
            .all(|member| member.user_id != ben.user.user_id)
    );
    send(&ana.client, &left, 1, "are you there?").await.unwrap();
    assert!(
        ben.client
            .threads()
            .await
            .unwrap()
            .threads
            .iter()
            .all(|t| t.thread_id != left)
    );
    // His welcome to it is withdrawn too.
    let welcomes = ben.client.welcomes().await.unwrap().welcomes;
    assert!(welcomes.iter().all(|welcome| welcome.thread_id != left));
    server.stop().await;
}
