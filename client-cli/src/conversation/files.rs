//! `curbside send --file`, `download` and `lifespan`: files sent
//! encrypted with a message, saved again after their digest is checked,
//! and messages that disappear.
//!
//! A file is encrypted a chunk at a time while it is uploaded (see
//! `crate::attachment`), with a key of its own that only the message (an
//! MLS message) carries; the server stores ciphertext it cannot open.
//! Downloading decrypts as the ciphertext arrives into a temporary file
//! beside the output, which becomes the output only once the whole file
//! decrypted and its SHA-256 is the one the message gave.

use std::path::{Path, PathBuf};

use curbside_proto::attachment::{AttachmentRef, MAX_PER_MESSAGE, ciphertext_len};
use curbside_proto::content::Content;
use futures_util::StreamExt;

use super::device::catch_up;
use super::naming::{still_in, thread_name};
use super::send::send_to_as;
use super::sync::{find_thread, sync};
use crate::attachment::{self, AttachmentError};
use crate::error::CliError;
use crate::session::Session;
use crate::show::printable;

/// Encrypted chunks in flight between the file and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// `bytes` as people read them.
pub(super) fn size_words(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        0..KIB => format!("{bytes} bytes"),
        KIB..MIB => format!("{:.1} KiB", bytes as f64 / KIB as f64),
        _ => format!("{:.1} MiB", bytes as f64 / MIB as f64),
    }
}

/// A lifespan in seconds as people read it: "30 seconds", "1 day".
pub(super) fn lifespan_words(seconds: u64) -> String {
    let units = [
        (7 * 24 * 3600, "week"),
        (24 * 3600, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    for (size, unit) in units {
        if seconds >= size && seconds.is_multiple_of(size) {
            let count = seconds / size;
            return format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
        }
    }
    format!("{seconds} seconds")
}

/// `30s`, `5m`, `1h`, `7d`, `2w` in seconds; `off` is `None`.
fn parse_lifespan(text: &str) -> Result<Option<u64>, CliError> {
    let bad = || CliError::BadLifespan(printable(text));
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        "w" => 7 * 24 * 3600,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit)
        .filter(|s| *s > 0)
        .map(Some)
        .ok_or_else(bad)
}

/// Encrypts `path` while uploading it to `thread_id`; returns what the
/// message carries to open it.
async fn upload(
    session: &Session,
    thread_id: &str,
    path: &Path,
) -> Result<AttachmentRef, CliError> {
    let read_error = |error: std::io::Error| CliError::ReadFile {
        path: path.display().to_string(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "attachment".to_owned());
    let key = attachment::new_key()?;
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(CHUNKS_IN_FLIGHT);
    let sealing = {
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            let sink = |chunk: Vec<u8>| {
                sender
                    .blocking_send(Ok(chunk))
                    // The upload stopped (refused, or the connection
                    // failed): its own error says why.
                    .map_err(|_| AttachmentError::Io(std::io::Error::other("upload stopped")))
            };
            let sealed = attachment::seal(std::io::BufReader::new(file), size, key.as_ref(), sink);
            if let Err(error) = &sealed {
                // Ends the body in error, so the server keeps nothing.
                let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
            }
            sealed
        })
    };
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let uploaded = session
        .client
        .upload_attachment(
            thread_id,
            ciphertext_len(size),
            reqwest::Body::wrap_stream(body.boxed()),
        )
        .await;
    let sealed = sealing
        .await
        .map_err(|_| CliError::Internal("the encrypting task failed"))?;
    let uploaded = uploaded?;
    let sha256 = sealed?;
    Ok(AttachmentRef {
        id: uploaded.attachment_id,
        key: key.to_vec(),
        sha256,
        media_type: attachment::media_type(&name).to_owned(),
        name,
        size,
    })
}

/// `curbside send THREAD [TEXT] --file PATH...`: uploads each file
/// encrypted, then sends one message carrying them (and the text, if
/// any).
pub async fn send_with_files(
    session: &mut Session,
    thread: &str,
    text: Option<&str>,
    files: &[PathBuf],
    urgent: bool,
) -> Result<String, CliError> {
    if files.len() > MAX_PER_MESSAGE {
        return Err(CliError::Attachment(AttachmentError::Io(
            std::io::Error::other(format!(
                "a message may carry at most {MAX_PER_MESSAGE} files; send them in several"
            )),
        )));
    }
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    still_in(session, &thread_id).await?;
    let mut attachments = Vec::with_capacity(files.len());
    for path in files {
        attachments.push(upload(session, &thread_id, path).await?);
    }
    let names: Vec<String> = attachments
        .iter()
        .map(|attachment| printable(&attachment.name))
        .collect();
    let content = Content::Text {
        text: text.unwrap_or_default().to_owned(),
        attachments,
    };
    let (thread_id, seq) = send_to_as(session, &thread_id, &content, urgent).await?;
    Ok(format!(
        "Sent{} to {} (entry {seq}) with {} file{}: {}",
        if urgent { " urgently" } else { "" },
        thread_name(session, &thread_id),
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))
}

