//! SCIM 2.0 provisioning (RFC 7643, RFC 7644) under `/scim/v2`: the
//! organisation's identity provider (Entra ID, Okta, ...) creates, updates
//! and deactivates users here, with the token the operator configured
//! (`scim_token`; without it every SCIM route answers 401, saying so).
//!
//! Curbside declares the `User` resource only: `userName` (unique whatever
//! its case), `externalId`, `displayName`, `name`, `emails`, `active` and
//! the enterprise extension's `department`. What the provider writes is
//! kept as it sent it (`scim_user`) and read back exactly; the user's
//! Curbside name (`displayName`, else `name.formatted`, else the given and
//! family names, else `userName`), department and status are derived from
//! it at each write. Users made through SCIM are clinicians; roles are
//! Curbside's own.
//!
//! Only clinicians are provisioned: administrators and auditors, whatever
//! their user names, are beyond SCIM's reach (404), so the provider's token
//! can neither make nor change nor remove one.
//!
//! `active: false` deactivates the user as an administrator's deactivation
//! does, ending their sessions at once, but SCIM never reactivates a user
//! an administrator deactivated (409); a PUT without `active` leaves the
//! status as it is; DELETE deactivates them too and
//! forgets their user name and external id (the user stays, for the audit
//! log and the threads' history, and SCIM no longer finds them). Every
//! call has its audit entry, with no actor: the `scim.` action says the
//! provider acted.
//!
//! Filters (`eq` on `userName`, `externalId` or `id`), paging (`startIndex`,
//! `count`), `attributes`/`excludedAttributes` and PATCH (add, replace,
//! remove, with paths such as `name.givenName` and `emails[type eq
//! "work"].value`, and without a path) are supported; bulk, sort, ETags,
//! `/.search` and Groups are not, as `ServiceProviderConfig` says.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use curbside_proto::identity::{Role, User, UserStatus};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::Access;
use super::admin::{BY_ADMIN, BY_SCIM, change_status, keep_an_admin, taken};
use super::error::Error;
use super::extract::{self, ServiceRefusal};
use super::fields::{self, NAME_MAX};
use super::state::{AppState, finish};
use crate::clock::now_ms;
use crate::db::app_user::{self, Match};
use crate::ids::new_id;

/// The core User schema.
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension (its `department` only).
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The media type of every SCIM answer.
const SCIM_JSON: &str = "application/scim+json";
/// The most users one list answers with.
const MAX_RESULTS: i64 = 200;
/// The most e-mail addresses kept for a user.
const MAX_EMAILS: usize = 10;
/// The most bytes of a user's kept attributes (JSON).
const MAX_RESOURCE_BYTES: usize = 16 * 1024;
/// The department of a user the provider gives none.
const NO_DEPARTMENT: &str = "Unassigned";

/// `/scim/v2/...`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(service_provider_config))
        .routes(routes!(resource_types))
        .routes(routes!(resource_type))
        .routes(routes!(schemas))
        .routes(routes!(schema))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, replace_user, patch_user, delete_user))
        .routes(routes!(search))
}

/// A SCIM error: the status, RFC 7644's `scimType` if one fits, and what
/// to do, as `urn:ietf:params:scim:api:messages:2.0:Error`.
#[derive(Debug)]
pub enum ScimError {
    /// A refusal of SCIM's own.
    Scim {
        /// The status.
        status: StatusCode,
        /// RFC 7644 section 3.12's `scimType`.
        scim_type: Option<&'static str>,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The server's own error (the database, the audit log).
    Server(Error),
}

impl ScimError {
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::Scim {
            status: StatusCode::BAD_REQUEST,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Self::Scim {
            status: StatusCode::NOT_FOUND,
            scim_type: None,
            detail: detail.into(),
        }
    }

    fn no_user(id: &str) -> Self {
        Self::not_found(format!(
            "no provisioned user has the id {}",
            super::error::shown(id)
        ))
    }

    fn conflict(detail: impl Into<String>) -> Self {
        Self::Scim {
            status: StatusCode::CONFLICT,
            scim_type: Some("uniqueness"),
            detail: detail.into(),
        }
    }
}

impl From<Error> for ScimError {
    fn from(error: Error) -> Self {
        Self::Server(error)
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(error: sqlx::Error) -> Self {
        if app_user::is_unique_violation(&error) {
            return Self::conflict("another user already has this userName or externalId");
        }
        Self::Server(error.into())
    }
}

/// RFC 7644 section 3.12's error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ScimError)]
struct ScimErrorBody {
    /// `urn:ietf:params:scim:api:messages:2.0:Error`.
    schemas: [&'static str; 1],
    /// The HTTP status, as a string.
    status: String,
    /// What is wrong, and what to do.
    detail: String,
    /// The kind of error (`uniqueness`, `invalidFilter`, `invalidValue`,
    /// ...), when one fits.
    #[serde(rename = "scimType", skip_serializing_if = "Option::is_none")]
    scim_type: Option<String>,
}

/// The body of a SCIM error.
fn error_body(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Value {
    serde_json::to_value(ScimErrorBody {
        schemas: [ERROR_SCHEMA],
        status: status.as_u16().to_string(),
        detail: detail.to_owned(),
        scim_type: scim_type.map(str::to_owned),
    })
    .unwrap_or_default()
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        match self {
            Self::Scim {
                status,
                scim_type,
                detail,
            } => {
                let mut response = scim_json(status, &error_body(status, scim_type, &detail));
                if status == StatusCode::UNAUTHORIZED {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                response
            }
            Self::Server(error) => {
                let detail = error.to_string();
                // The server's response keeps its status, headers and what
                // the log and the audit entry read from it; only its body
                // becomes SCIM's.
                let (mut parts, _) = error.into_response().into_parts();
                let detail = if parts.status.is_server_error() {
                    "the server cannot do this just now; try again later".to_owned()
                } else {
                    detail
                };
                let body = error_body(parts.status, None, &detail).to_string();
                parts.headers.remove(header::CONTENT_LENGTH);
                parts
                    .headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
                Response::from_parts(parts, axum::body::Body::from(body))
            }
        }
    }
}

type Result<T, E = ScimError> = std::result::Result<T, E>;

/// `body` as `application/scim+json`.
fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

/// The identity provider, authenticated by the SCIM token.
#[derive(Debug)]
pub struct Provider;

impl FromRequestParts<AppState> for Provider {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let checked = extract::service_token(
            parts,
            state.services.scim.as_ref(),
            "scim",
            ("scim_off", "bad_scim_token"),
        );
        let detail = match checked {
            Ok(()) => return Ok(Self),
            // Off, no token is right: 401, saying so.
            Err(ServiceRefusal::Off) => {
                "SCIM provisioning is off on this server; its operator turns it on by setting \
                 scim_token"
            }
            Err(ServiceRefusal::Wrong) => {
                "give the SCIM token this server was configured with (scim_token) as \
                 Authorization: Bearer TOKEN"
            }
        };
        Err(ScimError::Scim {
            status: StatusCode::UNAUTHORIZED,
            scim_type: None,
            detail: detail.to_owned(),
        })
    }
}

// ---------------------------------------------------------------------------
// Discovery.

#[utoipa::path(
    get,
    path = "/scim/v2/ServiceProviderConfig",
    operation_id = "scim.config.read",
    tag = "scim",
    security(("scim" = [])),
    responses(
        (status = 200, description = "What this SCIM service supports", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn service_provider_config(_provider: Provider) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_RESULTS },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": false },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The token the server's operator configured as scim_token, \
                                as Authorization: Bearer TOKEN",
                "primary": true,
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": "/scim/v2/ServiceProviderConfig",
            },
        }),
    )
}

