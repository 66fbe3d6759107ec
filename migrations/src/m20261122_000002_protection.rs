//! Protection: `repositories`, `flows` (with the VMs of VM-sourced flows in
//! `flow_vms`), `jobs` with their `job_samples` and `job_logs`, and
//! `backups` (restore points, by their snapshot in a repository).

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index, unique_index};
use crate::m20261122_000001_inventory::{ProtectionGroups, VmContexts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Repositories {
    Table,
    Id,
    Name,
    Kind,
    Path,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Flows {
    Table,
    Id,
    Name,
    Kind,
    GroupId,
    RepositoryId,
    Schedule,
    Retention,
    ImmutableDays,
    Enabled,
    State,
    LastRunAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FlowVms {
    Table,
    FlowId,
    VmContextId,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    FlowId,
    VmContextId,
    RepositoryId,
    Kind,
    BackupType,
    Status,
    Priority,
    BytesTotal,
    BytesRead,
    BytesWritten,
    Error,
    RequestedBy,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum JobSamples {
    Table,
    Id,
    JobId,
    At,
    BytesRead,
    BytesWritten,
    ThroughputBps,
}

#[derive(DeriveIden)]
enum JobLogs {
    Table,
    Id,
    JobId,
    At,
    Level,
    Message,
}

#[derive(DeriveIden)]
enum Backups {
    Table,
    Id,
    VmContextId,
    JobId,
    RepositoryId,
    SnapshotName,
    SnapshotId,
    ParentSnapshotId,
    BackupType,
    Status,
    LogicalBytes,
    BytesRead,
    BytesWritten,
    CreatedAt,
    ImmutableUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Repositories::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Repositories::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Repositories::Name).string_len(128).not_null())
                    .col(ColumnDef::new(Repositories::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Repositories::Path).string_len(1024).not_null())
                    .col(ColumnDef::new(Repositories::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_repositories_name", Repositories::Table, [Repositories::Name])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Flows::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Flows::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Flows::Name).string_len(128).not_null())
                    .col(ColumnDef::new(Flows::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Flows::GroupId).string_len(36).null())
                    .col(ColumnDef::new(Flows::RepositoryId).string_len(36).not_null())
                    .col(ColumnDef::new(Flows::Schedule).string_len(255).null())
                    .col(ColumnDef::new(Flows::Retention).text().not_null())
                    .col(ColumnDef::new(Flows::ImmutableDays).integer().not_null().default(0))
                    .col(ColumnDef::new(Flows::Enabled).boolean().not_null().default(true))
                    .col(ColumnDef::new(Flows::State).string_len(16).not_null())
                    .col(ColumnDef::new(Flows::LastRunAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Flows::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Flows::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk("fk_flows_group", Flows::Table, Flows::GroupId, ProtectionGroups::Table, ProtectionGroups::Id, ForeignKeyAction::Restrict))
                    .foreign_key(&mut fk("fk_flows_repository", Flows::Table, Flows::RepositoryId, Repositories::Table, Repositories::Id, ForeignKeyAction::Restrict))
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_flows_name", Flows::Table, [Flows::Name])).await?;
        manager.create_index(index("idx_flows_group", Flows::Table, [Flows::GroupId])).await?;
        manager.create_index(index("idx_flows_repository", Flows::Table, [Flows::RepositoryId])).await?;
        manager.create_index(index("idx_flows_state", Flows::Table, [Flows::State])).await?;

        manager
            .create_table(
                Table::create()
                    .table(FlowVms::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(FlowVms::FlowId).string_len(36).not_null())
                    .col(ColumnDef::new(FlowVms::VmContextId).string_len(36).not_null())
                    .primary_key(Index::create().col(FlowVms::FlowId).col(FlowVms::VmContextId))
                    .foreign_key(&mut fk("fk_flow_vms_flow", FlowVms::Table, FlowVms::FlowId, Flows::Table, Flows::Id, ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("fk_flow_vms_vm", FlowVms::Table, FlowVms::VmContextId, VmContexts::Table, VmContexts::Id, ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_flow_vms_vm", FlowVms::Table, [FlowVms::VmContextId])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Jobs::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Jobs::FlowId).string_len(36).null())
                    .col(ColumnDef::new(Jobs::VmContextId).string_len(36).not_null())
                    .col(ColumnDef::new(Jobs::RepositoryId).string_len(36).null())
                    .col(ColumnDef::new(Jobs::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::BackupType).string_len(16).null())
                    .col(ColumnDef::new(Jobs::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::Priority).integer().not_null().default(0))
                    .col(ColumnDef::new(Jobs::BytesTotal).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Jobs::BytesRead).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Jobs::BytesWritten).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Jobs::Error).text().null())
                    .col(ColumnDef::new(Jobs::RequestedBy).string_len(64).null())
                    .col(ColumnDef::new(Jobs::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Jobs::StartedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Jobs::FinishedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Jobs::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk("fk_jobs_flow", Jobs::Table, Jobs::FlowId, Flows::Table, Flows::Id, ForeignKeyAction::SetNull))
                    .foreign_key(&mut fk("fk_jobs_vm", Jobs::Table, Jobs::VmContextId, VmContexts::Table, VmContexts::Id, ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("fk_jobs_repository", Jobs::Table, Jobs::RepositoryId, Repositories::Table, Repositories::Id, ForeignKeyAction::SetNull))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_jobs_flow", Jobs::Table, [Jobs::FlowId])).await?;
        manager.create_index(index("idx_jobs_vm", Jobs::Table, [Jobs::VmContextId])).await?;
        manager.create_index(index("idx_jobs_repository", Jobs::Table, [Jobs::RepositoryId])).await?;
        manager.create_index(index("idx_jobs_status", Jobs::Table, [Jobs::Status])).await?;
        manager.create_index(index("idx_jobs_created", Jobs::Table, [Jobs::CreatedAt])).await?;

        manager
            .create_table(
                Table::create()
                    .table(JobSamples::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(JobSamples::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(JobSamples::JobId).string_len(36).not_null())
                    .col(ColumnDef::new(JobSamples::At).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(JobSamples::BytesRead).big_integer().not_null())
                    .col(ColumnDef::new(JobSamples::BytesWritten).big_integer().not_null())
                    .col(ColumnDef::new(JobSamples::ThroughputBps).big_integer().not_null())
                    .foreign_key(&mut fk("fk_job_samples_job", JobSamples::Table, JobSamples::JobId, Jobs::Table, Jobs::Id, ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_job_samples_job_at", JobSamples::Table, [JobSamples::JobId, JobSamples::At])).await?;

        manager
            .create_table(
                Table::create()
                    .table(JobLogs::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(JobLogs::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(JobLogs::JobId).string_len(36).not_null())
                    .col(ColumnDef::new(JobLogs::At).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(JobLogs::Level).string_len(8).not_null())
                    .col(ColumnDef::new(JobLogs::Message).text().not_null())
                    .foreign_key(&mut fk("fk_job_logs_job", JobLogs::Table, JobLogs::JobId, Jobs::Table, Jobs::Id, ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_job_logs_job", JobLogs::Table, [JobLogs::JobId, JobLogs::Id])).await?;

        manager
            .create_table(
                Table::create()
                    .table(Backups::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Backups::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Backups::VmContextId).string_len(36).not_null())
                    .col(ColumnDef::new(Backups::JobId).string_len(36).null())
                    .col(ColumnDef::new(Backups::RepositoryId).string_len(36).not_null())
                    .col(ColumnDef::new(Backups::SnapshotName).string_len(255).not_null())
                    .col(ColumnDef::new(Backups::SnapshotId).string_len(128).not_null())
                    .col(ColumnDef::new(Backups::ParentSnapshotId).string_len(128).null())
                    .col(ColumnDef::new(Backups::BackupType).string_len(16).not_null())
                    .col(ColumnDef::new(Backups::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Backups::LogicalBytes).big_integer().not_null())
                    .col(ColumnDef::new(Backups::BytesRead).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Backups::BytesWritten).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Backups::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Backups::ImmutableUntil).timestamp_with_time_zone().null())
                    // Restore points outlive neither their VM's record nor their repository's silently.
                    .foreign_key(&mut fk("fk_backups_vm", Backups::Table, Backups::VmContextId, VmContexts::Table, VmContexts::Id, ForeignKeyAction::Restrict))
                    .foreign_key(&mut fk("fk_backups_job", Backups::Table, Backups::JobId, Jobs::Table, Jobs::Id, ForeignKeyAction::SetNull))
                    .foreign_key(&mut fk("fk_backups_repository", Backups::Table, Backups::RepositoryId, Repositories::Table, Repositories::Id, ForeignKeyAction::Restrict))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "idx_backups_snapshot",
                Backups::Table,
                [Backups::RepositoryId, Backups::SnapshotName, Backups::SnapshotId],
            ))
            .await?;
        manager.create_index(index("idx_backups_vm_created", Backups::Table, [Backups::VmContextId, Backups::CreatedAt])).await?;
        manager.create_index(index("idx_backups_job", Backups::Table, [Backups::JobId])).await?;
        manager.create_index(index("idx_backups_created", Backups::Table, [Backups::CreatedAt])).await?;
        manager.create_index(index("idx_backups_type", Backups::Table, [Backups::BackupType])).await?;
        manager.create_index(index("idx_backups_status", Backups::Table, [Backups::Status])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Backups::Table.into_iden(),
            JobLogs::Table.into_iden(),
            JobSamples::Table.into_iden(),
            Jobs::Table.into_iden(),
            FlowVms::Table.into_iden(),
            Flows::Table.into_iden(),
            Repositories::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
