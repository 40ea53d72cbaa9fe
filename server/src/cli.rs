//! The `curbside-server` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::audit;
use crate::audit::AuditSigner;
use crate::auth;
use crate::clock::now_ms;
use crate::config::{Config, LogFormat, Overrides};
use crate::db::Database;
use crate::ids::new_id;
use crate::server::Server;
use crate::telemetry;
use curbside_proto::identity::format_enrollment_code;

/// Curbside: a TLS-only, end-to-end encrypted messaging server for clinicians.
#[derive(Debug, Parser)]
#[command(name = "curbside-server", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The server's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTPS API (there is no plain-text mode).
    Serve(Overrides),
    /// Issue a one-time code that enrolls a new administrator, without
    /// starting the server (recovery when every administrator lost their
    /// device). Uses the same settings as `serve`.
    AdminCode(Overrides),
    /// Replace the audit log's signing key, with every server process
    /// stopped: writes a hand-over signed by the old and the new key into
    /// the log, keeps the old key file (renamed) and puts the new one in
    /// its place. Uses the same settings as `serve`.
    AuditRotateKey(Overrides),
    /// Write a backup while the server runs: on SQLite a consistent copy of
    /// the database, and the keys and certificate of the data directory,
    /// in one file (docs/operations.md; on PostgreSQL, pg_dump the
    /// database too). Uses the same settings as `serve`.
    Backup(BackupArgs),
    /// Restore a backup into an empty data directory (and, on PostgreSQL,
    /// a database pg_restore filled), after checking its migrations and
    /// its audit log from the first entry. Uses the same settings as
    /// `serve`.
    Restore(RestoreArgs),
    /// Run an independent witness of audit logs (C2SP tlog-witness): it
    /// cosigns a server's checkpoints only while each extends the last it
    /// cosigned. Run it on another machine, under other administrators.
    Witness(crate::witness::serve::Options),
}

/// `curbside-server backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write (it must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: std::path::PathBuf,
    /// The server's settings.
    #[command(flatten)]
    pub settings: Overrides,
}

/// `curbside-server restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file to restore.
    #[arg(long, value_name = "FILE")]
    pub from: std::path::PathBuf,
    /// The audit key the log started with, as the server printed it at
    /// start (curbside-audit/ID+KEYID+BASE64), or its public key in
    /// base64url (`public_key` of /.well-known/curbside/audit-key): the log
    /// must verify against it from its first entry, following any key
    /// rotation's hand-over.
    #[arg(long, value_name = "KEY")]
    pub audit_key: Option<String>,
    /// The server's settings: the data directory and database to restore
    /// into.
    #[command(flatten)]
    pub settings: Overrides,
}

/// Runs the parsed command line and returns the process's exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(overrides) => serve(overrides).await,
        Command::AdminCode(overrides) => admin_code(overrides).await,
        Command::AuditRotateKey(overrides) => rotate_audit_key(overrides).await,
        Command::Backup(args) => {
            let outcome = match args.settings.resolve() {
                Ok(config) => crate::backup::backup(&config, &args.out).await,
                Err(error) => return usage(&error.to_string()),
            };
            report(outcome)
        }
        Command::Restore(args) => {
            let outcome = match args.settings.resolve() {
                Ok(config) => {
                    crate::backup::restore(&config, &args.from, args.audit_key.as_deref()).await
                }
                Err(error) => return usage(&error.to_string()),
            };
            report(outcome)
        }
        Command::Witness(options) => crate::witness::serve::run(options, shutdown_signal()).await,
    }
}

/// A settings error: said, and exit status 2.
fn usage(error: &str) -> ExitCode {
    telemetry::report(&format!("curbside-server: {error}"));
    ExitCode::from(2)
}