/// The one resource type.
fn user_resource_type() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "The people who use Curbside",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{ "schema": ENTERPRISE, "required": false }],
        "meta": { "resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User" },
    })
}

/// A list response holding all of `resources`.
fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes",
    operation_id = "scim.resource_types.read",
    tag = "scim",
    security(("scim" = [])),
    responses(
        (status = 200, description = "The resource types (User)", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn resource_types(_provider: Provider) -> Response {
    scim_json(StatusCode::OK, &list_of(vec![user_resource_type()]))
}

#[utoipa::path(
    get,
    path = "/scim/v2/ResourceTypes/{resource_type}",
    operation_id = "scim.resource_type.read",
    tag = "scim",
    params(("resource_type" = String, Path, description = "The resource type's id")),
    security(("scim" = [])),
    responses(
        (status = 200, description = "The resource type", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn resource_type(_provider: Provider, Path(id): Path<String>) -> Result<Response> {
    if id != "User" {
        return Err(ScimError::not_found(
            "no such resource type; this server has User only",
        ));
    }
    Ok(scim_json(StatusCode::OK, &user_resource_type()))
}

/// One attribute's definition (RFC 7643 section 7).
fn attribute(name: &str, kind: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    })
}

/// `value` with `key` set.
fn with(mut value: Value, key: &str, set: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert(key.to_owned(), set);
    }
    value
}

/// The schemas: the core User as Curbside keeps it, and the enterprise
/// extension's department.
fn schema_list() -> Vec<Value> {
    let name = with(
        attribute("name", "complex", "The user's name"),
        "subAttributes",
        json!([
            attribute("formatted", "string", "The whole name, as displayed"),
            attribute("familyName", "string", "The family name"),
            attribute("givenName", "string", "The given name"),
        ]),
    );
    let emails = with(
        with(
            attribute("emails", "complex", "E-mail addresses"),
            "multiValued",
            json!(true),
        ),
        "subAttributes",
        json!([
            attribute("value", "string", "The address"),
            with(
                attribute("type", "string", "What kind of address"),
                "canonicalValues",
                json!(["work", "home", "other"]),
            ),
            attribute("primary", "boolean", "Whether it is the main address"),
        ]),
    );
    let user_name = with(
        with(
            attribute(
                "userName",
                "string",
                "The name the user is matched on, unique whatever its case",
            ),
            "required",
            json!(true),
        ),
        "uniqueness",
        json!("server"),
    );
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": USER_SCHEMA,
            "name": "User",
            "description": "A Curbside user",
            "attributes": [
                user_name,
                name,
                attribute("displayName", "string", "The name colleagues see"),
                attribute("active", "boolean", "false deactivates the user: their sessions end at once"),
                emails,
            ],
            "meta": { "resourceType": "Schema", "location": format!("/scim/v2/Schemas/{USER_SCHEMA}") },
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": ENTERPRISE,
            "name": "EnterpriseUser",
            "description": "The user's department",
            "attributes": [attribute("department", "string", "The user's department")],
            "meta": { "resourceType": "Schema", "location": format!("/scim/v2/Schemas/{ENTERPRISE}") },
        }),
    ]
}

