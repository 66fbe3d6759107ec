//! SeaORM entities, one file per catalog table.

pub mod audit_log;
pub mod sessions;
pub mod settings;
pub mod users;
