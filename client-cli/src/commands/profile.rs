//! `curbside profile ...`: the local profiles (one per enrolled device),
//! which one commands use by default, and the certificate a profile pins.
//!
//! The default profile is `--profile` or `CURBSIDE_PROFILE` if given, else
//! the one `profile use` chose (`HOME/current-profile`), else `default`.

use std::path::Path;

use clap::Subcommand;
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;
use crate::session::{Options, Session, home};
use crate::store::{Profile, StoreError};

/// The file naming the profile commands use by default.
const CURRENT: &str = "current-profile";

/// `curbside profile ...`.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the profiles on this computer, their servers and pins.
    List,
    /// Use this profile when --profile is not given.
    Use {
        /// The profile's name.
        name: String,
    },
    /// Delete a profile: its device key and everything it decrypted. The
    /// device stays enrolled until an administrator removes it (`curbside
    /// admin device remove`).
    Remove {
        /// The profile's name.
        name: String,
        /// Yes, delete it: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Pin the server's new certificate after its operator replaced it:
    /// give the new fingerprint with --pin-sha256, as the operator told
    /// you through a channel you trust (the server prints it at start);
    /// the profile signs in afresh over it, then keeps it.
    Repin,
}

/// The profile name commands use when none is given: the one `profile
/// use` chose, else `default`.
pub fn default_name(home: &Path) -> String {
    std::fs::read_to_string(home.join(CURRENT))
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| Profile::new(home, name).is_ok())
        .unwrap_or_else(|| "default".to_owned())
}

/// Runs a `curbside profile` command.
pub(crate) async fn run(
    options: &Options<'_>,
    command: &ProfileCommand,
) -> Result<Output, CliError> {
    let home = home(options)?;
    match command {
        ProfileCommand::List => {
            let current = default_name(&home);
            let mut names: Vec<String> = std::fs::read_dir(home.join("profiles"))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter_map(|entry| entry.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            let mut lines = Vec::new();
            let mut json_profiles = Vec::new();
            for name in names {
                let Ok(profile) = Profile::new(&home, &name) else {
                    continue;
                };
                if !profile.exists() {
                    continue;
                }
                let note = profile.server_note();
                let server = note.as_ref().map(|note| note.server.clone());
                let pin = note.as_ref().and_then(|note| note.pin_sha256.clone());
                let marker = if name == current { "* " } else { "  " };
                lines.push(format!(
                    "{marker}{name}  {}  {}",
                    server.as_deref().unwrap_or("(server unknown)"),
                    pin.as_deref()
                        .map_or_else(|| "trusted by CA".to_owned(), |pin| format!("pin {pin}"))
                ));
                json_profiles.push(json!({
                    "name": name,
                    "default": name == current,
                    "server": server,
                    "pin_sha256": pin,
                }));
            }
            let text = if lines.is_empty() {
                "No profiles yet: enroll with `curbside --server URL --pin-sha256 FP enroll --code CODE`."
                    .to_owned()
            } else {
                lines.join("\n")
            };
            Ok(Output::new(
                text,
                json!({ "default": current, "profiles": json_profiles }),
            ))
        }
        ProfileCommand::Use { name } => {
            let profile = Profile::new(&home, name)?;
            if !profile.exists() {
                return Err(StoreError::Missing(name.clone()).into());
            }
            let path = home.join(CURRENT);
            std::fs::write(&path, format!("{name}\n")).map_err(|source| StoreError::Io {
                action: "write",
                path,
                source,
            })?;
            Ok(Output::new(
                format!("Commands now use profile {name} unless --profile says otherwise"),
                json!({ "default": name }),
            ))
        }
        ProfileCommand::Remove { name, yes } => {
            let profile = Profile::new(&home, name)?;
            if !profile.exists() {
                return Err(StoreError::Missing(name.clone()).into());
            }
            if !yes {
                return Err(CliError::BadInput(format!(
                    "removing profile {name} deletes its device key and every message it \
                     decrypted, for good; add --yes to do it (and ask an administrator to remove \
                     the device: `curbside admin device remove`)"
                )));
            }
            crate::agent::stop(&profile).await;
            std::fs::remove_dir_all(profile.dir()).map_err(|source| StoreError::Io {
                action: "remove",
                path: profile.dir().to_owned(),
                source,
            })?;
            if default_name(&home) == *name {
                let _ = std::fs::remove_file(home.join(CURRENT));
            }
            Ok(Output::new(
                format!(
                    "Removed profile {name}. Its device is still enrolled: an administrator \
                     removes it with `curbside admin device remove`."
                ),
                json!({ "removed": name }),
            ))
        }
        ProfileCommand::Repin => {
            if options.pin_sha256.is_none() {
                return Err(CliError::BadInput(
                    "give the server's new certificate fingerprint with --pin-sha256 (the \
                     server prints it at start; confirm it with its operator)"
                        .to_owned(),
                ));
            }
            let mut session = Session::open(options).await?;
            // A fresh sign-in, so that the stored session's token is never
            // sent to a certificate not yet trusted. It shows the server
            // knows this device and its installation; it does not show that
            // the connection is not relayed: the fingerprint itself must
            // come from the operator, through a channel the user trusts.
            session.contents.session = None;
            session.client.set_token(None);
            session.call(async |client| client.whoami().await).await?;
            session.remember_certificate()?;
            let pin = session.contents.pin_sha256.clone().unwrap_or_default();
            Ok(Output::new(
                format!("Profile {} now pins {pin}", session.profile.name()),
                json!({ "profile": session.profile.name(), "pin_sha256": pin }),
            ))
        }
    }
}
