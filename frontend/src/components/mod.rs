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
pub mod restore_wizard;
pub mod status_bar;
pub mod top_bar;
pub mod act;
pub mod add_vms;
pub mod create_flow;
pub mod file_browser;
pub mod flow_card;
pub mod flow_details;
pub mod groups;
pub mod job_controls;
pub mod job_panel;
pub mod start_backup;
pub mod throughput_graph;
pub mod vm_cells;
