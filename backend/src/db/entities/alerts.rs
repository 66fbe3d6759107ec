//! `alerts`: the alert center, one row per fold key (repeats counted).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub fold_key: String,
    /// An `AlertSeverity` word.
    pub severity: String,
    /// An `AlertSourceKind` word.
    pub source_kind: String,
    pub source_id: Option<String>,
    pub title: String,
    pub message: String,
    pub job_id: Option<String>,
    pub first_seen: ChronoDateTimeUtc,
    pub last_seen: ChronoDateTimeUtc,
    pub count: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<ChronoDateTimeUtc>,
    pub resolved_at: Option<ChronoDateTimeUtc>,
    pub resolution: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
