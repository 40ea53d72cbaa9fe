//! The database: SQLite (one file in the data directory, WAL,
//! `synchronous=FULL`) or PostgreSQL, through sqlx's `Any` driver so every
//! query is written once. Each backend has its own migrations folder because
//! their DDL differs; the queries the server runs do not.

pub mod app_user;
pub mod attachment;
pub mod audit;
pub mod audit_cosignature;
pub mod batch;
pub mod checkpoint;
pub mod clinical;
pub mod delivery;
pub mod device;
pub mod enrollment_code;
pub mod events_ticket;
pub mod key_package;
pub mod login_challenge;
pub mod message_batch;
pub mod policy;
pub mod read_receipt;
pub mod retention;
pub mod session;
pub mod thread;
pub mod thread_entry;
pub mod thread_member;
pub mod welcome;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::config::DatabaseUrl;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Settings applied to every SQLite connection. `synchronous=FULL` makes a
/// commit durable before it returns, which is what a 2xx reply promises;
/// `secure_delete` overwrites with zeros what a statement deletes or
/// replaces (a recalled message's ciphertext), in the database file.
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; \
     PRAGMA busy_timeout = 5000; \
     PRAGMA wal_autocheckpoint = 16384; \
     PRAGMA secure_delete = ON;";

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A pool of connections to the server's database.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    url: DatabaseUrl,
    /// On PostgreSQL, whether content was erased since the last `VACUUM`
    /// ([`Database::vacuum_if_erased`]).
    erased: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Why the database could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The SQLite file's permissions could not be narrowed.
    #[error("cannot make the database file {path} private (chmod 600): {source}")]
    Permissions {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No connection could be made.
    #[error(
        "cannot open the database ({url}): {source}; check the setting `database_url` and that the \
         database server is running"
    )]
    Connect {
        /// The URL with any credentials hidden.
        url: String,
        /// The driver's reason.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// Deletes at most `limit` rows of `table` (keyed by `key`) whose
/// `expires_at_ms` is before `before_ms`, in one statement; returns how
/// many. The sweep's tables of things that expire all have that column.
async fn delete_expired_rows<'c, E>(
    executor: E,
    table: &'static str,
    key: &'static str,
    before_ms: i64,
    limit: i64,
) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    Ok(sqlx::query(&format!(
        "DELETE FROM {table} WHERE {key} IN \
         (SELECT {key} FROM {table} WHERE expires_at_ms < $1 LIMIT $2)"
    ))
    .bind(before_ms)
    .bind(limit)
    .execute(executor)
    .await?
    .rows_affected())
}

/// How often [`Database::erase_deleted`] tries to truncate the log.
const ERASE_ATTEMPTS: u32 = 50;
/// How long it waits between tries.
const ERASE_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

impl Database {
    /// Opens a pool to `url`, applying the SQLite settings to every
    /// connection, and brings the schema up to date.
    pub async fn open(url: &DatabaseUrl) -> Result<Self, DbError> {
        let database = Self::connect(url, None).await?;
        database.make_private().await?;
        database.migrate().await?;
        app_user::fill_search_keys(&database.pool).await?;
        Ok(database)
    }

    /// Opens a pool of one connection to `url` without touching its schema:
    /// to copy it while a server (perhaps of another version) uses it, or
    /// to check a restored copy before any migration runs.
    pub async fn open_as_is(url: &DatabaseUrl) -> Result<Self, DbError> {
        Self::connect(url, Some(1)).await
    }

