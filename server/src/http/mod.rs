//! The HTTP API: the router and the middleware every response passes through.
//!
//! Every response, errors included, carries the security headers and an
//! `x-request-id`; every error body is JSON in the API's format; and one log
//! line per request records the method, the matched route (never the raw
//! URI), the status, the latency and the request id.

pub mod access;
mod admin;
mod audit;
mod audit_tree;
mod auth;
pub mod body_rate;
mod console;
#[rustfmt::skip]
mod console_assets;
mod directory;
mod enroll;
pub mod error;
mod escalation;
mod events;
pub mod extract;
mod fields;
mod health;
mod key_packages;
mod membership;
mod metrics;
pub mod openapi;
mod policy;
mod push_token;
pub mod refusals;
mod retention;
mod roles;
mod scim;
pub mod state;
pub(crate) mod threads;
mod timeout;
pub mod vocabulary;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use curbside_proto::request_id::REQUEST_ID_HEADER;
use curbside_proto::{ErrorBody, ErrorCode, RequestId};
use tower_http::catch_panic::CatchPanicLayer;

pub use console::digest as web_app_digest;
use error::{Error, InternalCause};
use extract::BodyLimit;
pub use state::AppState;

/// Headers set on every response.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// The whole API, plus `extra` routes, with its middleware.
pub fn router(state: AppState, max_body_bytes: usize, extra: Router<AppState>) -> Router {
    let (routes, _) = openapi::routes().split_for_parts();
    routes
        .merge(extra)
        .fallback(not_found)
        // Innermost first: each `layer` wraps everything above it.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(Extension(BodyLimit(max_body_bytes)))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(body_rate::enforce))
        // Inside the timeout: a request that times out keeps running in the
        // task `access::record` gave it, and writes its one entry there.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access::record,
        ))
        .layer(timeout::RequestTimeoutLayer)
        .layer(middleware::from_fn(body_rate::close_on_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), log_request))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// What no declared route matched: the web console's files, else 404 (a
/// SCIM error under `/scim/v2/`).
async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/scim/v2/") {
        return scim::ScimError::from(Error::NotFound).into_response();
    }
    console::serve(&request).unwrap_or_else(|| Error::NotFound.into_response())
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic's payload may hold request data, so it is not logged here;
    // the panic hook has already reported where it happened.
    Error::Internal("a request handler panicked".to_owned()).into_response()
}

/// A request's method as a metric's label: HTTP's own, else `other` (so
/// that clients cannot add labels).
fn metric_method(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ]
    .iter()
    .zip(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
    .find_map(|(known, label)| (known == method).then_some(label))
    .unwrap_or("other")
}

/// Echoes a well-formed client `x-request-id`, otherwise makes a new one, and
/// puts it in the request's extensions and the response's headers.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(new_request_id);
    let value = HeaderValue::from_str(id.as_str()).ok();
    if let Some(value) = &value {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, value.clone());
    }
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Some(value) = value {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn new_request_id() -> RequestId {
    use std::sync::atomic::{AtomicU64, Ordering};
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    let bytes = crate::ids::random_bytes::<16>().unwrap_or_else(|_| {
        // Request ids need to be unique, not secret.
        let mut bytes = [0u8; 16];
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&std::process::id().to_be_bytes().repeat(2));
        bytes
    });
    RequestId::from_random(bytes)
}

/// Sets [`SECURITY_HEADERS`], except on the console's files the
/// Content-Security-Policy and Cache-Control they carry (see
/// [`console::ConsoleHeaders`]).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let console = response
        .extensions()
        .get::<console::ConsoleHeaders>()
        .is_some();
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let own = name == header::CONTENT_SECURITY_POLICY || name == header::CACHE_CONTROL;
        if console && own {
            continue;
        }
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Turns any error response that is not already JSON (axum's own 405, a
/// rejection from a layer) into the API's JSON error body.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value.as_bytes().starts_with(b"application/json")
                || value.as_bytes().starts_with(b"application/scim+json")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = describe(status, &method);
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = axum::Json(ErrorBody::new(code, message)).into_response();
    let (body_parts, body) = body.into_parts();
    for (name, value) in &body_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

fn describe(status: StatusCode, method: &Method) -> (ErrorCode, String) {
    match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, Error::NotFound.to_string()),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            format!(
                "this path does not accept {method}; the Allow header lists the methods it does"
            ),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "the request body is larger than this server accepts; send less".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            Error::UnsupportedMediaType.to_string(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::Timeout,
            "the request took too long; try again".to_owned(),
        ),
        status if status.is_server_error() => (
            ErrorCode::Internal,
            Error::Internal(String::new()).to_string(),
        ),
        _ => (
            ErrorCode::BadRequest,
            "the request is malformed; check it against the API document at /v1/openapi.json"
                .to_owned(),
        ),
    }
}

/// Logs one line per request, with the matched route rather than the URI
/// (which may carry identifiers), and the cause of any 5xx.
async fn log_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method_label = metric_method(request.method());
    // Extension methods are client-chosen text: log them bounded.
    let method: String = request.method().as_str().chars().take(16).collect();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |path| path.as_str().to_owned());
    let request_id = request.extensions().get::<RequestId>().cloned();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let status = response.status().as_u16();
    state.metrics.request(method_label, &route, status, elapsed);
    let request_id = request_id.as_ref().map_or("-", RequestId::as_str);
    match response.extensions().get::<InternalCause>() {
        Some(InternalCause {
            cause,
            is_bug: true,
        }) => {
            tracing::error!(%method, %route, status, request_id, cause, "request failed");
        }
        Some(InternalCause {
            cause,
            is_bug: false,
        }) => {
            tracing::warn!(%method, %route, status, request_id, cause, "request failed");
        }
        None => {}
    }
    tracing::info!(%method, %route, status, latency_ms, request_id, "request");
    response
}
