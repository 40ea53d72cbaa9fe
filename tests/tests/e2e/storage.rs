//! Storage set-up: migrations on both backends, SQLite's durability settings.

use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_tests::{Backend, TestEnv, backend_tests};
use sqlx::Connection;

backend_tests!(
    migrations_run_once_and_the_installation_id_is_stable,
    expired_login_challenges_are_swept,
    expired_events_tickets_are_swept,
    expired_sessions_codes_and_undeliverable_welcomes_are_swept,
);

/// The SQLite file and its log are the server user's alone, whatever the
/// data directory's mode. (SQLite only: PostgreSQL keeps its own files.)
#[tokio::test]
async fn the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new(Backend::Sqlite).await;
    let server = env.start().await;
    server.client().challenge(&"0".repeat(32)).await.unwrap();
    for name in ["curbside.db", "curbside.db-wal", "curbside.db-shm"] {
        let mode = std::fs::metadata(env.data_dir().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is {:o}", mode & 0o777);
    }
    server.stop().await;
    // A file left readable by an older version is narrowed at the next start.
    let file = env.data_dir().join("curbside.db");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = env.start().await;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    server.stop().await;
}

/// Login challenges no longer live for ever: expired ones are swept.
async fn expired_login_challenges_are_swept(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.sweep_every = std::time::Duration::from_millis(100);
    let server = env.start_with(config, axum::Router::new()).await;
    let client = server.client();
    let old = client.challenge(&"1".repeat(32)).await.unwrap();
    let fresh = client.challenge(&"2".repeat(32)).await.unwrap();
    // The first expired long ago (behind the server's back).
    execute(
        &env,
        &format!(
            "UPDATE login_challenge SET expires_at_ms = 1 WHERE challenge_id = '{}'",
            old.challenge_id
        ),
    )
    .await;
    let count = |id: String| {
        let env = &env;
        async move {
            sqlx::any::install_default_drivers();
            let mut connection = sqlx::AnyConnection::connect(env.database_url())
                .await
                .unwrap();
            let count: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM login_challenge WHERE challenge_id = $1")
                    .bind(id)
                    .fetch_one(&mut connection)
                    .await
                    .unwrap();
            connection.close().await.unwrap();
            count
        }
    };
    let started = std::time::Instant::now();
    while count(old.challenge_id.clone()).await > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the expired challenge was never swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The unexpired one is still there, and serves.
    assert_eq!(count(fresh.challenge_id.clone()).await, 1);
    server.stop().await;
}

/// Live-events tickets nobody used are swept once expired.
async fn expired_events_tickets_are_swept(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.sweep_every = std::time::Duration::from_millis(100);
    let server = env.start_with(config, axum::Router::new()).await;
    let admin = crate::people::first_admin(&server).await;
    let ask = || async {
        server
            .http()
            .post(format!("{}/v1/events/ticket", server.url))
            .bearer_auth(admin.token())
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    };
    ask().await;
    // It expired long ago (behind the server's back); a fresh one follows.
    execute(&env, "UPDATE events_ticket SET expires_at_ms = 1").await;
    ask().await;
    let count = |condition: &'static str| {
        let env = &env;
        async move {
            sqlx::any::install_default_drivers();
            let mut connection = sqlx::AnyConnection::connect(env.database_url())
                .await
                .unwrap();
            let count: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM events_ticket WHERE {condition}"
            ))
            .fetch_one(&mut connection)
            .await
            .unwrap();
            connection.close().await.unwrap();
            count
        }
    };
    let started = std::time::Instant::now();
    while count("expires_at_ms = 1").await > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the expired ticket was never swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count("expires_at_ms > 1").await, 1, "the fresh one stays");
    server.stop().await;
}

