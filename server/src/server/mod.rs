//! The TLS accept loop: the server's core, which takes an already-bound
//! listener and a shutdown future so tests can run it on port 0.
//!
//! There is no plain-text path: every accepted TCP connection goes through
//! the rustls handshake first, and a connection that does not complete it
//! within a few seconds is dropped without an HTTP response. What each
//! connection may then do, and for how long, is `crate::connection`;
//! serving it over HTTP/1.1 or HTTP/2 is `protocols`.

mod protocols;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use curbside_proto::CertificateFingerprint;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::auth::rate_limit::{RateLimiter, address_key};
use crate::auth::sessions::SessionCache;
use crate::auth::tokens::TokenIssuer;
use crate::auth::{self, Auth, IssueError};
use crate::clock::now_ms;
use crate::config::Config;
use crate::connection::{AddressShares, HANDSHAKE_TIMEOUT, Hold};
use crate::db::{Database, DbError};
use crate::disk::DiskGuard;
use crate::files::{self, FileError, KeyError};
use crate::http::refusals::Refusals;
use crate::http::{self, AppState};
use crate::metrics::{Metrics, WriterMetrics};
use crate::pipeline::writer::{AuditLog, AuditWriter};
use crate::push::Events;
use crate::tls::{self, TlsError, TlsIdentity};
use protocols::Protocols;

/// How long closing the database may take at shutdown.
const DATABASE_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How often refusals of connections over an address's share are logged.
const SHARE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The metrics could not be set up (a bug).
    #[error("cannot set up the metrics: {0}")]
    Metrics(prometheus::Error),
    /// The data directory could not be created.
    #[error("cannot use the data directory (setting `data_dir`): {0}")]
    DataDir(FileError),
    /// An audit key rotation holds the data directory.
    #[error(
        "an audit key rotation (`curbside-server audit-rotate-key`) is running on this data \
         directory; start the server when it has finished"
    )]
    Rotating,
    /// The TLS certificate or key could not be loaded or generated.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The token signing key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The operating system could not supply random bytes.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The audit log could not be written.
    #[error("{0}; check the database and the server's log")]
    Audit(crate::audit::AuditError),
    /// The audit log's key is missing or the log could not be opened.
    #[error(transparent)]
    AuditKey(crate::audit::OpenError),
    /// The push gateway's TLS could not be set up.
    #[error("cannot use the push gateway (settings `push_gateway_url`, `push_gateway_ca`): {0}")]
    PushGateway(String),
}

