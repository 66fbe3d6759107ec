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
            buf: Vec::new(),
            pos: 0,
            eof: false,
        }))
    }
}

/// A file open on the worker. Each call to the worker fills a whole
/// [`CHUNK`] (ext4-view reads at most one filesystem block per
/// `read_bytes`), which later `read`s are served from: a caller reading
/// 8 KiB at a time (`io::copy`, tar) costs one round trip per 64 KiB, not
/// one per block.
struct ExtReader {
    kind: FsKind,
    worker: Arc<Worker<State>>,
    id: u64,
    buf: Vec<u8>,
    pos: usize,
    /// The worker returned a short chunk: the file ends with `buf`.
    eof: bool,
}

impl ExtReader {
    /// The next chunk of the file from the worker (short only at the end).
    fn fill(&mut self) -> io::Result<()> {
        let id = self.id;
        let kind = self.kind;
        let mut chunk = std::mem::take(&mut self.buf);
        let chunk = self
            .worker
            .call(move |s| {
                let file = s.files.get_mut(&id).ok_or_else(|| Error::Worker {
                    fs: kind,
                    reason: "file handle is closed".into(),
                })?;
                chunk.resize(CHUNK, 0);
                let mut n = 0;
                while n < CHUNK {
                    let k = file
                        .read_bytes(&mut chunk[n..])
                        .map_err(|e| Error::fs(kind, "reading a file", e))?;
                    if k == 0 {
                        break;
                    }
                    n += k.min(CHUNK - n);
                }
                chunk.truncate(n);
                Ok(chunk)
            })
            .map_err(io::Error::other)?;
        self.eof = chunk.len() < CHUNK;
        self.buf = chunk;
        self.pos = 0;
        Ok(())
    }
}

impl Read for ExtReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.buf.len() {
            if self.eof {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
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
