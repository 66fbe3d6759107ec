//! Planning a restore into a VM's filesystem: the walk of
//! `file_restore` decides conflicts against the volume as it is (read with
//! `guest-fs`, plus what this restore already planned), stages every file
//! to write in a host tree laid out like the volume (`to_directory`'s
//! writer, so data streams and nothing escapes the tree), and records the
//! operations `guest_tools` then performs with the filesystem's own tools.
//!
//! FAT and NTFS compare names without case; the plan does the same there.
//! What the tools cannot do is refused per entry with the reason: links on
//! FAT and NTFS, names those filesystems forbid, names debugfs cannot
//! quote, and on NTFS a new directory inside an existing one (ntfs-3g's
//! tools copy files into existing directories, and new directory trees are
//! applied with `wimapply`, which creates them only from the volume's top).

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use guest_fs::{EntryKind, FsKind, GuestFs, GuestPath};
use rustix::fs::{Mode, OFlags, Timespec, Timestamps};

use super::file_restore::{Existing, FileRestoreError, Meta, Result, Sink, SinkError, SinkResult};
use super::to_directory::HostSink;

/// One change to the volume, in the order it must be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mkdir { path: GuestPath },
    /// `src`: the staged file on the host.
    File { path: GuestPath, src: PathBuf, size: u64, replace: bool, meta: Meta },
    Symlink { path: GuestPath, target: String, replace: bool, meta: Meta },
    /// Permissions, owner and time of a directory, once its content is in.
    DirMeta { path: GuestPath, meta: Meta },
}

/// Why [`GuestSink::ensure_dir`] cannot give a directory.
#[derive(Debug)]
pub enum EnsureError {
    /// This path on the way is a file, a link or a special file.
    NotADirectory(GuestPath),
    /// The directory cannot be created here (the reason).
    Refused(String),
    Fail(FileRestoreError),
}

/// The filesystem families the tools write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ext,
    Fat,
    Ntfs,
}

impl Family {
    pub fn of(kind: FsKind) -> Option<Family> {
        match kind {
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => Some(Family::Ext),
            FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32 => Some(Family::Fat),
            FsKind::Ntfs => Some(Family::Ntfs),
            FsKind::Swap | FsKind::Unknown => None,
        }
    }
}

/// What this restore put under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planned {
    NewDir,
    File(u64),
    Symlink,
}

/// A directory of the volume as the plan sees it.
pub struct GuestDir {
    pub path: GuestPath,
    /// Its staging directory on the host.
    host: OwnedFd,
    /// It exists on the volume now (not only in the plan).
    in_target: bool,
}

/// The [`Sink`] that plans writes into one volume.
pub struct GuestSink<'a> {
    family: Family,
    target: &'a dyn GuestFs,
    tree: PathBuf,
    staging: HostSink,
    planned: HashMap<String, Planned>,
    pub ops: Vec<Op>,
    /// Bytes of the files that are replaced (their space is freed first).
    pub freed: u64,
}

/// Characters Windows forbids in names (FAT, NTFS).
const WINDOWS_FORBIDDEN: &[char] = &['"', '*', '/', ':', '<', '>', '?', '\\', '|'];

impl<'a> GuestSink<'a> {
    /// Plans into `target` (the volume's filesystem as it is), staging in
    /// the new directory `tree`.
    pub fn new(family: Family, target: &'a dyn GuestFs, tree: &Path) -> Result<Self> {
        std::fs::create_dir(tree).map_err(|e| FileRestoreError::io(format!("creating {}", tree.display()), e))?;
        Ok(GuestSink { family, target, tree: tree.to_path_buf(), staging: HostSink::staging(&tree.display().to_string()), planned: HashMap::new(), ops: Vec::new(), freed: 0 })
    }

    /// The volume's root directory.
    pub fn root(&self) -> Result<GuestDir> {
        let host = rustix::fs::open(&self.tree, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| FileRestoreError::io(format!("opening {}", self.tree.display()), e.into()))?;
        Ok(GuestDir { path: GuestPath::root(), host, in_target: true })
    }

    /// The host file a staged path lives at.
    pub fn staged(&self, path: &GuestPath) -> PathBuf {
        self.tree.join(path.as_relative())
    }

    fn key(&self, path: &GuestPath) -> String {
        match self.family {
            Family::Ext => path.as_relative(),
            Family::Fat | Family::Ntfs => path.as_relative().to_lowercase(),
        }
    }

    fn child(dir: &GuestDir, name: &str) -> SinkResult<GuestPath> {
        dir.path.child(name).map_err(|e| SinkError::Skip(format!("not a usable name: {e}")))
    }

    /// The directory `path` of the volume, created (with its missing
    /// parents) in the plan when it does not exist, with the metadata
    /// `meta_of` gives (default: `0755`, root's).
    pub fn ensure_dir(&mut self, path: &GuestPath, meta_of: &dyn Fn(&GuestPath) -> Option<Meta>) -> Result<GuestDir, EnsureError> {
        let refused = |e: SinkError| match e {
            SinkError::Skip(why) => EnsureError::Refused(why),
            SinkError::Fail(e) => EnsureError::Fail(e),
        };
        let mut dir = self.root().map_err(EnsureError::Fail)?;
        for name in path.components() {
            let sub = Self::child(&dir, name).map_err(refused)?;
            dir = match self.existing(&dir, name).map_err(EnsureError::Fail)? {
                Existing::Dir => self.open_dir(&dir, name).map_err(refused)?,
                Existing::None => {
                    let made = self.create_dir(&dir, name).map_err(refused)?;
                    let meta = meta_of(&made.path).unwrap_or(Meta { mode: Some(0o755), uid: Some(0), gid: Some(0), mtime: None });
                    self.ops.push(Op::DirMeta { path: made.path.clone(), meta });
                    made
                }
                Existing::File { .. } | Existing::Symlink | Existing::Other => return Err(EnsureError::NotADirectory(sub)),
            };
        }
        Ok(dir)
    }
}

