//! The common read-only interface over every filesystem: [`GuestFs`], the
//! entries it returns, and [`walk`] for recursive traversal.

use std::io::Read;

use crate::detect::FsKind;
use crate::error::{Error, Result};
use crate::path::GuestPath;

/// Most entries read from one directory (bounds memory on hostile images).
pub const MAX_DIR_ENTRIES: usize = 1 << 20;
/// Largest page [`GuestFs::list`] returns.
pub const MAX_PAGE: usize = 10_000;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (ext) or reparse point (NTFS). Never followed.
    Symlink,
    /// Device, FIFO, socket...
    Other,
}

/// DOS/Windows attribute flags (NTFS, FAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WinAttributes {
    /// Read-only.
    pub read_only: bool,
    /// Hidden.
    pub hidden: bool,
    /// System file.
    pub system: bool,
    /// Changed since the last backup (archive bit).
    pub archive: bool,
}

/// One file, directory or link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name (names that are not UTF-8 are shown lossily and cannot
    /// be opened by path).
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification, unix seconds.
    pub mtime: Option<i64>,
    /// Unix mode bits (type and permissions), ext only.
    pub mode: Option<u32>,
    /// Owner, ext only.
    pub uid: Option<u32>,
    /// Group, ext only.
    pub gid: Option<u32>,
    /// NTFS / FAT attribute flags.
    pub attributes: Option<WinAttributes>,
    /// Where a symbolic link points, as stored (ext only; never followed).
    pub symlink_target: Option<String>,
}

impl Entry {
    pub(crate) fn new(name: String, kind: EntryKind) -> Self {
        Entry {
            name,
            kind,
            size: 0,
            mtime: None,
            mode: None,
            uid: None,
            gid: None,
            attributes: None,
            symlink_target: None,
        }
    }
}

/// One page of a directory, sorted by name (byte order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Number of entries in the whole directory (`.` and `..` excluded).
    pub total: u64,
    /// Index of `entries[0]` in the sorted directory.
    pub offset: u64,
    /// The entries of this page.
    pub entries: Vec<Entry>,
}

/// A guest filesystem opened read-only. All methods take normalised paths
/// (see [`GuestPath`]); a path through or at a symbolic link is refused
/// with [`Error::Symlink`], except for `stat`/`list` showing the link itself.
pub trait GuestFs: Send + Sync {
    /// The filesystem kind.
    fn kind(&self) -> FsKind;

    /// A page of `limit` entries (at most [`MAX_PAGE`]) starting at
    /// `offset` of the directory `dir`, sorted by name, with the total count.
    /// Asking for the same page twice gives the same entries.
    fn list(&self, dir: &GuestPath, offset: u64, limit: usize) -> Result<Listing>;

    /// The entry at `path` (a link is described, not followed). The root's
    /// name is empty.
    fn stat(&self, path: &GuestPath) -> Result<Entry>;

    /// A stream of the content of the regular file at `path`. Memory stays
    /// bounded whatever the file size; the stream is independent of `self`.
    fn open_file(&self, path: &GuestPath) -> Result<Box<dyn Read + Send>>;
}

/// Sorts `(name, handle)` pairs, then builds full entries only for the
/// requested page: listing a page of a large directory does not stat every
/// entry. Duplicated names (possible on corrupt images) are kept once, the
/// first read.
///
/// The sort orders positions, not the pairs: a handle can be hundreds of
/// bytes (ext4-view's `DirEntry` holds its name inline), and moving them
/// about took most of the time of a page of a 10,000-entry directory.
pub(crate) fn paginate<H>(
    items: Vec<(String, H)>,
    offset: u64,
    limit: usize,
    mut detail: impl FnMut(String, H) -> Result<Entry>,
) -> Result<Listing> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[a].0.cmp(&items[b].0));
    order.dedup_by(|a, b| items[*a].0 == items[*b].0);
    let total = order.len() as u64;
    let limit = limit.min(MAX_PAGE);
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(order.len());
    let end = start.saturating_add(limit).min(order.len());
    let mut slots: Vec<Option<(String, H)>> = items.into_iter().map(Some).collect();
    let mut entries = Vec::with_capacity(end - start);
    for &i in &order[start..end] {
        if let Some((name, handle)) = slots[i].take() {
            entries.push(detail(name, handle)?);
        }
    }
    Ok(Listing {
        total,
        offset,
        entries,
    })
}

