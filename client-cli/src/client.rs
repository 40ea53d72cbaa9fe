//! The HTTPS client for the Curbside API.

use std::time::Duration;

use curbside_proto::audit_review::{
    AuditFilter, AuditKey, AuditPage, ENTRIES_PATH, EXPORT_PATH, ExportFormat, ExportQuery,
    KEY_PATH, SearchQuery,
};
use curbside_proto::health::{HEALTH_PATH, Health, READY_PATH, Ready};
use curbside_proto::identity::{
    Challenge, ChallengeRequest, DeviceList, Directory, DirectoryEntry, EnrollRequest, Enrolled,
    EnrollmentCodeIssued, LoggedIn, LoginRequest, NewUser, OutstandingCodes, Role, User, UserList,
    UserStatus, UserUpdate, Whoami, login_message,
};
use curbside_proto::routes;
use curbside_proto::threads::{
    Appended, CLAIM_PATH, ClaimedKeyPackages, CommitRequest, EVENTS_PATH, EntryPage,
    KEY_PACKAGES_PATH, KeyPackageClaim, KeyPackageCount, KeyPackageUpload, MessageRequest,
    NewThread, Receipt, THREADS_PATH, ThreadDetail, ThreadList, ThreadSummary, WELCOMES_PATH,
    WelcomeList,
};
use curbside_proto::{ErrorBody, ErrorCode};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::show::printable;
use crate::trust::{Observed, PinMismatch, Presented, Trust, TrustError, client_config_observed};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening the events socket (TCP, TLS and upgrade) may take.
const EVENTS_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A kept-alive connection is dropped after this long unused: well within
/// the server's 10 s, so the client never sends on a connection the server
/// is closing for idleness.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an audit export (a whole log, perhaps) may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// The largest response body the client reads, so a hostile server cannot
/// exhaust its memory.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A connection to one Curbside server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    /// The same trust, for the event WebSocket (HTTP/1.1).
    websocket_tls: std::sync::Arc<rustls::ClientConfig>,
    /// The pinned certificate the server last presented.
    observed: Observed,
    /// The local address connections are made from, if not the default.
    local_address: Option<std::net::IpAddr>,
}

/// The event WebSocket, over TLS.
pub type EventSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.base.as_str())
            .field("signed_in", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request to the server failed. Every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server address is not an `https://` URL.
    #[error(
        "{0:?} is not a server address; give it as https://HOST:PORT, e.g. \
         https://curbside.example.org:8443, with no user name, query or fragment (--server)"
    )]
    InvalidServerUrl(String),
    /// The TLS trust settings could not be used.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The server's certificate is not the pinned one.
    #[error(
        "the server's certificate did not match the pinned fingerprint (--pin-sha256): expected {}, \
         but the server presented {}. You may be talking to the wrong server, or its certificate \
         was replaced: confirm the fingerprint with its administrator before trusting it",
        .0.expected, .0.presented
    )]
    PinMismatch(PinMismatch),
    /// The certificate is not trusted by the CA file or the system roots.
    #[error(
        "the server's certificate is not trusted ({detail}); pin it with --pin-sha256 (the server \
         prints its fingerprint at start) or name its CA with --ca-cert"
    )]
    Untrusted {
        /// What rustls objected to.
        detail: String,
    },
    /// No TLS connection could be made.
    #[error(
        "cannot reach the server at {server}: {detail}; check the address and that the server is running"
    )]
    Unreachable {
        /// The server's base URL.
        server: String,
        /// What failed.
        detail: String,
    },
    /// The server is not the one this device enrolled with.
    #[error(
        "this server is not the one this device enrolled with (its server id differs); check \
         --server, or enroll this profile with that server"
    )]
    WrongServer,
    /// The server answered with an error.
    #[error("the server refused: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error code from the body.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server's answer is not what this client understands.
    #[error(
        "the server's answer ({status}) is not what this client expects ({detail}); check that \
         --server points to a Curbside server of a matching version"
    )]
    UnexpectedResponse {
        /// The HTTP status.
        status: StatusCode,
        /// What did not fit.
        detail: String,
    },
}

