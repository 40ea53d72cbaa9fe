//! Wire types of the MLS delivery service: key packages now; threads, their
//! ordered logs and welcomes build on them. Every MLS object is opaque to
//! the server and travels as unpadded base64url.

use serde::{Deserialize, Serialize};

/// `POST` uploads this device's packages; `GET` counts what is left.
pub const KEY_PACKAGES_PATH: &str = "/v1/key-packages";
/// `POST`: claim one package for each active device of a user.
pub const CLAIM_PATH: &str = "/v1/key-packages/claim";
/// The largest key package accepted, in bytes (an Ed25519/X25519
/// KeyPackage is a few hundred).
pub const MAX_KEY_PACKAGE_BYTES: usize = 4096;
/// The most packages one upload may carry.
pub const MAX_UPLOAD: usize = 100;
/// The most unclaimed ordinary packages a device may hold.
pub const MAX_UNCLAIMED: u32 = 500;

/// Opaque bytes, as unpadded base64url on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
#[cfg_attr(
    feature = "openapi",
    schema(value_type = String, format = "base64url")
)]
pub struct Blob(#[serde(with = "crate::b64")] pub Vec<u8>);

/// `POST /v1/key-packages`: packages of the signed-in device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyPackageUpload {
    /// Ordinary packages, each handed out once.
    pub packages: Vec<Blob>,
    /// A last-resort package, handed out when no ordinary one is left; it
    /// replaces the device's previous one.
    #[serde(default)]
    pub last_resort: Option<Blob>,
}

/// What the signed-in device has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyPackageCount {
    /// Unclaimed ordinary packages.
    pub available: u32,
    /// Whether a last-resort package is on file.
    pub last_resort: bool,
}

/// `POST /v1/key-packages/claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyPackageClaim {
    /// Whose devices to claim packages for.
    pub user_id: String,
    /// Only these of the user's devices (all of them when absent): a
    /// client adding one new device claims no package of the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
}

/// One claimed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimedKeyPackage {
    /// The device it belongs to.
    pub device_id: String,
    /// The KeyPackage.
    pub key_package: Blob,
    /// Whether it is the device's last-resort package (handed out before,
    /// and again later).
    pub last_resort: bool,
}

/// The answer to a claim: a package for each of the user's active devices
/// that has one (the caller's own device excepted), and the devices that
/// have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimedKeyPackages {
    /// One per device.
    pub packages: Vec<ClaimedKeyPackage>,
    /// Active devices with no package at all; they cannot be added until
    /// they upload some.
    pub without_packages: Vec<String>,
}

/// `POST` creates a thread; `GET` lists the caller's device's threads.
pub const THREADS_PATH: &str = "/v1/threads";
/// `GET`: the caller's device's pending welcomes.
pub const WELCOMES_PATH: &str = "/v1/welcomes";
/// The largest MLS message (commit, application message or welcome)
/// accepted, in bytes, unless the server is configured otherwise.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The most members a thread may have, in devices.
pub const MAX_THREAD_DEVICES: usize = 200;
/// The most entries one page of a thread's log holds.
pub const MAX_ENTRIES_PAGE: u32 = 500;

/// `POST /v1/threads`: the creator made the MLS group (its id is the
/// thread id) and added the first members in a commit; the server records
/// the thread at the epoch that commit reached and queues the welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewThread {
    /// The MLS group id, as 32 lower-case hex digits.
    pub thread_id: String,
    /// The group's epoch after the creator's commit.
    pub epoch: u64,
    /// The devices the commit added (not the creator's own device).
    pub devices: Vec<String>,
    /// The MLS Welcome for those devices.
    pub welcome: Blob,
}

/// A thread as its member sees it in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ThreadSummary {
    /// The thread (MLS group) id.
    pub thread_id: String,
    /// The epoch the server accepts commits and messages for.
    pub epoch: u64,
    /// The last entry's sequence number (0 if none).
    pub last_seq: u64,
    /// Messages from others after what the caller's user has read.
    pub unread: u64,
    /// How long its messages live (disappearing messages), in seconds;
    /// `None` if they stay (subject to the organisation's retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifespan_s: Option<u64>,
}

