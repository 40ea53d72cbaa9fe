//! The harness of the end-to-end suite: it starts the real server (its
//! `Server::prepare` and `Server::run`) on `127.0.0.1:0` over real TLS, on a
//! fresh SQLite file or a fresh PostgreSQL database, and hands out real
//! clients pinned to the server's certificate.
//!
//! PostgreSQL tests run when `CURBSIDE_TEST_POSTGRES_URL` is set; each test
//! creates its own database there and drops it when done. Without the
//! variable they print that they were skipped. Server logs stay silent unless
//! `TEST_LOG` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness: a failed set-up step is a failed test"
)]

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use curbside_cli::{Client, Trust};
use curbside_proto::CertificateFingerprint;
use curbside_server::config::{Config, DatabaseUrl, LogFormat};
use curbside_server::http::AppState;
use curbside_server::{Server, telemetry};
use sqlx::Connection;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "CURBSIDE_TEST_POSTGRES_URL";

/// The two storage backends every storage test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server named by
    /// `CURBSIDE_TEST_POSTGRES_URL`.
    Postgres,
}

/// The PostgreSQL URL for tests, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Runs `test` on `backend`, or says it was skipped when that backend is not
/// configured.
pub async fn on_backend<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if backend == Backend::Postgres && postgres_url().is_none() {
        // Straight to standard error, past the test harness's capture, so
        // the skip shows in `cargo test`'s output.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("skipped: {name} on PostgreSQL ({POSTGRES_URL_VAR} is not set)\n").as_bytes(),
        );
        return;
    }
    test(backend).await;
}

/// Says, past the harness's capture, that a test does not apply here.
pub fn skipped(name: &str, why: &str) {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("skipped: {name}: {why}\n").as_bytes(),
    );
}

/// Declares, for each named `async fn(Backend)`, a module with a `sqlite`
/// and a `postgres` test.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::on_backend($crate::Backend::Sqlite, stringify!($name), super::$name).await;
                }

                #[tokio::test]
                async fn postgres() {
                    $crate::on_backend($crate::Backend::Postgres, stringify!($name), super::$name).await;
                }
            }
        )*
    };
}

/// A database of its own for one test: a SQLite file in the data directory,
/// or a PostgreSQL database created now and dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    async fn create(backend: Backend, data_dir: &Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: DatabaseUrl::sqlite_in(data_dir).expose().to_owned(),
                postgres: None,
            },
            Backend::Postgres => {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let admin_url = postgres_url().expect("CURBSIDE_TEST_POSTGRES_URL is set");
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                let name = format!(
                    "curbside_test_{}_{}_{nanos}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to CURBSIDE_TEST_POSTGRES_URL");
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                admin.close().await.ok();
                let mut url = reqwest::Url::parse(&admin_url).expect("a valid PostgreSQL URL");
                url.set_path(&format!("/{name}"));
                Self {
                    url: url.to_string(),
                    postgres: Some((admin_url, name)),
                }
            }
        }
    }

    /// The URL the server is configured with.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on a future;
        // a thread of its own with a runtime of its own can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: a test database could not be dropped: {dropped:?}");
        }
    }
}

/// A test's storage: a temporary data directory and a database, which
/// outlive any one server start so tests can restart the server on them.
#[derive(Debug)]
pub struct TestEnv {
    /// The backend this environment uses.
    pub backend: Backend,
    data_dir: PathBuf,
    database: TestDatabase,
    _temporary: TempDir,
}

