//! A [`Client`]: one server's address and the trust it is held to, the
//! HTTP/1.1 connection pool over rustls, and how a request is sent and its
//! answer read (bounded in size, an error body turned into a
//! [`ClientError`]).

use std::time::Duration;

use curbside_proto::health::{HEALTH_PATH, Health, READY_PATH, Ready};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ClientError, chain, find_rustls_error, refusal};
use crate::show::printable;
use crate::trust::{Observed, PinMismatch, Presented, Trust, client_config_observed};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A kept-alive connection is dropped after this long unused: well within
/// the server's 10 s, so the client never sends on a connection the server
/// is closing for idleness.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response body the client reads, so a hostile server cannot
/// exhaust its memory.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A connection to one Curbside server.
#[derive(Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    pub(super) base: Url,
    pub(super) token: Option<String>,
    /// The same trust, for the event WebSocket (HTTP/1.1).
    pub(super) websocket_tls: std::sync::Arc<rustls::ClientConfig>,
    /// The pinned certificate the server last presented.
    observed: Observed,
    /// The local address connections are made from, if not the default.
    pub(super) local_address: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.base.as_str())
            .field("signed_in", &self.token.is_some())
            .finish_non_exhaustive()
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

    pub(super) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(reqwest::Method::GET, path, None::<&()>).await
    }

    pub(super) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub(super) async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let response = self.send_raw(method, path, body).await?;
        self.decode(response).await
    }

    /// Sends a request whose success has no body (204).
    pub(super) async fn send_empty<B: Serialize>(
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

    /// A request to `path` with the session's token, if any.
    pub(super) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let url = self
            .base
            .join(path)
            .map_err(|_| ClientError::InvalidServerUrl(self.base.to_string()))?;
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        Ok(request)
    }

    pub(super) async fn send_raw<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.request(method, path)?;
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

    /// `GET` one of the web app's public files (`/admin/...`): its bytes.
    pub async fn web_file(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let response = self
            .send_raw(reqwest::Method::GET, path, None::<&()>)
            .await?;
        let status = response.status();
        let body = self.body(response).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(refusal(status, &body))
        }
    }

    /// A response's body, up to [`MAX_RESPONSE_BYTES`].
    async fn body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
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
        Ok(body)
    }

    pub(super) async fn decode<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = response.status();
        let body = self.body(response).await?;
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

    pub(super) fn transport_error(&self, error: &reqwest::Error) -> ClientError {
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

/// Percent-encodes a query value.
pub(super) fn encode_query(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Percent-encodes one path segment.
pub(super) fn encode_path(text: &str) -> String {
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
