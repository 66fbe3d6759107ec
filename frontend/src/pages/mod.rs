//! One file per page. Pages whose features have not shipped use `planned`.

pub mod alerts;
pub mod assets;
pub mod audit;
pub mod command;
pub mod flows;
pub mod networks;
pub mod notifications;
pub mod not_found;
pub mod planned;
pub mod platforms;
pub mod policies;
pub mod recovery;
pub mod reports;
pub mod repositories;
pub mod repository_setup;
pub mod schedules;
pub mod server_settings;
pub mod sign_in;
pub mod systems;
pub mod telemetry;
pub mod users;