/// The attachment of `thread_id` that `given` names (its id, or a name
/// only one has), as this device's history holds it.
fn find(session: &Session, thread_id: &str, given: &str) -> Result<AttachmentRef, CliError> {
    let all: Vec<&AttachmentRef> = session
        .contents
        .threads
        .get(thread_id)
        .map(|state| {
            state
                .messages
                .iter()
                .flat_map(|message| &message.attachments)
                .collect()
        })
        .unwrap_or_default();
    if let Some(found) = all.iter().find(|attachment| attachment.id == given) {
        return Ok((*found).clone());
    }
    let named: Vec<&&AttachmentRef> = all
        .iter()
        .filter(|attachment| attachment.name == given)
        .collect();
    match named.as_slice() {
        [one] => Ok((**one).clone()),
        [] => Err(CliError::NoSuchAttachment {
            thread: thread_name(session, thread_id),
            given: printable(given),
        }),
        _ => Err(CliError::AmbiguousAttachment(printable(given))),
    }
}

/// `curbside download THREAD ATTACHMENT --out PATH`: fetches the
/// attachment, decrypts it as it arrives and saves it at `out` once its
/// SHA-256 is the one its message gave (nothing is left otherwise).
pub async fn download(
    session: &mut Session,
    thread: &str,
    given: &str,
    out: &Path,
) -> Result<String, CliError> {
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    let reference = find(session, &thread_id, given)?;
    if out.exists() {
        return Err(CliError::OutputExists(out.display().to_string()));
    }
    let directory = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let write_error = |error: std::io::Error| CliError::ReadFile {
        path: out.display().to_string(),
        error,
    };
    let partial = tempfile::NamedTempFile::new_in(&directory).map_err(write_error)?;
    let mut response = session
        .client
        .download_attachment(&thread_id, &reference.id)
        .await?;
    let mut opener = attachment::Opener::new(&reference.key, std::io::BufWriter::new(partial))?;
    // No more than the file the message names can take, encrypted.
    let expected = ciphertext_len(reference.size);
    let mut received: u64 = 0;
    while let Some(piece) = session.client.next_piece(&mut response).await? {
        received = received.saturating_add(piece.len() as u64);
        if received > expected {
            return Err(AttachmentError::Damaged.into());
        }
        opener.push(&piece)?;
    }
    let (sha256, size, writer) = opener.finish()?;
    if sha256 != reference.sha256 || size != reference.size {
        return Err(CliError::DigestMismatch);
    }
    let partial = writer
        .into_inner()
        .map_err(|error| write_error(error.into_error()))?;
    partial
        .persist_noclobber(out)
        .map_err(|error| write_error(error.error))?;
    Ok(format!(
        "Saved {} ({}, SHA-256 checked) to {}",
        printable(&reference.name),
        size_words(size),
        out.display()
    ))
}

/// `curbside lifespan THREAD 30s|5m|1h|7d|off`: how long the thread's
/// messages live, for every member; the server purges older ones, and so
/// does each member's device.
pub async fn set_lifespan(
    session: &mut Session,
    thread: &str,
    lifespan: &str,
) -> Result<String, CliError> {
    let lifespan_s = parse_lifespan(lifespan)?;
    let device = catch_up(session).await?;
    let thread_id = find_thread(session, &device, thread).await?;
    sync(session, &device, &thread_id).await?;
    still_in(session, &thread_id).await?;
    session.client.set_lifespan(&thread_id, lifespan_s).await?;
    sync(session, &device, &thread_id).await?;
    let name = thread_name(session, &thread_id);
    Ok(match lifespan_s {
        Some(seconds) => format!(
            "Messages in {name} now disappear after {}, on the server and on every member's \
             device",
            lifespan_words(seconds)
        ),
        None => format!("Messages in {name} no longer disappear"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifespans_read_and_print_as_people_write_them() {
        assert_eq!(parse_lifespan("30s").unwrap(), Some(30));
        assert_eq!(parse_lifespan("7d").unwrap(), Some(7 * 86400));
        assert_eq!(parse_lifespan("OFF").unwrap(), None);
        for bad in ["", "s", "10", "1y", "0s", "-1s", "1.5h"] {
            assert!(parse_lifespan(bad).is_err(), "{bad}");
        }
        assert_eq!(lifespan_words(30), "30 seconds");
        assert_eq!(lifespan_words(3600), "1 hour");
        assert_eq!(lifespan_words(14 * 86400), "2 weeks");
        assert_eq!(lifespan_words(90), "90 seconds");
        assert_eq!(size_words(5 << 20), "5.0 MiB");
    }
}
