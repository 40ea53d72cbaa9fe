//! The audit writer's own connection, a [`Link`]: on SQLite driven with
//! rusqlite on the writer's thread, on PostgreSQL a pooled sqlx
//! connection whose transaction's writes go as one statement
//! ([`as_one`]). Its rows and errors are [`Row`] and [`LinkError`].

use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Executor, Row as _};

use super::statement::{Statement, Value, run, shifted};

/// Why a [`Link`] could not run statements.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// PostgreSQL (through sqlx) refused or is unreachable.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// SQLite refused.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A row's column is missing or of another type.
    #[error("column {0} of a row is missing or of an unexpected type")]
    Column(usize),
    /// A statement's placeholder has no value (a bug in the statement).
    #[error("placeholder {0} of a statement has no value")]
    Parameter(usize),
    /// The operating system refused (a file, a thread).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A row a [`Link`] returned.
pub enum Row {
    /// From PostgreSQL.
    Any(AnyRow),
    /// From SQLite.
    Sqlite(Vec<rusqlite::types::Value>),
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never its values: they can be ciphertext or personal data.
        f.debug_struct("Row")
            .field("columns", &self.columns())
            .finish_non_exhaustive()
    }
}

impl Row {
    /// How many columns it has.
    pub fn columns(&self) -> usize {
        match self {
            Self::Any(row) => row.len(),
            Self::Sqlite(values) => values.len(),
        }
    }

    /// Column `index` as an integer.
    pub fn int(&self, index: usize) -> Result<i64, LinkError> {
        match self {
            Self::Any(row) => Ok(row.try_get(index)?),
            Self::Sqlite(values) => match values.get(index) {
                Some(rusqlite::types::Value::Integer(int)) => Ok(*int),
                _ => Err(LinkError::Column(index)),
            },
        }
    }

    /// Column `index` as text, or `None` if it is NULL.
    pub fn opt_text(&self, index: usize) -> Result<Option<String>, LinkError> {
        match self {
            Self::Any(row) => Ok(row.try_get(index)?),
            Self::Sqlite(values) => match values.get(index) {
                Some(rusqlite::types::Value::Text(text)) => Ok(Some(text.clone())),
                Some(rusqlite::types::Value::Null) => Ok(None),
                _ => Err(LinkError::Column(index)),
            },
        }
    }

    /// Column `index` as text.
    pub fn text(&self, index: usize) -> Result<String, LinkError> {
        self.opt_text(index)?.ok_or(LinkError::Column(index))
    }

    /// Column `index` as bytes.
    pub fn bytes(&self, index: usize) -> Result<Vec<u8>, LinkError> {
        self.opt_bytes(index)?.ok_or(LinkError::Column(index))
    }

    /// Column `index` as bytes, or `None` if it is NULL.
    pub fn opt_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, LinkError> {
        match self {
            Self::Any(row) => Ok(row.try_get(index)?),
            Self::Sqlite(values) => match values.get(index) {
                Some(rusqlite::types::Value::Blob(bytes)) => Ok(Some(bytes.clone())),
                Some(rusqlite::types::Value::Null) => Ok(None),
                _ => Err(LinkError::Column(index)),
            },
        }
    }
}

/// Prepared statements kept by a SQLite [`Link`]; a batch's statements
/// take a few shapes for each batch size.
const SQLITE_STATEMENT_CACHE: usize = 256;

/// The audit writer's own connection, which runs a transaction's
/// statements with as few hand-offs as each database allows.
///
/// On SQLite it is a connection driven directly on the writer's thread
/// (rusqlite, over the same bundled SQLite as sqlx's): a statement costs
/// only its work, where sqlx hands each one to a worker thread and each row
/// back, a wake-up each way that waits for a core under load (measured:
/// about 1 ms per statement under the `send` benchmark). On PostgreSQL it
/// is a pooled sqlx connection; its extended protocol takes one statement
/// per message, so statements run in turn.
#[derive(Debug)]
pub enum Link {
    /// SQLite, on the calling thread (it blocks it).
    Sqlite(rusqlite::Connection),
    /// PostgreSQL.
    Postgres(PoolConnection<Any>),
}

