//! A command's session: the profile it acts as, opened with its
//! passphrase and locked against other commands, and a client for the
//! profile's server that trusts it as the profile or the command line says.

use std::path::{Path, PathBuf};

use curbside_proto::CertificateFingerprint;
use curbside_proto::identity::User;
use curbside_proto::threads::{Receipt, ReceiptKind, receipt_message};
use ring::signature::Ed25519KeyPair;
use zeroize::Zeroizing;

use crate::client::{Client, ClientError};
use crate::clock::now_ms;
use crate::error::CliError;
use crate::show;
use crate::store::{
    MIN_PASSPHRASE_CHARS, Profile, ProfileLock, StoreContents, StoreError, StoredSession,
};
use crate::trust::Trust;

/// The command line's global options, as a session reads them.
#[derive(Clone, Copy)]
pub(crate) struct Options<'a> {
    /// The server given, if one was.
    pub(crate) server: Option<&'a str>,
    /// The certificate pin given, if one was.
    pub(crate) pin_sha256: Option<CertificateFingerprint>,
    /// The CA file given, if one was.
    pub(crate) ca_cert: Option<&'a Path>,
    /// The profile's name.
    pub(crate) profile: &'a str,
    /// Where profiles live, if given.
    pub(crate) home: Option<&'a Path>,
    /// Whether times are shown in UTC.
    pub(crate) utc: bool,
    /// The passphrase given by an embedding program.
    pub(crate) passphrase: Option<&'a str>,
    /// How results are printed (`watch` prints as it goes).
    pub(crate) output: crate::output::Format,
}

impl std::fmt::Debug for Options<'_> {
    /// Everything but the passphrase.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("server", &self.server)
            .field("profile", &self.profile)
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

pub(crate) fn home(cli: &Options<'_>) -> Result<PathBuf, CliError> {
    match cli.home {
        Some(home) => Ok(home.to_path_buf()),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".curbside"))
            .ok_or(CliError::NoHome),
    }
}

pub(crate) fn profile(cli: &Options<'_>) -> Result<Profile, CliError> {
    Ok(Profile::new(&home(cli)?, cli.profile)?)
}

/// Where a passphrase came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Given {
    /// The program embedding the CLI, or `CURBSIDE_PASSPHRASE`.
    Set,
    /// The profile's unlock agent.
    Agent,
    /// Typed just now at the terminal.
    Typed,
    /// Read from standard input that is not a terminal (a script's pipe):
    /// the profile is kept unlocked only if `curbside unlock` asks for it.
    Piped,
}

pub(crate) fn passphrase_set(cli: &Options<'_>) -> Option<Zeroizing<String>> {
    if let Some(passphrase) = cli.passphrase {
        return Some(Zeroizing::new(passphrase.to_owned()));
    }
    std::env::var("CURBSIDE_PASSPHRASE")
        .ok()
        .map(Zeroizing::new)
}

/// The profile's passphrase: given by the program or the environment, held
/// by its unlock agent, or asked for at the terminal (or read from standard
/// input when that is not one).
pub(crate) async fn passphrase(
    cli: &Options<'_>,
    profile: &Profile,
    prompt: &str,
) -> Result<(Zeroizing<String>, Given), CliError> {
    if let Some(passphrase) = passphrase_set(cli) {
        return Ok((passphrase, Given::Set));
    }
    if let Some(passphrase) = crate::agent::fetch(profile).await {
        return Ok((passphrase, Given::Agent));
    }
    ask(profile, prompt)
}

pub(crate) fn ask(profile: &Profile, prompt: &str) -> Result<(Zeroizing<String>, Given), CliError> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        let mut line = Zeroizing::new(String::new());
        return match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 => Ok((
                Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned()),
                Given::Piped,
            )),
            _ => Err(CliError::NoPassphrase),
        };
    }
    rpassword::prompt_password(format!("{prompt} for profile {}: ", profile.name()))
        .map(|passphrase| (Zeroizing::new(passphrase), Given::Typed))
        .map_err(|_| CliError::NoPassphrase)
}

pub(crate) fn new_passphrase(
    cli: &Options<'_>,
    profile: &Profile,
) -> Result<Zeroizing<String>, CliError> {
    if let Some(passphrase) = passphrase_set(cli) {
        if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(StoreError::WeakPassphrase.into());
        }
        return Ok(passphrase);
    }
    let (first, _) = ask(profile, "New passphrase")?;
    if first.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(StoreError::WeakPassphrase.into());
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let (again, _) = ask(profile, "Repeat the passphrase")?;
        if *again != *first {
            return Err(CliError::NoPassphrase);
        }
    }
    Ok(first)
}

