//! The connectors' error type: every variant names the host, VM, disk or tool
//! it is about, so the API and the job log can show it as it is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("host directory '{path}': {reason}")]
    HostDir { path: PathBuf, reason: String },
    #[error("VM definition '{path}': {reason}")]
    Definition { path: PathBuf, reason: String },
    #[error("VM '{0}' not found on the host (was it deleted since discovery?)")]
    VmNotFound(String),
    #[error("VM '{vm}' has no disk '{disk}'")]
    DiskNotFound { vm: String, disk: String },
    #[error("VM '{vm}' is {power}: shut it down first (files are written only into the disks of a VM that is off)")]
    VmNotStopped { vm: String, power: String },
    #[error("disk '{disk}' of VM '{vm}' is in use by another job (a backup or a restore); try again when it ends")]
    DiskBusy { vm: String, disk: String },
    #[error("a VM named '{0}' already exists on the host")]
    VmExists(String),
    #[error("disk '{path}': {reason}")]
    Disk { path: PathBuf, reason: String },
    #[error("{tool} is not installed: sudo apt-get install {package}")]
    ToolMissing { tool: String, package: &'static str },
    #[error("{tool} {args} failed: {stderr}")]
    ToolFailed { tool: String, args: String, stderr: String },
    #[error("{tool} timed out after {seconds} s (killed; the limit is set with --tool-timeouts)")]
    ToolTimedOut { tool: String, seconds: u64 },
    #[error("{tool} was killed: its job was stopped")]
    ToolStopped { tool: String },
    #[error("{what}: {source}")]
    Io { what: String, #[source] source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = PlatformError> = std::result::Result<T, E>;

impl PlatformError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        PlatformError::Io { what: what.into(), source }
    }
}
