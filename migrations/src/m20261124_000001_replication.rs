//! Replication flows: `replication_flows` (a VM of a source platform kept as
//! a replica on a target platform, its interval, points kept, state and the
//! figures of its replica as of its last job), and `jobs` learn which
//! replication flow and which operation (sync, failover...) they run.
//!
//! The replica's restore points live on the target host with the replica
//! (`replica.json`, the truth after a crash); the flow row mirrors their
//! count and the newest point's moment after every job, for lists and lag.

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index, unique_index};
use crate::m20261122_000001_inventory::{Platforms, VmContexts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReplicationFlows {
    Table,
    Id,
    Name,
    VmContextId,
    TargetPlatformId,
    ReplicaName,
    IntervalSeconds,
    KeepPoints,
    State,
    FailureReason,
    LastConsistentAt,
    PointCount,
    LastSync,
    TestVmName,
    NextSyncAt,
    RpoAlertedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    ReplicationId,
    Operation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReplicationFlows::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ReplicationFlows::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(ReplicationFlows::Name).string_len(128).not_null())
                    .col(ColumnDef::new(ReplicationFlows::VmContextId).string_len(36).not_null())
                    .col(ColumnDef::new(ReplicationFlows::TargetPlatformId).string_len(36).not_null())
                    .col(ColumnDef::new(ReplicationFlows::ReplicaName).string_len(255).not_null())
                    .col(ColumnDef::new(ReplicationFlows::IntervalSeconds).big_integer().not_null())
                    .col(ColumnDef::new(ReplicationFlows::KeepPoints).integer().not_null())
                    .col(ColumnDef::new(ReplicationFlows::State).string_len(16).not_null())
                    .col(ColumnDef::new(ReplicationFlows::FailureReason).text().null())
                    .col(ColumnDef::new(ReplicationFlows::LastConsistentAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(ReplicationFlows::PointCount).integer().not_null().default(0))
                    .col(ColumnDef::new(ReplicationFlows::LastSync).text().null())
                    .col(ColumnDef::new(ReplicationFlows::TestVmName).string_len(255).null())
                    .col(ColumnDef::new(ReplicationFlows::NextSyncAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(ReplicationFlows::RpoAlertedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(ReplicationFlows::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(ReplicationFlows::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk(
                        "fk_replication_flows_vm",
                        ReplicationFlows::Table,
                        ReplicationFlows::VmContextId,
                        VmContexts::Table,
                        VmContexts::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_replication_flows_target",
                        ReplicationFlows::Table,
                        ReplicationFlows::TargetPlatformId,
                        Platforms::Table,
                        Platforms::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_replication_flows_name", ReplicationFlows::Table, [ReplicationFlows::Name])).await?;
        // One replica per VM and target.
        manager
            .create_index(unique_index(
                "idx_replication_flows_vm_target",
                ReplicationFlows::Table,
                [ReplicationFlows::VmContextId, ReplicationFlows::TargetPlatformId],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "idx_replication_flows_replica",
                ReplicationFlows::Table,
                [ReplicationFlows::TargetPlatformId, ReplicationFlows::ReplicaName],
            ))
            .await?;
        // One column per statement: SQLite adds a single column per ALTER.
        for column in [
            ColumnDef::new(Jobs::ReplicationId).string_len(36).null().to_owned(),
            ColumnDef::new(Jobs::Operation).string_len(16).null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Jobs::Table).add_column(&mut column).to_owned()).await?;
        }
        manager.create_index(index("idx_jobs_replication", Jobs::Table, [Jobs::ReplicationId])).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_jobs_replication").table(Jobs::Table).to_owned()).await?;
        for column in [Jobs::Operation, Jobs::ReplicationId] {
            manager.alter_table(Table::alter().table(Jobs::Table).drop_column(column).to_owned()).await?;
        }
        manager.drop_table(Table::drop().table(ReplicationFlows::Table).to_owned()).await
    }
}
