//! File-level restore sessions. A session opens every disk of a restore
//! point through the engine's `SnapshotReader` (random access into the
//! deduplicated store: no image is written, nothing is mounted), reads the
//! partition tables and filesystems with `guest-fs`, and then serves
//! listings and file streams until it is closed or stays idle for
//! [`MOUNT_IDLE_MINUTES`].
//!
//! Paths inside a session start with the volume id (`/disk0-p1/etc`); they
//! go through `guest_fs::GuestPath`, the one normaliser, so `..` cannot
//! leave a volume and links are never followed.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use guest_fs::{Entry, EntryKind, FsKind, GuestFs, GuestPath, PartitionType, TableKind, WalkLimits};
use shared_types::restore::{FileEntry, FileKind, FileListing, Mount, Volume, MOUNTS_MAX, MOUNT_IDLE_MINUTES};

use crate::engine::datastore::Datastore;
use crate::engine::snapshot_reader::SnapshotReader;

/// Decoded chunks each disk reader keeps (64 KiB each).
const READER_CACHE_CHUNKS: usize = 256;
/// Ids of sessions closed for idleness that are still recognised as such.
const EXPIRED_REMEMBERED: usize = 256;

/// Why a session request cannot be served; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no file-level restore session has the id '{0}'; GET /api/v1/restore/mounts lists the open ones")]
    Unknown(String),
    #[error("file-level restore session '{0}' was closed after {MOUNT_IDLE_MINUTES} minutes without use; open a new one with POST /api/v1/restore/mount")]
    Expired(String),
    #[error("{MOUNTS_MAX} file-level restore sessions are open; close one (DELETE /api/v1/restore/{{mount_id}}) first")]
    TooMany,
    #[error("the restore point has no volume '{0}'; GET /api/v1/restore/{{mount_id}} lists its volumes")]
    NoVolume(String),
    #[error("volume '{volume}' cannot be browsed: {why}")]
    NotBrowsable { volume: String, why: String },
    #[error("{0}")]
    Guest(#[from] guest_fs::Error),
    #[error("reading the restore point: {0}")]
    Engine(#[from] crate::engine::EngineError),
    #[error("'/' holds the volumes; name a file or directory inside one (e.g. /{0}/...)")]
    RootIsNotAFile(String),
}

/// One volume as the session holds it.
struct OpenVolume {
    volume: Volume,
    fs: Option<Arc<dyn GuestFs>>,
}

/// An open session.
pub struct Session {
    info: Mutex<Mount>,
    volumes: Vec<OpenVolume>,
}

/// What a session path names.
pub enum Target<'a> {
    /// `/`: the volumes.
    Root,
    Volume { fs: &'a Arc<dyn GuestFs>, volume: &'a str, path: GuestPath },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn table_name(t: TableKind) -> &'static str {
    match t {
        TableKind::Gpt => "gpt",
        TableKind::Mbr => "mbr",
        TableKind::None => "none",
    }
}

fn type_name(t: &PartitionType) -> String {
    match t {
        PartitionType::Mbr { byte, name } => format!("{name} (0x{byte:02x})"),
        PartitionType::Gpt { name, .. } => (*name).to_string(),
        PartitionType::WholeDisk => "whole disk".into(),
    }
}

/// A volume id made only of characters a path component may hold.
pub fn volume_id(disk: &str, partition: Option<u32>) -> String {
    let disk: String = disk.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    match partition {
        Some(n) => format!("{disk}-p{n}"),
        None => disk,
    }
}

impl Session {
    /// Opens every disk of snapshot `name`/`id` in `ds` (blocking).
    pub fn open(ds: &Datastore, name: &str, id: &str, info: Mount) -> Result<Session, SessionError> {
        let manifest = ds.load_manifest(name, id)?;
        let mut volumes = Vec::new();
        for disk in &manifest.disks {
            let reader = SnapshotReader::open(ds, name, id, Some(&disk.name), READER_CACHE_CHUNKS)?;
            let opened = guest_fs::open(Arc::new(reader))?;
            let table = opened.table();
            for p in opened.partitions() {
                let partition = (table != TableKind::None).then(|| p.number.unwrap_or(p.index as u32 + 1));
                let fs = if p.filesystem.is_readable() { Some(opened.filesystem(p.index)) } else { None };
                let (fs, note) = match fs {
                    Some(Ok(fs)) => (Some(Arc::from(fs)), None),
                    Some(Err(e)) => (None, Some(e.to_string())),
                    None if p.filesystem == FsKind::Swap => (None, Some("swap space holds no files".to_string())),
                    None => (None, Some(format!("no filesystem Sendense can read was found ({})", p.filesystem))),
                };
                volumes.push(OpenVolume {
                    volume: Volume {
                        id: volume_id(&disk.name, partition),
                        disk: disk.name.clone(),
                        partition,
                        table: table_name(table).into(),
                        start_bytes: p.start,
                        size_bytes: p.length,
                        partition_type: type_name(&p.part_type),
                        filesystem: p.filesystem.to_string().to_lowercase(),
                        label: p.label.clone(),
                        browsable: fs.is_some(),
                        note,
                    },
                    fs,
                });
            }
        }
        let mut info = info;
        info.volumes = volumes.iter().map(|v| v.volume.clone()).collect();
        Ok(Session { info: Mutex::new(info), volumes })
    }

