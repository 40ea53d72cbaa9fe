//! Threads that never break for their members, and a CLI that speaks the
//! clinician's language: re-adds heal, a removal is explained and never
//! stops `watch`, every mistake says what went wrong and what to do, search
//! works in every language, and times and names read as people read them.

use std::time::Duration;

use curbside_proto::identity::{NewUser, Role};
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::conversation::{CURBSIDE, Clinician, PASSPHRASE, created, wait_for_line};
use crate::people::first_admin;

backend_tests!(
    a_member_added_back_reads_again,
    removal_from_one_thread_never_stops_watch,
    mistakes_are_explained_in_the_users_words,
    search_finds_names_in_every_language,
    threads_and_thread_show_read_as_people_read,
    watch_outlives_tokens_and_server_restarts,
    the_passphrase_is_asked_once_per_working_session,
    enrollment_codes_are_listed_revoked_and_replaced,
);

/// Removed and added back, a member reads everything sent after the re-add
/// (and nothing from between); the same after deactivation, reactivation,
/// removal and re-add.
async fn a_member_added_back_reads_again(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    ben.ok(&["threads"]).await;
    cal.ok(&["threads"]).await;
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Ben Brown, Cal Chen",
            "--subject",
            "Ward 7 rounds",
        ])
        .await,
    );
    ana.ok(&["send", &thread, "before"]).await;
    assert!(ben.ok(&["read", &thread]).await.contains("before"));

    ana.ok(&["thread", "remove", &thread, "Ben Brown"]).await;
    ana.ok(&["send", &thread, "while Ben was away"]).await;
    ana.ok(&["thread", "add", &thread, "Ben Brown"]).await;
    ana.ok(&["send", &thread, "after return one"]).await;
    cal.ok(&["send", &thread, "after return two"]).await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.starts_with("Ward 7 rounds"), "{read}");
    assert!(read.contains("Dr. Ana Alvarez: after return one"), "{read}");
    assert!(read.contains("Dr. Cal Chen: after return two"), "{read}");
    assert!(!read.contains("while Ben was away"), "{read}");
    assert!(!read.contains("could not be decrypted"), "{read}");
    // His reply reaches the others.
    ben.ok(&["send", &thread, "glad to be back"]).await;
    assert!(cal.ok(&["read", &thread]).await.contains("glad to be back"));

    // Deactivated, reactivated, removed (from the MLS group too) and added
    // back: he reads again.
    admin
        .client
        .set_user_active(&ben.user_id, false)
        .await
        .unwrap();
    admin
        .client
        .set_user_active(&ben.user_id, true)
        .await
        .unwrap();
    let listed = ben.ok(&["threads"]).await;
    assert!(
        listed.contains("You left 'Ward 7 rounds'") && listed.contains("deactivated"),
        "{listed}"
    );
    ana.ok(&["thread", "remove", &thread, &ben.user_id]).await;
    ana.ok(&["send", &thread, "while Ben was deactivated"])
        .await;
    ana.ok(&["thread", "add", &thread, &ben.user_id]).await;
    ana.ok(&["send", &thread, "second return"]).await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains("Dr. Ana Alvarez: second return"), "{read}");
    assert!(!read.contains("while Ben was deactivated"), "{read}");
    assert!(!read.contains("could not be decrypted"), "{read}");
    assert!(!ben.ok(&["threads"]).await.contains("You left"));

    // He leaves (still in the MLS group: no one has committed his removal)
    // and is added straight back: his old devices go, his device comes in
    // afresh, and he reads again.
    ben.ok(&["thread", "leave", &thread]).await;
    ana.ok(&["send", &thread, "after Ben left"]).await;
    let added = ana.ok(&["thread", "add", &thread, "Ben Brown"]).await;
    assert!(added.starts_with("Added Dr. Ben Brown to"), "{added}");
    ana.ok(&["send", &thread, "third return"]).await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains("Dr. Ana Alvarez: third return"), "{read}");
    assert!(!read.contains("after Ben left"), "{read}");
    assert!(!read.contains("could not be decrypted"), "{read}");
    assert!(cal.ok(&["read", &thread]).await.contains("third return"));
}

