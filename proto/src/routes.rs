//! Every route's path, as the server declares it and clients call it:
//! one constant per path pattern, `{parameter}`s and all. [`path`] fills a
//! pattern in. The server's API document (`/v1/openapi.json`) is made from
//! the same constants.

pub use crate::OPENAPI_PATH as OPENAPI;
pub use crate::audit_review::{
    ENTRIES_PATH as AUDIT_ENTRIES, EXPORT_PATH as AUDIT_EXPORT, KEY_PATH as AUDIT_KEY,
    TREE_CHECKPOINT_PATH as AUDIT_TREE_CHECKPOINT, TREE_CONSISTENCY_PATH as AUDIT_TREE_CONSISTENCY,
    TREE_INCLUSION_PATH as AUDIT_TREE_INCLUSION,
};
pub use crate::clinical::{
    DIRECTORY_ROLES_PATH as DIRECTORY_ROLES, ESCALATION_PATH as ADMIN_ESCALATION,
    PENDING_MEMBERSHIP_PATH as PENDING_MEMBERSHIP, PUSH_TOKEN_PATH as PUSH_TOKEN,
    ROLE_SHIFT_PATH as ADMIN_ROLE_SHIFT, ROLE_SHIFTS_PATH as ADMIN_ROLE_SHIFTS,
    ROLES_PATH as ADMIN_ROLES, THREAD_ACK_PATH as THREAD_ACK,
};
pub use crate::health::{HEALTH_PATH as HEALTH, READY_PATH as READY};
pub use crate::policy::{
    ACCEPT_PATH as POLICY_ACCEPT, ADMIN_PENDING_PATH as ADMIN_POLICY_PENDING,
    ADMIN_POLICY_PATH as ADMIN_POLICY, ADMIN_VERSIONS_PATH as ADMIN_POLICY_VERSIONS,
    POLICY_PATH as POLICY,
};
pub use crate::retention::{
    HOLD_LIFT_PATH as ADMIN_HOLD_LIFT, HOLDS_PATH as ADMIN_HOLDS, RETENTION_PATH as ADMIN_RETENTION,
};
pub use crate::threads::{
    CLAIM_PATH as KEY_PACKAGES_CLAIM, EVENTS_PATH as EVENTS, KEY_PACKAGES_PATH as KEY_PACKAGES,
    THREADS_PATH as THREADS, WELCOMES_PATH as WELCOMES,
};

/// `POST`: a device joins with a one-time code.
pub const ENROLL: &str = "/v1/enroll";
/// `POST`: a challenge for a device to sign.
pub const AUTH_CHALLENGE: &str = "/v1/auth/challenge";
/// `POST`: a signed challenge for a session.
pub const AUTH_LOGIN: &str = "/v1/auth/login";
/// `POST`: the session ends.
pub const AUTH_LOGOUT: &str = "/v1/auth/logout";
/// `GET`: who is signed in.
pub const ME: &str = "/v1/me";
/// `GET`: colleagues by name or department.
pub const DIRECTORY: &str = "/v1/directory";
/// `GET`: one colleague.
pub const DIRECTORY_USER: &str = "/v1/directory/users/{user_id}";
/// `POST` makes a user, `GET` lists them.
pub const ADMIN_USERS: &str = "/v1/admin/users";
/// `GET` reads a user, `PATCH` changes one.
pub const ADMIN_USER: &str = "/v1/admin/users/{user_id}";
/// `POST`: the user is deactivated.
pub const ADMIN_USER_DEACTIVATE: &str = "/v1/admin/users/{user_id}/deactivate";
/// `POST`: the user is active again.
pub const ADMIN_USER_REACTIVATE: &str = "/v1/admin/users/{user_id}/reactivate";
/// `POST` issues an enrollment code, `GET` lists the outstanding ones.
pub const ADMIN_USER_CODES: &str = "/v1/admin/users/{user_id}/enrollment-codes";
/// `DELETE`: the code is revoked.
pub const ADMIN_USER_CODE: &str = "/v1/admin/users/{user_id}/enrollment-codes/{code_id}";
/// `GET`: the user's devices.
pub const ADMIN_USER_DEVICES: &str = "/v1/admin/users/{user_id}/devices";
/// `DELETE`: the device is removed.
pub const ADMIN_USER_DEVICE: &str = "/v1/admin/users/{user_id}/devices/{device_id}";
pub const ADMIN_USER_SESSIONS: &str = "/v1/admin/users/{user_id}/sessions";
pub const ADMIN_USER_SESSION_END: &str = "/v1/admin/users/{user_id}/sessions/{session_id}/end";
pub const ADMIN_OVERVIEW: &str = "/v1/admin/overview";
/// `GET`: a thread, its members and receipts.
pub const THREAD: &str = "/v1/threads/{thread_id}";
/// `POST`: an MLS commit.
pub const THREAD_COMMITS: &str = "/v1/threads/{thread_id}/commits";
/// `POST`: an application message.
pub const THREAD_MESSAGES: &str = "/v1/threads/{thread_id}/messages";
/// `GET`: the thread's log.
pub const THREAD_ENTRIES: &str = "/v1/threads/{thread_id}/entries";
/// `POST`: a delivery receipt.
pub const THREAD_DELIVERED: &str = "/v1/threads/{thread_id}/delivered";
/// `POST`: a read receipt.
pub const THREAD_READ: &str = "/v1/threads/{thread_id}/read";
/// `POST`: the sender recalls one of their messages ("delete for everyone").
pub const THREAD_RECALL: &str = "/v1/threads/{thread_id}/recall";
/// `POST`: uploads an attachment's ciphertext.
pub const THREAD_ATTACHMENTS: &str = "/v1/threads/{thread_id}/attachments";
/// `GET`: an attachment's ciphertext.
pub const THREAD_ATTACHMENT: &str = "/v1/threads/{thread_id}/attachments/{attachment_id}";
/// `PUT`: the thread's lifespan (disappearing messages).
pub const THREAD_LIFESPAN: &str = "/v1/threads/{thread_id}/lifespan";
/// `POST`: the caller's devices leave the thread.
pub const THREAD_LEAVE: &str = "/v1/threads/{thread_id}/leave";
/// `POST`: a welcome was processed.
pub const WELCOME_ACK: &str = "/v1/welcomes/{welcome_id}/ack";

/// `pattern` with its `{parameter}`s replaced, in order, by `values`
/// (each already percent-encoded for a path segment); a parameter with no
/// value left is kept as it is.
pub fn path(pattern: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(pattern.len() + values.len() * 32);
    let mut values = values.iter();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|close| close + open) else {
            break;
        };
        out.push_str(&rest[..open]);
        match values.next() {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_filled_in_order() {
        assert_eq!(
            path(ADMIN_USER_CODE, &["u1", "c2"]),
            "/v1/admin/users/u1/enrollment-codes/c2"
        );
        assert_eq!(path(THREADS, &[]), "/v1/threads");
        assert_eq!(path(THREAD, &[]), THREAD);
    }
}