impl ClientError {
    /// Whether trying again later may work: the server could not be
    /// reached, dropped the connection, was unavailable, or the session
    /// ended (a new sign-in fixes that).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => {
                *status == StatusCode::UNAUTHORIZED || status.is_server_error()
            }
            _ => false,
        }
    }

    /// A short account of the error, for a line of its own.
    pub fn brief(&self) -> String {
        match self {
            Self::Unreachable { server, detail } => format!("cannot reach {server}: {detail}"),
            Self::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl Client {
    /// A client for the server at `server` (an `https://` URL), trusting its
    /// certificate as `trust` says.
    pub fn new(server: &str, trust: &Trust) -> Result<Self, ClientError> {
        Self::new_from(server, trust, None)
    }

    /// [`Client::new`], connecting from `local_address` if given (a
    /// load generator standing in for many clients binds each to its own
    /// loopback address).
    pub fn new_from(
        server: &str,
        trust: &Trust,
        local_address: Option<std::net::IpAddr>,
    ) -> Result<Self, ClientError> {
        // Only scheme, host, port (and a path prefix): no credentials, query
        // or fragment, which would otherwise end up in error messages.
        let base = Url::parse(server)
            .ok()
            .filter(|url| {
                url.scheme() == "https"
                    && url.host().is_some()
                    && url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none()
                    && url.fragment().is_none()
            })
            .ok_or_else(|| ClientError::InvalidServerUrl(printable(server)))?;
        // HTTP/1.1: the client sends one request at a time, which a
        // kept-alive HTTP/1.1 connection carries as well as HTTP/2 does,
        // for less work at both ends (measured: the server's health check
        // at 64 connections went from 11,500 to 15,000 requests/s; see
        // docs/benchmarks.md).
        let (mut tls, observed) = client_config_observed(trust)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let websocket_tls = tls.clone();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("curbside/", env!("CARGO_PKG_VERSION")))
            .local_address(local_address)
            .build()
            .map_err(|error| ClientError::Unreachable {
                server: base.to_string(),
                detail: chain(&error),
            })?;
        Ok(Self {
            http,
            base,
            token: None,
            websocket_tls: std::sync::Arc::new(websocket_tls),
            observed,
            local_address,
        })
    }

    /// The pinned certificate (and its key) the server presented on the
    /// last connection, when trusting by pin.
    pub fn presented(&self) -> Option<Presented> {
        *self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The server's base URL.
    pub fn server(&self) -> &Url {
        &self.base
    }

    /// `GET /v1/health`: the server is up.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(HEALTH_PATH).await
    }

    /// `GET /v1/ready`: the server's database answers.
    pub async fn ready(&self) -> Result<Ready, ClientError> {
        self.get(READY_PATH).await
    }

    /// Sends the session token with every later request.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(reqwest::Method::GET, path, None::<&()>).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let response = self.send_raw(method, path, body).await?;
        self.decode(response).await
    }

    /// Sends a request whose success has no body (204).
    async fn send_empty<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let response = self.send_raw(method, path, body).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(());
        }
        self.decode::<serde_json::Value>(response).await.map(drop)
    }

    async fn send_raw<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|_| ClientError::InvalidServerUrl(self.base.to_string()))?;
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            let bytes =
                serde_json::to_vec(body).map_err(|error| ClientError::UnexpectedResponse {
                    status: StatusCode::BAD_REQUEST,
                    detail: format!("cannot encode the request: {error}"),
                })?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))
    }

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

    /// `POST /v1/threads/{id}/delivered` (`read` false) or `.../read`.
    pub async fn receipt(&self, thread_id: &str, seq: u64, read: bool) -> Result<(), ClientError> {
        let pattern = if read {
            routes::THREAD_READ
        } else {
            routes::THREAD_DELIVERED
        };
        self.send_empty(
            reqwest::Method::POST,
            &routes::path(pattern, &[&encode_path(thread_id)]),
            Some(&Receipt { seq }),
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

    /// Opens `/v1/events`, the WebSocket that pushes this device's new
    /// entries, welcomes and receipts (the token goes in a header).
    pub async fn events(&self) -> Result<EventSocket, ClientError> {
        let timeout = |_| ClientError::Unreachable {
            server: self.base.to_string(),
            detail: format!("no answer within {} s", EVENTS_CONNECT_TIMEOUT.as_secs()),
        };
        tokio::time::timeout(EVENTS_CONNECT_TIMEOUT, self.open_events())
            .await
            .map_err(timeout)?
    }

    async fn open_events(&self) -> Result<EventSocket, ClientError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let unreachable = |detail: String| ClientError::Unreachable {
            server: self.base.to_string(),
            detail,
        };
        let host = self
            .base
            .host_str()
            .ok_or_else(|| ClientError::InvalidServerUrl(self.base.to_string()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = self.base.port_or_known_default().unwrap_or(443);
        let tcp = match self.local_address {
            None => tokio::net::TcpStream::connect((host.as_str(), port)).await,
            Some(local) => {
                let remote = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|error| unreachable(error.to_string()))?
                    .find(|remote| remote.is_ipv4() == local.is_ipv4())
                    .ok_or_else(|| {
                        unreachable(format!("no address of {host} to reach from {local}"))
                    })?;
                let socket = if local.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(|error| unreachable(error.to_string()))?;
                socket
                    .bind(std::net::SocketAddr::new(local, 0))
                    .map_err(|error| unreachable(error.to_string()))?;
                socket.connect(remote).await
            }
        }
        .map_err(|error| unreachable(error.to_string()))?;
        let name = rustls_pki_types::ServerName::try_from(host.clone())
            .map_err(|_| ClientError::InvalidServerUrl(self.base.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.websocket_tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|error| unreachable(chain(&error)))?;
        let mut url = self
            .base
            .join(EVENTS_PATH)
            .map_err(|_| ClientError::InvalidServerUrl(self.base.to_string()))?;
        let _ = url.set_scheme("wss");
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|error| unreachable(error.to_string()))?;
        if let Some(token) = &self.token
            && let Ok(value) = format!("Bearer {token}").parse()
        {
            request.headers_mut().insert("authorization", value);
        }
        let (socket, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .map_err(|error| match error {
                // Refused (a session that ended, say): the server's words.
                tokio_tungstenite::tungstenite::Error::Http(response) => refusal(
                    response.status(),
                    response.body().as_deref().unwrap_or_default(),
                ),
                other => unreachable(other.to_string()),
            })?;
        Ok(socket)
    }

    /// The audit log's published checkpoint key (no session needed).
    pub async fn audit_key(&self) -> Result<AuditKey, ClientError> {
        self.get(KEY_PATH).await
    }

    /// One page of audit search results.
    pub async fn audit_search(&self, query: &SearchQuery) -> Result<AuditPage, ClientError> {
        let mut pairs = filter_pairs(&query.filter());
        if let Some(after) = query.after {
            pairs.push(("after", after.to_string()));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit", limit.to_string()));
        }
        self.get(&with_query(ENTRIES_PATH, &pairs)).await
    }

    /// Starts an audit export; the caller reads the body as it arrives.
    pub async fn audit_export(
        &self,
        query: &ExportQuery,
    ) -> Result<reqwest::Response, ClientError> {
        let mut pairs = vec![(
            "format",
            match query.format {
                ExportFormat::Jsonl => "jsonl",
                ExportFormat::Csv => "csv",
            }
            .to_owned(),
        )];
        pairs.extend(filter_pairs(&query.filter()));
        let url = self
            .base
            .join(&with_query(EXPORT_PATH, &pairs))
            .map_err(|_| ClientError::InvalidServerUrl(self.base.to_string()))?;
        let mut request = self.http.get(url).timeout(EXPORT_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self
            .decode::<serde_json::Value>(response)
            .await
            .err()
            .unwrap_or(ClientError::UnexpectedResponse {
                status: StatusCode::OK,
                detail: "an export failed without an error body".to_owned(),
            }))
    }

    /// The next piece of a streamed body.
    pub async fn chunk(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, ClientError> {
        response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))
    }

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

    /// `POST /v1/admin/users`.
    pub async fn create_user(&self, user: &NewUser) -> Result<User, ClientError> {
        self.post(routes::ADMIN_USERS, user).await
    }

    /// `GET /v1/admin/users?q=...`.
    pub async fn list_users(
        &self,
        query: &str,
        role: Option<Role>,
        status: Option<UserStatus>,
    ) -> Result<UserList, ClientError> {
        let mut path = format!("{}?q={}", routes::ADMIN_USERS, encode_query(query));
        if let Some(role) = role {
            path.push_str(&format!("&role={}", role.as_str()));
        }
        if let Some(status) = status {
            path.push_str(&format!("&status={}", status.as_str()));
        }
        self.get(&path).await
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

    async fn decode<T: DeserializeOwned>(
        &self,
        mut response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ClientError::UnexpectedResponse {
                    status,
                    detail: format!("the body is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return curbside_proto::json::decode(&body).map_err(|error| {
                ClientError::UnexpectedResponse {
                    status,
                    detail: error.to_string(),
                }
            });
        }
        Err(refusal(status, &body))
    }

    fn transport_error(&self, error: &reqwest::Error) -> ClientError {
        match find_rustls_error(error) {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
                if let Some(mismatch) = other.0.downcast_ref::<PinMismatch>() {
                    return ClientError::PinMismatch(*mismatch);
                }
                ClientError::Untrusted {
                    detail: other.to_string(),
                }
            }
            Some(tls_error @ rustls::Error::InvalidCertificate(_)) => ClientError::Untrusted {
                detail: tls_error.to_string(),
            },
            _ => ClientError::Unreachable {
                server: self.base.to_string(),
                detail: chain(error),
            },
        }
    }
}

