//! SeaORM entities, one file per catalog table. Enum-like columns hold the
//! words of the matching `shared_types` enums (`as_str` / `parse`).

pub mod alerts;
pub mod audit_log;
pub mod backup_locations;
pub mod backup_storage_locks;
pub mod backups;
pub mod flow_vms;
pub mod flows;
pub mod group_policies;
pub mod instant_recoveries;
pub mod job_logs;
pub mod job_samples;
pub mod jobs;
pub mod network_mappings;
pub mod networks;
pub mod notification_deliveries;
pub mod notification_targets;
pub mod platforms;
pub mod policies;
pub mod protection_groups;
pub mod replication_flows;
pub mod repositories;
pub mod sessions;
pub mod settings;
pub mod users;
pub mod vm_contexts;
pub mod vm_disks;
pub mod vm_nics;
