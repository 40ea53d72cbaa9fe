//! A scriptable CLI: every command answers one JSON value with `--output
//! json` (times in RFC 3339), and the process's exit status says what kind
//! of failure it was: usage 2, network or TLS 3, refused 4, verification 5.

use curbside_proto::identity::Role;
use curbside_tests::{Backend, TestEnv, backend_tests};
use serde_json::Value;

use crate::conversation::{CURBSIDE, Clinician, PASSPHRASE};
use crate::people::first_admin;

backend_tests!(every_command_answers_json_and_exits_with_its_status);

/// `curbside --output json ARGS` on `who`'s profile: its JSON.
async fn json(who: &Clinician, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = who
        .run(&all)
        .await
        .unwrap_or_else(|error| panic!("curbside {args:?}: {error}"));
    serde_json::from_str(&out).unwrap_or_else(|error| panic!("curbside {args:?}: {error}: {out}"))
}

/// Runs the `curbside` binary as `who` (or with no profile), beside the
/// test's runtime: its exit status and standard error.
async fn status(who: Option<&Clinician>, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(CURBSIDE);
    if let Some(who) = who {
        command
            .args(["--server", &who.url, "--pin-sha256", &who.pin, "--home"])
            .arg(who.home.path());
    }
    command.args(args).env("CURBSIDE_PASSPHRASE", PASSPHRASE);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs the `curbside` binary with no profile, beside the test's runtime;
/// its standard output as JSON.
async fn status_json(args: &[&str]) -> Value {
    let mut command = std::process::Command::new(CURBSIDE);
    command.args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&out)
        .unwrap_or_else(|error| panic!("{error}: {out}{}", String::from_utf8_lossy(&output.stderr)))
}

/// The first id (32 hex digits) a sentence names.
fn hex_id(answer: &Value) -> String {
    answer["message"]
        .as_str()
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|word| word.len() == 32)
        .unwrap_or_else(|| panic!("no id in {answer}"))
        .to_owned()
}

fn is_rfc3339(text: &Value) -> bool {
    text.as_str()
        .is_some_and(|text| text.len() >= 20 && text.as_bytes()[10] == b'T' && text.ends_with('Z'))
}

