//! Encrypting and decrypting attachments, a chunk at a time: AES-256-GCM
//! in the STREAM construction, as `curbside_proto::attachment` specifies
//! and RustCrypto's `aead::stream` (`EncryptorBE32`, `DecryptorBE32`)
//! implements. Neither side ever holds more than a chunk or two; the
//! SHA-256 of the file is taken as it passes.

use std::io::{Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use curbside_proto::attachment::{KEY_BYTES, PLAIN_CHUNK, SEALED_CHUNK, TAG};
use zeroize::Zeroizing;

/// The nonce prefix: fixed, because each file has a key of its own.
const NONCE_PREFIX: [u8; 7] = [0; 7];

/// Why a file could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file's size changed while it was read.
    #[error("the file changed while it was being sent; send it again")]
    Changed,
    /// A chunk did not decrypt: the download is damaged, cut short, or not
    /// this attachment.
    #[error(
        "the attachment does not decrypt with its key: it was altered, cut short, or is not the \
         file the message names; download it again"
    )]
    Damaged,
    /// The key is not 32 bytes.
    #[error("the message gives the attachment a malformed key")]
    BadKey,
}

/// A fresh random key for one file.
pub fn new_key() -> Result<Zeroizing<[u8; KEY_BYTES]>, AttachmentError> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), key.as_mut())
        .map_err(|_| std::io::Error::other("the system's random number generator failed"))?;
    Ok(key)
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm, AttachmentError> {
    Aes256Gcm::new_from_slice(key).map_err(|_| AttachmentError::BadKey)
}

/// Encrypts the `size` bytes `reader` gives, handing each sealed chunk to
/// `sink` in order; returns the SHA-256 of what it read (hex). Refuses a
/// file that is not `size` bytes long.
pub fn seal(
    mut reader: impl Read,
    size: u64,
    key: &[u8],
    mut sink: impl FnMut(Vec<u8>) -> Result<(), AttachmentError>,
) -> Result<String, AttachmentError> {
    let chunk = PLAIN_CHUNK as u64;
    let chunks = size.div_ceil(chunk).max(1);
    let mut encryptor = Some(EncryptorBE32::from_aead(
        cipher(key)?,
        (&NONCE_PREFIX).into(),
    ));
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = Zeroizing::new(vec![0u8; PLAIN_CHUNK]);
    let mut left = size;
    for index in 0..chunks {
        let take = usize::try_from(left.min(chunk)).unwrap_or(PLAIN_CHUNK);
        let plain = &mut buffer[..take];
        reader
            .read_exact(plain)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::UnexpectedEof => AttachmentError::Changed,
                _ => AttachmentError::Io(error),
            })?;
        digest.update(plain);
        left -= take as u64;
        let sealed = if index + 1 == chunks {
            encryptor
                .take()
                .ok_or(AttachmentError::Damaged)?
                .encrypt_last(&*plain)
        } else {
            encryptor
                .as_mut()
                .ok_or(AttachmentError::Damaged)?
                .encrypt_next(&*plain)
        }
        .map_err(|_| AttachmentError::Damaged)?;
        sink(sealed)?;
    }
    if reader.read(&mut [0u8; 1])? != 0 {
        return Err(AttachmentError::Changed);
    }
    Ok(hex::encode(digest.finish()))
}

/// Decrypts a sealed stream pushed to it in pieces of any size, writing
/// the plaintext to `out`; [`Opener::finish`] opens the last chunk.
pub struct Opener<W: Write> {
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    pending: Vec<u8>,
    digest: ring::digest::Context,
    written: u64,
    out: W,
}

impl<W: Write> std::fmt::Debug for Opener<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Opener<W> {
    /// An opener for a stream sealed with `key`.
    pub fn new(key: &[u8], out: W) -> Result<Self, AttachmentError> {
        Ok(Self {
            decryptor: Some(DecryptorBE32::from_aead(
                cipher(key)?,
                (&NONCE_PREFIX).into(),
            )),
            pending: Vec::with_capacity(2 * SEALED_CHUNK),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
            out,
        })
    }

