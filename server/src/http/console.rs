//! The web app, under `/admin/` and at `/`: the administrators' console and
//! the clinicians' end-to-end encrypted client, files built from `web/`
//! and embedded in the binary (`console_assets`), so serving it needs no
//! npm and no files beside the binary.
//!
//! The files are public and hold nothing protected (the console reads
//! everything through the audited API with its own session), so, like the
//! API document, they are served without an audit entry: from the
//! router's fallback, which no declared route reaches and the audit
//! middleware lets pass. Every answer
//! carries a Content-Security-Policy that allows only this origin's own
//! scripts and styles, no inline script, and no other origin at all.
//! Hashed assets are cached for a year (`immutable`); the page itself is
//! revalidated every time, so a new build is picked up at once.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::console_assets::ASSETS;

/// Marks a response of the console's own, whose Content-Security-Policy
/// and Cache-Control the API's defaults must not replace.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleHeaders;

/// Where the console lives.
pub const PREFIX: &str = "/admin";

/// The web app's files with their SHA-256, as `sha256sum` prints them
/// (`HEX  NAME`, one a line, by name in byte order), served at
/// `/admin/SHA256SUMS` for `curbside web-digest`.
pub fn sums() -> &'static str {
    static SUMS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SUMS.get_or_init(|| {
        let mut files: Vec<(&str, &[u8])> = ASSETS
            .iter()
            .map(|(name, _, bytes)| (*name, *bytes))
            .collect();
        files.sort_unstable_by(|a, b| a.0.cmp(b.0));
        files
            .iter()
            .map(|(name, bytes)| {
                let hash = ring::digest::digest(&ring::digest::SHA256, bytes);
                format!("{}  {name}\n", hex::encode(hash.as_ref()))
            })
            .collect()
    })
}

/// The web app's digest: the SHA-256 of [`sums`], which the server prints
/// at start so that an administrator can compare it with what
/// `curbside web-digest` computes from the files served, or with a build
/// of the same sources (`sha256sum` of the files, then of that list).
pub fn digest() -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, sums().as_bytes()).as_ref())
}

/// The console's Content-Security-Policy: its own scripts, styles, images
/// and API calls, nothing else; no inline script or style; no framing.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The web app's answer to `request`, if it is a `GET` or `HEAD` of `/`
/// (where clinicians open it) or under `/admin` for the page or one of its
/// files; `None` for anything else. Called from the router's fallback, so
/// no API request pays for it.
pub fn serve(request: &Request) -> Option<Response> {
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        return None;
    }
    if request.uri().path() == "/" {
        // The same page: it shows a clinician their threads and an
        // administrator or auditor the console.
        return find("index.html")
            .map(|(content_type, bytes, _)| answer(content_type, bytes, false, head));
    }
    let rest = request.uri().path().strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    if rest.is_empty() {
        return Some(
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, HeaderValue::from_static("/admin/"))],
            )
                .into_response(),
        );
    }
    let file = rest.trim_start_matches('/');
    if file == "SHA256SUMS" {
        return Some(answer(
            "text/plain; charset=utf-8",
            sums().as_bytes(),
            false,
            head,
        ));
    }
    if let Some((content_type, bytes, immutable)) = find(file) {
        return Some(answer(content_type, bytes, immutable, head));
    }
    // A path without an extension is one of the app's pages: the app
    // routes it itself.
    if file.rsplit('/').next().unwrap_or("").contains('.') {
        return None;
    }
    find("index.html").map(|(content_type, bytes, _)| answer(content_type, bytes, false, head))
}

/// The embedded file at `path` (`""` is the page): its content type, bytes
/// and whether its name is hashed (so it never changes).
fn find(path: &str) -> Option<(&'static str, &'static [u8], bool)> {
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .map(|(name, content_type, bytes)| (*content_type, *bytes, name.starts_with("assets/")))
}

fn answer(
    content_type: &'static str,
    bytes: &'static [u8],
    immutable: bool,
    head: bool,
) -> Response {
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut response = Response::new(body);
    response.extensions_mut().insert(ConsoleHeaders);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_embedded_and_every_asset_is_hashed_and_typed() {
        let (content_type, page, immutable) = find("").unwrap();
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert!(!immutable);
        let page = std::str::from_utf8(page).unwrap();
        assert!(
            !page.contains("<script>") && !page.contains(" style="),
            "the page has inline script or style, which the CSP refuses"
        );
        for (name, content_type, _) in ASSETS {
            assert!(
                *name == "index.html" || name.starts_with("assets/"),
                "{name}: only the page and hashed assets are embedded"
            );
            assert!(!content_type.is_empty(), "{name}");
        }
    }
}
