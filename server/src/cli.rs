//! The `curbside-server` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{LogFormat, Overrides};
use crate::server::Server;
use crate::telemetry;

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
}

/// Runs the parsed command line and returns the process's exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(overrides) => serve(overrides).await,
    }
}

async fn serve(overrides: Overrides) -> ExitCode {
    let config = match overrides.resolve() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("curbside-server: {error}");
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
            eprintln!("curbside-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("curbside-server: cannot listen on {listen} (setting `listen`): {error}");
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
        "listening for HTTPS"
    );
    if log_format == LogFormat::Text {
        println!("Curbside is serving HTTPS on https://{address}");
        println!("TLS certificate: {}", tls.certificate_path.display());
        println!(
            "TLS certificate SHA-256 fingerprint: {}",
            server.fingerprint()
        );
        println!(
            "Check it from a client with: curbside --server https://{address} --pin-sha256 {} health",
            server.fingerprint()
        );
    }
    server.run(listener, shutdown_signal()).await;
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
