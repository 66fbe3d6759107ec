//! `vm_disks`: the disks of managed VMs, as the last discovery reported them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vm_disks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub vm_context_id: String,
    pub name: String,
    pub capacity_bytes: i64,
    pub allocated_bytes: i64,
    /// A `DiskFormat` word.
    pub format: String,
    pub cbt: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
