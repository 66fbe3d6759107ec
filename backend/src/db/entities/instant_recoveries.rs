//! `instant_recoveries`: a VM running on a host straight from a restore
//! point, and what finds it again after a restart.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instant_recoveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub backup_id: String,
    pub vm_context_id: String,
    pub repository_id: String,
    pub target_platform_id: String,
    /// The VM's name on the target.
    pub name: String,
    /// The VM's id on the target, once defined.
    pub vm_id: Option<String>,
    /// An `InstantState` word.
    pub state: String,
    /// `InstantOptions` as JSON.
    pub options: String,
    /// The folder of the VM's disk overlays on the target.
    pub dir: Option<String>,
    /// The export process's socket and pid.
    pub socket: String,
    pub export_pid: Option<i64>,
    pub up_ms: Option<i64>,
    pub boot_line: Option<String>,
    pub finalize_done: i64,
    pub finalize_total: i64,
    pub error: Option<String>,
    /// The latest job (start or finalize).
    pub job_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    pub finalized_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