    /// Writes a transaction-consistent copy of a SQLite database to `out`
    /// (`VACUUM INTO`, one read transaction, while others go on writing).
    pub async fn copy_sqlite_to(&self, out: &std::path::Path) -> Result<(), sqlx::Error> {
        sqlx::query("VACUUM INTO $1")
            .bind(out.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The migrations applied to this database, by version, with their
    /// checksums (none if it has no migrations table).
    pub async fn applied_migrations(&self) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
        let table: i64 = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
                     AND name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
            }
            Backend::Postgres => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
                )
                .fetch_one(&self.pool)
                .await?
            }
        };
        if table == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_as(
            "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// The migrations this build has for this database's kind: version,
    /// description and checksum.
    pub fn known_migrations(&self) -> Vec<(i64, String, Vec<u8>)> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .iter()
            .map(|migration| {
                (
                    migration.version,
                    migration.description.to_string(),
                    migration.checksum.to_vec(),
                )
            })
            .collect()
    }

    /// Makes a SQLite database's files readable by the server's user only
    /// (SQLite creates them 0644, and its log and shared-memory files after
    /// the database file's mode): they hold the audit log and every
    /// ciphertext, whatever the data directory's own mode.
    async fn make_private(&self) -> Result<(), DbError> {
        use std::os::unix::fs::PermissionsExt;
        let Some(file) = self.sqlite_file().await? else {
            return Ok(());
        };
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            let path = std::path::PathBuf::from(path);
            match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => {}
                Err(error)
                    if error.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
                Err(source) => {
                    return Err(DbError::Permissions {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Another pool to the same database, of at most `max_connections`,
    /// made on the calling task's runtime (the audit writer runs on a
    /// thread of its own, see [`crate::audit`]).
    pub async fn reopen(&self, max_connections: u32) -> Result<Self, DbError> {
        Self::connect(&self.url, Some(max_connections)).await
    }

    async fn connect(url: &DatabaseUrl, max_connections: Option<u32>) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = if url.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_connections(max_connections.unwrap_or(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            }));
        let options = match backend {
            // A SQLite connection is a file handle, which does not go stale:
            // checking it before each use would be one more hand-off to its
            // worker thread per query.
            Backend::Sqlite => {
                options
                    .test_before_acquire(false)
                    .after_connect(|connection, _meta| {
                        Box::pin(async move {
                            connection.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
            }
            Backend::Postgres => options,
        };
        let pool = options
            .connect(url.expose())
            .await
            .map_err(|source| DbError::Connect {
                url: url.to_string(),
                source,
            })?;
        Ok(Self {
            pool,
            backend,
            url: url.clone(),
            erased: std::sync::Arc::default(),
        })
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The connection pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// After content was erased (a recall, a purge): on SQLite, whose
    /// `secure_delete` zeroes what a statement deletes or overwrites in
    /// the database file but not the older copies in its write-ahead log,
    /// copies the log back and truncates it (`wal_checkpoint(TRUNCATE)`),
    /// in the background, trying again while readers or another
    /// checkpoint hold it. On PostgreSQL, notes that the sweep's next pass
    /// is to `VACUUM` (see [`Self::vacuum_if_erased`] and DESIGN.md,
    /// Storage).
    pub fn erase_deleted(&self) {
        if self.backend != Backend::Sqlite {
            self.erased
                .store(true, std::sync::atomic::Ordering::Release);
            return;
        }
        let pool = self.pool.clone();
        tokio::spawn(async move {
            for attempt in 1..=ERASE_ATTEMPTS {
                let done: Result<(i64, i64, i64), sqlx::Error> =
                    sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(&pool)
                        .await;
                match done {
                    // Not busy: the whole log was copied back and emptied.
                    Ok((0, _, _)) => return,
                    Ok(_) => {}
                    Err(error) if attempt == ERASE_ATTEMPTS => {
                        tracing::warn!(%error, "cannot truncate the write-ahead log after erasing");
                        return;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(ERASE_RETRY).await;
            }
            tracing::warn!(
                "the write-ahead log stayed busy; what was erased leaves it at the next checkpoint"
            );
        });
    }

    /// On PostgreSQL, if content was erased since the last time: `VACUUM`s
    /// the tables that held it, so that the space of the rows it deleted
    /// or replaced is marked free for reuse (PostgreSQL does not overwrite
    /// it; see DESIGN.md, Storage). Nothing on SQLite.
    pub async fn vacuum_if_erased(&self) -> Result<(), sqlx::Error> {
        if self.backend != Backend::Postgres
            || !self.erased.swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        sqlx::raw_sql("VACUUM thread_entry, attachment, attachment_chunk, erasure_due")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The SQLite database's file, as SQLite names it; `None` on
    /// PostgreSQL.
    pub async fn sqlite_file(&self) -> Result<Option<std::path::PathBuf>, sqlx::Error> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&self.pool)
                .await?;
        Ok(Some(file.into()))
    }

    /// Whether this is PostgreSQL (which carries events between replicas).
    pub fn is_postgres(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// Makes sure the installation row exists and returns its id.
    pub async fn installation_id(&self, new_id: &str, now_ms: i64) -> Result<String, DbError> {
        sqlx::query(
            "INSERT INTO installation (installation_row, installation_id, created_at_ms) \
             VALUES (1, $1, $2) ON CONFLICT (installation_row) DO NOTHING",
        )
        .bind(new_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let id: String = sqlx::query_scalar(
            "SELECT installation_id FROM installation WHERE installation_row = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// The installation's id, if the database has one (without making
    /// one).
    pub async fn installation_id_if_any(&self) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT installation_id FROM installation WHERE installation_row = 1")
            .fetch_optional(&self.pool)
            .await
    }

    /// Succeeds when the database answers a query against the current
    /// schema within a short time.
    pub async fn check_ready(&self) -> Result<(), sqlx::Error> {
        let query = sqlx::query_scalar::<_, String>(
            "SELECT installation_id FROM installation WHERE installation_row = 1",
        )
        .fetch_one(&self.pool);
        match tokio::time::timeout(READY_TIMEOUT, query).await {
            Ok(result) => result.map(drop),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    /// Waits for connections in use to be returned, then closes them all
    /// (for SQLite this also checkpoints the write-ahead log).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
