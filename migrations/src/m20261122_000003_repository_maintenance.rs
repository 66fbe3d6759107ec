//! Repository maintenance: while `maintenance_reason` is set, new backups to
//! the repository are refused and queued ones wait.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Repositories {
    Table,
    MaintenanceReason,
    MaintenanceSince,
    MaintenanceBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER.
        for column in [
            ColumnDef::new(Repositories::MaintenanceReason).string().null().to_owned(),
            ColumnDef::new(Repositories::MaintenanceSince).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(Repositories::MaintenanceBy).string().null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Repositories::Table).add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Repositories::MaintenanceBy, Repositories::MaintenanceSince, Repositories::MaintenanceReason] {
            manager.alter_table(Table::alter().table(Repositories::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
