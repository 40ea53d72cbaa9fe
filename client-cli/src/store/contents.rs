//! What a profile's store holds, in the clear only in memory: the device's
//! key and enrollment, its session, OpenMLS's state, and what the device
//! has read of each thread. Secrets are zeroized on drop and left out of
//! `Debug`.

use std::path::PathBuf;

use curbside_proto::attachment::AttachmentRef;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// What the store holds, in the clear only in memory.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreContents {
    /// The server's base URL.
    pub server: String,
    /// The pinned certificate fingerprint, if trusted by pin.
    pub pin_sha256: Option<String>,
    /// The SHA-256 of the pinned certificate's public key (hex), so that a
    /// certificate the server renewed with the same key is followed.
    #[serde(default)]
    pub pin_key_sha256: Option<String>,
    /// The CA file, if trusted by CA.
    pub ca_cert: Option<PathBuf>,
    /// The server's id.
    pub server_id: String,
    /// The signed-in user.
    pub user_id: String,
    /// This device.
    pub device_id: String,
    /// The device's Ed25519 key pair (PKCS#8).
    #[serde(with = "curbside_proto::b64")]
    pub device_key_pkcs8: Vec<u8>,
    /// The current session, if logged in.
    pub session: Option<StoredSession>,
    /// OpenMLS's key-value store: this device's MLS keys and groups.
    #[serde(default)]
    pub mls_state: Vec<MlsValue>,
    /// What this device has processed of each thread, and the messages it
    /// decrypted (MLS keys are used once, so they cannot be read again).
    #[serde(default)]
    pub threads: std::collections::BTreeMap<String, ThreadState>,
    /// The audit key as first seen (the C2SP verifier key form), which
    /// every later checkpoint must be signed with.
    #[serde(default)]
    pub audit_key: Option<String>,
    /// The last audit tree checkpoint this device verified (a signed
    /// note): the log it sees later must extend it.
    #[serde(default)]
    pub audit_checkpoint: Option<String>,
}

impl std::fmt::Debug for MlsValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlsValue").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ThreadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadState")
            .field("processed_seq", &self.processed_seq)
            .field("messages", &self.messages.len())
            .finish()
    }
}

impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// One entry of OpenMLS's store.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlsValue {
    /// The key.
    #[serde(with = "curbside_proto::b64")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "curbside_proto::b64")]
    pub value: Vec<u8>,
}

/// This device's view of one thread.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadState {
    /// The last log entry processed.
    pub processed_seq: u64,
    /// The decrypted messages and membership changes, oldest first.
    pub messages: Vec<StoredMessage>,
    /// The thread's subject, once known.
    #[serde(default)]
    pub subject: Option<String>,
    /// How this device's membership ended, if it has.
    #[serde(default)]
    pub left: Option<LeftThread>,
    /// How long its messages live (disappearing messages), in seconds, as
    /// far as this device has read the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifespan_s: Option<u64>,
    /// Whether `lifespan_s` was learnt (from the first page of the log
    /// this device read, for a lifespan set before it joined).
    #[serde(default)]
    pub lifespan_known: bool,
}

impl ThreadState {
    /// Forgets the messages (and subject changes) that outlived the
    /// lifespan they were written under at `now_ms`, as the server's sweep
    /// purges them; changes of members and of lifespan stay, as on the
    /// server.
    pub fn purge_expired(&mut self, now_ms: i64) {
        let expired = |message: &StoredMessage| {
            message.expires_after_s.is_some_and(|seconds| {
                let lifespan_ms = i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
                message.time_ms < now_ms.saturating_sub(lifespan_ms)
            })
        };
        for message in &mut self.messages {
            if expired(message) {
                message.text.zeroize();
                message.forget_attachments();
            }
        }
        self.messages.retain(|message| !expired(message));
    }
}

/// How a device's membership of a thread ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeftThread {
    /// When (Unix ms).
    pub at_ms: i64,
    /// Who ended it, if known.
    pub by_user: Option<String>,
    /// How: `removed`, `left`, `deactivated`, `device_removed`, or
    /// `unknown` (the server no longer shows it).
    pub reason: String,
}

/// A decrypted message, or a change of members, in a thread's history.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredMessage {
    /// Its place in the thread's log.
    pub seq: u64,
    /// The sending user (for a change of members, who made it).
    pub sender_user: String,
    /// When the server accepted it (Unix ms).
    pub time_ms: i64,
    /// The text (empty for a change of members).
    pub text: String,
    /// For a change of members: the users it added and removed.
    #[serde(default)]
    pub change: Option<MemberChange>,
    /// For a change of subject: the new subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For a message its sender recalled: when (its text is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled_at_ms: Option<i64>,
    /// The files sent with a message, each with the key that opens it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// For a change of the thread's lifespan: the new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifespan: Option<LifespanChange>,
    /// For a message: the thread's lifespan when it was written (a
    /// lifespan applies to what is written while it is in force); it is
    /// forgotten once older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after_s: Option<u64>,
    /// An urgent message: its recipients acknowledge it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    /// An urgent message passed on to this user, whom its escalation
    /// asked in: the original's entry (acknowledged by its number),
    /// sender and time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_of: Option<ForwardOf>,
    /// This user acknowledged it (or the urgent message it passes on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledged: bool,
}

/// The urgent message a passed-on copy stands for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardOf {
    /// Its entry in the thread's log.
    pub seq: u64,
    /// Its sender.
    pub sender_user: String,
    /// When it was sent.
    pub sent_at_ms: i64,
}

/// A member's change of a thread's lifespan (disappearing messages).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifespanChange {
    /// Seconds; `None`: messages no longer disappear.
    pub lifespan_s: Option<u64>,
}

impl StoredMessage {
    /// Whether it is a message someone wrote (not a change of members,
    /// subject or lifespan).
    pub fn is_text(&self) -> bool {
        self.change.is_none() && self.subject.is_none() && self.lifespan.is_none()
    }

    /// Forgets a recalled message's text and files, keeping its place and
    /// sender.
    pub fn recall(&mut self, at_ms: i64) {
        self.text.zeroize();
        self.text = String::new();
        self.forget_attachments();
        self.recalled_at_ms = Some(at_ms);
    }

    /// Forgets the keys of its files.
    pub fn forget_attachments(&mut self) {
        for attachment in &mut self.attachments {
            attachment.key.zeroize();
        }
        self.attachments.clear();
    }
}

/// The users a commit added and removed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// Users added.
    pub added: Vec<String>,
    /// Users removed.
    pub removed: Vec<String>,
}

impl std::fmt::Debug for StoreContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreContents")
            .field("server", &self.server)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Drop for StoreContents {
    fn drop(&mut self) {
        self.device_key_pkcs8.zeroize();
        if let Some(session) = &mut self.session {
            session.token.zeroize();
        }
        for value in &mut self.mls_state {
            value.value.zeroize();
        }
        for thread in self.threads.values_mut() {
            for message in &mut thread.messages {
                message.text.zeroize();
                message.forget_attachments();
            }
        }
    }
}

/// A session token and when it expires.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredSession {
    /// The bearer token.
    pub token: String,
    /// Its expiry (Unix ms).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}
