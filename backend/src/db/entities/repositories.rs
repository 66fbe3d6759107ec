//! `repositories`: where backups live.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repositories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    /// A `RepositoryKind` word.
    pub kind: String,
    /// The directory of a local repository.
    pub path: String,
    pub created_at: ChronoDateTimeUtc,
    /// Set while the repository is in maintenance (see `shared_types::repositories::Maintenance`).
    pub maintenance_reason: Option<String>,
    pub maintenance_since: Option<ChronoDateTimeUtc>,
    pub maintenance_by: Option<String>,
    /// Cron pattern of scheduled verifies: NULL = the default, empty = off.
    pub verify_schedule: Option<String>,
    /// Cron pattern of scheduled GC: NULL = the default, empty = off.
    pub gc_schedule: Option<String>,
    pub last_verify_at: Option<ChronoDateTimeUtc>,
    /// A `VerifyOutcome` word: `ok`, `damaged` (some restore point was) or `failed`.
    pub last_verify_status: Option<String>,
    pub last_verify_damaged: Option<i64>,
    pub last_gc_at: Option<ChronoDateTimeUtc>,
    pub last_gc_reclaimed_bytes: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
