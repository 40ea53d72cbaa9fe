//! The HTTPS client for the Curbside API.
//!
//! `connection` holds [`Client`] itself: its TLS and HTTP set-up and how a
//! request is sent and its answer read. The API is spread by area over
//! `impl Client` blocks of their own: `identity` (enrolling, signing in,
//! the directory), `threads` (key packages, threads, welcomes), `events`
//! (the WebSocket that pushes them), `attachments` (files, lifespans,
//! retention and holds), `clinical` (urgent messages, membership the
//! server asks for, roles, escalation), `admin` (users and devices) and
//! `audit` (the audit log). `error` says why a request failed.

mod admin;
mod attachments;
mod audit;
mod clinical;
mod connection;
mod error;
mod events;
mod identity;
mod threads;

pub use connection::Client;
pub use error::ClientError;
pub use events::EventSocket;
