//! The unlock agent: the passphrase is asked for once per working session.
//!
//! When a command had to ask for the passphrase at the terminal (or
//! `curbside unlock` was run), it starts `curbside agent` for the profile:
//! a small process of its
//! own that keeps the passphrase in memory (never on disk), answers the
//! profile's later commands on a Unix socket in the profile's directory
//! (`agent.sock`, in a directory only its user can open, and only to a
//! peer of that same user), and exits after the idle time with no request
//! (15 minutes by default, like the server's automatic logoff;
//! `CURBSIDE_UNLOCK_MINUTES`), on `curbside lock`, or on `curbside logout`.
//!
//! One agent holds a profile at a time: it holds an exclusive lock on the
//! profile's directory for as long as it runs, binds its socket under a
//! name of its own and renames it into place, and on exit removes the
//! socket only if it is still its own.
//!
//! Like `ssh-agent`, it gives what it holds to any process of the same user
//! that asks, and such a process could read the profile's files and watch
//! the commands anyway; it never leaves the machine and never touches disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use zeroize::Zeroizing;

use crate::store::Profile;

/// How long an unlock lasts without use, by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(15 * 60);
/// How long a command waits for the agent's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
const SOCKET: &str = "agent.sock";

/// How long an unlock lasts without use: `CURBSIDE_UNLOCK_MINUTES`, or the
/// default.
pub fn idle_time() -> Duration {
    std::env::var("CURBSIDE_UNLOCK_MINUTES")
        .ok()
        .and_then(|minutes| minutes.trim().parse::<u64>().ok())
        .filter(|minutes| (1..=24 * 60).contains(minutes))
        .map_or(DEFAULT_IDLE, |minutes| Duration::from_secs(minutes * 60))
}

fn socket_path(profile: &Profile) -> PathBuf {
    profile.dir().join(SOCKET)
}

/// The passphrase from the profile's agent, if one is running.
pub async fn fetch(profile: &Profile) -> Option<Zeroizing<String>> {
    let ask = async {
        let mut stream = UnixStream::connect(socket_path(profile)).await.ok()?;
        stream.write_all(b"get\n").await.ok()?;
        let mut answer = Zeroizing::new(Vec::new());
        stream.read_to_end(&mut answer).await.ok()?;
        let text = std::str::from_utf8(&answer).ok()?;
        text.strip_prefix("ok ")
            .map(|passphrase| Zeroizing::new(passphrase.trim_end_matches('\n').to_owned()))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, ask)
        .await
        .ok()
        .flatten()
}

/// Tells the profile's agent, if any, to forget the passphrase and exit;
/// whether one was running.
pub async fn stop(profile: &Profile) -> bool {
    let tell = async {
        let mut stream = UnixStream::connect(socket_path(profile)).await.ok()?;
        stream.write_all(b"lock\n").await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(answer.starts_with(b"ok"))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, tell)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Starts an agent for `profile` holding `passphrase` (in a process of its
/// own, which outlives this one); `home` is where profiles live.
pub fn start(profile: &Profile, home: &Path, passphrase: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--home")
        .arg(home)
        .arg("--profile")
        .arg(profile.name())
        .arg("agent")
        .env_remove("CURBSIDE_PASSPHRASE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal does not end it.
        .process_group(0)
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no standard input for the agent"))?;
    stdin.write_all(passphrase.as_bytes())?;
    stdin.write_all(b"\n")?;
    drop(stdin);
    // Wait (briefly) until it answers, so the next command finds it.
    for _ in 0..100 {
        if std::os::unix::net::UnixStream::connect(socket_path(profile)).is_ok() {
            // Reaped when it exits, even while this command still runs
            // (`watch`).
            drop(child.stderr.take());
            std::thread::spawn(move || child.wait());
            return Ok(());
        }
        if let Ok(Some(_)) = child.try_wait() {
            use std::io::Read;
            let mut said = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut said);
            }
            let said = said.trim();
            return Err(std::io::Error::other(if said.is_empty() {
                "the unlock agent stopped at once".to_owned()
            } else {
                format!("the unlock agent stopped: {}", crate::show::printable(said))
            }));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::spawn(move || child.wait());
    Err(std::io::Error::other("the unlock agent did not answer"))
}

/// `curbside agent` (started by [`start`]): reads the passphrase from
/// standard input, checks that it opens the profile, and serves it until
/// idle, told to lock, or replaced.
pub async fn serve(profile: &Profile, idle: Duration) -> Result<(), String> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|error| error.to_string())?;
    let passphrase = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    profile
        .load(&passphrase)
        .map_err(|error| error.to_string())?;
    // One agent per profile: the lock on its directory is held until this
    // process exits.
    let held = std::fs::File::open(profile.dir()).map_err(|error| error.to_string())?;
    match held.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err("an agent already holds this profile".to_owned());
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(error.to_string()),
    }
    // Bound under a name of its own and renamed into place: a socket left
    // by an agent that died is replaced, and no command ever finds a
    // socket not yet restricted to its user. One not put in place is
    // removed when dropped.
    let path = socket_path(profile);
    // (Short, no longer than `agent.sock`: a socket's path has a limit of
    // its own, 107 bytes. tempfile binds it by its absolute path.)
    let fresh = tempfile::Builder::new()
        .prefix("a")
        .rand_bytes(8)
        .make_in(profile.dir(), |fresh| UnixListener::bind(fresh))
        .map_err(|error| error.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fresh.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(|error| error.to_string())?;
    }
    let listener = fresh
        .persist(&path)
        .map_err(|error| error.error.to_string())?;
    let ours = inode(&path);
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(profile.dir())
            .map_err(|error| error.to_string())?
            .uid()
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tokio::time::sleep(idle) => break,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        if stream.peer_cred().map(|peer| peer.uid()).ok() != Some(owner) {
            continue;
        }
        let mut request = [0u8; 5];
        let asked = tokio::time::timeout(ANSWER_TIMEOUT, stream.read(&mut request)).await;
        match asked {
            Ok(Ok(n)) if request[..n].starts_with(b"get") => {
                let mut answer = Zeroizing::new(format!("ok {}\n", passphrase.as_str()));
                let _ = stream.write_all(answer.as_bytes()).await;
                answer.clear();
            }
            Ok(Ok(n)) if request[..n].starts_with(b"lock") => {
                let _ = stream.write_all(b"ok\n").await;
                break;
            }
            _ => {}
        }
    }
    drop(listener);
    if ours.is_some() && inode(&path) == ours {
        let _ = std::fs::remove_file(&path);
    }
    drop(held);
    Ok(())
}

/// The file `path` names (device and inode), if any.
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|metadata| (metadata.dev(), metadata.ino()))
}