/// An opened profile and a client for its server. It holds the profile's
/// lock (see `store`) from opening until dropped, except while `watch`
/// has released it to wait for the server.
pub(crate) struct Session {
    pub(crate) profile: Profile,
    home: PathBuf,
    passphrase: Zeroizing<String>,
    /// Where the passphrase came from.
    pub(crate) given: Given,
    pub(crate) contents: StoreContents,
    pub(crate) client: Client,
    /// How times are shown and read.
    pub(crate) times: show::Times,
    /// How results are printed.
    pub(crate) output: crate::output::Format,
    lock: Option<ProfileLock>,
    /// Whether the client trusts by the profile's stored pin (which then
    /// follows a renewal), rather than by one given on the command line
    /// (which, when it matches, repairs the stored one).
    stored_pin: bool,
    /// Whether this command talks to the profile's own server.
    own_server: bool,
    /// Threads where a device that left is still in the MLS group and
    /// could not be removed by this command: nothing is sent there
    /// (`conversation::heal`).
    pub(crate) unremoved: Vec<String>,
}

/// Waits for the profile's lock, saying so if another command holds it for
/// long.
pub(crate) async fn lock(profile: &Profile) -> Result<ProfileLock, CliError> {
    let asked = std::time::Instant::now();
    let mut said = false;
    loop {
        if let Some(lock) = profile.try_lock()? {
            return Ok(lock);
        }
        if !said && asked.elapsed() >= LOCK_NOTICE_AFTER {
            said = true;
            eprintln!(
                "curbside: waiting for another curbside command using profile {} to finish…",
                profile.name()
            );
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// How often a command waiting for its profile's lock tries again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// After how long it says that it is waiting.
const LOCK_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl Session {
    pub(crate) async fn open(cli: &Options<'_>) -> Result<Self, CliError> {
        let profile = profile(cli)?;
        if !profile.exists() {
            return Err(StoreError::Missing(profile.name().to_owned()).into());
        }
        let (passphrase, given) = passphrase(cli, &profile, "Passphrase").await?;
        let lock = lock(&profile).await?;
        let contents = match profile.load(&passphrase) {
            Err(StoreError::WrongPassphrase(name)) if given == Given::Agent => {
                // The agent's passphrase no longer opens the store (changed
                // elsewhere): forget it.
                crate::agent::stop(&profile).await;
                return Err(StoreError::WrongPassphrase(name).into());
            }
            other => other?,
        };
        let pin = match (cli.pin_sha256, &contents.pin_sha256) {
            (Some(pin), _) => Some(pin),
            (None, Some(stored)) => stored.parse().ok(),
            (None, None) => None,
        };
        let ca = cli
            .ca_cert
            .map(Path::to_path_buf)
            .or_else(|| contents.ca_cert.clone());
        let server = cli
            .server
            .map_or_else(|| contents.server.clone(), str::to_owned);
        // The stored pin follows a renewal with the same key; a pin given on
        // the command line is taken exactly.
        let key = contents
            .pin_key_sha256
            .as_deref()
            .and_then(unhex)
            .filter(|_| cli.pin_sha256.is_none());
        let trust = match (pin, key) {
            (Some(certificate), Some(key)) => Trust::PinOrSameKey { certificate, key },
            (pin, _) => Trust::from_options(pin, ca),
        };
        let contents_server = contents.server.clone();
        let mut client = Client::new(&server, &trust)?;
        client.set_token(contents.session.as_ref().map(|s| s.token.clone()));
        let home = home(cli)?;
        let mut session = Self {
            profile,
            home,
            passphrase,
            given,
            contents,
            client,
            times: show::Times::new(cli.utc),
            output: cli.output,
            lock: Some(lock),
            stored_pin: cli.pin_sha256.is_none(),
            own_server: cli.server.is_none_or(|given| {
                given.trim_end_matches('/') == contents_server.trim_end_matches('/')
            }),
            unremoved: Vec::new(),
        };
        if given == Given::Typed {
            session.unlocked().await;
        }
        Ok(session)
    }

    /// Keeps the profile unlocked for the next commands (its unlock agent
    /// holds the passphrase), unless it already is or the passphrase was
    /// set by the environment.
    pub(crate) async fn unlocked(&mut self) {
        if !matches!(self.given, Given::Typed | Given::Piped) {
            return;
        }
        if let Err(error) = crate::agent::start(&self.profile, &self.home, &self.passphrase) {
            eprintln!(
                "curbside: cannot keep the profile unlocked ({error}); the next command will ask \
                 for the passphrase again"
            );
        }
        self.given = Given::Agent;
    }

    /// Lets other commands use the profile (while `watch` waits for the
    /// server). What is in memory may then go stale: [`Session::resume`]
    /// reads it again.
    pub(crate) fn release(&mut self) {
        self.lock = None;
    }

    /// Takes the profile's lock again and reads the store anew, with
    /// whatever other commands saved meanwhile.
    pub(crate) async fn resume(&mut self) -> Result<(), CliError> {
        if self.lock.is_none() {
            self.lock = Some(lock(&self.profile).await?);
            self.contents = self.profile.load(&self.passphrase)?;
            self.client
                .set_token(self.contents.session.as_ref().map(|s| s.token.clone()));
        }
        Ok(())
    }

    pub(crate) fn save(&self) -> Result<(), CliError> {
        if self.lock.is_none() {
            // A save without the lock could undo another command's.
            return Err(CliError::Internal("saving a profile without its lock"));
        }
        Ok(self.profile.save(&self.contents, &self.passphrase)?)
    }

    /// A receipt for entries 1 to `through` of `thread_id`, signed now by
    /// this device's key (the server keeps the signature in the receipt's
    /// audit entry, as evidence it cannot make itself).
    pub(crate) fn signed_receipt(
        &self,
        thread_id: &str,
        kind: ReceiptKind,
        through: u64,
    ) -> Result<Receipt, CliError> {
        let key = Ed25519KeyPair::from_pkcs8(&self.contents.device_key_pkcs8)
            .map_err(|_| CliError::BadKey)?;
        let time_ms = crate::clock::now_ms();
        let message = receipt_message(
            &self.contents.server_id,
            &self.contents.device_id,
            thread_id,
            kind,
            through,
            time_ms,
        );
        Ok(Receipt {
            seq: through,
            time_ms,
            signature: key.sign(&message).as_ref().to_vec(),
        })
    }

    pub(crate) async fn login(&mut self) -> Result<User, CliError> {
        let key = Ed25519KeyPair::from_pkcs8(&self.contents.device_key_pkcs8)
            .map_err(|_| CliError::BadKey)?;
        let logged_in = self
            .client
            .login_with_key(&self.contents.server_id, &self.contents.device_id, &key)
            .await
            .map_err(|error| match error {
                // Signing in again will not help: say so, and stop.
                ClientError::Api {
                    status, message, ..
                } if status == reqwest::StatusCode::UNAUTHORIZED => {
                    CliError::SignInRefused(message)
                }
                other => other.into(),
            })?;
        self.contents.session = Some(StoredSession {
            token: logged_in.token.clone(),
            expires_at_ms: logged_in.expires_at_ms,
        });
        self.save()?;
        Ok(self.client.whoami().await?.user)
    }

    /// Calls the server with the stored session; logs in first when there
    /// is none or it has expired, and once more if the server says the
    /// session has ended.
    pub(crate) async fn call<T>(
        &mut self,
        request: impl AsyncFn(&Client) -> Result<T, ClientError>,
    ) -> Result<T, CliError> {
        let now = now_ms();
        let usable = self
            .contents
            .session
            .as_ref()
            .is_some_and(|session| session.expires_at_ms > now + 30_000);
        if !usable {
            self.login().await?;
        }
        let result = match request(&self.client).await {
            Err(ClientError::Api { status, .. })
                if usable && status == reqwest::StatusCode::UNAUTHORIZED =>
            {
                self.login().await?;
                request(&self.client).await?
            }
            result => result?,
        };
        self.remember_certificate()?;
        Ok(result)
    }

    /// Keeps the pinned certificate's key, and follows a certificate the
    /// server renewed with that key: the profile pins the new fingerprint.
    pub(crate) fn remember_certificate(&mut self) -> Result<(), CliError> {
        let Some(presented) = self.client.presented() else {
            return Ok(());
        };
        let Some(stored) = self.contents.pin_sha256.clone() else {
            return Ok(());
        };
        let certificate = presented.certificate.to_string();
        let key = hex::encode(presented.key);
        if stored == certificate && self.contents.pin_key_sha256.as_deref() == Some(key.as_str()) {
            return Ok(());
        }
        if stored != certificate {
            if self.stored_pin {
                eprintln!(
                    "curbside: the server renewed its TLS certificate with the same key; \
                     profile {} now pins {certificate}",
                    self.profile.name()
                );
            } else if self.own_server {
                eprintln!(
                    "curbside: profile {} now pins {certificate}, as given",
                    self.profile.name()
                );
            } else {
                return Ok(());
            }
        }
        self.contents.pin_sha256 = Some(certificate);
        self.contents.pin_key_sha256 = Some(key);
        self.save()
    }
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
