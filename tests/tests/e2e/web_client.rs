//! The clinicians' web app in a real browser, with MLS (ts-mls) in the
//! page, in one thread with colleagues on the OpenMLS-based CLI: Debian's
//! Chromium driven through `web/tests/client.mjs` (see [`crate::browser`]),
//! against the real server binary over TLS with a certificate from a test
//! CA the browser trusts, its log written at every level.
//!
//! Dr. Ana Alvarez enrolls the browser, starts a thread with Dr. Ben Brown
//! and writes a random marker; Ben reads it and answers from the CLI, and
//! the answer reaches the open page live; Ana adds Dr. Cal Chen (CLI), who
//! reads what follows, and removes him, after which he cannot read what
//! she writes. The marker is in no database file or row and no log line,
//! only in Ben's output; the page, reloaded and signed in again, shows the
//! history from its encrypted store (and what Ben wrote meanwhile, counted
//! unread), whose raw IndexedDB and files hold neither the marker nor the
//! answer, until signing out with "erase" deletes it; both sides show one
//! safety number. Ben's own thread with her (OpenMLS's welcome, and his
//! commits adding and removing Cal) reads in the browser, which answers.
//! Files cross both ways: a picture she attaches in the browser (previewed
//! there) is the same bytes when Ben downloads it with the CLI, and a file
//! he sends from the CLI (several STREAM chunks) is the same bytes when
//! her browser downloads it. In a thread of its own she sets messages to
//! disappear after 30 seconds, and an older one goes from her page; Ben
//! turns that off from the CLI and her page shows it live. She starts a
//! thread with an on-call role (an administrator made it through the API,
//! with Ben on shift now): a role nobody holds is refused in words, the
//! one he holds brings him in, and he reads it on the CLI. Her urgent
//! message there is marked so in the browser; he acknowledges it from the
//! CLI, and her page shows his acknowledgement live. A phone Ben enrolls
//! is added to his threads by her page, with no command of his, and
//! taken out by it once an administrator removed it.

use std::path::Path;

use curbside_proto::clinical::{NewRole, NewShift};
use curbside_proto::identity::{NewUser, Role};
use curbside_tests::{Backend, ServerProcess, TestEnv, backend_tests};

use crate::browser::Browser;
use crate::conversation::Clinician;

backend_tests!(a_clinician_in_the_browser_talks_with_colleagues_on_the_cli);

const SERVER: &str = env!("CARGO_BIN_EXE_curbside-server-under-test");
const BROWSER_PASSPHRASE: &str = "ward 7 night shift keys";

/// How many times `needle` occurs in the files under `dir`.
fn occurrences_under(dir: &Path, needle: &[u8]) -> usize {
    let mut found = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found += occurrences_under(&path, needle);
        } else if let Ok(bytes) = std::fs::read(&path) {
            found += bytes
                .windows(needle.len())
                .filter(|window| *window == needle)
                .count();
        }
    }
    found
}

