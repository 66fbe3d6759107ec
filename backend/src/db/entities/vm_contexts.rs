//! `vm_contexts`: managed VMs, the record groups, flows, jobs and backups hang off.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vm_contexts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub platform_id: String,
    /// The platform's id of the VM (a UUID on KVM).
    pub platform_vm_id: String,
    pub name: String,
    pub vcpus: i32,
    pub memory_mib: i64,
    /// A `PowerState` word.
    pub power: String,
    /// When the catalog saw that power state begin; `None`: unknown.
    pub power_since: Option<ChronoDateTimeUtc>,
    /// A `GuestOs` word.
    pub os: String,
    /// A `Firmware` word.
    pub firmware: String,
    pub role: Option<String>,
    pub capacity_bytes: i64,
    pub group_id: Option<String>,
    /// A `VmStatus` word.
    pub status: String,
    pub created_at: ChronoDateTimeUtc,
    pub last_seen_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
