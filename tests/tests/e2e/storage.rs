//! Storage set-up: migrations on both backends, SQLite's durability settings.

use curbside_server::config::DatabaseUrl;
use curbside_server::db::Database;
use curbside_tests::{Backend, TestEnv, backend_tests};
use sqlx::Connection;

backend_tests!(migrations_run_once_and_the_installation_id_is_stable);

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
