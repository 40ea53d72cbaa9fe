//! The clinical workflow's API: acknowledging urgent messages, the
//! membership changes the server asks for, roles and their shifts, and
//! the escalation policies.

use curbside_proto::clinical::{
    AckRequest, EscalationPolicies, EscalationPolicy, NewRole, NewShift, OnCallRole,
    PendingMembership, PushTokenRequest, RoleList, Shift, UrgentStatus,
};
use curbside_proto::routes;
use curbside_proto::threads::{ClaimedKeyPackages, KeyPackageClaim};

use super::connection::{Client, encode_path};
use super::error::ClientError;

impl Client {
    /// `POST /v1/threads/{id}/ack`.
    pub async fn acknowledge(
        &self,
        thread_id: &str,
        seq: u64,
    ) -> Result<UrgentStatus, ClientError> {
        self.post(
            &routes::path(routes::THREAD_ACK, &[&encode_path(thread_id)]),
            &AckRequest { seq },
        )
        .await
    }

    /// `GET /v1/membership/pending`.
    pub async fn pending_membership(&self) -> Result<PendingMembership, ClientError> {
        self.get(routes::PENDING_MEMBERSHIP).await
    }

    /// `POST /v1/key-packages/claim` for only these of the user's devices.
    pub async fn claim_key_packages_of(
        &self,
        user_id: &str,
        devices: &[String],
    ) -> Result<ClaimedKeyPackages, ClientError> {
        self.post(
            routes::KEY_PACKAGES_CLAIM,
            &KeyPackageClaim {
                user_id: user_id.to_owned(),
                devices: Some(devices.to_vec()),
            },
        )
        .await
    }

    /// `PUT /v1/push-token`: where the push gateway reaches this device
    /// (the CLI registers none; an app on a phone would).
    pub async fn register_push_token(&self, token: &PushTokenRequest) -> Result<(), ClientError> {
        self.send_empty(reqwest::Method::PUT, routes::PUSH_TOKEN, Some(token))
            .await
    }

    /// `GET /v1/directory/roles`.
    pub async fn directory_roles(&self) -> Result<RoleList, ClientError> {
        self.get(routes::DIRECTORY_ROLES).await
    }

    /// `GET /v1/admin/roles`.
    pub async fn admin_roles(&self) -> Result<RoleList, ClientError> {
        self.get(routes::ADMIN_ROLES).await
    }

    /// `POST /v1/admin/roles`.
    pub async fn create_role(&self, role: &NewRole) -> Result<OnCallRole, ClientError> {
        self.post(routes::ADMIN_ROLES, role).await
    }

    /// `POST /v1/admin/roles/{id}/shifts`.
    pub async fn assign_shift(
        &self,
        role_id: &str,
        shift: &NewShift,
    ) -> Result<Shift, ClientError> {
        self.post(
            &routes::path(routes::ADMIN_ROLE_SHIFTS, &[&encode_path(role_id)]),
            shift,
        )
        .await
    }

    /// `DELETE /v1/admin/roles/{id}/shifts/{shift}`.
    pub async fn cancel_shift(&self, role_id: &str, shift_id: &str) -> Result<(), ClientError> {
        self.send_empty::<()>(
            reqwest::Method::DELETE,
            &routes::path(
                routes::ADMIN_ROLE_SHIFT,
                &[&encode_path(role_id), &encode_path(shift_id)],
            ),
            None,
        )
        .await
    }

    /// `GET /v1/admin/escalation`.
    pub async fn escalation_policies(&self) -> Result<EscalationPolicies, ClientError> {
        self.get(routes::ADMIN_ESCALATION).await
    }

    /// `PUT /v1/admin/escalation`.
    pub async fn set_escalation_policy(
        &self,
        policy: &EscalationPolicy,
    ) -> Result<EscalationPolicy, ClientError> {
        self.send(reqwest::Method::PUT, routes::ADMIN_ESCALATION, Some(policy))
            .await
    }
}
