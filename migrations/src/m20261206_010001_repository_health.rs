//! A repository's last storage failure (issue 18, a repository that fills
//! up or starts refusing writes): `repositories.storage_failure_at`,
//! `storage_failure_cause` (a `StorageFailureCause` word),
//! `storage_failure` (the storage's answer in words) and
//! `storage_failure_job` (the job that met it; NULL for a test). Set when a
//! backup fails at the storage or a test of the repository fails; cleared
//! by the next successful backup or copy to it, or a successful test. NULL:
//! no failure since the last good write.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Repositories {
    Table,
    StorageFailureAt,
    StorageFailureCause,
    StorageFailure,
    StorageFailureJob,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        let columns = [
            ColumnDef::new(Repositories::StorageFailureAt).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Repositories::StorageFailureCause).string_len(16).null().to_owned(),
            ColumnDef::new(Repositories::StorageFailure).text().null().to_owned(),
            ColumnDef::new(Repositories::StorageFailureJob).string_len(36).null().to_owned(),
        ];
        for mut c in columns {
            manager.alter_table(Table::alter().table(Repositories::Table).add_column(&mut c).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for c in [Repositories::StorageFailureAt, Repositories::StorageFailureCause, Repositories::StorageFailure, Repositories::StorageFailureJob] {
            manager.alter_table(Table::alter().table(Repositories::Table).drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
