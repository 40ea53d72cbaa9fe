//! Enrolling a device, signing in and out with its key, and the directory
//! of colleagues.

use curbside_proto::identity::{
    Challenge, ChallengeRequest, Directory, DirectoryEntry, EnrollRequest, Enrolled, LoggedIn,
    LoginRequest, Whoami, login_message,
};
use curbside_proto::routes;

use super::connection::{Client, encode_path, encode_query};
use super::error::ClientError;

impl Client {
    /// `POST /v1/enroll`.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<Enrolled, ClientError> {
        self.post(routes::ENROLL, request).await
    }

    /// `POST /v1/auth/challenge`.
    pub async fn challenge(&self, device_id: &str) -> Result<Challenge, ClientError> {
        self.post(
            routes::AUTH_CHALLENGE,
            &ChallengeRequest {
                device_id: device_id.to_owned(),
            },
        )
        .await
    }

    /// `POST /v1/auth/login`.
    pub async fn login(&self, request: &LoginRequest) -> Result<LoggedIn, ClientError> {
        self.post(routes::AUTH_LOGIN, request).await
    }

    /// Challenge, sign and log in with this device key; the token is kept
    /// for later requests and returned. The signed message names
    /// `server_id`, the id learned at enrollment, never one a server offers
    /// now: a server that relays another's challenge gets nothing usable.
    pub async fn login_with_key(
        &mut self,
        server_id: &str,
        device_id: &str,
        key: &ring::signature::Ed25519KeyPair,
    ) -> Result<LoggedIn, ClientError> {
        let challenge = self.challenge(device_id).await?;
        if challenge.server_id != server_id {
            return Err(ClientError::WrongServer);
        }
        let message = login_message(server_id, device_id, &challenge.nonce);
        let logged_in = self
            .login(&LoginRequest {
                challenge_id: challenge.challenge_id,
                device_id: device_id.to_owned(),
                signature: key.sign(&message).as_ref().to_vec(),
            })
            .await?;
        self.token = Some(logged_in.token.clone());
        Ok(logged_in)
    }

    /// `POST /v1/auth/logout`.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.send_empty(reqwest::Method::POST, routes::AUTH_LOGOUT, None::<&()>)
            .await
    }

    /// `GET /v1/me`.
    pub async fn whoami(&self) -> Result<Whoami, ClientError> {
        self.get(routes::ME).await
    }

    /// `GET /v1/directory?q=...`: the first page of matches.
    pub async fn directory(&self, query: &str) -> Result<Directory, ClientError> {
        self.directory_page(query, None, None).await
    }

    /// `GET /v1/directory?q=...&after=...&limit=...`: one page of matches.
    pub async fn directory_page(
        &self,
        query: &str,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Directory, ClientError> {
        let mut path = format!("{}?q={}", routes::DIRECTORY, encode_query(query));
        if let Some(after) = after {
            path.push_str(&format!("&after={}", encode_query(after)));
        }
        if let Some(limit) = limit {
            path.push_str(&format!("&limit={limit}"));
        }
        self.get(&path).await
    }

    /// `GET /v1/directory/users/{id}`: one active user and their devices.
    pub async fn directory_user(&self, user_id: &str) -> Result<DirectoryEntry, ClientError> {
        self.get(&routes::path(
            routes::DIRECTORY_USER,
            &[&encode_path(user_id)],
        ))
        .await
    }
}
