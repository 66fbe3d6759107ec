//! Restoring selected files into a directory on the server's host.
//!
//! Everything below the destination is reached through directory file
//! descriptors, one name at a time, never by a path string:
//!
//! * directories are opened with `O_DIRECTORY | O_NOFOLLOW`, so a link
//!   (restored earlier in the same request, or planted beforehand) is never
//!   walked through: a later file cannot land outside the destination;
//! * files and links are written under a temporary name with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW`, then renamed onto their name: a
//!   replaced link is replaced itself, its target is never opened, and
//!   nobody sees half a file;
//! * file data is streamed (256 KiB at a time);
//! * permission bits are kept without setuid, setgid and sticky (files
//!   from a VM must not become privileged programs on the host); owners
//!   are not (files belong to the server's user); modification times are.
//!
//! The destination is given by the operator and checked against the
//! restore roots (`crate::confinement`): it is opened from its root one
//! component at a time with `O_NOFOLLOW` and created if missing.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use guest_fs::EntryKind;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use rustix::io::Errno;
use shared_types::restore::ConflictPolicy;

use crate::confinement::Destination;

use super::file_restore::{restore_items, Watch, Existing, FileRestoreError, Meta, Outcome, Result, Selection, Sink, SinkError, SinkResult};

/// Bytes copied per read.
const COPY_BUFFER: usize = 256 * 1024;

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Opens the destination directory, creating what is missing: its root
/// (checked by `confinement`) by path, then every component below it with
/// `O_NOFOLLOW`, so a link planted after the check is refused, not followed.
/// With `create` false nothing is made: a missing component is fine (it
/// will be created), anything but a directory is not. `Ok(None)`: something
/// is missing (only without `create`).
pub fn open_destination(dest: &Destination, create: bool) -> Result<Option<OwnedFd>> {
    let shown = dest.path().display().to_string();
    let unusable = |why: String| FileRestoreError::DestinationUnusable { path: shown.clone(), why };
    let mut dir = rustix::fs::open(&dest.root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| unusable(format!("its restore root {} cannot be opened: {}", dest.root.display(), std::io::Error::from(e))))?;
    let last = dest.below.len();
    for (i, name) in dest.below.iter().enumerate() {
        let opened = rustix::fs::openat(&dir, name.as_os_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty());
        let next = match opened {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !create => return Ok(None),
            Err(Errno::NOENT) => match rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => rustix::fs::openat(&dir, name.as_os_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| unusable(format!("it cannot be opened: {}", std::io::Error::from(e))))?,
                Err(e) => return Err(unusable(format!("it cannot be created: {}", std::io::Error::from(e)))),
            },
            Err(Errno::NOTDIR) if i + 1 == last => return Err(FileRestoreError::DestinationNotADirectory(shown)),
            Err(Errno::NOTDIR) => return Err(unusable("one of its parents is a file, not a directory".into())),
            Err(Errno::LOOP) => return Err(unusable(format!("'{}' is a link; restored files are written only through real directories", name.to_string_lossy()))),
            Err(e) => return Err(unusable(std::io::Error::from(e).to_string())),
        };
        dir = next;
    }
    Ok(Some(dir))
}

/// Restores `sel` into the checked destination (created if missing).
pub fn restore_to_directory(sel: &Selection, dest: &Destination, policy: ConflictPolicy, now: DateTime<Utc>, watch: &Watch) -> Result<Outcome> {
    let root = open_destination(dest, true)?.ok_or_else(|| FileRestoreError::DestinationUnusable { path: dest.path().display().to_string(), why: "it cannot be created".into() })?;
    let mut sink = HostSink::new(&dest.path().display().to_string());
    restore_items(sel, &mut sink, &root, policy, now, watch)
}

/// A directory tree on the host, written through directory descriptors.
pub struct HostSink {
    /// For messages.
    label: String,
    /// A private staging area: files stay `0600` and directories keep
    /// their permissions (the tools that read them need to), only times are set.
    staging: bool,
}

impl HostSink {
    pub fn new(label: &str) -> Self {
        HostSink { label: label.to_string(), staging: false }
    }

    /// A sink for a private staging tree (see `staging`).
    pub fn staging(label: &str) -> Self {
        HostSink { label: label.to_string(), staging: true }
    }

    fn fail(&self, what: String, e: Errno) -> SinkError {
        SinkError::Fail(FileRestoreError::io(format!("{what} under {}", self.label), e.into()))
    }

    /// A name nothing restored can hold in advance (random part).
    fn temp_name() -> String {
        format!(".sendense-restore-{}-{}.tmp", TEMP_SEQ.fetch_add(1, Ordering::Relaxed), uuid::Uuid::new_v4().simple())
    }

    /// The permission bits to set: the restore point's without setuid,
    /// setgid and sticky; `0600` in a staging tree.
    fn mode(&self, meta: &Meta, default: u32) -> Mode {
        if self.staging {
            return Mode::from_raw_mode(0o600);
        }
        Mode::from_raw_mode(meta.mode.unwrap_or(default) & 0o777)
    }

