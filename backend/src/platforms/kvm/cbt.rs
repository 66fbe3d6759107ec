//! Changed-block tracking on qcow2 disks: persistent dirty bitmaps named
//! `sendense-<generation>`. Exactly one of them is enabled and records every
//! write since the last backup's rotation point.

use std::path::Path;

use crate::platforms::error::Result;
use crate::platforms::tools;

/// Prefix of the bitmaps Sendense owns.
pub const BITMAP_PREFIX: &str = "sendense-";

pub fn bitmap_name(generation: u64) -> String {
    format!("{BITMAP_PREFIX}{generation}")
}

/// Starts tracking on a qcow2 disk that has no Sendense bitmap yet: adds the
/// enabled bitmap of generation 1. The caller holds the disk's lock.
pub fn enable_tracking(image: &Path) -> Result<()> {
    tools::run("qemu-img", [std::ffi::OsStr::new("bitmap"), "--add".as_ref(), "--enable".as_ref(), image.as_os_str(), bitmap_name(1).as_ref()])?;
    Ok(())
}