impl Link {
    /// Opens a SQLite link to the database file `path` (one sqlx already
    /// opened and migrated), with the settings of `pragmas`.
    pub fn open_sqlite(path: &std::path::Path, pragmas: &str) -> Result<Self, LinkError> {
        Ok(Self::Sqlite(open_sqlite(path, pragmas)?))
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs `statements` (in the open transaction, if there is one; each
    /// on its own otherwise, as SQLite and PostgreSQL do by default) and
    /// returns their rows.
    pub async fn read(&mut self, statements: &[Statement<'_>]) -> Result<Vec<Row>, LinkError> {
        match self {
            Self::Sqlite(connection) => run_sqlite(connection, statements),
            Self::Postgres(connection) => Ok(run(connection, statements)
                .await?
                .into_iter()
                .map(Row::Any)
                .collect()),
        }
    }

    /// Checks that a PostgreSQL connection still answers (one round trip;
    /// a SQLite link always does).
    pub async fn ping(&mut self) -> Result<(), LinkError> {
        if let Self::Postgres(connection) = self {
            sqlx::Connection::ping(&mut **connection).await?;
        }
        Ok(())
    }

    /// Opens a transaction and runs `statements` in it, returning the rows
    /// they all returned, in order. SQLite's `BEGIN IMMEDIATE` takes the
    /// write lock before anything is read. The transaction stays open
    /// until [`Link::commit_with`] or [`Link::rollback`].
    pub async fn begin_with(
        &mut self,
        statements: &[Statement<'_>],
    ) -> Result<Vec<Row>, LinkError> {
        match self {
            Self::Sqlite(connection) => connection.execute_batch("BEGIN IMMEDIATE")?,
            Self::Postgres(connection) => {
                // Unprepared, as sqlx's own transactions send it.
                connection.execute("BEGIN").await?;
            }
        }
        self.read(statements).await
    }

    /// Runs `statements` in the open transaction and commits it. If this
    /// fails, the transaction may still be open: roll it back.
    pub async fn commit_with(&mut self, statements: &[Statement<'_>]) -> Result<(), LinkError> {
        match self {
            Self::Sqlite(connection) => {
                run_sqlite(connection, statements)?;
                connection.execute_batch("COMMIT")?;
            }
            Self::Postgres(connection) => {
                if let Some(statement) = as_one(statements) {
                    run(connection, &[statement]).await?;
                }
                connection.execute("COMMIT").await?;
            }
        }
        Ok(())
    }

    /// Rolls back the open transaction, if there is one. If this fails,
    /// close the link: that ends any transaction still open.
    pub async fn rollback(&mut self) -> Result<(), LinkError> {
        match self {
            Self::Sqlite(connection) => {
                if !connection.is_autocommit() {
                    connection.execute_batch("ROLLBACK")?;
                }
            }
            Self::Postgres(connection) => {
                connection.execute("ROLLBACK").await?;
            }
        }
        Ok(())
    }

    /// Closes the link after a failure: its connection is not used again.
    pub fn discard(self) {
        if let Self::Postgres(mut connection) = self {
            connection.close_on_drop();
        }
    }
}

/// Writing `statements` (none of which returns rows) as one PostgreSQL
/// statement, all but the last as data-modifying `WITH` queries: one round
/// trip instead of one each. PostgreSQL runs them on one snapshot, in no
/// set order, so none may read what another writes, and no two may change
/// the same row (inserting different rows of one table is fine).
fn as_one<'a>(statements: &[Statement<'a>]) -> Option<Statement<'a>> {
    let (last, rest) = statements.split_last()?;
    let mut one = Statement::new(String::new());
    for (index, statement) in rest.iter().enumerate() {
        one.push(if index == 0 { "WITH " } else { ", " });
        let sql = shifted(&statement.sql, one.values.len());
        one.push(&format!("w{index} AS ({sql})"));
        one.values.extend(statement.values.iter().copied());
    }
    one.push(if rest.is_empty() { "" } else { " " });
    let sql = shifted(&last.sql, one.values.len());
    one.push(&sql);
    one.values.extend(last.values.iter().copied());
    Some(one)
}

/// Opens a SQLite connection to the database file `path` (one sqlx
/// already opened and migrated), with the settings of `pragmas`, for a
/// thread of the server's own.
pub(crate) fn open_sqlite(
    path: &std::path::Path,
    pragmas: &str,
) -> Result<rusqlite::Connection, LinkError> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Instead of `busy_timeout`'s sleeps, which grow to 100 ms: another
    // connection holds the write lock for one short transaction, and
    // every request in the batch waits for this one. (The pragmas'
    // `busy_timeout` is skipped, as it would replace this.)
    connection.busy_handler(Some(retry_soon))?;
    for pragma in pragmas.split(';').map(str::trim) {
        if !pragma.is_empty() && !pragma.starts_with("PRAGMA busy_timeout") {
            connection.execute_batch(pragma)?;
        }
    }
    // A batch's multi-row statements each keep a statement journal,
    // which past 64 KiB went to a temporary file: a file created,
    // written and deleted per commit (measured: a third of this
    // thread's time in the kernel). Those journals are as small as a
    // batch; they stay in memory.
    connection.execute_batch("PRAGMA temp_store = MEMORY")?;
    connection.set_prepared_statement_cache_capacity(SQLITE_STATEMENT_CACHE);
    Ok(connection)
}

/// How long a SQLite [`Link`] waits between tries for a lock another
/// connection holds, and how many tries it makes (five seconds in all,
/// as `busy_timeout` in [`crate::db::SQLITE_PRAGMAS`]).
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_micros(200);
const RETRIES: i32 = 25_000;

/// SQLite's busy handler for a [`Link`]: wait a little and try again.
fn retry_soon(tries: i32) -> bool {
    if tries >= RETRIES {
        return false;
    }
    std::thread::sleep(RETRY_EVERY);
    true
}

/// Runs `statements` on a SQLite connection, in order, binding each
/// `$N` to its `N`th value; returns every row.
///
/// SQLite numbers `$N` parameters in the order they first appear, and
/// finding one's name walks a list of them: looked up for each parameter,
/// a batch's multi-row inserts (hundreds of parameters) would cost their
/// square. So every statement sent here uses `$1` to `$N` in the order
/// they appear, each once, and values are bound by position; the count is
/// checked always, the names in debug builds.
fn run_sqlite(
    connection: &rusqlite::Connection,
    statements: &[Statement<'_>],
) -> Result<Vec<Row>, LinkError> {
    let mut rows = Vec::new();
    for statement in statements {
        let mut prepared = connection.prepare_cached(&statement.sql)?;
        if prepared.parameter_count() != statement.values.len() {
            return Err(LinkError::Parameter(prepared.parameter_count()));
        }
        for (index, value) in statement.values.iter().enumerate() {
            // Parameters are numbered from 1.
            let index = index + 1;
            debug_assert_eq!(
                prepared.parameter_name(index),
                Some(format!("${index}").as_str()),
                "placeholders out of order in {}",
                statement.sql
            );
            match *value {
                Value::Text(text) => prepared.raw_bind_parameter(index, text)?,
                Value::OptText(text) => prepared.raw_bind_parameter(index, text)?,
                Value::Int(int) => prepared.raw_bind_parameter(index, int)?,
                Value::Bytes(bytes) => prepared.raw_bind_parameter(index, bytes)?,
                Value::OptBytes(bytes) => prepared.raw_bind_parameter(index, bytes)?,
            }
        }
        let columns = prepared.column_count();
        let mut results = prepared.raw_query();
        while let Some(row) = results.next()? {
            rows.push(Row::Sqlite(
                (0..columns)
                    .map(|column| row.get::<_, rusqlite::types::Value>(column))
                    .collect::<Result<_, _>>()?,
            ));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_become_one_statement() {
        let mut first = Statement::new("UPDATE t SET a = $1");
        first.bind(Value::Int(1));
        let mut second = Statement::new("INSERT INTO u VALUES ($1, $2)");
        second.bind(Value::Int(2)).bind(Value::Text("x"));
        let last = Statement::new("UPDATE h SET b = 0");
        let one = as_one(&[first, second, last]).unwrap();
        assert_eq!(
            one.sql,
            "WITH w0 AS (UPDATE t SET a = $1), w1 AS (INSERT INTO u VALUES ($2, $3)) \
             UPDATE h SET b = 0"
        );
        assert_eq!(one.values.len(), 3);
        assert_eq!(as_one(&[]).map(|one| one.sql), None);
        let alone = as_one(&[Statement::new("UPDATE h SET b = 0")]).unwrap();
        assert_eq!(alone.sql, "UPDATE h SET b = 0");
    }
}
