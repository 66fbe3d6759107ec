//! The server maintains what it stores.
//!
//! * `backups.verified_at` and `verify_reason` (what verify found wrong);
//!   the outcome itself is the restore point's `status` (`verified` /
//!   `corrupt`, a `BackupStatus` word).
//! * `repositories`: maintenance schedules (`verify_schedule`,
//!   `gc_schedule`: five-field cron patterns, NULL = the default, empty =
//!   off) and the outcome of the last verify and GC.
//! * `jobs.vm_context_id` becomes nullable: verify, GC and prune jobs belong
//!   to a repository, not to a VM. PostgreSQL drops the NOT NULL with
//!   `ALTER COLUMN`; SQLite cannot alter a column, so its stored table
//!   definition is edited the way SQLite documents for removing a NOT NULL
//!   constraint (ALTER TABLE, "making other kinds of table schema changes":
//!   `writable_schema`, bump `schema_version`, integrity check), inside one
//!   transaction. The rows on disk are unchanged by that edit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Backups {
    Table,
    VerifiedAt,
    VerifyReason,
}

#[derive(DeriveIden)]
enum Repositories {
    Table,
    VerifySchedule,
    GcSchedule,
    LastVerifyAt,
    LastVerifyStatus,
    LastVerifyDamaged,
    LastGcAt,
    LastGcReclaimedBytes,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    VmContextId,
}

/// How SeaQuery writes the column in SQLite's stored `CREATE TABLE jobs`.
const SQLITE_NOT_NULL: &str = "\"vm_context_id\" varchar(36) NOT NULL";
const SQLITE_NULLABLE: &str = "\"vm_context_id\" varchar(36)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER.
        for column in [
            ColumnDef::new(Backups::VerifiedAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Backups::VerifyReason).text().null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Backups::Table).add_column(&mut column).to_owned()).await?;
        }
        for column in [
            ColumnDef::new(Repositories::VerifySchedule).string_len(100).null().to_owned(),
            ColumnDef::new(Repositories::GcSchedule).string_len(100).null().to_owned(),
            ColumnDef::new(Repositories::LastVerifyAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Repositories::LastVerifyStatus).string_len(16).null().to_owned(),
            ColumnDef::new(Repositories::LastVerifyDamaged).big_integer().null().to_owned(),
            ColumnDef::new(Repositories::LastGcAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Repositories::LastGcReclaimedBytes).big_integer().null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Repositories::Table).add_column(&mut column).to_owned()).await?;
        }
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Sqlite => sqlite_drop_not_null(db).await,
            _ => {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Jobs::Table)
                            .modify_column(ColumnDef::new(Jobs::VmContextId).string_len(36).null())
                            .to_owned(),
                    )
                    .await
            }
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Forward-only for jobs.vm_context_id (repository jobs have none).
        for column in [Repositories::LastGcReclaimedBytes, Repositories::LastGcAt, Repositories::LastVerifyDamaged, Repositories::LastVerifyStatus, Repositories::LastVerifyAt, Repositories::GcSchedule, Repositories::VerifySchedule] {
            manager.alter_table(Table::alter().table(Repositories::Table).drop_column(column).to_owned()).await?;
        }
        for column in [Backups::VerifyReason, Backups::VerifiedAt] {
            manager.alter_table(Table::alter().table(Backups::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

/// SQLite's documented way to drop a NOT NULL constraint: edit the stored
/// definition in one transaction, bump the schema version so every
/// connection re-reads it, and check the database.
async fn sqlite_drop_not_null(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    let sql = |s: &str| Statement::from_string(DbBackend::Sqlite, s.to_owned());
    let txn = db.begin().await?;
    let row = txn
        .query_one(sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"))
        .await?
        .ok_or_else(|| DbErr::Migration("table jobs not found".into()))?;
    let table: String = row.try_get("", "sql")?;
    if !table.contains(SQLITE_NOT_NULL) {
        if table.contains(SQLITE_NULLABLE) {
            return txn.commit().await; // already nullable
        }
        return Err(DbErr::Migration(format!("unexpected definition of table jobs: {table}")));
    }
    let version: i64 = txn
        .query_one(sql("PRAGMA schema_version"))
        .await?
        .ok_or_else(|| DbErr::Migration("PRAGMA schema_version answered nothing".into()))?
        .try_get_by_index(0)?;
    txn.execute(sql("PRAGMA writable_schema = ON")).await?;
    let edit = Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'jobs'",
        [table.replacen(SQLITE_NOT_NULL, SQLITE_NULLABLE, 1).into()],
    );
    txn.execute(edit).await?;
    txn.execute(sql(&format!("PRAGMA schema_version = {}", version + 1))).await?;
    txn.execute(sql("PRAGMA writable_schema = OFF")).await?;
    let check: String = txn
        .query_one(sql("PRAGMA integrity_check"))
        .await?
        .ok_or_else(|| DbErr::Migration("PRAGMA integrity_check answered nothing".into()))?
        .try_get_by_index(0)?;
    if check != "ok" {
        return Err(DbErr::Migration(format!("integrity check after making jobs.vm_context_id nullable: {check}")));
    }
    txn.commit().await
}
