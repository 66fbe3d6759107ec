//! Logs and live system figures.

pub mod logging;
pub mod system;
