//! `flows`: standing protection relationships; a VM-sourced flow lists its VMs in `flow_vms`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    /// A `FlowKind` word.
    pub kind: String,
    /// Set when the source is a protection group.
    pub group_id: Option<String>,
    pub repository_id: String,
    /// A five-field cron pattern in UTC; none: manual runs only.
    pub schedule: Option<String>,
    /// A `RetentionPolicy` in JSON.
    pub retention: String,
    pub immutable_days: i32,
    /// The policy the flow follows (its retention and immutability are
    /// copied here whenever it is assigned or changes).
    pub policy_id: Option<String>,
    /// A `CopyTarget` in JSON (3-2-1): where each new restore point is copied.
    pub copy_target: Option<String>,
    pub enabled: bool,
    /// A `FlowState` word.
    pub state: String,
    pub last_run_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
