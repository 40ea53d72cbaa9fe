//! Device-signed receipts as evidence of access: a read receipt's
//! signature, kept in its audit entry, verifies offline against the
//! device's public key from the directory (checked here from the spec's
//! message format alone); and nothing the server holds can make one for a
//! device, which the test tries with every key in the server's data
//! directory.

use curbside_proto::audit::AuditEntry;
use curbside_proto::audit_review::SearchQuery;
use curbside_proto::threads::{Receipt, ReceiptKind};
use curbside_tests::{Backend, TestEnv, backend_tests};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::people::Person;
use crate::threads::{send, three};

backend_tests!(a_read_receipt_is_the_devices_signature_and_the_server_cannot_make_one);

/// The message a receipt signs, written from docs/audit-format.md.
fn message(
    server: &str,
    device: &str,
    thread: &str,
    kind: &str,
    through: u64,
    time: i64,
) -> String {
    format!(
        "curbside receipt v1\nserver={server}\ndevice={device}\nthread={thread}\nkind={kind}\n\
         through={through}\ntime_ms={time}\n"
    )
}

/// `receipt v1 through=N time_ms=T signature=S`, read by hand.
fn evidence(entry: &AuditEntry) -> (u64, i64, Vec<u8>) {
    let text = entry
        .evidence
        .as_deref()
        .expect("the entry keeps the receipt");
    let words: Vec<&str> = text.split(' ').collect();
    assert_eq!(&words[..2], ["receipt", "v1"], "{text}");
    let value = |name: &str| {
        words
            .iter()
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .unwrap()
    };
    (
        value("through").parse().unwrap(),
        value("time_ms").parse().unwrap(),
        curbside_proto::b64::decode(value("signature")).unwrap(),
    )
}

async fn receipt_entries(admin: &Person, action: &str) -> Vec<AuditEntry> {
    let page = admin
        .client
        .audit_search(&SearchQuery {
            action: Some(action.to_owned()),
            limit: Some(100),
            ..SearchQuery::default()
        })
        .await
        .unwrap();
    page.entries
        .into_iter()
        .map(|recorded| recorded.entry)
        .collect()
}

async fn a_read_receipt_is_the_devices_signature_and_the_server_cannot_make_one(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let (admin, ana, ben, _cal, thread) = three(&server).await;
    for text in ["one", "two", "three"] {
        send(&ana.client, &thread, 1, text).await.unwrap();
    }
    ben.receipt(&thread, 3, true).await.unwrap();

    // The entry keeps the signature; with Ben's device key from the
    // directory, anyone can check it offline.
    let read = receipt_entries(&admin, "thread.receipt.read").await;
    let [entry] = &read[..] else {
        panic!("one read receipt: {read:#?}");
    };
    assert_eq!(entry.actor_device.as_deref(), Some(ben.device_id.as_str()));
    assert_eq!(entry.resource_id.as_deref(), Some(thread.as_str()));
    let (through, time_ms, signature) = evidence(entry);
    assert_eq!(through, 3);
    let directory = ana.client.directory_user(&ben.user.user_id).await.unwrap();
    let public_key = directory
        .devices
        .iter()
        .find(|device| device.device_id == ben.device_id)
        .unwrap()
        .public_key
        .clone();
    let server_id = &admin.client.audit_key().await.unwrap().server_id;
    let signed = message(server_id, &ben.device_id, &thread, "read", through, time_ms);
    UnparsedPublicKey::new(&ED25519, &public_key)
        .verify(signed.as_bytes(), &signature)
        .expect("Ben's device signed the read receipt");
    // It says exactly that: not another thread, range or kind.
    for other in [
        message(
            server_id,
            &ben.device_id,
            &thread,
            "delivered",
            through,
            time_ms,
        ),
        message(server_id, &ben.device_id, &thread, "read", 2, time_ms),
        message(server_id, &ana.device_id, &thread, "read", through, time_ms),
    ] {
        assert!(
            UnparsedPublicKey::new(&ED25519, &public_key)
                .verify(other.as_bytes(), &signature)
                .is_err()
        );
    }

    // The server's side tries: every key in its data directory signs a
    // receipt for Ben's device; none verifies with Ben's key, and the
    // server refuses each one when it is sent with Ben's session.
    let mut server_keys = Vec::new();
    for file in std::fs::read_dir(env.data_dir().join("keys")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        if let Ok(key) = Ed25519KeyPair::from_pkcs8(&bytes) {
            server_keys.push(key);
        }
    }
    assert!(!server_keys.is_empty(), "the audit key at least");
    let now = curbside_cli::clock::now_ms();
    for key in &server_keys {
        assert_ne!(key.public_key().as_ref(), public_key.as_slice());
        let forged = message(server_id, &ben.device_id, &thread, "delivered", 3, now);
        let signature = key.sign(forged.as_bytes()).as_ref().to_vec();
        assert!(
            UnparsedPublicKey::new(&ED25519, &public_key)
                .verify(forged.as_bytes(), &signature)
                .is_err()
        );
        let refused = ben
            .client
            .receipt(
                &thread,
                ReceiptKind::Delivered,
                &Receipt {
                    seq: 3,
                    time_ms: now,
                    signature,
                },
            )
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("signature"), "{refused}");
    }
    // Ben's own signature replayed for another kind or range, or Ana's key
    // signing for Ben, or a receipt from an hour ago: refused too.
    let genuine = ben.signed_receipt(&thread, ReceiptKind::Read, 3);
    let moved = Receipt {
        seq: 2,
        ..genuine.clone()
    };
    let anas = {
        let mut receipt = ben.signed_receipt(&thread, ReceiptKind::Delivered, 3);
        let signed = message(
            server_id,
            &ben.device_id,
            &thread,
            "delivered",
            3,
            receipt.time_ms,
        );
        receipt.signature = ana.key.sign(signed.as_bytes()).as_ref().to_vec();
        receipt
    };
    for (kind, receipt) in [
        (ReceiptKind::Delivered, genuine.clone()),
        (ReceiptKind::Read, moved),
        (ReceiptKind::Delivered, anas),
    ] {
        let refused = ben
            .client
            .receipt(&thread, kind, &receipt)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("signature"), "{refused}");
    }
    let stale = {
        let time_ms = now - 3_600_000;
        let signed = message(server_id, &ben.device_id, &thread, "read", 3, time_ms);
        Receipt {
            seq: 3,
            time_ms,
            signature: ben.key.sign(signed.as_bytes()).as_ref().to_vec(),
        }
    };
    let refused = ben
        .client
        .receipt(&thread, ReceiptKind::Read, &stale)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("clock"), "{refused}");

    // No refused receipt left evidence: the log's only signed receipt is
    // Ben's genuine one.
    let delivered = receipt_entries(&admin, "thread.receipt.delivered").await;
    assert!(delivered.iter().all(|entry| entry.evidence.is_none()));
    assert_eq!(
        receipt_entries(&admin, "thread.receipt.read")
            .await
            .iter()
            .filter(|entry| entry.evidence.is_some())
            .count(),
        1
    );
    server.stop().await;
}
