//! Random ids and bytes from the operating system's generator (ring's
//! `SystemRandom`): every id the server makes is 128 random bits as 32
//! lower-case hex digits.

use ring::rand::SecureRandom;

/// The operating system could not supply random bytes.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(bytes)
}

/// A new random id: 128 bits as 32 lower-case hex digits.
pub fn new_id() -> Result<String, RandomError> {
    Ok(hex::encode(random_bytes::<16>()?))
}

/// Whether `text` has the form of an id: 32 lower-case hex digits.
pub fn is_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lower_case_hex_digits() {
        let id = new_id().unwrap();
        assert!(is_id(&id), "{id}");
        assert_ne!(id, new_id().unwrap());
        assert!(!is_id(&id.to_uppercase()));
        assert!(!is_id(&id[1..]));
    }
}
