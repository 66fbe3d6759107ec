//! `replication_flows`: a VM kept as a replica on a target platform.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "replication_flows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub vm_context_id: String,
    pub target_platform_id: String,
    /// The replica VM's name on the target.
    pub replica_name: String,
    pub interval_seconds: i64,
    pub keep_points: i32,
    /// A `ReplicationState` word.
    pub state: String,
    pub failure_reason: Option<String>,
    /// The newest point's moment, as of the last job.
    pub last_consistent_at: Option<ChronoDateTimeUtc>,
    pub point_count: i32,
    /// The last sync's `SyncSummary` as JSON text.
    pub last_sync: Option<String>,
    pub test_vm_name: Option<String>,
    /// When the scheduler queues the next sync.
    pub next_sync_at: Option<ChronoDateTimeUtc>,
    /// When the missed-RPO alert last fired (once per missed stretch).
    pub rpo_alerted_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
