//! Wire types of identity: users, devices, enrollment, login and the
//! directory, and the exact bytes a device signs to log in.

use serde::{Deserialize, Serialize};

/// The length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// The length of a login nonce.
pub const NONCE_LEN: usize = 32;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes part in threads.
    Clinician,
    /// Provisions users and devices.
    Admin,
    /// Reviews the audit log.
    Auditor,
}

impl Role {
    /// The role as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clinician => "clinician",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Clinician, Self::Admin, Self::Auditor]
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

/// Whether a user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May sign in and appears in the directory.
    Active,
    /// Cannot sign in; every session ended when this was set.
    Deactivated,
}

impl UserStatus {
    /// The status as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deactivated => "deactivated",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Deactivated]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A user as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user's id.
    pub user_id: String,
    /// The name colleagues see.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// The user's department.
    pub department: String,
    /// A professional licence number, if recorded.
    pub licence_number: Option<String>,
    /// The name the organisation's identity provider or HR records know
    /// the user by (SCIM's `userName`), unique whatever its case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The identity provider's own id for the user (SCIM's `externalId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Active or deactivated.
    pub status: UserStatus,
    /// When the user was created (Unix ms).
    pub created_at_ms: i64,
    /// When the user was last changed (Unix ms).
    pub updated_at_ms: i64,
}

/// `POST /v1/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The name colleagues see.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// The user's department.
    pub department: String,
    /// A professional licence number.
    #[serde(default)]
    pub licence_number: Option<String>,
    /// The name to match the user on (SCIM's `userName`, an HR record's
    /// login), unique whatever its case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The identity provider's own id for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// `PATCH /v1/admin/users/{user_id}`: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A new display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A new department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// A new licence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence_number: Option<String>,
    /// A new user name (unique whatever its case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// A new external id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A list of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserList {
    /// The users, by display name.
    pub users: Vec<User>,
    /// Where the next page starts (`?after=`), if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A live session, as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionInfo {
    /// The session's id (not its token).
    pub session_id: String,
    /// The device it was opened on.
    pub device_id: String,
    /// That device's name.
    pub device_name: String,
    /// When it was opened (Unix ms).
    pub created_at_ms: i64,
    /// When it was last seen, to within 30 s (Unix ms).
    pub last_seen_at_ms: i64,
    /// When it stops working, however active (Unix ms).
    pub expires_at_ms: i64,
    /// The address it signed in from, if known.
    #[serde(default)]
    pub client_address: Option<String>,
}

/// `GET /v1/admin/users/{user_id}/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionList {
    /// The user's live sessions, newest first.
    pub sessions: Vec<SessionInfo>,
}

/// One day's activity (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DayCounts {
    /// The day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Thread messages sent that day.
    pub messages: u64,
    /// Audit entries written that day.
    pub audit_entries: u64,
}

/// `GET /v1/admin/overview`: the state of the installation at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Overview {
    /// The server's version.
    pub version: String,
    /// The SHA-256 fingerprint of the server's TLS certificate, as the
    /// server prints it and the CLI pins it.
    pub certificate_fingerprint: String,
    /// Active users.
    pub users_active: u64,
    /// Deactivated users.
    pub users_deactivated: u64,
    /// Enrolled devices of active users.
    pub devices_active: u64,
    /// Sessions not ended and not past their lifetime.
    pub sessions_active: u64,
    /// The last 14 days, oldest first.
    pub days: Vec<DayCounts>,
    /// Entries in the audit log.
    pub audit_size: u64,
    /// The tree size of the last signed tree checkpoint, if there is one.
    #[serde(default)]
    pub checkpoint_size: Option<u64>,
    /// When the last tree checkpoint was signed (Unix ms).
    #[serde(default)]
    pub checkpoint_time_ms: Option<i64>,
}

/// A device as its owner and administrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The device's id.
    pub device_id: String,
    /// Its owner.
    pub user_id: String,
    /// The name given at enrollment.
    pub device_name: String,
    /// Its Ed25519 public key.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub public_key: Vec<u8>,
    /// When it enrolled (Unix ms).
    pub created_at_ms: i64,
}

/// A list of devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceList {
    /// The devices, oldest first.
    pub devices: Vec<Device>,
}

/// `POST /v1/admin/users/{user_id}/enrollment-codes`: a code, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollmentCodeIssued {
    /// The code to hand to the user; the server keeps only its hash.
    pub code: String,
    /// The code's id, to list or revoke it by (never the code itself).
    pub code_id: String,
    /// Whose device it enrolls.
    pub user_id: String,
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
    /// How many of the user's older codes this one revoked.
    pub revoked: u64,
}

/// `POST /v1/admin/users/{id}/enrollment-codes?keep_others=BOOL`: by
/// default a new code revokes the user's older outstanding ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct IssueCodeQuery {
    /// Keep the user's other outstanding codes working.
    #[serde(default)]
    pub keep_others: bool,
}

