//! `curbside-server`: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the C library's allocator: under load, glibc's
/// malloc and free were a sixth of the request threads' time
/// (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    curbside_server::cli::execute(curbside_server::cli::Cli::parse()).await
}
