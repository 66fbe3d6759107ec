//! `network_mappings`: which network of a target platform a network of a
//! source platform becomes at failover, per flow or as the default of the
//! platform pair (`flow_id` none).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "network_mappings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub source_platform_id: String,
    pub source_network: String,
    pub target_platform_id: String,
    pub target_network: String,
    /// A `MappingPurpose` word.
    pub purpose: String,
    pub flow_id: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub created_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
