//! The API's one route table, as an OpenAPI 3.1 document.
//!
//! Each handler declares its route once, with `#[utoipa::path]`: its
//! method and path, its request and response schemas, and its audit
//! action as the operation id, with the kind of resource it acts on as
//! its tag. The router is built from those declarations (each resource's
//! `router()` collects its handlers with `utoipa_axum::routes!`), the audit
//! middleware's vocabulary is read from the same document ([`kinds`]), and
//! the document itself is served at [`OPENAPI_PATH`], unauthenticated and
//! unaudited, like health.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use curbside_proto::ErrorBody;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response as ApiResponse, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;
use super::vocabulary::{Kind, Vocabulary};

use curbside_proto::OPENAPI_PATH;

/// The parts of the document that are not routes: what it is, the error
/// object, the session scheme and the WebSocket's event types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Curbside",
        description = "End-to-end encrypted threads for clinicians: the server's HTTP API. \
            Every error answers with the `ErrorBody` object. Protected routes take the \
            session token of `POST /v1/auth/login` as `Authorization: Bearer TOKEN`. \
            `GET /v1/events` upgrades to a WebSocket whose text frames are `Event`s.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(
        ErrorBody,
        curbside_proto::threads::Event,
        curbside_proto::audit_review::ExportLine,
        curbside_proto::audit_review::ExportFormat
    )),
    modifiers(&Conventions)
)]
struct Document;

/// What every operation shares: the session scheme, and the error object
/// as the answer to anything but success.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "scim",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "metrics",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let error: RefOr<ApiResponse> = ResponseBuilder::new()
            .description(
                "An error: its `code` for programs, its `message` for people, saying what to do",
            )
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
            .into();
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                operation
                    .responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| error.clone());
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The API's routes with their declarations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Document::openapi())
        .merge(super::health::router())
        .merge(super::enroll::router())
        .merge(super::auth::router())
        .merge(super::directory::router())
        .merge(super::admin::router())
        .merge(super::policy::router())
        .merge(super::retention::router())
        .merge(super::roles::router())
        .merge(super::escalation::router())
        .merge(super::membership::router())
        .merge(super::push_token::router())
        .merge(super::audit::router())
        .merge(super::audit_tree::router())
        .merge(super::key_packages::router())
        .merge(super::threads::router())
        .merge(super::events::router())
        .merge(super::scim::router())
        .merge(super::metrics::router())
        .routes(routes!(serve_document))
}

/// The whole document.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(|| {
        let (_, mut api) = routes().split_for_parts();
        // The routes were merged after the document's modifiers ran.
        Conventions.modify(&mut api);
        api
    });
    &DOCUMENT
}

/// The document as served (made once).
static DOCUMENT_JSON: LazyLock<String> =
    LazyLock::new(|| document().to_json().unwrap_or_else(|_| "{}".to_owned()));

/// The API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = OPENAPI_PATH,
    operation_id = "api.document",
    tag = "api",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
async fn serve_document() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT_JSON.as_str(),
    )
        .into_response()
}

/// The audit vocabulary of the declared routes: each route's action is
/// its operation id, its kind of resource its tag, and the path parameter
/// that names the resource its last, if it has any. Made once per
/// process: its strings live as long as the process.
pub fn vocabulary() -> &'static Vocabulary {
    static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| {
        let leak = |text: &str| -> &'static str { Box::leak(text.to_owned().into_boxed_str()) };
        let mut kinds = HashMap::new();
        for (path, item) in &document().paths.paths {
            let path = leak(path);
            let id_param = path
                .rsplit('/')
                .find_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'));
            for (name, operation) in [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ] {
                let Some(operation) = operation else { continue };
                let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let Some(action) = operation.operation_id.as_deref() else {
                    continue;
                };
                let resource_type = operation
                    .tags
                    .as_ref()
                    .and_then(|tags| tags.first())
                    .map_or("route", String::as_str);
                kinds.insert(
                    (method, path),
                    Kind {
                        action: leak(action),
                        resource_type: leak(resource_type),
                        id_param,
                    },
                );
            }
        }
        Vocabulary::new(kinds)
    });
    &VOCABULARY
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The actions `docs/audit-format.md` lists for HTTP requests.
    fn documented_actions() -> BTreeSet<String> {
        include_str!("../../../docs/audit-format.md")
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let action = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let request = cells.next()?.trim_start_matches('`').to_ascii_lowercase();
                ["get ", "post ", "put ", "patch ", "delete "]
                    .iter()
                    .any(|method| request.starts_with(method))
                    .then(|| action.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_route_declares_an_audit_action_that_the_audit_format_lists() {
        let mut seen = BTreeSet::new();
        let public = super::super::access::PUBLIC_ROUTES;
        for (path, item) in &document().paths.paths {
            let mut item = item.clone();
            for operation in operations(&mut item) {
                let action = operation.operation_id.clone().unwrap_or_default();
                assert!(action.contains('.'), "{path}: no audit action ({action:?})");
                assert!(
                    operation.tags.as_ref().is_some_and(|tags| tags.len() == 1),
                    "{path} {action}: no resource type"
                );
                assert!(seen.insert(action.clone()), "{action} is declared twice");
                if public.contains(&path.as_str()) {
                    seen.remove(&action);
                }
            }
        }
        assert_eq!(seen, documented_actions());
    }

    #[test]
    fn routes_are_declared_only_through_the_document() {
        let mut folders = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/http"
        ))];
        let mut files = Vec::new();
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 10, "the handlers were not found");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(&[".rou", "te("].concat()),
                "{}: a route added to the router directly is in neither the API document \
                 nor the audit vocabulary; declare it with #[utoipa::path]",
                path.display()
            );
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_error_object_on_every_operation() {
        let json: serde_json::Value = serde_json::from_str(&DOCUMENT_JSON).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1."));
        for (path, item) in json["paths"].as_object().unwrap() {
            // SCIM answers errors in its own shape (RFC 7644 section 3.12).
            let (media, schema) = if path.starts_with("/scim/v2/") {
                ("application/scim+json", "#/components/schemas/ScimError")
            } else {
                ("application/json", "#/components/schemas/ErrorBody")
            };
            for (method, operation) in item.as_object().unwrap() {
                assert_eq!(
                    operation["responses"]["default"]["content"][media]["schema"]["$ref"], schema,
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn each_route_and_method_has_its_own_action() {
        let vocabulary = vocabulary();
        let user = vocabulary.classify(&Method::GET, "/v1/admin/users/{user_id}");
        assert_eq!(user.action, "admin.user.read");
        assert_eq!(user.resource_type, "user");
        assert_eq!(user.id_param, Some("user_id"));
        let update = vocabulary.classify(&Method::PATCH, "/v1/admin/users/{user_id}");
        assert_eq!(update.action, "admin.user.update");
        let (_, pattern, revoke) = vocabulary
            .routes()
            .find(|(_, _, kind)| kind.action == "admin.enrollment_code.revoke")
            .unwrap();
        assert_eq!(pattern, curbside_proto::routes::ADMIN_USER_CODE);
        assert_eq!(revoke.resource_type, "enrollment_code");
        assert_eq!(revoke.id_param, Some("code_id"));
        assert_eq!(
            vocabulary.classify(&Method::PUT, "/v1/me").action,
            "http.request"
        );
        assert_eq!(
            vocabulary.classify(&Method::HEAD, "/v1/me").action,
            "identity.whoami"
        );
    }
}
