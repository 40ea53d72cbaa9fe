//! Wire types of the Curbside HTTP API, shared by the server, the CLI and any
//! outside tool that talks to or audits a Curbside server.
//!
//! Everything here is pure: no I/O, no async. Every type decodes strictly
//! (unknown fields and trailing bytes are refused) so that the server and its
//! clients agree on exactly one reading of every message.

pub mod attachment;
pub mod audit;
pub mod audit_review;
pub mod b64;
pub mod clinical;
pub mod content;
pub mod error;
pub mod fingerprint;
pub mod health;
pub mod identity;
pub mod json;
pub mod merkle;
pub mod names;
pub mod note;
pub mod policy;
pub mod request_id;
pub mod retention;
pub mod routes;
pub mod threads;
pub mod witness;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};

/// Where the server serves its OpenAPI 3.1 document: every route, its
/// request and response schemas, the error object and the event types.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";
pub use fingerprint::CertificateFingerprint;
pub use request_id::RequestId;