/// `GET /v1/threads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ThreadList {
    /// The caller's device's threads, most recently active first.
    pub threads: Vec<ThreadSummary>,
    /// Where the next page starts (`?after=`), if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The most threads one page of `GET /v1/threads` holds (`?limit=`).
pub const MAX_THREADS_PAGE: u32 = 500;
/// The threads a page holds when no `limit` is given.
pub const DEFAULT_THREADS_PAGE: u32 = 100;

/// A member device of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The highest sequence the device has processed (delivery receipt).
    pub delivered_seq: u64,
}

/// What a user has read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadReceipt {
    /// The user.
    pub user_id: String,
    /// The highest sequence they have read.
    pub read_seq: u64,
}

/// `GET /v1/threads/{id}`: the thread, its members and receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ThreadDetail {
    /// The summary, as in the list.
    pub summary: ThreadSummary,
    /// The current member devices.
    pub members: Vec<Member>,
    /// Read receipts of the member users.
    pub read: Vec<ReadReceipt>,
    /// The thread's urgent messages, newest first (at most 100), with who
    /// acknowledged them.
    #[serde(default)]
    pub urgent: Vec<crate::clinical::UrgentStatus>,
}

/// The membership change a commit declares; clients check it against the
/// commit they process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MembershipChange {
    /// Devices the commit adds.
    pub add: Vec<String>,
    /// Devices the commit removes.
    pub remove: Vec<String>,
}

/// `POST /v1/threads/{id}/commits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// The epoch the commit was made in (the thread's current epoch).
    pub epoch: u64,
    /// The MLS commit.
    pub commit: Blob,
    /// The declared membership change (both lists empty for an update).
    pub change: MembershipChange,
    /// The MLS Welcome for added devices (required when adding).
    #[serde(default)]
    pub welcome: Option<Blob>,
}

/// `POST /v1/threads/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The epoch it was encrypted in (the thread's current epoch).
    pub epoch: u64,
    /// The MLS application message.
    pub ciphertext: Blob,
    /// The attachments (ids from `POST .../attachments`, the caller's
    /// own uploads to this thread) that the message carries, so that the
    /// server deletes them with it (recall, lifespan, retention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    /// Urgent: recipients are to acknowledge it, and the server escalates
    /// it when they do not (metadata the server sees, not content).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
}

/// `POST /v1/threads/{id}/recall`: recall ("delete for everyone") the
/// caller's own application message at `seq`. The server erases its
/// ciphertext and appends a `recall` entry naming it, which every member's
/// client reads to delete its plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecallRequest {
    /// The message's sequence number in the thread's log.
    pub seq: u64,
}

/// Where an accepted commit or message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Appended {
    /// Its sequence number in the thread's log.
    pub seq: u64,
    /// The thread's epoch after it.
    pub epoch: u64,
}

/// What a log entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An MLS commit, with its declared membership change.
    Commit,
    /// An MLS application message.
    Application,
    /// The recall of an application message by its sender (`recalls`
    /// names it; the body is empty, and so is the recalled message's).
    Recall,
    /// A change of the thread's lifespan (disappearing messages), set by
    /// a member; `lifespan_s` says to what. No MLS message.
    Lifespan,
}

/// One entry of a thread's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ThreadEntry {
    /// Its sequence number, from 1, no gaps.
    pub seq: u64,
    /// Commit or application message.
    pub kind: EntryKind,
    /// The epoch it was made in.
    pub epoch: u64,
    /// The sending user.
    pub sender_user: String,
    /// The sending device.
    pub sender_device: String,
    /// When the server accepted it (Unix ms).
    pub created_at_ms: i64,
    /// The MLS message.
    pub body: Blob,
    /// For a commit, the declared membership change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<MembershipChange>,
    /// For a recall, the message it recalls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalls: Option<u64>,
    /// For a `lifespan` entry: the thread's new lifespan in seconds
    /// (absent: messages no longer disappear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifespan_s: Option<u64>,
    /// For a message the server's sweep erased (the thread's lifespan or
    /// the organisation's retention policy): when. Its body is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_at_ms: Option<i64>,
    /// An urgent message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
}