/// An outstanding enrollment code (unused, unrevoked, unexpired), without
/// the code itself, which the server does not keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutstandingCode {
    /// The code's id.
    pub code_id: String,
    /// When it was issued (Unix ms).
    pub created_at_ms: i64,
    /// When it stops working (Unix ms).
    pub expires_at_ms: i64,
}

/// `GET /v1/admin/users/{id}/enrollment-codes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutstandingCodes {
    /// The user's outstanding codes, oldest first.
    pub codes: Vec<OutstandingCode>,
}

impl std::fmt::Debug for EnrollmentCodeIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentCodeIssued")
            .field("code_id", &self.code_id)
            .field("user_id", &self.user_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/enroll`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time enrollment code.
    pub code: String,
    /// A name for the device, e.g. "ward laptop".
    pub device_name: String,
    /// The device's Ed25519 public key.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub public_key: Vec<u8>,
    /// The first administrator's name; only read with the first-admin code.
    #[serde(default)]
    pub display_name: Option<String>,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

/// The answer to an enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Enrolled {
    /// The user the device belongs to.
    pub user: User,
    /// The new device.
    pub device: Device,
    /// The server's id, which login messages name.
    pub server_id: String,
}

/// `POST /v1/auth/challenge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The device that will sign.
    pub device_id: String,
}

/// A single-use login challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// Names the challenge in the login request.
    pub challenge_id: String,
    /// The nonce to sign (see [`login_message`]).
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub nonce: Vec<u8>,
    /// The server's id, which the signed message names.
    pub server_id: String,
    /// When the challenge stops working (Unix ms).
    pub expires_at_ms: i64,
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The challenge answered.
    pub challenge_id: String,
    /// The device answering.
    pub device_id: String,
    /// Ed25519 signature of [`login_message`].
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub signature: Vec<u8>,
}

/// A session: the bearer token for the `Authorization` header.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoggedIn {
    /// The JWT.
    pub token: String,
    /// The session's id (the token's `jti`).
    pub session_id: String,
    /// When the token expires (Unix ms); log in again after that.
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedIn")
            .field("session_id", &self.session_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    /// The signed-in user.
    pub user: User,
    /// The device of this session.
    pub device: Device,
    /// The session's id.
    pub session_id: String,
}

/// One user in the directory, with the keys of their devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DirectoryEntry {
    /// The user's id.
    pub user_id: String,
    /// The name colleagues see.
    pub display_name: String,
    /// What the user does.
    pub role: Role,
    /// The user's department.
    pub department: String,
    /// The user's devices and their public keys.
    pub devices: Vec<DirectoryDevice>,
}

/// A device in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DirectoryDevice {
    /// The device's id.
    pub device_id: String,
    /// Its name.
    pub device_name: String,
    /// Its Ed25519 public key.
    #[serde(with = "crate::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "base64url"))]
    pub public_key: Vec<u8>,
}

/// `GET /v1/directory?q=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Matching active users, by display name.
    pub entries: Vec<DirectoryEntry>,
    /// Where the next page starts (`?after=`), if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The most users one page of `GET /v1/admin/users` holds (`?limit=`,
/// also its default).
pub const MAX_USER_LIST: u32 = 500;

/// The most users one page of `GET /v1/directory` holds (`?limit=`).
pub const MAX_DIRECTORY_PAGE: u32 = 200;
/// The users a directory page holds when no `limit` is given.
pub const DEFAULT_DIRECTORY_PAGE: u32 = 50;

/// The domain-separation prefix of the login message.
pub const LOGIN_CONTEXT: &[u8] = b"curbside login v1\n";

/// The exact bytes a device signs to log in:
///
/// ```text
/// "curbside login v1\n"
/// "server=" server_id "\n"
/// "device=" device_id "\n"
/// "nonce=" base64url(nonce) "\n"
/// ```
///
/// The prefix keeps the signature from being valid for anything else the
/// key signs (MLS uses its own labels); the server id keeps a signature made
/// for one server from being replayed to another; the nonce is single-use.
pub fn login_message(server_id: &str, device_id: &str, nonce: &[u8]) -> Vec<u8> {
    let mut message = LOGIN_CONTEXT.to_vec();
    for (name, value) in [
        ("server", server_id.to_owned()),
        ("device", device_id.to_owned()),
        ("nonce", crate::b64::encode(nonce)),
    ] {
        message.extend_from_slice(name.as_bytes());
        message.push(b'=');
        message.extend_from_slice(value.as_bytes());
        message.push(b'\n');
    }
    message
}

/// Normalises an enrollment code as typed (case, dashes, spaces) to its
/// canonical form, or `None` if it cannot be one.
pub fn normalise_enrollment_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let well_formed = code.len() == ENROLLMENT_CODE_LEN
        && code.bytes().all(|b| ENROLLMENT_CODE_ALPHABET.contains(&b));
    well_formed.then_some(code)
}

