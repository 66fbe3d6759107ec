//! The inventory: `platforms` (hosts and other endpoints the server reaches),
//! their `networks`, `protection_groups`, and the managed VMs
//! (`vm_contexts`) with their `vm_disks` and `vm_nics`.

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Platforms {
    Table,
    Id,
    Name,
    Kind,
    Address,
    Status,
    LastDiscoveryAt,
    LastError,
    DiscoveredVms,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Networks {
    Table,
    Id,
    PlatformId,
    Name,
    Bridge,
    Cidr,
}

#[derive(DeriveIden)]
pub(crate) enum ProtectionGroups {
    Table,
    Id,
    Name,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum VmContexts {
    Table,
    Id,
    PlatformId,
    PlatformVmId,
    Name,
    Vcpus,
    MemoryMib,
    Power,
    Os,
    Firmware,
    Role,
    CapacityBytes,
    GroupId,
    Status,
    CreatedAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum VmDisks {
    Table,
    Id,
    VmContextId,
    Name,
    CapacityBytes,
    AllocatedBytes,
    Format,
    Cbt,
}

#[derive(DeriveIden)]
enum VmNics {
    Table,
    Id,
    VmContextId,
    Mac,
    Network,
    Model,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Platforms::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Platforms::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Platforms::Name).string_len(128).not_null())
                    .col(ColumnDef::new(Platforms::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Platforms::Address).string_len(1024).not_null())
                    .col(ColumnDef::new(Platforms::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Platforms::LastDiscoveryAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Platforms::LastError).text().null())
                    .col(ColumnDef::new(Platforms::DiscoveredVms).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Platforms::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Platforms::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_platforms_name", Platforms::Table, [Platforms::Name])).await?;
        manager
            .create_index(unique_index("idx_platforms_kind_address", Platforms::Table, [Platforms::Kind, Platforms::Address]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Networks::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Networks::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Networks::PlatformId).string_len(36).not_null())
                    .col(ColumnDef::new(Networks::Name).string_len(255).not_null())
                    .col(ColumnDef::new(Networks::Bridge).string_len(255).null())
                    .col(ColumnDef::new(Networks::Cidr).string_len(64).null())
                    .foreign_key(&mut fk("fk_networks_platform", Networks::Table, Networks::PlatformId, Platforms::Table, Platforms::Id, ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index("idx_networks_platform_name", Networks::Table, [Networks::PlatformId, Networks::Name]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProtectionGroups::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ProtectionGroups::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(ProtectionGroups::Name).string_len(128).not_null())
                    .col(ColumnDef::new(ProtectionGroups::Description).text().null())
                    .col(ColumnDef::new(ProtectionGroups::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(ProtectionGroups::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index("idx_protection_groups_name", ProtectionGroups::Table, [ProtectionGroups::Name]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VmContexts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(VmContexts::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(VmContexts::PlatformId).string_len(36).not_null())
                    .col(ColumnDef::new(VmContexts::PlatformVmId).string_len(255).not_null())
                    .col(ColumnDef::new(VmContexts::Name).string_len(255).not_null())
                    .col(ColumnDef::new(VmContexts::Vcpus).integer().not_null())
                    .col(ColumnDef::new(VmContexts::MemoryMib).big_integer().not_null())
                    .col(ColumnDef::new(VmContexts::Power).string_len(16).not_null())
                    .col(ColumnDef::new(VmContexts::Os).string_len(16).not_null())
                    .col(ColumnDef::new(VmContexts::Firmware).string_len(16).not_null())
                    .col(ColumnDef::new(VmContexts::Role).string_len(255).null())
                    .col(ColumnDef::new(VmContexts::CapacityBytes).big_integer().not_null())
                    .col(ColumnDef::new(VmContexts::GroupId).string_len(36).null())
                    .col(ColumnDef::new(VmContexts::Status).string_len(16).not_null())
                    .col(ColumnDef::new(VmContexts::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(VmContexts::LastSeenAt).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk("fk_vm_contexts_platform", VmContexts::Table, VmContexts::PlatformId, Platforms::Table, Platforms::Id, ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("fk_vm_contexts_group", VmContexts::Table, VmContexts::GroupId, ProtectionGroups::Table, ProtectionGroups::Id, ForeignKeyAction::SetNull))
                    .to_owned(),
            )
            .await?;
        // One context per platform VM: bulk add stays idempotent under concurrency.
        manager
            .create_index(unique_index(
                "idx_vm_contexts_platform_vm",
                VmContexts::Table,
                [VmContexts::PlatformId, VmContexts::PlatformVmId],
            ))
            .await?;
        manager.create_index(index("idx_vm_contexts_group", VmContexts::Table, [VmContexts::GroupId])).await?;
        manager.create_index(index("idx_vm_contexts_name", VmContexts::Table, [VmContexts::Name, VmContexts::Id])).await?;
        manager.create_index(index("idx_vm_contexts_status", VmContexts::Table, [VmContexts::Status])).await?;

        manager
            .create_table(
                Table::create()
                    .table(VmDisks::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(VmDisks::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(VmDisks::VmContextId).string_len(36).not_null())
                    .col(ColumnDef::new(VmDisks::Name).string_len(255).not_null())
                    .col(ColumnDef::new(VmDisks::CapacityBytes).big_integer().not_null())
                    .col(ColumnDef::new(VmDisks::AllocatedBytes).big_integer().not_null())
                    .col(ColumnDef::new(VmDisks::Format).string_len(16).not_null())
                    .col(ColumnDef::new(VmDisks::Cbt).boolean().not_null())
                    .foreign_key(&mut fk("fk_vm_disks_vm", VmDisks::Table, VmDisks::VmContextId, VmContexts::Table, VmContexts::Id, ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_vm_disks_vm_name", VmDisks::Table, [VmDisks::VmContextId, VmDisks::Name])).await?;

        manager
            .create_table(
                Table::create()
                    .table(VmNics::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(VmNics::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(VmNics::VmContextId).string_len(36).not_null())
                    .col(ColumnDef::new(VmNics::Mac).string_len(64).not_null())
                    .col(ColumnDef::new(VmNics::Network).string_len(255).not_null())
                    .col(ColumnDef::new(VmNics::Model).string_len(64).not_null())
                    .foreign_key(&mut fk("fk_vm_nics_vm", VmNics::Table, VmNics::VmContextId, VmContexts::Table, VmContexts::Id, ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_vm_nics_vm", VmNics::Table, [VmNics::VmContextId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            VmNics::Table.into_iden(),
            VmDisks::Table.into_iden(),
            VmContexts::Table.into_iden(),
            ProtectionGroups::Table.into_iden(),
            Networks::Table.into_iden(),
            Platforms::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