async fn a_clinician_in_the_browser_talks_with_colleagues_on_the_cli(backend: Backend) {
    let Some(chromium) =
        crate::browser::chromium_for("a_clinician_in_the_browser_talks_with_colleagues_on_the_cli")
    else {
        return;
    };
    let env = TestEnv::new(backend).await;
    let files = tempfile::tempdir().unwrap();
    let ca = crate::certificates::write_ca_and_leaf(files.path(), "curbside-test-ca");
    let (cert, key) = (files.path().join("leaf.pem"), files.path().join("leaf.key"));
    let log = files.path().join("server.log");
    let server = ServerProcess::start_logging(
        &env,
        SERVER,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        true,
        Some(&log),
    );
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let pin = server.fingerprint.to_string();

    let mut admin = crate::people::enroll_with(
        server.client(),
        server.first_admin_code.as_deref().unwrap(),
        Some("Dr. First Admin"),
    )
    .await;
    admin.login().await;
    let ana = admin
        .client
        .create_user(&NewUser {
            display_name: "Dr. Ana Alvarez".to_owned(),
            role: Role::Clinician,
            department: "Emergency".to_owned(),
            licence_number: None,
            user_name: None,
            external_id: None,
        })
        .await
        .unwrap();
    let code = admin
        .client
        .issue_enrollment_code(&ana.user_id)
        .await
        .unwrap()
        .code;
    let enroll = |name: &'static str| {
        Clinician::enroll_at(
            &server.url,
            &pin,
            &admin,
            name,
            Role::Clinician,
            "Cardiology",
        )
    };
    let ben = enroll("Dr. Ben Brown").await;
    let cal = enroll("Dr. Cal Chen").await;
    // Their devices publish key packages.
    ben.ok(&["threads"]).await;
    cal.ok(&["threads"]).await;

    // An on-call role Ben holds from a minute ago for an hour, and one
    // nobody holds.
    let role_name = "Cardiology on-call";
    let empty_role = "Night registrar";
    let role = admin
        .client
        .create_role(&NewRole {
            name: role_name.to_owned(),
            department: "Cardiology".to_owned(),
        })
        .await
        .unwrap();
    let now = curbside_cli::clock::now_ms();
    let shift = admin
        .client
        .assign_shift(
            &role.role_id,
            &NewShift {
                user_id: ben.user_id.clone(),
                starts_at_ms: now - 60_000,
                ends_at_ms: now + 3_600_000,
                timezone: "UTC".to_owned(),
            },
        )
        .await
        .unwrap();
    assert_eq!(shift.user_id, ben.user_id);
    admin
        .client
        .create_role(&NewRole {
            name: empty_role.to_owned(),
            department: "Cardiology".to_owned(),
        })
        .await
        .unwrap();

    let unique = format!("{:x}{:x}", std::process::id(), rand_u64());
    let marker = format!("MARKER-web-{unique}");
    let reply = format!("REPLY-cli-{unique}");
    let after = format!("AFTER-removal-{unique}");
    let to_recall = format!("TO-RECALL-{unique}");
    let with_picture = format!("WITH-picture-{unique}");
    let ben_file_text = format!("BEN-file-{unique}");
    let ephemeral = format!("EPHEMERAL-{unique}");
    let urgent = format!("URGENT-web-{unique}");
    // More than two chunks of the STREAM encryption (65,536 bytes each).
    let ben_file_name = "potassium-trend.bin";
    let ben_file_bytes: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    let ben_file = files.path().join(ben_file_name);
    std::fs::write(&ben_file, &ben_file_bytes).unwrap();
    let ben_file_sha256 = sha256_hex(&ben_file_bytes);
    let subject = "Bed 4, chest pain";
    let role_subject = "Bed 7, on-call review";
    let screenshots = match std::env::var("CURBSIDE_UPDATE_SCREENSHOTS") {
        Ok(_) if backend == Backend::Sqlite => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/client")
        }
        _ => files.path().join("screenshots"),
    };
    std::fs::create_dir_all(&screenshots).unwrap();
    let vars = [
        ("CODE", code.as_str()),
        ("PASSPHRASE", BROWSER_PASSPHRASE),
        ("SUBJECT", subject),
        ("MARKER", marker.as_str()),
        ("COLLEAGUE", "Dr. Ben Brown"),
        ("THIRD", "Dr. Cal Chen"),
        ("REPLY", reply.as_str()),
        ("AFTER_REMOVAL", after.as_str()),
        ("TO_RECALL", to_recall.as_str()),
        ("WITH_PICTURE", with_picture.as_str()),
        ("BEN_FILE_NAME", ben_file_name),
        ("BEN_FILE_TEXT", ben_file_text.as_str()),
        ("BEN_FILE_SHA256", ben_file_sha256.as_str()),
        ("SHORT_SUBJECT", "Bed 12, short stay"),
        ("EPHEMERAL", ephemeral.as_str()),
        ("ROLE_SUBJECT", role_subject),
        ("ROLE_NAME", role_name),
        ("EMPTY_ROLE", empty_role),
        ("URGENT", urgent.as_str()),
        ("OUT_DIR", files.path().to_str().unwrap()),
        ("SCREENSHOT_DIR", screenshots.to_str().unwrap()),
    ];
    let browser = Browser::new(
        chromium,
        "client.mjs",
        &ca,
        format!("https://localhost:{port}/"),
    );

    // Ana starts the thread in the browser; Ben reads her marker and
    // answers from the CLI while her page stays open.
    let mut talk = browser.steps("talk", &vars);
    let sent = talk.reached("sent").await;
    let thread = sent["thread_id"].as_str().unwrap().to_owned();
    let read = ben.ok(&["read", &thread]).await;
    assert!(
        read.contains(&marker) && read.contains("Dr. Ana Alvarez"),
        "{read}"
    );
    assert!(ben.ok(&["threads"]).await.contains(subject));
    ben.ok(&["send", &thread, &reply]).await;
    talk.next().await;

    // Cal, added from the browser, reads what follows.
    talk.reached("added").await;
    let read = cal.ok(&["read", &thread]).await;
    assert!(read.contains("Welcome, Dr. Cal Chen"), "{read}");
    assert!(
        !read.contains(&marker),
        "Cal reads nothing from before he joined: {read}"
    );
    talk.next().await;

    // Removed from the browser, he cannot read what she writes next.
    talk.reached("removed").await;
    let shown = match cal.run(&["read", &thread]).await {
        Ok(output) => output,
        Err(error) => error.to_string(),
    };
    assert!(shown.contains("removed"), "{shown}");
    assert!(!shown.contains(&after), "{shown}");
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains(&after), "{read}");
    talk.next().await;

    // What she recalls in the browser is gone for Ben too.
    talk.reached("recalled").await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(!read.contains(&to_recall), "{read}");
    assert!(
        read.contains("Dr. Ana Alvarez recalled this message"),
        "{read}"
    );
    talk.next().await;

    // The picture she attached in the browser: Ben's CLI lists it under
    // her line, downloads and decrypts it, and has the very bytes.
    let attached = talk.reached("attached").await;
    let read = ben.ok(&["read", &thread]).await;
    assert!(read.contains(&with_picture), "{read}");
    let listed = read
        .lines()
        .find_map(|line| {
            let rest = line.trim_start().strip_prefix("[attachment ")?;
            let (id, after) = rest.split_once("] ")?;
            after
                .starts_with("ecg-strip.png (image/png, ")
                .then(|| id.to_owned())
        })
        .unwrap_or_else(|| panic!("the picture is not listed: {read}"));
    let fetched = files.path().join("from-ana.png");
    ben.ok(&[
        "download",
        &thread,
        &listed,
        "--out",
        fetched.to_str().unwrap(),
    ])
    .await;
    let fetched = std::fs::read(&fetched).unwrap();
    assert_eq!(
        fetched,
        std::fs::read(files.path().join("ecg-strip.png")).unwrap()
    );
    assert_eq!(attached["sha256"], sha256_hex(&fetched), "{attached}");
    // And a file of his, from the CLI, which her browser downloads.
    ben.ok(&[
        "send",
        &thread,
        "--file",
        ben_file.to_str().unwrap(),
        &ben_file_text,
    ])
    .await;
    talk.next().await;

    // In a thread of its own she sets messages to disappear after 30
    // seconds (and sees an older one go); Ben turns it off from the CLI.
    let short = talk.reached("lifespan").await;
    let short = short["thread_id"].as_str().unwrap().to_owned();
    ben.ok(&["read", &short]).await;
    ben.ok(&["lifespan", &short, "off"]).await;
    talk.next().await;

    // The thread she started with the role Ben holds: he is in it and
    // reads her urgent message, and acknowledges it from the CLI; her page
    // shows it.
    let sent_urgent = talk.reached("urgent").await;
    let role_thread = sent_urgent["thread_id"].as_str().unwrap().to_owned();
    let read = ben.ok(&["read", &role_thread]).await;
    assert!(
        read.contains(role_subject) && read.contains(&urgent),
        "{read}"
    );
    ben.ok(&["ack", &role_thread]).await;
    // Ben enrolls a phone. With no command on any of his profiles since,
    // Ana's page adds it to the threads he is in (the page looks at what
    // the server asks every 10 s); once an administrator removed it, her
    // page takes it out again.
    let phone = crate::clinical::second_device(&admin, &ben).await;
    let phone_device = crate::clinical::stored(&phone).device_id.clone();
    let adder = crate::clinical::commit_naming(&env, &role_thread, "added", &phone_device).await;
    assert_eq!(adder, ana.user_id, "the browser added Ben's phone");
    let read = phone.ok(&["read", &role_thread]).await;
    assert!(read.contains(role_subject), "{read}");
    admin
        .client
        .remove_device(&ben.user_id, &phone_device)
        .await
        .unwrap();
    let remover =
        crate::clinical::commit_naming(&env, &role_thread, "removed", &phone_device).await;
    assert_eq!(remover, ana.user_id, "the browser removed Ben's phone");
    talk.next().await;
    let talked = talk.finished().await;
    assert_eq!(talked["role_thread_id"], role_thread.as_str(), "{talked}");
    assert_eq!(talked["downloaded"]["sha256"], ben_file_sha256, "{talked}");
    assert_eq!(talked["downloaded"]["name"], ben_file_name, "{talked}");
    // The browser is closed: what it keeps on disk holds no message in
    // the clear, though the scan does see what it keeps in the clear (the
    // user's id, in the enrollment and the vault's owner).
    assert!(occurrences_under(browser.profile.path(), ana.user_id.as_bytes()) > 0);
    assert_eq!(
        occurrences_under(browser.profile.path(), marker.as_bytes()),
        0
    );
    assert_eq!(
        occurrences_under(browser.profile.path(), reply.as_bytes()),
        0
    );
    assert_eq!(
        occurrences_under(browser.profile.path(), with_picture.as_bytes()),
        0
    );
    assert_eq!(
        occurrences_under(browser.profile.path(), urgent.as_bytes()),
        0
    );

    // One safety number on both sides.
    let number = ben.ok(&["safety-number", "Dr. Ana Alvarez"]).await;
    assert_eq!(
        number.lines().nth(1).unwrap().trim(),
        talked["safety_number"].as_str().unwrap(),
        "{number}"
    );

    // While the browser is closed, Ben writes again. Signed in again, the
    // page catches up (one unread), has the history from its encrypted
    // store, and nothing it stores holds a message in the clear.
    let away = format!("AWAY-cli-{unique}");
    ben.ok(&["send", &thread, &away]).await;
    // And Ben starts a thread of his own with her (OpenMLS's welcome),
    // adds Cal and removes him again (OpenMLS's commits), with a message
    // from each of them between.
    let second_subject = "Bed 9, night review";
    let created = ben
        .ok(&[
            "thread",
            "new",
            "--with",
            "Dr. Ana Alvarez",
            "--subject",
            second_subject,
        ])
        .await;
    let second = crate::conversation::created(&created);
    let from_ben = format!("FROM-ben-{unique}");
    let from_cal = format!("FROM-cal-{unique}");
    let to_ben = format!("TO-ben-{unique}");
    ben.ok(&["send", &second, &from_ben]).await;
    ben.ok(&["thread", "add", &second, "Dr. Cal Chen"]).await;
    cal.ok(&["send", &second, &from_cal]).await;
    ben.ok(&["thread", "remove", &second, "Dr. Cal Chen"]).await;
    let mut vars = vars.to_vec();
    vars.extend([
        ("AWAY", away.as_str()),
        ("SECOND_SUBJECT", second_subject),
        ("FROM_BEN", from_ben.as_str()),
        ("FROM_CAL", from_cal.as_str()),
        ("TO_BEN", to_ben.as_str()),
    ]);
    let reloaded = browser.phase("reload", &vars).await;
    let read = ben.ok(&["read", &second]).await;
    assert!(read.contains(&to_ben), "{read}");
    assert_eq!(
        reloaded["history"].as_array().unwrap().len(),
        3,
        "{reloaded}"
    );
    assert_eq!(reloaded["marker_in_indexeddb"], false, "{reloaded}");
    assert!(reloaded["records"].as_u64().unwrap() >= 3, "{reloaded}");
    // Asked to, signing out erased the messages this browser kept.
    let databases = reloaded["databases_after_erase"].as_array().unwrap();
    assert!(
        !databases.iter().any(|name| name == "curbside-clinician"),
        "{reloaded}"
    );

    // The server never held the marker in the clear, nor logged it.
    drop(server);
    assert_eq!(
        crate::mls::marker_in_storage_of(&env, backend, &marker).await,
        0
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("/v1/events/ticket"), "the log is there");
    assert!(!logged.contains(&marker));
    for page in [
        "enroll",
        "protect",
        "new-thread",
        "conversation",
        "safety-number",
        "threads",
        "unlock",
        "lifespan",
        "urgent",
    ] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "{page}");
    }
}

/// SHA-256 in lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// 64 random bits, for markers no run shares.
fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    u64::from_le_bytes(bytes)
}
