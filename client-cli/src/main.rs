//! `curbside`: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    curbside_cli::cli::execute(curbside_cli::cli::Cli::parse()).await
}
