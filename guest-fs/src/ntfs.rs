//! NTFS through the `ntfs` crate. Metadata calls run on a [`Worker`] thread
//! (a stalled or panicking parser cannot take the caller down); file content
//! streams from a [`pump`] thread of its own. Reparse points (symbolic links,
//! junctions) are reported as links and never entered. Names are looked up
//! through the directory index, case-insensitively as Windows does.

use std::io::Read;
use std::sync::Arc;

use ntfs::indexes::NtfsFileNameIndex;
use ntfs::structured_values::{NtfsFileAttributeFlags, NtfsFileNamespace};
use ntfs::{Ntfs, NtfsFile, NtfsReadSeek, NtfsTime};

use crate::detect::FsKind;
use crate::error::{Error, Result};
use crate::guest_fs::{
    check_dir_count, paginate, Entry, EntryKind, GuestFs, Listing, WinAttributes,
};
use crate::path::GuestPath;
use crate::pump::{self, CHUNK};
use crate::read_at::Window;
use crate::worker::Worker;

const KIND: FsKind = FsKind::Ntfs;
/// File records below this number are NTFS metadata files ($MFT, $Bitmap...).
const FIRST_USER_RECORD: u64 = 16;

struct State {
    ntfs: Arc<Ntfs>,
    io: Window,
}

/// An NTFS filesystem.
pub(crate) struct NtfsFs {
    worker: Worker<State>,
    ntfs: Arc<Ntfs>,
    io: Window,
}

fn ferr(context: impl Into<String>, e: ntfs::NtfsError) -> Error {
    Error::fs(KIND, context, e)
}

impl NtfsFs {
    pub(crate) fn open(part: Window) -> Result<Self> {
        let io = part.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let worker = Worker::start(KIND, move || {
            let mut io = part;
            let mut ntfs = Ntfs::new(&mut io).map_err(|e| ferr("opening", e))?;
            ntfs.read_upcase_table(&mut io)
                .map_err(|e| ferr("reading the $UpCase table", e))?;
            let ntfs = Arc::new(ntfs);
            let _ = tx.send(ntfs.clone());
            Ok(State { ntfs, io })
        })?;
        let ntfs = rx.recv().map_err(|_| Error::Worker {
            fs: KIND,
            reason: "opening failed".into(),
        })?;
        Ok(NtfsFs { worker, ntfs, io })
    }
}

/// Seconds since 1970 from an NT timestamp (100 ns units since 1601).
fn unix_time(t: NtfsTime) -> i64 {
    (t.nt_timestamp() / 10_000_000) as i64 - 11_644_473_600
}

fn win_attributes(f: NtfsFileAttributeFlags) -> WinAttributes {
    WinAttributes {
        read_only: f.contains(NtfsFileAttributeFlags::READ_ONLY),
        hidden: f.contains(NtfsFileAttributeFlags::HIDDEN),
        system: f.contains(NtfsFileAttributeFlags::SYSTEM),
        archive: f.contains(NtfsFileAttributeFlags::ARCHIVE),
    }
}

/// The file at `path`, entering only real directories (no reparse points).
fn resolve<'n>(ntfs: &'n Ntfs, io: &mut Window, path: &GuestPath) -> Result<NtfsFile<'n>> {
    let mut file = ntfs
        .root_directory(io)
        .map_err(|e| ferr("reading the root directory", e))?;
    let comps = path.components();
    let mut here = GuestPath::root();
    for name in comps {
        if !file.is_directory() {
            return Err(Error::NotADirectory {
                path: here.to_string(),
            });
        }
        if is_reparse(&file)? {
            return Err(Error::Symlink {
                path: here.to_string(),
            });
        }
        here = here.child(name)?;
        let index = file
            .directory_index(io)
            .map_err(|e| ferr(format!("reading directory {here}"), e))?;
        let mut finder = index.finder();
        let entry = NtfsFileNameIndex::find(&mut finder, ntfs, io, name)
            .ok_or_else(|| Error::NotFound {
                path: here.to_string(),
            })?
            .map_err(|e| ferr(format!("looking up {here}"), e))?;
        let next = entry
            .to_file(ntfs, io)
            .map_err(|e| ferr(format!("reading the record of {here}"), e))?;
        file = next;
    }
    Ok(file)
}

fn is_reparse(file: &NtfsFile<'_>) -> Result<bool> {
    let info = file
        .info()
        .map_err(|e| ferr("reading standard information", e))?;
    Ok(info
        .file_attributes()
        .contains(NtfsFileAttributeFlags::REPARSE_POINT))
}

