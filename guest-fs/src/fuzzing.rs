//! The exhaustive, bounded exercise run by the fuzz target
//! (`guest-fs/fuzz`) and by the corpus regression test: open an arbitrary
//! image, then for every partition list every directory, stat every entry
//! and read the start of every file, all within caps. Every step may fail;
//! none may panic or hang.

use std::io::Read;
use std::sync::Arc;

use crate::disk::open;
use crate::guest_fs::{walk, EntryKind, WalkLimits};
use crate::path::GuestPath;
use crate::read_at::MemDisk;

/// Caps of one exercise.
const MAX_PARTITIONS: usize = 8;
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: u64 = 500;
const MAX_FILES_READ: usize = 64;
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What one exercise got through (for logs; the values do not matter).
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub partitions: usize,
    pub filesystems_opened: usize,
    pub entries: u64,
    pub bytes_read: u64,
    pub errors: u64,
}

/// Runs the exercise over `image` (a whole disk).
pub fn exercise(image: Vec<u8>) -> Summary {
    let mut s = Summary::default();
    let disk = match open(Arc::new(MemDisk(image))) {
        Ok(d) => d,
        Err(_) => {
            s.errors += 1;
            return s;
        }
    };
    s.partitions = disk.partitions().len();
    for part in disk.partitions().iter().take(MAX_PARTITIONS) {
        let fs = match disk.filesystem(part.index) {
            Ok(fs) => fs,
            Err(_) => {
                s.errors += 1;
                continue;
            }
        };
        s.filesystems_opened += 1;
        let _ = fs.stat(&GuestPath::root());
        let _ = fs.list(&GuestPath::root(), 1, 2);
        let _ = fs.stat(&GuestPath::parse("/missing/file").unwrap_or_default());
        let mut files = 0usize;
        let limits = WalkLimits {
            max_depth: MAX_DEPTH,
            max_entries: MAX_ENTRIES,
        };
        let mut visit = |path: &GuestPath, e: &crate::Entry| {
            s.entries += 1;
            if fs.stat(path).is_err() {
                s.errors += 1;
            }
            if e.kind == EntryKind::File && files < MAX_FILES_READ {
                files += 1;
                match fs.open_file(path) {
                    Ok(r) => {
                        let mut sink = [0u8; 8192];
                        let mut r = r.take(MAX_FILE_BYTES);
                        loop {
                            match r.read(&mut sink) {
                                Ok(0) => break,
                                Ok(n) => s.bytes_read += n as u64,
                                Err(_) => {
                                    s.errors += 1;
                                    break;
                                }
                            }
                        }
                    }
                    Err(_) => s.errors += 1,
                }
            }
            Ok(())
        };
        if walk(&*fs, &GuestPath::root(), limits, &mut visit).is_err() {
            s.errors += 1;
        }
    }
    s
}

/// True when a panic happened on one of this crate's parser threads
/// (`ext4-view`, `ntfs`, see `worker.rs` and `pump.rs`) outside this
/// crate's own code. Such a panic ends that thread only and reaches the
/// caller as [`crate::Error::Worker`]: it is contained, not a crash. The
/// fuzz target and the corpus test let these through (and print them) and
/// treat every other panic as a failure: any panic on the caller's thread,
/// and a panic in guest-fs's own code wherever it runs.
///
/// The location of a third-party parser's panic is not always in that
/// crate's files: an overflow or an out-of-range slice inside `core`,
/// `alloc` or a dependency of the parser (`binrw`, ...) is reported there.
/// What decides is the thread and that the location is not ours.
///
/// Known case: `ntfs` 0.4.0 indexes past an index entry shorter than its
/// 16-byte header (`index_entry.rs`, `NtfsIndexEntry::flags`).
pub fn is_contained_parser_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let on_parser_thread = std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("guest-fs "));
    let in_our_code = info
        .location()
        .is_none_or(|l| l.file().contains("guest-fs/src/"));
    on_parser_thread && !in_our_code
}
