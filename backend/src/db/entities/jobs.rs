//! `jobs`: one run of work each, with the bytes it really moved.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub flow_id: Option<String>,
    /// The VM a backup, restore or replication job works on; none for a
    /// repository's verify, GC and prune jobs.
    pub vm_context_id: Option<String>,
    pub repository_id: Option<String>,
    /// A `JobKind` word.
    pub kind: String,
    /// A `BackupType` word, for backups.
    pub backup_type: Option<String>,
    /// A `JobStatus` word.
    pub status: String,
    pub priority: i32,
    pub bytes_total: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
    pub error: Option<String>,
    pub requested_by: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub started_at: Option<ChronoDateTimeUtc>,
    pub finished_at: Option<ChronoDateTimeUtc>,
    pub updated_at: ChronoDateTimeUtc,
    /// Restore jobs: the restore point restored.
    pub backup_id: Option<String>,
    /// Restore jobs: the platform written to.
    pub target_platform_id: Option<String>,
    /// Restore jobs: their options as JSON text (`runner::restore_job::RestoreOptions`).
    pub options: Option<String>,
    /// Replication jobs: the replication flow.
    pub replication_id: Option<String>,
    /// Replication jobs: a `ReplicationOperation` word.
    pub operation: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
