//! The event WebSocket (`/v1/events`): opened over its own TLS connection
//! (HTTP/1.1 upgrade) with the session token in a header.

use std::time::Duration;

use curbside_proto::threads::EVENTS_PATH;

use super::connection::Client;
use super::error::{ClientError, chain, refusal};

/// How long opening the events socket (TCP, TLS and upgrade) may take.
const EVENTS_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The event WebSocket, over TLS.
pub type EventSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl Client {
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
}