/// A clinician removed from one of three threads still runs `watch` and
/// gets the other two live; `threads` shows the removed one as left, with
/// who removed them and when.
async fn removal_from_one_thread_never_stops_watch(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    ben.ok(&["threads"]).await;
    let mut threads = Vec::new();
    for subject in ["First", "Second", "Third"] {
        let thread = created(
            &ana.ok(&["thread", "new", "--with", "Ben Brown", "--subject", subject])
                .await,
        );
        ana.ok(&["send", &thread, &format!("hello in {subject}")])
            .await;
        threads.push(thread);
    }
    // Ben's profile knows all three.
    for thread in &threads {
        ben.ok(&["read", thread]).await;
    }
    ana.ok(&["thread", "remove", &threads[1], "Ben Brown"])
        .await;
    ana.ok(&["send", &threads[1], "not for Ben"]).await;

    let (mut watch, mut lines) = ben.spawn(&["watch"]);
    let said = wait_for_line(&mut lines, "You were removed from 'Second'").await;
    assert!(said.contains("by Dr. Ana Alvarez at"), "{said}");
    ana.ok(&["send", &threads[0], "live in First"]).await;
    let shown = wait_for_line(&mut lines, "live in First").await;
    assert!(shown.starts_with("'First' — ["), "{shown}");
    assert!(shown.contains("Dr. Ana Alvarez: live in First"), "{shown}");
    ana.ok(&["send", &threads[2], "live in Third"]).await;
    wait_for_line(&mut lines, "live in Third").await;
    // A removal while watching is told at once: the commit that removes
    // Ben is pushed to him too.
    ana.ok(&["thread", "remove", &threads[2], "Ben Brown"])
        .await;
    let said = wait_for_line(&mut lines, "You were removed from 'Third'").await;
    assert!(said.contains("by Dr. Ana Alvarez at"), "{said}");
    ana.ok(&["send", &threads[0], "still live in First"]).await;
    wait_for_line(&mut lines, "still live in First").await;
    // Logging out beside it stops it: it does not sign in again behind
    // the clinician's back.
    ben.ok(&["logout"]).await;
    let stopped = wait_for_line(&mut lines, "Stopped watching").await;
    assert!(
        stopped.contains("logged out") || stopped.contains("the session was ended"),
        "{stopped}"
    );
    let status = tokio::task::spawn_blocking(move || watch.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");

    let listed = ben.ok(&["threads"]).await;
    assert!(listed.starts_with("First "), "{listed}");
    assert!(listed.contains("Threads you have left:"), "{listed}");
    assert!(
        listed.contains("You were removed from 'Second' by Dr. Ana Alvarez at"),
        "{listed}"
    );
    assert!(!ben.ok(&["read", &threads[1]]).await.contains("not for Ben"));
}

/// What must never reach a clinician's terminal: library type names and
/// links, and the old one-size-fits-all 404 text.
const INTERNALS: [&str; 12] = [
    "Error(",
    "Mls",
    "sqlx",
    "rustls",
    "docs.rs",
    "GroupAlreadyExists",
    "ProposalValidation",
    "DuplicateSignatureKey",
    "CannotRemoveSelf",
    "EmptyInput",
    "API reference",
    "not_found",
];

/// Each mistake people make gets a message that names what went wrong and
/// says what to do, with no internal type name.
async fn mistakes_are_explained_in_the_users_words(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    let _other_ben = Clinician::enroll(&server, &admin, "Dr. Ben Bright").await;
    let _namesake = Clinician::enroll(&server, &admin, "Dr. Ben Bright").await;
    let gone = Clinician::enroll(&server, &admin, "Dr. Gone Away").await;
    for clinician in [&ben, &cal, &gone] {
        clinician.ok(&["threads"]).await;
    }
    admin
        .client
        .set_user_active(&gone.user_id, false)
        .await
        .unwrap();
    let thread = created(
        &ana.ok(&["thread", "new", "--with", "Ben Brown", "--subject", "Bed 4"])
            .await,
    );
    ben.ok(&["read", &thread]).await;
    ana.ok(&["thread", "remove", &thread, "Ben Brown"]).await;
    let twin = created(
        &ana.ok(&["thread", "new", "--with", "Cal Chen", "--subject", "Bed 4"])
            .await,
    );
    let devices = admin.client.list_devices(&cal.user_id).await.unwrap();
    let device = devices.devices[0].device_id.clone();
    admin
        .client
        .remove_device(&cal.user_id, &device)
        .await
        .unwrap();
    let admin_cli = AdminCli::new(&server, &admin).await;

    let mistyped = "0123456789abcdef0123456789abcdef";
    let cases: Vec<(&str, Vec<&str>, Result<String, curbside_cli::cli::CliError>)> = vec![
        (
            "sending to a thread you were removed from",
            vec![
                "You were removed from 'Bed 4' by Dr. Ana Alvarez at",
                "add you back",
            ],
            ben.run(&["send", &thread, "hello?"]).await,
        ),
        (
            "a mistyped user id",
            vec![
                "no active user has the id",
                mistyped,
                "curbside directory search",
            ],
            ana.run(&["thread", "add", &thread, mistyped]).await,
        ),
        (
            "a name no one has",
            vec![
                "no active user is named \"Nobody Such\"",
                "curbside directory search",
            ],
            ana.run(&["thread", "add", &thread, "Nobody Such"]).await,
        ),
        (
            "part of a name, not a whole one",
            vec![
                "no one is named \"Ben\"",
                "Dr. Ben Brown",
                "Dr. Ben Bright",
                "the whole name, or the user id",
            ],
            ana.run(&["thread", "add", &thread, "Ben"]).await,
        ),
        (
            "a department where a name is expected",
            vec![
                "no one is named \"Cardiology\"",
                "Dr. Cal Chen (Cardiology, ",
                "the whole name, or the user id",
            ],
            ana.run(&["thread", "add", &thread, "Cardiology"]).await,
        ),
        (
            "a name two people have",
            vec![
                "\"Ben Bright\" is the name of several people",
                "Dr. Ben Bright (Cardiology, ",
                "give the user id",
            ],
            ana.run(&["thread", "add", &thread, "Ben Bright"]).await,
        ),
        (
            "a deactivated user in thread new",
            vec![
                "no active user has the id",
                "deactivated",
                "curbside directory search",
            ],
            ana.run(&["thread", "new", "--with", &gone.user_id]).await,
        ),
        (
            "a thread with only yourself",
            vec!["name at least one colleague"],
            ana.run(&["thread", "new", "--with", "Ana Alvarez"]).await,
        ),
        (
            "adding someone already in the thread",
            vec!["Dr. Ana Alvarez is already in this thread"],
            ana.run(&["thread", "add", &thread, "Ana Alvarez"]).await,
        ),
        (
            "removing someone not in the thread",
            vec!["Dr. Cal Chen is not in this thread"],
            ana.run(&["thread", "remove", &thread, "Cal Chen"]).await,
        ),
        (
            "trying to leave by removing yourself",
            vec!["curbside thread leave THREAD", "cannot remove yourself"],
            ana.run(&["thread", "remove", &thread, "Ana Alvarez"]).await,
        ),
        (
            "a subject two threads have",
            vec![
                "several threads go by \"BED 4\"",
                &thread,
                &twin,
                "by its id",
            ],
            ana.run(&["read", "BED 4"]).await,
        ),
        (
            "an unknown thread",
            vec!["no thread \"nonsense\" on this profile", "curbside threads"],
            ana.run(&["read", "nonsense"]).await,
        ),
        (
            "removing a device twice",
            vec![
                "no enrolled device",
                "removed already",
                "curbside admin device list",
            ],
            admin_cli
                .run(&["admin", "device", "remove", &cal.user_id, &device])
                .await,
        ),
        (
            "a name where an administrator expects a user id",
            vec![
                "no active user is named \"Zed Nobody\"",
                "curbside directory search",
            ],
            admin_cli
                .run(&["admin", "user", "code", "Zed Nobody"])
                .await,
        ),
        (
            "a date that is not one",
            vec!["--since", "2026-12-06", "Unix milliseconds"],
            admin_cli
                .run(&["admin", "audit", "search", "--since", "last week"])
                .await,
        ),
    ];
    for (mistake, expected, result) in cases {
        let message = match result {
            Ok(output) => panic!("{mistake}: it worked: {output}"),
            Err(error) => error.to_string(),
        };
        for phrase in expected {
            assert!(
                message.contains(phrase),
                "{mistake}: {message:?} does not say {phrase:?}"
            );
        }
        for internal in INTERNALS {
            assert!(
                !message.contains(internal),
                "{mistake}: {message:?} shows {internal:?}"
            );
        }
    }
}

/// An administrator's `curbside` profile.
struct AdminCli(Clinician);

impl AdminCli {
    async fn new(server: &curbside_tests::TestServer, admin: &crate::people::Person) -> Self {
        Self(Clinician::enroll_as(server, admin, "Dr. Second Admin", Role::Admin, "IT").await)
    }

    async fn run(&self, args: &[&str]) -> Result<String, curbside_cli::cli::CliError> {
        self.0.run(args).await
    }
}

/// `directory search` finds "Łukasz Ørsted" as łukasz, ŁUKASZ and lukasz,
/// and "Zoë" as zoe, on both databases.
async fn search_finds_names_in_every_language(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    for name in ["Łukasz Ørsted", "Zoë Ünal", "Zoltan Kiss"] {
        admin
            .client
            .create_user(&NewUser {
                display_name: name.to_owned(),
                role: Role::Clinician,
                department: "Kardiologie".to_owned(),
                licence_number: None,
                user_name: None,
                external_id: None,
            })
            .await
            .unwrap();
    }
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    for query in ["łukasz", "ŁUKASZ", "lukasz", "orsted", "Ørsted"] {
        let found = ana.ok(&["directory", "search", query]).await;
        assert!(found.contains("Łukasz Ørsted"), "{query}: {found}");
        assert!(!found.contains("Zoë"), "{query}: {found}");
    }
    let found = ana.ok(&["directory", "search", "zoe"]).await;
    assert!(
        found.contains("Zoë Ünal") && !found.contains("Zoltan"),
        "{found}"
    );
    let found = ana.ok(&["directory", "search", "ZOË"]).await;
    assert!(found.contains("Zoë Ünal"), "{found}");
    // And names work where ids do (Łukasz has no device yet: the message
    // names him).
    ana.ok(&["threads"]).await;
    let error = ana
        .run(&["thread", "new", "--with", "lukasz orsted"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("Łukasz Ørsted has no device ready"),
        "{error}"
    );
}

/// `threads` and `thread show` print subjects, names, receipts and times
/// in the local time zone, as ISO 8601 (UTC with --utc).
async fn threads_and_thread_show_read_as_people_read(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    ben.ok(&["threads"]).await;
    let thread = created(
        &ana.ok(&[
            "thread",
            "new",
            "--with",
            "Ben Brown",
            "--subject",
            "Bed 4, chest pain",
        ])
        .await,
    );
    ana.ok(&["send", &thread, "Troponin rising.\nECG attached later."])
        .await;
    ana.ok(&["send", &thread, "Still there?"]).await;
    // Ben reads the first two (so both are read), then a third arrives.
    ben.ok(&["read", &thread]).await;
    ana.ok(&["send", &thread, "Third"]).await;

    let listed = ana.ok(&["threads"]).await;
    assert!(listed.starts_with("Bed 4, chest pain\n"), "{listed}");
    assert!(
        listed.contains("    Dr. Ana Alvarez and Dr. Ben Brown · thread "),
        "{listed}"
    );
    let listed = ben.ok(&["threads"]).await;
    assert!(
        listed.starts_with("Bed 4, chest pain  1 unread"),
        "{listed}"
    );

    let shown = ana
        .ok(&["--utc", "thread", "show", "Bed 4, chest pain"])
        .await;
    assert!(
        shown.starts_with(&format!("Bed 4, chest pain (thread {thread})")),
        "{shown}"
    );
    assert!(
        shown.contains("Members:\n  Dr. Ana Alvarez (you): device \"curbside cli\" "),
        "{shown}"
    );
    assert!(
        shown.contains("  Dr. Ben Brown: device \"curbside cli\" "),
        "{shown}"
    );
    // A message of several lines, as written, in UTC.
    let iso = regex_like_utc(&shown);
    assert!(iso, "{shown}");
    assert!(
        shown.contains("Dr. Ana Alvarez: Troponin rising.\n")
            && shown.contains("ECG attached later."),
        "{shown}"
    );
    assert!(!shown.contains("\\n"), "{shown}");
    // Receipts per message: the first two read, the third delivered only
    // once Ben's device has processed it.
    let lines: Vec<&str> = shown.lines().collect();
    let receipt_of = |text: &str| {
        let at = lines.iter().position(|line| line.contains(text)).unwrap();
        lines[at..]
            .iter()
            .find(|line| line.trim_start().starts_with("delivered to"))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        receipt_of("Still there?"),
        "delivered to Dr. Ben Brown; read by Dr. Ben Brown"
    );
    assert_eq!(receipt_of("Third"), "delivered to no one; read by no one");

    // In a time zone of its own, times carry its offset.
    let (mut child, mut lines) = {
        let mut command = std::process::Command::new(CURBSIDE);
        command
            .args(["--server", &ana.url, "--pin-sha256", &ana.pin, "--home"])
            .arg(ana.home.path())
            .args(["thread", "show", &thread])
            .env("CURBSIDE_PASSPHRASE", PASSPHRASE)
            .env("TZ", "Asia/Kolkata");
        spawn_lines(command)
    };
    let line = wait_for_line(&mut lines, "Still there?").await;
    assert!(
        line.contains("+05:30] Dr. Ana Alvarez: Still there?"),
        "{line}"
    );
    child.wait().unwrap();

    // A member changes the subject: everyone sees the new one, and the
    // history says who changed it.
    let changed = ben
        .ok(&["thread", "subject", &thread, "Bed 5, chest pain"])
        .await;
    assert!(changed.contains("is now 'Bed 5, chest pain'"), "{changed}");
    let read = ana.ok(&["read", &thread]).await;
    assert!(
        read.contains("— Dr. Ben Brown changed the subject to 'Bed 5, chest pain'"),
        "{read}"
    );
    let listed = ana.ok(&["threads"]).await;
    assert!(listed.starts_with("Bed 5, chest pain\n"), "{listed}");
    // The new subject names the thread, whatever its case.
    let shown = ana.ok(&["thread", "show", "bed 5, CHEST pain"]).await;
    assert!(shown.starts_with("Bed 5, chest pain (thread "), "{shown}");
    assert!(
        ana.run(&["thread", "subject", &thread, "  "])
            .await
            .unwrap_err()
            .to_string()
            .contains("the subject is empty")
    );
}

/// Whether `text` has a time like `[2026-12-06T14:02:11Z]`.
fn regex_like_utc(text: &str) -> bool {
    text.split('[').skip(1).any(|part| {
        let stamp: String = part.chars().take_while(|c| *c != ']').collect();
        stamp.len() == 20
            && stamp.ends_with('Z')
            && stamp.as_bytes()[10] == b'T'
            && stamp[..4].bytes().all(|b| b.is_ascii_digit())
    })
}

/// Runs `command`, its output read line by line.
fn spawn_lines(
    mut command: std::process::Command,
) -> (
    std::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use std::io::BufRead;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    (child, receiver)
}

/// `watch` with 60-second tokens keeps printing messages for five minutes,
/// and through a restart of the server: it signs in again and reconnects
/// by itself.
async fn watch_outlives_tokens_and_server_restarts(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.token_lifetime = Duration::from_secs(60);
    let server = env.start_with(config.clone(), axum::Router::new()).await;
    let address = server.address;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    ben.ok(&["threads"]).await;
    let thread = created(&ana.ok(&["thread", "new", "--with", "Ben Brown"]).await);
    let (mut watch, mut lines) = ben.spawn(&["watch"]);
    ana.ok(&["send", &thread, "message 0"]).await;
    wait_for_line(&mut lines, "message 0").await;

    let started = std::time::Instant::now();
    let mut server = Some(server);
    let mut restarted = false;
    let mut n = 1;
    while started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(15)).await;
        if !restarted && started.elapsed() > Duration::from_secs(150) {
            restarted = true;
            if let Some(running) = server.take() {
                running.stop().await;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            server = Some(
                env.start_on(config.clone(), axum::Router::new(), address)
                    .await,
            );
        }
        let text = format!("message {n}");
        ana.ok(&["send", &thread, &text]).await;
        wait_for_line(&mut lines, &text).await;
        n += 1;
    }
    assert!(n >= 19, "only {n} messages in five minutes");
    assert!(
        matches!(watch.try_wait(), Ok(None)),
        "watch stopped: {:?}",
        watch.try_wait()
    );
    watch.kill().unwrap();
    watch.wait().unwrap();
    if let Some(server) = server {
        server.stop().await;
    }
}

/// `curbside` on `clinician`'s profile as a process, with no passphrase in
/// its environment and `stdin` (if any) as its standard input: whether it
/// succeeded, and what it printed.
async fn run_locked(
    clinician: &Clinician,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut command = std::process::Command::new(CURBSIDE);
    command
        .args([
            "--server",
            &clinician.url,
            "--pin-sha256",
            &clinician.pin,
            "--home",
        ])
        .arg(clinician.home.path())
        .args(args)
        .env_remove("CURBSIDE_PASSPHRASE")
        .env("CURBSIDE_UNLOCK_MINUTES", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let stdin = stdin.map(str::to_owned);
    // The server runs on this test's thread: wait for the process elsewhere.
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        command.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        let mut child = command.spawn().unwrap();
        if let Some(text) = stdin {
            let mut input = child.stdin.take().unwrap();
            input.write_all(format!("{text}\n").as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The passphrase is asked for once per working session: after `unlock`
/// (or any command that asked for it), the profile's commands need none
/// until `lock`, `logout` or the idle time.
async fn the_passphrase_is_asked_once_per_working_session(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;

    let (ok, _, said) = run_locked(&ana, &["whoami"], None).await;
    assert!(!ok && said.contains("passphrase"), "{said}");
    let (ok, _, said) = run_locked(&ana, &["unlock"], Some("not the passphrase")).await;
    assert!(!ok && said.contains("passphrase"), "{said}");

    let (ok, out, said) = run_locked(&ana, &["unlock"], Some(PASSPHRASE)).await;
    assert!(ok, "{said}");
    assert!(out.contains("is unlocked for 2 minutes"), "{out}");
    for command in [&["whoami"][..], &["threads"][..]] {
        let (ok, out, said) = run_locked(&ana, command, None).await;
        assert!(ok, "{command:?}: {said}");
        if command == ["whoami"] {
            assert!(out.contains("Dr. Ana Alvarez"), "{out}");
        }
    }
    let (ok, out, _) = run_locked(&ana, &["lock"], None).await;
    assert!(ok && out.contains("is locked"), "{out}");
    let (ok, _, said) = run_locked(&ana, &["whoami"], None).await;
    assert!(!ok && said.contains("passphrase"), "{said}");
    // Nothing of it is left in the profile's directory.
    let profile = ana.home.path().join("profiles/default");
    let leftovers: Vec<String> = std::fs::read_dir(&profile)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("agent"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A new code revokes the user's older ones unless told otherwise;
/// outstanding codes are listed (never shown again) and revoked; the CLI
/// prints the whole enroll command.
async fn enrollment_codes_are_listed_revoked_and_replaced(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let admin_cli = AdminCli::new(&server, &admin).await;
    let user = admin
        .client
        .create_user(&NewUser {
            display_name: "Dr. New Hire".to_owned(),
            role: Role::Clinician,
            department: "Oncology".to_owned(),
            licence_number: None,
            user_name: None,
            external_id: None,
        })
        .await
        .unwrap();
    let first = admin
        .client
        .issue_enrollment_code(&user.user_id)
        .await
        .unwrap();
    // By name, printing the enroll command in full.
    let issued = admin_cli
        .run(&["admin", "user", "code", "new hire"])
        .await
        .unwrap();
    assert!(
        issued.contains("One-time enrollment code for Dr. New Hire"),
        "{issued}"
    );
    assert!(
        issued.contains("Their older code no longer works."),
        "{issued}"
    );
    let command = format!(
        "curbside --server {} --pin-sha256 {} --profile NAME enroll --code ",
        server.url, server.fingerprint
    );
    assert!(issued.contains(&command), "{issued}");
    let second = issued.lines().nth(1).unwrap().trim().to_owned();
    let kept = admin
        .client
        .issue_enrollment_code_keeping(&user.user_id, true)
        .await
        .unwrap();
    assert_eq!(kept.revoked, 0);
    let listed = admin_cli
        .run(&["admin", "user", "codes", &user.user_id])
        .await
        .unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains(&kept.code_id), "{listed}");
    assert!(!listed.contains(&first.code_id), "{listed}");
    assert!(
        !listed.contains(&kept.code),
        "a listed code shows the code: {listed}"
    );
    admin_cli
        .run(&[
            "admin",
            "user",
            "revoke-code",
            "Dr. New Hire",
            &kept.code_id,
        ])
        .await
        .unwrap();
    let error = admin_cli
        .run(&[
            "admin",
            "user",
            "revoke-code",
            "Dr. New Hire",
            &kept.code_id,
        ])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no outstanding enrollment code"), "{error}");

    // The replaced and the revoked codes are refused, saying so; the
    // newest enrolls.
    let stranger = admin.anonymous(&server);
    for withdrawn in [&first.code, &kept.code] {
        let refused = stranger
            .enroll(&curbside_proto::identity::EnrollRequest {
                code: withdrawn.clone(),
                device_name: "phone".to_owned(),
                public_key: vec![9; 32],
                display_name: None,
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("withdrawn"), "{refused}");
    }
    let hired = crate::people::enroll_with(stranger, &second, None).await;
    assert_eq!(hired.user.user_id, user.user_id);
}
