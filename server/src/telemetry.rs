//! Tracing set-up: readable text by default, one JSON object per line with
//! `--log-format json`. The filter comes from `CURBSIDE_LOG` (same syntax as
//! `RUST_LOG`), defaulting to `info` for Curbside and `warn` for libraries.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `CURBSIDE_LOG` is not set.
pub const DEFAULT_FILTER: &str = "warn,curbside_server=info";

/// Installs the global tracing subscriber. Logs go to standard error, so
/// standard output carries only the start-up banner and command output.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("CURBSIDE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
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
