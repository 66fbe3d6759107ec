//! Restore jobs: a `jobs` row of kind `restore` names the restore point it
//! restores (`backup_id`), the platform it writes to (`target_platform_id`)
//! and its options (`options`, the request as JSON text: name, format,
//! network mapping, power on). All nullable: backups leave them empty.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    BackupId,
    TargetPlatformId,
    Options,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER.
        for column in [
            ColumnDef::new(Jobs::BackupId).string().null().to_owned(),
            ColumnDef::new(Jobs::TargetPlatformId).string().null().to_owned(),
            ColumnDef::new(Jobs::Options).text().null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Jobs::Table).add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Jobs::Options, Jobs::TargetPlatformId, Jobs::BackupId] {
            manager.alter_table(Table::alter().table(Jobs::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
