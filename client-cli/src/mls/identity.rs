//! A member's identity, read from its MLS credential: the user and device
//! it names, and the key it is bound to.

use openmls::prelude::{BasicCredential, Credential};

use super::error::MlsError;

/// A member's identity, from its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: String,
    /// The device.
    pub device_id: String,
    /// The key the credential is bound to.
    pub public_key: Vec<u8>,
}

pub(super) fn identity_of(
    credential: &Credential,
    public_key: &[u8],
) -> Result<Identity, MlsError> {
    let basic =
        BasicCredential::try_from(credential.clone()).map_err(|_| MlsError::BadCredential)?;
    let text = std::str::from_utf8(basic.identity()).map_err(|_| MlsError::BadCredential)?;
    let (user_id, device_id) = text.split_once(':').ok_or(MlsError::BadCredential)?;
    // Exactly two ids of 32 lower-case hex digits.
    let is_id =
        |id: &str| id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_id(user_id) || !is_id(device_id) {
        return Err(MlsError::BadCredential);
    }
    Ok(Identity {
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        public_key: public_key.to_vec(),
    })
}
