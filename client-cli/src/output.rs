//! What a command prints: by default the text people read, and with
//! `--output json` one JSON value for programs, with every time in RFC
//! 3339 (UTC). A command whose result is only a sentence gives it as
//! `{"message": ...}`; errors go to standard error, as
//! `{"error": {"message": ..., "exit_code": N}}` in JSON.

use curbside_proto::clinical::{RoleList, Shift};
use curbside_proto::identity::User;
use serde_json::{Value, json};

/// How a command's result is printed (`--output`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON value.
    Json,
}

/// A command's result, both ways.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    text: String,
    json: Value,
}

impl Output {
    /// A result that people read as `text` and programs as `json`.
    pub fn new(text: impl Into<String>, json: Value) -> Self {
        Self {
            text: text.into(),
            json,
        }
    }

    /// The result as printed in `format`.
    pub fn render(self, format: Format) -> String {
        match format {
            Format::Text => self.text,
            Format::Json => self.json.to_string(),
        }
    }
}

impl From<String> for Output {
    fn from(text: String) -> Self {
        let json = json!({ "message": text });
        Self { text, json }
    }
}

/// `time_ms` (Unix milliseconds) in RFC 3339, UTC.
pub fn rfc3339(time_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(time_ms)
        .map_or_else(|_| time_ms.to_string(), |at| at.to_string())
}

/// A user, for programs.
pub fn user(user: &User) -> Value {
    json!({
        "user_id": user.user_id,
        "display_name": user.display_name,
        "role": user.role.as_str(),
        "department": user.department,
        "licence_number": user.licence_number,
        "user_name": user.user_name,
        "external_id": user.external_id,
        "status": user.status.as_str(),
        "created_at": rfc3339(user.created_at_ms),
        "updated_at": rfc3339(user.updated_at_ms),
    })
}

/// On-call roles with their shifts, for programs.
pub fn roles(roles: &RoleList) -> Value {
    let shift = |shift: &Shift| {
        json!({
            "shift_id": shift.shift_id,
            "user_id": shift.user_id,
            "display_name": shift.display_name,
            "starts_at": rfc3339(shift.starts_at_ms),
            "ends_at": rfc3339(shift.ends_at_ms),
            "timezone": shift.timezone,
        })
    };
    json!({
        "as_of": rfc3339(roles.now_ms),
        "roles": roles.roles.iter().map(|role| json!({
            "role_id": role.role_id,
            "name": role.name,
            "department": role.department,
            "holder": role.holder.as_ref().map(shift),
            "shifts": role.shifts.iter().map(shift).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A thread's message (or change of members, subject or lifespan), for
/// programs: never the attachments' keys.
pub fn message(message: &crate::store::StoredMessage) -> Value {
    json!({
        "seq": message.seq,
        "sender_user": message.sender_user,
        "sent_at": rfc3339(message.time_ms),
        "text": message.text,
        "urgent": message.urgent,
        "acknowledged": message.acknowledged,
        "recalled_at": message.recalled_at_ms.map(rfc3339),
        "subject": message.subject,
        "lifespan_s": message.lifespan.as_ref().map(|change| change.lifespan_s),
        "expires_after_s": message.expires_after_s,
        "forward_of": message.forward_of.as_ref().map(|forward| json!({
            "seq": forward.seq,
            "sender_user": forward.sender_user,
            "sent_at": rfc3339(forward.sent_at_ms),
        })),
        "change": message.change.as_ref().map(|change| json!({
            "added": change.added,
            "removed": change.removed,
        })),
        "attachments": message.attachments.iter().map(|file| json!({
            "id": file.id,
            "name": file.name,
            "media_type": file.media_type,
            "size": file.size,
            "sha256": file.sha256,
        })).collect::<Vec<_>>(),
    })
}

/// How a device's membership of a thread ended, for programs.
pub fn left(left: &crate::store::LeftThread) -> Value {
    json!({
        "at": rfc3339(left.at_ms),
        "by_user": left.by_user,
        "reason": left.reason,
    })
}

/// An error, for programs.
pub fn error(message: &str, exit_code: u8) -> String {
    json!({ "error": { "message": message, "exit_code": exit_code } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_601_600_123), "2026-12-07T00:00:00.123Z");
    }

    #[test]
    fn a_sentence_is_a_message_in_json() {
        let output = Output::from("Logged out".to_owned());
        assert_eq!(output.clone().render(Format::Text), "Logged out");
        assert_eq!(output.render(Format::Json), r#"{"message":"Logged out"}"#);
    }
}
