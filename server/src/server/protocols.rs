//! Serving one accepted TLS connection: over HTTP/1.1 or HTTP/2, as ALPN
//! chose, until it ends, idles past its limit, stops reading what it is
//! sent, or the server shuts down. The limits themselves are
//! `crate::connection`'s.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::connection::{
    Activity, CLOSE_TIMEOUT, HTTP1_HEADER_TIMEOUT, HTTP2_PING_INTERVAL, HTTP2_PING_TIMEOUT, Hold,
    WATCH_EVERY, WRITE_STALL_TIMEOUT, Watched, http2_idle_limit,
};

/// The most requests one HTTP/2 connection may have in flight.
const H2_MAX_CONCURRENT_STREAMS: u32 = 64;

/// The HTTP/1.1 and HTTP/2 settings every connection is served with.
pub(super) struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    pub(super) fn new() -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HTTP1_HEADER_TIMEOUT);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(HTTP2_PING_INTERVAL)
            .keep_alive_timeout(HTTP2_PING_TIMEOUT)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS);
        Self { http1, http2 }
    }

    /// Serves one connection, in the protocol ALPN chose, until it ends,
    /// idles past its limit, stops reading what it is sent, or the server
    /// shuts down.
    pub(super) async fn serve<I>(
        &self,
        stream: I,
        http2: bool,
        app: Router,
        peer: SocketAddr,
        hold: Hold,
        closing: watch::Receiver<bool>,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                let in_flight = activity.start();
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(hold.clone());
                let app = app.clone();
                async move {
                    let response = app.oneshot(request.map(axum::body::Body::new)).await;
                    drop(in_flight);
                    response
                }
            })
        };
        if http2 {
            let connection = self.http2.serve_connection(io, service);
            watch_connection(connection, &activity, Some(http2_idle_limit), closing).await;
        } else {
            // hyper's header timer covers HTTP/1's first request and idle
            // keep-alive; the watchdog handles stalled writes and shutdown.
            let connection = self.http1.serve_connection(io, service).with_upgrades();
            watch_connection(connection, &activity, None, closing).await;
        }
    }
}

/// Drives `connection` to its end. It is told to close (GOAWAY, or no
/// more keep-alive) when the server shuts down, or when `idle_limit` says
/// it has been idle too long; one told to close that has nothing in flight
/// is dropped after [`CLOSE_TIMEOUT`].
async fn watch_connection<C: Closable>(
    connection: C,
    activity: &Activity,
    idle_limit: Option<fn(&Activity) -> Duration>,
    mut closing: watch::Receiver<bool>,
) {
    tokio::pin!(connection);
    let mut told_to_close: Option<Instant> = None;
    let mut watchdog = tokio::time::interval(WATCH_EVERY);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if told_to_close.is_none() => {
                if changed.is_err() || *closing.borrow() {
                    connection.as_mut().close_gracefully();
                    told_to_close = Some(Instant::now());
                }
            }
            _ = watchdog.tick() => match told_to_close {
                _ if activity.write_waiting_for() >= WRITE_STALL_TIMEOUT => {
                    tracing::debug!("the client stopped reading; dropping the connection");
                    return;
                }
                None => {
                    if idle_limit.is_some_and(|limit| activity.idle_for() >= limit(activity)) {
                        if !activity.has_served() {
                            // Still in its preface: nothing to say goodbye to.
                            tracing::debug!("connection sent no request in time; closing it");
                            return;
                        }
                        connection.as_mut().close_gracefully();
                        told_to_close = Some(Instant::now());
                    }
                }
                Some(at) => {
                    if at.elapsed() >= CLOSE_TIMEOUT && activity.idle_for() > Duration::ZERO {
                        tracing::debug!("connection did not close in time; dropping it");
                        return;
                    }
                }
            },
        }
    }
}

/// A hyper connection that can be asked to finish what it is doing and
/// close: no more keep-alive on HTTP/1, GOAWAY on HTTP/2.
trait Closable: Future<Output = Result<(), hyper::Error>> {
    fn close_gracefully(self: std::pin::Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, B> Closable for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn close_gracefully(self: std::pin::Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> Closable for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn close_gracefully(self: std::pin::Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}