/// The error a refusal with `status` and `body` stands for.
fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    match curbside_proto::json::decode::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Api {
            status,
            code: error.code,
            message: printable(&error.message),
        },
        Err(_) => ClientError::UnexpectedResponse {
            status,
            detail: "the error body is not a Curbside error".to_owned(),
        },
    }
}

/// Finds a rustls error inside `error`'s chain of sources, looking inside
/// I/O errors too (whose `source` skips the error they wrap).
fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = match error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => error.source(),
        };
    }
    None
}

/// An error and its sources on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    // The common failures, in words; anything else as its chain of causes,
    // without the links to library documentation some of them carry.
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            let said = match io.kind() {
                ErrorKind::ConnectionRefused => Some("nothing is listening there"),
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => Some("the connection was cut"),
                ErrorKind::TimedOut => Some("it did not answer in time"),
                ErrorKind::NotFound
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable => Some("that host cannot be reached"),
                _ => None,
            };
            if let Some(said) = said {
                return said.to_owned();
            }
        }
        if let Some(request) = error.downcast_ref::<reqwest::Error>()
            && request.is_timeout()
        {
            return "it did not answer in time".to_owned();
        }
        current = error.source();
    }
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(source) = current {
        let more = source.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        current = source.source();
    }
    if text.contains("close_notify") {
        return "the connection was cut".to_owned();
    }
    text.split_whitespace()
        .filter(|word| !word.starts_with("https://docs.rs"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(':')
        .to_owned()
}

/// The query pairs of an audit filter.
fn filter_pairs(filter: &AuditFilter) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    let texts = [
        ("actor", &filter.actor),
        ("resource", &filter.resource),
        ("action", &filter.action),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            pairs.push((name, value.clone()));
        }
    }
    if let Some(outcome) = filter.outcome {
        pairs.push(("outcome", outcome.as_str().to_owned()));
    }
    if let Some(since) = filter.since_ms {
        pairs.push(("since_ms", since.to_string()));
    }
    if let Some(until) = filter.until_ms {
        pairs.push(("until_ms", until.to_string()));
    }
    pairs
}

/// `path?name=value&...`, percent-encoded.
fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query(value)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Percent-encodes a query value.
fn encode_query(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Percent-encodes one path segment.
fn encode_path(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
