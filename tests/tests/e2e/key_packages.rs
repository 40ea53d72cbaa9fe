//! MLS key packages: each ordinary package is handed out once, even to
//! racing claims; the last-resort package comes after; claims cover every
//! active device but the caller's; bad uploads and claims are refused.

use std::collections::HashSet;

use curbside_cli::ClientError;
use curbside_proto::identity::Role;
use curbside_proto::threads::{Blob, KeyPackageUpload, MAX_KEY_PACKAGE_BYTES};
use curbside_tests::{Backend, TestEnv, backend_tests};

use crate::people::{enroll, first_admin, person};

backend_tests!(
    packages_are_handed_out_once_then_the_last_resort,
    racing_claims_never_share_a_package,
    claims_cover_every_active_device_but_the_callers,
    bad_uploads_and_claims_are_refused,
);

/// `n` distinct fake packages tagged with `tag`.
fn packages(tag: &str, n: usize) -> Vec<Blob> {
    (0..n)
        .map(|i| Blob(format!("{tag}-package-{i}").into_bytes()))
        .collect()
}

fn status(result: &Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(ClientError::Api { status, .. }) => status.as_u16(),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn packages_are_handed_out_once_then_the_last_resort(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = person(&server, &admin, "Dr. Ana", Role::Clinician).await;
    let ben = person(&server, &admin, "Dr. Ben", Role::Clinician).await;

    let count = ana
        .client
        .upload_key_packages(&KeyPackageUpload {
            packages: packages("ana", 3),
            last_resort: Some(Blob(b"ana-last-resort".to_vec())),
        })
        .await
        .unwrap();
    assert_eq!((count.available, count.last_resort), (3, true));

    let mut seen = HashSet::new();
    for left in [2, 1, 0] {
        let claimed = ben
            .client
            .claim_key_packages(&ana.user.user_id)
            .await
            .unwrap();
        assert_eq!(claimed.packages.len(), 1);
        let package = &claimed.packages[0];
        assert_eq!(package.device_id, ana.device_id);
        assert!(!package.last_resort);
        assert!(seen.insert(package.key_package.clone()), "handed out twice");
        assert_eq!(
            ana.client.key_package_count().await.unwrap().available,
            left
        );
    }
    for _ in 0..2 {
        let claimed = ben
            .client
            .claim_key_packages(&ana.user.user_id)
            .await
            .unwrap();
        assert!(claimed.packages[0].last_resort);
        assert_eq!(claimed.packages[0].key_package.0, b"ana-last-resort");
    }

    // A new last-resort package replaces the old one.
    ana.client
        .upload_key_packages(&KeyPackageUpload {
            packages: Vec::new(),
            last_resort: Some(Blob(b"ana-last-resort-2".to_vec())),
        })
        .await
        .unwrap();
    let claimed = ben
        .client
        .claim_key_packages(&ana.user.user_id)
        .await
        .unwrap();
    assert_eq!(claimed.packages[0].key_package.0, b"ana-last-resort-2");

    // Each claim is audited against the user whose packages were taken.
    let page = admin
        .client
        .audit_search(&curbside_proto::audit_review::SearchQuery {
            action: Some("key_package.claim".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 6);
    assert!(page.entries.iter().all(|recorded| {
        recorded.entry.resource_id.as_deref() == Some(ana.user.user_id.as_str())
            && recorded.entry.actor_user.as_deref() == Some(ben.user.user_id.as_str())
    }));
}

async fn racing_claims_never_share_a_package(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = person(&server, &admin, "Dr. Ana", Role::Clinician).await;
    let ben = person(&server, &admin, "Dr. Ben", Role::Clinician).await;
    // Uploads racing from two devices all land.
    let mut uploads = Vec::new();
    for i in 0..8 {
        let (client, tag) = if i % 2 == 0 {
            (ana.client.clone(), format!("ana{i}"))
        } else {
            (ben.client.clone(), format!("ben{i}"))
        };
        uploads.push(tokio::spawn(async move {
            client
                .upload_key_packages(&KeyPackageUpload {
                    packages: packages(&tag, 2),
                    last_resort: None,
                })
                .await
                .unwrap()
        }));
    }
    for upload in uploads {
        upload.await.unwrap();
    }
    assert_eq!(ana.client.key_package_count().await.unwrap().available, 8);
    ana.client
        .upload_key_packages(&KeyPackageUpload {
            packages: packages("ana", 2),
            last_resort: Some(Blob(b"ana-last-resort".to_vec())),
        })
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = ben.client.clone();
        let user_id = ana.user.user_id.clone();
        tasks.push(tokio::spawn(async move {
            client.claim_key_packages(&user_id).await.unwrap()
        }));
    }
    let mut ordinary = HashSet::new();
    let mut last_resort = 0;
    for task in tasks {
        let claimed = task.await.unwrap();
        let package = &claimed.packages[0];
        if package.last_resort {
            last_resort += 1;
        } else {
            assert!(
                ordinary.insert(package.key_package.clone()),
                "handed out twice"
            );
        }
    }
    assert_eq!((ordinary.len(), last_resort), (10, 6));
}

async fn claims_cover_every_active_device_but_the_callers(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = person(&server, &admin, "Dr. Ana", Role::Clinician).await;
    // Ana's second device, with packages; her first has none.
    let code = admin
        .client
        .issue_enrollment_code(&ana.user.user_id)
        .await
        .unwrap();
    let mut tablet = enroll(&server, &code.code, None).await;
    tablet.login().await;
    tablet
        .client
        .upload_key_packages(&KeyPackageUpload {
            packages: packages("tablet", 2),
            last_resort: None,
        })
        .await
        .unwrap();

    // Ana adds her own other devices to a thread: her phone sees the
    // tablet's package, not its own.
    let claimed = ana
        .client
        .claim_key_packages(&ana.user.user_id)
        .await
        .unwrap();
    assert_eq!(claimed.packages.len(), 1);
    assert_eq!(claimed.packages[0].device_id, tablet.device_id);
    assert!(claimed.without_packages.is_empty());

    // Someone else sees both: one with a package, one without.
    let ben = person(&server, &admin, "Dr. Ben", Role::Clinician).await;
    let claimed = ben
        .client
        .claim_key_packages(&ana.user.user_id)
        .await
        .unwrap();
    assert_eq!(claimed.packages.len(), 1);
    assert_eq!(claimed.without_packages, vec![ana.device_id.clone()]);

    // A removed device drops out.
    admin
        .client
        .remove_device(&ana.user.user_id, &tablet.device_id)
        .await
        .unwrap();
    let claimed = ben
        .client
        .claim_key_packages(&ana.user.user_id)
        .await
        .unwrap();
    assert!(claimed.packages.is_empty());
    assert_eq!(claimed.without_packages, vec![ana.device_id.clone()]);

    // A deactivated user is not found at all.
    admin
        .client
        .set_user_active(&ana.user.user_id, false)
        .await
        .unwrap();
    assert_eq!(
        status(&ben.client.claim_key_packages(&ana.user.user_id).await),
        404
    );
}

async fn bad_uploads_and_claims_are_refused(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let admin = first_admin(&server).await;
    let ana = person(&server, &admin, "Dr. Ana", Role::Clinician).await;

    let empty = KeyPackageUpload {
        packages: Vec::new(),
        last_resort: None,
    };
    assert_eq!(status(&ana.client.upload_key_packages(&empty).await), 400);
    let too_big = KeyPackageUpload {
        packages: vec![Blob(vec![7; MAX_KEY_PACKAGE_BYTES + 1])],
        last_resort: None,
    };
    assert_eq!(status(&ana.client.upload_key_packages(&too_big).await), 400);
    let too_many = KeyPackageUpload {
        packages: packages("many", 101),
        last_resort: None,
    };
    assert_eq!(
        status(&ana.client.upload_key_packages(&too_many).await),
        400
    );

    // Not base64url: refused with the API's error, before any work.
    let response = server
        .http()
        .post(format!("{}/v1/key-packages", server.url))
        .bearer_auth(ana.token())
        .header("content-type", "application/json")
        .body(r#"{"packages":["not base64!"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // A device holds at most 500 unclaimed packages.
    for round in 0..5 {
        let upload = KeyPackageUpload {
            packages: packages(&format!("round{round}"), 100),
            last_resort: None,
        };
        ana.client.upload_key_packages(&upload).await.unwrap();
    }
    let one_more = KeyPackageUpload {
        packages: packages("over", 1),
        last_resort: None,
    };
    assert_eq!(
        status(&ana.client.upload_key_packages(&one_more).await),
        409
    );

    // Unknown users are not found; claims need a session.
    assert_eq!(
        status(&ana.client.claim_key_packages(&"0".repeat(32)).await),
        404
    );
    assert_eq!(
        status(
            &ana.anonymous(&server)
                .claim_key_packages(&ana.user.user_id)
                .await
        ),
        401
    );

    // Claims are rate-limited per claiming user.
    let ben = person(&server, &admin, "Dr. Ben", Role::Clinician).await;
    let mut refused = None;
    for attempt in 0..150 {
        if let Err(ClientError::Api { status, .. }) =
            ben.client.claim_key_packages(&ana.user.user_id).await
            && status == 429
        {
            refused = Some(attempt);
            break;
        }
    }
    assert!(refused.is_some_and(|attempt| attempt >= 100), "{refused:?}");
}
