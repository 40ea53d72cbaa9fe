//! The request id that ties a response, the server's log line and (later) the
//! audit entry of one request together.

use std::fmt;

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id the server accepts from a client.
pub const MAX_LEN: usize = 64;

/// A request id: 1 to 64 characters from `A-Z a-z 0-9 - _ . :`.
///
/// The server echoes a client's well-formed id and replaces anything else by
/// one of its own, so ids are safe to log, to put in headers and to export.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts `text` if it is a well-formed request id.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = !text.is_empty()
            && text.len() <= MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        well_formed.then(|| Self(text.to_owned()))
    }

    /// A request id made of these random bytes, as lower-case hex.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        let mut text = String::with_capacity(32);
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Self(text)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["a", "0f3e-41", "trace.id:7_x", &"z".repeat(MAX_LEN)] {
            assert_eq!(RequestId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_empty_long_and_injection_prone_ids() {
        for id in [
            "",
            &"z".repeat(MAX_LEN + 1),
            "a b",
            "line\nbreak",
            "quote\"",
            "comma,",
            "semi;colon",
            "ü",
        ] {
            assert!(RequestId::parse(id).is_none(), "{id:?} accepted");
        }
    }

    #[test]
    fn random_ids_are_well_formed() {
        let id = RequestId::from_random([0xab; 16]);
        assert_eq!(id.as_str(), "ab".repeat(16));
        assert!(RequestId::parse(id.as_str()).is_some());
    }
}
