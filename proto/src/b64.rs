//! Binary values on the wire: unpadded base64url strings, decoded strictly
//! (padding, other alphabets and stray bits are refused).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serializer};

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url.
pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_NO_PAD.decode(text)
}

/// `#[serde(with = "curbside_proto::b64")]` for `Vec<u8>` fields.
pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&encode(bytes))
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    decode(&text).map_err(|_| serde::de::Error::custom("expected unpadded base64url"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_padding_and_other_alphabets() {
        let bytes = [0xfbu8, 0xff, 0x00, 0x10];
        assert_eq!(super::decode(&super::encode(&bytes)).unwrap(), bytes);
        assert!(super::decode("-_8AEA==").is_err());
        assert!(super::decode("+/8AEA").is_err());
    }
}
