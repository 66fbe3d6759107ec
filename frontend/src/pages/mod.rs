//! One file per page. Pages whose features have not shipped use `planned`.

pub mod command;
pub mod not_found;
pub mod planned;
pub mod systems;
pub mod telemetry;