/// Size of the unnamed data stream (0 when there is none).
fn data_len(file: &NtfsFile<'_>, io: &mut Window) -> Result<u64> {
    match file.data(io, "") {
        None => Ok(0),
        Some(item) => {
            let item = item.map_err(|e| ferr("reading the data attribute", e))?;
            let attr = item
                .to_attribute()
                .map_err(|e| ferr("reading the data attribute", e))?;
            Ok(attr.value_length())
        }
    }
}

fn describe(file: &NtfsFile<'_>, io: &mut Window, name: String) -> Result<Entry> {
    let info = file
        .info()
        .map_err(|e| ferr(format!("reading standard information of {name}"), e))?;
    let flags = info.file_attributes();
    let kind = if flags.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
        EntryKind::Symlink
    } else if file.is_directory() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    let mut e = Entry::new(name, kind);
    e.size = if kind == EntryKind::File {
        data_len(file, io)?
    } else {
        0
    };
    e.mtime = Some(unix_time(info.modification_time()));
    e.attributes = Some(win_attributes(flags));
    Ok(e)
}

impl GuestFs for NtfsFs {
    fn kind(&self) -> FsKind {
        KIND
    }

    fn list(&self, dir: &GuestPath, offset: u64, limit: usize) -> Result<Listing> {
        let dir = dir.clone();
        self.worker.call(move |s| {
            let ntfs = s.ntfs.clone();
            let io = &mut s.io;
            let file = resolve(&ntfs, io, &dir)?;
            if !file.is_directory() {
                return Err(Error::NotADirectory {
                    path: dir.to_string(),
                });
            }
            if is_reparse(&file)? {
                return Err(Error::Symlink {
                    path: dir.to_string(),
                });
            }
            let index = file
                .directory_index(io)
                .map_err(|e| ferr(format!("reading directory {dir}"), e))?;
            let mut entries = index.entries();
            let mut items = Vec::new();
            let mut seen = 0usize;
            while let Some(entry) = entries.next(io) {
                let entry = entry.map_err(|e| ferr(format!("reading directory {dir}"), e))?;
                seen += 1;
                check_dir_count(&dir, seen)?;
                let Some(key) = entry.key() else { continue };
                let key = key.map_err(|e| ferr(format!("reading a name in {dir}"), e))?;
                if key.namespace() == NtfsFileNamespace::Dos {
                    continue;
                }
                let record = entry.file_reference().file_record_number();
                let name = key.name().to_string_lossy();
                if name == "." || (dir.is_root() && record < FIRST_USER_RECORD) {
                    continue;
                }
                items.push((name, entry.file_reference()));
            }
            paginate(items, offset, limit, |name, reference| {
                let file = reference
                    .to_file(&ntfs, io)
                    .map_err(|e| ferr(format!("reading the record of {name}"), e))?;
                describe(&file, io, name)
            })
        })
    }

    fn stat(&self, path: &GuestPath) -> Result<Entry> {
        let path = path.clone();
        self.worker.call(move |s| {
            let ntfs = s.ntfs.clone();
            let file = resolve(&ntfs, &mut s.io, &path)?;
            describe(
                &file,
                &mut s.io,
                path.file_name().unwrap_or_default().to_string(),
            )
        })
    }

    fn open_file(&self, path: &GuestPath) -> Result<Box<dyn Read + Send>> {
        let ntfs = self.ntfs.clone();
        let mut io = self.io.clone();
        let path = path.clone();
        pump::spawn(KIND, path.to_string(), move |ready, sink| {
            let file = resolve(&ntfs, &mut io, &path)?;
            if file.is_directory() {
                return Err(Error::NotAFile {
                    path: path.to_string(),
                });
            }
            if is_reparse(&file)? {
                return Err(Error::Symlink {
                    path: path.to_string(),
                });
            }
            let Some(item) = file.data(&mut io, "") else {
                ready();
                return Ok(());
            };
            let item = item.map_err(|e| ferr(format!("reading the data of {path}"), e))?;
            let attr = item
                .to_attribute()
                .map_err(|e| ferr(format!("reading the data of {path}"), e))?;
            let mut value = attr
                .value(&mut io)
                .map_err(|e| ferr(format!("reading the data of {path}"), e))?;
            let mut left = value.len();
            ready();
            while left > 0 {
                let want = CHUNK.min(usize::try_from(left).unwrap_or(CHUNK));
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    let n = value
                        .read(&mut io, &mut buf[filled..])
                        .map_err(|e| ferr(format!("reading {path}"), e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n.min(want - filled);
                }
                if filled == 0 {
                    return Err(Error::fs(
                        KIND,
                        format!("reading {path}"),
                        "data ends before the recorded size",
                    ));
                }
                buf.truncate(filled);
                left -= filled as u64;
                if !sink.send(buf) {
                    return Ok(());
                }
            }
            Ok(())
        })
    }
}