/// A command's outcome on standard output, or its error.
fn report(outcome: Result<String, crate::backup::BackupError>) -> ExitCode {
    match outcome {
        Ok(text) => {
            let _ =
                std::io::Write::write_all(&mut std::io::stdout(), format!("{text}\n").as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            telemetry::report(&format!("curbside-server: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// The settings and the database of a command that runs without serving
/// (`admin-code`, `audit-rotate-key`), or the exit code to end with.
async fn settings_and_database(overrides: Overrides) -> Result<(Config, Database), ExitCode> {
    let config = overrides.resolve().map_err(|error| {
        telemetry::report(&format!("curbside-server: {error}"));
        ExitCode::from(2)
    })?;
    let database = Database::open(&config.database).await.map_err(|error| {
        telemetry::report(&format!("curbside-server: {error}"));
        ExitCode::FAILURE
    })?;
    Ok((config, database))
}

/// The installation's id and its audit log's signer, opened as the server
/// opens them at start.
async fn open_log(config: &Config, database: &Database) -> Result<(String, AuditSigner), String> {
    let new_id =
        new_id().map_err(|_| "the operating system's random number generator failed".to_owned())?;
    let server_id = database
        .installation_id(&new_id, now_ms())
        .await
        .map_err(|error| error.to_string())?;
    let signer = audit::open(&config.data_dir, &server_id, database)
        .await
        .map_err(|error| error.to_string())?;
    Ok((server_id, signer))
}

async fn admin_code(overrides: Overrides) -> ExitCode {
    let (config, database) = match settings_and_database(overrides).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let now = now_ms();
    let lifetime =
        i64::try_from(config.enrollment_code_lifetime.as_millis()).unwrap_or(i64::MAX / 2);
    let issued = match open_log(&config, &database).await {
        Ok((_, signer)) => {
            auth::issue_admin_code(
                &database,
                &signer,
                config.audit_checkpoints,
                now,
                now + lifetime,
            )
            .await
        }
        Err(error) => {
            database.close().await;
            telemetry::report(&format!("curbside-server: {error}"));
            return ExitCode::FAILURE;
        }
    };
    database.close().await;
    match issued {
        Ok(code) => {
            let text = format!(
                "One-time administrator enrollment code (valid {} hours, shown only now):\n  {}\n\
                 Enroll with: curbside --server https://HOST:PORT --pin-sha256 FINGERPRINT enroll \
                 --code {} --display-name \"YOUR NAME\"\n",
                config.enrollment_code_lifetime.as_secs() / 3600,
                format_enrollment_code(&code),
                format_enrollment_code(&code),
            );
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            telemetry::report(&format!("curbside-server: cannot issue a code: {error}"));
            ExitCode::FAILURE
        }
    }
}

async fn rotate_audit_key(overrides: Overrides) -> ExitCode {
    let (config, database) = match settings_and_database(overrides).await {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let lock = match crate::files::lock_dir(&config.data_dir, crate::files::LockMode::Exclusive) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            database.close().await;
            telemetry::report(
                "curbside-server: a server is running on this data directory; stop every \
                 curbside-server process using it (and any on other machines sharing its \
                 database) before rotating the audit key",
            );
            return ExitCode::FAILURE;
        }
        Err(error) => {
            database.close().await;
            telemetry::report(&format!("curbside-server: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let rotated = match open_log(&config, &database).await {
        Ok((server_id, old)) => {
            audit::rotate::rotate(&config.data_dir, &server_id, &database, &old)
                .await
                .map_err(|error| error.to_string())
        }
        Err(error) => Err(error),
    };
    database.close().await;
    drop(lock);
    match rotated {
        Ok(rotated) => {
            let text = format!(
                "Rotated the audit log's key with the hand-over at entry {}.\n\
                 Old key: {}\nNew key: {}\n\
                 The old public key is kept as {} (its private key was destroyed).\n\
                 Audit log key (record it to verify exports): {}\n\
                 Give each witness the new key (--log) before starting the server; it no longer \
                 needs the old one. Verifiers and CLI profiles that trust the old key follow the \
                 hand-over.\n",
                rotated.seq, rotated.old, rotated.new, rotated.retired, rotated.new,
            );
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            telemetry::report(&format!(
                "curbside-server: cannot rotate the audit key: {error}"
            ));
            ExitCode::FAILURE
        }
    }
}

async fn serve(overrides: Overrides) -> ExitCode {
    let config = match overrides.resolve() {
        Ok(config) => config,
        Err(error) => {
            telemetry::report(&format!("curbside-server: {error}"));
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    telemetry::install_panic_hook();
    let log_format = config.log_format;
    let listen = config.listen;

    let server = match Server::prepare(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            telemetry::flush();
            telemetry::report(&format!("curbside-server: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            telemetry::report(&format!(
                "curbside-server: cannot listen on {listen} (setting `listen`): {error}"
            ));
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(listen);
    let tls = server.tls();
    for name in &tls.missing_hostnames {
        tracing::warn!(
            hostname = %name,
            certificate = %tls.certificate_path.display(),
            "the generated certificate does not cover this host name; remove the data directory's \
             tls folder to generate a new one (clients must then pin the new fingerprint)"
        );
    }
    tracing::info!(
        %address,
        fingerprint = %server.fingerprint(),
        certificate = %tls.certificate_path.display(),
        generated_now = tls.newly_generated,
        audit_key = %server.audit_key(),
        "listening for HTTPS"
    );
    let fingerprint = server.fingerprint();
    if let Some(old) = tls.renewed_from {
        tracing::info!(
            old = %old,
            new = %fingerprint,
            "renewed the generated TLS certificate with the same key"
        );
    }
    let mut console = String::new();
    if log_format == LogFormat::Text {
        console.push_str(&format!(
            "Curbside is serving HTTPS on https://{address}\n\
             TLS certificate: {}\n\
             TLS certificate SHA-256 fingerprint: {fingerprint}\n\
             Check it from a client with: curbside --server https://{address} --pin-sha256 {fingerprint} health\n\
             Audit log key (record it to verify exports): {}\n\
             Web app SHA-256 (compare with: curbside web-digest): {}\n",
            tls.certificate_path.display(),
            server.audit_key(),
            crate::http::web_app_digest(),
        ));
    }
    if let Some(code) = server.first_admin_code() {
        // Shown once, on the console only: never through tracing, whose
        // output may be collected elsewhere.
        console.push_str(&format!(
            "\nNo users yet. One-time code to enroll the first administrator (shown only now):\n  {code}\n\
             Enroll with: curbside --server https://{address} --pin-sha256 {fingerprint} enroll --code {code} --display-name \"YOUR NAME\"\n",
            code = format_enrollment_code(code),
        ));
        tracing::info!("a first-administrator enrollment code was printed to standard output");
    }
    // A closed standard output must not stop the server.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), console.as_bytes());
    server.run(listener, shutdown_signal()).await;
    telemetry::flush();
    ExitCode::SUCCESS
}

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
