//! `backup_locations`: the repositories a restore point is in (its primary
//! and its 3-2-1 copies), each with the snapshot's id and immutability there.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_locations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub backup_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub repository_id: String,
    /// A `LocationRole` word.
    pub role: String,
    /// A `LocationState` word.
    pub state: String,
    pub snapshot_name: String,
    pub snapshot_id: String,
    pub immutable_until: Option<ChronoDateTimeUtc>,
    /// When the copy completed (copies).
    pub copied_at: Option<ChronoDateTimeUtc>,
    /// Bytes sent to this repository (the copy's new chunks; the backup's written bytes for the primary).
    pub bytes_sent: i64,
    /// The job that wrote it here.
    pub job_id: Option<String>,
    /// Why the copy failed or why it is missing.
    pub error: Option<String>,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
