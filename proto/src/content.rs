//! What travels inside a thread's MLS application messages: the plaintext
//! only members' devices ever see. The server never parses it.
//!
//! A message is a JSON object tagged by `type`:
//! - `{"type":"text","text":"...","attachments":[...]}`: a message as the
//!   clinician wrote it, with the files sent with it if any (each with the
//!   key that opens it, see [`crate::attachment::AttachmentRef`]);
//! - `{"type":"subject","subject":"..."}`: the thread's subject, sent when
//!   a thread is made, and again by whoever adds members, so newcomers (who
//!   read nothing from before they joined) learn it too;
//! - `{"type":"forward","seq":N,"sender_user":"...","sent_at_ms":T,"text":"..."}`:
//!   an urgent message passed on to the backup its escalation reached.
//!
//! Bytes that are not such an object (messages from clients before this
//! format) are read as text.

use serde::{Deserialize, Serialize};

use crate::attachment::AttachmentRef;

/// The plaintext of an application message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Content {
    /// A message.
    Text {
        /// As written (several lines allowed; empty when the message is
        /// only attachments).
        text: String,
        /// Files sent with it (see [`crate::attachment`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentRef>,
    },
    /// The thread's subject.
    Subject {
        /// The subject.
        subject: String,
    },
    /// An urgent message passed on to a backup whom its escalation asked
    /// in, by the member whose client added them (a newcomer cannot
    /// decrypt what was sent before they joined).
    Forward {
        /// The urgent message's entry, which the backup acknowledges.
        seq: u64,
        /// Its sender.
        sender_user: String,
        /// When it was sent.
        sent_at_ms: i64,
        /// Its text.
        text: String,
    },
}

impl Content {
    /// The bytes to encrypt.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads decrypted bytes: a `Content`, or (from older clients, or
    /// anything else) text.
    pub fn decode(bytes: &[u8]) -> Self {
        crate::json::decode::<Self>(bytes).unwrap_or_else(|_| Self::Text {
            text: String::from_utf8_lossy(bytes).into_owned(),
            attachments: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_round_trips_and_plain_bytes_are_text() {
        for content in [
            Content::Text {
                text: "two\nlines".into(),
                attachments: Vec::new(),
            },
            Content::Text {
                text: String::new(),
                attachments: vec![AttachmentRef {
                    id: "0".repeat(32),
                    key: vec![1; 32],
                    sha256: "b".repeat(64),
                    name: "ecg.png".into(),
                    media_type: "image/png".into(),
                    size: 5,
                }],
            },
            Content::Subject {
                subject: "Bed 4, chest pain".into(),
            },
            Content::Forward {
                seq: 7,
                sender_user: "a".repeat(32),
                sent_at_ms: 1_700_000_000_000,
                text: "BP 70/40".into(),
            },
        ] {
            assert_eq!(Content::decode(&content.encode()), content);
        }
        assert_eq!(
            Content::Text {
                text: "x".into(),
                attachments: Vec::new()
            }
            .encode(),
            br#"{"type":"text","text":"x"}"#
        );
        assert_eq!(
            Content::decode(b"Subject: old style"),
            Content::Text {
                text: "Subject: old style".into(),
                attachments: Vec::new()
            }
        );
        assert_eq!(
            Content::decode(br#"{"type":"text","text":"x","extra":1}"#),
            Content::Text {
                text: r#"{"type":"text","text":"x","extra":1}"#.into(),
                attachments: Vec::new()
            }
        );
    }
}