#[utoipa::path(
    get,
    path = "/scim/v2/Schemas",
    operation_id = "scim.schemas.read",
    tag = "scim",
    security(("scim" = [])),
    responses(
        (status = 200, description = "The schemas", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn schemas(_provider: Provider) -> Response {
    scim_json(StatusCode::OK, &list_of(schema_list()))
}

#[utoipa::path(
    get,
    path = "/scim/v2/Schemas/{schema_id}",
    operation_id = "scim.schema.read",
    tag = "scim",
    params(("schema_id" = String, Path, description = "The schema's URN")),
    security(("scim" = [])),
    responses(
        (status = 200, description = "The schema", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn schema(_provider: Provider, Path(id): Path<String>) -> Result<Response> {
    schema_list()
        .into_iter()
        .find(|schema| schema["id"] == id.as_str())
        .map(|schema| scim_json(StatusCode::OK, &schema))
        .ok_or_else(|| ScimError::not_found("no such schema; /scim/v2/Schemas lists them"))
}

#[utoipa::path(
    post,
    path = "/scim/v2/.search",
    operation_id = "scim.search",
    tag = "scim",
    security(("scim" = [])),
    responses(
        (status = "default", description = "A SCIM error: searching with POST is not supported", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn search(_provider: Provider) -> ScimError {
    ScimError::Scim {
        status: StatusCode::NOT_IMPLEMENTED,
        scim_type: None,
        detail: "searching with POST is not supported; use GET /scim/v2/Users?filter=..."
            .to_owned(),
    }
}

// ---------------------------------------------------------------------------
// The User resource as Curbside keeps it.

/// What the provider wrote of a user, checked, in canonical attribute
/// names. `user_name` and `external_id` live in `app_user`; the rest in
/// `scim_user.resource`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Written {
    user_name: String,
    external_id: Option<String>,
    /// `displayName`, `name`, `emails`, `active` and the extension, as
    /// sent (canonical names, checked types).
    rest: Map<String, Value>,
}

impl Written {
    /// The `active` the provider wrote.
    fn active(&self) -> Option<bool> {
        self.rest.get("active").and_then(Value::as_bool)
    }

    /// The department the provider wrote.
    fn department(&self) -> Option<&str> {
        self.rest
            .get(ENTERPRISE)
            .and_then(|extension| extension.get("department"))
            .and_then(Value::as_str)
            .filter(|department| !department.trim().is_empty())
    }

    /// The name Curbside shows: `displayName`, else `name.formatted`,
    /// else the given and family names, else `userName`.
    fn display_name(&self) -> String {
        let text = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let name = self.rest.get("name");
        let given_and_family = || {
            let parts: Vec<String> = ["givenName", "familyName"]
                .iter()
                .filter_map(|part| text(name.and_then(|name| name.get(part))))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        };
        let chosen = text(self.rest.get("displayName"))
            .or_else(|| text(name.and_then(|name| name.get("formatted"))))
            .or_else(given_and_family)
            .unwrap_or_else(|| self.user_name.clone());
        fit(&chosen)
    }

    /// The whole of it, as the canonical JSON object a PATCH works on.
    fn to_object(&self) -> Map<String, Value> {
        let mut object = self.rest.clone();
        object.insert("userName".to_owned(), json!(self.user_name));
        if let Some(external_id) = &self.external_id {
            object.insert("externalId".to_owned(), json!(external_id));
        }
        object
    }

    /// A user as SCIM reads them from Curbside: what SCIM wrote, else what
    /// an administrator gave them.
    fn of(user: &User, resource: Option<&str>) -> Self {
        let rest = resource
            .and_then(|resource| serde_json::from_str::<Map<String, Value>>(resource).ok())
            .unwrap_or_else(|| {
                let mut rest = Map::new();
                rest.insert("displayName".to_owned(), json!(user.display_name));
                rest.insert(
                    ENTERPRISE.to_owned(),
                    json!({ "department": user.department }),
                );
                rest
            });
        Self {
            user_name: user.user_name.clone().unwrap_or_default(),
            external_id: user.external_id.clone(),
            rest,
        }
    }
}

/// Text fit for a Curbside name or department: control characters as
/// spaces, trimmed, at most [`NAME_MAX`] characters.
fn fit(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.trim().chars().take(NAME_MAX).collect()
}

/// The attribute `text` names in the enterprise extension
/// (`urn:...:enterprise:2.0:User:department` names `department`), if it
/// names one there. (Never slices inside a character: client text.)
fn extension_attribute(text: &str) -> Option<&str> {
    let prefix = text.get(..ENTERPRISE.len())?;
    let rest = text.get(ENTERPRISE.len()..)?;
    prefix
        .eq_ignore_ascii_case(ENTERPRISE)
        .then_some(rest)?
        .strip_prefix(':')
        .filter(|sub| !sub.is_empty())
}

/// The canonical spelling of a top-level attribute (names are not case
/// sensitive), or `None` for one Curbside does not keep.
fn top_level(name: &str) -> Option<&'static str> {
    [
        "userName",
        "externalId",
        "displayName",
        "active",
        "name",
        "emails",
    ]
    .into_iter()
    .find(|known| known.eq_ignore_ascii_case(name))
    .or_else(|| ENTERPRISE.eq_ignore_ascii_case(name).then_some(ENTERPRISE))
}

/// The canonical spelling of a sub-attribute of `parent`.
fn sub_attribute(parent: &str, name: &str) -> Option<&'static str> {
    let known: &[&'static str] = match parent {
        "name" => &["formatted", "familyName", "givenName"],
        "emails" => &["value", "type", "primary"],
        ENTERPRISE => &["department"],
        _ => &[],
    };
    known
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// A boolean as providers send one: JSON's, or "True"/"False" (Entra ID).
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `value` for the sub-attribute `sub` of `parent`, checked.
fn sub_value(parent: &str, sub: &str, value: &Value) -> Result<Value> {
    match (parent, sub) {
        (_, _) if value.is_null() => Ok(Value::Null),
        ("emails", "primary") => boolean(value)
            .map(Value::Bool)
            .ok_or_else(|| ScimError::bad("invalidValue", "emails.primary must be true or false")),
        _ => value.as_str().map(|text| json!(text)).ok_or_else(|| {
            ScimError::bad("invalidValue", format!("{parent}.{sub} must be a string"))
        }),
    }
}

/// A complex value of `parent`, with only the sub-attributes Curbside
/// keeps, in their canonical spelling, checked.
fn complex(parent: &str, value: &Value) -> Result<Value> {
    let object = value
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidValue", format!("{parent} must be an object")))?;
    let mut out = Map::new();
    for (key, value) in object {
        if let Some(sub) = sub_attribute(parent, key) {
            let value = sub_value(parent, sub, value)?;
            if !value.is_null() {
                out.insert(sub.to_owned(), value);
            }
        }
    }
    Ok(Value::Object(out))
}

/// `value` for the top-level attribute `name` (canonical), checked; null
/// for none.
fn top_value(name: &str, value: &Value) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match name {
        "active" => boolean(value)
            .map(Value::Bool)
            .ok_or_else(|| ScimError::bad("invalidValue", "active must be true or false")),
        "name" | ENTERPRISE => complex(name, value),
        "emails" => match value {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|item| complex("emails", item))
                    .collect::<Result<_>>()?,
            )),
            single @ Value::Object(_) => Ok(Value::Array(vec![complex("emails", single)?])),
            _ => Err(ScimError::bad("invalidValue", "emails must be a list")),
        },
        _ => value
            .as_str()
            .map(|text| json!(text))
            .ok_or_else(|| ScimError::bad("invalidValue", format!("{name} must be a string"))),
    }
}

/// A resource as sent (POST, PUT), in canonical names; what Curbside does
/// not keep is left out.
fn canonical(body: &Value) -> Result<Map<String, Value>> {
    let object = body.as_object().ok_or_else(|| {
        ScimError::bad(
            "invalidSyntax",
            "the body must be a JSON object: a User resource",
        )
    })?;
    let mut out = Map::new();
    for (key, value) in object {
        if let Some(name) = top_level(key) {
            let value = top_value(name, value)?;
            if !value.is_null() {
                out.insert(name.to_owned(), value);
            }
        }
    }
    Ok(out)
}