    /// Takes the next bytes of the stream: every chunk but the last is
    /// opened once the bytes after it have come.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), AttachmentError> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() > SEALED_CHUNK {
            let plain = self
                .decryptor
                .as_mut()
                .ok_or(AttachmentError::Damaged)?
                .decrypt_next(&self.pending[..SEALED_CHUNK])
                .map_err(|_| AttachmentError::Damaged)?;
            self.pending.drain(..SEALED_CHUNK);
            self.emit(&Zeroizing::new(plain))?;
        }
        Ok(())
    }

    /// Opens the last chunk; returns the SHA-256 of the whole file (hex),
    /// its size, and the writer.
    pub fn finish(mut self) -> Result<(String, u64, W), AttachmentError> {
        if self.pending.len() < TAG {
            return Err(AttachmentError::Damaged);
        }
        let plain = self
            .decryptor
            .take()
            .ok_or(AttachmentError::Damaged)?
            .decrypt_last(self.pending.as_slice())
            .map_err(|_| AttachmentError::Damaged)?;
        self.emit(&Zeroizing::new(plain))?;
        self.out.flush()?;
        let digest = hex::encode(self.digest.clone().finish());
        Ok((digest, self.written, self.out))
    }

    fn emit(&mut self, plain: &[u8]) -> Result<(), AttachmentError> {
        self.digest.update(plain);
        self.written += plain.len() as u64;
        self.out.write_all(plain)?;
        Ok(())
    }
}

/// The media type of a file named `name`, by its extension.
pub fn media_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "tif" | "tiff" => "image/tiff",
        "pdf" => "application/pdf",
        "dcm" => "application/dicom",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(plain: &[u8], key: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal(plain, plain.len() as u64, key, |chunk| {
            out.extend_from_slice(&chunk);
            Ok(())
        })
        .unwrap();
        out
    }

    fn opened(sealed: &[u8], key: &[u8], piece: usize) -> Result<Vec<u8>, AttachmentError> {
        let mut opener = Opener::new(key, Vec::new())?;
        for part in sealed.chunks(piece) {
            opener.push(part)?;
        }
        Ok(opener.finish()?.2)
    }

    #[test]
    fn round_trips_at_chunk_edges_in_pieces_of_any_size() {
        let key = [9u8; 32];
        for size in [0, 1, 65535, 65536, 65537, 200_000] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let sealed = sealed(&plain, &key);
            assert_eq!(
                sealed.len() as u64,
                curbside_proto::attachment::ciphertext_len(size as u64)
            );
            for piece in [1000, 65552, 1 << 20] {
                assert_eq!(opened(&sealed, &key, piece).unwrap(), plain, "{size}");
            }
        }
    }

    /// The vector the web client's test computes with node:crypto's
    /// AES-GCM (web/tests/attachment.test.ts): the same bytes from two
    /// implementations of the format.
    #[test]
    fn matches_the_known_answer_the_browser_checks() {
        let key: Vec<u8> = (1..=32).collect();
        let plain: Vec<u8> = (0..70_000).map(|i| (i % 251) as u8).collect();
        let sealed = sealed(&plain, &key);
        assert_eq!(sealed.len(), 70_032);
        assert_eq!(
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &sealed).as_ref()),
            "9ba8d8f7c46766928090728bb80b596414721ac8b36d26dab24ddc03e3b3e1ce"
        );
    }

    #[test]
    fn refuses_truncated_reordered_altered_or_foreign_streams() {
        let key = [3u8; 32];
        let plain = vec![5u8; 3 * 65536 + 10];
        let good = sealed(&plain, &key);
        // Cut at a chunk boundary: the last chunk there is not marked last.
        assert!(opened(&good[..2 * SEALED_CHUNK], &key, 4096).is_err());
        assert!(opened(&good[..good.len() - 1], &key, 4096).is_err());
        let mut swapped = good.clone();
        swapped[..SEALED_CHUNK].copy_from_slice(&good[SEALED_CHUNK..2 * SEALED_CHUNK]);
        swapped[SEALED_CHUNK..2 * SEALED_CHUNK].copy_from_slice(&good[..SEALED_CHUNK]);
        assert!(opened(&swapped, &key, 4096).is_err());
        let mut flipped = good.clone();
        flipped[100] ^= 1;
        assert!(opened(&flipped, &key, 4096).is_err());
        assert!(opened(&good, &[4u8; 32], 4096).is_err());
        assert!(opened(&[], &key, 1).is_err());
    }

    #[test]
    fn a_file_that_is_not_its_announced_size_is_refused() {
        let key = [1u8; 32];
        let ignore = |_: Vec<u8>| Ok(());
        assert!(matches!(
            seal(&[1u8; 10][..], 11, &key, ignore),
            Err(AttachmentError::Changed)
        ));
        assert!(matches!(
            seal(&[1u8; 10][..], 9, &key, ignore),
            Err(AttachmentError::Changed)
        ));
    }
}
