//! `notification_targets`: webhooks and SMTP mailboxes alerts are sent to.
//! `config` is the kind's settings as JSON (no secret); `secret` is sealed
//! with the catalog's secret key (`alerts::secrets`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_targets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    /// A `TargetKind` word.
    pub kind: String,
    pub enabled: bool,
    /// An `AlertSeverity` word.
    pub min_severity: String,
    pub config: String,
    pub secret: Option<String>,
    pub last_at: Option<ChronoDateTimeUtc>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub last_event: Option<String>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
