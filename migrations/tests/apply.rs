//! Applies every migration to a fresh SQLite file and to a real PostgreSQL
//! server started for the test, twice (the second run must be a no-op), and
//! checks the resulting schema.

mod support;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

async fn apply_and_check(db: &DatabaseConnection) {
    migrations::Migrator::up(db, None).await.expect("migrations apply");
    // Applying again is a no-op, not an error.
    migrations::Migrator::up(db, None).await.expect("migrations re-apply");
    let pending = migrations::Migrator::get_pending_migrations(db).await.expect("list pending");
    assert!(pending.is_empty(), "{} migrations still pending", pending.len());
    let applied = migrations::Migrator::get_applied_migrations(db).await.expect("list applied");
    assert_eq!(applied.len(), migrations::Migrator::migrations().len());

    // The settings table takes and returns a row.
    let backend = db.get_database_backend();
    let insert = Query::insert()
        .into_table(Alias::new("settings"))
        .columns([Alias::new("key"), Alias::new("value"), Alias::new("updated_at")])
        .values_panic(["probe".into(), "42".into(), Expr::current_timestamp().into()])
        .to_owned();
    db.execute(backend.build(&insert)).await.expect("insert into settings");
    let row = db
        .query_one(Statement::from_string(backend, "SELECT value FROM settings WHERE key = 'probe'"))
        .await
        .expect("select from settings")
        .expect("the row just inserted");
    let value: String = row.try_get("", "value").expect("value column");
    assert_eq!(value, "42");
    // The primary key holds.
    assert!(db.execute(backend.build(&insert)).await.is_err(), "duplicate key accepted");
}

#[tokio::test]
async fn migrations_apply_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("catalog.sqlite").display());
    let db = Database::connect(&url).await.expect("open sqlite");
    apply_and_check(&db).await;
}

#[tokio::test]
async fn migrations_apply_on_postgres() {
    let cluster = support::PgCluster::start().expect("start PostgreSQL for the test");
    let db = Database::connect(cluster.url()).await.expect("connect to PostgreSQL");
    apply_and_check(&db).await;
}
