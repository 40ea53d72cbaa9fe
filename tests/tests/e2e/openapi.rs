//! The API document: served at `/v1/openapi.json` as OpenAPI 3.1, and the
//! one route table the server serves and audits.

use std::collections::BTreeSet;

use curbside_server::audit;
use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_tests::{Backend, TestEnv, backend_tests};
use reqwest::StatusCode;

backend_tests!(the_document_is_the_route_table_the_server_serves_and_audits);

/// Routes answered without an audit entry (`http::access::PUBLIC_ROUTES`).
const PUBLIC: [&str; 4] = [
    curbside_proto::health::HEALTH_PATH,
    curbside_proto::health::READY_PATH,
    curbside_proto::audit_review::KEY_PATH,
    curbside_proto::OPENAPI_PATH,
];

/// Every route the document declares is served (asked without a session,
/// it answers as the route would, never with the 404 or 405 of a path or
/// method the server does not serve), and its request is audited under
/// the document's operation id: every action recorded is declared, and
/// every declared action is recorded, none as the `http.request` of an
/// undeclared route.
async fn the_document_is_the_route_table_the_server_serves_and_audits(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let server = env.start().await;
    let response = server
        .http()
        .get(format!("{}/v1/openapi.json", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: serde_json::Value = response.json().await.unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        document["openapi"]
    );
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert!(document["components"]["schemas"]["Event"].is_object());
    assert!(document["components"]["securitySchemes"]["session"].is_object());

    let mut declared = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let action = operation["operationId"].as_str().unwrap().to_owned();
            let url = format!("{}{}", server.url, filled(path));
            // Each from an address of its own: refusals past an address's
            // allowance would be counted together, later.
            let from =
                std::net::Ipv4Addr::new(127, 0, 1, u8::try_from(declared.len() + 1).unwrap());
            let answer = server
                .http1_from(from.into())
                .request(method.to_uppercase().parse().unwrap(), url)
                .send()
                .await
                .unwrap()
                .status();
            assert!(
                !matches!(
                    answer,
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ),
                "{method} {path} ({action}) is declared but answered {answer}"
            );
            if !PUBLIC.contains(&path.as_str()) {
                declared.insert(action);
            }
        }
    }
    assert!(declared.len() >= 35, "{declared:?}");

    let database = Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
        .await
        .unwrap();
    let (entries, _) = audit::read_all(&database).await.unwrap();
    let recorded: BTreeSet<String> = entries
        .iter()
        .map(|(entry, _)| entry.action.clone())
        .collect();
    assert_eq!(recorded, declared);
    database.close().await;
    server.stop().await;
}

/// `path` with each `{parameter}` an id (32 hex digits).
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&"0".repeat(32));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}
