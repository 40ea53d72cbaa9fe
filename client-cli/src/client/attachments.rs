//! Attachments and lifespans: uploading and downloading encrypted files,
//! and setting how long a thread's messages live; and the retention policy
//! and legal holds of the administrators' API.

use std::time::Duration;

use curbside_proto::attachment::{AttachmentUploaded, LifespanRequest};
use curbside_proto::retention::{Hold, HoldList, NewHold, RetentionPolicy, RetentionUpdate};
use curbside_proto::routes;
use curbside_proto::threads::Appended;

use super::connection::{Client, encode_path};
use super::error::{ClientError, refusal};

/// How long moving one attachment may take (100 MiB at 1 Mbit/s takes
/// about 14 minutes).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Client {
    /// `POST /v1/threads/{id}/attachments`: uploads `size` bytes of
    /// ciphertext, streamed from `body`.
    pub async fn upload_attachment(
        &self,
        thread_id: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<AttachmentUploaded, ClientError> {
        let path = routes::path(routes::THREAD_ATTACHMENTS, &[&encode_path(thread_id)]);
        let request = self
            .request(reqwest::Method::POST, &path)?
            .timeout(TRANSFER_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body);
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        self.decode(response).await
    }

    /// `GET /v1/threads/{id}/attachments/{attachment_id}`: the response,
    /// whose body (the ciphertext) the caller reads a chunk at a time.
    pub async fn download_attachment(
        &self,
        thread_id: &str,
        attachment_id: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let path = routes::path(
            routes::THREAD_ATTACHMENT,
            &[&encode_path(thread_id), &encode_path(attachment_id)],
        );
        let response = self
            .request(reqwest::Method::GET, &path)?
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(&error))?;
        Err(refusal(status, &body))
    }

    /// The next piece of a download's body, if any.
    pub async fn next_piece(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, ClientError> {
        response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))
    }

    /// `PUT /v1/threads/{id}/lifespan`.
    pub async fn set_lifespan(
        &self,
        thread_id: &str,
        lifespan_s: Option<u64>,
    ) -> Result<Appended, ClientError> {
        self.send(
            reqwest::Method::PUT,
            &routes::path(routes::THREAD_LIFESPAN, &[&encode_path(thread_id)]),
            Some(&LifespanRequest { lifespan_s }),
        )
        .await
    }

    /// `GET /v1/admin/retention`.
    pub async fn retention(&self) -> Result<RetentionPolicy, ClientError> {
        self.get(routes::ADMIN_RETENTION).await
    }

    /// `PUT /v1/admin/retention`.
    pub async fn set_retention(
        &self,
        max_age_s: Option<u64>,
    ) -> Result<RetentionPolicy, ClientError> {
        self.send(
            reqwest::Method::PUT,
            routes::ADMIN_RETENTION,
            Some(&RetentionUpdate { max_age_s }),
        )
        .await
    }

    /// `GET /v1/admin/holds`.
    pub async fn holds(&self) -> Result<HoldList, ClientError> {
        self.get(routes::ADMIN_HOLDS).await
    }

    /// `POST /v1/admin/holds`.
    pub async fn place_hold(&self, hold: &NewHold) -> Result<Hold, ClientError> {
        self.post(routes::ADMIN_HOLDS, hold).await
    }

    /// `POST /v1/admin/holds/{id}/lift`.
    pub async fn lift_hold(&self, hold_id: &str) -> Result<Hold, ClientError> {
        self.send(
            reqwest::Method::POST,
            &routes::path(routes::ADMIN_HOLD_LIFT, &[&encode_path(hold_id)]),
            None::<&()>,
        )
        .await
    }
}
