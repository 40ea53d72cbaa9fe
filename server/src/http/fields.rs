//! Checks on the free-text fields users and administrators fill in.

use super::error::Error;

/// `value` trimmed, if it is 1 to `max_chars` characters with no control
/// characters; otherwise an error naming `field`.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<String, Error> {
    let value = value.trim();
    let length = value.chars().count();
    if length == 0 || length > max_chars || value.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "`{field}` must be 1 to {max_chars} characters, without line breaks or other control characters"
        )));
    }
    Ok(value.to_owned())
}

/// The longest display name, department or device name.
pub const NAME_MAX: usize = 100;
/// The longest licence number.
pub const LICENCE_MAX: usize = 64;
