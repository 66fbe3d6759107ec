//! Logs and live system figures.

pub mod logging;
pub mod metrics;
pub mod system;
