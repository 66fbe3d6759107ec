//! FAT12/16/32 through the `fatfs` crate, which wants `Read + Write + Seek`:
//! [`FatIo`] refuses every write. Metadata calls run on a [`Worker`] thread;
//! file content streams from a [`pump`] thread that mounts its own
//! `FileSystem` (its file handles borrow it). Names match exactly first,
//! then case-insensitively (ASCII), as FAT does.

use std::io::{self, Read, Seek, SeekFrom, Write};

use fatfs::{DirEntry, FileAttributes, FileSystem, FsOptions};

use crate::detect::FsKind;
use crate::error::{Error, Result};
use crate::guest_fs::{check_dir_count, paginate, Entry, EntryKind, GuestFs, Listing, WinAttributes};
use crate::path::GuestPath;
use crate::pump;
use crate::read_at::Window;
use crate::worker::Worker;

/// FAT allows 65536 entries per directory; long names take extra slots.
const MAX_FAT_DIR_ENTRIES: usize = 65_536;

/// A read-only stream for `fatfs`.
pub(crate) struct FatIo(Window);

impl Read for FatIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Seek for FatIo {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}
impl Write for FatIo {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "guest-fs opens FAT read-only"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Fs = FileSystem<FatIo>;

/// A FAT filesystem.
pub(crate) struct FatFs {
    kind: FsKind,
    worker: Worker<Fs>,
    part: Window,
}

fn mount(kind: FsKind, part: Window) -> Result<Fs> {
    FileSystem::new(FatIo(part), FsOptions::new()).map_err(|e| Error::fs(kind, "opening", e))
}

impl FatFs {
    pub(crate) fn open(kind: FsKind, part: Window) -> Result<Self> {
        let p = part.clone();
        let worker = Worker::start(kind, move || mount(kind, p))?;
        Ok(FatFs { kind, worker, part })
    }
}

enum Found<'a> {
    Root,
    Entry(DirEntry<'a, FatIo>),
}

/// Finds `name` in `dir`: exact match first, then ASCII case-insensitive.
fn find<'a>(kind: FsKind, dir: &fatfs::Dir<'a, FatIo>, here: &GuestPath, name: &str) -> Result<DirEntry<'a, FatIo>> {
    let mut folded = None;
    for (count, e) in dir.iter().enumerate() {
        check_fat_count(here, count)?;
        let e = e.map_err(|e| Error::fs(kind, format!("reading the directory holding {here}"), e))?;
        let n = e.file_name();
        if n == name {
            return Ok(e);
        }
        if folded.is_none() && n.eq_ignore_ascii_case(name) {
            folded = Some(e);
        }
    }
    folded.ok_or_else(|| Error::NotFound { path: here.to_string() })
}

fn check_fat_count(dir: &GuestPath, count: usize) -> Result<()> {
    if count > MAX_FAT_DIR_ENTRIES {
        return Err(Error::limit(format!("entries in FAT directory {dir}"), MAX_FAT_DIR_ENTRIES as u64));
    }
    check_dir_count(dir, count)
}

fn resolve<'a>(kind: FsKind, fs: &'a Fs, path: &GuestPath) -> Result<Found<'a>> {
    let mut dir = fs.root_dir();
    let mut here = GuestPath::root();
    let mut found = Found::Root;
    for name in path.components() {
        if let Found::Entry(e) = &found {
            if !e.is_dir() {
                return Err(Error::NotADirectory { path: here.to_string() });
            }
            dir = e.to_dir();
        }
        here = here.child(name)?;
        found = Found::Entry(find(kind, &dir, &here, name)?);
    }
    Ok(found)
}

/// Unix seconds of a FAT local time, read as UTC.
fn unix_time(dt: fatfs::DateTime) -> Option<i64> {
    let (y, m, d) = (i64::from(dt.date.year), i64::from(dt.date.month), i64::from(dt.date.day));
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + i64::from(dt.time.hour) * 3600 + i64::from(dt.time.min) * 60 + i64::from(dt.time.sec))
}

fn describe(e: &DirEntry<'_, FatIo>, name: String) -> Entry {
    let a = e.attributes();
    let kind = if e.is_dir() { EntryKind::Dir } else { EntryKind::File };
    let mut out = Entry::new(name, kind);
    out.size = if kind == EntryKind::File { e.len() } else { 0 };
    out.mtime = unix_time(e.modified());
    out.attributes = Some(WinAttributes {
        read_only: a.contains(FileAttributes::READ_ONLY),
        hidden: a.contains(FileAttributes::HIDDEN),
        system: a.contains(FileAttributes::SYSTEM),
        archive: a.contains(FileAttributes::ARCHIVE),
    });
    out
}

impl GuestFs for FatFs {
    fn kind(&self) -> FsKind {
        self.kind
    }

    fn list(&self, dir: &GuestPath, offset: u64, limit: usize) -> Result<Listing> {
        let kind = self.kind;
        let dir = dir.clone();
        self.worker.call(move |fs| {
            let d = match resolve(kind, fs, &dir)? {
                Found::Root => fs.root_dir(),
                Found::Entry(e) if e.is_dir() => e.to_dir(),
                Found::Entry(_) => return Err(Error::NotADirectory { path: dir.to_string() }),
            };
            let mut items = Vec::new();
            for (count, e) in d.iter().enumerate() {
                check_fat_count(&dir, count)?;
                let e = e.map_err(|e| Error::fs(kind, format!("reading directory {dir}"), e))?;
                let name = e.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                items.push((name, e));
            }
            paginate(items, offset, limit, |name, e| Ok(describe(&e, name)))
        })
    }

    fn stat(&self, path: &GuestPath) -> Result<Entry> {
        let kind = self.kind;
        let path = path.clone();
        self.worker.call(move |fs| {
            Ok(match resolve(kind, fs, &path)? {
                Found::Root => Entry::new(String::new(), EntryKind::Dir),
                Found::Entry(e) => describe(&e, path.file_name().unwrap_or_default().to_string()),
            })
        })
    }

    fn open_file(&self, path: &GuestPath) -> Result<Box<dyn Read + Send>> {
        let kind = self.kind;
        let part = self.part.clone();
        let path = path.clone();
        pump::spawn(kind, path.to_string(), move |ready, sink| {
            let fs = mount(kind, part)?;
            let e = match resolve(kind, &fs, &path)? {
                Found::Entry(e) if e.is_file() => e,
                _ => return Err(Error::NotAFile { path: path.to_string() }),
            };
            // The directory entry's size bounds the read even if the cluster chain loops.
            let mut file = e.to_file().take(e.len());
            ready();
            sink.copy_from(&mut file).map_err(|err| Error::fs(kind, format!("reading {path}"), err))?;
            Ok(())
        })
    }
}
