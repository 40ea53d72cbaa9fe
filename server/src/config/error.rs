//! Why the settings could not be resolved: each message names the setting
//! and where its value came from, and never quotes a file's text.

use std::path::PathBuf;

/// Why the settings could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    ReadFile {
        /// The file named by --config or CURBSIDE_CONFIG.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML of the expected shape.
    #[error("the configuration file {path} is invalid: {message}")]
    ParseFile {
        /// The file named by --config or CURBSIDE_CONFIG.
        path: PathBuf,
        /// What the TOML parser said, with the line and column.
        message: String,
    },
    /// One setting has a value that cannot be used.
    #[error("invalid setting `{setting}` (from {origin}): {reason}")]
    Invalid {
        /// The setting's name, as in the TOML file.
        setting: &'static str,
        /// Where the value came from.
        origin: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}
