//! Statements with `$N` placeholders and their values, the texts of
//! multi-row statements (made once per shape), and [`run`], which runs
//! several on a sqlx connection in as few round trips as it allows: one
//! multi-statement query on SQLite, one statement at a time on PostgreSQL.

use std::fmt::Write as _;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection};

/// A value bound to a placeholder.
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
    /// Bytes or NULL.
    OptBytes(Option<&'a [u8]>),
}

/// One statement with `$N` placeholders, and its values: the `N`th binds
/// `$N`.
#[derive(Debug, Default)]
pub struct Statement<'a> {
    pub(super) sql: String,
    pub(super) values: Vec<Value<'a>>,
}

impl<'a> Statement<'a> {
    /// A statement of `sql`, its `$1`, `$2`, ... to be bound in order.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            values: Vec::new(),
        }
    }

    /// Binds the next placeholder (the first binds `$1`).
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

/// Whether `connection` is to PostgreSQL.
pub fn is_postgres(connection: &AnyConnection) -> bool {
    connection.backend_name() == "PostgreSQL"
}

/// `count` placeholders from `$first` on, comma-separated.
pub fn marks(first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 6);
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        let _ = write!(out, "${n}");
    }
    out
}

/// The `VALUES` list of a multi-row `INSERT`: `rows` rows, each `row`
/// with its `{}` replaced by its placeholders `$1` ... in order (a row's
/// own literals, such as `'application'`, stay). For statement texts made
/// once per shape, as a batch's are: see [`Shapes`].
pub fn rows_of(row: &str, rows: usize) -> String {
    repeated(row, rows, ", ")
}

/// `part` `times` times, separated by `separator`, each `{}` replaced by
/// the next placeholder from `$1` on.
pub fn repeated(part: &str, times: usize, separator: &str) -> String {
    let per_part = part.matches("{}").count();
    let mut out = String::with_capacity(times * (part.len() + per_part * 4 + separator.len()));
    let mut n = 0;
    for index in 0..times {
        if index > 0 {
            out.push_str(separator);
        }
        let mut parts = part.split("{}");
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for part in parts {
            n += 1;
            let _ = write!(out, "${n}");
            out.push_str(part);
        }
    }
    out
}

/// The texts of one statement for 1 to `max` rows, made once: a batch's
/// multi-row statements take a few shapes, and the writer, which every
/// request waits for, need not build a text of hundreds of placeholders
/// for each batch.
#[derive(Debug)]
pub struct Shapes(Vec<String>);

impl Shapes {
    /// `make(rows)` for each of 1 to `max` rows.
    pub fn new(max: usize, make: impl Fn(usize) -> String) -> Self {
        Self((1..=max).map(make).collect())
    }

    /// The text for `rows` rows (1 to `max`).
    pub fn get(&self, rows: usize) -> &str {
        rows.checked_sub(1)
            .and_then(|index| self.0.get(index))
            .map_or("", String::as_str)
    }
}

/// `sql` with each placeholder `$N` made `$(N + by)`, for a statement sent
/// after others whose values come first. The SQL here holds no `$` but
/// placeholders.
pub(super) fn shifted(sql: &str, by: usize) -> std::borrow::Cow<'_, str> {
    if by == 0 {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => {
                let _ = write!(out, "{}", n + by);
            }
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out.into()
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
            Value::OptBytes(bytes) => query.bind(bytes),
        };
    }
    query
}

/// Runs `statements` on `connection` (in its transaction, if one is
/// open), in order, and returns the rows they all returned, in order. On
/// SQLite that is one round trip.
pub async fn run(
    connection: &mut AnyConnection,
    statements: &[Statement<'_>],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    if is_postgres(connection) {
        let mut rows = Vec::new();
        for statement in statements {
            rows.extend(
                bind_all(sqlx::query(&statement.sql), &statement.values)
                    .fetch_all(&mut *connection)
                    .await?,
            );
        }
        Ok(rows)
    } else {
        let mut sql = String::new();
        let mut bound = 0;
        for statement in statements {
            if !sql.is_empty() {
                sql.push_str(";\n");
            }
            sql.push_str(&shifted(&statement.sql, bound));
            bound += statement.values.len();
        }
        if sql.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Value<'_>> = statements
            .iter()
            .flat_map(|statement| statement.values.iter().copied())
            .collect();
        bind_all(sqlx::query(&sql), &values)
            .fetch_all(connection)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_shifted_past_the_statements_before() {
        assert_eq!(
            shifted("UPDATE t SET a = $2 WHERE b IN ($1, $10)", 3),
            "UPDATE t SET a = $5 WHERE b IN ($4, $13)"
        );
        assert_eq!(shifted("SELECT $1", 0), "SELECT $1");
        assert_eq!(marks(2, 3), "$2, $3, $4");
        assert_eq!(
            rows_of("({}, 'a', {})", 3),
            "($1, 'a', $2), ($3, 'a', $4), ($5, 'a', $6)"
        );
        let shapes = Shapes::new(2, |rows| rows_of("({})", rows));
        assert_eq!(shapes.get(2), "($1), ($2)");
        assert_eq!(shapes.get(3), "");
    }
}
