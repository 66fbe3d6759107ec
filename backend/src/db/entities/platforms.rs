//! `platforms`: platforms the server reaches (a KVM host by its directory).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "platforms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    /// A `PlatformKind` word.
    pub kind: String,
    /// The host directory of a KVM host.
    pub address: String,
    /// A `PlatformStatus` word.
    pub status: String,
    pub last_discovery_at: Option<ChronoDateTimeUtc>,
    pub last_error: Option<String>,
    pub discovered_vms: i64,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
