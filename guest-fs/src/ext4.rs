//! ext2/3/4 through the `ext4-view` crate. Its objects use `Rc`, so they
//! live on a [`Worker`] thread; open files are kept there in a table and read
//! chunk by chunk. Paths are resolved one component at a time with
//! `symlink_metadata`, so a symbolic link is never followed.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType, Metadata};

use crate::detect::FsKind;
use crate::error::{Error, Result};
use crate::guest_fs::{check_dir_count, paginate, Entry, EntryKind, GuestFs, Listing};
use crate::path::GuestPath;
use crate::pump::CHUNK;
use crate::read_at::Window;
use crate::worker::Worker;

/// `Ext4Read` over a partition window.
struct Source(Window);

impl Ext4Read for Source {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0
            .read_exact_at(start_byte, dst)
            .map_err(|e| Box::new(e) as _)
    }
}

struct State {
    fs: Ext4,
    files: HashMap<u64, ext4_view::File>,
    next_id: u64,
}

/// Most files open at once on one ext filesystem.
const MAX_OPEN_FILES: usize = 1024;

/// An ext2/3/4 filesystem.
pub(crate) struct ExtFs {
    kind: FsKind,
    worker: Arc<Worker<State>>,
}

fn err(kind: FsKind, path: &GuestPath, e: Ext4Error) -> Error {
    match e {
        Ext4Error::NotFound => Error::NotFound {
            path: path.to_string(),
        },
        Ext4Error::NotADirectory => Error::NotADirectory {
            path: path.to_string(),
        },
        Ext4Error::IsADirectory | Ext4Error::IsASpecialFile => Error::NotAFile {
            path: path.to_string(),
        },
        other => Error::fs(kind, path.to_string(), other),
    }
}

impl ExtFs {
    pub(crate) fn open(kind: FsKind, part: Window) -> Result<Self> {
        let worker = Worker::start(kind, move || {
            let fs =
                Ext4::load(Box::new(Source(part))).map_err(|e| Error::fs(kind, "opening", e))?;
            Ok(State {
                fs,
                files: HashMap::new(),
                next_id: 0,
            })
        })?;
        Ok(ExtFs {
            kind,
            worker: Arc::new(worker),
        })
    }
}

/// Metadata of `path` without following any link on the way; intermediate
/// components must be directories.
fn resolve(kind: FsKind, fs: &Ext4, path: &GuestPath) -> Result<Metadata> {
    let comps = path.components();
    let mut abs = String::new();
    for (i, c) in comps.iter().enumerate() {
        abs.push('/');
        abs.push_str(c);
        let here = GuestPath::parse(&abs)?;
        let md = fs
            .symlink_metadata(abs.as_str())
            .map_err(|e| err(kind, &here, e))?;
        if i + 1 < comps.len() {
            if md.is_symlink() {
                return Err(Error::Symlink {
                    path: here.to_string(),
                });
            }
            if !md.is_dir() {
                return Err(Error::NotADirectory {
                    path: here.to_string(),
                });
            }
        } else {
            return Ok(md);
        }
    }
    fs.symlink_metadata("/").map_err(|e| err(kind, path, e))
}

fn entry_kind(t: FileType) -> (EntryKind, u32) {
    if t.is_dir() {
        (EntryKind::Dir, 0o040000)
    } else if t.is_regular_file() {
        (EntryKind::File, 0o100000)
    } else if t.is_symlink() {
        (EntryKind::Symlink, 0o120000)
    } else if t.is_block_dev() {
        (EntryKind::Other, 0o060000)
    } else if t.is_char_dev() {
        (EntryKind::Other, 0o020000)
    } else if t.is_fifo() {
        (EntryKind::Other, 0o010000)
    } else {
        (EntryKind::Other, 0o140000)
    }
}

fn to_entry(kind: FsKind, fs: &Ext4, name: String, abs: &str, md: &Metadata) -> Result<Entry> {
    let (ek, type_bits) = entry_kind(md.file_type());
    let mut e = Entry::new(name, ek);
    e.size = if ek == EntryKind::Dir { 0 } else { md.len() };
    e.mtime = Some(md.modified().seconds());
    e.mode = Some(type_bits | u32::from(md.mode()));
    e.uid = Some(md.uid());
    e.gid = Some(md.gid());
    if ek == EntryKind::Symlink {
        let target = fs
            .read_link(abs)
            .map_err(|e| Error::fs(kind, format!("reading link {abs}"), e))?;
        e.symlink_target = Some(String::from_utf8_lossy(target.as_ref()).into_owned());
    }
    Ok(e)
}

