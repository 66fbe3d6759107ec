//! `vm_nics`: the network interfaces of managed VMs.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vm_nics")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub vm_context_id: String,
    pub mac: String,
    pub network: String,
    pub model: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