/// How many rows of `table` meet `condition`, read behind the server's back.
pub async fn count_rows(env: &TestEnv, table: &str, condition: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE {condition}"))
        .fetch_one(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    count
}

/// Waits (up to 10 s) until no row of `table` meets `condition`.
async fn swept(env: &TestEnv, table: &str, condition: &str) {
    let started = std::time::Instant::now();
    while count_rows(env, table, condition).await > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{table} WHERE {condition} was never swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Sessions whose lifetime ended, enrollment codes that expired and
/// welcomes that can never be delivered are swept; live ones stay.
async fn expired_sessions_codes_and_undeliverable_welcomes_are_swept(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut config = env.config();
    config.sweep_every = std::time::Duration::from_millis(100);
    let server = env.start_with(config, axum::Router::new()).await;
    let (admin, _ana, ben, cal, _thread) = crate::threads::three(&server).await;

    // Cal's session ran out long ago (behind the server's back).
    execute(
        &env,
        &format!(
            "UPDATE session SET expires_at_ms = 1 WHERE user_id = '{}'",
            cal.user.user_id
        ),
    )
    .await;
    swept(&env, "session", "expires_at_ms = 1").await;

    // A code that expired goes; a fresh one stays.
    admin
        .client
        .issue_enrollment_code_keeping(&cal.user.user_id, true)
        .await
        .unwrap();
    execute(&env, "UPDATE enrollment_code SET expires_at_ms = 1").await;
    admin
        .client
        .issue_enrollment_code_keeping(&cal.user.user_id, true)
        .await
        .unwrap();
    swept(&env, "enrollment_code", "expires_at_ms = 1").await;
    assert_eq!(
        count_rows(&env, "enrollment_code", "expires_at_ms > 1").await,
        1
    );

    // Ben's welcome, never acknowledged, can no longer be delivered once
    // he is deactivated.
    let ben_welcome = format!("device_id = '{}'", ben.device_id);
    assert_eq!(count_rows(&env, "welcome", &ben_welcome).await, 1);
    admin
        .client
        .set_user_active(&ben.user.user_id, false)
        .await
        .unwrap();
    swept(&env, "welcome", &ben_welcome).await;

    // The administrator, still signed in, works on.
    admin.client.whoami().await.unwrap();
    assert!(count_rows(&env, "session", "expires_at_ms > 1").await >= 1);
    server.stop().await;
}

/// Runs one statement directly against the test's database, behind the
/// server's back.
pub async fn execute(env: &TestEnv, statement: &str) {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(env.database_url())
        .await
        .unwrap();
    sqlx::query(statement)
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

async fn migrations_run_once_and_the_installation_id_is_stable(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let url = DatabaseUrl::parse(env.database_url()).unwrap();
    let first = Database::open(&url).await.unwrap();
    let id = first.installation_id("first-id", 1).await.unwrap();
    assert_eq!(id, "first-id");
    first.close().await;

    // A second start finds the schema current and keeps the installation.
    let second = Database::open(&url).await.unwrap();
    assert_eq!(
        second.installation_id("second-id", 2).await.unwrap(),
        "first-id"
    );
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(second.pool())
        .await
        .unwrap();
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
        .unwrap()
        .count();
    assert_eq!(usize::try_from(applied).unwrap(), shipped);
    second.check_ready().await.unwrap();
    second.close().await;
}

/// The two migration folders are written by hand, one per engine: after
/// both have run, they define the same tables with the same columns.
#[tokio::test]
async fn both_backends_define_the_same_tables_and_columns() {
    if curbside_tests::postgres_url().is_none() {
        eprintln!("skipped: {} is not set", curbside_tests::POSTGRES_URL_VAR);
        return;
    }
    let mut schemas = Vec::new();
    for (backend, sql) in [
        (
            Backend::Sqlite,
            "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
               AND m.name <> '_sqlx_migrations'",
        ),
        (
            Backend::Postgres,
            "SELECT table_name::text AS table_name, column_name::text AS column_name \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
        ),
    ] {
        let env = TestEnv::new(backend).await;
        let database = Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
            .await
            .unwrap();
        let mut columns: Vec<(String, String)> = sqlx::query_as(sql)
            .fetch_all(database.pool())
            .await
            .unwrap();
        columns.sort();
        assert!(
            columns.len() > 20,
            "{backend:?} has too few columns: {columns:?}"
        );
        schemas.push(columns);
        database.close().await;
    }
    let (sqlite, postgres) = (&schemas[0], &schemas[1]);
    let only_sqlite: Vec<_> = sqlite.iter().filter(|c| !postgres.contains(c)).collect();
    let only_postgres: Vec<_> = postgres.iter().filter(|c| !sqlite.contains(c)).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations differ: only in SQLite {only_sqlite:?}, only in PostgreSQL {only_postgres:?}"
    );
}

#[tokio::test]
async fn sqlite_is_durable_wal_with_foreign_keys() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let database = Database::open(&DatabaseUrl::parse(env.database_url()).unwrap())
        .await
        .unwrap();
    let pool = database.pool();
    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal_mode, "wal");
    // Per-connection settings: check on every connection the pool holds.
    for _ in 0..4 {
        let mut connection = pool.acquire().await.unwrap();
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(synchronous, 2, "2 is FULL");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1);
    }
    database.close().await;
    assert!(env.data_dir().join("curbside.db").exists());
}
