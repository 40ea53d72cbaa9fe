//! Several statements in one round trip where the database allows it.
//!
//! Under load, a statement's round trip costs more than its work: to
//! PostgreSQL about 0.3 ms on the benchmark machine, and to SQLite a hand-off
//! to the connection's worker thread and back, each waiting for a core. The
//! audit writer runs a batch's statements with [`run`]: on SQLite they go
//! to the worker as one multi-statement query (one hand-off); PostgreSQL's
//! extended protocol takes one statement per message, so there they run in
//! turn. Statements are written with `?` placeholders, numbered here for
//! PostgreSQL; SQLite binds anonymous `?` in order across the statements
//! (and, unlike `$N`, without looking each name up).

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

/// A value bound to a `?`.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// An integer.
    Int(i64),
    /// Bytes.
    Bytes(&'a [u8]),
}

/// One statement with `?` placeholders, and its values in order.
#[derive(Debug, Default)]
pub struct Statement<'a> {
    sql: String,
    values: Vec<Value<'a>>,
}

impl<'a> Statement<'a> {
    /// A statement of `sql`, its `?` to be bound in order.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// Binds the next `?`.
    pub fn bind(&mut self, value: Value<'a>) -> &mut Self {
        self.values.push(value);
        self
    }

    /// Appends more SQL.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }
}

/// Whether `tx` is on PostgreSQL.
pub fn is_postgres(tx: &Transaction<'_, Any>) -> bool {
    tx.backend_name() == "PostgreSQL"
}

/// `count` placeholders, comma-separated.
pub fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// `sql` with its `?` numbered `$1`, `$2`, ... (PostgreSQL). The SQL here
/// holds no `?` but placeholders.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    values: &[Value<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = match *value {
            Value::Text(text) => query.bind(text),
            Value::OptText(text) => query.bind(text),
            Value::Int(int) => query.bind(int),
            Value::Bytes(bytes) => query.bind(bytes),
        };
    }
    query
}

/// Runs `statements` in `tx`, in order, and returns the rows they all
/// returned, in order. On SQLite that is one round trip.
pub async fn run(
    tx: &mut Transaction<'_, Any>,
    statements: &[Statement<'_>],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    if is_postgres(tx) {
        let mut rows = Vec::new();
        for statement in statements {
            let sql = numbered(&statement.sql);
            rows.extend(
                bind_all(sqlx::query(&sql), &statement.values)
                    .fetch_all(&mut **tx)
                    .await?,
            );
        }
        Ok(rows)
    } else {
        let sql = statements
            .iter()
            .map(|statement| statement.sql.as_str())
            .collect::<Vec<_>>()
            .join(";\n");
        let values: Vec<Value<'_>> = statements
            .iter()
            .flat_map(|statement| statement.values.iter().copied())
            .collect();
        bind_all(sqlx::query(&sql), &values)
            .fetch_all(&mut **tx)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("UPDATE t SET a = ? WHERE b IN (?, ?)"),
            "UPDATE t SET a = $1 WHERE b IN ($2, $3)"
        );
        assert_eq!(marks(3), "?, ?, ?");
    }
}
