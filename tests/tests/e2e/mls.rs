//! Real MLS through the real server: three clinicians' devices (OpenMLS,
//! each with its own state) create a thread, talk, add and remove members;
//! the server stores and relays only ciphertext.

use curbside_cli::ClientError;
use curbside_cli::mls::{Device, Processed};
use curbside_proto::identity::Role;
use curbside_proto::threads::{
    Blob, CommitRequest, KeyPackageUpload, MembershipChange, MessageRequest, NewThread,
};
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};

use crate::people::{Person, first_admin, person};

backend_tests!(
    three_clinicians_talk_and_the_server_sees_only_ciphertext,
    message_text_never_reaches_the_server_log,
    racing_mls_commits_one_wins_and_the_loser_catches_up,
    a_commit_unlike_its_declaration_or_sender_is_refused,
);

const MARKER: &str = "MARKER-7f3a-clinical-note";

struct Member {
    person: Person,
    device: Device,
    read_up_to: u64,
}

impl Member {
    async fn new(server: &TestServer, admin: &Person, name: &str) -> Self {
        Self::from(person(server, admin, name, Role::Clinician).await).await
    }

    /// A clinician enrolled through `client` (any server), made by `admin`.
    async fn on(client: curbside_cli::Client, admin: &Person, name: &str) -> Self {
        Self::from(crate::people::person_on(client, admin, name, Role::Clinician).await).await
    }

    async fn from(person: Person) -> Self {
        let device = Device::new(
            &person.user.user_id,
            &person.device_id,
            &person.pkcs8,
            Vec::new(),
        )
        .unwrap();
        // Publish key packages, as the client does when it runs low.
        let packages = device.key_packages(3, false).unwrap();
        let last_resort = device.key_packages(1, true).unwrap().remove(0);
        person
            .client
            .upload_key_packages(&KeyPackageUpload {
                packages: packages.into_iter().map(Blob).collect(),
                last_resort: Some(Blob(last_resort)),
            })
            .await
            .unwrap();
        Self {
            person,
            device,
            read_up_to: 0,
        }
    }

    /// Claims `other`'s key packages, checking each against the directory
    /// (the user, and the device's enrolled key).
    async fn claim(&self, other: &Member) -> Vec<openmls::prelude::KeyPackage> {
        let claimed = self
            .person
            .client
            .claim_key_packages(&other.person.user.user_id)
            .await
            .unwrap();
        let directory = self.person.client.directory("").await.unwrap();
        claimed
            .packages
            .iter()
            .map(|claimed| {
                let (package, identity) = self
                    .device
                    .read_key_package(&claimed.key_package.0)
                    .unwrap();
                let listed = directory
                    .entries
                    .iter()
                    .find(|entry| entry.user_id == identity.user_id)
                    .and_then(|entry| {
                        entry
                            .devices
                            .iter()
                            .find(|device| device.device_id == identity.device_id)
                    })
                    .expect("the package's device is in the directory");
                assert_eq!(listed.public_key, identity.public_key, "credential key");
                assert_eq!(identity.device_id, claimed.device_id);
                package
            })
            .collect()
    }

    async fn join(&mut self) -> String {
        let welcome = self
            .person
            .client
            .welcomes()
            .await
            .unwrap()
            .welcomes
            .remove(0);
        let thread = welcome.thread_id.clone();
        self.device
            .join(&welcome.welcome.0, &thread, welcome.epoch)
            .unwrap();
        self.read_up_to = welcome.joined_seq;
        self.person
            .client
            .ack_welcome(&welcome.welcome_id)
            .await
            .unwrap();
        thread
    }

    async fn say(&self, thread: &str, text: &str) -> u64 {
        let (epoch, ciphertext) = self.device.encrypt(thread, text.as_bytes()).unwrap();
        self.person
            .client
            .send_message(
                thread,
                &MessageRequest {
                    epoch,
                    ciphertext: Blob(ciphertext),
                    attachments: Vec::new(),
                    urgent: false,
                },
            )
            .await
            .unwrap()
            .seq
    }

    /// Reads the thread's new entries: the texts of others' messages.
    async fn read(&mut self, thread: &str) -> Vec<String> {
        let page = self
            .person
            .client
            .entries(thread, self.read_up_to, 500)
            .await
            .unwrap();
        let mut texts = Vec::new();
        for entry in page.entries {
            self.read_up_to = entry.seq;
            if entry.sender_device == self.person.device_id {
                continue;
            }
            let declared = entry
                .change
                .as_ref()
                .map(|change| (change.add.as_slice(), change.remove.as_slice()));
            match self
                .device
                .process(thread, &entry.sender_device, &entry.body.0, declared)
                .unwrap()
            {
                Processed::Message { sender, plaintext } => {
                    assert_eq!(sender.device_id, entry.sender_device);
                    texts.push(String::from_utf8(plaintext).unwrap());
                }
                Processed::Commit { .. } => {}
            }
        }
        texts
    }

