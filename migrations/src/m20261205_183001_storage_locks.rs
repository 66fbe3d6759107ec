//! Restore points locked by the storage (issue 18, S3 Object Lock):
//! `backup_storage_locks` holds, per restore point and repository, the
//! retention the storage itself reports on the restore point's manifest
//! (mode and retain-until date, read with GetObjectRetention after the
//! backup and again by every verify), and when it was read. A restore point
//! without a row is immutable by Sendense alone (`backups.immutable_until`).

use sea_orm_migration::prelude::*;

use crate::helpers::fk;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BackupStorageLocks {
    Table,
    BackupId,
    RepositoryId,
    Mode,
    LockedUntil,
    CheckedAt,
}

#[derive(DeriveIden)]
enum Backups {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BackupStorageLocks::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(BackupStorageLocks::BackupId).string_len(36).not_null())
                    .col(ColumnDef::new(BackupStorageLocks::RepositoryId).string_len(36).not_null())
                    .col(ColumnDef::new(BackupStorageLocks::Mode).string_len(16).not_null())
                    .col(ColumnDef::new(BackupStorageLocks::LockedUntil).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(BackupStorageLocks::CheckedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(BackupStorageLocks::BackupId).col(BackupStorageLocks::RepositoryId))
                    .foreign_key(&mut fk(
                        "fk_backup_storage_locks_backup",
                        BackupStorageLocks::Table,
                        BackupStorageLocks::BackupId,
                        Backups::Table,
                        Backups::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(BackupStorageLocks::Table).to_owned()).await
    }
}
