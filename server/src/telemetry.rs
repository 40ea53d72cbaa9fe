//! Tracing set-up: readable text by default, one JSON object per line with
//! `--log-format json`. The filter comes from `CURBSIDE_LOG` (same syntax as
//! `RUST_LOG`), defaulting to `info` for Curbside and `warn` for libraries.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `CURBSIDE_LOG` is not set. rustls is held to
/// errors because its warnings quote what unauthenticated peers sent.
pub const DEFAULT_FILTER: &str = "warn,rustls=error,tokio_rustls=error,curbside_server=info";

/// Installs the global tracing subscriber. Logs go to standard error, so
/// standard output carries only the start-up banner and command output.
pub fn init(format: LogFormat) {
    let filter = match std::env::var("CURBSIDE_LOG") {
        Ok(directives) => EnvFilter::try_new(&directives).unwrap_or_else(|error| {
            eprintln!(
                "curbside-server: ignoring CURBSIDE_LOG ({error}); using the default {DEFAULT_FILTER:?}"
            );
            EnvFilter::new(DEFAULT_FILTER)
        }),
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second initialisation (tests starting several servers) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Replaces the default panic hook, which prints the panic's message (it
/// may hold request data) to standard error, with one that logs only where
/// the panic happened. The request still gets a 500 with a JSON body.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string);
        tracing::error!(%location, "panic (message withheld: it may hold request data)");
    }));
}