/// `GET /v1/threads/{id}/entries?after=SEQ&limit=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EntryPage {
    /// Entries after `after`, in order.
    pub entries: Vec<ThreadEntry>,
    /// The thread's last sequence number (for a former member, the last
    /// one it may read).
    pub last_seq: u64,
    /// For a former member: how its membership ended. It reads the log up
    /// to that point, and nothing after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<MembershipEnded>,
    /// The thread's current lifespan in seconds (disappearing
    /// messages), if it has one: a device that joined after it was set
    /// learns it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifespan_s: Option<u64>,
}

/// How a device's membership of a thread ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MembershipEnded {
    /// The last entry the device may read (for a removal by commit, that
    /// commit).
    pub seq: u64,
    /// When (Unix ms).
    pub at_ms: i64,
    /// The user who ended it (a member who removed the device, an
    /// administrator, or its own user), if known.
    pub by_user: Option<String>,
    /// How.
    pub reason: EndReason,
}

/// How a membership ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// A member's commit removed the device.
    Removed,
    /// Its user left the thread.
    Left,
    /// An administrator deactivated its user.
    Deactivated,
    /// An administrator removed the device.
    DeviceRemoved,
    /// A reason this client does not know (a newer server's).
    #[serde(other)]
    Unknown,
}

impl EndReason {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Removed => "removed",
            Self::Left => "left",
            Self::Deactivated => "deactivated",
            Self::DeviceRemoved => "device_removed",
            Self::Unknown => "unknown",
        }
    }

    /// From its stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "removed" => Some(Self::Removed),
            "left" => Some(Self::Left),
            "deactivated" => Some(Self::Deactivated),
            "device_removed" => Some(Self::DeviceRemoved),
            _ => None,
        }
    }
}

/// A pending welcome for the caller's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Its id, to acknowledge it.
    pub welcome_id: String,
    /// The thread it admits to.
    pub thread_id: String,
    /// The epoch it starts at.
    pub epoch: u64,
    /// The sequence of the commit that added the device: read the log
    /// after it.
    pub joined_seq: u64,
    /// The MLS Welcome.
    pub welcome: Blob,
}

/// `GET /v1/welcomes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WelcomeList {
    /// Pending welcomes, oldest first.
    pub welcomes: Vec<Welcome>,
}

/// `POST /v1/threads/{id}/delivered` and `.../read`: a receipt up to a
/// sequence number, signed by the device that gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The highest sequence processed (delivered) or read.
    pub seq: u64,
    /// When the device gave it (Unix ms, its clock).
    pub time_ms: i64,
    /// The device key's Ed25519 signature over [`receipt_message`].
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub signature: Vec<u8>,
}

/// What a device signs to acknowledge entries 1 to `through` of a thread:
/// `curbside receipt v1` then `server=`, `device=`, `thread=`, `kind=`
/// (`delivered` or `read`), `through=` and `time_ms=` lines, each ending in
/// a newline. The server keeps the signature in the receipt's audit entry
/// (see docs/audit-format.md), where anyone with the device's public key
/// can check it; the server, which never holds device keys, cannot make
/// one.
pub fn receipt_message(
    server_id: &str,
    device_id: &str,
    thread_id: &str,
    kind: ReceiptKind,
    through: u64,
    time_ms: i64,
) -> Vec<u8> {
    let kind = match kind {
        ReceiptKind::Delivered => "delivered",
        ReceiptKind::Read => "read",
    };
    format!(
        "curbside receipt v1\nserver={server_id}\ndevice={device_id}\nthread={thread_id}\n\
         kind={kind}\nthrough={through}\ntime_ms={time_ms}\n"
    )
    .into_bytes()
}