    async fn commit(&self, thread: &str, add: &[&Member], remove: &[&Member]) {
        let mut packages = Vec::new();
        for member in add {
            packages.extend(self.claim(member).await);
        }
        let removed: Vec<String> = remove.iter().map(|m| m.person.device_id.clone()).collect();
        let pending = self.device.commit(thread, &packages, &removed).unwrap();
        self.person
            .client
            .commit(
                thread,
                &CommitRequest {
                    epoch: pending.epoch,
                    commit: Blob(pending.commit),
                    change: MembershipChange {
                        add: add.iter().map(|m| m.person.device_id.clone()).collect(),
                        remove: removed,
                    },
                    welcome: pending.welcome.map(Blob),
                },
            )
            .await
            .unwrap();
        self.device.commit_accepted(thread).unwrap();
    }
}

async fn three_clinicians_talk_and_the_server_sees_only_ciphertext(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Member::new(&server, &admin, "Dr. Ana").await;
    let mut ben = Member::new(&server, &admin, "Dr. Ben").await;
    let mut cal = Member::new(&server, &admin, "Dr. Cal").await;

    // Ana makes the thread with Ben.
    let thread = format!(
        "{:032x}",
        0x5eed_u128 << 64 | u128::from(std::process::id())
    );
    let packages = ana.claim(&ben).await;
    let (epoch, welcome) = ana.device.create(&thread, &packages).unwrap();
    ana.person
        .client
        .create_thread(&NewThread {
            thread_id: thread.clone(),
            epoch,
            devices: vec![ben.person.device_id.clone()],
            welcome: Blob(welcome),
        })
        .await
        .unwrap();
    assert_eq!(ben.join().await, thread);

    // Both ways.
    ana.say(&thread, &format!("{MARKER}: patient in bed 4"))
        .await;
    assert_eq!(
        ben.read(&thread).await,
        [format!("{MARKER}: patient in bed 4")]
    );
    ben.say(&thread, "seen, will review").await;
    let mut ana = ana;
    assert_eq!(ana.read(&thread).await, ["seen, will review"]);

    // Cal joins: he reads what is said from then on, nothing before.
    ana.commit(&thread, &[&cal], &[]).await;
    cal.join().await;
    assert!(cal.read(&thread).await.is_empty());
    ana.say(&thread, "welcome, Cal").await;
    assert_eq!(cal.read(&thread).await, ["welcome, Cal"]);
    assert_eq!(ben.read(&thread).await, ["welcome, Cal"]);
    let mut members: Vec<String> = cal
        .device
        .members(&thread)
        .unwrap()
        .into_iter()
        .map(|identity| identity.device_id)
        .collect();
    members.sort();
    let mut expected = vec![
        ana.person.device_id.clone(),
        ben.person.device_id.clone(),
        cal.person.device_id.clone(),
    ];
    expected.sort();
    assert_eq!(members, expected);

    // Ana removes Ben: he reads nothing past his removal, and he cannot
    // decrypt what follows.
    ana.commit(&thread, &[], &[&ben]).await;
    ana.say(&thread, "after Ben left").await;
    assert_eq!(cal.read(&thread).await, ["after Ben left"]);
    let page = ben.person.client.entries(&thread, 0, 100).await.unwrap();
    let ended = page.ended.expect("he learns his membership ended");
    assert!(page.entries.iter().all(|entry| entry.seq <= ended.seq));
    assert!(page.last_seq <= ended.seq);
    let leaked = cal
        .person
        .client
        .entries(&thread, cal.read_up_to - 1, 10)
        .await
        .unwrap()
        .entries
        .remove(0);
    assert!(
        ben.device
            .process(&thread, &leaked.sender_device, &leaked.body.0, None)
            .is_err(),
        "a removed member decrypted a later message"
    );

    // The server holds only ciphertext: the marker is nowhere in storage.
    assert_eq!(crate::mls::marker_in_storage(&env, backend).await, 0);
    // (The search does find it when a client sends it in the clear.)
    let epoch = ana.device.epoch(&thread).unwrap();
    ana.person
        .client
        .send_message(
            &thread,
            &MessageRequest {
                epoch,
                ciphertext: Blob(MARKER.as_bytes().to_vec()),
                attachments: Vec::new(),
                urgent: false,
            },
        )
        .await
        .unwrap();
    assert!(crate::mls::marker_in_storage(&env, backend).await > 0);
}

