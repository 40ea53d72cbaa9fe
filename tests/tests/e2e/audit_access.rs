//! Every access writes its audit entry: one per request, with the right
//! actor, action, resource and outcome, denied ones included; reading the
//! log is audited; an unwritable log refuses access; the CLI verifies the
//! chain of a real workload and finds tampering; concurrent clients and
//! two server processes still produce one gap-free chain.

use curbside_proto::audit::{AuditEntry, Outcome};
use curbside_proto::audit_review::{ExportFormat, ExportQuery, SearchQuery};
use curbside_proto::identity::{EnrollRequest, LoginRequest, NewUser, Role};
use curbside_server::audit;
use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_tests::{Backend, ServerProcess, TestEnv, backend_tests};

use crate::people::{Person, enroll_with, first_admin, new_key, person};

backend_tests!(
    each_access_writes_one_entry,
    an_expired_session_is_recorded_with_its_actor,
    an_unwritable_log_refuses_access_without_data,
    the_cli_verifies_a_workload_and_names_tampered_entries,
    concurrent_clients_make_one_gap_free_chain,
    two_server_processes_share_one_chain,
);

/// The real server binary.
const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");

pub async fn open(env: &TestEnv) -> Database {
    Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
        .await
        .unwrap()
}

/// Reads the log behind the server's back, and hands out what was
/// appended since the last call.
struct Log {
    database: Database,
    seen: usize,
}

impl Log {
    async fn new(env: &TestEnv) -> Self {
        Self {
            database: open(env).await,
            seen: 0,
        }
    }

    async fn new_entries(&mut self) -> Vec<AuditEntry> {
        let (entries, _) = audit::read_all(&self.database).await.unwrap();
        let fresh: Vec<AuditEntry> = entries[self.seen..]
            .iter()
            .map(|(e, _)| e.clone())
            .collect();
        self.seen = entries.len();
        fresh
    }

    /// The one entry the last request wrote.
    async fn one(&mut self) -> AuditEntry {
        let mut fresh = self.new_entries().await;
        assert_eq!(fresh.len(), 1, "exactly one entry per access: {fresh:#?}");
        fresh.remove(0)
    }
}

#[track_caller]
fn check(
    entry: &AuditEntry,
    actor: Option<&str>,
    action: &str,
    resource: (&str, Option<&str>),
    outcome: Outcome,
    reason: &str,
) {
    assert_eq!(entry.actor_user.as_deref(), actor, "actor of {entry:#?}");
    assert_eq!(entry.action, action, "{entry:#?}");
    assert_eq!(entry.resource_type, resource.0, "{entry:#?}");
    assert_eq!(entry.resource_id.as_deref(), resource.1, "{entry:#?}");
    assert_eq!(entry.outcome, outcome, "{entry:#?}");
    assert_eq!(entry.reason, reason, "{entry:#?}");
    assert_eq!(
        entry.client_addr.as_deref(),
        Some("127.0.0.1"),
        "{entry:#?}"
    );
    assert!(!entry.request_id.is_empty(), "{entry:#?}");
}