impl GuestFs for ExtFs {
    fn kind(&self) -> FsKind {
        self.kind
    }

    fn list(&self, dir: &GuestPath, offset: u64, limit: usize) -> Result<Listing> {
        let kind = self.kind;
        let dir = dir.clone();
        self.worker.call(move |s| {
            let md = resolve(kind, &s.fs, &dir)?;
            if md.is_symlink() {
                return Err(Error::Symlink {
                    path: dir.to_string(),
                });
            }
            if !md.is_dir() {
                return Err(Error::NotADirectory {
                    path: dir.to_string(),
                });
            }
            let abs = dir.as_absolute();
            let mut items = Vec::new();
            for entry in
                s.fs.read_dir(abs.as_str())
                    .map_err(|e| err(kind, &dir, e))?
            {
                let entry = entry.map_err(|e| err(kind, &dir, e))?;
                let raw = entry.file_name();
                let raw: &[u8] = raw.as_ref();
                if raw == b"." || raw == b".." {
                    continue;
                }
                items.push((String::from_utf8_lossy(raw).into_owned(), entry));
                check_dir_count(&dir, items.len())?;
            }
            let fs = &s.fs;
            paginate(items, offset, limit, |name, entry| {
                let md = entry.metadata().map_err(|e| err(kind, &dir, e))?;
                let path = entry.path();
                let abs = String::from_utf8_lossy(path.as_ref()).into_owned();
                to_entry(kind, fs, name, &abs, &md)
            })
        })
    }

    fn stat(&self, path: &GuestPath) -> Result<Entry> {
        let kind = self.kind;
        let path = path.clone();
        self.worker.call(move |s| {
            let md = resolve(kind, &s.fs, &path)?;
            to_entry(
                kind,
                &s.fs,
                path.file_name().unwrap_or_default().to_string(),
                &path.as_absolute(),
                &md,
            )
        })
    }

    fn open_file(&self, path: &GuestPath) -> Result<Box<dyn Read + Send>> {
        let kind = self.kind;
        let path = path.clone();
        let id = self.worker.call(move |s| {
            let md = resolve(kind, &s.fs, &path)?;
            if md.is_symlink() {
                return Err(Error::Symlink {
                    path: path.to_string(),
                });
            }
            if !md.file_type().is_regular_file() {
                return Err(Error::NotAFile {
                    path: path.to_string(),
                });
            }
            if s.files.len() >= MAX_OPEN_FILES {
                return Err(Error::limit(
                    "open files on this ext filesystem",
                    MAX_OPEN_FILES as u64,
                ));
            }
            let file =
                s.fs.open(path.as_absolute().as_str())
                    .map_err(|e| err(kind, &path, e))?;
            let id = s.next_id;
            s.next_id += 1;
            s.files.insert(id, file);
            Ok(id)
        })?;
        Ok(Box::new(ExtReader {
            kind,
            worker: self.worker.clone(),
            id,
        }))
    }
}

/// A file open on the worker, read one chunk per call.
struct ExtReader {
    kind: FsKind,
    worker: Arc<Worker<State>>,
    id: u64,
}

impl Read for ExtReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let id = self.id;
        let kind = self.kind;
        let want = buf.len().min(CHUNK);
        let data = self
            .worker
            .call(move |s| {
                let file = s.files.get_mut(&id).ok_or_else(|| Error::Worker {
                    fs: kind,
                    reason: "file handle is closed".into(),
                })?;
                let mut tmp = vec![0u8; want];
                let n = file
                    .read_bytes(&mut tmp)
                    .map_err(|e| Error::fs(kind, "reading a file", e))?;
                tmp.truncate(n.min(want));
                Ok(tmp)
            })
            .map_err(io::Error::other)?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

impl Drop for ExtReader {
    fn drop(&mut self) {
        let id = self.id;
        self.worker.post(move |s| {
            s.files.remove(&id);
        });
    }
}
