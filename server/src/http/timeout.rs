//! How long a request, body included, may take before it is answered
//! with 408: [`REQUEST_TIMEOUT`], or [`UPLOAD_TIMEOUT`] for an attachment's
//! upload, whose body is large. A layer of its own, with no boxing, since
//! every request passes it (an `axum::middleware::from_fn` costs an
//! allocation and a clone of the route per request).

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::Map;
use tokio::time::Timeout;
use tokio::time::error::Elapsed;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an attachment's upload may take (100 MiB at 1 Mbit/s takes
/// about 14 minutes); the body's minimum rate still applies.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Puts [`RequestTimeout`] around each route.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeoutLayer;

impl<S> tower::Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestTimeout { inner }
    }
}

/// A route whose requests are answered 408 when they take too long.
#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
}

type Outcome = Result<Result<Response, Infallible>, Elapsed>;

fn answer(outcome: Outcome) -> Result<Response, Infallible> {
    match outcome {
        Ok(answered) => answered,
        Err(_) => Ok(StatusCode::REQUEST_TIMEOUT.into_response()),
    }
}

/// The time `request` may take.
fn limit(request: &Request) -> Duration {
    let upload = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| path.as_str() == curbside_proto::routes::THREAD_ATTACHMENTS);
    if upload {
        UPLOAD_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    }
}

impl<S> tower::Service<Request> for RequestTimeout<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Timeout<S::Future>, fn(Outcome) -> Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let limit = limit(&request);
        tokio::time::timeout(limit, self.inner.call(request))
            .map(answer as fn(Outcome) -> Result<Response, Infallible>)
    }
}
