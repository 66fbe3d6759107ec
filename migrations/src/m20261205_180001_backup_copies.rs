//! 3-2-1 copies: `backup_locations` says in which repositories each restore
//! point is (its primary, where the backup wrote it, and copies in second
//! repositories, each with its own snapshot id, immutability and state), and
//! a copy target (JSON `CopyTarget`) on flows and policies. Every existing
//! restore point gets its primary location.

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BackupLocations {
    Table,
    BackupId,
    RepositoryId,
    Role,
    State,
    SnapshotName,
    SnapshotId,
    ImmutableUntil,
    CopiedAt,
    BytesSent,
    JobId,
    Error,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Backups {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Flows {
    Table,
    CopyTarget,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    CopyTarget,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BackupLocations::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(BackupLocations::BackupId).string_len(36).not_null())
                    .col(ColumnDef::new(BackupLocations::RepositoryId).string_len(36).not_null())
                    .col(ColumnDef::new(BackupLocations::Role).string_len(16).not_null())
                    .col(ColumnDef::new(BackupLocations::State).string_len(16).not_null())
                    .col(ColumnDef::new(BackupLocations::SnapshotName).string_len(255).not_null())
                    .col(ColumnDef::new(BackupLocations::SnapshotId).string_len(255).not_null())
                    .col(ColumnDef::new(BackupLocations::ImmutableUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(BackupLocations::CopiedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(BackupLocations::BytesSent).big_integer().not_null().default(0))
                    .col(ColumnDef::new(BackupLocations::JobId).string_len(36).null())
                    .col(ColumnDef::new(BackupLocations::Error).text().null())
                    .col(ColumnDef::new(BackupLocations::UpdatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(BackupLocations::BackupId).col(BackupLocations::RepositoryId))
                    .foreign_key(&mut fk(
                        "fk_backup_locations_backup",
                        BackupLocations::Table,
                        BackupLocations::BackupId,
                        Backups::Table,
                        Backups::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_backup_locations_repository", BackupLocations::Table, [BackupLocations::RepositoryId])).await?;
        // The primary location of every restore point recorded so far.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO backup_locations (backup_id, repository_id, role, state, snapshot_name, snapshot_id, immutable_until, copied_at, bytes_sent, job_id, error, updated_at) \
                 SELECT id, repository_id, 'primary', 'present', snapshot_name, snapshot_id, immutable_until, NULL, bytes_written, job_id, NULL, created_at FROM backups",
            )
            .await?;
        let mut column = ColumnDef::new(Flows::CopyTarget).text().null().to_owned();
        manager.alter_table(Table::alter().table(Flows::Table).add_column(&mut column).to_owned()).await?;
        let mut column = ColumnDef::new(Policies::CopyTarget).text().null().to_owned();
        manager.alter_table(Table::alter().table(Policies::Table).add_column(&mut column).to_owned()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Policies::Table).drop_column(Policies::CopyTarget).to_owned()).await?;
        manager.alter_table(Table::alter().table(Flows::Table).drop_column(Flows::CopyTarget).to_owned()).await?;
        manager.drop_table(Table::drop().table(BackupLocations::Table).to_owned()).await
    }
}
