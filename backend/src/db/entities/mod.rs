//! SeaORM entities, one file per catalog table.

pub mod settings;