/// The canonical object checked as a whole: a `userName`, and each value's
/// type.
fn written(mut object: Map<String, Value>) -> Result<Written> {
    let user_name = match object.remove("userName") {
        Some(Value::String(text)) => fields::identifier("userName", Some(&text))
            .map_err(|error| ScimError::bad("invalidValue", error.to_string()))?,
        _ => None,
    }
    .ok_or_else(|| ScimError::bad("invalidValue", "userName is required"))?;
    let external_id = match object.remove("externalId") {
        Some(Value::String(text)) => fields::identifier("externalId", Some(&text))
            .map_err(|error| ScimError::bad("invalidValue", error.to_string()))?,
        _ => None,
    };
    // Empty complex values and lists are none.
    object.retain(|_, value| match value {
        Value::Null => false,
        Value::Object(fields) => !fields.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => true,
    });
    // What is kept stays small: every list answer holds up to 200 users.
    if object
        .get("emails")
        .and_then(Value::as_array)
        .is_some_and(|emails| emails.len() > MAX_EMAILS)
    {
        return Err(ScimError::bad(
            "invalidValue",
            format!("a user may have at most {MAX_EMAILS} emails"),
        ));
    }
    if Value::Object(object.clone()).to_string().len() > MAX_RESOURCE_BYTES {
        return Err(ScimError::bad(
            "invalidValue",
            format!("the user's attributes take more than {MAX_RESOURCE_BYTES} bytes; send less"),
        ));
    }
    Ok(Written {
        user_name,
        external_id,
        rest: object,
    })
}

/// A user as SCIM answers with them.
fn resource(user: &User, written: &Written) -> Value {
    let mut object = Map::new();
    let mut schemas = vec![json!(USER_SCHEMA)];
    if written.rest.contains_key(ENTERPRISE) {
        schemas.push(json!(ENTERPRISE));
    }
    object.insert("schemas".to_owned(), Value::Array(schemas));
    object.insert("id".to_owned(), json!(user.user_id));
    for (key, value) in written.to_object() {
        object.insert(key, value);
    }
    // Deactivation by an administrator shows too.
    let active = match (user.status, written.active()) {
        (UserStatus::Deactivated, _) => Some(false),
        (UserStatus::Active, Some(false)) => Some(true),
        (UserStatus::Active, written) => written,
    };
    match active {
        Some(active) => object.insert("active".to_owned(), json!(active)),
        None => object.remove("active"),
    };
    // No `location`: the only host name at hand would be the client's own
    // Host header.
    let meta = json!({
        "resourceType": "User",
        "created": rfc3339(user.created_at_ms),
        "lastModified": rfc3339(user.updated_at_ms),
    });
    object.insert("meta".to_owned(), meta);
    Value::Object(object)
}

fn rfc3339(time_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `attributes` and `excludedAttributes` (RFC 7644 section 3.4.2.5) applied
/// to a resource: `schemas` and `id` always stay.
fn select(mut resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|name| {
                let name = name.trim();
                // `urn:...:User:department` is in the extension; `name.givenName`
                // in `name`.
                let top = if extension_attribute(name).is_some() {
                    ENTERPRISE
                } else {
                    name.split('.').next().unwrap_or(name)
                };
                top.to_ascii_lowercase()
            })
            .collect()
    };
    let Some(object) = resource.as_object_mut() else {
        return resource;
    };
    let always = |key: &str| key == "schemas" || key == "id";
    if let Some(attributes) = attributes.filter(|list| !list.trim().is_empty()) {
        let wanted = names(attributes);
        object.retain(|key, _| always(key) || wanted.contains(&key.to_ascii_lowercase()));
    } else if let Some(excluded) = excluded.filter(|list| !list.trim().is_empty()) {
        let unwanted = names(excluded);
        object.retain(|key, _| always(key) || !unwanted.contains(&key.to_ascii_lowercase()));
    }
    resource
}

/// The body as JSON, whichever of SCIM's or JSON's media type it came as.
fn body_json(headers: &HeaderMap, body: &Bytes) -> Result<Value> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != SCIM_JSON && media != "application/json" {
        return Err(ScimError::Scim {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            scim_type: None,
            detail: "send the body as application/scim+json (or application/json)".to_owned(),
        });
    }
    serde_json::from_slice(body).map_err(|error| {
        ScimError::bad(
            "invalidSyntax",
            format!("the body is not well-formed JSON: {error}"),
        )
    })
}

// ---------------------------------------------------------------------------
// Users.

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    /// `userName eq "..."`, `externalId eq "..."` or `id eq "..."`.
    filter: Option<String>,
    /// The first result's position, from 1.
    start_index: Option<i64>,
    /// How many results at most (up to 200).
    count: Option<i64>,
    /// The only attributes to return (with `id` and `schemas`).
    attributes: Option<String>,
    /// Attributes not to return.
    excluded_attributes: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct ReadQuery {
    /// The only attributes to return (with `id` and `schemas`).
    attributes: Option<String>,
    /// Attributes not to return.
    excluded_attributes: Option<String>,
}

/// A filter Curbside answers: `ATTRIBUTE eq "VALUE"`.
fn parse_filter(filter: &str) -> Result<Match<'_>> {
    let refuse = || {
        ScimError::bad(
            "invalidFilter",
            "this server filters by userName, externalId or id with eq only, as \
             userName eq \"name@example.org\"",
        )
    };
    let filter = filter.trim();
    let (attribute, rest) = filter.split_once(char::is_whitespace).ok_or_else(refuse)?;
    let (operator, value) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(refuse)?;
    if !operator.eq_ignore_ascii_case("eq") {
        return Err(refuse());
    }
    let value = value.trim();
    // The value is a JSON string: the whole rest, quotes included.
    if !(value.len() >= 2 && value.starts_with('"') && value.ends_with('"')) {
        return Err(refuse());
    }
    let inner = &value[1..value.len() - 1];
    if inner.contains('"') || inner.contains('\\') {
        return Err(refuse());
    }
    match top_level(attribute) {
        Some("userName") => Ok(Match::UserName(inner)),
        Some("externalId") => Ok(Match::ExternalId(inner)),
        None if attribute.eq_ignore_ascii_case("id") => Ok(Match::Id(inner)),
        _ => Err(refuse()),
    }
}

