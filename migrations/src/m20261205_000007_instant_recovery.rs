//! `instant_recoveries`: VMs running on a target host straight from a
//! restore point (instant recovery) and what Sendense needs to find them
//! again after a restart: the VM's platform id, its overlay folder, the
//! export process (pid, socket) serving the restore point, the state
//! (starting, running, finalizing, finalized, failed) and the measured
//! figures (time to the guest's boot line, finalize progress). No foreign
//! keys: a finalized row is history and must not hold its restore point
//! or platform; the restore point is held by the repository's pin while
//! the export runs.

use sea_orm_migration::prelude::*;

use crate::helpers::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InstantRecoveries {
    Table,
    Id,
    BackupId,
    VmContextId,
    RepositoryId,
    TargetPlatformId,
    Name,
    VmId,
    State,
    Options,
    Dir,
    Socket,
    ExportPid,
    UpMs,
    BootLine,
    FinalizeDone,
    FinalizeTotal,
    Error,
    JobId,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinalizedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InstantRecoveries::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(InstantRecoveries::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(InstantRecoveries::BackupId).string_len(36).not_null())
                    .col(ColumnDef::new(InstantRecoveries::VmContextId).string_len(36).not_null())
                    .col(ColumnDef::new(InstantRecoveries::RepositoryId).string_len(36).not_null())
                    .col(ColumnDef::new(InstantRecoveries::TargetPlatformId).string_len(36).not_null())
                    .col(ColumnDef::new(InstantRecoveries::Name).string_len(255).not_null())
                    .col(ColumnDef::new(InstantRecoveries::VmId).string_len(255).null())
                    .col(ColumnDef::new(InstantRecoveries::State).string_len(16).not_null())
                    .col(ColumnDef::new(InstantRecoveries::Options).text().not_null())
                    .col(ColumnDef::new(InstantRecoveries::Dir).text().null())
                    .col(ColumnDef::new(InstantRecoveries::Socket).text().not_null())
                    .col(ColumnDef::new(InstantRecoveries::ExportPid).big_integer().null())
                    .col(ColumnDef::new(InstantRecoveries::UpMs).big_integer().null())
                    .col(ColumnDef::new(InstantRecoveries::BootLine).text().null())
                    .col(ColumnDef::new(InstantRecoveries::FinalizeDone).big_integer().not_null().default(0))
                    .col(ColumnDef::new(InstantRecoveries::FinalizeTotal).big_integer().not_null().default(0))
                    .col(ColumnDef::new(InstantRecoveries::Error).text().null())
                    .col(ColumnDef::new(InstantRecoveries::JobId).string_len(36).null())
                    .col(ColumnDef::new(InstantRecoveries::CreatedBy).string_len(255).null())
                    .col(ColumnDef::new(InstantRecoveries::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(InstantRecoveries::UpdatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(InstantRecoveries::FinalizedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_instant_recoveries_backup", InstantRecoveries::Table, [InstantRecoveries::BackupId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(InstantRecoveries::Table).to_owned()).await
    }
}
