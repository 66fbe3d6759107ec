//! Restoring selected files of a session somewhere: the checks on the
//! selection, and the one walk that applies the conflict policy for every
//! destination.
//!
//! A destination is a [`Sink`]: a directory on the server's host
//! (`to_directory`) or the plan of writes into a VM's filesystem
//! (`guest_plan`). [`restore_items`] walks each selected entry (directories
//! page by page, depth first, one open directory per level) and asks the
//! sink what exists before writing anything:
//!
//! * nothing of that name: written;
//! * a directory onto a directory: merged, entry by entry;
//! * anything else: [`ConflictPolicy`] decides. `skip` reports it,
//!   `overwrite` replaces a file or link by a file or link (a directory is
//!   never replaced by a non-directory nor the reverse: that is reported as
//!   skipped), `keep_both` writes under `NAME.restored-YYYYMMDD-HHMMSS`.
//!
//! Links are recreated as links with their target as stored, never
//! followed; devices, FIFOs and sockets are reported as skipped.

use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use guest_fs::{Entry, EntryKind, GuestFs, GuestPath};
use shared_types::restore::{ConflictPolicy, SkippedFile, RESTORE_FILES_MAX_PATHS, RESTORE_FILES_SKIPPED_LISTED};

use super::sessions::{session_path, Session, SessionError, Target};
use crate::engine::progress::Progress;

/// Deepest directory below a selected one that is restored.
const MAX_DEPTH: usize = 64;
/// Most entries one restore goes through.
const MAX_ENTRIES: u64 = 10_000_000;
/// Entries listed per page while walking.
const PAGE: usize = 1000;
/// Skipped entries listed in the answer (all are counted).
const SKIPPED_LISTED: usize = RESTORE_FILES_SKIPPED_LISTED;

/// Why a file restore cannot be done; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum FileRestoreError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("paths: name at least one file or directory (e.g. /disk0-p1/etc/hostname)")]
    NoPaths,
    #[error("paths: {0} paths given; one restore takes at most {RESTORE_FILES_MAX_PATHS}, restore the parent directory or split the request")]
    TooManyPaths(usize),
    #[error("path {0:?} contains `..`: name files by their full path inside the volume, without `..`")]
    Traversal(String),
    #[error("path {0:?} names a whole volume; name a file or directory inside it (e.g. {0}/etc)")]
    VolumeRoot(String),
    #[error("paths are on different volumes ('{0}' and '{1}'); one restore takes files of one volume")]
    MixedVolumes(String, String),
    #[error("destination.path {0:?} is not an absolute path on the Sendense host (it must start with /)")]
    RelativeDestination(String),
    #[error("destination.path '{0}' exists and is not a directory")]
    DestinationNotADirectory(String),
    #[error("destination.path '{path}' cannot be used: {why}")]
    DestinationUnusable { path: String, why: String },
    #[error("destination.directory {0:?}: name a directory of the volume by its full path without `..` (e.g. /restored)")]
    BadDirectory(String),
    #[error("destination.directory '{0}' is a file (or a link) in the VM's filesystem, not a directory")]
    DirectoryIsAFile(String),
    #[error("VM '{vm}' is {power}: power it off before restoring files into its disk (nothing was changed)")]
    VmRunning { vm: String, power: String },
    #[error("the disk of volume '{volume}' of VM '{vm}' is in use by another process that holds its write lock; stop it and try again (nothing was changed)")]
    DiskBusy { vm: String, volume: String },
    #[error("VM '{vm}' has no volume '{volume}'; its volumes are {known}")]
    UnknownVolume { vm: String, volume: String, known: String },
    #[error("volume '{volume}' of VM '{vm}' holds {filesystem}; files can be written into ext2/3/4, FAT and NTFS volumes only")]
    UnsupportedFilesystem { vm: String, volume: String, filesystem: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {need} bytes are needed but only {free} are free; free space or choose another destination (nothing was changed)")]
    NoSpace { what: String, need: u64, free: u64 },
    #[error("{0}: no space left; free space or choose another destination")]
    Full(String),
    #[error("the filesystem of volume '{volume}' of VM '{vm}' has errors already ({check}); repair it from the guest first (nothing was changed): {output}")]
    NeedsRepair { vm: String, volume: String, check: String, output: String },
    #[error("writing into volume '{volume}' of VM '{vm}' left a filesystem that {check} finds errors in, so it was not written back (the VM's disk is unchanged): {output}")]
    CheckFailed { vm: String, volume: String, check: String, output: String },
    #[error("{0}")]
    Platform(#[from] crate::platforms::PlatformError),
    #[error("{what}: {source}")]
    Io { what: String, #[source] source: std::io::Error },
    #[error("stopped by an operator")]
    Stopped,
}

impl FileRestoreError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            return FileRestoreError::Full(what.into());
        }
        FileRestoreError::Io { what: what.into(), source }
    }

    fn guest(e: guest_fs::Error) -> Self {
        FileRestoreError::Session(SessionError::Guest(e))
    }
}

