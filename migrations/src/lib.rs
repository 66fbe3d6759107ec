//! The catalog schema, one forward-only migration per file.
//!
//! Every migration must run on both SQLite (the embedded default) and
//! PostgreSQL: use SeaQuery's schema builders, never backend-specific SQL.
//! `tests/apply.rs` applies the whole list to a fresh database of each kind.

pub use sea_orm_migration::prelude::*;

mod helpers;
mod m20261121_000001_settings;
mod m20261121_000002_users_sessions_audit;
mod m20261122_000001_inventory;
mod m20261122_000002_protection;
mod m20261122_000003_repository_maintenance;
mod m20261122_000004_restore_jobs;
mod m20261123_000001_network_mapping;
mod m20261124_000001_replication;
mod m20261204_000005_maintenance;
mod m20261204_000006_power_since;
mod m20261205_000007_instant_recovery;
mod m20261205_000008_alerts;
mod m20261205_120001_policies;
mod m20261205_140001_repository_backends;
mod m20261205_180001_backup_copies;
mod m20261205_183001_storage_locks;
mod m20261206_010001_repository_health;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_settings::Migration),
            Box::new(m20261121_000002_users_sessions_audit::Migration),
            Box::new(m20261122_000001_inventory::Migration),
            Box::new(m20261122_000002_protection::Migration),
            Box::new(m20261122_000003_repository_maintenance::Migration),
            Box::new(m20261122_000004_restore_jobs::Migration),
            Box::new(m20261123_000001_network_mapping::Migration),
            Box::new(m20261124_000001_replication::Migration),
            Box::new(m20261204_000005_maintenance::Migration),
            Box::new(m20261204_000006_power_since::Migration),
            Box::new(m20261205_000007_instant_recovery::Migration),
            Box::new(m20261205_000008_alerts::Migration),
            Box::new(m20261205_120001_policies::Migration),
            Box::new(m20261205_140001_repository_backends::Migration),
            Box::new(m20261205_180001_backup_copies::Migration),
            Box::new(m20261205_183001_storage_locks::Migration),
            Box::new(m20261206_010001_repository_health::Migration),
        ]
    }
}