/// How many places in the server's storage hold [`MARKER`] in the clear.
pub async fn marker_in_storage(env: &TestEnv, backend: Backend) -> usize {
    marker_in_storage_of(env, backend, MARKER).await
}

/// How many places in the server's storage hold `marker` in the clear: any
/// file of the SQLite data directory, or any text or bytea column.
pub async fn marker_in_storage_of(env: &TestEnv, backend: Backend, marker: &str) -> usize {
    bytes_in_storage(env, backend, marker.as_bytes()).await
}

/// How many places in the server's storage hold `needle`: any file of the
/// SQLite data directory (the database, its write-ahead log), or on
/// PostgreSQL any text column (as text) or bytea column (as bytes).
pub async fn bytes_in_storage(env: &TestEnv, backend: Backend, needle: &[u8]) -> usize {
    match backend {
        Backend::Sqlite => {
            let mut found = 0;
            for entry in std::fs::read_dir(env.data_dir()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    let bytes = std::fs::read(&path).unwrap();
                    found += bytes
                        .windows(needle.len())
                        .filter(|window| *window == needle)
                        .count();
                }
            }
            found
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(env.database_url())
                .await
                .unwrap();
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text \
                 FROM information_schema.columns WHERE table_schema = 'public' \
                 AND data_type IN ('text', 'bytea', 'character varying')",
            )
            .fetch_all(&mut connection)
            .await
            .unwrap();
            assert!(columns.len() > 20, "{columns:?}");
            // Binary needles (ciphertext) are looked for in bytea columns
            // only: text cannot hold them.
            let text = std::str::from_utf8(needle)
                .ok()
                .filter(|text| !text.contains('\0'));
            let mut found = 0;
            for (table, column, data_type) in columns {
                let count: i64 = if data_type == "bytea" {
                    sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE position($1::bytea in \"{column}\") > 0"
                    ))
                    .bind(needle)
                    .fetch_one(&mut connection)
                    .await
                    .unwrap()
                } else if let Some(text) = text {
                    sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE position($1 in \"{column}\") > 0"
                    ))
                    .bind(text)
                    .fetch_one(&mut connection)
                    .await
                    .unwrap()
                } else {
                    0
                };
                found += usize::try_from(count).unwrap();
            }
            found
        }
    }
}

