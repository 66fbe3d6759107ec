//! The storage trait under the engine. Shaped for object stores (S3, Azure
//! Blob) as much as for a local directory: objects are put and got whole (or
//! read by byte range), never appended to; `put_if_absent` is the
//! create-if-absent primitive (S3 `If-None-Match: *`, Azure `If-None-Match`);
//! listing is by key prefix. Keys are `/`-separated relative names.

use std::time::SystemTime;

use super::error::Result;

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

pub trait Repository: Send + Sync {
    /// Human-readable location, for messages.
    fn describe(&self) -> String;
    /// Whole object.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// `len` bytes at `offset` (ranged GET).
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Write or replace an object atomically: readers see the old or the new
    /// object, never a part. Durable when it returns.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;
    /// Create the object only if no object has this key; `Ok(false)` when it
    /// already existed (content-addressed objects: same key, same content).
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool>;
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// Objects whose key starts with `prefix` (a folder-like prefix ending in `/`).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Size and modification time, `None` when absent.
    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// Refresh the modification time (GC grace rule); `Ok(false)` when absent.
    /// Object stores do this with a copy-onto-itself or a metadata update.
    fn touch(&self, key: &str) -> Result<bool>;
}
