//! `backups`: restore points, each one snapshot in a repository.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub vm_context_id: String,
    pub job_id: Option<String>,
    pub repository_id: String,
    pub snapshot_name: String,
    pub snapshot_id: String,
    pub parent_snapshot_id: Option<String>,
    /// A `BackupType` word.
    pub backup_type: String,
    /// A `BackupStatus` word (`verified` / `corrupt` once a verify job checked it).
    pub status: String,
    pub logical_bytes: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
    pub created_at: ChronoDateTimeUtc,
    pub immutable_until: Option<ChronoDateTimeUtc>,
    pub verified_at: Option<ChronoDateTimeUtc>,
    /// What verify found wrong (damaged restore points).
    pub verify_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