/// Posts `member`'s self-update commit; `Ok(seq)` or the refusal's status.
async fn post_update(member: &Member, thread: &str) -> Result<u64, u16> {
    let pending = member.device.update(thread).unwrap();
    let result = member
        .person
        .client
        .commit(
            thread,
            &CommitRequest {
                epoch: pending.epoch,
                commit: Blob(pending.commit),
                change: MembershipChange::default(),
                welcome: None,
            },
        )
        .await;
    match result {
        Ok(appended) => {
            member.device.commit_accepted(thread).unwrap();
            Ok(appended.seq)
        }
        Err(ClientError::Api { status, .. }) => {
            member.device.commit_refused(thread).unwrap();
            Err(status.as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

async fn racing_mls_commits_one_wins_and_the_loser_catches_up(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let mut ana = Member::new(&server, &admin, "Dr. Ana").await;
    let mut ben = Member::new(&server, &admin, "Dr. Ben").await;
    let mut cal = Member::new(&server, &admin, "Dr. Cal").await;
    let thread = format!("{:032x}", 0xace_u128 << 64 | u128::from(std::process::id()));
    let mut packages = ana.claim(&ben).await;
    packages.extend(ana.claim(&cal).await);
    let (epoch, welcome) = ana.device.create(&thread, &packages).unwrap();
    ana.person
        .client
        .create_thread(&NewThread {
            thread_id: thread.clone(),
            epoch,
            devices: vec![ben.person.device_id.clone(), cal.person.device_id.clone()],
            welcome: Blob(welcome),
        })
        .await
        .unwrap();
    ben.join().await;
    cal.join().await;

    // Ana and Ben commit at the same epoch at once: exactly one wins.
    let (a, b) = tokio::join!(post_update(&ana, &thread), post_update(&ben, &thread));
    let loser_is_ben = match (a, b) {
        (Ok(_), Err(409)) => true,
        (Err(409), Ok(_)) => false,
        other => panic!("exactly one commit wins, the other gets 409: {other:?}"),
    };
    // The loser catches up (processes the winner's commit) and retries.
    if loser_is_ben {
        assert!(ben.read(&thread).await.is_empty());
        post_update(&ben, &thread).await.unwrap();
    } else {
        assert!(ana.read(&thread).await.is_empty());
        post_update(&ana, &thread).await.unwrap();
    }
    for member in [&mut ana, &mut ben, &mut cal] {
        member.read(&thread).await;
    }
    let epochs: Vec<u64> = [&ana, &ben, &cal]
        .iter()
        .map(|member| member.device.epoch(&thread).unwrap())
        .collect();
    assert_eq!(epochs, [epoch + 2; 3], "all at the same epoch");
    // And they can still talk.
    cal.say(&thread, "still here").await;
    assert_eq!(ana.read(&thread).await, ["still here"]);
    assert_eq!(ben.read(&thread).await, ["still here"]);
}

async fn message_text_never_reaches_the_server_log(backend: Backend) {
    const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");
    let env = TestEnv::new(backend).await;
    let log = env.data_dir().join("server.log");
    let server = curbside_tests::ServerProcess::start_logging(&env, SERVER, &[], true, Some(&log));
    let mut admin = crate::people::enroll_with(
        server.client(),
        server.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    admin.login().await;
    let ana = Member::on(server.client(), &admin, "Dr. Ana").await;
    let mut ben = Member::on(server.client(), &admin, "Dr. Ben").await;
    let thread = format!("{:032x}", 0x106_u128 << 64 | u128::from(std::process::id()));
    let packages = ana.claim(&ben).await;
    let (epoch, welcome) = ana.device.create(&thread, &packages).unwrap();
    ana.person
        .client
        .create_thread(&NewThread {
            thread_id: thread.clone(),
            epoch,
            devices: vec![ben.person.device_id.clone()],
            welcome: Blob(welcome),
        })
        .await
        .unwrap();
    ben.join().await;
    ana.say(&thread, &format!("{MARKER}: logged?")).await;
    assert_eq!(ben.read(&thread).await, [format!("{MARKER}: logged?")]);
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    // The log is there, at every level, and names the requests...
    assert!(text.contains("/v1/threads/{thread_id}/messages"), "{text}");
    // ...but never the message, a token or a key package.
    assert!(!text.contains(MARKER));
    assert!(!text.contains(ana.person.token()));
}

async fn a_commit_unlike_its_declaration_or_sender_is_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Member::new(&server, &admin, "Dr. Ana").await;
    let mut ben = Member::new(&server, &admin, "Dr. Ben").await;
    let cal = Member::new(&server, &admin, "Dr. Cal").await;
    let thread = format!("{:032x}", 0xbad_u128 << 64 | u128::from(std::process::id()));
    let packages = ana.claim(&ben).await;
    let (epoch, welcome) = ana.device.create(&thread, &packages).unwrap();
    ana.person
        .client
        .create_thread(&NewThread {
            thread_id: thread.clone(),
            epoch,
            devices: vec![ben.person.device_id.clone()],
            welcome: Blob(welcome),
        })
        .await
        .unwrap();
    ben.join().await;

    // A message the server says Cal sent, when Ana's device sent it.
    ana.say(&thread, "from Ana").await;
    let message = ben
        .person
        .client
        .entries(&thread, 0, 10)
        .await
        .unwrap()
        .entries
        .remove(0);
    let refused = ben
        .device
        .process(&thread, &cal.person.device_id, &message.body.0, None);
    assert!(
        matches!(
            refused,
            Err(curbside_cli::mls::MlsError::SenderMismatch { .. })
        ),
        "{refused:?}"
    );

    // Ana's commit only refreshes her keys, but she tells the server it
    // adds Cal: Ben's device refuses it.
    let pending = ana.device.update(&thread).unwrap();
    ana.person
        .client
        .commit(
            &thread,
            &CommitRequest {
                epoch: pending.epoch,
                commit: Blob(pending.commit),
                change: MembershipChange {
                    add: vec![cal.person.device_id.clone()],
                    remove: Vec::new(),
                },
                welcome: Some(Blob(b"not a welcome".to_vec())),
            },
        )
        .await
        .unwrap();
    let entry = ben
        .person
        .client
        .entries(&thread, message.seq, 10)
        .await
        .unwrap()
        .entries
        .remove(0);
    let change = entry.change.clone().unwrap();
    let refused = ben.device.process(
        &thread,
        &entry.sender_device,
        &entry.body.0,
        Some((&change.add, &change.remove)),
    );
    assert!(
        matches!(
            refused,
            Err(curbside_cli::mls::MlsError::DeclarationMismatch { .. })
        ),
        "{refused:?}"
    );
    let _ = &mut ben;
}