async fn each_access_writes_one_entry(backend: Backend) {
    use Outcome::{Allowed, Denied};
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut log = Log::new(&env).await;

    // The first start issued the first administrator's code from the
    // console: on the record, with no one signed in.
    let console = log.one().await;
    assert_eq!(console.action, "admin.enrollment_code.issue");
    assert_eq!(console.reason, "server_console");
    assert_eq!(console.request_id, "console");
    assert_eq!((console.actor_user, console.client_addr), (None, None));

    // Health and readiness are public: no entry.
    server.client().health().await.unwrap();
    server.client().ready().await.unwrap();
    assert!(log.new_entries().await.is_empty());

    // Enrollment, challenge and login: one entry each, with the new device.
    let admin = first_admin(&server).await;
    let admin_id = admin.user.user_id.clone();
    let admin_id = admin_id.as_str();
    let device = admin.device_id.clone();
    let device = device.as_str();
    let fresh = log.new_entries().await;
    assert_eq!(fresh.len(), 3, "{fresh:#?}");
    check(
        &fresh[0],
        Some(admin_id),
        "auth.enroll",
        ("device", Some(device)),
        Allowed,
        "ok",
    );
    assert_eq!(fresh[0].actor_device.as_deref(), Some(device));
    check(
        &fresh[1],
        None,
        "auth.challenge",
        ("device", Some(device)),
        Allowed,
        "ok",
    );
    check(
        &fresh[2],
        Some(admin_id),
        "auth.login",
        ("device", Some(device)),
        Allowed,
        "ok",
    );

    // A failed login: the signature is not the device's.
    let challenge = admin.client.challenge(device).await.unwrap();
    log.one().await;
    let refused = admin
        .client
        .login(&LoginRequest {
            challenge_id: challenge.challenge_id,
            device_id: device.to_owned(),
            signature: vec![0; 64],
        })
        .await;
    assert!(refused.is_err());
    check(
        &log.one().await,
        None,
        "auth.login",
        ("device", Some(device)),
        Denied,
        "bad_signature",
    );

    // A bad enrollment code.
    let bad = admin
        .anonymous(&server)
        .enroll(&EnrollRequest {
            code: "AAAA-BBBB-CCCC-DDDD-EEEE".to_owned(),
            device_name: "x".to_owned(),
            public_key: ring::signature::KeyPair::public_key(&new_key())
                .as_ref()
                .to_vec(),
            display_name: None,
        })
        .await;
    assert!(bad.is_err());
    check(
        &log.one().await,
        None,
        "auth.enroll",
        ("device", None),
        Denied,
        "enrollment_code_refused",
    );

    // A protected read, and an administrator's write with its new resource.
    admin.client.whoami().await.unwrap();
    check(
        &log.one().await,
        Some(admin_id),
        "identity.whoami",
        ("user", Some(admin_id)),
        Allowed,
        "ok",
    );
    let clinician = person(&server, &admin, "Dr. Clinician", Role::Clinician).await;
    let clinician_id = clinician.user.user_id.as_str();
    let fresh = log.new_entries().await;
    let actions: Vec<&str> = fresh.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.user.create",
            "admin.enrollment_code.issue",
            "auth.enroll",
            "auth.challenge",
            "auth.login"
        ]
    );
    check(
        &fresh[0],
        Some(admin_id),
        "admin.user.create",
        ("user", Some(clinician_id)),
        Allowed,
        "ok",
    );
    check(
        &fresh[1],
        Some(admin_id),
        "admin.enrollment_code.issue",
        ("user", Some(clinician_id)),
        Allowed,
        "ok",
    );

    // Denied: a clinician at an administrators' and auditors' route, with
    // the actor named.
    assert!(clinician.client.get_user(admin_id).await.is_err());
    let entry = log.one().await;
    check(
        &entry,
        Some(clinician_id),
        "admin.user.read",
        ("user", Some(admin_id)),
        Denied,
        "not_reviewer",
    );
    assert_eq!(
        entry.actor_device.as_deref(),
        Some(clinician.device_id.as_str())
    );

    // Denied: no token, and a forged one.
    let http = server.http();
    let url = format!("{}/v1/me", server.url);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    check(
        &log.one().await,
        None,
        "identity.whoami",
        ("user", None),
        Denied,
        "no_token",
    );
    let forged = http
        .get(&url)
        .bearer_auth("e30.e30.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    check(
        &log.one().await,
        None,
        "identity.whoami",
        ("user", None),
        Denied,
        "invalid_token",
    );

    // A method the route does not have is still an access to it.
    assert_eq!(http.put(&url).send().await.unwrap().status(), 405);
    check(
        &log.one().await,
        None,
        "http.request",
        ("route", Some("/v1/me")),
        Denied,
        "method_not_allowed",
    );

    // Reading the log is audited; clinicians may not.
    let page = admin
        .client
        .audit_search(&SearchQuery::default())
        .await
        .unwrap();
    assert!(page.entries.len() >= 15);
    check(
        &log.one().await,
        Some(admin_id),
        "audit.search",
        ("audit_log", None),
        Allowed,
        "ok",
    );
    assert!(
        clinician
            .client
            .audit_search(&SearchQuery::default())
            .await
            .is_err()
    );
    check(
        &log.one().await,
        Some(clinician_id),
        "audit.search",
        ("audit_log", None),
        Denied,
        "not_reviewer",
    );
    let auditor = person(&server, &admin, "A. Auditor", Role::Auditor).await;
    log.new_entries().await;
    let query = ExportQuery::whole_log(ExportFormat::Csv);
    let export = auditor.client.audit_export(&query).await.unwrap();
    assert_eq!(export.status(), 200);
    drop(export);
    let auditor_id = auditor.user.user_id.as_str();
    check(
        &log.one().await,
        Some(auditor_id),
        "audit.export",
        ("audit_log", None),
        Allowed,
        "ok",
    );

    // Deactivation, then the deactivated clinician's refused request.
    admin
        .client
        .set_user_active(clinician_id, false)
        .await
        .unwrap();
    check(
        &log.one().await,
        Some(admin_id),
        "admin.user.deactivate",
        ("user", Some(clinician_id)),
        Allowed,
        "ok",
    );
    assert!(clinician.client.whoami().await.is_err());
    check(
        &log.one().await,
        Some(clinician_id),
        "identity.whoami",
        ("user", None),
        Denied,
        "session_ended",
    );

    // Logout: the session is the resource.
    let session_id = auditor.client.whoami().await.unwrap().session_id;
    log.new_entries().await;
    auditor.client.logout().await.unwrap();
    check(
        &log.one().await,
        Some(auditor_id),
        "auth.logout",
        ("session", Some(&session_id)),
        Allowed,
        "ok",
    );

    // Rate-limit refusals are recorded as such, one entry per attempt
    // (within the address's allowance of refusals with an entry of their
    // own; past it they are counted, see `flood.rs`).
    let stranger = admin.anonymous(&server);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = stranger.challenge(&"0".repeat(32)).await;
        if let Err(curbside_cli::ClientError::Api { status, .. }) = &result
            && *status == 429
        {
            break;
        }
        assert!(attempts < 500, "the address limit never refused");
    }
    let fresh = log.new_entries().await;
    assert_eq!(fresh.len(), attempts, "one entry per attempt");
    let last = fresh.last().unwrap();
    check(
        last,
        None,
        "auth.challenge",
        ("device", Some(&"0".repeat(32))),
        Denied,
        "rate_limited",
    );

    // Nothing is written without its entry: the whole chain verifies.
    let (entries, checkpoints) = audit::read_all(&log.database).await.unwrap();
    let key = admin.client.audit_key().await.unwrap().public_key;
    assert_eq!(
        curbside_proto::audit::verify(entries.clone(), &checkpoints, &key),
        Ok(entries.len() as u64)
    );
}

