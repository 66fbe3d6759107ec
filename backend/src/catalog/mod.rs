//! The catalog's logic shared by the API and the job runner: turning rows
//! into API types, discovery (applying a platform's inventory to the managed
//! VMs), the managed-VM list with its backup aggregates, flow schedules and
//! state rules, repositories, recording restore points, network mapping
//! for failover (where each NIC lands on a target platform), and
//! replication flows.
//!
//! Enum-like columns hold the words of the `shared_types` enums; a word this
//! server does not know (written by a newer one) reads as a safe default.
//! Unsigned API figures are stored in signed 64-bit columns (PostgreSQL has
//! no unsigned types); [`to_i64`] and [`to_u64`] clamp at the boundary.

pub mod backup_locations;
pub mod backups;
pub mod compatibility;
pub mod convert;
pub mod fleet;
pub mod housekeeping;
pub mod index_caches;
pub mod flows;
pub mod inventory;
pub mod job_history;
pub mod power_watch;
pub mod network_mapping;
pub mod policies;
pub mod replication;
pub mod reports;
pub mod repositories;
pub mod repository_health;
pub mod repository_import;
pub mod repository_keys;
pub mod repository_setup;
pub mod schedule;
pub mod schedule_timeline;
pub mod search;
pub mod storage_locks;
pub mod undelete;
pub mod spec_files;
pub mod upkeep;
pub mod vm_list;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A unit enum's serde word (`PowerState::Running` → `running`).
pub fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => {
            tracing::error!(?other, "not a unit enum");
            String::new()
        }
    }
}

/// The enum named by a stored word, if this server knows it.
pub fn from_wire<T: DeserializeOwned>(word: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(word.to_owned())).ok()
}

pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A new row id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use shared_types::platform::PowerState;

    #[test]
    fn words_round_trip_and_unknown_words_are_none() {
        assert_eq!(super::wire(&PowerState::Suspended), "suspended");
        assert_eq!(super::from_wire::<PowerState>("running"), Some(PowerState::Running));
        assert_eq!(super::from_wire::<PowerState>("hibernating"), None);
        assert_eq!(super::to_i64(u64::MAX), i64::MAX);
        assert_eq!(super::to_u64(-5), 0);
    }
}

/// Id to name of every repository and of every platform, for figures that
/// name what they count.
pub async fn repository_and_platform_names(
    db: &sea_orm::DatabaseConnection,
) -> Result<(std::collections::HashMap<String, String>, std::collections::HashMap<String, String>), sea_orm::DbErr> {
    use sea_orm::{EntityTrait, QuerySelect};
    use crate::db::entities::{platforms, repositories};
    let repositories = repositories::Entity::find()
        .select_only()
        .column(repositories::Column::Id)
        .column(repositories::Column::Name)
        .into_tuple::<(String, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let platforms = platforms::Entity::find()
        .select_only()
        .column(platforms::Column::Id)
        .column(platforms::Column::Name)
        .into_tuple::<(String, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok((repositories, platforms))
}
