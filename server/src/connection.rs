//! One client connection, from its TLS handshake to its close: a deadline
//! for every phase, and a fair share of the connection slots per address.
//!
//! A connection that finished TLS and then sent nothing, stopped half-way
//! through the HTTP/2 preface, or sits idle, would otherwise hold one of
//! `--max-connections` slots for ever, and fifty such sockets were enough to
//! starve a server started with `--max-connections 50`. So:
//! - TLS must finish within [`HANDSHAKE_TIMEOUT`];
//! - the protocol is the one ALPN chose (HTTP/2 for `h2`, else HTTP/1.1),
//!   never sniffed from the first bytes, which would wait without a timer;
//! - HTTP/1 request headers, the first ones and those after a kept-alive
//!   idle pause alike, must arrive within [`HTTP1_HEADER_TIMEOUT`] (hyper's
//!   header timer starts whenever the connection waits for a request);
//! - an HTTP/2 connection must start a request within
//!   [`FIRST_REQUEST_TIMEOUT`] (the preface included) and is closed with
//!   GOAWAY after [`HTTP2_IDLE_TIMEOUT`] without one in flight; its peer must
//!   answer pings, sent every [`HTTP2_PING_INTERVAL`], within
//!   [`HTTP2_PING_TIMEOUT`];
//! - request bodies must keep a minimum rate (`http::body_rate`), and a
//!   timed-out HTTP/1 request's connection is closed with its answer;
//! - a client that stops reading what the server writes (its receive
//!   window full, say, behind a pile of pipelined requests) is dropped once
//!   a write has waited [`WRITE_STALL_TIMEOUT`] (hyper's own timers run
//!   only while it reads).
//!
//! No address may hold more than its share of the slots
//! (`--max-connections-per-address`, by default 1/64 of them, at least 4
//! and at most 256): past it, a new connection from that address is closed
//! as soon as it is accepted, before any TLS work. A WebSocket keeps the
//! slot and the share of the connection it was opened on ([`Hold`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client has to send a request's headers, counted from
/// when the connection starts waiting for them (first request or idle).
pub const HTTP1_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/2 client has to start its first request.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/2 connection may sit without a request in flight.
pub const HTTP2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an HTTP/2 connection is pinged.
pub const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long an HTTP/2 peer has to answer a ping.
pub const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection told to close (idle, or at shutdown for idle
/// ones) may take to do so before it is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a connection's watchdog looks at it.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

/// How long a write to a client may wait before the connection is dropped.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Which share of `--max-connections` one address may hold by default.
pub const DEFAULT_SHARE_DIVISOR: usize = 64;
/// The least and the most one address may hold by default.
pub const DEFAULT_SHARE_BOUNDS: (usize, usize) = (4, 256);

/// The connections one address may hold by default, of `max_connections`.
pub fn default_share(max_connections: usize) -> usize {
    let (least, most) = DEFAULT_SHARE_BOUNDS;
    (max_connections / DEFAULT_SHARE_DIVISOR).clamp(least.min(max_connections), most)
}

/// The connections each client address holds, against its share.
#[derive(Debug)]
pub struct AddressShares {
    per_address: usize,
    held: Mutex<HashMap<String, usize>>,
    refused: AtomicU64,
}

/// One connection's claim on its address's share; released on drop.
#[derive(Debug)]
pub struct Share {
    shares: Arc<AddressShares>,
    key: String,
}

impl AddressShares {
    /// At most `per_address` connections from one address at once.
    pub fn new(per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            per_address: per_address.max(1),
            held: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// A share for one more connection from `key`, unless it holds its
    /// whole share already.
    pub fn admit(self: &Arc<Self>, key: String) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= self.per_address {
            drop(held);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *count += 1;
        Some(Share {
            shares: self.clone(),
            key,
        })
    }

    /// How many connections were refused for being over their address's
    /// share since the last call.
    pub fn take_refused(&self) -> u64 {
        self.refused.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// What one connection is doing: requests in flight, and when it last
/// started or finished one (or opened).
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` of the last start or finish.
    last_change_ms: AtomicU64,
    served: AtomicU64,
    /// One more than the milliseconds after `opened` when a write began to
    /// wait for the client; 0 when none waits.
    write_waiting_since: AtomicU64,
}

/// A request in flight on its connection; finished on drop.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Activity {
    /// A connection opened now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_change_ms: AtomicU64::new(0),
            served: AtomicU64::new(0),
            write_waiting_since: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes that a write is waiting for the client (`true`) or went through.
    fn write_waits(&self, waits: bool) {
        if waits {
            let now = self.now_ms().saturating_add(1);
            let _ = self.write_waiting_since.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        } else {
            self.write_waiting_since.store(0, Ordering::Relaxed);
        }
    }

    /// How long a write has been waiting for the client (zero if none).
    pub fn write_waiting_for(&self) -> Duration {
        match self.write_waiting_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_add(1).saturating_sub(since)),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_change_ms.store(elapsed, Ordering::Relaxed);
    }

    /// Marks a request started.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    /// How long the connection has had no request in flight (zero while
    /// one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since_open = self.opened.elapsed();
        since_open.saturating_sub(Duration::from_millis(
            self.last_change_ms.load(Ordering::Relaxed),
        ))
    }

    /// Whether a request has started on this connection.
    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed) > 0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's stream, noting in its [`Activity`] when writes wait for
/// the client.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// `inner`, watched in `activity`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write_waits(polled.is_pending());
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.write_waits(polled.is_pending());
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write_waits(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// What a connection holds (its slot and its address's share), handed to
/// the WebSocket opened on it, which keeps them until it closes.
pub type Held = (tokio::sync::OwnedSemaphorePermit, Share);

/// A connection's hold, in its requests' extensions: the WebSocket handler
/// takes it.
#[derive(Debug, Clone)]
pub struct Hold(Arc<Mutex<Option<Held>>>);

impl Hold {
    /// A hold on `held`.
    pub fn new(held: Held) -> Self {
        Self(Arc::new(Mutex::new(Some(held))))
    }

    /// Takes what the connection holds (for a WebSocket to keep).
    pub fn take(&self) -> Option<Held> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// How long an HTTP/2 connection may go without a request in flight
/// before it is told to close: shorter until its first request.
pub fn http2_idle_limit(activity: &Activity) -> Duration {
    if activity.has_served() {
        HTTP2_IDLE_TIMEOUT
    } else {
        FIRST_REQUEST_TIMEOUT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_no_more() {
        let shares = AddressShares::new(2);
        let a = shares.admit("10.0.0.1".to_owned()).unwrap();
        let _b = shares.admit("10.0.0.1".to_owned()).unwrap();
        assert!(shares.admit("10.0.0.1".to_owned()).is_none());
        // Another address is not affected.
        let _c = shares.admit("10.0.0.2".to_owned()).unwrap();
        assert_eq!(shares.take_refused(), 1);
        // A closed connection frees its slot in the share.
        drop(a);
        assert!(shares.admit("10.0.0.1".to_owned()).is_some());
    }

    #[test]
    fn the_default_share_is_a_sixty_fourth_within_bounds() {
        assert_eq!(default_share(16_384), 256);
        assert_eq!(default_share(8_192), 128);
        assert_eq!(default_share(50), 4);
        assert_eq!(default_share(2), 2);
    }

    #[test]
    fn a_waiting_write_is_timed_until_one_goes_through() {
        let activity = Activity::new();
        assert_eq!(activity.write_waiting_for(), Duration::ZERO);
        activity.write_waits(true);
        std::thread::sleep(Duration::from_millis(20));
        activity.write_waits(true);
        assert!(activity.write_waiting_for() >= Duration::from_millis(15));
        activity.write_waits(false);
        assert_eq!(activity.write_waiting_for(), Duration::ZERO);
    }

    #[test]
    fn activity_is_idle_only_without_requests_in_flight() {
        let activity = Activity::new();
        assert!(!activity.has_served());
        let request = activity.start();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(activity.idle_for(), Duration::ZERO);
        drop(request);
        std::thread::sleep(Duration::from_millis(20));
        assert!(activity.idle_for() >= Duration::from_millis(15));
        assert!(activity.has_served());
        assert_eq!(http2_idle_limit(&activity), HTTP2_IDLE_TIMEOUT);
    }
}
