//! `audit_log`: who did what, to what, when, and how it ended.

use sea_orm::entity::prelude::*;
use shared_types::audit::AuditEntry;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: ChronoDateTimeUtc,
    pub actor: Option<String>,
    pub action: String,
    pub target: String,
    pub result: String,
    pub status: i32,
    pub address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for AuditEntry {
    fn from(m: Model) -> Self {
        AuditEntry {
            id: m.id,
            at: m.at,
            actor: m.actor,
            action: m.action,
            target: m.target,
            result: m.result,
            status: u16::try_from(m.status).unwrap_or(0),
            address: m.address,
        }
    }
}
