//! `policies`: named protection rules that flows and groups follow (`shared_types::policies`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    pub description: Option<String>,
    /// A `RetentionPolicy` in JSON.
    pub retention: String,
    pub immutable_days: i32,
    pub require_encryption: bool,
    /// A five-field cron pattern in UTC; none: no verify schedule of its own.
    pub verify_schedule: Option<String>,
    /// A `CopyTarget` in JSON (3-2-1), given to the flows that follow the policy.
    pub copy_target: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
