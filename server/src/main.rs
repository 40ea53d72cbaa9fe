//! `curbside-server`: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    curbside_server::cli::execute(curbside_server::cli::Cli::parse()).await
}