    pub fn set_open_ms(&mut self, ms: u64) {
        lock(&self.info).open_ms = ms;
    }

    pub fn info(&self) -> Mount {
        lock(&self.info).clone()
    }

    fn touch(&self, now: DateTime<Utc>, idle: Duration) {
        let mut info = lock(&self.info);
        info.last_used_at = now;
        info.expires_at = now + idle;
    }

    /// What `path` names: the root or a path on a browsable volume.
    pub fn resolve(&self, path: &str) -> Result<Target<'_>, SessionError> {
        let parsed = GuestPath::parse(path)?;
        let Some((volume, rest)) = parsed.components().split_first() else { return Ok(Target::Root) };
        let v = self.volumes.iter().find(|v| v.volume.id == *volume).ok_or_else(|| SessionError::NoVolume(volume.clone()))?;
        let fs = v.fs.as_ref().ok_or_else(|| SessionError::NotBrowsable {
            volume: volume.clone(),
            why: v.volume.note.clone().unwrap_or_else(|| "no readable filesystem".into()),
        })?;
        let mut inner = GuestPath::root();
        for c in rest {
            inner = inner.child(c)?;
        }
        Ok(Target::Volume { fs, volume: &v.volume.id, path: inner })
    }

    /// A page of the directory at `path` (blocking).
    pub fn list(&self, mount_id: &str, path: &str, offset: u64, limit: u64) -> Result<FileListing, SessionError> {
        match self.resolve(path)? {
            Target::Root => {
                let all: Vec<FileEntry> = self
                    .volumes
                    .iter()
                    .map(|v| FileEntry {
                        name: v.volume.id.clone(),
                        path: format!("/{}", v.volume.id),
                        kind: FileKind::Directory,
                        size: v.volume.size_bytes,
                        modified: None,
                        mode: None,
                        uid: None,
                        gid: None,
                        attributes: Vec::new(),
                        symlink_target: None,
                    })
                    .collect();
                let total = all.len() as u64;
                let entries = all.into_iter().skip(offset.min(total) as usize).take(limit as usize).collect();
                Ok(FileListing { mount_id: mount_id.into(), path: "/".into(), total, offset, entries })
            }
            Target::Volume { fs, volume, path: inner } => {
                let listing = fs.list(&inner, offset, usize::try_from(limit).unwrap_or(usize::MAX))?;
                let base = session_path(volume, &inner);
                let prefix = if base == "/" { String::new() } else { base.clone() };
                Ok(FileListing {
                    mount_id: mount_id.into(),
                    path: base,
                    total: listing.total,
                    offset,
                    entries: listing.entries.into_iter().map(|e| file_entry(&prefix, e)).collect(),
                })
            }
        }
    }
}

/// `/volume/inner/path`
pub fn session_path(volume: &str, inner: &GuestPath) -> String {
    if inner.is_root() {
        format!("/{volume}")
    } else {
        format!("/{volume}/{}", inner.as_relative())
    }
}

pub fn file_entry(dir: &str, e: Entry) -> FileEntry {
    let mut attributes = Vec::new();
    if let Some(a) = e.attributes {
        for (on, name) in [(a.read_only, "read-only"), (a.hidden, "hidden"), (a.system, "system"), (a.archive, "archive")] {
            if on {
                attributes.push(name.to_string());
            }
        }
    }
    FileEntry {
        path: format!("{dir}/{}", e.name),
        name: e.name,
        kind: match e.kind {
            EntryKind::Dir => FileKind::Directory,
            EntryKind::File => FileKind::File,
            EntryKind::Symlink => FileKind::Symlink,
            EntryKind::Other => FileKind::Other,
        },
        size: e.size,
        modified: e.mtime.and_then(|s| DateTime::from_timestamp(s, 0)),
        mode: e.mode.map(|m| m & 0o7777),
        uid: e.uid,
        gid: e.gid,
        attributes,
        symlink_target: e.symlink_target,
    }
}

