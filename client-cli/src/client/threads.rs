//! The thread API: key packages, threads, their log and receipts, and
//! welcomes.

use curbside_proto::routes;
use curbside_proto::threads::{
    Appended, CLAIM_PATH, ClaimedKeyPackages, CommitRequest, EntryPage, KEY_PACKAGES_PATH,
    KeyPackageClaim, KeyPackageCount, KeyPackageUpload, MessageRequest, NewThread, Receipt,
    ReceiptKind, THREADS_PATH, ThreadDetail, ThreadList, ThreadSummary, WELCOMES_PATH, WelcomeList,
};

use super::connection::{Client, encode_path, encode_query};
use super::error::ClientError;

impl Client {
    /// `POST /v1/key-packages`: publishes this device's key packages.
    pub async fn upload_key_packages(
        &self,
        upload: &KeyPackageUpload,
    ) -> Result<KeyPackageCount, ClientError> {
        self.post(KEY_PACKAGES_PATH, upload).await
    }

    /// `GET /v1/key-packages`: how many this device has left.
    pub async fn key_package_count(&self) -> Result<KeyPackageCount, ClientError> {
        self.get(KEY_PACKAGES_PATH).await
    }

    /// `POST /v1/key-packages/claim`: one package per device of `user_id`.
    pub async fn claim_key_packages(
        &self,
        user_id: &str,
    ) -> Result<ClaimedKeyPackages, ClientError> {
        self.post(
            CLAIM_PATH,
            &KeyPackageClaim {
                user_id: user_id.to_owned(),
                devices: None,
            },
        )
        .await
    }

    /// `POST /v1/threads`.
    pub async fn create_thread(&self, new: &NewThread) -> Result<ThreadSummary, ClientError> {
        self.post(THREADS_PATH, new).await
    }

    /// `GET /v1/threads`: every page of the device's threads, most
    /// recently active first.
    pub async fn threads(&self) -> Result<ThreadList, ClientError> {
        let mut all = self.threads_page(None, None).await?;
        let mut next = all.next.take();
        let mut seen = std::collections::HashSet::new();
        while let Some(after) = next {
            // A cursor seen before would page for ever.
            if !seen.insert(after.clone()) {
                break;
            }
            let mut page = self.threads_page(Some(&after), None).await?;
            next = page.next.take();
            all.threads.append(&mut page.threads);
        }
        Ok(all)
    }

    /// `GET /v1/threads?after=&limit=`: one page of the device's threads.
    pub async fn threads_page(
        &self,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ThreadList, ClientError> {
        let mut query = Vec::new();
        if let Some(after) = after {
            query.push(format!("after={}", encode_query(after)));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if query.is_empty() {
            self.get(THREADS_PATH).await
        } else {
            self.get(&format!("{THREADS_PATH}?{}", query.join("&")))
                .await
        }
    }

    /// `POST /v1/threads/{id}/leave`: this user leaves the thread.
    pub async fn leave_thread(&self, thread_id: &str) -> Result<(), ClientError> {
        self.send_empty(
            reqwest::Method::POST,
            &routes::path(routes::THREAD_LEAVE, &[&encode_path(thread_id)]),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/threads/{id}`.
    pub async fn thread(&self, thread_id: &str) -> Result<ThreadDetail, ClientError> {
        self.get(&routes::path(routes::THREAD, &[&encode_path(thread_id)]))
            .await
    }

    /// `POST /v1/threads/{id}/commits`.
    pub async fn commit(
        &self,
        thread_id: &str,
        request: &CommitRequest,
    ) -> Result<Appended, ClientError> {
        self.post(
            &routes::path(routes::THREAD_COMMITS, &[&encode_path(thread_id)]),
            request,
        )
        .await
    }

    /// `POST /v1/threads/{id}/recall`: recall one of the caller's
    /// messages.
    pub async fn recall(&self, thread_id: &str, seq: u64) -> Result<Appended, ClientError> {
        self.post(
            &routes::path(routes::THREAD_RECALL, &[&encode_path(thread_id)]),
            &curbside_proto::threads::RecallRequest { seq },
        )
        .await
    }

    /// `POST /v1/threads/{id}/messages`.
    pub async fn send_message(
        &self,
        thread_id: &str,
        request: &MessageRequest,
    ) -> Result<Appended, ClientError> {
        self.post(
            &routes::path(routes::THREAD_MESSAGES, &[&encode_path(thread_id)]),
            request,
        )
        .await
    }

    /// `GET /v1/threads/{id}/entries?after=SEQ&limit=N`.
    pub async fn entries(
        &self,
        thread_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<EntryPage, ClientError> {
        self.get(&format!(
            "{}?after={after}&limit={limit}",
            routes::path(routes::THREAD_ENTRIES, &[&encode_path(thread_id)])
        ))
        .await
    }

    /// `POST /v1/threads/{id}/delivered` or `.../read`, as `kind` says,
    /// with the receipt the device signed.
    pub async fn receipt(
        &self,
        thread_id: &str,
        kind: ReceiptKind,
        receipt: &Receipt,
    ) -> Result<(), ClientError> {
        let pattern = match kind {
            ReceiptKind::Read => routes::THREAD_READ,
            ReceiptKind::Delivered => routes::THREAD_DELIVERED,
        };
        self.send_empty(
            reqwest::Method::POST,
            &routes::path(pattern, &[&encode_path(thread_id)]),
            Some(receipt),
        )
        .await
    }

    /// `GET /v1/welcomes`.
    pub async fn welcomes(&self) -> Result<WelcomeList, ClientError> {
        self.get(WELCOMES_PATH).await
    }

    /// `POST /v1/welcomes/{id}/ack`: the welcome was processed.
    pub async fn ack_welcome(&self, welcome_id: &str) -> Result<(), ClientError> {
        self.send_empty(
            reqwest::Method::POST,
            &routes::path(routes::WELCOME_ACK, &[&encode_path(welcome_id)]),
            None::<&()>,
        )
        .await
    }
}