#[utoipa::path(
    get,
    path = "/scim/v2/Users",
    operation_id = "scim.user.list",
    tag = "user",
    params(ListQuery),
    security(("scim" = [])),
    responses(
        (status = 200, description = "A page of provisioned users, newest first", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn list_users(
    State(state): State<AppState>,
    _provider: Provider,
    Query(query): Query<ListQuery>,
) -> Result<Response> {
    let matching = match query.filter.as_deref() {
        Some(filter) if !filter.trim().is_empty() => parse_filter(filter)?,
        _ => Match::All,
    };
    let start = query.start_index.unwrap_or(1).max(1);
    let count = query.count.unwrap_or(MAX_RESULTS).clamp(0, MAX_RESULTS);
    let pool = state.database.pool();
    let total = app_user::count_provisioned(pool, matching).await?;
    let users = if count == 0 {
        Vec::new()
    } else {
        app_user::provisioned(pool, matching, start - 1, count).await?
    };
    let resources: Vec<Value> = users
        .iter()
        .map(|(user, stored)| {
            let written = Written::of(user, stored.as_deref());
            select(
                resource(user, &written),
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
            )
        })
        .collect();
    let mut body = json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start,
    });
    if !resources.is_empty() {
        body = with(body, "Resources", Value::Array(resources));
    }
    Ok(scim_json(StatusCode::OK, &body))
}

/// The provisioned user `id`, with what SCIM wrote of them.
async fn provisioned(state: &AppState, id: &str) -> Result<(User, Written)> {
    let (user, stored) = app_user::provisioned(state.database.pool(), Match::Id(id), 0, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ScimError::no_user(id))?;
    let written = Written::of(&user, stored.as_deref());
    Ok((user, written))
}