pub type Result<T, E = FileRestoreError> = std::result::Result<T, E>;

/// What a walk reports to and obeys: its job's progress (bytes written,
/// pause and stop, checked before every entry) and its log (each selected
/// path written, each entry skipped with the reason).
pub struct Watch<'a> {
    pub progress: &'a Progress,
    pub log: &'a (dyn Fn(String) + Sync),
}

/// Log lines naming skipped entries, at most (all are counted).
const SKIPS_LOGGED: u64 = 200;

impl Watch<'_> {
    fn checkpoint(&self) -> Result<()> {
        self.progress.control.checkpoint().map_err(|_| FileRestoreError::Stopped)
    }
}

/// Counts the bytes read through it into the job's progress.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        Progress::add(&self.progress.bytes_read, n as u64);
        Progress::add(&self.progress.bytes_written, n as u64);
        Ok(n)
    }
}

/// Files and bytes below the selection (what a restore will write at
/// most), for the job's progress. Stops counting at `MAX_ENTRIES`.
pub fn measure(sel: &Selection) -> (u64, u64) {
    fn walk(fs: &dyn GuestFs, p: &GuestPath, e: &Entry, depth: usize, acc: &mut (u64, u64), seen: &mut u64) {
        *seen += 1;
        if *seen > MAX_ENTRIES || depth > MAX_DEPTH {
            return;
        }
        match e.kind {
            EntryKind::File => {
                acc.0 += 1;
                acc.1 += e.size;
            }
            EntryKind::Dir => {
                let mut offset = 0u64;
                while let Ok(page) = fs.list(p, offset, PAGE) {
                    let n = page.entries.len() as u64;
                    for c in &page.entries {
                        if let Ok(cp) = p.child(&c.name) {
                            walk(fs, &cp, c, depth + 1, acc, seen);
                        }
                    }
                    offset += n;
                    if n == 0 || offset >= page.total {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    let mut acc = (0, 0);
    let mut seen = 0;
    for item in &sel.items {
        walk(sel.fs.as_ref(), &item.path, &item.entry, 0, &mut acc, &mut seen);
    }
    acc
}

/// One selected file or directory.
#[derive(Debug, Clone)]
pub struct Item {
    /// As the request gave it, normalised (`/disk0-p1/etc/nginx`).
    pub session_path: String,
    /// Inside the volume (`/etc/nginx`).
    pub path: GuestPath,
    pub entry: Entry,
}

/// What a request selected: entries of one volume.
pub struct Selection {
    pub volume: String,
    pub fs: Arc<dyn GuestFs>,
    pub items: Vec<Item>,
}

/// Checks `paths` against the session: at most [`RESTORE_FILES_MAX_PATHS`],
/// no `..`, all on one browsable volume, each existing (a link is taken as
/// the link). Duplicates are dropped, order kept.
pub fn select(session: &Session, paths: &[String]) -> Result<Selection> {
    if paths.is_empty() {
        return Err(FileRestoreError::NoPaths);
    }
    if paths.len() > RESTORE_FILES_MAX_PATHS {
        return Err(FileRestoreError::TooManyPaths(paths.len()));
    }
    // The volume of every path first: mixing volumes is the request's
    // mistake, whatever the volumes hold.
    let mut first: Option<String> = None;
    for raw in paths {
        if raw.split('/').any(|c| c == "..") {
            return Err(FileRestoreError::Traversal(raw.clone()));
        }
        let parsed = GuestPath::parse(raw).map_err(FileRestoreError::guest)?;
        let Some(volume) = parsed.components().first() else { return Err(FileRestoreError::VolumeRoot(raw.clone())) };
        match &first {
            Some(v) if v != volume => return Err(FileRestoreError::MixedVolumes(v.clone(), volume.clone())),
            Some(_) => {}
            None => first = Some(volume.clone()),
        }
    }
    let mut chosen: Option<(String, Arc<dyn GuestFs>)> = None;
    let mut items: Vec<Item> = Vec::new();
    for raw in paths {
        let (fs, volume, path) = match session.resolve(raw)? {
            Target::Root => return Err(FileRestoreError::VolumeRoot(raw.clone())),
            Target::Volume { fs, volume, path } => (fs.clone(), volume.to_string(), path),
        };
        if path.is_root() {
            return Err(FileRestoreError::VolumeRoot(format!("/{volume}")));
        }
        if chosen.is_none() {
            chosen = Some((volume.clone(), fs.clone()));
        }
        let session_path = session_path(&volume, &path);
        if items.iter().any(|i| i.session_path == session_path) {
            continue;
        }
        let entry = fs.stat(&path).map_err(FileRestoreError::guest)?;
        items.push(Item { session_path, path, entry });
    }
    let (volume, fs) = chosen.ok_or(FileRestoreError::NoPaths)?;
    Ok(Selection { volume, fs, items })
}

/// Metadata of a restored entry, as the restore point has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (`0o7777`), ext sources only.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Unix seconds.
    pub mtime: Option<i64>,
}

impl Meta {
    pub fn of(e: &Entry) -> Meta {
        Meta { mode: e.mode.map(|m| m & 0o7777), uid: e.uid, gid: e.gid, mtime: e.mtime }
    }
}

/// What a destination holds under a name (links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    None,
    Dir,
    File { size: u64 },
    Symlink,
    /// Device, FIFO, socket...
    Other,
}

impl Existing {
    fn word(self) -> &'static str {
        match self {
            Existing::None => "nothing",
            Existing::Dir => "a directory",
            Existing::File { .. } => "a file",
            Existing::Symlink => "a link",
            Existing::Other => "a special file",
        }
    }
}

/// Why one entry was not written, or why the whole restore stops.
#[derive(Debug)]
pub enum SinkError {
    /// This entry (and what is below it) is left out, for this reason.
    Skip(String),
    Fail(FileRestoreError),
}

impl From<FileRestoreError> for SinkError {
    fn from(e: FileRestoreError) -> Self {
        SinkError::Fail(e)
    }
}

pub type SinkResult<T> = std::result::Result<T, SinkError>;

/// A destination the walk writes into. `Dir` is a directory of it.
pub trait Sink {
    type Dir;
    /// Why an entry of this kind and name cannot be written at all here.
    fn refuse(&self, dir: &Self::Dir, name: &str, kind: EntryKind) -> Option<String>;
    fn existing(&mut self, dir: &Self::Dir, name: &str) -> Result<Existing>;
    /// An existing directory, to merge into.
    fn open_dir(&mut self, dir: &Self::Dir, name: &str) -> SinkResult<Self::Dir>;
    fn create_dir(&mut self, dir: &Self::Dir, name: &str) -> SinkResult<Self::Dir>;
    /// Called once everything below `dir` is written; `apply` says whether
    /// `meta` should be set on it (a created directory, or a merged one
    /// under `overwrite`).
    fn finish_dir(&mut self, dir: Self::Dir, meta: &Meta, apply: bool) -> SinkResult<()>;
    /// Writes a file from `data`; `replace`: a file or link of that name
    /// exists and is to be replaced. Returns the bytes written.
    fn write_file(&mut self, dir: &Self::Dir, name: &str, data: &mut dyn Read, meta: &Meta, replace: bool) -> SinkResult<u64>;
    fn symlink(&mut self, dir: &Self::Dir, name: &str, target: &str, meta: &Meta, replace: bool) -> SinkResult<()>;
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// The first [`SKIPPED_LISTED`] skipped entries.
    pub skipped: Vec<SkippedFile>,
    pub skipped_total: u64,
}

struct Walk<'a, S: Sink> {
    watch: &'a Watch<'a>,
    fs: &'a dyn GuestFs,
    volume: &'a str,
    sink: &'a mut S,
    policy: ConflictPolicy,
    /// `.restored-YYYYMMDD-HHMMSS`
    suffix: String,
    visited: u64,
    out: Outcome,
}

/// The suffix `keep_both` gives restored copies.
pub fn keep_both_suffix(now: DateTime<Utc>) -> String {
    format!(".restored-{}", now.format("%Y%m%d-%H%M%S"))
}

/// Restores every item of `sel` into the sink's directory `root`, each
/// under its own name. Stops at the first error that is not about one
/// entry (reading the restore point, writing the destination).
pub fn restore_items<S: Sink>(sel: &Selection, sink: &mut S, root: &S::Dir, policy: ConflictPolicy, now: DateTime<Utc>, watch: &Watch) -> Result<Outcome> {
    restore_items_each(sel, sink, policy, now, &mut |_| Ok(root), watch)
}

/// [`restore_items`] with a destination directory per item: `dir_of`
/// gives it (or the reason the item is skipped).
pub fn restore_items_each<'d, S: Sink + 'd>(
    sel: &Selection,
    sink: &mut S,
    policy: ConflictPolicy,
    now: DateTime<Utc>,
    dir_of: &mut dyn FnMut(&Item) -> SinkResult<&'d S::Dir>,
    watch: &Watch,
) -> Result<Outcome> {
    let mut walk = Walk { watch, fs: sel.fs.as_ref(), volume: &sel.volume, sink, policy, suffix: keep_both_suffix(now), visited: 0, out: Outcome::default() };
    for item in &sel.items {
        let name = item.path.file_name().unwrap_or_default().to_string();
        let before = (walk.out.files, walk.out.directories, walk.out.symlinks, walk.out.bytes);
        match dir_of(item) {
            Ok(dir) => walk.entry(dir, &name, &item.path, &item.entry, 0)?,
            Err(SinkError::Skip(reason)) => walk.skip(&item.path, reason),
            Err(SinkError::Fail(e)) => return Err(e),
        }
        let o = &walk.out;
        let (files, dirs, links, bytes) = (o.files - before.0, o.directories - before.1, o.symlinks - before.2, o.bytes - before.3);
        if files + dirs + links > 0 {
            (watch.log)(format!("written: {} ({files} files, {dirs} directories, {links} links, {bytes} bytes)", item.session_path));
        }
    }
    Ok(walk.out)
}

impl<S: Sink> Walk<'_, S> {
    fn skip(&mut self, path: &GuestPath, reason: String) {
        if self.out.skipped_total < SKIPS_LOGGED {
            (self.watch.log)(format!("skipped: {}: {reason}", session_path(self.volume, path)));
        } else if self.out.skipped_total == SKIPS_LOGGED {
            (self.watch.log)(format!("more entries skipped; the first {SKIPPED_LISTED} are in the job's result"));
        }
        self.out.skipped_total += 1;
        if self.out.skipped.len() < SKIPPED_LISTED {
            self.out.skipped.push(SkippedFile { path: session_path(self.volume, path), reason });
        }
    }

    /// A sink outcome: skips are recorded, failures stop the walk.
    fn settle<T>(&mut self, path: &GuestPath, r: SinkResult<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(SinkError::Skip(reason)) => {
                self.skip(path, reason);
                Ok(None)
            }
            Err(SinkError::Fail(e)) => Err(e),
        }
    }

    /// A name under `dir` that is free, for `keep_both`.
    fn free_name(&mut self, dir: &S::Dir, name: &str) -> Result<Option<String>> {
        let room = 255usize.saturating_sub(self.suffix.len() + 4);
        let mut base = name.to_string();
        if base.len() > room {
            let cut = (0..=room).rev().find(|i| base.is_char_boundary(*i)).unwrap_or(0);
            base.truncate(cut);
        }
        for n in 1..100 {
            let candidate = if n == 1 { format!("{base}{}", self.suffix) } else { format!("{base}{}-{n}", self.suffix) };
            if self.sink.existing(dir, &candidate)? == Existing::None {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// Restores `entry` (at `src` in the restore point) as `name` in `dir`.
    fn entry(&mut self, dir: &S::Dir, name: &str, src: &GuestPath, entry: &Entry, depth: usize) -> Result<()> {
        self.watch.checkpoint()?;
        self.visited += 1;
        if self.visited > MAX_ENTRIES {
            return Err(FileRestoreError::Unsupported(format!("the selection holds more than {MAX_ENTRIES} entries; restore smaller parts of it")));
        }
        if entry.kind == EntryKind::Other {
            self.skip(src, "device, FIFO, socket or other special file: not restored".into());
            return Ok(());
        }
        if let Some(reason) = self.sink.refuse(dir, name, entry.kind) {
            self.skip(src, reason);
            return Ok(());
        }
        let existing = self.sink.existing(dir, name)?;
        let is_dir = entry.kind == EntryKind::Dir;
        let mut name = name.to_string();
        let mut replace = false;
        match existing {
            Existing::None => {}
            Existing::Dir if is_dir => return self.merge(dir, &name, src, entry, depth),
            _ => match self.policy {
                ConflictPolicy::Skip => {
                    self.skip(src, format!("{} of that name exists at the destination (conflict policy: skip)", existing.word()));
                    return Ok(());
                }
                ConflictPolicy::Overwrite => {
                    let replaceable = matches!(existing, Existing::File { .. } | Existing::Symlink);
                    if is_dir || !replaceable {
                        self.skip(src, format!("{} of that name exists at the destination and is not replaced by a {}", existing.word(), if is_dir { "directory" } else { "file or link" }));
                        return Ok(());
                    }
                    replace = true;
                }
                ConflictPolicy::KeepBoth => match self.free_name(dir, &name)? {
                    Some(n) => name = n,
                    None => {
                        self.skip(src, "no free name for a second copy at the destination".into());
                        return Ok(());
                    }
                },
            },
        }
        let meta = Meta::of(entry);
        match entry.kind {
            EntryKind::File => {
                let data = match self.fs.open_file(src) {
                    Ok(r) => r,
                    Err(e @ (guest_fs::Error::NotFound { .. } | guest_fs::Error::NotAFile { .. } | guest_fs::Error::Symlink { .. })) => {
                        self.skip(src, format!("cannot be read from the restore point: {e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(FileRestoreError::guest(e)),
                };
                let mut data = Counted { inner: data, progress: self.watch.progress };
                let written = self.sink.write_file(dir, &name, &mut data, &meta, replace);
                if let Some(n) = self.settle(src, written)? {
                    self.out.files += 1;
                    self.out.bytes += n;
                }
            }
            EntryKind::Symlink => {
                let Some(target) = entry.symlink_target.as_deref() else {
                    self.skip(src, "a link whose target cannot be read (an NTFS reparse point?): not restored".into());
                    return Ok(());
                };
                let made = self.sink.symlink(dir, &name, target, &meta, replace);
                if self.settle(src, made)?.is_some() {
                    self.out.symlinks += 1;
                }
            }
            EntryKind::Dir => {
                let created = self.sink.create_dir(dir, &name);
                if let Some(sub) = self.settle(src, created)? {
                    self.out.directories += 1;
                    self.children(&sub, src, depth)?;
                    let done = self.sink.finish_dir(sub, &meta, true);
                    self.settle(src, done)?;
                }
            }
            EntryKind::Other => unreachable!("skipped above"),
        }
        Ok(())
    }

    fn merge(&mut self, dir: &S::Dir, name: &str, src: &GuestPath, entry: &Entry, depth: usize) -> Result<()> {
        let opened = self.sink.open_dir(dir, name);
        if let Some(sub) = self.settle(src, opened)? {
            self.out.directories += 1;
            self.children(&sub, src, depth)?;
            let done = self.sink.finish_dir(sub, &Meta::of(entry), self.policy == ConflictPolicy::Overwrite);
            self.settle(src, done)?;
        }
        Ok(())
    }

    /// Everything inside the restore point's directory `src`, into `dir`.
    fn children(&mut self, dir: &S::Dir, src: &GuestPath, depth: usize) -> Result<()> {
        if depth + 1 > MAX_DEPTH {
            self.skip(src, format!("more than {MAX_DEPTH} directory levels below the selected path: its content is not restored"));
            return Ok(());
        }
        let mut offset = 0u64;
        loop {
            let page = match self.fs.list(src, offset, PAGE) {
                Ok(p) => p,
                Err(e @ (guest_fs::Error::NotFound { .. } | guest_fs::Error::NotADirectory { .. } | guest_fs::Error::Symlink { .. })) => {
                    self.skip(src, format!("its content cannot be listed: {e}"));
                    return Ok(());
                }
                Err(e) => return Err(FileRestoreError::guest(e)),
            };
            let count = page.entries.len() as u64;
            for e in page.entries {
                match src.child(&e.name) {
                    Ok(path) => self.entry(dir, &e.name, &path, &e, depth + 1)?,
                    Err(_) => {
                        let shown = format!("{}/{}", session_path(self.volume, src), e.name.escape_default());
                        let reason = "its name cannot be used as a file name (it holds `/`, `\\`, NUL or a control character)";
                        if self.out.skipped_total < SKIPS_LOGGED {
                            (self.watch.log)(format!("skipped: {shown}: {reason}"));
                        }
                        self.out.skipped_total += 1;
                        if self.out.skipped.len() < SKIPPED_LISTED {
                            self.out.skipped.push(SkippedFile { path: shown, reason: reason.into() });
                        }
                    }
                }
            }
            offset += count;
            if count == 0 || offset >= page.total {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_both_suffix_is_the_documented_one() {
        let t = DateTime::parse_from_rfc3339("2025-03-04T05:06:07Z").unwrap().with_timezone(&Utc);
        assert_eq!(keep_both_suffix(t), ".restored-20250304-050607");
    }
}