/// The characters of an enrollment code (Crockford's base32: no I, L, O, U).
pub const ENROLLMENT_CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The number of characters in an enrollment code (100 bits).
pub const ENROLLMENT_CODE_LEN: usize = 20;

/// Formats a canonical code in groups of four for reading aloud.
pub fn format_enrollment_code(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn user() -> User {
        User {
            user_id: "u1".into(),
            display_name: "Dr. Ada".into(),
            role: Role::Clinician,
            department: "Cardiology".into(),
            licence_number: None,
            user_name: Some("ada@example.org".into()),
            external_id: None,
            status: UserStatus::Active,
            created_at_ms: 1,
            updated_at_ms: 2,
        }
    }

    fn round_trip<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = json::encode(value).unwrap();
        assert_eq!(&json::decode::<T>(&bytes).unwrap(), value);
    }

    #[test]
    fn every_type_round_trips() {
        let device = Device {
            device_id: "d1".into(),
            user_id: "u1".into(),
            device_name: "ward laptop".into(),
            public_key: vec![7; 32],
            created_at_ms: 3,
        };
        round_trip(&user());
        round_trip(&UserList {
            users: vec![user()],
            next: Some("bmFtZQ.u".into()),
        });
        round_trip(&device);
        round_trip(&DeviceList {
            devices: vec![device.clone()],
        });
        round_trip(&NewUser {
            display_name: "x".into(),
            role: Role::Auditor,
            department: "y".into(),
            licence_number: Some("L1".into()),
            user_name: None,
            external_id: None,
        });
        round_trip(&UserUpdate {
            role: Some(Role::Admin),
            ..UserUpdate::default()
        });
        round_trip(&EnrollmentCodeIssued {
            code: "C".into(),
            code_id: "i".into(),
            user_id: "u1".into(),
            expires_at_ms: 9,
            revoked: 1,
        });
        round_trip(&IssueCodeQuery { keep_others: true });
        round_trip(&OutstandingCodes {
            codes: vec![OutstandingCode {
                code_id: "i".into(),
                created_at_ms: 1,
                expires_at_ms: 2,
            }],
        });
        round_trip(&EnrollRequest {
            code: "C".into(),
            device_name: "n".into(),
            public_key: vec![1; 32],
            display_name: None,
        });
        round_trip(&Enrolled {
            user: user(),
            device: device.clone(),
            server_id: "s".into(),
        });
        round_trip(&ChallengeRequest {
            device_id: "d1".into(),
        });
        round_trip(&Challenge {
            challenge_id: "c".into(),
            nonce: vec![2; 32],
            server_id: "s".into(),
            expires_at_ms: 5,
        });
        round_trip(&LoginRequest {
            challenge_id: "c".into(),
            device_id: "d".into(),
            signature: vec![3; 64],
        });
        round_trip(&LoggedIn {
            token: "t".into(),
            session_id: "s".into(),
            expires_at_ms: 4,
        });
        round_trip(&Whoami {
            user: user(),
            device: device.clone(),
            session_id: "s".into(),
        });
        round_trip(&Directory {
            entries: vec![DirectoryEntry {
                user_id: "u".into(),
                display_name: "n".into(),
                role: Role::Admin,
                department: "d".into(),
                devices: vec![DirectoryDevice {
                    device_id: "d".into(),
                    device_name: "n".into(),
                    public_key: vec![4; 32],
                }],
            }],
            next: Some("bmFtZQ.u".into()),
        });
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let issued = EnrollmentCodeIssued {
            code: "SECRETCODE".into(),
            code_id: "i".into(),
            user_id: "u".into(),
            expires_at_ms: 1,
            revoked: 0,
        };
        let logged_in = LoggedIn {
            token: "SECRETTOKEN".into(),
            session_id: "s".into(),
            expires_at_ms: 1,
        };
        let enroll = EnrollRequest {
            code: "SECRETCODE".into(),
            device_name: "n".into(),
            public_key: vec![],
            display_name: None,
        };
        let shown = format!("{issued:?}{logged_in:?}{enroll:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn login_message_is_exactly_specified() {
        let message = login_message("srv", "dev", &[0xff, 0x00]);
        assert_eq!(
            message,
            b"curbside login v1\nserver=srv\ndevice=dev\nnonce=_wA\n".to_vec()
        );
        assert_ne!(message, login_message("srv2", "dev", &[0xff, 0x00]));
    }

    #[test]
    fn enrollment_codes_normalise() {
        let code = "0123456789ABCDEFGHJK";
        assert_eq!(normalise_enrollment_code(code).unwrap(), code);
        let typed = format_enrollment_code(code).to_lowercase();
        assert_eq!(typed, "0123-4567-89ab-cdef-ghjk");
        assert_eq!(normalise_enrollment_code(&typed).unwrap(), code);
        assert!(normalise_enrollment_code("0123456789ABCDEFGHJ").is_none());
        assert!(normalise_enrollment_code("0123456789ABCDEFGHJI").is_none());
    }
}
