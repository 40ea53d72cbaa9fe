//! Several statements in as few round trips as the database allows.
//!
//! Under load, a statement's round trip costs more than its work: to
//! PostgreSQL about 0.3 ms on the benchmark machine, and to SQLite through
//! sqlx a hand-off to the connection's worker thread and back, each
//! waiting for a core (measured: about 1 ms each under the `send`
//! benchmark, whatever the statement).
//!
//! - [`run`] runs statements in a sqlx transaction (entries appended with a
//!   change, [`crate::audit::append_in`]): on SQLite they go to the worker
//!   as one multi-statement query (one hand-off); PostgreSQL's extended
//!   protocol takes one statement per message, so there they run in turn.
//! - The audit writer uses a [`Link`] of its own. On SQLite it runs
//!   statements on the writer's own thread: no hand-offs at all. On
//!   PostgreSQL a transaction's writes go as one statement
//!   ([`as_one`](link::as_one)).
//!
//! Statements are written with `$1`, `$2`, ... placeholders, as every
//! query of the server is; where statements are sent together (one
//! multi-statement query on SQLite, one `WITH` statement on PostgreSQL)
//! each one's numbers are shifted past the ones before
//! ([`shifted`](statement::shifted)).
//!
//! `statement` holds [`Statement`], the texts of multi-row statements and
//! [`run`]; `link` holds the writer's [`Link`], which uses them.

mod link;
mod statement;

pub(crate) use link::open_sqlite;
pub use link::{Link, LinkError, Row};
pub use statement::{Shapes, Statement, Value, is_postgres, marks, repeated, rows_of, run};
