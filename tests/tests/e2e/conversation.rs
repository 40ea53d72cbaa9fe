//! The `curbside` commands clinicians use for threads, each run as its own
//! command on its own profile (the MLS state lives in the encrypted store
//! between runs): create, send, read, add, remove, safety numbers.

use clap::Parser;
use curbside_cli::cli::{Cli, CliError, run};
use curbside_proto::identity::Role;
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};

use crate::people::{Person, first_admin};

backend_tests!(
    clinicians_talk_through_the_cli,
    commands_on_one_profile_take_turns,
);

/// The real `curbside` binary.
pub const CURBSIDE: &str = env!("CARGO_BIN_EXE_curbside-under-test");
pub const PASSPHRASE: &str = "correct horse battery";

/// One clinician's `curbside` profile.
pub struct Clinician {
    pub url: String,
    pub pin: String,
    pub home: tempfile::TempDir,
    pub user_id: String,
}

impl Clinician {
    pub async fn enroll(server: &TestServer, admin: &Person, name: &str) -> Self {
        Self::enroll_as(server, admin, name, Role::Clinician, "Cardiology").await
    }

    /// A new user with this role and department, whose device enrolls
    /// through the CLI.
    pub async fn enroll_as(
        server: &TestServer,
        admin: &Person,
        name: &str,
        role: Role,
        department: &str,
    ) -> Self {
        let pin = server.fingerprint.to_string();
        Self::enroll_at(&server.url, &pin, admin, name, role, department).await
    }

    /// [`Clinician::enroll_as`] on the server at `url` with this
    /// certificate pin (a server process of its own, say).
    pub async fn enroll_at(
        url: &str,
        pin: &str,
        admin: &Person,
        name: &str,
        role: Role,
        department: &str,
    ) -> Self {
        let user = admin
            .client
            .create_user(&curbside_proto::identity::NewUser {
                display_name: name.to_owned(),
                role,
                department: department.to_owned(),
                licence_number: None,
                user_name: None,
                external_id: None,
            })
            .await
            .unwrap();
        let code = admin
            .client
            .issue_enrollment_code(&user.user_id)
            .await
            .unwrap();
        let clinician = Self {
            url: url.to_owned(),
            pin: pin.to_owned(),
            home: tempfile::tempdir().unwrap(),
            user_id: user.user_id,
        };
        clinician
            .run(&["enroll", "--code", &code.code])
            .await
            .unwrap();
        clinician
    }

    pub async fn run(&self, args: &[&str]) -> Result<String, CliError> {
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
        let mut cli = Cli::parse_from(argv);
        cli.passphrase = Some(PASSPHRASE.to_owned());
        run(cli).await
    }

    /// Runs `curbside ARGS` on this profile as a process of its own, its
    /// standard output read line by line into the returned channel.
    pub fn spawn(
        &self,
        args: &[&str],
    ) -> (
        std::process::Child,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        use std::io::BufRead;
        let mut child = std::process::Command::new(CURBSIDE)
            .args(["--server", &self.url, "--pin-sha256", &self.pin, "--home"])
            .arg(self.home.path())
            .args(args)
            .env("CURBSIDE_PASSPHRASE", PASSPHRASE)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        (child, received)
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(output) => output,
            Err(error) => panic!("curbside {args:?} failed: {error}"),
        }
    }
}