#[utoipa::path(
    get,
    path = "/scim/v2/Users/{user_id}",
    operation_id = "scim.user.read",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id"), ReadQuery),
    security(("scim" = [])),
    responses(
        (status = 200, description = "The user", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn get_user(
    State(state): State<AppState>,
    _provider: Provider,
    Path(user_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response> {
    let (user, written) = provisioned(&state, &user_id).await?;
    Ok(scim_json(
        StatusCode::OK,
        &select(
            resource(&user, &written),
            query.attributes.as_deref(),
            query.excluded_attributes.as_deref(),
        ),
    ))
}

/// Refuses `written` if another user has its user name or external id.
async fn unique(state: &AppState, written: &Written, user_id: Option<&str>) -> Result<()> {
    let pool = state.database.pool();
    let other = |user: &User| Some(user.user_id.as_str()) != user_id;
    if let Some(user) = app_user::find_by_user_name(pool, &written.user_name).await?
        && other(&user)
    {
        return Err(ScimError::conflict(format!(
            "another user already has the userName {}",
            super::error::shown(&written.user_name)
        )));
    }
    if let Some(external_id) = &written.external_id {
        let taken = app_user::provisioned(pool, Match::ExternalId(external_id), 0, 1).await?;
        if taken.iter().any(|(user, _)| other(user)) {
            return Err(ScimError::conflict(format!(
                "another user already has the externalId {}",
                super::error::shown(external_id)
            )));
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/scim/v2/Users",
    operation_id = "scim.user.create",
    tag = "user",
    request_body(content = Object, content_type = "application/scim+json", description = "A User resource"),
    security(("scim" = [])),
    responses(
        (status = 201, description = "The user, made (a clinician)", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    _provider: Provider,
    access: Access,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let written = written(canonical(&body_json(&headers, &body)?)?)?;
    unique(&state, &written, None).await?;
    let user_id = new_id().map_err(Error::from)?;
    access.resource(&user_id);
    let display_name = written.display_name();
    let department = written
        .department()
        .map_or_else(|| NO_DEPARTMENT.to_owned(), fit);
    let stored = Value::Object(written.rest.clone()).to_string();
    let now = now_ms();
    let target = user_id.clone();
    let commit_state = state.clone();
    let deactivated = written.active() == Some(false);
    let (user_name, external_id) = (written.user_name, written.external_id);
    finish(async move {
        let profile = app_user::Profile {
            display_name: &display_name,
            role: Role::Clinician,
            department: &department,
            licence_number: None,
            user_name: Some(&user_name),
            external_id: external_id.as_deref(),
        };
        let mut tx = commit_state.database.pool().begin().await?;
        app_user::insert(&mut *tx, &target, &profile, now)
            .await
            .map_err(taken)?;
        app_user::set_resource(&mut *tx, &target, &stored).await?;
        if deactivated {
            change_status(
                &mut tx,
                &target,
                UserStatus::Deactivated,
                &target,
                BY_SCIM,
                now,
            )
            .await?;
        }
        access.commit(&commit_state, tx).await
    })
    .await?;
    let (user, written) = provisioned(&state, &user_id).await?;
    Ok(scim_json(StatusCode::CREATED, &resource(&user, &written)))
}

/// Writes `written` over the provisioned `user`: their Curbside name,
/// department and status follow it; deactivation ends their sessions.
async fn write(
    state: &AppState,
    access: Access,
    user: &User,
    written: Written,
) -> Result<(User, Written)> {
    unique(state, &written, Some(&user.user_id)).await?;
    let status = if written.active() == Some(false) {
        UserStatus::Deactivated
    } else {
        UserStatus::Active
    };
    if status == UserStatus::Deactivated && user.status == UserStatus::Active {
        keep_an_admin(state, user).await?;
    }
    if status == UserStatus::Active
        && user.status == UserStatus::Deactivated
        && app_user::deactivated_by(state.database.pool(), &user.user_id)
            .await?
            .as_deref()
            == Some(BY_ADMIN)
    {
        return Err(ScimError::Scim {
            status: StatusCode::CONFLICT,
            scim_type: Some("mutability"),
            detail: "an administrator deactivated this user in Curbside; only an administrator \
                     reactivates them (curbside admin user reactivate)"
                .to_owned(),
        });
    }
    let display_name = written.display_name();
    let department = written
        .department()
        .map_or_else(|| user.department.clone(), fit);
    let stored = Value::Object(written.rest.clone()).to_string();
    let user_name = written.user_name.clone();
    let external_id = written.external_id.clone();
    let (role, licence_number) = (user.role, user.licence_number.clone());
    let target = user.user_id.clone();
    let changes_status = status != user.status;
    let commit_state = state.clone();
    finish(async move {
        let now = now_ms();
        let profile = app_user::Profile {
            display_name: &display_name,
            role,
            department: &department,
            licence_number: licence_number.as_deref(),
            user_name: Some(&user_name),
            external_id: external_id.as_deref(),
        };
        let mut tx = commit_state.database.pool().begin().await?;
        app_user::update(&mut *tx, &target, &profile, now)
            .await
            .map_err(taken)?;
        app_user::set_resource(&mut *tx, &target, &stored).await?;
        if changes_status {
            change_status(&mut tx, &target, status, &target, BY_SCIM, now).await?;
        }
        access.commit(&commit_state, tx).await?;
        commit_state.auth.sessions.evict_user(&target);
        Ok(())
    })
    .await?;
    provisioned(state, &user.user_id).await
}

#[utoipa::path(
    put,
    path = "/scim/v2/Users/{user_id}",
    operation_id = "scim.user.replace",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    request_body(content = Object, content_type = "application/scim+json", description = "The whole User resource"),
    security(("scim" = [])),
    responses(
        (status = 200, description = "The user, replaced", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn replace_user(
    State(state): State<AppState>,
    _provider: Provider,
    access: Access,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let mut replacement = written(canonical(&body_json(&headers, &body)?)?)?;
    let (user, _) = provisioned(&state, &user_id).await?;
    // A replacement that says nothing of `active` (a routine sync) leaves a
    // deactivated user deactivated.
    if user.status == UserStatus::Deactivated && !replacement.rest.contains_key("active") {
        replacement.rest.insert("active".to_owned(), json!(false));
    }
    let (user, written) = write(&state, access, &user, replacement).await?;
    Ok(scim_json(StatusCode::OK, &resource(&user, &written)))
}

#[utoipa::path(
    patch,
    path = "/scim/v2/Users/{user_id}",
    operation_id = "scim.user.patch",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    request_body(content = Object, content_type = "application/scim+json", description = "A PatchOp: add, replace and remove operations"),
    security(("scim" = [])),
    responses(
        (status = 200, description = "The user, changed", body = Object, content_type = "application/scim+json"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn patch_user(
    State(state): State<AppState>,
    _provider: Provider,
    access: Access,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let body = body_json(&headers, &body)?;
    let (user, current) = provisioned(&state, &user_id).await?;
    let mut object = current.to_object();
    // An administrator's deactivation is the current `active`.
    if user.status == UserStatus::Deactivated {
        object.insert("active".to_owned(), json!(false));
    }
    patch::apply(&mut object, &body)?;
    let (user, written) = write(&state, access, &user, written(object)?).await?;
    Ok(scim_json(StatusCode::OK, &resource(&user, &written)))
}

#[utoipa::path(
    delete,
    path = "/scim/v2/Users/{user_id}",
    operation_id = "scim.user.delete",
    tag = "user",
    params(("user_id" = String, Path, description = "The user's id")),
    security(("scim" = [])),
    responses(
        (status = 204, description = "The user is deactivated, and no longer provisioned: SCIM finds them no more"),
        (status = "default", description = "A SCIM error", body = ScimErrorBody, content_type = "application/scim+json"),
    ),
)]
async fn delete_user(
    State(state): State<AppState>,
    _provider: Provider,
    access: Access,
    Path(user_id): Path<String>,
) -> Result<StatusCode> {
    let (user, _) = provisioned(&state, &user_id).await?;
    if user.status == UserStatus::Active {
        keep_an_admin(&state, &user).await?;
    }
    let commit_state = state.clone();
    finish(async move {
        let mut tx = commit_state.database.pool().begin().await?;
        if user.status == UserStatus::Active {
            change_status(
                &mut tx,
                &user.user_id,
                UserStatus::Deactivated,
                &user.user_id,
                BY_SCIM,
                now_ms(),
            )
            .await?;
        }
        app_user::unprovision(&mut tx, &user.user_id).await?;
        access.commit(&commit_state, tx).await?;
        commit_state.auth.sessions.evict_user(&user.user_id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// RFC 7644 section 3.5.2: PATCH operations on the canonical object.
mod patch {
    use serde_json::{Map, Value};

    use super::{
        ENTERPRISE, PATCH_OP, Result, ScimError, sub_attribute, sub_value, top_level, top_value,
    };

    /// Where an operation acts.
    #[derive(Debug, PartialEq)]
    enum Target {
        /// A top-level attribute.
        Top(&'static str),
        /// A sub-attribute of a complex one.
        Sub(&'static str, &'static str),
        /// The members of a list whose `field` is `equals`, or their
        /// `sub`-attribute.
        Members {
            list: &'static str,
            field: &'static str,
            equals: String,
            sub: Option<&'static str>,
        },
        /// Something Curbside does not keep: the operation is ignored.
        Ignored,
    }

    fn invalid_path(path: &str) -> ScimError {
        ScimError::bad(
            "invalidPath",
            format!(
                "cannot read the path {}; give an attribute, attribute.subAttribute, or \
                 emails[type eq \"work\"].value",
                super::super::error::shown(path)
            ),
        )
    }

    fn target(path: &str) -> Result<Target> {
        let path = path.trim();
        if path.eq_ignore_ascii_case(ENTERPRISE) {
            return Ok(Target::Top(ENTERPRISE));
        }
        // The extension's attributes: `urn:...:User:department`.
        if let Some(sub) = super::extension_attribute(path) {
            return Ok(match sub_attribute(ENTERPRISE, sub) {
                Some(sub) => Target::Sub(ENTERPRISE, sub),
                None => Target::Ignored,
            });
        }
        if let Some((list, rest)) = path.split_once('[') {
            let (filter, after) = rest.split_once(']').ok_or_else(|| invalid_path(path))?;
            let Some(list) = top_level(list.trim()).filter(|list| *list == "emails") else {
                return Ok(Target::Ignored);
            };
            let mut words = filter.split_whitespace();
            let (Some(field), Some(operator), Some(value), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(invalid_path(path));
            };
            if !operator.eq_ignore_ascii_case("eq") {
                return Err(invalid_path(path));
            }
            let field = sub_attribute(list, field).ok_or_else(|| invalid_path(path))?;
            let equals = serde_json::from_str::<Value>(value)
                .ok()
                .and_then(|value| match value {
                    Value::String(text) => Some(text),
                    Value::Bool(flag) => Some(flag.to_string()),
                    _ => None,
                })
                .ok_or_else(|| invalid_path(path))?;
            let sub = match after.strip_prefix('.') {
                Some(sub) => Some(sub_attribute(list, sub).ok_or_else(|| invalid_path(path))?),
                None if after.is_empty() => None,
                None => return Err(invalid_path(path)),
            };
            return Ok(Target::Members {
                list,
                field,
                equals,
                sub,
            });
        }
        match path.split_once('.') {
            Some((parent, sub)) => match top_level(parent) {
                Some(parent @ ("name" | "emails")) => Ok(sub_attribute(parent, sub)
                    .map_or(Target::Ignored, |sub| Target::Sub(parent, sub))),
                Some(_) => Err(invalid_path(path)),
                None => Ok(Target::Ignored),
            },
            None => Ok(top_level(path).map_or(Target::Ignored, Target::Top)),
        }
    }

    /// Whether `member`'s `field` is `equals` (a boolean compared as text).
    fn member_matches(member: &Value, field: &str, equals: &str) -> bool {
        match member.get(field) {
            Some(Value::String(text)) => text.eq_ignore_ascii_case(equals),
            Some(Value::Bool(flag)) => flag.to_string() == equals,
            _ => false,
        }
    }

    /// Applies the PatchOp `body` to `object`.
    pub(super) fn apply(object: &mut Map<String, Value>, body: &Value) -> Result<()> {
        let schemas_ok = body
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|schemas| schemas.iter().any(|schema| schema == PATCH_OP));
        let operations = body
            .get("Operations")
            .or_else(|| body.get("operations"))
            .and_then(Value::as_array)
            .filter(|_| schemas_ok)
            .ok_or_else(|| {
                ScimError::bad(
                    "invalidSyntax",
                    format!("a PATCH body is a {PATCH_OP} with its Operations"),
                )
            })?;
        for operation in operations {
            let op = operation
                .get("op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            let path = operation.get("path").and_then(Value::as_str);
            let value = operation.get("value");
            match (op.as_deref(), path, value) {
                (Some("remove"), Some(path), _) => remove(object, &target(path)?, value)?,
                (Some("remove"), None, _) => {
                    return Err(ScimError::bad(
                        "noTarget",
                        "a remove operation needs a path",
                    ));
                }
                (Some(op @ ("add" | "replace")), Some(path), Some(value)) => {
                    set(object, &target(path)?, value, op == "add")?;
                }
                (Some(op @ ("add" | "replace")), None, Some(Value::Object(values))) => {
                    // No path: each key is a path (Entra ID sends
                    // `name.givenName` keys, and the extension's URN).
                    for (key, value) in values {
                        let target = if key.eq_ignore_ascii_case(ENTERPRISE) {
                            Target::Top(ENTERPRISE)
                        } else {
                            target(key)?
                        };
                        set(object, &target, value, op == "add")?;
                    }
                }
                _ => {
                    return Err(ScimError::bad(
                        "invalidSyntax",
                        "each operation is {\"op\": \"add\"|\"replace\"|\"remove\", \"path\": \
                         ..., \"value\": ...} (a value is needed but for remove)",
                    ));
                }
            }
        }
        Ok(())
    }

    fn set(
        object: &mut Map<String, Value>,
        target: &Target,
        value: &Value,
        add: bool,
    ) -> Result<()> {
        match target {
            Target::Ignored => {}
            Target::Top(name) => {
                let value = top_value(name, value)?;
                match (value, object.get_mut(*name)) {
                    (Value::Null, _) => {
                        object.remove(*name);
                    }
                    // Add appends to a list, and merges into an object.
                    (Value::Array(items), Some(Value::Array(current))) if add => {
                        current.extend(items);
                    }
                    (Value::Object(fields), Some(Value::Object(current))) if add => {
                        current.extend(fields);
                    }
                    (value, _) => {
                        object.insert((*name).to_owned(), value);
                    }
                }
            }
            Target::Sub(parent, sub) => {
                let value = sub_value(parent, sub, value)?;
                if *parent == "emails" {
                    // `emails.value` without a filter: every member.
                    if let Some(Value::Array(members)) = object.get_mut("emails") {
                        for member in members {
                            if let Some(member) = member.as_object_mut() {
                                member.insert((*sub).to_owned(), value.clone());
                            }
                        }
                    }
                    return Ok(());
                }
                let parent = object
                    .entry((*parent).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !parent.is_object() {
                    *parent = Value::Object(Map::new());
                }
                if let Some(parent) = parent.as_object_mut() {
                    if value.is_null() {
                        parent.remove(*sub);
                    } else {
                        parent.insert((*sub).to_owned(), value);
                    }
                }
            }
            Target::Members {
                list,
                field,
                equals,
                sub,
            } => {
                let members = object
                    .entry((*list).to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !members.is_array() {
                    *members = Value::Array(Vec::new());
                }
                let Some(members) = members.as_array_mut() else {
                    return Ok(());
                };
                let mut found = false;
                for member in members.iter_mut() {
                    if member_matches(member, field, equals) {
                        found = true;
                        match sub {
                            Some(sub) => {
                                if let Some(member) = member.as_object_mut() {
                                    member.insert((*sub).to_owned(), sub_value(list, sub, value)?);
                                }
                            }
                            None => *member = super::complex(list, value)?,
                        }
                    }
                }
                if !found {
                    // Entra ID adds `emails[type eq "work"].value` to a
                    // user without one.
                    let mut member = Map::new();
                    member.insert((*field).to_owned(), Value::String(equals.clone()));
                    match sub {
                        Some(sub) => {
                            member.insert((*sub).to_owned(), sub_value(list, sub, value)?);
                        }
                        None => {
                            if let Value::Object(fields) = super::complex(list, value)? {
                                member.extend(fields);
                            }
                        }
                    }
                    members.push(Value::Object(member));
                }
            }
        }
        Ok(())
    }

    fn remove(
        object: &mut Map<String, Value>,
        target: &Target,
        value: Option<&Value>,
    ) -> Result<()> {
        match target {
            Target::Ignored => {}
            Target::Top(name) => match (value, object.get_mut(*name)) {
                // Remove these members of a list.
                (Some(Value::Array(items)), Some(Value::Array(current))) => {
                    current.retain(|member| {
                        !items.iter().any(|item| {
                            item.get("value")
                                .is_some_and(|v| Some(v) == member.get("value"))
                        })
                    });
                }
                _ => {
                    object.remove(*name);
                }
            },
            Target::Sub(parent, sub) => match object.get_mut(*parent) {
                Some(Value::Object(fields)) => {
                    fields.remove(*sub);
                }
                Some(Value::Array(members)) => {
                    for member in members {
                        if let Some(member) = member.as_object_mut() {
                            member.remove(*sub);
                        }
                    }
                }
                _ => {}
            },
            Target::Members {
                list,
                field,
                equals,
                sub,
            } => {
                if let Some(Value::Array(members)) = object.get_mut(*list) {
                    match sub {
                        Some(sub) => {
                            for member in members.iter_mut() {
                                if member_matches(member, field, equals)
                                    && let Some(member) = member.as_object_mut()
                                {
                                    member.remove(*sub);
                                }
                            }
                        }
                        None => members.retain(|member| !member_matches(member, field, equals)),
                    }
                }
            }
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use serde_json::json;

        use super::*;

        fn patched(start: Value, operations: Value) -> Value {
            let mut object = start.as_object().unwrap().clone();
            apply(
                &mut object,
                &json!({ "schemas": [PATCH_OP], "Operations": operations }),
            )
            .unwrap();
            Value::Object(object)
        }

        #[test]
        fn entra_id_deactivates_with_a_capitalised_op_and_a_string() {
            let user = json!({ "userName": "ana", "active": true });
            let out = patched(
                user,
                json!([{ "op": "Replace", "path": "active", "value": "False" }]),
            );
            assert_eq!(out["active"], json!(false));
        }

        #[test]
        fn sub_attribute_filter_and_no_path_operations() {
            let user = json!({ "userName": "ana" });
            let out = patched(
                user,
                json!([
                    { "op": "add", "path": "name.givenName", "value": "Ana" },
                    { "op": "add", "path": "emails[type eq \"work\"].value", "value": "ana@example.org" },
                    { "op": "replace", "value": { "displayName": "Dr. Ana", "name.familyName": "Alvarez",
                      (ENTERPRISE): { "department": "Cardiology" } } },
                    { "op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Emergency" },
                ]),
            );
            assert_eq!(
                out["name"],
                json!({ "givenName": "Ana", "familyName": "Alvarez" })
            );
            assert_eq!(
                out["emails"],
                json!([{ "type": "work", "value": "ana@example.org" }])
            );
            assert_eq!(out["displayName"], json!("Dr. Ana"));
            assert_eq!(out[ENTERPRISE], json!({ "department": "Emergency" }));
            let out = patched(
                out,
                json!([
                    { "op": "remove", "path": "emails[type eq \"work\"]" },
                    { "op": "remove", "path": "name.givenName" },
                ]),
            );
            assert_eq!(out["emails"], json!([]));
            assert_eq!(out["name"], json!({ "familyName": "Alvarez" }));
        }

        #[test]
        fn malformed_operations_are_refused_and_unknown_attributes_ignored() {
            let mut object = json!({ "userName": "ana" }).as_object().unwrap().clone();
            for body in [
                json!({ "Operations": [] }),
                json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "move", "path": "x" }] }),
                json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove" }] }),
                json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "emails[type]", "value": 1 }] }),
                json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "active", "value": "yes" }] }),
            ] {
                assert!(apply(&mut object, &body).is_err(), "{body}");
            }
            let out = patched(
                json!({ "userName": "ana" }),
                json!([{ "op": "add", "path": "title", "value": "Consultant" }]),
            );
            assert_eq!(out, json!({ "userName": "ana" }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_eq_on_user_name_external_id_or_id() {
        assert!(matches!(
            parse_filter("userName eq \"ana@example.org\""),
            Ok(Match::UserName("ana@example.org"))
        ));
        assert!(matches!(
            parse_filter("EXTERNALID Eq \"abc\""),
            Ok(Match::ExternalId("abc"))
        ));
        assert!(matches!(parse_filter("id eq \"42\""), Ok(Match::Id("42"))));
        for refused in [
            "userName co \"a\"",
            "userName eq a",
            "title eq \"x\"",
            "userName eq \"a\" and active eq true",
            "userName",
        ] {
            assert!(parse_filter(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_curbside_name_comes_from_display_name_then_name_then_user_name() {
        let written = |rest: Value| Written {
            user_name: "ana@example.org".to_owned(),
            external_id: None,
            rest: rest.as_object().unwrap().clone(),
        };
        assert_eq!(
            written(json!({ "displayName": "Dr. Ana", "name": { "formatted": "Ana A" } }))
                .display_name(),
            "Dr. Ana"
        );
        assert_eq!(
            written(json!({ "name": { "givenName": "Ana", "familyName": "Alvarez" } }))
                .display_name(),
            "Ana Alvarez"
        );
        assert_eq!(written(json!({})).display_name(), "ana@example.org");
    }

    #[test]
    fn client_text_is_never_sliced_inside_a_character() {
        // 56 ASCII bytes, then a character of several bytes across the
        // extension URN's length.
        let tricky = format!("{}é:department", "x".repeat(ENTERPRISE.len() - 1));
        assert_eq!(extension_attribute(&tricky), None);
        assert_eq!(
            extension_attribute(&format!("{ENTERPRISE}:department")),
            Some("department")
        );
        let user = json!({ "schemas": [USER_SCHEMA], "id": "1", "userName": "a" });
        assert_eq!(select(user.clone(), Some(&tricky), None)["id"], "1");
        let mut object = Map::new();
        let body = json!({ "schemas": [PATCH_OP],
            "Operations": [{ "op": "add", "path": tricky, "value": "x" }] });
        assert!(patch::apply(&mut object, &body).is_ok());
    }

    #[test]
    fn attribute_selection_keeps_id_and_schemas() {
        let user = json!({ "schemas": [USER_SCHEMA], "id": "1", "userName": "a",
                           "externalId": "x", "name": { "givenName": "A" } });
        assert_eq!(
            select(user.clone(), Some("externalId"), None),
            json!({ "schemas": [USER_SCHEMA], "id": "1", "externalId": "x" })
        );
        assert_eq!(
            select(user, None, Some("name.givenName,userName")),
            json!({ "schemas": [USER_SCHEMA], "id": "1", "externalId": "x" })
        );
    }
}
