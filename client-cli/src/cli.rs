//! The `curbside` command line: global options say which server to talk to
//! and how to trust it; subcommands say what to do.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use curbside_proto::CertificateFingerprint;

use crate::client::{Client, ClientError};
use crate::trust::Trust;

/// Curbside: end-to-end encrypted case discussion for clinicians.
#[derive(Debug, Parser)]
#[command(name = "curbside", version)]
pub struct Cli {
    /// The server, as https://HOST:PORT.
    #[arg(long, env = "CURBSIDE_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (the
    /// server prints it at start). Checked before --ca-cert and the system roots.
    #[arg(
        long = "pin-sha256",
        env = "CURBSIDE_PIN_SHA256",
        global = true,
        value_name = "FINGERPRINT"
    )]
    pub pin_sha256: Option<CertificateFingerprint>,
    /// Trust server certificates issued by the CA certificates in this PEM file.
    #[arg(long, env = "CURBSIDE_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server is up and its database answers.
    Health,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// No server was named.
    #[error("no server given: pass --server https://HOST:PORT or set CURBSIDE_SERVER")]
    NoServer,
    /// The request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Runs a command and returns what it prints on success.
pub async fn run(cli: Cli) -> Result<String, CliError> {
    let server = cli.server.as_deref().ok_or(CliError::NoServer)?;
    let trust = Trust::from_options(cli.pin_sha256, cli.ca_cert);
    let client = Client::new(server, &trust)?;
    match cli.command {
        Command::Health => {
            client.health().await?;
            client.ready().await?;
            Ok(format!(
                "{} is healthy: serving TLS, database ready",
                client.server().as_str().trim_end_matches('/')
            ))
        }
    }
}

/// Runs a command, prints its output or error, and returns the exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("curbside: error: {error}");
            ExitCode::FAILURE
        }
    }
}