/// A signed receipt as its audit entry's evidence:
/// `receipt v1 through=N time_ms=T signature=S` (S unpadded base64url).
pub fn receipt_evidence(through: u64, time_ms: i64, signature: &[u8]) -> String {
    format!(
        "receipt v1 through={through} time_ms={time_ms} signature={}",
        crate::b64::encode(signature)
    )
}

/// Reads [`receipt_evidence`]'s form: `(through, time_ms, signature)`.
pub fn parse_receipt_evidence(text: &str) -> Option<(u64, i64, Vec<u8>)> {
    let rest = text.strip_prefix("receipt v1 through=")?;
    let (through, rest) = rest.split_once(" time_ms=")?;
    let (time_ms, signature) = rest.split_once(" signature=")?;
    Some((
        through.parse().ok()?,
        time_ms.parse().ok()?,
        crate::b64::decode(signature).ok()?,
    ))
}

/// The authenticated WebSocket that pushes events to a device.
pub const EVENTS_PATH: &str = "/v1/events";

/// Where a browser asks for a single-use ticket to open [`EVENTS_PATH`]
/// (its WebSocket cannot send an `Authorization` header).
pub const EVENTS_TICKET_PATH: &str = "/v1/events/ticket";

/// The WebSocket subprotocol the server answers [`EVENTS_PATH`] with; a
/// browser offers it beside `curbside.ticket.TICKET`.
pub const EVENTS_PROTOCOL: &str = "curbside.events";

/// `POST /v1/events/ticket`: a ticket that opens one live-events socket
/// for the caller's session, offered as the WebSocket subprotocol
/// `curbside.ticket.TICKET` within 30 s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventsTicket {
    /// 256 random bits, unpadded base64url.
    pub ticket: String,
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
}

/// Which receipt moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// A device processed entries up to `seq`.
    Delivered,
    /// A user read up to `seq`.
    Read,
}

/// What `/v1/events` pushes, one JSON text frame each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new entry in one of the device's threads.
    Entry {
        /// The thread.
        thread_id: String,
        /// The entry, as the log holds it.
        entry: ThreadEntry,
    },
    /// A welcome for this device.
    Welcome {
        /// The welcome, as `GET /v1/welcomes` lists it.
        welcome: Welcome,
    },
    /// A member's receipt moved.
    Receipt {
        /// The thread.
        thread_id: String,
        /// Delivered or read.
        kind: ReceiptKind,
        /// The member user.
        user_id: String,
        /// The member device (for delivery receipts).
        device_id: String,
        /// Up to where.
        seq: u64,
    },
    /// An urgent message was acknowledged by `user_id`.
    Acknowledged {
        /// The thread.
        thread_id: String,
        /// The urgent message.
        seq: u64,
        /// Who acknowledged it.
        user_id: String,
        /// When.
        at_ms: i64,
    },
    /// Nobody acknowledged urgent message `seq` in time: its recipients
    /// are alerted again (`realerted`), or its backup was asked in
    /// (`escalated`, with `backup_user`; a member's client adds them).
    Urgent {
        /// The thread.
        thread_id: String,
        /// The urgent message.
        seq: u64,
        /// `realerted` or `escalated`.
        stage: crate::clinical::UrgentStage,
        /// Whom it escalated to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backup_user: Option<String>,
    },
}

/// Whether `text` is a thread id: 32 lower-case hex digits.
pub fn is_thread_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_base64url_and_strict() {
        let upload = KeyPackageUpload {
            packages: vec![Blob(vec![0xfb, 0xff])],
            last_resort: None,
        };
        let text = serde_json::to_string(&upload).unwrap();
        assert_eq!(text, r#"{"packages":["-_8"],"last_resort":null}"#);
        assert_eq!(
            crate::json::decode::<KeyPackageUpload>(br#"{"packages":["-_8"]}"#).unwrap(),
            upload
        );
        assert!(crate::json::decode::<KeyPackageUpload>(br#"{"packages":["+/8="]}"#).is_err());
    }
}