/// The open sessions, with idle expiry.
pub struct Sessions {
    idle: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: HashMap<String, Arc<Session>>,
    expired: VecDeque<String>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(Duration::minutes(MOUNT_IDLE_MINUTES))
    }
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Sessions { idle, inner: Mutex::new(Inner::default()) }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Closes sessions idle past the limit; returns how many.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let mut inner = lock(&self.inner);
        let stale: Vec<String> = inner.open.iter().filter(|(_, s)| lock(&s.info).expires_at <= now).map(|(id, _)| id.clone()).collect();
        for id in &stale {
            inner.open.remove(id);
            inner.expired.push_back(id.clone());
            if inner.expired.len() > EXPIRED_REMEMBERED {
                inner.expired.pop_front();
            }
            tracing::info!(mount = %id, "closed an idle file-level restore session");
        }
        stale.len()
    }

    /// Whether another session may open now.
    pub fn check_room(&self) -> Result<(), SessionError> {
        self.sweep(Utc::now());
        if lock(&self.inner).open.len() >= MOUNTS_MAX {
            return Err(SessionError::TooMany);
        }
        Ok(())
    }

    pub fn insert(&self, session: Session) -> Result<Arc<Session>, SessionError> {
        self.check_room()?;
        let session = Arc::new(session);
        let id = session.info().id;
        lock(&self.inner).open.insert(id, session.clone());
        Ok(session)
    }

    /// The session, marked as used now.
    pub fn get(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        let now = Utc::now();
        self.sweep(now);
        let inner = lock(&self.inner);
        match inner.open.get(id) {
            Some(s) => {
                s.touch(now, self.idle);
                Ok(s.clone())
            }
            None if inner.expired.iter().any(|e| e == id) => Err(SessionError::Expired(id.into())),
            None => Err(SessionError::Unknown(id.into())),
        }
    }

    pub fn remove(&self, id: &str) -> Result<(), SessionError> {
        let mut inner = lock(&self.inner);
        match inner.open.remove(id) {
            Some(_) => Ok(()),
            None if inner.expired.iter().any(|e| e == id) => Err(SessionError::Expired(id.into())),
            None => Err(SessionError::Unknown(id.into())),
        }
    }

    /// Every open session, oldest first.
    pub fn list(&self) -> Vec<Mount> {
        self.sweep(Utc::now());
        let mut all: Vec<Mount> = lock(&self.inner).open.values().map(|s| s.info()).collect();
        all.sort_by_key(|m| m.opened_at);
        all
    }
}

/// Writes into a channel of byte chunks: the blocking side of a streamed
/// HTTP body. Fails once the receiver is gone (the client went away).
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
    buf: Vec<u8>,
}

/// Bytes gathered before a chunk goes to the client.
const STREAM_CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>) -> Self {
        ChannelWriter { tx, buf: Vec::with_capacity(STREAM_CHUNK) }
    }

    /// Ends the stream with an error the client sees as a broken transfer.
    pub fn fail(self, e: std::io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(STREAM_CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client stopped the download"))
    }
}

/// Streams a regular file's content into `out` (blocking).
pub fn copy_file(fs: &dyn GuestFs, path: &GuestPath, out: &mut ChannelWriter) -> Result<u64, SessionError> {
    let mut reader = fs.open_file(path)?;
    let n = std::io::copy(&mut reader, out).map_err(|e| guest_fs::Error::Io { what: format!("file {path}"), offset: 0, source: e })?;
    out.flush().map_err(|e| guest_fs::Error::Io { what: "the download".into(), offset: 0, source: e })?;
    Ok(n)
}

/// Writes the directory `dir` and everything below it as a tar archive
/// into `out` (blocking). Entry names are relative, under `top` (the
/// directory's own name); links are stored as links, never followed.
pub fn tar_directory(fs: &dyn GuestFs, dir: &GuestPath, top: &str, out: ChannelWriter) -> Result<(u64, ChannelWriter), SessionError> {
    let started = Instant::now();
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let io = |what: String| move |e: std::io::Error| SessionError::Guest(guest_fs::Error::Io { what, offset: 0, source: e });
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    tar.append_data(&mut header, Path::new(top), std::io::empty()).map_err(io(format!("archive entry {top}")))?;
    let mut files = 0u64;
    guest_fs::walk(fs, dir, WalkLimits::default(), &mut |path, entry| {
        let rel = relative_to(dir, path);
        let name = format!("{top}/{rel}");
        let mut header = tar::Header::new_gnu();
        header.set_mtime(entry.mtime.and_then(|t| u64::try_from(t).ok()).unwrap_or(0));
        let result = match entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(entry.mode.map(|m| m & 0o7777).unwrap_or(0o755));
                header.set_size(0);
                tar.append_data(&mut header, &name, std::io::empty())
            }
            EntryKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(entry.mode.map(|m| m & 0o7777).unwrap_or(0o644));
                header.set_size(entry.size);
                files += 1;
                let reader = fs.open_file(path)?;
                tar.append_data(&mut header, &name, SizedReader { inner: reader, left: entry.size })
            }
            EntryKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                let target = entry.symlink_target.clone().unwrap_or_default();
                tar.append_link(&mut header, &name, target)
            }
            EntryKind::Other => Ok(()),
        };
        result.map_err(|e| guest_fs::Error::Io { what: format!("archive entry {name}"), offset: 0, source: e })
    })?;
    let mut out = tar.into_inner().map_err(io("the end of the archive".into()))?;
    out.flush().map_err(io("the download".into()))?;
    tracing::info!(dir = %dir, files, ms = started.elapsed().as_millis() as u64, "directory streamed as tar");
    Ok((files, out))
}

/// `path` relative to its ancestor `dir`.
fn relative_to(dir: &GuestPath, path: &GuestPath) -> String {
    path.components()[dir.components().len()..].join("/")
}

/// Exactly `left` bytes: a file that turns out shorter is padded with zeros
/// (the tar header already promised its size), a longer one is cut.
struct SizedReader {
    inner: Box<dyn Read + Send>,
    left: u64,
}

impl Read for SizedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        let n = if n == 0 {
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}
