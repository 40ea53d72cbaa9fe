//! The unlock agent: the passphrase is asked for once per working session.
//!
//! When a command had to ask for the passphrase (or `curbside unlock` was
//! run), it starts `curbside agent` for the profile: a small process of its
//! own that keeps the passphrase in memory (never on disk), answers the
//! profile's later commands on a Unix socket in the profile's directory
//! (`agent.sock`, in a directory only its user can open, and only to a
//! peer of that same user), and exits after the idle time with no request
//! (15 minutes by default, like the server's automatic logoff;
//! `CURBSIDE_UNLOCK_MINUTES`), on `curbside lock`, or on `curbside logout`.
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
        .stderr(std::process::Stdio::null())
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
    for _ in 0..50 {
        if std::os::unix::net::UnixStream::connect(socket_path(profile)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
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
    let path = socket_path(profile);
    // A socket no one answers on is left from an agent that died.
    if UnixStream::connect(&path).await.is_ok() {
        return Err("an agent already holds this profile".to_owned());
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|error| error.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| error.to_string())?;
    }
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
    let _ = std::fs::remove_file(&path);
    Ok(())
}
