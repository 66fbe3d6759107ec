//! Policies (`policies`: retention in JSON, immutability days, whether an
//! encrypted repository is required, a verify schedule), the policy a flow
//! follows (`flows.policy_id`, no foreign key: SQLite cannot add one to an
//! existing table; the API refuses to remove a policy in use) and the policy
//! a protection group gives its flows (`group_policies`, removed with the group).

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index, unique_index};
use crate::m20261122_000001_inventory::ProtectionGroups;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    Name,
    Description,
    Retention,
    ImmutableDays,
    RequireEncryption,
    VerifySchedule,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Flows {
    Table,
    PolicyId,
}

#[derive(DeriveIden)]
enum GroupPolicies {
    Table,
    GroupId,
    PolicyId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Policies::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Policies::Name).string_len(255).not_null())
                    .col(ColumnDef::new(Policies::Description).text().null())
                    .col(ColumnDef::new(Policies::Retention).text().not_null())
                    .col(ColumnDef::new(Policies::ImmutableDays).integer().not_null().default(0))
                    .col(ColumnDef::new(Policies::RequireEncryption).boolean().not_null().default(false))
                    .col(ColumnDef::new(Policies::VerifySchedule).string_len(255).null())
                    .col(ColumnDef::new(Policies::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Policies::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_policies_name", Policies::Table, [Policies::Name])).await?;
        let mut column = ColumnDef::new(Flows::PolicyId).string_len(36).null().to_owned();
        manager.alter_table(Table::alter().table(Flows::Table).add_column(&mut column).to_owned()).await?;
        manager.create_index(index("idx_flows_policy", Flows::Table, [Flows::PolicyId])).await?;
        manager
            .create_table(
                Table::create()
                    .table(GroupPolicies::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(GroupPolicies::GroupId).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(GroupPolicies::PolicyId).string_len(36).not_null())
                    .foreign_key(&mut fk(
                        "fk_group_policies_group",
                        GroupPolicies::Table,
                        GroupPolicies::GroupId,
                        ProtectionGroups::Table,
                        ProtectionGroups::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_group_policies_policy",
                        GroupPolicies::Table,
                        GroupPolicies::PolicyId,
                        Policies::Table,
                        Policies::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_group_policies_policy", GroupPolicies::Table, [GroupPolicies::PolicyId])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(GroupPolicies::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_flows_policy").table(Flows::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Flows::Table).drop_column(Flows::PolicyId).to_owned()).await?;
        manager.drop_table(Table::drop().table(Policies::Table).to_owned()).await
    }
}
