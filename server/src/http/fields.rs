//! Checks on the free-text fields users and administrators fill in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
/// The longest user name or external id (an e-mail address fits).
pub const IDENTIFIER_MAX: usize = 256;

/// A user name or external id, checked as [`text`] checks (an empty one is
/// none).
pub fn identifier(field: &str, value: Option<&str>) -> Result<Option<String>, Error> {
    value
        .filter(|value| !value.trim().is_empty())
        .map(|value| text(field, value, IDENTIFIER_MAX))
        .transpose()
}

/// A place in a list of users (the directory's, the administrators'), by
/// display name then id: the last user of a page, as
/// `BASE64URL(display name).USER_ID`.
pub fn name_cursor(display_name: &str, user_id: &str) -> String {
    format!("{}.{user_id}", URL_SAFE_NO_PAD.encode(display_name))
}

/// The display name and id a [`name_cursor`] holds.
pub fn parse_name_cursor(text: &str) -> Result<(String, String), Error> {
    text.split_once('.')
        .and_then(|(name, user_id)| {
            let name = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
            Some((name, user_id.to_owned()))
        })
        .ok_or_else(|| {
            Error::InvalidRequest(
                "`after` is not a cursor from this search; pass the `next` of the page before"
                    .to_owned(),
            )
        })
}
