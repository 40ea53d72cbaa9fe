//! Strict JSON decoding shared by every reader of Curbside messages.

use serde::de::DeserializeOwned;

/// Decodes one JSON value of type `T` from `bytes`, refusing trailing bytes.
///
/// Unknown fields are refused by the types themselves
/// (`#[serde(deny_unknown_fields)]`); this function adds the guarantee that
/// nothing but white space follows the value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Encodes `value` as compact JSON.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(value)
}
