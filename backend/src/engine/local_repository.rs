//! [`Repository`] on a local directory (also NFS/CIFS mounts).
//!
//! Every write goes to `tmp/<random>` first, is fsynced, then published:
//! `put` renames over the target (atomic replace), `put_if_absent` hard-links
//! the temporary file to the target, which fails if the target exists (atomic
//! create-if-absent). The parent directory is fsynced after publishing, so a
//! crash leaves either no object or the whole object, plus at worst a stray
//! file under `tmp/` that garbage collection removes.
//!
//! `put_if_absent_deferred` leaves out that last directory fsync (the file's
//! bytes are still synced before the link, so whatever a crash leaves
//! visible is whole): the directories are remembered and synced together by
//! `sync_published`, which a backup calls once before its manifest (on ext4
//! the first of those fsyncs commits the journal for all of them). A lease
//! (`put_volatile`) is not synced at all: it means nothing after a crash.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::{EngineError, Result};
use super::repository::{ObjectInfo, Repository};

pub const TMP_DIR: &str = "tmp";

pub struct LocalRepository {
    root: PathBuf,
    /// Directories of objects published by `put_if_absent_deferred` and not
    /// synced since.
    unsynced_dirs: Mutex<BTreeSet<PathBuf>>,
}

impl LocalRepository {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalRepository { root: root.into(), unsynced_dirs: Mutex::default() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
    fn write_temp(&self, key: &str, data: &[u8]) -> Result<PathBuf> {
        self.write_temp_with(key, data, true)
    }
    /// `data` in a new file under `tmp/`, synced when `sync`.
    fn write_temp_with(&self, key: &str, data: &[u8], sync: bool) -> Result<PathBuf> {
        let dir = self.root.join(TMP_DIR);
        let mut name = [0u8; 12];
        getrandom::fill(&mut name).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
        let tmp = dir.join(hex::encode(name));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| EngineError::object(key, e))?;
        let res = f.write_all(data).and_then(|_| if sync { f.sync_data() } else { Ok(()) });
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(EngineError::object(key, e));
        }
        Ok(tmp)
    }
    /// `put_if_absent`, the directory fsync after publishing left to the
    /// caller: the parent directory when the object was created.
    fn create_if_absent(&self, key: &str, data: &[u8]) -> Result<Option<PathBuf>> {
        let target = self.ensure_parent(key)?;
        if target.exists() {
            return Ok(None);
        }
        let tmp = self.write_temp(key, data)?;
        let res = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match res {
            Ok(()) => Ok(Some(target.parent().map(Path::to_path_buf).unwrap_or_default())),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(EngineError::object(key, e)),
        }
    }
    fn ensure_parent(&self, key: &str) -> Result<PathBuf> {
        let target = self.path(key);
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                fs::create_dir_all(parent).map_err(|e| EngineError::object(key, e))?;
            }
        }
        Ok(target)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Repository for LocalRepository {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let mut f = File::open(self.path(key)).map_err(|e| EngineError::object(key, e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| EngineError::object(key, e))?;
        Ok(buf)
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        let f = File::open(self.path(key)).map_err(|e| EngineError::object(key, e))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).map_err(|e| EngineError::object(key, e))?;
        Ok(buf)
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let target = self.ensure_parent(key)?;
        let tmp = self.write_temp(key, data)?;
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(EngineError::object(key, e));
        }
        if let Some(p) = target.parent() {
            sync_dir(p);
        }
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let created = self.create_if_absent(key, data)?;
        // Also when it was there: another handle may have published it
        // deferred and not synced yet, and this caller relies on it now.
        if let Some(dir) = self.path(key).parent() {
            sync_dir(dir);
        }
        Ok(created.is_some())
    }

    fn put_if_absent_deferred(&self, key: &str, data: &[u8]) -> Result<bool> {
        match self.create_if_absent(key, data)? {
            Some(dir) => {
                self.unsynced_dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(dir);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn sync_published(&self) -> Result<()> {
        let dirs = std::mem::take(&mut *self.unsynced_dirs.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in dirs {
            sync_dir(&dir);
        }
        Ok(())
    }

    fn put_volatile(&self, key: &str, data: &[u8]) -> Result<()> {
        let target = self.ensure_parent(key)?;
        let tmp = self.write_temp_with(key, data, false)?;
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            return Err(EngineError::object(key, e));
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::object(key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // The prefix's folder part is walked; the rest filters names.
        let (dir_part, _) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut out = Vec::new();
        let mut stack = vec![dir_part.to_string()];
        while let Some(rel) = stack.pop() {
            let dir = if rel.is_empty() { self.root.clone() } else { self.root.join(&rel) };
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(EngineError::object(prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| EngineError::object(prefix, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(EngineError::object(&key, e)),
                };
                if meta.is_dir() {
                    stack.push(key);
                } else if key.starts_with(prefix) {
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                        modified: meta.modified().map_err(|e| EngineError::object(prefix, e))?,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match fs::metadata(self.path(key)) {
            Ok(m) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: m.len(),
                modified: m.modified().map_err(|e| EngineError::object(key, e))?,
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EngineError::object(key, e)),
        }
    }

    fn touch(&self, key: &str) -> Result<bool> {
        let f = match File::options().write(true).open(self.path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(EngineError::object(key, e)),
        };
        f.set_modified(std::time::SystemTime::now()).map_err(|e| EngineError::object(key, e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_if_absent_creates_once_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(TMP_DIR)).unwrap();
        let r = LocalRepository::new(dir.path());
        assert!(r.put_if_absent("packs/ab/abcd", b"one").unwrap());
        assert!(!r.put_if_absent("packs/ab/abcd", b"two").unwrap());
        assert_eq!(r.get("packs/ab/abcd").unwrap(), b"one");
        r.put("config.json", b"x").unwrap();
        r.put("config.json", b"y").unwrap();
        assert_eq!(r.get("config.json").unwrap(), b"y");
        let keys: Vec<_> = r.list("packs/").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, vec!["packs/ab/abcd".to_string()]);
        assert_eq!(r.get_range("packs/ab/abcd", 1, 2).unwrap(), b"ne");
        assert!(matches!(r.get("nope"), Err(EngineError::NotFound { .. })));
        r.delete("packs/ab/abcd").unwrap();
        r.delete("packs/ab/abcd").unwrap();
        assert!(r.stat("packs/ab/abcd").unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn deferred_objects_are_whole_and_listed_until_synced() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(TMP_DIR)).unwrap();
        let r = LocalRepository::new(dir.path());
        assert!(r.put_if_absent_deferred("pack-index/ab/abcd", b"one").unwrap());
        assert!(r.put_if_absent_deferred("indexes/cd/cdef", b"two").unwrap());
        assert!(!r.put_if_absent_deferred("pack-index/ab/abcd", b"other").unwrap());
        assert_eq!(r.get("pack-index/ab/abcd").unwrap(), b"one");
        let pending: Vec<PathBuf> = r.unsynced_dirs.lock().unwrap().iter().cloned().collect();
        assert_eq!(pending, vec![dir.path().join("indexes/cd"), dir.path().join("pack-index/ab")]);
        r.sync_published().unwrap();
        assert!(r.unsynced_dirs.lock().unwrap().is_empty());
        // A durable put that finds the object there still syncs its directory.
        assert!(!r.put_if_absent("indexes/cd/cdef", b"two").unwrap());
        r.put_volatile("locks/backup-1.json", b"{}").unwrap();
        r.put_volatile("locks/backup-1.json", b"{\"a\":1}").unwrap();
        assert_eq!(r.get("locks/backup-1.json").unwrap(), b"{\"a\":1}");
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }
}
