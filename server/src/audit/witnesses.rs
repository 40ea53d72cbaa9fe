//! Sending the audit log's checkpoints to its witnesses
//! (`c2sp.org/tlog-witness`) and keeping their cosignatures.
//!
//! For each configured witness a task looks at the log's latest checkpoint
//! every [`EVERY`]; when the tree has grown since the witness last
//! cosigned, it submits the checkpoint with the consistency proof from that
//! size, checks the cosignature that comes back against the witness's key
//! and keeps it (`audit_cosignature`, the latest per witness: each
//! cosignature vouches for every tree before it). A witness that answers
//! 409 says which size it last cosigned, and the proof is made from there.
//! One that refuses with 422 has seen a tree this log's is not an
//! extension of: the log was rewound or forked, which is logged as an
//! error every time it happens.

use std::sync::Arc;
use std::time::Duration;

use curbside_proto::CertificateFingerprint;
use curbside_proto::note::TreeHead;
use curbside_proto::witness::{ADD_CHECKPOINT_PATH, AddCheckpoint};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::tree;
use crate::config::WitnessTarget;
use crate::db::Database;
use crate::db::audit as rows;
use crate::db::audit_cosignature;

/// How often each witness is offered the latest checkpoint.
pub const EVERY: Duration = Duration::from_secs(1);
/// How long to wait after a witness refused or could not be reached.
const AFTER_FAILURE: Duration = Duration::from_secs(10);
/// How long one submission may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts one task per witness; they run until aborted.
pub fn start(
    database: Database,
    witnesses: Vec<WitnessTarget>,
) -> Vec<tokio::task::JoinHandle<()>> {
    witnesses
        .into_iter()
        .filter_map(|witness| match client(witness.pin) {
            Ok(client) => {
                let database = database.clone();
                Some(tokio::spawn(follow(database, witness, client)))
            }
            Err(error) => {
                tracing::error!(witness = %witness.key.name, %error, "cannot set up TLS for the witness");
                None
            }
        })
        .collect()
}

/// What one submission came to.
enum Outcome {
    /// Cosigned (or nothing new to submit).
    Done,
    /// The witness last cosigned another size: submit again from it.
    Conflict(u64),
    /// Refused or unreachable: wait before trying again.
    Failed,
}

async fn follow(database: Database, witness: WitnessTarget, client: reqwest::Client) {
    let name = witness.key.verifier_string();
    // The size the witness last cosigned, as far as this log knows.
    let mut cosigned = match audit_cosignature::latest_of(database.pool(), &name).await {
        Ok(row) => row.map_or(0, |row| u64::try_from(row.size).unwrap_or(0)),
        Err(_) => 0,
    };
    loop {
        match submit(&database, &witness, &client, &name, cosigned).await {
            Ok((Outcome::Done, size)) => {
                cosigned = size;
                tokio::time::sleep(EVERY).await;
            }
            Ok((Outcome::Conflict(size), _)) if size != cosigned => {
                cosigned = size;
                // A witness that keeps changing its answer gets no tight loop.
                tokio::time::sleep(EVERY).await;
            }
            Ok((Outcome::Conflict(_) | Outcome::Failed, _)) => {
                tokio::time::sleep(AFTER_FAILURE).await;
            }
            Err(error) => {
                tracing::warn!(witness = %witness.key.name, %error, "cannot prepare the checkpoint for the witness");
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }
}

/// Submits the latest checkpoint to `witness`, which last cosigned `old`:
/// the outcome and the size now cosigned.
async fn submit(
    database: &Database,
    witness: &WitnessTarget,
    client: &reqwest::Client,
    name: &str,
    old: u64,
) -> Result<(Outcome, u64), super::AuditError> {
    let pool = database.pool();
    let head = rows::head(pool).await?;
    let Some(note) = head.tree_note else {
        return Ok((Outcome::Done, old));
    };
    let size = TreeHead::from_note(&note)
        .map_err(|_| super::AuditError::TreeDamaged)?
        .size;
    if size == old {
        return Ok((Outcome::Done, old));
    }
    if size < old {
        tracing::error!(
            witness = %witness.key.name,
            cosigned = old,
            size,
            "the audit log is smaller than a tree this witness cosigned: entries were removed \
             from its end (a rewind); the witness will refuse this log's checkpoints"
        );
    }
    let proof = if old == 0 || old >= size {
        Vec::new()
    } else {
        tree::consistency_proof(pool, old, size).await?
    };
    let body = AddCheckpoint {
        old_size: old,
        proof,
        checkpoint: note.clone(),
    }
    .to_text();
    let url = format!("{}{ADD_CHECKPOINT_PATH}", witness.url);
    let response = match client.post(&url).body(body).send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(witness = %witness.key.name, %url, error = %error, "cannot reach the witness");
            return Ok((Outcome::Failed, old));
        }
    };
    let status = response.status().as_u16();
    let text = bounded_text(response).await;
    match status {
        200 => {
            let cosigned = format!("{note}{text}");
            if let Err(error) = witness.key.verify(&cosigned) {
                tracing::error!(witness = %witness.key.name, %error, "the witness's answer is not its valid cosignature");
                return Ok((Outcome::Failed, old));
            }
            let stored = i64::try_from(size).unwrap_or(i64::MAX);
            audit_cosignature::record(pool, name, stored, &cosigned, crate::clock::now_ms())
                .await?;
            tracing::debug!(witness = %witness.key.name, size, "the witness cosigned");
            Ok((Outcome::Done, size))
        }
        409 => match text.trim().parse::<u64>() {
            Ok(witness_size) => {
                if witness_size > size {
                    tracing::error!(
                        witness = %witness.key.name,
                        witness_size,
                        size,
                        "the witness cosigned a larger tree than this audit log holds: entries \
                         were removed from the log's end (a rewind)"
                    );
                }
                Ok((Outcome::Conflict(witness_size), old))
            }
            Err(_) => {
                tracing::warn!(witness = %witness.key.name, "the witness answered 409 without a size");
                Ok((Outcome::Failed, old))
            }
        },
        422 => {
            tracing::error!(
                witness = %witness.key.name,
                cosigned = old,
                size,
                refusal = %text.trim().chars().take(512).collect::<String>(),
                "the witness refused to cosign: this audit log is not an extension of the tree it \
                 cosigned before, so the log was rewound or forked; compare it with a backup and \
                 the witness's checkpoint"
            );
            Ok((Outcome::Failed, old))
        }
        _ => {
            tracing::warn!(
                witness = %witness.key.name,
                status,
                answer = %text.trim().chars().take(512).collect::<String>(),
                "the witness did not cosign (check that it follows this log's audit key)"
            );
            Ok((Outcome::Failed, old))
        }
    }
}

/// The most of a witness's answer read: cosignature lines, a size or a
/// short refusal fit many times over.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The answer's text, cut at [`MAX_ANSWER_BYTES`] (a witness's answer is
/// small; a larger one is not read further).
async fn bounded_text(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER_BYTES.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An HTTPS client that trusts exactly the certificate with fingerprint
/// `pin` (the witness's generated one).
fn client(pin: CertificateFingerprint) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())
}

/// Accepts exactly the pinned certificate; the handshake's signatures are
/// verified as usual.
#[derive(Debug)]
struct PinVerifier {
    pin: CertificateFingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if CertificateFingerprint::of_der(end_entity.as_ref()) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
