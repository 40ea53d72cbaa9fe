//! A minimum rate for request bodies, so that a client cannot hold a
//! connection (and a request's task) by trickling its body a byte at a
//! time.
//!
//! A body must have delivered at least [`MIN_BYTES_PER_SECOND`] for every
//! second since its headers arrived, once [`GRACE`] has passed (Kestrel's
//! rule, with its figures: 240 bytes/s after 5 s). Slower, the request is
//! answered 408 and, on HTTP/1, its connection closed (an unread body
//! leaves nothing to keep alive). The whole request still has the 30 s
//! timeout of `http::router`; this only catches the slow ones early.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::Error;

/// How long a body may take before its rate counts.
pub const GRACE: Duration = Duration::from_secs(5);
/// The slowest average a body may arrive at, after [`GRACE`].
pub const MIN_BYTES_PER_SECOND: f64 = 240.0;
/// How often a stalled body's rate is checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Wraps every request body in [`RateChecked`]; answers 408 (closing an
/// HTTP/1 connection) when one arrives too slowly.
pub async fn enforce(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let too_slow = Arc::new(AtomicBool::new(false));
    let version = request.version();
    let request = request.map(|body| {
        Body::new(RateChecked {
            inner: body,
            started: Instant::now(),
            received: 0,
            check: None,
            too_slow: too_slow.clone(),
        })
    });
    let response = next.run(request).await;
    if too_slow.load(Ordering::Acquire) {
        let mut response = Error::BodyTooSlow.into_response();
        close_after(&mut response, version);
        return response;
    }
    response
}

/// Adds `Connection: close` to an HTTP/1 answer, so that the connection
/// ends once it is written (HTTP/2 has no such header; a stream ends alone).
pub fn close_after(response: &mut Response, version: Version) {
    if version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Closes the HTTP/1 connection of a request that timed out (408): its
/// body may be half-read, and the client was too slow to keep.
pub async fn close_on_timeout(request: Request, next: Next) -> Response {
    let version = request.version();
    let mut response = next.run(request).await;
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        close_after(&mut response, version);
    }
    response
}

/// A request body that fails once it falls below the minimum rate.
struct RateChecked {
    inner: Body,
    started: Instant,
    received: u64,
    check: Option<Pin<Box<Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl RateChecked {
    fn is_too_slow(&self) -> bool {
        let elapsed = self.started.elapsed();
        #[allow(clippy::cast_precision_loss, reason = "a byte count far below 2^52")]
        let received = self.received as f64;
        elapsed >= GRACE && received < MIN_BYTES_PER_SECOND * elapsed.as_secs_f64()
    }
}

impl HttpBody for RateChecked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += u64::try_from(data.len()).unwrap_or(u64::MAX);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => return Poll::Ready(other),
            Poll::Pending => {}
        }
        // Waiting for the client: look at the rate now and then.
        loop {
            let started = this.started;
            let check = this
                .check
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + CHECK_EVERY)));
            if check.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            check.as_mut().reset(Instant::now() + CHECK_EVERY);
            if this.is_too_slow() {
                this.too_slow.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a too-slow body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly")]
struct BodyTooSlow;