/// Errors out once a directory yields more than [`MAX_DIR_ENTRIES`].
pub(crate) fn check_dir_count(path: &GuestPath, count: usize) -> Result<()> {
    if count > MAX_DIR_ENTRIES {
        return Err(Error::limit(
            format!("entries in directory {path}"),
            MAX_DIR_ENTRIES as u64,
        ));
    }
    Ok(())
}

/// Bounds for [`walk`].
#[derive(Debug, Clone, Copy)]
pub struct WalkLimits {
    /// Deepest directory visited below the start (the start is depth 0).
    pub max_depth: usize,
    /// Most entries visited in total.
    pub max_entries: u64,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_depth: 64,
            max_entries: 10_000_000,
        }
    }
}

/// Page size [`walk`] reads directories with.
const WALK_PAGE: usize = MAX_PAGE;

/// What [`walk`] went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Entries passed to the visitor.
    pub visited: u64,
    /// Entries left out because their name cannot be a path component
    /// (contains `/`, NUL, a control character or `\`, or is `.`/`..`):
    /// `(directory, name)`, the first 100 of them.
    pub skipped: Vec<(GuestPath, String)>,
    /// How many were left out in all.
    pub skipped_count: u64,
}

/// Visits every entry below the directory `start`, depth first; each
/// directory's entries come in name order, before the content of its
/// subdirectories. `visit` gets each entry's path and description. Links
/// are reported, never followed. Stops with [`Error::LimitExceeded`] past
/// `limits`, and with the first error `visit` or the filesystem returns.
pub fn walk(
    fs: &dyn GuestFs,
    start: &GuestPath,
    limits: WalkLimits,
    visit: &mut dyn FnMut(&GuestPath, &Entry) -> Result<()>,
) -> Result<WalkStats> {
    let mut stats = WalkStats::default();
    let mut visited = 0u64;
    // Each stack frame: a directory, its depth and the next offset to read.
    let mut stack: Vec<(GuestPath, usize, u64)> = vec![(start.clone(), 0, 0)];
    while let Some((dir, depth, offset)) = stack.pop() {
        let page = fs.list(&dir, offset, WALK_PAGE)?;
        let next = offset + page.entries.len() as u64;
        let more = !page.entries.is_empty() && next < page.total;
        let mut subdirs = Vec::new();
        for entry in &page.entries {
            visited += 1;
            if visited > limits.max_entries {
                return Err(Error::limit(
                    "entries visited by the walk",
                    limits.max_entries,
                ));
            }
            let Ok(path) = dir.child(&entry.name) else {
                stats.skipped_count += 1;
                if stats.skipped.len() < 100 {
                    stats.skipped.push((dir.clone(), entry.name.clone()));
                }
                continue;
            };
            visit(&path, entry)?;
            if entry.kind == EntryKind::Dir {
                if depth + 1 > limits.max_depth {
                    return Err(Error::limit(
                        format!("directory depth at {path}"),
                        limits.max_depth as u64,
                    ));
                }
                subdirs.push(path);
            }
        }
        // Resume this directory after its subdirectories of this page.
        if more {
            stack.push((dir, depth, next));
        }
        for sub in subdirs.into_iter().rev() {
            stack.push((sub, depth + 1, 0));
        }
    }
    stats.visited = visited;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[(&str, u32)], offset: u64, limit: usize) -> (u64, Vec<(String, u32)>) {
        let items = items.iter().map(|(n, h)| (n.to_string(), *h)).collect();
        let listing = paginate(items, offset, limit, |name, h| {
            let mut e = Entry::new(name, EntryKind::File);
            e.size = u64::from(h);
            Ok(e)
        })
        .unwrap();
        (
            listing.total,
            listing
                .entries
                .into_iter()
                .map(|e| (e.name, e.size as u32))
                .collect(),
        )
    }

    #[test]
    fn pages_are_sorted_by_name_with_duplicates_kept_once() {
        let items = [("c", 1), ("a", 2), ("b", 3), ("a", 4), ("d", 5)];
        let all = |v: &[(&str, u32)]| {
            v.iter()
                .map(|(n, h)| (n.to_string(), *h))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            page(&items, 0, 10),
            (4, all(&[("a", 2), ("b", 3), ("c", 1), ("d", 5)]))
        );
        assert_eq!(page(&items, 1, 2), (4, all(&[("b", 3), ("c", 1)])));
        assert_eq!(page(&items, 3, 2), (4, all(&[("d", 5)])));
        assert_eq!(page(&items, 9, 2), (4, vec![]));
        assert_eq!(page(&[], 0, 2), (0, vec![]));
    }
}
