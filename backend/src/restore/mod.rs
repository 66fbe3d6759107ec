//! Restore: file-level sessions on restore points (`sessions`), read
//! through the engine's random-access snapshot reader and `guest-fs`.

pub mod sessions;