async fn an_expired_session_is_recorded_with_its_actor(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let admin_id = admin.user.user_id.clone();
    server.stop().await;
    // Idle for an hour, as far as the database knows; a restart clears
    // the memory of the session's last request.
    crate::storage::execute(
        &env,
        "UPDATE session SET last_seen_at_ms = last_seen_at_ms - 3600000",
    )
    .await;
    let server = env.start().await;
    let mut log = Log::new(&env).await;
    log.new_entries().await;
    let http = server.http();
    let response = http
        .get(format!("{}/v1/me", server.url))
        .bearer_auth(admin.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    check(
        &log.one().await,
        Some(&admin_id),
        "identity.whoami",
        ("user", None),
        Outcome::Denied,
        "session_expired",
    );
}

async fn an_unwritable_log_refuses_access_without_data(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let secret_name = "Dr. Must Not Leak";
    admin
        .client
        .create_user(&NewUser {
            display_name: secret_name.to_owned(),
            role: Role::Clinician,
            department: "Oncology".to_owned(),
            licence_number: None,
            user_name: None,
            external_id: None,
        })
        .await
        .unwrap();
    crate::audit::disable_audit_inserts(&env, backend).await;

    // A protected read: 503, and nothing of the data.
    let http = server.http();
    let response = http
        .get(format!("{}/v1/admin/users", server.url))
        .bearer_auth(admin.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body = response.text().await.unwrap();
    assert!(!body.contains(secret_name), "{body}");
    assert!(body.contains("audit log"), "{body}");

    // A write: refused, and not made.
    let created = admin
        .client
        .create_user(&NewUser {
            display_name: "Dr. Never Created".to_owned(),
            role: Role::Clinician,
            department: "Oncology".to_owned(),
            licence_number: None,
            user_name: None,
            external_id: None,
        })
        .await;
    assert!(
        matches!(&created, Err(curbside_cli::ClientError::Api { status, .. }) if *status == 503),
        "{created:?}"
    );
    let database = open(&env).await;
    let made: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM app_user WHERE display_name = 'Dr. Never Created'",
    )
    .fetch_one(database.pool())
    .await
    .unwrap();
    assert_eq!(made, 0, "a write without its entry must not commit");
}

/// The CLI as the first administrator of `server`, enrolled in `home`.
pub(crate) struct Cli {
    pub(crate) url: String,
    pin: String,
    pub(crate) home: tempfile::TempDir,
}

impl Cli {
    /// Enrolls the CLI as a second device of `admin`.
    pub(crate) async fn for_admin(url: &str, fingerprint: &str, admin: &Person) -> Self {
        let code = admin
            .client
            .issue_enrollment_code(&admin.user.user_id)
            .await
            .unwrap()
            .code;
        let cli = Self {
            url: url.to_owned(),
            pin: fingerprint.to_owned(),
            home: tempfile::tempdir().unwrap(),
        };
        cli.run(&["enroll", "--code", &code]).await.unwrap();
        cli
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Result<String, curbside_cli::cli::CliError> {
        use clap::Parser;
        let mut argv = vec![
            "curbside",
            "--server",
            &self.url,
            "--pin-sha256",
            &self.pin,
            "--home",
            self.home.path().to_str().unwrap(),
        ];
        argv.extend_from_slice(args);
        let mut cli = curbside_cli::cli::Cli::parse_from(argv);
        cli.passphrase = Some("correct horse battery".to_owned());
        curbside_cli::cli::run(cli).await
    }

    /// `admin audit verify`: the sequence it names, valid or broken.
    pub(crate) async fn verify(&self, extra: &[&str]) -> Result<u64, u64> {
        let mut args = vec!["admin", "audit", "verify"];
        args.extend_from_slice(extra);
        match self.run(&args).await {
            Ok(report) => {
                let seq = report
                    .strip_prefix("The audit log is valid up to sequence ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_else(|| panic!("{report}"));
                Ok(seq.parse().unwrap())
            }
            Err(curbside_cli::cli::CliError::Audit(curbside_cli::audit::AuditError::Broken(
                broken,
            ))) => Err(broken.seq),
            Err(other) => panic!("verify failed otherwise: {other}"),
        }
    }
}

async fn the_cli_verifies_a_workload_and_names_tampered_entries(backend: Backend) {
    // Each case tampers with a fresh server's log after the same workload.
    type Tamper = fn(&[i64]) -> (Vec<String>, u64);
    let cases: [(&str, Tamper); 5] = [
        ("change one field", |_| {
            (
                vec!["UPDATE audit_entry SET reason = 'nothing to see' WHERE seq = 17".into()],
                17,
            )
        }),
        ("delete from the middle", |_| {
            (vec!["DELETE FROM audit_entry WHERE seq = 23".into()], 23)
        }),
        ("swap two entries", |_| {
            (
                vec![
                    "UPDATE audit_entry SET seq = -1 WHERE seq = 30".into(),
                    "UPDATE audit_entry SET seq = 30 WHERE seq = 31".into(),
                    "UPDATE audit_entry SET seq = 31 WHERE seq = -1".into(),
                ],
                30,
            )
        }),
        ("truncate past the last checkpoint", |checkpoints| {
            let last = checkpoints[checkpoints.len() - 1];
            (
                vec![format!("DELETE FROM audit_entry WHERE seq > {}", last - 3)],
                (last - 2) as u64,
            )
        }),
        ("replace a checkpoint signature", |checkpoints| {
            let (second, third) = (checkpoints[1], checkpoints[2]);
            (
                vec![format!(
                    "UPDATE audit_checkpoint SET signature = \
                     (SELECT signature FROM audit_checkpoint WHERE seq = {second}) WHERE seq = {third}"
                )],
                third as u64,
            )
        }),
    ];
    for (name, tamper) in cases {
        let env = TestEnv::new(backend).await;
        let mut config = env.config();
        config.audit_checkpoints.every_entries = 10;
        let server = env.start_with(config, axum::Router::new()).await;
        let mut admin = first_admin(&server).await;
        let cli = Cli::for_admin(&server.url, &server.fingerprint.to_string(), &admin).await;
        // A mixed workload: writes, reads, a denied request.
        for i in 0..8 {
            let user = admin
                .client
                .create_user(&NewUser {
                    display_name: format!("Dr. Number {i}"),
                    role: Role::Clinician,
                    department: "Surgery".to_owned(),
                    licence_number: None,
                    user_name: None,
                    external_id: None,
                })
                .await
                .unwrap();
            admin.client.get_user(&user.user_id).await.unwrap();
            admin.client.directory("Number").await.unwrap();
        }
        admin.client.set_token(None);
        assert!(admin.client.whoami().await.is_err());
        // Client-chosen text that must survive every export format.
        assert!(admin.client.challenge("").await.is_err());
        assert!(admin.client.get_user("-1,\"=x\n").await.is_err());
        let verified = cli.verify(&[]).await.expect("an untouched log verifies");
        assert!(verified >= 30, "{verified}");

        // An export taken now stays valid whatever happens to the database.
        let jsonl = cli.home.path().join("before.jsonl");
        let csv = cli.home.path().join("before.csv");
        for (format, file) in [("jsonl", &jsonl), ("csv", &csv)] {
            cli.run(&[
                "admin",
                "audit",
                "export",
                "--format",
                format,
                "--out",
                file.to_str().unwrap(),
            ])
            .await
            .unwrap();
            let from_file = cli.verify(&["--file", file.to_str().unwrap()]).await;
            assert!(
                from_file.is_ok_and(|seq| seq > verified),
                "{name}: {from_file:?}"
            );
        }

        let database = open(&env).await;
        let checkpoints: Vec<i64> =
            sqlx::query_scalar("SELECT seq FROM audit_checkpoint ORDER BY seq")
                .fetch_all(database.pool())
                .await
                .unwrap();
        assert!(checkpoints.len() >= 4, "{checkpoints:?}");
        let (statements, broken_at) = tamper(&checkpoints);
        for statement in &statements {
            crate::storage::execute(&env, statement).await;
        }
        assert_eq!(
            cli.verify(&[]).await,
            Err(broken_at),
            "{name}: {statements:?}"
        );
        database.close().await;
        server.stop().await;
    }
}

async fn concurrent_clients_make_one_gap_free_chain(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let token = admin.token().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = server.client();
        client.set_token(Some(token.clone()));
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                client.whoami().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let database = open(&env).await;
    let (entries, checkpoints) = audit::read_all(&database).await.unwrap();
    let reads = entries
        .iter()
        .filter(|(entry, _)| entry.action == "identity.whoami")
        .count();
    assert_eq!(reads, 1600, "one entry per request");
    let key = admin.client.audit_key().await.unwrap().public_key;
    assert_eq!(
        curbside_proto::audit::verify(entries.clone(), &checkpoints, &key),
        Ok(entries.len() as u64),
        "one gap-free chain"
    );
}

async fn two_server_processes_share_one_chain(backend: Backend) {
    if backend == Backend::Sqlite {
        // Replicas share PostgreSQL; a SQLite file belongs to one server.
        curbside_tests::skipped(
            "two_server_processes_share_one_chain on SQLite",
            "replicas share PostgreSQL",
        );
        return;
    }
    let env = TestEnv::new(backend).await;
    let first = ServerProcess::start(&env, SERVER, &["--audit-checkpoint-entries", "100"], true);
    let second = ServerProcess::start(&env, SERVER, &["--audit-checkpoint-entries", "100"], false);
    let mut admin = enroll_with(
        first.client(),
        first.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    let token = admin.login().await.token;
    let cli = Cli::for_admin(&first.url, &first.fingerprint.to_string(), &admin).await;
    cli.run(&["login"]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = if i % 2 == 0 {
            first.client()
        } else {
            second.client()
        };
        client.set_token(Some(token.clone()));
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                client.whoami().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let database = open(&env).await;
    let reads: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_entry WHERE action = 'identity.whoami'")
            .fetch_one(database.pool())
            .await
            .unwrap();
    // 1600 from the clients, and the two the CLI's sign-ins make to greet
    // (at enrollment, which signs in to upload key packages, and `curbside
    // login`).
    assert_eq!(reads, 1602);
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_entry")
        .fetch_one(database.pool())
        .await
        .unwrap();
    let verified = cli.verify(&[]).await.expect("one valid chain");
    // And the search `verify` makes first, for the key the log began with.
    assert_eq!(verified, total as u64 + 1, "gap-free: every entry verified");
}