async fn every_command_answers_json_and_exits_with_its_status(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ida = Clinician::enroll_as(&server, &admin, "Ida Admin", Role::Admin, "IT").await;
    let ana = Clinician::enroll(&server, &admin, "Dr. Ana Alvarez").await;
    let ben = Clinician::enroll(&server, &admin, "Dr. Ben Brown").await;
    let dir = tempfile::tempdir().unwrap();

    // Every command, in JSON; the sentence-only ones as {"message": ...}.
    let health = json(&ana, &["health"]).await;
    assert_eq!(health["healthy"], true);
    let whoami = json(&ana, &["whoami"]).await;
    assert_eq!(whoami["user"]["display_name"], "Dr. Ana Alvarez");
    assert!(is_rfc3339(&whoami["user"]["created_at"]), "{whoami}");
    for args in [
        &["web-digest"][..],
        &["login"],
        &["policy", "show"],
        &["unlock"],
        &["lock"],
    ] {
        let answer = json(&ana, args).await;
        assert!(answer["message"].is_string(), "{args:?}: {answer}");
    }
    let found = json(&ana, &["directory", "search", "Brown"]).await;
    assert_eq!(found["entries"][0]["display_name"], "Dr. Ben Brown");
    assert!(found["next"].is_null());
    let roles = json(&ana, &["directory", "roles"]).await;
    assert!(
        roles["roles"].is_array() && is_rfc3339(&roles["as_of"]),
        "{roles}"
    );

    let created = json(
        &ana,
        &[
            "thread",
            "new",
            "--with",
            "Dr. Ben Brown",
            "--subject",
            "Bed 4",
        ],
    )
    .await;
    let thread = created["message"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|word| word.len() == 32 && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no thread id in {created}"))
        .to_owned();
    assert!(json(&ana, &["send", &thread, "BP 90/60"]).await["message"].is_string());
    let read = json(&ben, &["read", &thread]).await;
    assert_eq!(read["thread_id"], thread.as_str());
    assert_eq!(read["subject"], "Bed 4");
    let message = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["text"] == "BP 90/60")
        .unwrap_or_else(|| panic!("{read}"));
    assert_eq!(message["sender_user"], ana.user_id.as_str());
    assert!(is_rfc3339(&message["sent_at"]), "{message}");
    let threads = json(&ben, &["threads"]).await;
    assert_eq!(threads["threads"][0]["thread_id"], thread.as_str());
    assert_eq!(threads["threads"][0]["subject"], "Bed 4");
    for args in [
        &["thread", "show", &thread][..],
        &["thread", "subject", &thread, "Bed 5"],
        &["lifespan", &thread, "off"],
        &["recall", &thread],
        &["safety-number", "Dr. Ben Brown"],
        &["send", &thread, "--urgent", "Call me"],
    ] {
        assert!(json(&ana, args).await["message"].is_string(), "{args:?}");
    }
    assert!(json(&ben, &["ack", &thread]).await["message"].is_string());
    assert!(json(&ben, &["thread", "leave", &thread]).await["message"].is_string());

    let user = json(
        &ida,
        &[
            "admin",
            "user",
            "create",
            "--name",
            "Dr. Cal Chen",
            "--role",
            "clinician",
            "--department",
            "Cardiology",
            "--user-name",
            "cal@example.org",
        ],
    )
    .await;
    assert_eq!(user["user_name"], "cal@example.org");
    assert!(is_rfc3339(&user["created_at"]), "{user}");
    let cal = user["user_id"].as_str().unwrap().to_owned();
    let listed = json(&ida, &["admin", "user", "list", "--query", "Chen"]).await;
    assert_eq!(listed["users"][0]["user_id"], cal.as_str());
    assert_eq!(
        json(&ida, &["admin", "user", "show", &cal]).await["role"],
        "clinician"
    );
    let updated = json(
        &ida,
        &["admin", "user", "update", &cal, "--external-id", "hr-9"],
    )
    .await;
    assert_eq!(updated["external_id"], "hr-9");
    let code = json(&ida, &["admin", "user", "code", &cal]).await;
    assert!(is_rfc3339(&code["expires_at"]), "{code}");
    let codes = json(&ida, &["admin", "user", "codes", &cal]).await;
    assert_eq!(codes["codes"][0]["code_id"], code["code_id"]);
    let code_id = code["code_id"].as_str().unwrap().to_owned();
    assert!(
        json(&ida, &["admin", "user", "revoke-code", &cal, &code_id]).await["message"].is_string()
    );
    assert_eq!(
        json(&ida, &["admin", "user", "deactivate", &cal]).await["status"],
        "deactivated"
    );
    assert_eq!(
        json(&ida, &["admin", "user", "reactivate", &cal]).await["status"],
        "active"
    );
    let devices = json(&ida, &["admin", "device", "list", &ana.user_id]).await;
    assert!(
        is_rfc3339(&devices["devices"][0]["enrolled_at"]),
        "{devices}"
    );
    // Files, members, live events and enrollment, each in JSON.
    let dan = Clinician::enroll(&server, &admin, "Dr. Dan Diaz").await;
    let created = json(
        &ana,
        &[
            "thread",
            "new",
            "--with",
            "Dr. Dan Diaz",
            "--subject",
            "Ward",
        ],
    )
    .await;
    let ward = created["message"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|word| word.len() == 32 && word.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap()
        .to_owned();
    let (mut watch, mut lines) = dan.spawn(&["--output", "json", "watch", "--count", "2"]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let ecg = dir.path().join("ecg.txt");
    std::fs::write(&ecg, "ECG: sinus rhythm").unwrap();
    assert!(
        json(
            &ana,
            &[
                "send",
                &ward,
                "ECG attached",
                "--file",
                ecg.to_str().unwrap()
            ]
        )
        .await["message"]
            .is_string()
    );
    assert!(json(&ana, &["send", &ward, "Seen"]).await["message"].is_string());
    let mut events = Vec::new();
    while events.len() < 3 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.recv())
            .await
            .unwrap_or_else(|_| panic!("watch said only {events:?}"))
            .unwrap_or_else(|| panic!("watch ended after {events:?}"));
        events.push(
            serde_json::from_str::<Value>(&line).unwrap_or_else(|error| panic!("{error}: {line}")),
        );
    }
    let _ = tokio::task::spawn_blocking(move || watch.wait()).await;
    assert_eq!(events[0]["event"], "message", "{events:?}");
    assert_eq!(events[0]["thread_id"], ward.as_str());
    assert!(is_rfc3339(&events[0]["message"]["sent_at"]), "{events:?}");
    assert!(
        events[2]["message"]
            .as_str()
            .unwrap()
            .starts_with("Stopped watching after 2")
    );
    let read = json(&dan, &["read", &ward]).await;
    let attachment = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|message| message["attachments"][0]["id"].as_str())
        .unwrap_or_else(|| panic!("{read}"))
        .to_owned();
    assert!(
        read.to_string().find("\"key\"").is_none(),
        "an attachment's key in {read}"
    );
    let saved = dir.path().join("ecg-saved.txt");
    assert!(
        json(
            &dan,
            &[
                "download",
                &ward,
                &attachment,
                "--out",
                saved.to_str().unwrap()
            ]
        )
        .await["message"]
            .is_string()
    );
    assert_eq!(
        std::fs::read_to_string(&saved).unwrap(),
        "ECG: sinus rhythm"
    );
    assert!(json(&ana, &["thread", "add", &ward, "Dr. Ben Brown"]).await["message"].is_string());
    assert!(json(&ana, &["thread", "remove", &ward, "Dr. Ben Brown"]).await["message"].is_string());
    let code = json(&ida, &["admin", "user", "code", "Dr. Dan Diaz"]).await;
    let phone = Clinician {
        url: dan.url.clone(),
        pin: dan.pin.clone(),
        home: tempfile::tempdir().unwrap(),
        user_id: dan.user_id.clone(),
    };
    let enrolled = json(
        &phone,
        &["enroll", "--code", code["code"].as_str().unwrap()],
    )
    .await;
    assert!(
        enrolled["message"]
            .as_str()
            .unwrap()
            .starts_with("Enrolled device")
    );
    let devices = json(&ida, &["admin", "device", "list", &dan.user_id]).await;
    let phone_device = devices["devices"][1]["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        json(
            &ida,
            &["admin", "device", "remove", &dan.user_id, &phone_device]
        )
        .await["message"]
            .is_string()
    );
    let removed = json(&phone, &["profile", "remove", "default", "--yes"]).await;
    assert_eq!(removed["removed"], "default");
    assert!(!phone.home.path().join("profiles/default").exists());
    let hold = json(
        &ida,
        &[
            "admin", "hold", "place", "--thread", &ward, "--reason", "Matter 7",
        ],
    )
    .await;
    let hold_id = hex_id(&hold);
    assert!(json(&ida, &["admin", "hold", "lift", &hold_id]).await["message"].is_string());
    assert!(json(&ida, &["admin", "retention", "set", "off"]).await["message"].is_string());
    assert!(
        json(
            &ida,
            &[
                "admin",
                "role",
                "create",
                "Ward on-call",
                "--department",
                "Cardiology"
            ]
        )
        .await["message"]
            .is_string()
    );
    let tomorrow = curbside_cli::output::rfc3339(curbside_cli::clock::now_ms() + 86_400_000);
    let shift = json(
        &ida,
        &[
            "admin",
            "role",
            "assign",
            "Ward on-call",
            "Dr. Dan Diaz",
            "--from",
            "now",
            "--to",
            &tomorrow,
        ],
    )
    .await;
    let shift_id = hex_id(&shift);
    assert!(
        json(
            &ida,
            &["admin", "role", "unassign", "Ward on-call", &shift_id]
        )
        .await["message"]
            .is_string()
    );
    assert!(
        json(
            &ida,
            &[
                "admin",
                "escalation",
                "set",
                "Cardiology",
                "--realert-after",
                "1m",
                "--escalate-after",
                "5m",
                "--backup-role",
                "Ward on-call",
            ],
        )
        .await["message"]
            .is_string()
    );

    let policy = dir.path().join("policy.txt");
    std::fs::write(&policy, "Be kind to patients' data.").unwrap();
    let export = dir.path().join("audit.jsonl");
    for args in [
        &["admin", "policy", "publish", policy.to_str().unwrap()][..],
        &["admin", "retention", "show"],
        &["admin", "hold", "list"],
        &["admin", "role", "list"],
        &["admin", "escalation", "list"],
        &["admin", "audit", "search", "--action", "auth.login"],
        &[
            "admin",
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            export.to_str().unwrap(),
        ],
        &["admin", "audit", "verify"],
    ] {
        assert!(json(&ida, args).await.is_object(), "{args:?}");
    }
    let pending = json(&ida, &["admin", "policy", "pending"]).await;
    assert_eq!(pending["version"], 1);
    assert!(pending["users"].as_array().unwrap().len() >= 3, "{pending}");
    assert!(json(&ana, &["policy", "accept"]).await["message"].is_string());

    let profiles = json(&ana, &["profile", "list"]).await;
    assert_eq!(profiles["default"], "default");
    assert_eq!(profiles["profiles"][0]["name"], "default");
    // (Every command here is given the server's pin, as --pin-sha256.)
    assert!(
        json(&ana, &["profile", "repin"]).await["pin_sha256"]
            .as_str()
            .is_some_and(|pin| pin.eq_ignore_ascii_case(&ana.pin))
    );
    assert_eq!(
        json(&ana, &["profile", "use", "default"]).await["default"],
        "default"
    );
    // Removing a profile needs --yes (usage, 2), and keeps it otherwise.
    assert_eq!(
        status(Some(&ana), &["profile", "remove", "default"])
            .await
            .0,
        Some(2)
    );
    assert!(ana.home.path().join("profiles/default").exists());
    let completions = json(&ana, &["completions", "bash"]).await;
    assert!(completions["script"].as_str().unwrap().contains("curbside"));
    let pages = dir.path().join("man");
    let man = json(&ana, &["man", "--out-dir", pages.to_str().unwrap()]).await;
    assert!(
        man["written"]
            .as_array()
            .unwrap()
            .iter()
            .any(|page| page == "curbside-admin-user-import.1"),
        "{man}"
    );
    assert!(
        std::fs::read_to_string(pages.join("curbside-send.1"))
            .unwrap()
            .contains(".TH")
    );
    // An error, in JSON too, on standard error.
    let (code, stderr) = status(Some(&ana), &["--output", "json", "admin", "user", "list"]).await;
    assert_eq!(code, Some(4));
    let error: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(error["error"]["exit_code"], 4);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused")
    );

    // The exit statuses.
    assert_eq!(status(Some(&ana), &["--no-such-option"]).await.0, Some(2));
    assert_eq!(
        status(Some(&ana), &["lifespan", &thread, "5 parsecs"])
            .await
            .0,
        Some(2)
    );
    let unreachable = Clinician {
        url: "https://127.0.0.1:9".to_owned(),
        pin: ana.pin.clone(),
        home: tempfile::tempdir().unwrap(),
        user_id: String::new(),
    };
    assert_eq!(status(Some(&unreachable), &["health"]).await.0, Some(3));
    assert_eq!(
        status(Some(&ana), &["admin", "user", "list"]).await.0,
        Some(4)
    );
    // A tampered export fails verification: 5.
    let key = server
        .client()
        .audit_key()
        .await
        .unwrap()
        .note_key()
        .unwrap()
        .verifier_string();
    let verified = status_json(&[
        "--output",
        "json",
        "audit",
        "verify",
        "--file",
        export.to_str().unwrap(),
        "--public-key",
        &key,
    ])
    .await;
    assert!(
        verified["message"].as_str().unwrap().contains("valid"),
        "{verified}"
    );
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(
        &export,
        text.replacen("\"reason\":\"ok\"", "\"reason\":\"ko\"", 1),
    )
    .unwrap();
    let (code, said) = status(
        None,
        &[
            "audit",
            "verify",
            "--file",
            export.to_str().unwrap(),
            "--public-key",
            &key,
        ],
    )
    .await;
    assert_eq!(code, Some(5), "{said}");
    assert!(json(&ana, &["logout"]).await["message"].is_string());
    server.stop().await;
}
