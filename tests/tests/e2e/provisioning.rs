//! Provisioning at scale: SCIM 2.0 from an identity provider (checked by
//! the outside tester scim2-tester, and the way Entra ID deactivates), and
//! `admin user import` of a CSV file with `admin user list --output json`.

use curbside_proto::identity::{Role, UserStatus};
use curbside_server::config::ServiceToken;
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};
use serde_json::{Value, json};

use crate::conversation::{CURBSIDE, Clinician, PASSPHRASE};
use crate::people::first_admin;
use crate::retention::audit;

backend_tests!(
    scim2_tester_finds_no_failure,
    a_user_deactivated_through_scim_loses_their_cli_session_at_once,
    scim_refuses_in_its_own_words,
    importing_a_csv_twice_creates_each_user_once,
);

/// The identity provider's token in these tests.
const TOKEN: &str = "scim-test-token-0123456789abcdef0123456789abcdef";

/// A server with SCIM on.
async fn scim_server(env: &TestEnv) -> TestServer {
    let mut config = env.config();
    config.scim_token = Some(ServiceToken::new(TOKEN).unwrap());
    env.start_with(config, Default::default()).await
}

/// A SCIM request with the token, its status and its JSON body.
async fn scim(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server
        .http()
        .request(method, format!("{}/scim/v2{path}", server.url))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status != 204 {
        let media = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(media, "application/scim+json", "{path}");
    }
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

async fn scim2_tester_finds_no_failure(backend: Backend) {
    let Ok(python) = std::env::var("CURBSIDE_SCIM2_PYTHON") else {
        curbside_tests::skipped(
            "scim2_tester_finds_no_failure",
            "CURBSIDE_SCIM2_PYTHON does not name a Python with scim2-tester[httpx2]",
        );
        return;
    };
    let env = TestEnv::new(backend).await;
    let server = scim_server(&env).await;
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/scim/run_scim2_tester.py");
    let certificate = env.data_dir().join("tls").join("cert.pem");
    let url = format!("{}/scim/v2", server.url);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(driver)
            .args(["--url", &url, "--token", TOKEN, "--cafile"])
            .arg(certificate)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scim2-tester found failures:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It ran the checks, not only discovery: creates, reads, replaces,
    // deletes and patches of users, all successful.
    let successes = text
        .lines()
        .filter(|line| line.starts_with("SUCCESS"))
        .count();
    assert!(
        successes >= 40,
        "only {successes} checks succeeded:\n{text}"
    );
    let user_checks = text
        .lines()
        .filter(|line| line.starts_with("SUCCESS") && line.contains("[User]"))
        .count();
    assert!(
        user_checks >= 20,
        "only {user_checks} User checks succeeded:\n{text}"
    );
    server.stop().await;
}

async fn a_user_deactivated_through_scim_loses_their_cli_session_at_once(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = scim_server(&env).await;
    let admin = first_admin(&server).await;

    // Entra ID looks the user up, finds no one, and creates them.
    let (status, found) = scim(
        &server,
        reqwest::Method::GET,
        "/Users?filter=userName%20eq%20%22ben.brown%40example.org%22",
        None,
    )
    .await;
    assert_eq!((status, found["totalResults"].clone()), (200, json!(0)));
    let (status, created) = scim(
        &server,
        reqwest::Method::POST,
        "/Users",
        Some(json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "userName": "ben.brown@example.org",
            "externalId": "8e3c1a2f-entra",
            "active": true,
            "displayName": "Dr. Ben Brown",
            "name": { "givenName": "Ben", "familyName": "Brown" },
            "emails": [{ "value": "ben.brown@example.org", "type": "work", "primary": true }],
            "title": "Consultant",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "Cardiology", "manager": { "value": "x" }
            }
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let user_id = created["id"].as_str().unwrap().to_owned();
    // Kept as sent, but for what Curbside does not keep (title, manager).
    assert_eq!(created["userName"], "ben.brown@example.org");
    assert_eq!(
        created["name"],
        json!({ "givenName": "Ben", "familyName": "Brown" })
    );
    assert_eq!(created.get("title"), None);
    assert_eq!(
        created["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        json!({ "department": "Cardiology" })
    );
    assert_eq!(created["meta"]["resourceType"], "User");
    // In Curbside: a clinician of Cardiology, named as the provider says.
    let user = admin.client.get_user(&user_id).await.unwrap();
    assert_eq!(
        (
            user.display_name.as_str(),
            user.department.as_str(),
            user.role,
            user.user_name.as_deref(),
            user.external_id.as_deref()
        ),
        (
            "Dr. Ben Brown",
            "Cardiology",
            Role::Clinician,
            Some("ben.brown@example.org"),
            Some("8e3c1a2f-entra")
        )
    );
    // Found by userName whatever its case, and by externalId.
    for filter in [
        "userName%20eq%20%22BEN.BROWN%40example.org%22",
        "externalId%20eq%20%228e3c1a2f-entra%22",
    ] {
        let (_, found) = scim(
            &server,
            reqwest::Method::GET,
            &format!("/Users?filter={filter}"),
            None,
        )
        .await;
        assert_eq!(found["totalResults"], 1, "{filter}: {found}");
        assert_eq!(found["Resources"][0]["id"], user_id.as_str());
    }

    // Ben enrolls his CLI and watches his threads.
    let code = admin
        .client
        .issue_enrollment_code(&user_id)
        .await
        .unwrap()
        .code;
    let ben = Clinician {
        url: server.url.clone(),
        pin: server.fingerprint.to_string(),
        home: tempfile::tempdir().unwrap(),
        user_id: user_id.clone(),
    };
    ben.run(&["enroll", "--code", &code]).await.unwrap();
    assert!(ben.ok(&["whoami"]).await.contains("Dr. Ben Brown"));
    let (mut watch, mut lines) = ben.spawn(&["watch"]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(watch.try_wait().unwrap().is_none(), "watch ended early");

    // Entra ID deactivates him its own way: "Replace", a string "False".
    let (status, patched) = scim(
        &server,
        reqwest::Method::PATCH,
        &format!("/Users/{user_id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "path": "active", "value": "False" }]
        })),
    )
    .await;
    assert_eq!((status, patched["active"].clone()), (200, json!(false)));

    // His running `watch` is cut off at once, and his next command is
    // refused: the session ended and he cannot sign in again.
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = watch.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "watch still runs 5 s after the deactivation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let said = lines.recv().await.unwrap_or_default();
    assert!(
        said.starts_with("Stopped watching after 0 messages: the session was ended"),
        "{exit:?}: {said}"
    );
    let refused = ben.run(&["whoami"]).await.unwrap_err();
    assert!(refused.to_string().contains("deactivated"), "{refused}");
    let user = admin.client.get_user(&user_id).await.unwrap();
    assert_eq!(user.status, UserStatus::Deactivated);
    // The provider's calls are in the audit log, with no actor.
    let entries = audit(&admin, "scim.user.patch").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].resource_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(entries[0].actor_user, None);
    assert_eq!(audit(&admin, "scim.user.create").await.len(), 1);
    assert_eq!(audit(&admin, "scim.user.list").await.len(), 3);

    // Reactivated by the provider, he signs in again.
    let (status, _) = scim(
        &server,
        reqwest::Method::PATCH,
        &format!("/Users/{user_id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "value": { "active": true } }]
        })),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ben.ok(&["whoami"]).await.contains("Dr. Ben Brown"));

    // Deleted: deactivated, and SCIM no longer finds him; Curbside keeps
    // the user for the audit log's sake.
    let (status, _) = scim(
        &server,
        reqwest::Method::DELETE,
        &format!("/Users/{user_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, gone) = scim(
        &server,
        reqwest::Method::GET,
        &format!("/Users/{user_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        gone["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    let user = admin.client.get_user(&user_id).await.unwrap();
    assert_eq!(
        (user.status, user.user_name),
        (UserStatus::Deactivated, None)
    );
    assert!(ben.run(&["whoami"]).await.is_err());
    server.stop().await;
}

async fn scim_refuses_in_its_own_words(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // Without a token configured, there is no SCIM.
    let server = env.start().await;
    let (status, body) = scim(&server, reqwest::Method::GET, "/Users", None).await;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("scim_token"),
        "{body}"
    );
    server.stop().await;

    let env = TestEnv::new(backend).await;
    let server = scim_server(&env).await;
    let http = server.http();
    // A wrong token: 401, as a SCIM error.
    let response = http
        .get(format!("{}/scim/v2/Users", server.url))
        .bearer_auth("not-the-token-not-the-token-not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "401");
    // A session token is no SCIM token.
    let admin = first_admin(&server).await;
    let response = http
        .get(format!("{}/scim/v2/Users", server.url))
        .bearer_auth(admin.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let user = |name: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": name,
        })
    };
    let (status, _) = scim(
        &server,
        reqwest::Method::POST,
        "/Users",
        Some(user("cal@example.org")),
    )
    .await;
    assert_eq!(status, 201);
    // The same userName in other case is the same name.
    let (status, body) = scim(
        &server,
        reqwest::Method::POST,
        "/Users",
        Some(user("CAL@example.org")),
    )
    .await;
    assert_eq!(
        (status, body["scimType"].clone()),
        (409, json!("uniqueness"))
    );
    for (path, body, scim_type) in [
        (
            "/Users",
            json!({ "displayName": "No Name" }),
            "invalidValue",
        ),
        (
            "/Users",
            json!({ "userName": "x", "active": "maybe" }),
            "invalidValue",
        ),
        ("/Users", json!([1, 2]), "invalidSyntax"),
    ] {
        let (status, answer) = scim(&server, reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(
            (status, answer["scimType"].clone()),
            (400, json!(scim_type)),
            "{answer}"
        );
        assert!(!answer["detail"].as_str().unwrap().is_empty());
    }
    let (status, answer) = scim(
        &server,
        reqwest::Method::GET,
        "/Users?filter=displayName%20co%20%22a%22",
        None,
    )
    .await;
    assert_eq!(
        (status, answer["scimType"].clone()),
        (400, json!("invalidFilter"))
    );
    // Administrators are beyond SCIM's reach, whatever their user name.
    admin
        .client
        .update_user(
            &admin.user.user_id,
            &curbside_proto::identity::UserUpdate {
                user_name: Some("root@example.org".to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (_, found) = scim(
        &server,
        reqwest::Method::GET,
        "/Users?filter=userName%20eq%20%22root%40example.org%22",
        None,
    )
    .await;
    assert_eq!(found["totalResults"], 0, "{found}");
    let (status, _) = scim(
        &server,
        reqwest::Method::DELETE,
        &format!("/Users/{}", admin.user.user_id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A clinician an administrator deactivated stays so: SCIM cannot
    // reactivate them, and a PUT that says nothing of `active` keeps it.
    let (_, dee) = scim(
        &server,
        reqwest::Method::POST,
        "/Users",
        Some(user("dee@example.org")),
    )
    .await;
    let dee = dee["id"].as_str().unwrap().to_owned();
    admin.client.set_user_active(&dee, false).await.unwrap();
    let (status, answer) = scim(
        &server,
        reqwest::Method::PATCH,
        &format!("/Users/{dee}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "replace", "path": "active", "value": true }]
        })),
    )
    .await;
    assert_eq!(
        (status, answer["scimType"].clone()),
        (409, json!("mutability"))
    );
    let (status, answer) = scim(
        &server,
        reqwest::Method::PUT,
        &format!("/Users/{dee}"),
        Some(json!({ "userName": "dee@example.org", "displayName": "Dr. Dee" })),
    )
    .await;
    assert_eq!((status, answer["active"].clone()), (200, json!(false)));
    // What a user keeps is bounded.
    let (status, answer) = scim(
        &server,
        reqwest::Method::POST,
        "/Users",
        Some(json!({ "userName": "big@example.org", "displayName": "x".repeat(20_000) })),
    )
    .await;
    assert_eq!(
        (status, answer["scimType"].clone()),
        (400, json!("invalidValue"))
    );
    // Unknown paths under /scim/v2 answer as SCIM does.
    let (status, answer) = scim(&server, reqwest::Method::GET, "/Groups", None).await;
    assert_eq!((status, answer["status"].clone()), (404, json!("404")));
    server.stop().await;
}

async fn importing_a_csv_twice_creates_each_user_once(backend: Backend) {
    const USERS: usize = 2000;
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let importer = Clinician::enroll_as(&server, &admin, "Ida Importer", Role::Admin, "IT").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("staff.csv");
    let mut csv =
        String::from("user_name,display_name,department,role,licence_number,external_id\n");
    for n in 0..USERS {
        let role = if n % 100 == 0 { "auditor" } else { "" };
        csv.push_str(&format!(
            "staff{n:04}@example.org,\"Dr. Staff {n:04}, MD\",Ward {},{role},GMC{n:06},hr-{n}\n",
            n % 17
        ));
    }
    std::fs::write(&file, &csv).unwrap();
    let path = file.to_str().unwrap();

    let first: Value = serde_json::from_str(
        &importer
            .ok(&["--output", "json", "admin", "user", "import", path])
            .await,
    )
    .unwrap();
    assert_eq!(
        (
            first["created"].clone(),
            first["existing"].clone(),
            first["failed"].clone()
        ),
        (json!(USERS), json!(0), json!(0))
    );
    assert_eq!(first["rows"][5]["line"], 7);
    assert_eq!(first["rows"][5]["outcome"], "created");
    assert_eq!(
        first["rows"][5]["user"]["display_name"],
        "Dr. Staff 0005, MD"
    );
    assert_eq!(first["rows"][100]["user"]["role"], "auditor");
    assert_eq!(first["rows"][5]["user"]["role"], "clinician");

    // Run again: nobody is made twice, and each line says so.
    let text = importer.ok(&["admin", "user", "import", path]).await;
    assert!(
        text.ends_with(&format!("0 created, {USERS} already there, 0 failed")),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert!(
        text.contains("line 2: staff0000@example.org: exists:"),
        "{}",
        &text[..300]
    );

    // Every one of them, through every page of the list.
    let listed: Value = serde_json::from_str(
        &importer
            .ok(&["--output", "json", "admin", "user", "list"])
            .await,
    )
    .unwrap();
    let users = listed["users"].as_array().unwrap();
    let imported: Vec<&Value> = users
        .iter()
        .filter(|user| {
            user["user_name"]
                .as_str()
                .is_some_and(|name| name.starts_with("staff"))
        })
        .collect();
    assert_eq!(imported.len(), USERS);
    let mut names: Vec<&str> = imported
        .iter()
        .map(|user| user["user_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), USERS);
    let one = imported
        .iter()
        .find(|user| user["user_name"] == "staff1234@example.org")
        .unwrap();
    assert_eq!(one["external_id"], "hr-1234");
    assert_eq!(one["licence_number"], "GMC001234");
    assert_eq!(one["department"], format!("Ward {}", 1234 % 17));
    // Times in RFC 3339.
    let created = one["created_at"].as_str().unwrap();
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T' && created.ends_with('Z'),
        "{created}"
    );

    // A file with bad lines: the good ones are made, the bad ones named,
    // and the command fails.
    std::fs::write(
        &file,
        "user_name,display_name,department,role\n\
         new.one@example.org,Dr. New One,Oncology,\n\
         ,Dr. Nobody,Oncology,\n\
         new.two@example.org,Dr. New Two,Oncology,surgeon\n\
         staff0001@EXAMPLE.org,Dr. Staff 0001,Ward 1,\n",
    )
    .unwrap();
    let error = importer
        .run(&["admin", "user", "import", path])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("line 3: : failed: no user_name"), "{error}");
    assert!(
        error.contains("line 4: new.two@example.org: failed: role must be"),
        "{error}"
    );
    assert!(
        error.contains("line 5: staff0001@EXAMPLE.org: exists"),
        "{error}"
    );
    assert!(
        error.contains("1 created, 1 already there, 2 failed"),
        "{error}"
    );
    // The process says so with its exit status: refused (4). (Run beside
    // the test's runtime, which serves the server.)
    let (url, pin, home, path) = (
        importer.url.clone(),
        importer.pin.clone(),
        importer.home.path().to_owned(),
        path.to_owned(),
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(CURBSIDE)
            .args(["--server", &url, "--pin-sha256", &pin, "--home"])
            .arg(home)
            .args(["admin", "user", "import", &path])
            .env("CURBSIDE_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
}