/// A server that has opened its database and loaded its certificate, ready
/// to serve on a listener.
pub struct Server {
    config: Config,
    tls: TlsIdentity,
    database: Database,
    auth: Arc<Auth>,
    audit: AuditLog,
    audit_writer: AuditWriter,
    events: Arc<Events>,
    events_task: tokio::task::JoinHandle<()>,
    gateway_task: Option<tokio::task::JoinHandle<()>>,
    first_admin_code: Option<String>,
    extra_routes: Router<AppState>,
    disk: Arc<DiskGuard>,
    metrics: Arc<Metrics>,
    /// The data directory's lock, held shared while the server runs.
    _lock: files::DirLock,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &self.tls)
            .field("server_id", &self.auth.server_id)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Creates the data directory, loads or generates the TLS certificate,
    /// opens the database and runs its migrations.
    pub async fn prepare(config: Config) -> Result<Self, RunError> {
        files::create_private_dir(&config.data_dir).map_err(RunError::DataDir)?;
        let lock = files::lock_dir(&config.data_dir, files::LockMode::Shared)
            .map_err(RunError::DataDir)?
            .ok_or(RunError::Rotating)?;
        let disk = DiskGuard::new(&config.data_dir, config.min_free_disk_bytes);
        let tls = tls::load_or_generate(&config.tls, &config.data_dir)?;
        let database = Database::open(&config.database).await?;
        let installation_id = database
            .installation_id(
                &crate::ids::new_id().map_err(|_| RunError::Random)?,
                now_ms(),
            )
            .await?;
        let tokens = TokenIssuer::load_or_generate(&config.data_dir, &installation_id)?;
        let signer = Arc::new(
            crate::audit::open(&config.data_dir, &installation_id, &database)
                .await
                .map_err(RunError::AuditKey)?,
        );
        let first_admin_code = auth::first_admin_code(
            &database,
            &signer,
            config.audit_checkpoints,
            now_ms(),
            config.enrollment_code_lifetime,
        )
        .await
        .map_err(|error| match error {
            IssueError::Database(error) => RunError::Database(DbError::Query(error)),
            IssueError::Audit(error) => RunError::Audit(error),
            _ => RunError::Random,
        })?;
        let (events, mailboxes) = Events::new(database.clone());
        let writer_metrics = WriterMetrics::new().map_err(RunError::Metrics)?;
        let metrics = Arc::new(Metrics::new(&writer_metrics).map_err(RunError::Metrics)?);
        let (audit, audit_writer) = AuditLog::start_pushing(
            database.clone(),
            signer,
            config.audit_checkpoints,
            events.clone(),
            writer_metrics,
        );
        let events_task =
            crate::push::start(&events, mailboxes, config.database.expose(), audit.clone());
        let gateway_task = match &config.push_gateway {
            Some(gateway) => {
                let task = crate::push::gateway::start(&events, audit.clone(), gateway)
                    .map_err(RunError::PushGateway)?;
                if crate::db::clinical::count_tokens(database.pool())
                    .await
                    .map_err(|error| RunError::Database(DbError::Query(error)))?
                    > 0
                {
                    events.tokens_changed();
                }
                Some(task)
            }
            None => None,
        };
        let auth = Arc::new(Auth {
            tokens,
            sessions: SessionCache::new(config.session_idle),
            limits: RateLimiter::default(),
            server_id: installation_id,
            token_lifetime: config.token_lifetime,
            enrollment_code_lifetime: config.enrollment_code_lifetime,
        });
        Ok(Self {
            config,
            tls,
            database,
            auth,
            audit,
            audit_writer,
            events,
            events_task,
            gateway_task,
            first_admin_code,
            extra_routes: Router::new(),
            disk,
            metrics,
            _lock: lock,
        })
    }

    /// Mounts more routes beside the API's own, under the same middleware.
    /// The end-to-end suite uses this to exercise the shared extractors and
    /// the shutdown path through a route of its own.
    pub fn with_routes(mut self, routes: Router<AppState>) -> Self {
        self.extra_routes = self.extra_routes.merge(routes);
        self
    }

    /// The SHA-256 fingerprint of the certificate the server presents.
    pub fn fingerprint(&self) -> CertificateFingerprint {
        self.tls.fingerprint
    }

    /// The audit key in the C2SP verifier key form, which auditors record
    /// and clients pin.
    pub fn audit_key(&self) -> String {
        self.audit.note_key().verifier_string()
    }

    /// The TLS identity, for the start-up message.
    pub fn tls(&self) -> &TlsIdentity {
        &self.tls
    }

    /// The one-time code for enrolling the first administrator, made at
    /// this start because the database has no users and no such code yet.
    /// Shown once; only its hash is stored.
    pub fn first_admin_code(&self) -> Option<&str> {
        self.first_admin_code.as_deref()
    }

    /// Serves HTTPS on `listener` until `shutdown` completes, then stops
    /// accepting, lets in-flight requests finish (up to the configured grace
    /// period, after which the remaining connections are cut) and closes the
    /// database.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let refusals = Arc::new(Refusals::default());
        let (stop_flushing, flushing_stopped) = watch::channel(false);
        let refusals_flush = refusals.start_flushing(self.audit.clone(), flushing_stopped);
        let app = http::router(
            AppState {
                database: self.database.clone(),
                auth: self.auth.clone(),
                audit: self.audit.clone(),
                events: self.events.clone(),
                max_message_bytes: self.config.max_message_bytes,
                attachments: crate::http::state::AttachmentLimits {
                    max_file_bytes: self.config.max_attachment_bytes,
                    quota_bytes: self.config.attachment_quota_bytes,
                },
                disk: self.disk.clone(),
                vocabulary: crate::http::openapi::vocabulary(),
                refusals: refusals.clone(),
                certificate: self.tls.current.clone(),
                finished_days: std::sync::Arc::default(),
                metrics: self.metrics.clone(),
                services: crate::http::state::ServiceTokens {
                    scim: self.config.scim_token.clone(),
                    metrics: self.config.metrics_token.clone(),
                },
            },
            self.config.max_body_bytes,
            self.extra_routes,
        );
        let disk_watch = self.disk.watch();
        let acceptor = TlsAcceptor::from(self.tls.config.clone());
        let renewal = tokio::spawn(renew_periodically(self.tls));
        let sweeps = crate::sweep::start(
            self.database.clone(),
            self.audit.clone(),
            self.config.sweep_every,
        );
        let escalation = crate::escalation::start(
            self.database.clone(),
            self.audit.clone(),
            self.events.clone(),
        );
        let witnessing = crate::audit::witnesses::start(
            self.database.clone(),
            self.config.audit_witnesses.clone(),
        );
        let protocols = Arc::new(Protocols::new());
        let slots = Arc::new(Semaphore::new(self.config.max_connections));
        let shares = AddressShares::new(self.config.connections_per_address());
        let (closing, closing_seen) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut share_warned: Option<Instant> = None;

        tokio::pin!(shutdown);
        loop {
            // Reap finished connections so the set does not grow.
            while connections.try_join_next().is_some() {}
            // At the connection limit, stop accepting: new clients wait in
            // the kernel's backlog instead of costing memory here.
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            // Over its address's share: closed before any TLS work.
            let Some(share) = shares.admit(address_key(peer.ip())) else {
                drop(stream);
                if share_warned.is_none_or(|at| at.elapsed() >= SHARE_WARNING_EVERY) {
                    share_warned = Some(Instant::now());
                    tracing::warn!(
                        refused = shares.take_refused(),
                        per_address = self.config.connections_per_address(),
                        "refusing connections from an address that holds its whole share of \
                         the connection slots (setting `max_connections_per_address`)"
                    );
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let protocols = protocols.clone();
            let closing = closing_seen.clone();
            let app = app.clone();
            connections.spawn(async move {
                // Kept until the connection ends, or handed to a WebSocket.
                let hold = Hold::new((slot, share));
                let tls_stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => tls_stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                let http2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                protocols
                    .serve(tls_stream, http2, app, peer, hold, closing)
                    .await;
            });
        }

        drop(listener);
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = closing.send(true);
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = self.config.shutdown_grace.as_secs(),
                open = connections.len(),
                "connections still open after the grace period; closing them"
            );
        }
        connections.shutdown().await;
        drop(app);
        // The last counted refusals, before the final checkpoint seals them.
        let _ = stop_flushing.send(true);
        if tokio::time::timeout(DATABASE_CLOSE_TIMEOUT, refusals_flush)
            .await
            .is_err()
        {
            tracing::warn!("counted refusals were still being written at shutdown");
        }
        // Seal what the last requests appended, so that cutting entries off
        // the end of the log shows.
        if let Err(error) = self.audit.checkpoint_now(&self.database).await {
            tracing::warn!(%error, "cannot sign the audit checkpoint at shutdown");
        }
        self.events_task.abort();
        if let Some(task) = &self.gateway_task {
            task.abort();
        }
        escalation.abort();
        disk_watch.abort();
        renewal.abort();
        sweeps.abort();
        for task in witnessing {
            task.abort();
        }
        drop(self.audit);
        self.audit_writer.stop(DATABASE_CLOSE_TIMEOUT).await;
        if tokio::time::timeout(DATABASE_CLOSE_TIMEOUT, self.database.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not close in time; exiting anyway");
        }
        tracing::info!("shut down");
    }
}

/// Renews a generated certificate that runs short while the server runs,
/// serving the new one from then on.
async fn renew_periodically(tls: TlsIdentity) {
    let mut ticks = tokio::time::interval(tls::RENEWAL_CHECK_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match tls.renew_if_due() {
            Ok(Some(fingerprint)) => tracing::info!(
                %fingerprint,
                "renewed the generated TLS certificate with the same key; the CLI follows it by \
                 its key, others must pin the new fingerprint"
            ),
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "cannot renew the generated TLS certificate"),
        }
    }
}

/// Prepares the server from `config` and serves on `listener` until
/// `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    Server::prepare(config).await?.run(listener, shutdown).await;
    Ok(())
}
