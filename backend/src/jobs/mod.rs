//! Jobs that join a platform and the engine: back up a VM, restore a VM.
//! Both are blocking (run them on a thread); the server's job runner and the
//! CLI call the same functions.

pub mod command;
pub mod vm_backup;
pub mod vm_restore;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Platform(#[from] crate::platforms::PlatformError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("{what}: {source}")]
    Io { what: String, #[source] source: std::io::Error },
}