/// The thread id in `thread new`'s output.
pub fn created(output: &str) -> String {
    output
        .strip_prefix("Created thread ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("not a new thread: {output}"))
        .to_owned()
}

async fn clinicians_talk_through_the_cli(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    // Any first command publishes the device's key packages.
    assert!(ben.ok(&["threads"]).await.starts_with("No threads yet"));
    assert!(cal.ok(&["threads"]).await.starts_with("No threads yet"));

    let made = ana
        .ok(&["thread", "new", "--with", "Ben Brown", "--subject", "Bed 4"])
        .await;
    assert!(made.ends_with("with Dr. Ben Brown"), "{made}");
    let thread = created(&made);
    ana.ok(&["send", &thread, "MARKER-cli-4471: troponin rising"])
        .await;

    let read = ben.ok(&["read", &thread]).await;
    assert!(read.starts_with("Bed 4\n"), "{read}");
    assert!(
        read.contains("Dr. Ana Alvarez: MARKER-cli-4471: troponin rising"),
        "{read}"
    );
    ben.ok(&["send", &thread, "on my way"]).await;
    let read = ana.ok(&["read", &thread]).await;
    assert!(read.contains("Dr. Ben Brown: on my way"), "{read}");
    // Ana's own messages are in her history too, in order.
    let lines: Vec<&str> = read.lines().collect();
    assert_eq!(lines.len(), 3, "{read}");
    assert!(lines[2].contains("on my way"));

    // Cal joins and reads only what follows, under the subject.
    assert!(
        ana.ok(&["thread", "add", &thread, &cal.user_id])
            .await
            .starts_with("Added Dr. Cal Chen to 'Bed 4'")
    );
    let read = cal.ok(&["read", &thread]).await;
    assert_eq!(read, "Bed 4\nNo messages yet.");
    ana.ok(&["send", &thread, "welcome Cal"]).await;
    let read = cal.ok(&["read", &thread]).await;
    assert!(
        read.contains("welcome Cal") && !read.contains("troponin"),
        "{read}"
    );
    // The others see the change, with names.
    let read = ben.ok(&["read", &thread]).await;
    assert!(
        read.contains("— Dr. Ana Alvarez added Dr. Cal Chen"),
        "{read}"
    );
    // Cal watches: messages show up as they are sent.
    let (watched, ()) = tokio::join!(
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            cal.run(&["watch", "--count", "2"])
        ),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            ana.ok(&["send", &thread, "live one"]).await;
            ana.ok(&["send", &thread, "live two"]).await;
        }
    );
    assert_eq!(
        watched.expect("watch saw both messages").unwrap(),
        "Stopped watching after 2 messages."
    );
    let read = cal.ok(&["read", &thread]).await;
    assert!(
        read.contains("live one") && read.contains("live two"),
        "{read}"
    );
    // Reading sent delivery receipts: the server records how far Cal's
    // device has processed the thread.
    assert!(delivered(&env, &thread, &cal.user_id).await >= 8);
    let listed = ben.ok(&["threads"]).await;
    assert!(listed.contains("Bed 4  2 unread"), "{listed}");
    assert!(
        listed.contains("Dr. Ana Alvarez, Dr. Ben Brown and Dr. Cal Chen"),
        "{listed}"
    );

    // Ana removes Ben: he can no longer read the thread, and is told why.
    assert!(
        ana.ok(&["thread", "remove", &thread, "Ben Brown"])
            .await
            .starts_with("Removed Dr. Ben Brown from 'Bed 4'")
    );
    ana.ok(&["send", &thread, "after Ben"]).await;
    assert!(cal.ok(&["read", &thread]).await.contains("after Ben"));
    let read = ben.ok(&["read", &thread]).await;
    assert!(!read.contains("after Ben"), "{read}");
    assert!(
        read.contains("You were removed from 'Bed 4' by Dr. Ana Alvarez at"),
        "{read}"
    );
    let error = ben.run(&["send", &thread, "hello?"]).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("You were removed from 'Bed 4' by Dr. Ana Alvarez at"),
        "{error}"
    );

    // Both sides compute the same safety number.
    let number = |output: String| output.lines().nth(1).unwrap().trim().to_owned();
    assert_eq!(
        number(ana.ok(&["safety-number", &cal.user_id]).await),
        number(cal.ok(&["safety-number", "Ana Alvarez"]).await)
    );

    // Bad input is refused with a clear error.
    let error = ana.run(&["send", &thread, "  "]).await.unwrap_err();
    assert!(error.to_string().contains("empty"), "{error}");
    let error = ana
        .run(&["thread", "new", "--with", "Nobody Such"])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no active user is named"),
        "{error}"
    );

    // The server never saw the text, and its audit log names the thread.
    assert_eq!(
        crate::mls::marker_in_storage_of(&env, backend, "MARKER-cli-4471").await,
        0
    );
    let page = admin
        .client
        .audit_search(&curbside_proto::audit_review::SearchQuery {
            resource: Some(thread.clone()),
            action: Some("thread.message.send".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    // The subject, twice (at the start, and to Cal with the add), and six
    // messages.
    assert_eq!(page.entries.len(), 8);
}

/// The delivery receipt the server holds for `user_id`'s device in
/// `thread`, read behind its back.
async fn delivered(env: &TestEnv, thread: &str, user_id: &str) -> i64 {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let seq: i64 = sqlx::query_scalar(
        "SELECT MAX(delivered_seq) FROM thread_member WHERE thread_id = $1 AND user_id = $2",
    )
    .bind(thread)
    .bind(user_id)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    seq
}

/// `watch` runs on Ana's profile in a process of its own while she sends
/// and adds members on the same profile: the commands take turns, so every
/// message marked sent is decrypted by its recipients, and the profile can
/// still send and read afterwards. (Without the profile's lock, 5 of 6
/// messages sent beside a `watch` could not be decrypted, and `thread add`
/// during `watch` left the profile unable to send in that thread again.)
async fn commands_on_one_profile_take_turns(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let cal = Clinician::enroll(&server, &admin, "Dr. Cal Chen").await;
    ben.ok(&["threads"]).await;
    cal.ok(&["threads"]).await;
    let thread = created(&ana.ok(&["thread", "new", "--with", &ben.user_id]).await);

    let (mut watch, mut watched) = ana.spawn(&["watch"]);
    // Once watch shows Ben's first message, it is up.
    ben.ok(&["send", &thread, "from ben, first"]).await;
    let shown = wait_for_line(&mut watched, "from ben, first").await;
    assert!(shown.contains("Dr. Ben Brown"), "{shown}");

    // Twenty rounds: Ben's message makes Ana's watch process the thread and
    // save while Ana sends on the same profile.
    for round in 0..20 {
        let (from_ana, from_ben) = (format!("from ana {round}"), format!("from ben {round}"));
        let (ana_args, ben_args) = (["send", &thread, &from_ana], ["send", &thread, &from_ben]);
        let (ana_sent, ben_sent) = tokio::join!(ana.run(&ana_args), ben.run(&ben_args));
        assert!(ana_sent.unwrap().starts_with("Sent"));
        assert!(ben_sent.unwrap().starts_with("Sent"));
    }
    let read = ben.ok(&["read", &thread]).await;
    assert!(!read.contains("could not be decrypted"), "{read}");
    for round in 0..20 {
        assert!(read.contains(&format!("from ana {round}")), "{read}");
    }
    let read = ana.ok(&["read", &thread]).await;
    assert!(!read.contains("could not be decrypted"), "{read}");
    for round in 0..20 {
        assert!(read.contains(&format!("from ben {round}")), "{read}");
    }

    // Ana adds Cal while her watch handles Ben's message.
    let add = ["thread", "add", &thread, &cal.user_id];
    let send = ["send", &thread, "while Cal joins"];
    let (added, sent) = tokio::join!(ana.run(&add), ben.run(&send));
    assert!(added.unwrap().starts_with("Added"));
    assert!(sent.unwrap().starts_with("Sent"));
    // Ana's profile still sends in that thread, and everyone reads it.
    for round in 0..3 {
        let (from_ana, from_ben) = (
            format!("after the add {round}"),
            format!("ben after the add {round}"),
        );
        let (ana_args, ben_args) = (["send", &thread, &from_ana], ["send", &thread, &from_ben]);
        let (ana_sent, ben_sent) = tokio::join!(ana.run(&ana_args), ben.run(&ben_args));
        assert!(ana_sent.unwrap().starts_with("Sent"));
        assert!(ben_sent.unwrap().starts_with("Sent"));
    }
    for reader in [&ben, &cal] {
        let read = reader.ok(&["read", &thread]).await;
        assert!(!read.contains("could not be decrypted"), "{read}");
        for round in 0..3 {
            assert!(read.contains(&format!("after the add {round}")), "{read}");
        }
    }
    let read = ana.ok(&["read", &thread]).await;
    assert!(!read.contains("could not be decrypted"), "{read}");
    assert!(read.contains("ben after the add 2"), "{read}");
    // And the watch saw Ben's messages all along.
    wait_for_line(&mut watched, "ben after the add 2").await;
    watch.kill().unwrap();
    watch.wait().unwrap();
}

/// Waits (up to 30 s) for a line containing `text`; returns it.
pub async fn wait_for_line(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    text: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) if line.contains(text) => return line,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the command ended before printing {text:?}"),
            Err(_) => panic!("no line with {text:?} within 30 s"),
        }
    }
}
