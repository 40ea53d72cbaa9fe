//! Identity: enrollment, challenge-response login, sessions and their
//! revocation, the directory and the admin API's authorization.

use std::time::Duration;

use curbside_cli::ClientError;
use curbside_proto::identity::{LoginRequest, NewUser, Role, login_message};
use curbside_tests::{Backend, TestEnv, TestServer, backend_tests};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::http_api::error_body;
use crate::people::{enroll, first_admin, new_key, person};

backend_tests!(
    enroll_login_whoami_and_directory,
    a_second_device_for_the_same_user,
    forged_and_tampered_tokens_are_refused,
    revoked_sessions_fail_on_the_next_request,
    idle_sessions_end,
    challenges_are_single_use_and_bound_to_the_device_key,
    bad_enrollment_codes_are_refused,
    enrollment_attempts_are_rate_limited,
    only_admins_may_call_admin_endpoints,
    a_deactivated_user_leaves_the_directory,
    challenge_requests_cannot_lock_a_device_out,
    failed_logins_are_limited_per_device,
    bogus_logins_from_elsewhere_do_not_lock_a_device_out,
    sign_in_tells_no_one_which_devices_are_active,
    directory_and_audit_reads_are_paged_and_limited,
    the_last_administrator_stays,
    an_administrator_sees_and_ends_one_session,
);

