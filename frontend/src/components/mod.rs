//! The cockpit shell's parts and small reusable instruments.

pub mod alerts;
pub mod bottom_nav;
pub mod context_panel;
pub mod instrument_panel;
pub mod instruments;
pub mod layout;
pub mod line_chart;
pub mod modal;
pub mod quick_actions;
pub mod require_role;
pub mod status_bar;
pub mod top_bar;
