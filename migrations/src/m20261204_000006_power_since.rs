//! `vm_contexts.power_since`: when the catalog saw the VM's power state
//! begin (a lifecycle event, a power action, a discovery that found it
//! changed). NULL: not seen change since the VM was added (its uptime is
//! unknown).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum VmContexts {
    Table,
    PowerSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut column = ColumnDef::new(VmContexts::PowerSince).timestamp_with_time_zone().null().to_owned();
        manager.alter_table(Table::alter().table(VmContexts::Table).add_column(&mut column).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(VmContexts::Table).drop_column(VmContexts::PowerSince).to_owned()).await
    }
}
