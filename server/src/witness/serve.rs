//! The witness's HTTPS front: `POST /add-checkpoint` and
//! `GET /<origin hash>/checkpoint` of `c2sp.org/tlog-witness`, over TLS
//! only, with a generated certificate its clients pin (as they pin the
//! server's).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use curbside_proto::note::NoteKey;
use curbside_proto::witness::{ADD_CHECKPOINT_PATH, Refusal, SIZE_CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::Witness;
use crate::config::{LogFormat, TlsSource};
use crate::connection::HTTP1_HEADER_TIMEOUT;
use crate::telemetry;
use crate::tls;

/// The largest request body: 63 proof lines and a checkpoint with its
/// signatures fit many times over.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// How long one connection may take, handshake included.
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// `curbside-server witness`'s options.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Where the witness keeps its key, certificate and what it cosigned
    /// (back it up: a witness that loses it must be retired).
    #[arg(
        long,
        env = "CURBSIDE_WITNESS_DATA_DIR",
        default_value = "./curbside-witness"
    )]
    pub data_dir: PathBuf,
    /// The address to serve HTTPS on.
    #[arg(
        long,
        env = "CURBSIDE_WITNESS_LISTEN",
        default_value = "127.0.0.1:8444"
    )]
    pub listen: SocketAddr,
    /// The witness's name in its cosignatures, a URL without scheme (e.g.
    /// witness.hospital.example/audit).
    #[arg(long, env = "CURBSIDE_WITNESS_NAME")]
    pub name: String,
    /// A log to witness: the audit log key `curbside-server serve` prints
    /// ("Audit log key: ..."). Repeatable; give a log's old and new keys
    /// to follow it across a key rotation.
    #[arg(long = "log", value_name = "KEY", required = true)]
    pub logs: Vec<String>,
    /// Extra host name or IP address for the generated certificate
    /// (repeatable).
    #[arg(long = "hostname", value_name = "NAME")]
    pub hostnames: Vec<String>,
}

/// Runs the witness until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl std::future::Future<Output = ()>) -> ExitCode {
    telemetry::init(LogFormat::Text);
    let mut logs = Vec::new();
    for text in &options.logs {
        let Some(key) = NoteKey::from_verifier_string(text) else {
            telemetry::report(&format!(
                "curbside-server witness: {text:?} is not an audit log key; give the line \
                 `curbside-server serve` prints after \"Audit log key:\""
            ));
            return ExitCode::from(2);
        };
        logs.push(key);
    }
    let witness = match Witness::open(&options.data_dir, &options.name, &logs) {
        Ok(witness) => Arc::new(witness),
        Err(error) => {
            telemetry::report(&format!("curbside-server witness: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let source = TlsSource::Generated {
        hostnames: options.hostnames.clone(),
    };
    let identity = match tls::load_or_generate(&source, &options.data_dir) {
        Ok(identity) => identity,
        Err(error) => {
            telemetry::report(&format!("curbside-server witness: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            telemetry::report(&format!(
                "curbside-server witness: cannot listen on {} (--listen): {error}",
                options.listen
            ));
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(options.listen);
    let mut banner = format!(
        "Curbside witness serving HTTPS on https://{address}\n\
         TLS certificate SHA-256 fingerprint: {}\n\
         Witness key: {}\n",
        identity.fingerprint,
        witness.key().verifier_string(),
    );
    for origin in witness.origins() {
        banner.push_str(&format!("Witnessing: {origin}\n"));
    }
    banner.push_str(&format!(
        "Configure a server with: --audit-witness \"https://{address} {} {}\"\n",
        identity.fingerprint,
        witness.key().verifier_string(),
    ));
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    let mut config = (*identity.config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    serve(witness, Arc::new(config), listener, shutdown).await;
    telemetry::flush();
    ExitCode::SUCCESS
}

/// Serves the witness's routes on `listener` until `shutdown` completes.
pub async fn serve(
    witness: Arc<Witness>,
    tls: Arc<rustls::ServerConfig>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = router(witness);
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = async {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: axum::http::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(request.map(axum::body::Body::new))
                    },
                );
                let mut http = http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HTTP1_HEADER_TIMEOUT);
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            };
            let _ = tokio::time::timeout(CONNECTION_LIMIT, served).await;
        });
    }
}

fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route(ADD_CHECKPOINT_PATH, post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(witness)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: String) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    // In a task of its own: a client hanging up cannot cut the check, the
    // signing and the writing of the state apart.
    let decided = tokio::spawn(async move { witness.add_checkpoint(&body, now).await })
        .await
        .unwrap_or(Err(Refusal::Unavailable));
    match decided {
        Ok(line) => text(StatusCode::OK, "text/plain; charset=utf-8", line),
        Err(Refusal::Conflict(size)) => {
            text(StatusCode::CONFLICT, SIZE_CONTENT_TYPE, format!("{size}\n"))
        }
        Err(refusal) => text(
            StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST),
            "text/plain; charset=utf-8",
            format!("{refusal}\n"),
        ),
    }
}

async fn checkpoint(
    State(witness): State<Arc<Witness>>,
    Path(origin_hash): Path<String>,
) -> Response {
    match witness.checkpoint(&origin_hash).await {
        Some(note) => text(StatusCode::OK, "text/plain; charset=utf-8", note),
        None => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "this witness has cosigned no checkpoint of that log\n".to_owned(),
        ),
    }
}