impl Sink for GuestSink<'_> {
    type Dir = GuestDir;

    fn refuse(&self, _dir: &GuestDir, name: &str, kind: EntryKind) -> Option<String> {
        match self.family {
            Family::Ext if name.contains('"') => Some("its name holds a double quote, which debugfs cannot write".into()),
            Family::Ext => None,
            Family::Fat | Family::Ntfs => {
                let fs = if self.family == Family::Fat { "FAT" } else { "NTFS" };
                if kind == EntryKind::Symlink {
                    return Some(format!("links are not restored into {fs} volumes"));
                }
                if name.chars().any(|c| c.is_control() || WINDOWS_FORBIDDEN.contains(&c)) || name.ends_with('.') || name.ends_with(' ') {
                    return Some(format!("not a valid {fs} file name (it holds one of \" * : < > ? \\ | or ends with a dot or space)"));
                }
                if name.encode_utf16().count() > 255 {
                    return Some(format!("longer than the 255 characters a {fs} name may have"));
                }
                None
            }
        }
    }

    fn existing(&mut self, dir: &GuestDir, name: &str) -> Result<Existing> {
        let Ok(path) = dir.path.child(name) else { return Ok(Existing::None) };
        if let Some(p) = self.planned.get(&self.key(&path)) {
            return Ok(match p {
                Planned::NewDir => Existing::Dir,
                Planned::File(size) => Existing::File { size: *size },
                Planned::Symlink => Existing::Symlink,
            });
        }
        if !dir.in_target {
            return Ok(Existing::None);
        }
        match self.target.stat(&path) {
            Ok(e) => Ok(match e.kind {
                EntryKind::Dir => Existing::Dir,
                EntryKind::File => Existing::File { size: e.size },
                EntryKind::Symlink => Existing::Symlink,
                EntryKind::Other => Existing::Other,
            }),
            Err(guest_fs::Error::NotFound { .. }) => Ok(Existing::None),
            Err(e) => Err(FileRestoreError::Unsupported(format!("reading {path} in the VM's filesystem: {e}"))),
        }
    }

    fn open_dir(&mut self, dir: &GuestDir, name: &str) -> SinkResult<GuestDir> {
        let path = Self::child(dir, name)?;
        let in_target = dir.in_target && self.planned.get(&self.key(&path)) != Some(&Planned::NewDir);
        let host = self.staging.ensure_dir(&dir.host, name)?;
        Ok(GuestDir { path, host, in_target })
    }

    fn create_dir(&mut self, dir: &GuestDir, name: &str) -> SinkResult<GuestDir> {
        if self.family == Family::Ntfs && dir.in_target && !dir.path.is_root() {
            return Err(SinkError::Skip(format!(
                "NTFS: Sendense cannot create a directory inside the existing directory {} without mounting the volume; \
                 restore it into a new top-level directory (e.g. destination.directory /Restored)",
                dir.path
            )));
        }
        let path = Self::child(dir, name)?;
        let host = self.staging.ensure_dir(&dir.host, name)?;
        self.planned.insert(self.key(&path), Planned::NewDir);
        self.ops.push(Op::Mkdir { path: path.clone() });
        Ok(GuestDir { path, host, in_target: false })
    }

    fn finish_dir(&mut self, dir: GuestDir, meta: &Meta, apply: bool) -> SinkResult<()> {
        if apply {
            if let Some(t) = meta.mtime {
                // The staged tree carries times for wimapply (NTFS).
                let t = Timespec { tv_sec: t, tv_nsec: 0 };
                let _ = rustix::fs::futimens(&dir.host, &Timestamps { last_access: t, last_modification: t });
            }
            self.ops.push(Op::DirMeta { path: dir.path, meta: *meta });
        }
        Ok(())
    }

    fn write_file(&mut self, dir: &GuestDir, name: &str, data: &mut dyn Read, meta: &Meta, replace: bool) -> SinkResult<u64> {
        let path = Self::child(dir, name)?;
        if replace {
            match self.existing(dir, name)? {
                Existing::File { size } => self.freed += size,
                Existing::Symlink if self.family == Family::Ntfs => {
                    return Err(SinkError::Skip("a link (reparse point) of that name exists in the NTFS volume and is not replaced".into()));
                }
                _ => {}
            }
        }
        // The staging tree may hold this name already (a case variant, or
        // an earlier item landing at the same place): replace it there.
        let size = self.staging.write_file(&dir.host, name, data, meta, true)?;
        self.planned.insert(self.key(&path), Planned::File(size));
        self.ops.push(Op::File { src: self.staged(&path), path, size, replace, meta: *meta });
        Ok(size)
    }

    fn symlink(&mut self, dir: &GuestDir, name: &str, target: &str, meta: &Meta, replace: bool) -> SinkResult<()> {
        if target.is_empty() || target.contains('"') || target.chars().any(char::is_control) {
            return Err(SinkError::Skip("its target is empty or holds a double quote or control character, which debugfs cannot write".into()));
        }
        let path = Self::child(dir, name)?;
        self.planned.insert(self.key(&path), Planned::Symlink);
        self.ops.push(Op::Symlink { path, target: target.to_string(), replace, meta: *meta });
        Ok(())
    }
}
