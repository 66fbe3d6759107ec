//! `backup_storage_locks`: the retention the storage (S3 Object Lock)
//! reports on a restore point's manifest in a repository, as last read.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_storage_locks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub backup_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub repository_id: String,
    /// An `ObjectLockMode` word (`governance` / `compliance`).
    pub mode: String,
    /// The storage refuses to delete the manifest's version before this.
    pub locked_until: ChronoDateTimeUtc,
    /// When the storage was asked.
    pub checked_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
