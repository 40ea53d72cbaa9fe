//! HTTP behaviour common to every route: health and readiness, JSON error
//! bodies with the right status, security headers and request ids.

use curbside_proto::ErrorBody;
use curbside_proto::health::{Health, HealthStatus, ReadyStatus};
use curbside_tests::{Backend, TestEnv, backend_tests};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};

use crate::probe;

backend_tests!(
    health_and_ready_answer_over_tls,
    ready_fails_with_json_when_the_schema_is_gone,
    errors_are_json_with_the_right_status,
    body_limit_is_configurable,
    security_headers_are_on_every_response,
    request_ids_are_generated_or_echoed,
    http1_and_http2_both_work,
    content_length_with_transfer_encoding_ends_the_connection,
);

async fn health_and_ready_answer_over_tls(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let client = server.client();
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Ok);
    assert_eq!(client.ready().await.unwrap().status, ReadyStatus::Ready);

    let response = server
        .http()
        .get(format!("{}/v1/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_json(response.headers());
    let body: Health = curbside_proto::json::decode(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body.status, HealthStatus::Ok);
    server.stop().await;
}

async fn ready_fails_with_json_when_the_schema_is_gone(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let http = server.http();
    let ready = format!("{}/v1/ready", server.url);
    assert_eq!(
        http.get(&ready).send().await.unwrap().status(),
        StatusCode::OK
    );

    crate::storage::execute(&env, "DROP TABLE installation").await;

    let response = http.get(&ready).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error = error_body(response).await;
    assert_eq!(error.error.code, curbside_proto::ErrorCode::Unavailable);
    assert!(
        !error.error.message.contains("installation"),
        "{}",
        error.error.message
    );
    // Liveness does not depend on the database.
    let health = http
        .get(format!("{}/v1/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.stop().await;
}

async fn errors_are_json_with_the_right_status(backend: Backend) {
    use curbside_proto::ErrorCode;
    let env = TestEnv::new(backend).await;
    let server = env.start_with(env.config(), probe::routes()).await;
    let http = server.http();
    let url = |path: &str| format!("{}{path}", server.url);

    // Unknown path.
    let response = http.get(url("/v1/no-such-thing")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_body(response).await.error.code, ErrorCode::NotFound);

    // Wrong method, with the methods that are allowed.
    let response = http.delete(url("/v1/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().get("allow").is_some());
    assert_eq!(
        error_body(response).await.error.code,
        ErrorCode::MethodNotAllowed
    );

    // A body that is not declared as JSON.
    let response = http
        .post(url(probe::PATH))
        .header(CONTENT_TYPE, "text/plain")
        .body(r#"{"name":"a","count":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        error_body(response).await.error.code,
        ErrorCode::UnsupportedMediaType
    );

    // Malformed JSON.
    let response = post_json(&http, &url(probe::PATH), r#"{"name":"a","count":"#).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_body(response).await.error.code,
        ErrorCode::InvalidJson
    );

    // Trailing bytes after a well-formed value.
    let response = post_json(&http, &url(probe::PATH), r#"{"name":"a","count":1} {}"#).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_body(response).await.error.code,
        ErrorCode::InvalidJson
    );

    // Well-formed JSON of the wrong shape: an unknown field, a wrong type.
    let response = post_json(
        &http,
        &url(probe::PATH),
        r#"{"name":"a","count":1,"admin":true}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_body(response).await;
    assert_eq!(error.error.code, ErrorCode::InvalidRequest);
    assert!(
        error.error.message.contains("admin"),
        "{}",
        error.error.message
    );
    let response = post_json(
        &http,
        &url(probe::PATH),
        r#"{"name":"a","count":"my-secret"}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_body(response).await;
    assert_eq!(error.error.code, ErrorCode::InvalidRequest);
    assert!(
        !error.error.message.contains("my-secret"),
        "{}",
        error.error.message
    );

    // Over the default 1 MiB limit.
    let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(1024 * 1024));
    let response = post_json(&http, &url(probe::PATH), &big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error_body(response).await.error.code,
        ErrorCode::PayloadTooLarge
    );

    // And the probe does answer a good request, so the refusals above are
    // about the requests and not the route.
    let response = post_json(&http, &url(probe::PATH), r#"{"name":"a","count":7}"#).await;
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

async fn body_limit_is_configurable(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.max_body_bytes = 4096;
    let server = env.start_with(config, probe::routes()).await;
    let http = server.http();
    let url = format!("{}{}", server.url, probe::PATH);
    let fits = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(3000));
    assert_eq!(post_json(&http, &url, &fits).await.status(), StatusCode::OK);
    let too_big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(5000));
    let response = post_json(&http, &url, &too_big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error = error_body(response).await;
    assert!(
        error.error.message.contains("4096"),
        "{}",
        error.error.message
    );
    server.stop().await;
}

async fn security_headers_are_on_every_response(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start_with(env.config(), probe::routes()).await;
    let http = server.http();
    let url = |path: &str| format!("{}{path}", server.url);
    let responses = [
        http.get(url("/v1/health")).send().await.unwrap(),
        http.get(url("/v1/ready")).send().await.unwrap(),
        http.get(url("/nowhere")).send().await.unwrap(),
        http.put(url("/v1/ready")).send().await.unwrap(),
        post_json(&http, &url(probe::PATH), "{").await,
    ];
    for response in responses {
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing on a {} response", response.status()))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert!(header("strict-transport-security").starts_with("max-age="));
        assert_eq!(header("cache-control"), "no-store");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert!(!header("x-request-id").is_empty());
    }
    server.stop().await;
}

async fn request_ids_are_generated_or_echoed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let http = server.http();
    let url = format!("{}/v1/health", server.url);
    let id_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };

    let first = id_of(&http.get(&url).send().await.unwrap());
    let second = id_of(&http.get(&url).send().await.unwrap());
    assert_eq!(first.len(), 32);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(first, second, "each request gets its own id");

    let echoed = http
        .get(&url)
        .header("x-request-id", "trace-42.a:b_c")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&echoed), "trace-42.a:b_c");

    for bad in ["has space", "semi;colon", &"x".repeat(65)] {
        let replaced = http
            .get(&url)
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = id_of(&replaced);
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
    }
    server.stop().await;
}

async fn http1_and_http2_both_work(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let url = format!("{}/v1/health", server.url);
    let h2 = server.http().get(&url).send().await.unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    assert_eq!(h2.status(), StatusCode::OK);
    let response = server.http1().get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

pub async fn post_json(http: &reqwest::Client, url: &str, body: &str) -> reqwest::Response {
    http.post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

pub async fn error_body(response: reqwest::Response) -> ErrorBody {
    assert_json(response.headers());
    let bytes = response.bytes().await.unwrap();
    curbside_proto::json::decode(&bytes)
        .unwrap_or_else(|error| panic!("not an error body ({error}): {bytes:?}"))
}

fn assert_json(headers: &HeaderMap) {
    let content_type = headers
        .get(CONTENT_TYPE)
        .expect("a content type")
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}

/// Raw HTTP/1.1 over the server's TLS: writes `bytes`, returns everything
/// read until the server closes the connection (or 5 s pass).
async fn raw_http1(server: &curbside_tests::TestServer, bytes: &[u8]) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config =
        curbside_cli::trust::client_config(&curbside_cli::Trust::Pin(server.fingerprint)).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await
    .is_ok();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// A request with both Content-Length and Transfer-Encoding (a smuggling
/// attempt) is read as chunked, as RFC 9112 section 6.3 requires, and the
/// connection is closed after its answer: a request hidden behind it on the
/// same connection is never served. (RFC 9112 allows this or a 400; hyper
/// does this before any of our code sees the request.)
async fn content_length_with_transfer_encoding_ends_the_connection(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let smuggled = "GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let body = format!(r#"{{"device_id":"{}"}}"#, "0".repeat(32));
    let request = format!(
        "POST /v1/auth/challenge HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n{smuggled}",
        body.len()
    );
    let (answer, closed) = raw_http1(&server, request.as_bytes()).await;
    assert!(closed, "the connection stayed open: {answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains(r#""status":"ok""#), "{answer}");
    server.stop().await;
}
