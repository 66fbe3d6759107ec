//! Restore: file-level sessions on restore points (`sessions`), read
//! through the engine's random-access snapshot reader and `guest-fs`, and
//! restoring selected files of a session (`file_restore`: the selection and
//! the conflict policy) into a directory on the server's host
//! (`to_directory`) or into a VM's disk (`into_disk`, planned by
//! `guest_plan`, written by `guest_tools`), and instant recovery
//! (`instant`: a VM booted from a restore point served over NBD by an
//! `export_process`).

pub mod export_process;
pub mod file_restore;
pub mod guest_plan;
pub mod guest_tools;
pub mod instant;
pub mod into_disk;
pub mod sessions;
pub mod to_directory;
