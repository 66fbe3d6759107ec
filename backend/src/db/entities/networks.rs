//! `networks`: networks a platform offers, as its last discovery reported them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "networks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub platform_id: String,
    pub name: String,
    pub bridge: Option<String>,
    pub cidr: Option<String>,
    /// 802.1Q VLAN id, when the platform reports one.
    pub vlan: Option<i32>,
    /// No uplink: for test failovers only.
    pub isolated: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
