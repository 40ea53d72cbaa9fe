//! The administrators' API: users, their enrollment codes and their
//! devices; and the messaging policy (read and accepted by everyone,
//! published by administrators).

use curbside_proto::identity::{
    DeviceList, EnrollmentCodeIssued, NewUser, OutstandingCodes, Role, User, UserList, UserStatus,
    UserUpdate,
};
use curbside_proto::policy::{
    AcceptPolicy, PolicyPending, PolicyState, PolicyVersion, PublishPolicy,
};
use curbside_proto::routes;

use super::connection::{Client, encode_path, encode_query};
use super::error::ClientError;

impl Client {
    /// `POST /v1/admin/users`.
    pub async fn create_user(&self, user: &NewUser) -> Result<User, ClientError> {
        self.post(routes::ADMIN_USERS, user).await
    }

    /// `GET /v1/admin/users?q=...`: one page, from `after` (the `next` of
    /// the page before).
    pub async fn list_users(
        &self,
        query: &str,
        role: Option<Role>,
        status: Option<UserStatus>,
        after: Option<&str>,
    ) -> Result<UserList, ClientError> {
        let mut path = format!("{}?q={}", routes::ADMIN_USERS, encode_query(query));
        if let Some(role) = role {
            path.push_str(&format!("&role={}", role.as_str()));
        }
        if let Some(status) = status {
            path.push_str(&format!("&status={}", status.as_str()));
        }
        if let Some(after) = after {
            path.push_str(&format!("&after={}", encode_query(after)));
        }
        self.get(&path).await
    }

    /// `GET /v1/policy`.
    pub async fn policy(&self) -> Result<PolicyState, ClientError> {
        self.get(routes::POLICY).await
    }

    /// `POST /v1/policy/accept`.
    pub async fn accept_policy(&self, version: u64) -> Result<(), ClientError> {
        self.send_empty(
            reqwest::Method::POST,
            routes::POLICY_ACCEPT,
            Some(&AcceptPolicy { version }),
        )
        .await
    }

    /// `POST /v1/admin/policy`.
    pub async fn publish_policy(&self, text: &str) -> Result<PolicyVersion, ClientError> {
        self.post(
            routes::ADMIN_POLICY,
            &PublishPolicy {
                text: text.to_owned(),
            },
        )
        .await
    }

    /// `GET /v1/admin/policy/pending`.
    pub async fn policy_pending(&self) -> Result<PolicyPending, ClientError> {
        self.get(routes::ADMIN_POLICY_PENDING).await
    }

    /// `GET /v1/admin/users/{id}`.
    pub async fn get_user(&self, user_id: &str) -> Result<User, ClientError> {
        self.get(&routes::path(routes::ADMIN_USER, &[&encode_path(user_id)]))
            .await
    }

    /// `PATCH /v1/admin/users/{id}`.
    pub async fn update_user(
        &self,
        user_id: &str,
        update: &UserUpdate,
    ) -> Result<User, ClientError> {
        self.send(
            reqwest::Method::PATCH,
            &routes::path(routes::ADMIN_USER, &[&encode_path(user_id)]),
            Some(update),
        )
        .await
    }

    /// `POST /v1/admin/users/{id}/deactivate` or `.../reactivate`.
    pub async fn set_user_active(&self, user_id: &str, active: bool) -> Result<User, ClientError> {
        let pattern = if active {
            routes::ADMIN_USER_REACTIVATE
        } else {
            routes::ADMIN_USER_DEACTIVATE
        };
        self.send(
            reqwest::Method::POST,
            &routes::path(pattern, &[&encode_path(user_id)]),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/admin/users/{id}/enrollment-codes`.
    pub async fn issue_enrollment_code(
        &self,
        user_id: &str,
    ) -> Result<EnrollmentCodeIssued, ClientError> {
        self.issue_enrollment_code_keeping(user_id, false).await
    }

    /// `POST /v1/admin/users/{id}/enrollment-codes?keep_others=...`: a new
    /// code, revoking the user's older ones unless `keep_others`.
    pub async fn issue_enrollment_code_keeping(
        &self,
        user_id: &str,
        keep_others: bool,
    ) -> Result<EnrollmentCodeIssued, ClientError> {
        let mut path = routes::path(routes::ADMIN_USER_CODES, &[&encode_path(user_id)]);
        if keep_others {
            path.push_str("?keep_others=true");
        }
        self.send(reqwest::Method::POST, &path, None::<&()>).await
    }

    /// `GET /v1/admin/users/{id}/enrollment-codes`: the outstanding codes.
    pub async fn enrollment_codes(&self, user_id: &str) -> Result<OutstandingCodes, ClientError> {
        self.get(&routes::path(
            routes::ADMIN_USER_CODES,
            &[&encode_path(user_id)],
        ))
        .await
    }

    /// `DELETE /v1/admin/users/{id}/enrollment-codes/{code_id}`.
    pub async fn revoke_enrollment_code(
        &self,
        user_id: &str,
        code_id: &str,
    ) -> Result<(), ClientError> {
        self.send_empty(
            reqwest::Method::DELETE,
            &routes::path(
                routes::ADMIN_USER_CODE,
                &[&encode_path(user_id), &encode_path(code_id)],
            ),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/admin/users/{id}/devices`.
    pub async fn list_devices(&self, user_id: &str) -> Result<DeviceList, ClientError> {
        self.get(&routes::path(
            routes::ADMIN_USER_DEVICES,
            &[&encode_path(user_id)],
        ))
        .await
    }

    /// `DELETE /v1/admin/users/{id}/devices/{device_id}`.
    pub async fn remove_device(&self, user_id: &str, device_id: &str) -> Result<(), ClientError> {
        self.send_empty(
            reqwest::Method::DELETE,
            &routes::path(
                routes::ADMIN_USER_DEVICE,
                &[&encode_path(user_id), &encode_path(device_id)],
            ),
            None::<&()>,
        )
        .await
    }
}