    /// The directory `name` in `dir`, created if missing (staging trees).
    pub fn ensure_dir(&mut self, dir: &OwnedFd, name: &str) -> SinkResult<OwnedFd> {
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => self.open_dir(dir, name),
            Err(e) => Err(self.fail(format!("creating directory {name}"), e)),
        }
    }

    /// Moves the finished temporary `tmp` onto `name`: atomically replacing
    /// a file or link when `replace`, refusing to replace anything otherwise.
    fn publish(&self, dir: &OwnedFd, tmp: &str, name: &str, replace: bool) -> SinkResult<()> {
        let r = if replace {
            rustix::fs::renameat(dir, tmp, dir, name)
        } else {
            rustix::fs::renameat_with(dir, tmp, dir, name, RenameFlags::NOREPLACE)
        };
        r.map_err(|e| {
            let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
            match e {
                Errno::EXIST => SinkError::Skip("something of that name appeared at the destination meanwhile".into()),
                Errno::ISDIR => SinkError::Skip("a directory of that name exists at the destination".into()),
                e => self.fail(format!("naming {name}"), e),
            }
        })
    }
}

fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

impl Sink for HostSink {
    type Dir = OwnedFd;

    fn refuse(&self, _dir: &OwnedFd, _name: &str, _kind: EntryKind) -> Option<String> {
        None
    }

    fn existing(&mut self, dir: &OwnedFd, name: &str) -> Result<Existing> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Existing::Dir,
                FileType::RegularFile => Existing::File { size: st.st_size as u64 },
                FileType::Symlink => Existing::Symlink,
                _ => Existing::Other,
            }),
            Err(Errno::NOENT) => Ok(Existing::None),
            Err(e) => Err(FileRestoreError::io(format!("looking up {name} under {}", self.label), e.into())),
        }
    }

    fn open_dir(&mut self, dir: &OwnedFd, name: &str) -> SinkResult<OwnedFd> {
        rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => SinkError::Skip("replaced by a link or file at the destination meanwhile".into()),
            e => self.fail(format!("opening directory {name}"), e),
        })
    }

    fn create_dir(&mut self, dir: &OwnedFd, name: &str) -> SinkResult<OwnedFd> {
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(|e| match e {
            Errno::EXIST => SinkError::Skip("something of that name appeared at the destination meanwhile".into()),
            e => self.fail(format!("creating directory {name}"), e),
        })?;
        self.open_dir(dir, name)
    }

    fn finish_dir(&mut self, dir: OwnedFd, meta: &Meta, apply: bool) -> SinkResult<()> {
        if !apply {
            return Ok(());
        }
        if !self.staging {
            rustix::fs::fchmod(&dir, self.mode(meta, 0o755)).map_err(|e| self.fail("setting a directory's permissions".into(), e))?;
        }
        if let Some(t) = meta.mtime {
            rustix::fs::futimens(&dir, &timestamps(t)).map_err(|e| self.fail("setting a directory's time".into(), e))?;
        }
        Ok(())
    }

    fn write_file(&mut self, dir: &OwnedFd, name: &str, data: &mut dyn Read, meta: &Meta, replace: bool) -> SinkResult<u64> {
        let tmp = Self::temp_name();
        let fd = rustix::fs::openat(
            dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.fail(format!("creating {name}"), e))?;
        let written = (|| -> std::io::Result<u64> {
            let mut file = File::from(fd);
            let mut buf = vec![0u8; COPY_BUFFER];
            let mut total = 0u64;
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(std::io::Error::new(e.kind(), format!("reading the restore point: {e}"))),
                };
                file.write_all(&buf[..n])?;
                total += n as u64;
            }
            rustix::fs::fchmod(file.as_fd(), self.mode(meta, 0o644))?;
            if let Some(t) = meta.mtime {
                rustix::fs::futimens(file.as_fd(), &timestamps(t))?;
            }
            Ok(total)
        })();
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
                return Err(SinkError::Fail(FileRestoreError::io(format!("writing {name} under {}", self.label), e)));
            }
        };
        self.publish(dir, &tmp, name, replace)?;
        Ok(written)
    }

    fn symlink(&mut self, dir: &OwnedFd, name: &str, target: &str, meta: &Meta, replace: bool) -> SinkResult<()> {
        if target.is_empty() || target.contains('\0') {
            return Err(SinkError::Skip("a link with an empty or invalid target: not restored".into()));
        }
        let tmp = Self::temp_name();
        rustix::fs::symlinkat(target, dir, tmp.as_str()).map_err(|e| self.fail(format!("creating link {name}"), e))?;
        if let Some(t) = meta.mtime {
            let _ = rustix::fs::utimensat(dir, tmp.as_str(), &timestamps(t), AtFlags::SYMLINK_NOFOLLOW);
        }
        self.publish(dir, &tmp, name, replace)
    }
}