/// `GET /v1/me` with this Authorization header value: the status, and the
/// body if it was not an error.
async fn me_with(server: &TestServer, authorization: &str) -> (StatusCode, Option<Value>) {
    let response = server
        .http()
        .get(format!("{}/v1/me", server.url))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status.is_success() {
        (status, Some(response.json().await.unwrap()))
    } else {
        let error = error_body(response).await;
        assert!(!error.error.message.is_empty());
        (status, None)
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn api_status(error: &ClientError) -> Option<StatusCode> {
    match error {
        ClientError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

async fn enroll_login_whoami_and_directory(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    assert_eq!(admin.user.role, Role::Admin);
    let clinician = person(&server, &admin, "Dr. Clara Cardio", Role::Clinician).await;

    let whoami = clinician.client.whoami().await.unwrap();
    assert_eq!(whoami.user.user_id, clinician.user.user_id);
    assert_eq!(whoami.device.device_id, clinician.device_id);

    let found = clinician.client.directory("first adm").await.unwrap();
    assert_eq!(found.entries.len(), 1);
    let entry = &found.entries[0];
    assert_eq!(entry.user_id, admin.user.user_id);
    assert_eq!(entry.devices.len(), 1);
    use ring::signature::KeyPair;
    assert_eq!(entry.devices[0].public_key, admin.key.public_key().as_ref());
    // Department search, case-insensitive; LIKE wildcards are literal.
    let by_department = clinician.client.directory("CARDIO").await.unwrap();
    assert!(
        by_department
            .entries
            .iter()
            .any(|e| e.user_id == clinician.user.user_id)
    );
    assert!(
        clinician
            .client
            .directory("%")
            .await
            .unwrap()
            .entries
            .is_empty()
    );

    // A restart keeps users and needs no new first-admin code.
    server.stop().await;
    let again = env.start().await;
    assert!(again.first_admin_code.is_none());
    again.stop().await;
}

async fn a_second_device_for_the_same_user(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let first = person(&server, &admin, "Dr. Two Devices", Role::Clinician).await;
    let code = admin
        .client
        .issue_enrollment_code(&first.user.user_id)
        .await
        .unwrap();
    let mut second = enroll(&server, &code.code, None).await;
    second.login().await;
    assert_eq!(second.user.user_id, first.user.user_id);
    assert_ne!(second.device_id, first.device_id);
    let devices = admin
        .client
        .list_devices(&first.user.user_id)
        .await
        .unwrap();
    assert_eq!(devices.devices.len(), 2);
    // Both devices' sessions work independently.
    first.client.whoami().await.unwrap();
    second.client.whoami().await.unwrap();
    server.stop().await;
}

/// Base64url of JSON.
fn part(value: &Value) -> String {
    curbside_proto::b64::encode(&serde_json::to_vec(value).unwrap())
}

async fn forged_and_tampered_tokens_are_refused(backend: Backend) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let victim = person(&server, &admin, "Dr. Victim", Role::Clinician).await;
    let token = victim.token().to_owned();
    let pieces: Vec<&str> = token.split('.').collect();
    let claims: Value =
        serde_json::from_slice(&curbside_proto::b64::decode(pieces[1]).unwrap()).unwrap();

    // The real server key, from its data directory, to sign well-formed
    // tokens whose claims are wrong.
    let pkcs8 = std::fs::read(env.data_dir().join("keys/token-ed25519.pk8")).unwrap();
    let public_key = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let sign = |claims: &Value| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            claims,
            &EncodingKey::from_ed_der(&pkcs8),
        )
        .unwrap()
    };

    // Control: the same claims re-signed are accepted, so each refusal
    // below is caused by the one thing changed.
    let (status, body) = me_with(&server, &bearer(&sign(&claims))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.unwrap()["user"]["user_id"], victim.user.user_id);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut changed = claims.clone();
        change(changed.as_object_mut().unwrap());
        changed
    };

    let mut refused: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                part(&json!({"alg": "none", "typ": "JWT"})),
                pieces[1]
            ),
        ),
        (
            "HS256 keyed with the server's public key",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&public_key),
            )
            .unwrap(),
        ),
        ("bit-flipped signature", {
            let mut signature = curbside_proto::b64::decode(pieces[2]).unwrap();
            signature[10] ^= 0x01;
            format!(
                "{}.{}.{}",
                pieces[0],
                pieces[1],
                curbside_proto::b64::encode(&signature)
            )
        }),
        ("edited payload", {
            let edited = with(&|c| {
                c.insert("sub".into(), json!(admin.user.user_id));
            });
            format!("{}.{}.{}", pieces[0], part(&edited), pieces[2])
        }),
        (
            "expired beyond the leeway",
            sign(&with(&|c| {
                c.insert("exp".into(), json!(now - 60));
            })),
        ),
        (
            "nbf in the future",
            sign(&with(&|c| {
                c.insert("nbf".into(), json!(now + 60));
            })),
        ),
        (
            "wrong aud",
            sign(&with(&|c| {
                c.insert("aud".into(), json!("curbside-api:another-server"));
            })),
        ),
        (
            "wrong iss",
            sign(&with(&|c| {
                c.insert("iss".into(), json!("someone-else"));
            })),
        ),
    ];
    for claim in ["aud", "iss", "exp", "sub", "nbf", "jti", "did", "iat"] {
        refused.push((
            claim,
            sign(&with(&|c| {
                c.remove(claim);
            })),
        ));
    }
    for (what, forged) in &refused {
        let (status, body) = me_with(&server, &bearer(forged)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} was not refused");
        assert!(body.is_none(), "{what} returned data");
    }
    // Not a bearer token at all, or no header.
    assert_eq!(me_with(&server, &token).await.0, StatusCode::UNAUTHORIZED);
    let response = server
        .http()
        .get(format!("{}/v1/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The genuine token still works.
    assert_eq!(me_with(&server, &bearer(&token)).await.0, StatusCode::OK);
    server.stop().await;
}

async fn revoked_sessions_fail_on_the_next_request(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;

    // Logout.
    let leaving = person(&server, &admin, "Dr. Leaving", Role::Clinician).await;
    let token = leaving.token().to_owned();
    assert_eq!(me_with(&server, &bearer(&token)).await.0, StatusCode::OK);
    leaving.client.logout().await.unwrap();
    assert_eq!(
        me_with(&server, &bearer(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Device removal: the token was just used, so it sits in the cache.
    let lost = person(&server, &admin, "Dr. Lost Phone", Role::Clinician).await;
    let token = lost.token().to_owned();
    assert_eq!(me_with(&server, &bearer(&token)).await.0, StatusCode::OK);
    admin
        .client
        .remove_device(&lost.user.user_id, &lost.device_id)
        .await
        .unwrap();
    assert_eq!(
        me_with(&server, &bearer(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // And the device can no longer log in.
    let mut lost = lost;
    let error = lost
        .client
        .login_with_key(&lost.server_id.clone(), &lost.device_id.clone(), &lost.key)
        .await
        .unwrap_err();
    assert_eq!(api_status(&error), Some(StatusCode::UNAUTHORIZED));

    // User deactivation ends every session of the user at once.
    let departing = person(&server, &admin, "Dr. Departing", Role::Clinician).await;
    let token = departing.token().to_owned();
    assert_eq!(me_with(&server, &bearer(&token)).await.0, StatusCode::OK);
    admin
        .client
        .set_user_active(&departing.user.user_id, false)
        .await
        .unwrap();
    assert_eq!(
        me_with(&server, &bearer(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // An admin cannot lock themselves out.
    let error = admin
        .client
        .set_user_active(&admin.user.user_id, false)
        .await
        .unwrap_err();
    assert_eq!(api_status(&error), Some(StatusCode::CONFLICT));
    server.stop().await;
}

async fn idle_sessions_end(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.session_idle = Duration::from_secs(1);
    let server = env.start_with(config, axum::Router::new()).await;
    let admin = first_admin(&server).await;
    let token = admin.token().to_owned();
    assert_eq!(me_with(&server, &bearer(&token)).await.0, StatusCode::OK);
    // Activity keeps the session alive...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(me_with(&server, &bearer(&token)).await.0, StatusCode::OK);
    }
    // ...and idleness ends it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        me_with(&server, &bearer(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_with(&server, &bearer(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

async fn challenges_are_single_use_and_bound_to_the_device_key(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let other = person(&server, &admin, "Dr. Other", Role::Clinician).await;
    let client = admin.anonymous(&server);

    // A replayed challenge.
    let challenge = client.challenge(&admin.device_id).await.unwrap();
    let message = login_message(&challenge.server_id, &admin.device_id, &challenge.nonce);
    let request = LoginRequest {
        challenge_id: challenge.challenge_id.clone(),
        device_id: admin.device_id.clone(),
        signature: admin.key.sign(&message).as_ref().to_vec(),
    };
    client.login(&request).await.unwrap();
    let replay = client.login(&request).await.unwrap_err();
    assert_eq!(api_status(&replay), Some(StatusCode::UNAUTHORIZED));

    // A challenge for one device signed by another device's key.
    let challenge = client.challenge(&admin.device_id).await.unwrap();
    let message = login_message(&challenge.server_id, &admin.device_id, &challenge.nonce);
    let forged = client
        .login(&LoginRequest {
            challenge_id: challenge.challenge_id,
            device_id: admin.device_id.clone(),
            signature: other.key.sign(&message).as_ref().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&forged), Some(StatusCode::UNAUTHORIZED));

    // A signature over a message naming another server.
    let challenge = client.challenge(&admin.device_id).await.unwrap();
    let message = login_message("another-server", &admin.device_id, &challenge.nonce);
    let wrong_server = client
        .login(&LoginRequest {
            challenge_id: challenge.challenge_id,
            device_id: admin.device_id.clone(),
            signature: admin.key.sign(&message).as_ref().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&wrong_server), Some(StatusCode::UNAUTHORIZED));

    // Another device answering this device's challenge.
    let challenge = client.challenge(&admin.device_id).await.unwrap();
    let message = login_message(&challenge.server_id, &other.device_id, &challenge.nonce);
    let swapped = client
        .login(&LoginRequest {
            challenge_id: challenge.challenge_id,
            device_id: other.device_id.clone(),
            signature: other.key.sign(&message).as_ref().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&swapped), Some(StatusCode::UNAUTHORIZED));
    server.stop().await;
}

async fn bad_enrollment_codes_are_refused(backend: Backend) {
    use ring::signature::KeyPair;
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let user = admin
        .client
        .create_user(&NewUser {
            display_name: "Dr. New".into(),
            role: Role::Clinician,
            department: "ICU".into(),
            licence_number: Some("L-123".into()),
            user_name: None,
            external_id: None,
        })
        .await
        .unwrap();
    let anonymous = admin.anonymous(&server);
    let try_code = |code: String| {
        let anonymous = anonymous.clone();
        async move {
            anonymous
                .enroll(&curbside_proto::identity::EnrollRequest {
                    code,
                    device_name: "phone".into(),
                    public_key: new_key().public_key().as_ref().to_vec(),
                    display_name: None,
                })
                .await
        }
    };

    // The first-admin code was used by first_admin(): reuse is refused.
    let reused = try_code(server.first_admin_code.clone().unwrap())
        .await
        .unwrap_err();
    assert_eq!(api_status(&reused), Some(StatusCode::UNAUTHORIZED));
    assert!(reused.to_string().contains("already been used"), "{reused}");

    // A code used once.
    let code = admin
        .client
        .issue_enrollment_code(&user.user_id)
        .await
        .unwrap();
    try_code(code.code.clone()).await.unwrap();
    let reused = try_code(code.code).await.unwrap_err();
    assert!(reused.to_string().contains("already been used"), "{reused}");

    // A code that expired a second ago (one long expired is swept).
    let code = admin
        .client
        .issue_enrollment_code(&user.user_id)
        .await
        .unwrap();
    let a_second_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 1000;
    crate::storage::execute(
        &env,
        &format!(
            "UPDATE enrollment_code SET expires_at_ms = {a_second_ago} WHERE used_at_ms IS NULL"
        ),
    )
    .await;
    let expired = try_code(code.code).await.unwrap_err();
    assert_eq!(api_status(&expired), Some(StatusCode::UNAUTHORIZED));
    assert!(expired.to_string().contains("expired"), "{expired}");

    // An unknown but well-formed code, and a malformed one.
    let unknown = try_code("0000-0000-0000-0000-0000".into())
        .await
        .unwrap_err();
    assert_eq!(api_status(&unknown), Some(StatusCode::UNAUTHORIZED));
    assert!(unknown.to_string().contains("not recognised"), "{unknown}");
    let malformed = try_code("not-a-code".into()).await.unwrap_err();
    assert_eq!(api_status(&malformed), Some(StatusCode::BAD_REQUEST));

    // Only hashes are stored.
    let code = admin
        .client
        .issue_enrollment_code(&user.user_id)
        .await
        .unwrap();
    let canonical = code.code.replace('-', "");
    if backend == Backend::Sqlite {
        let bytes = std::fs::read(env.data_dir().join("curbside.db")).unwrap();
        let wal = std::fs::read(env.data_dir().join("curbside.db-wal")).unwrap_or_default();
        for haystack in [bytes, wal] {
            assert!(
                !haystack
                    .windows(canonical.len())
                    .any(|w| w == canonical.as_bytes()),
                "the code is stored in the clear"
            );
        }
    }
    server.stop().await;
}

async fn enrollment_attempts_are_rate_limited(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let http = server.http();
    let url = format!("{}/v1/enroll", server.url);
    let body = r#"{"code":"0000-0000-0000-0000-0000","device_name":"x","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = crate::http_api::post_json(&http, &url, body).await;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&wait));
            assert_eq!(
                error_body(response).await.error.code,
                curbside_proto::ErrorCode::TooManyRequests
            );
            break;
        }
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(statuses.len() <= 11, "{statuses:?}");
    server.stop().await;
}

/// Administrators alone change people, devices, sessions and the policy;
/// auditors may read users, the overview and the policy's state (they
/// need names beside the ids they review); clinicians none of it.
async fn only_admins_may_call_admin_endpoints(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let clinician = person(&server, &admin, "Dr. Clinician", Role::Clinician).await;
    let auditor = person(&server, &admin, "Ms. Auditor", Role::Auditor).await;
    let target = &clinician.user.user_id;
    let device = &clinician.device_id;
    let new_user = r#"{"display_name":"X","role":"admin","department":"Y"}"#;
    let endpoints: Vec<(reqwest::Method, String, Option<&str>)> = vec![
        (
            reqwest::Method::POST,
            "/v1/admin/users".into(),
            Some(new_user),
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/admin/users/{target}"),
            Some(r#"{"role":"admin"}"#),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/admin/users/{target}/deactivate"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/admin/users/{target}/reactivate"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/admin/users/{target}/enrollment-codes"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/admin/users/{target}/devices"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/admin/users/{target}/devices/{device}"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/admin/users/{target}/sessions"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/admin/users/{target}/sessions/{}/end", "0".repeat(32)),
            None,
        ),
        (
            reqwest::Method::POST,
            "/v1/admin/policy".into(),
            Some(r#"{"text":"Be kind."}"#),
        ),
    ];
    let reads = [
        "/v1/admin/users".to_owned(),
        format!("/v1/admin/users/{target}"),
        "/v1/admin/overview".to_owned(),
        "/v1/admin/policy/versions".to_owned(),
        "/v1/admin/policy/pending".to_owned(),
    ];
    let http = server.http();
    for path in &reads {
        for (caller, allowed) in [(&clinician, false), (&auditor, true)] {
            let response = http
                .get(format!("{}{path}", server.url))
                .bearer_auth(caller.token())
                .send()
                .await
                .unwrap();
            let expected = if allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(
                response.status(),
                expected,
                "{:?} GET {path}",
                caller.user.role
            );
        }
    }
    for caller in [&clinician, &auditor] {
        for (method, path, body) in &endpoints {
            let mut request = http
                .request(method.clone(), format!("{}{path}", server.url))
                .bearer_auth(caller.token());
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{:?} {method} {path}",
                caller.user.role
            );
            let error = error_body(response).await;
            assert_eq!(error.error.code, curbside_proto::ErrorCode::Forbidden);
        }
    }
    // Nothing changed: the clinician is still a clinician with a device.
    let user = admin.client.get_user(target).await.unwrap();
    assert_eq!(user.role, Role::Clinician);
    assert_eq!(
        admin
            .client
            .list_devices(target)
            .await
            .unwrap()
            .devices
            .len(),
        1
    );
    // And without a session, 401.
    let response = http
        .get(format!("{}/v1/admin/users", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}

async fn a_deactivated_user_leaves_the_directory(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let leaving = person(&server, &admin, "Dr. Soon Gone", Role::Clinician).await;
    let staying = person(&server, &admin, "Dr. Staying", Role::Clinician).await;
    let names = |directory: curbside_proto::identity::Directory| -> Vec<String> {
        directory
            .entries
            .into_iter()
            .map(|e| e.display_name)
            .collect()
    };
    let before = names(staying.client.directory("Dr.").await.unwrap());
    assert!(before.contains(&"Dr. Soon Gone".to_owned()), "{before:?}");
    admin
        .client
        .set_user_active(&leaving.user.user_id, false)
        .await
        .unwrap();
    let after = names(staying.client.directory("Dr.").await.unwrap());
    assert!(!after.contains(&"Dr. Soon Gone".to_owned()), "{after:?}");
    assert!(after.contains(&"Dr. Staying".to_owned()), "{after:?}");
    // Looked up by id, the same: active users only, with their devices.
    let found = staying
        .client
        .directory_user(&staying.user.user_id)
        .await
        .unwrap();
    assert_eq!(found.devices.len(), 1);
    assert_eq!(found.devices[0].device_id, staying.device_id);
    assert!(matches!(
        staying.client.directory_user(&leaving.user.user_id).await,
        Err(curbside_cli::ClientError::Api { status, .. }) if status == 404
    ));
    // Reactivation brings them back, and a new code enrolls again.
    admin
        .client
        .set_user_active(&leaving.user.user_id, true)
        .await
        .unwrap();
    let back = names(staying.client.directory("soon").await.unwrap());
    assert_eq!(back, vec!["Dr. Soon Gone".to_owned()]);
    server.stop().await;
}

async fn challenge_requests_cannot_lock_a_device_out(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut admin = first_admin(&server).await;
    let client = admin.anonymous(&server);
    // Someone else asks for more challenges for this device than its
    // allowance of failures...
    for _ in 0..25 {
        client.challenge(&admin.device_id).await.unwrap();
    }
    // ...and the device can still log in.
    admin.login().await;

    // A device id of the wrong form never reaches the database.
    let error = client.challenge(&"x".repeat(5000)).await.unwrap_err();
    assert_eq!(api_status(&error), Some(StatusCode::BAD_REQUEST));

    // The client refuses a challenge from a server other than its own.
    let error = admin
        .client
        .login_with_key("some-other-server", &admin.device_id.clone(), &admin.key)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::WrongServer), "{error}");
    server.stop().await;
}

async fn the_last_administrator_stays(backend: Backend) {
    use curbside_proto::identity::UserUpdate;
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let demote_self = admin
        .client
        .update_user(
            &admin.user.user_id,
            &UserUpdate {
                role: Some(Role::Clinician),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(&demote_self), Some(StatusCode::CONFLICT));

    // With a second administrator, one may demote the other, but not the
    // last one left.
    let second = person(&server, &admin, "Dr. Second Admin", Role::Admin).await;
    second
        .client
        .update_user(
            &admin.user.user_id,
            &UserUpdate {
                role: Some(Role::Auditor),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    // The demoted admin's very next admin request is refused; as an
    // auditor they may still read the user list (names for the log).
    let error = admin
        .client
        .list_devices(&admin.user.user_id)
        .await
        .unwrap_err();
    assert_eq!(api_status(&error), Some(StatusCode::FORBIDDEN));
    let listed = admin.client.list_users("", None, None, None).await.unwrap();
    assert!(
        listed
            .users
            .iter()
            .any(|user| user.user_id == admin.user.user_id)
    );
    let third = person(&server, &second, "Dr. Third", Role::Clinician).await;
    // second is now the only admin and cannot be deactivated by anyone.
    let error = second
        .client
        .set_user_active(&second.user.user_id, false)
        .await
        .unwrap_err();
    assert_eq!(api_status(&error), Some(StatusCode::CONFLICT));
    assert_eq!(third.user.role, Role::Clinician);
    server.stop().await;
}

async fn failed_logins_are_limited_per_device(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let client = admin.anonymous(&server);
    // Failed logins do count, per device.
    let mut limited = false;
    for _ in 0..25 {
        let challenge = client.challenge(&admin.device_id).await.unwrap();
        let error = client
            .login(&LoginRequest {
                challenge_id: challenge.challenge_id,
                device_id: admin.device_id.clone(),
                signature: vec![0; 64],
            })
            .await
            .unwrap_err();
        match api_status(&error) {
            Some(StatusCode::UNAUTHORIZED) => {}
            Some(StatusCode::TOO_MANY_REQUESTS) => {
                limited = true;
                break;
            }
            other => panic!("unexpected {other:?}: {error}"),
        }
    }
    assert!(limited, "failed logins were never limited");
    server.stop().await;
}

/// Someone who knows a colleague's device id (the directory lists them)
/// sends bogus logins for it from another address, as fast as they are
/// let: they spend only their own allowance, and the device still signs in.
async fn bogus_logins_from_elsewhere_do_not_lock_a_device_out(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let mut victim = first_admin(&server).await;
    let attacker = curbside_cli::Client::new_from(
        &server.url,
        &curbside_cli::Trust::Pin(server.fingerprint),
        Some(std::net::IpAddr::from([127, 0, 0, 2])),
    )
    .unwrap();
    let (mut refused, mut limited) = (0, false);
    for _ in 0..40 {
        let Ok(challenge) = attacker.challenge(&victim.device_id).await else {
            break;
        };
        let error = attacker
            .login(&LoginRequest {
                challenge_id: challenge.challenge_id,
                device_id: victim.device_id.clone(),
                signature: vec![7; 64],
            })
            .await
            .unwrap_err();
        match api_status(&error) {
            Some(StatusCode::UNAUTHORIZED) => refused += 1,
            Some(StatusCode::TOO_MANY_REQUESTS) => {
                limited = true;
                break;
            }
            other => panic!("unexpected {other:?}: {error}"),
        }
    }
    assert!(refused >= 20, "only {refused} bogus logins were answered");
    assert!(limited, "the attacker's failures were never limited");
    // The device's own logins, from its own address, go through, again and
    // again.
    for _ in 0..3 {
        victim.login().await;
        victim.client.whoami().await.unwrap();
    }
    server.stop().await;
}

/// A challenge is issued alike for an active device, an unknown one, a
/// removed one and one of a deactivated user; a refused login says the
/// same for a bad signature and for each device that may not sign in.
async fn sign_in_tells_no_one_which_devices_are_active(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let removed = person(&server, &admin, "Dr. Removed Device", Role::Clinician).await;
    admin
        .client
        .remove_device(&removed.user.user_id, &removed.device_id)
        .await
        .unwrap();
    let deactivated = person(&server, &admin, "Dr. Deactivated", Role::Clinician).await;
    admin
        .client
        .set_user_active(&deactivated.user.user_id, false)
        .await
        .unwrap();
    let stranger = admin.anonymous(&server);
    let unknown = "0123456789abcdef0123456789abcdef".to_owned();
    let mut messages = Vec::new();
    for device_id in [
        &admin.device_id,
        &unknown,
        &removed.device_id,
        &deactivated.device_id,
    ] {
        let challenge = stranger.challenge(device_id).await.unwrap();
        assert_eq!(challenge.nonce.len(), 32);
        assert_eq!(challenge.server_id, admin.server_id);
        // The right key, where there is one: refused all the same.
        let key = if device_id == &removed.device_id {
            Some(&removed.key)
        } else if device_id == &deactivated.device_id {
            Some(&deactivated.key)
        } else {
            None
        };
        let signature = match key {
            Some(key) => key
                .sign(&login_message(
                    &admin.server_id,
                    device_id,
                    &challenge.nonce,
                ))
                .as_ref()
                .to_vec(),
            None => vec![1; 64],
        };
        let error = stranger
            .login(&LoginRequest {
                challenge_id: challenge.challenge_id,
                device_id: device_id.clone(),
                signature,
            })
            .await
            .unwrap_err();
        assert_eq!(api_status(&error), Some(StatusCode::UNAUTHORIZED));
        messages.push(error.to_string());
    }
    messages.dedup();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains("ask your administrator"),
        "{messages:#?}"
    );
    server.stop().await;
}

/// A search answers a page at a time, and a colleague may look people up,
/// or read the audit log, at a person's pace but not at a machine's.
async fn directory_and_audit_reads_are_paged_and_limited(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    for n in 0..120 {
        admin
            .client
            .create_user(&NewUser {
                display_name: format!("Dr. Pager {n:03}"),
                role: Role::Clinician,
                department: "Oncology".to_owned(),
                licence_number: None,
                user_name: None,
                external_id: None,
            })
            .await
            .unwrap();
    }
    let clinician = person(&server, &admin, "Dr. Looker", Role::Clinician).await;
    let mut names = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let page = clinician
            .client
            .directory_page("pager", after.as_deref(), Some(50))
            .await
            .unwrap();
        pages += 1;
        assert!(page.entries.len() <= 50);
        names.extend(page.entries.into_iter().map(|entry| entry.display_name));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..120).map(|n| format!("Dr. Pager {n:03}")).collect();
    assert_eq!(names, expected, "every match once, in name order");
    // With no limit given, a page holds 50.
    assert_eq!(
        clinician
            .client
            .directory("pager")
            .await
            .unwrap()
            .entries
            .len(),
        50
    );

    // One search after another, as fast as a program can: refused soon.
    let mut searches = 0;
    let limited = loop {
        searches += 1;
        match clinician.client.directory("p").await {
            Ok(_) => assert!(searches < 200, "searches were never limited"),
            Err(error) => break api_status(&error),
        }
    };
    assert_eq!(limited, Some(StatusCode::TOO_MANY_REQUESTS));
    assert!(searches > 20, "limited after only {searches} searches");
    // Others are not affected.
    admin.client.directory("pager").await.unwrap();

    let mut reads = 0;
    let limited = loop {
        reads += 1;
        match admin.client.audit_search(&Default::default()).await {
            Ok(_) => assert!(reads < 200, "audit reads were never limited"),
            Err(error) => break api_status(&error),
        }
    };
    assert_eq!(limited, Some(StatusCode::TOO_MANY_REQUESTS));
    assert!(reads > 30, "limited after only {reads} audit pages");
    server.stop().await;
}

/// An administrator lists a user's live sessions (with the address each
/// signed in from) and ends one: its next request is refused, the user's
/// other session works on; a session named under another user is not
/// found, and ends nothing.
async fn an_administrator_sees_and_ends_one_session(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let first = person(&server, &admin, "Dr. Two Sessions", Role::Clinician).await;
    let mut second = server.client();
    second
        .login_with_key(&first.server_id, &first.device_id, &first.key)
        .await
        .unwrap();
    let other = person(&server, &admin, "Dr. Other", Role::Clinician).await;
    let http = server.http();
    let sessions: Value = http
        .get(format!(
            "{}/v1/admin/users/{}/sessions",
            server.url, first.user.user_id
        ))
        .bearer_auth(admin.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sessions = sessions["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for session in &sessions {
        assert_eq!(session["client_address"], "127.0.0.1", "{session}");
        assert_eq!(session["device_id"], first.device_id.as_str(), "{session}");
    }
    let newest = sessions[0]["session_id"].as_str().unwrap();
    // Under another user's id: not found, and nothing ends.
    let wrong = http
        .post(format!(
            "{}/v1/admin/users/{}/sessions/{newest}/end",
            server.url, other.user.user_id
        ))
        .bearer_auth(admin.token())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    second.whoami().await.unwrap();
    let ended = http
        .post(format!(
            "{}/v1/admin/users/{}/sessions/{newest}/end",
            server.url, first.user.user_id
        ))
        .bearer_auth(admin.token())
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    let refused = second.whoami().await.unwrap_err();
    assert_eq!(api_status(&refused), Some(StatusCode::UNAUTHORIZED));
    first.client.whoami().await.unwrap();
    server.stop().await;
}