impl TestEnv {
    /// A fresh data directory and database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            telemetry::init(LogFormat::Text);
        }
        let temporary = tempfile::tempdir().expect("a temporary directory");
        // The server refuses a data directory other users can read.
        let data_dir = temporary.path().join("data");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&data_dir)
            .expect("the data directory");
        let database = TestDatabase::create(backend, &data_dir).await;
        Self {
            backend,
            data_dir,
            database,
            _temporary: temporary,
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database URL the server uses.
    pub fn database_url(&self) -> &str {
        self.database.url()
    }

    /// The default configuration for this environment (the listening
    /// address is ignored: tests bind their own listener).
    pub fn config(&self) -> Config {
        let mut config = Config::with_data_dir(&self.data_dir);
        config.database = DatabaseUrl::parse(self.database.url()).expect("a valid database URL");
        config
    }

    /// Starts the server with the default configuration.
    pub async fn start(&self) -> TestServer {
        self.start_with(self.config(), Router::new()).await
    }

    /// Starts the server with `config` and `routes` mounted beside the API.
    pub async fn start_with(&self, config: Config, routes: Router<AppState>) -> TestServer {
        self.start_on(config, routes, "127.0.0.1:0".parse().expect("an address"))
            .await
    }

    /// Starts the server with `config` on `address` (a restart on the port
    /// a server used before, say).
    pub async fn start_on(
        &self,
        config: Config,
        routes: Router<AppState>,
        address: SocketAddr,
    ) -> TestServer {
        let listener = TcpListener::bind(address).await.expect("bind the address");
        let address = listener.local_addr().expect("a local address");
        let server = Server::prepare(config)
            .await
            .expect("the server prepares")
            .with_routes(routes);
        let fingerprint = server.fingerprint();
        let first_admin_code = server.first_admin_code().map(str::to_owned);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            address,
            url: format!("https://{address}"),
            fingerprint,
            first_admin_code,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its base URL, `https://127.0.0.1:PORT`.
    pub url: String,
    /// The fingerprint of its certificate.
    pub fingerprint: CertificateFingerprint,
    /// The first-administrator code printed at this start, if any.
    pub first_admin_code: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The real client, pinned to this server's certificate.
    pub fn client(&self) -> Client {
        Client::new(&self.url, &Trust::Pin(self.fingerprint)).expect("a client")
    }

    /// A plain HTTPS client pinned to this server, for looking at raw
    /// responses (status, headers, body).
    pub fn http(&self) -> reqwest::Client {
        self.http_builder(&[b"h2", b"http/1.1"])
            .build()
            .expect("an HTTP client")
    }

    /// Like [`TestServer::http`], but offering only HTTP/1.1 in ALPN.
    pub fn http1(&self) -> reqwest::Client {
        self.http_builder(&[b"http/1.1"])
            .http1_only()
            .build()
            .expect("an HTTP client")
    }

    /// Like [`TestServer::http1`], but connecting from `local` (another
    /// loopback address, say `127.0.0.2`), so the server sees another
    /// client address.
    pub fn http1_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        self.http_builder(&[b"http/1.1"])
            .http1_only()
            .local_address(local)
            .build()
            .expect("an HTTP client")
    }

    fn http_builder(&self, alpn: &[&[u8]]) -> reqwest::ClientBuilder {
        let mut config =
            curbside_cli::trust::client_config(&Trust::Pin(self.fingerprint)).expect("TLS set-up");
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .no_proxy()
    }

    /// Asks the server to shut down and waits until it has.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            task.await.expect("the server task ends without panicking");
        }
    }

    /// Asks the server to shut down without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for a server already asked to stop.
    pub async fn stopped(mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("the server task ends without panicking");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// A `curbside-server serve` process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: std::process::Child,
    /// Its base URL, `https://127.0.0.1:PORT`.
    pub url: String,
    /// The fingerprint of its certificate.
    pub fingerprint: CertificateFingerprint,
    /// The first-administrator code it printed, if it did.
    pub first_admin_code: Option<String>,
}

impl ServerProcess {
    /// Starts `binary serve` (the real server: the package's
    /// `curbside-server-under-test`, built from the server's own `main.rs`,
    /// which integration tests find as `CARGO_BIN_EXE_...`) on this
    /// environment's data directory and database, on a free port, with
    /// `extra` arguments; waits for its start-up banner. `expect_code` says
    /// whether this start prints a first-administrator code (the first start
    /// on an empty database).
    pub fn start(env: &TestEnv, binary: &str, extra: &[&str], expect_code: bool) -> Self {
        Self::start_logging(env, binary, extra, expect_code, None)
    }

    /// [`ServerProcess::start`], writing the server's log (standard error,
    /// at every level) to `log` if given.
    pub fn start_logging(
        env: &TestEnv,
        binary: &str,
        extra: &[&str],
        expect_code: bool,
        log: Option<&Path>,
    ) -> Self {
        let stderr = match log {
            Some(path) => {
                std::process::Stdio::from(std::fs::File::create(path).expect("a log file"))
            }
            None => std::process::Stdio::null(),
        };
        let mut command = std::process::Command::new(binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(env.data_dir())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .env("CURBSIDE_DATABASE_URL", env.database_url())
            .env("CURBSIDE_LOG", "trace")
            .stderr(stderr);
        Self::spawn(command, expect_code)
    }

    /// Runs `command`, which starts a server (with whatever wrapping and
    /// redirections the test needs), and waits for its start-up banner on
    /// standard output.
    pub fn spawn(mut command: std::process::Command, expect_code: bool) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("its standard output");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut next = || {
            lines
                .next()
                .expect("the server prints its banner")
                .expect("readable output")
        };
        let (mut url, mut fingerprint, mut code) = (None, None, None);
        while fingerprint.is_none() || (expect_code && code.is_none()) {
            let line = next();
            if let Some(rest) = line.strip_prefix("Curbside is serving HTTPS on ") {
                url = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("TLS certificate SHA-256 fingerprint: ") {
                fingerprint = Some(rest.trim().parse().expect("a fingerprint"));
            } else if line.starts_with("No users yet") {
                code = Some(next().trim().to_owned());
            }
        }
        Self {
            child,
            url: url.expect("the address"),
            fingerprint: fingerprint.expect("the fingerprint"),
            first_admin_code: code,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The real client, pinned to this server's certificate.
    pub fn client(&self) -> Client {
        Client::new(&self.url, &Trust::Pin(self.fingerprint)).expect("a client")
    }

    /// Kills the server outright (`SIGKILL`, as `kill -9`: no shutdown,
    /// no final checkpoint) and waits for it to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("the server can be killed");
        self.child.wait().expect("the killed server is reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
