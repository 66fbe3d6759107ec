//! Network mapping for failover: `networks` learn their VLAN and whether
//! they are isolated (no uplink, for test failovers), and
//! `network_mappings` records which network of a target platform each
//! network of a source platform becomes, per flow or as the default of the
//! platform pair (`flow_id` null), for a live failover or a test.
//!
//! Networks are named, not referenced by row: discovery replaces a
//! platform's `networks` rows, the names stay. `flow_id` has no foreign key:
//! backup flows live in `flows`, replication flows may live elsewhere; the
//! server checks it and removes a flow's mappings with the flow.

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index, unique_index};
use crate::m20261122_000001_inventory::Platforms;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Networks {
    Table,
    Vlan,
    Isolated,
}

#[derive(DeriveIden)]
enum NetworkMappings {
    Table,
    Id,
    SourcePlatformId,
    SourceNetwork,
    TargetPlatformId,
    TargetNetwork,
    Purpose,
    FlowId,
    CreatedAt,
    CreatedBy,
}

const UNIQUE_DEFAULT: &str = "idx_network_mappings_default_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER.
        // Re-applying is a no-op: the migration table records this one.
        for column in [
            ColumnDef::new(Networks::Vlan).integer().null().to_owned(),
            ColumnDef::new(Networks::Isolated).boolean().not_null().default(false).to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Networks::Table).add_column(&mut column).to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(NetworkMappings::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(NetworkMappings::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(NetworkMappings::SourcePlatformId).string_len(36).not_null())
                    .col(ColumnDef::new(NetworkMappings::SourceNetwork).string_len(255).not_null())
                    .col(ColumnDef::new(NetworkMappings::TargetPlatformId).string_len(36).not_null())
                    .col(ColumnDef::new(NetworkMappings::TargetNetwork).string_len(255).not_null())
                    .col(ColumnDef::new(NetworkMappings::Purpose).string_len(16).not_null())
                    .col(ColumnDef::new(NetworkMappings::FlowId).string_len(36).null())
                    .col(ColumnDef::new(NetworkMappings::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(NetworkMappings::CreatedBy).string_len(128).null())
                    .foreign_key(&mut fk(
                        "fk_network_mappings_source_platform",
                        NetworkMappings::Table,
                        NetworkMappings::SourcePlatformId,
                        Platforms::Table,
                        Platforms::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_network_mappings_target_platform",
                        NetworkMappings::Table,
                        NetworkMappings::TargetPlatformId,
                        Platforms::Table,
                        Platforms::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // One mapping per key. NULLs are distinct in a unique index on both
        // engines, so this one holds for flow mappings only ...
        manager
            .create_index(unique_index(
                "idx_network_mappings_key",
                NetworkMappings::Table,
                [
                    NetworkMappings::SourcePlatformId,
                    NetworkMappings::SourceNetwork,
                    NetworkMappings::TargetPlatformId,
                    NetworkMappings::Purpose,
                    NetworkMappings::FlowId,
                ],
            ))
            .await?;
        // ... and a partial index holds the defaults (flow_id null). SeaQuery
        // 0.32 builds no partial index; this statement is the same on
        // SQLite and PostgreSQL (tests/apply.rs runs both).
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {UNIQUE_DEFAULT} ON network_mappings \
                 (source_platform_id, source_network, target_platform_id, purpose) WHERE flow_id IS NULL"
            ))
            .await?;
        manager.create_index(index("idx_network_mappings_target", NetworkMappings::Table, [NetworkMappings::TargetPlatformId])).await?;
        manager.create_index(index("idx_network_mappings_flow", NetworkMappings::Table, [NetworkMappings::FlowId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(NetworkMappings::Table).to_owned()).await?;
        for column in [Networks::Isolated, Networks::Vlan] {
            manager.alter_table(Table::alter().table(Networks::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
