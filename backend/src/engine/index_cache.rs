//! The local index cache: where every chunk of a repository is stored
//! (digest → pack, offset, lengths, flags), kept on this machine's disk so
//! that opening a repository neither reads every pack index again nor holds
//! a map of every chunk in memory (design §5, issue 18).
//!
//! One directory per repository under [`root`] (the server's
//! `DATA_DIR/cache`, `$SENDENSE_CACHE_DIR`, or the user's cache directory),
//! named by the BLAKE3 of the repository's location and its `config.json`:
//!
//! ```text
//! state.json        the tables in force, how many packs they know
//! packs             one 33-byte record per pack ever seen: id, flags
//!                   (bit 0: has chunks compressed with the dictionary,
//!                   bit 1: purged, its chunks dropped from the tables)
//! run-<n>           sorted chunk tables (header, fan-out on the first
//!                   digest bits, 53-byte records), written whole, never
//!                   changed, memory-mapped for lookups
//! lock              flock: one process refreshes at a time
//! use               flock, shared by every process that has the cache
//!                   open (a cache in use is never removed); its time is
//!                   when the cache was last opened
//! location          the repository's location as it describes itself
//!                   (what [`remove_for`] and [`remove_stale`] match)
//! ```
//!
//! **Refresh** (every open): with a position in the repository's index
//! log ([`super::index_log`]), read the segments after it until a 404,
//! check that the segment it stood on and its anchor are still there
//! unchanged (two GETs when nothing is new) and apply their added and
//! removed packs; without one, or when the log could be stale (a GC whose
//! record is missing, a repository rolled back, a log compacted past the
//! cache), or a day after the last full listing, list `pack-index/` (the
//! fallback). Then GET only the indexes of
//! packs not in `packs`, write their chunks as a new table and merge it
//! into the delta table; the delta is merged into the base table once it
//! holds 1/8 of the base's chunks (or 262,144). Two tables at most: a
//! lookup of a chunk the repository lacks (most of a backup's new chunks)
//! maps about two pages of each, whatever the repository's size. Merges
//! read with plain reads, not the mapping: a refresh does not grow the
//! process's resident set with the tables' size.
//!
//! **Never authoritative.** The listing or the index log read at open
//! decides which packs are usable: a pack the cache knows but the listing
//! lacks or a GC's segment removed is not used, and its chunks are dropped at the next merge; a chunk the
//! cache lacks is stored again or looked up in the repository
//! ([`super::chunk_store::ChunkStore::read_chunk`]). The GC plan's
//! candidates are excluded by the caller, and a backup still checks every
//! pack it reused before its manifest. A cache that does not parse is
//! rebuilt from the repository.
//!
//! **Cleanup.** One mechanism, [`remove_where`] (never a cache some process
//! has open or is refreshing), with two rules: a repository leaving the
//! server's catalog takes its caches with it ([`remove_for`]), and at start
//! the server removes the caches under its own root whose location no
//! catalog repository has ([`remove_stale`]); the command line, which has
//! no catalog, removes (at most once a day) the caches not opened for
//! [`UNUSED_DAYS`] days (or `$SENDENSE_CACHE_MAX_AGE_DAYS`; `0` or `off`:
//! never) and those of a local repository that is gone ([`remove_unused`],
//! [`sweep_unused`]).

use std::collections::HashMap;
use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::chunk_codec::FLAG_DICT;
use super::digest::Digest;
use super::error::{EngineError, Result};
use super::pack::{self, PackEntry};
use super::repository::Repository;

/// Environment variable naming the cache root (wins over [`set_root`]).
pub const ENV_DIR: &str = "SENDENSE_CACHE_DIR";

static ROOT: RwLock<Option<PathBuf>> = RwLock::new(None);

/// The process's cache root (the server sets `DATA_DIR/cache`).
pub fn set_root(dir: PathBuf) {
    *ROOT.write().unwrap_or_else(|e| e.into_inner()) = Some(dir);
}

/// Where repository caches live: `$SENDENSE_CACHE_DIR`, else what
/// [`set_root`] set, else `$XDG_CACHE_HOME/sendense/index` or
/// `~/.cache/sendense/index`, else the temporary directory (the library's
/// unit tests: a directory of their own under the temporary directory).
pub fn root() -> PathBuf {
    if let Some(v) = std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    if let Some(r) = ROOT.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return r;
    }
    #[cfg(test)]
    let fallback = unit_test_root();
    #[cfg(not(test))]
    let fallback = user_root();
    fallback
}

/// `$XDG_CACHE_HOME/sendense/index` or `~/.cache/sendense/index`, else the temporary directory.
#[cfg_attr(test, allow(dead_code))]
fn user_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute()).map(|h| h.join(".cache"));
    match xdg.or(home) {
        Some(c) => c.join("sendense").join("index"),
        None => std::env::temp_dir().join(format!("sendense-index-{}", rustix::process::getuid().as_raw())),
    }
}

/// The library's unit tests keep their caches in a directory of the test
/// process under the temporary directory (those of ended processes are
/// removed when the next starts), never in the user's cache.
#[cfg(test)]
fn unit_test_root() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("sendense-unit-test-index-{}", rustix::process::getuid().as_raw()));
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = e.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("pid-")).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        base.join(format!("pid-{}", std::process::id()))
    })
    .clone()
}

/// The cache directory of the repository at `location` whose `config.json` is `config`.
pub fn dir_for(location: &str, config: &[u8]) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(b"sendense index cache v1\0");
    h.update(location.as_bytes());
    h.update(b"\0");
    h.update(config);
    root().join(&h.finalize().to_hex()[..32])
}

/// `dir` if this process can write there, else the same name under the
/// temporary directory (a read-only home must not stop a backup).
pub fn writable_dir(dir: PathBuf) -> PathBuf {
    let ok = |d: &Path| {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d).is_ok()
            && OpenOptions::new().create(true).truncate(false).write(true).open(d.join(LOCK_FILE)).is_ok()
    };
    if ok(&dir) {
        return dir;
    }
    let name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let fallback = std::env::temp_dir().join(format!("sendense-index-{}", rustix::process::getuid().as_raw())).join(name);
    tracing::warn!(cache = %dir.display(), instead = %fallback.display(), "index cache directory not writable");
    fallback
}

/// The file naming the repository a cache directory belongs to.
const LOCATION_FILE: &str = "location";
/// The flock taken exclusively while a process refreshes the cache.
const LOCK_FILE: &str = "lock";
/// The flock every process that has the cache open holds shared; its
/// modification time is when the cache was last opened.
const USE_FILE: &str = "use";

/// A cache directory as [`remove_where`]'s rule sees it.
#[derive(Debug, Clone)]
pub struct CacheDir {
    pub path: PathBuf,
    /// The repository location it recorded (`None`: none).
    pub location: Option<String>,
    /// When a process last opened it (the `use` file's time; for a cache
    /// made before that file existed, its state's or the directory's).
    pub last_used: Option<std::time::SystemTime>,
}

impl CacheDir {
    fn of(path: PathBuf) -> CacheDir {
        let mtime = |name: &str| std::fs::metadata(path.join(name)).and_then(|m| m.modified()).ok();
        let last_used = mtime(USE_FILE).or_else(|| mtime("state.json")).or_else(|| mtime(""));
        CacheDir { location: location_of(&path), last_used, path }
    }
}

/// Takes the cache's refresh lock (exclusive), in a directory that is still
/// the cache's: one [`remove_where`] removed while we waited for the lock is
/// made again.
fn lock_dir(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..8 {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let held = lock.metadata()?;
        match std::fs::metadata(dir.join(LOCK_FILE)) {
            Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => return Ok(lock),
            _ => continue, // removed under us: make it again
        }
    }
    Err(std::io::Error::other("the cache directory kept being removed"))
}

/// The repository location recorded in the cache directory `dir` (`None`:
/// not a cache, or one made before caches recorded it).
pub fn location_of(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(LOCATION_FILE)).ok()
}

/// Removes the cache directories under `root` for which `remove` says so,
/// unless a process has one open or is refreshing it at that moment (its
/// `use` or `lock` flock is held). Only directories named like caches are
/// looked at. Returns how many were removed.
pub fn remove_where(root: &Path, remove: impl Fn(&CacheDir) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let cache_like = name.len() == 32 && name.to_string_lossy().bytes().all(|b| b.is_ascii_hexdigit());
        if !cache_like || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        if !remove(&CacheDir::of(dir.clone())) {
            continue;
        }
        let held = |name: &str| -> Option<File> {
            let f = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(name)).ok()?;
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
            Some(f)
        };
        // Refresh lock first (what an opener takes first), then no user.
        let Some(_lock) = held(LOCK_FILE) else { continue };
        let Some(_unused) = held(USE_FILE) else { continue };
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(cache = %dir.display(), error = %e, "removing an index cache"),
        }
    }
    removed
}

/// Removes the caches (under [`root`]) of the repository at `location`
/// (what its `describe()` says): it left the catalog.
pub fn remove_for(location: &str) -> usize {
    remove_where(&root(), |c| c.location.as_deref() == Some(location))
}

/// Removes the caches under `root` of repositories whose location is not
/// in `keep`, and those that recorded none.
pub fn remove_stale(root: &Path, keep: &std::collections::HashSet<String>) -> usize {
    remove_where(root, |c| c.location.as_deref().is_none_or(|l| !keep.contains(l)))
}

/// A cache nobody opened for this many days is removed by the command line
/// ([`remove_unused`]) unless [`ENV_MAX_AGE`] says otherwise.
pub const UNUSED_DAYS: u64 = 30;

/// Environment variable of the command line: how many days a cache may go
/// unopened before the sweep removes it (a whole number of days, default
/// [`UNUSED_DAYS`]); `0` or `off`: no sweep at all.
pub const ENV_MAX_AGE: &str = "SENDENSE_CACHE_MAX_AGE_DAYS";

/// The longest age [`ENV_MAX_AGE`] takes (a century).
const MAX_AGE_DAYS: u64 = 36_500;

/// [`ENV_MAX_AGE`] holds something that is not a number of days.
#[derive(Debug, thiserror::Error)]
#[error("{ENV_MAX_AGE}={value:?}: give a whole number of days from 1 to {MAX_AGE_DAYS} (default {UNUSED_DAYS}), or 0 or 'off' to never remove unused index caches")]
pub struct BadMaxAge {
    pub value: String,
}

/// The age in days after which the command line's sweep removes a cache
/// nobody opened, from [`ENV_MAX_AGE`]'s value (`None`: not set or empty,
/// [`UNUSED_DAYS`]): `Ok(None)` when the sweep is off (`0`, `off`).
pub fn max_age_days(value: Option<&std::ffi::OsStr>) -> std::result::Result<Option<u64>, BadMaxAge> {
    let Some(value) = value else { return Ok(Some(UNUSED_DAYS)) };
    let bad = || BadMaxAge { value: value.to_string_lossy().into_owned() };
    let text = value.to_str().ok_or_else(bad)?.trim();
    if text.is_empty() {
        return Ok(Some(UNUSED_DAYS));
    }
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(days) if days <= MAX_AGE_DAYS => Ok(Some(days)),
        _ => Err(bad()),
    }
}

/// The command line's rule (it has no catalog): removes the caches under
/// `root` not opened for `max_age`, and those of a local repository whose
/// directory holds no repository any more (its location is an absolute
/// path without `config.json` in a parent directory that exists: a whole
/// missing tree, such as an unplugged disk, is left to the age rule).
/// Caches in use are kept ([`remove_where`]).
pub fn remove_unused(root: &Path, max_age: std::time::Duration) -> usize {
    let now = std::time::SystemTime::now();
    remove_where(root, |c| {
        let old = c.last_used.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age));
        let gone = c.location.as_deref().is_some_and(|l| {
            let p = Path::new(l);
            p.is_absolute() && !p.join(super::datastore::CONFIG_KEY).exists() && p.parent().is_some_and(Path::exists)
        });
        old || gone
    })
}

/// Name of the file under the root whose time says when [`sweep_unused`]
/// last ran.
const SWEPT_FILE: &str = "swept";

/// [`remove_unused`] on [`root`] with an age of `days` ([`max_age_days`]),
/// at most once a day (the `swept` file under the root records the last
/// sweep): what the command line runs before a command that opens
/// repositories. Best effort; returns how many caches were removed.
pub fn sweep_unused(days: u64) -> usize {
    let root = root();
    let stamp = root.join(SWEPT_FILE);
    let recent = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(24 * 3600));
    if recent || !root.is_dir() {
        return 0;
    }
    if std::fs::write(&stamp, b"").is_err() {
        return 0;
    }
    let removed = remove_unused(&root, std::time::Duration::from_secs(days * 24 * 3600));
    if removed > 0 {
        tracing::info!(count = removed, root = %root.display(), "removed index caches unused for {days} days or of repositories that are gone");
    }
    removed
}

const RUN_MAGIC: &[u8; 8] = b"SDCRUN01";
const HEADER: usize = 24;
/// digest 32, pack u32, offset u64, stored u32, plain u32, flags u8.
const REC: usize = 53;
const PACK_REC: usize = 33;
const PACK_DICT: u8 = 1;
const PACK_PURGED: u8 = 2;
/// Known gone (the listing at a full refresh lacked it, or a GC's index log
/// segment removed it): never used again; its chunks go at the next merge.
const PACK_GONE: u8 = 4;
/// New chunks gathered in memory before they are written as a table (a
/// first open of a big repository does not hold every chunk at once).
const FLUSH_RECS: usize = 1 << 18;
/// Buffer of a table's sequential reads and writes (merges): small, the
/// resident set stays flat whatever the tables' size.
const IO_BUF: usize = 128 << 10;
/// The newer table (the delta) is merged into the base once it holds
/// this fraction of the base's records (or [`FLUSH_RECS`]).
const DELTA_RATIO: usize = 8;

/// One chunk's place, as the tables hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rec {
    pub digest: Digest,
    /// Pack number (a position in [`Opened::packs`]).
    pub pack: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub flags: u8,
}

impl Rec {
    fn of(pack: u32, e: &PackEntry) -> Rec {
        Rec { digest: e.digest, pack, offset: e.offset, stored_len: e.stored_len, raw_len: e.raw_len, flags: e.flags }
    }

    fn write(&self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.digest.0);
        out[32..36].copy_from_slice(&self.pack.to_le_bytes());
        out[36..44].copy_from_slice(&self.offset.to_le_bytes());
        out[44..48].copy_from_slice(&self.stored_len.to_le_bytes());
        out[48..52].copy_from_slice(&self.raw_len.to_le_bytes());
        out[52] = self.flags;
    }

    fn read(b: &[u8]) -> Rec {
        Rec {
            digest: Digest(b[..32].try_into().expect("32 bytes")),
            pack: u32::from_le_bytes(b[32..36].try_into().expect("4 bytes")),
            offset: u64::from_le_bytes(b[36..44].try_into().expect("8 bytes")),
            stored_len: u32::from_le_bytes(b[44..48].try_into().expect("4 bytes")),
            raw_len: u32::from_le_bytes(b[48..52].try_into().expect("4 bytes")),
            flags: b[52],
        }
    }
}

/// A read-only memory mapping of a whole file.
struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

// The mapping is read-only and the file is never written after it is published.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn of(file: &File, len: usize) -> std::io::Result<Mapping> {
        use rustix::mm::{madvise, mmap, Advice, MapFlags, ProtFlags};
        // SAFETY: a fresh private read-only mapping of `len` bytes of a file
        // this module publishes whole and never modifies or truncates.
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::PRIVATE, file, 0)? };
        // Lookups jump around: no read-ahead into the resident set.
        // SAFETY: the range is the mapping just made.
        let _ = unsafe { madvise(ptr, len, Advice::Random) };
        Ok(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until drop.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `of`; no borrow outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// Tables up to this size are memory-mapped; larger ones are read with
/// `pread` (one read of a fan-out bucket per lookup): the kernel maps up to
/// 16 cached pages around every page fault, so random lookups in a big
/// mapped table would soon make the whole table resident.
const MAP_LIMIT: usize = 4 << 20;

/// One sorted chunk table.
pub struct Run {
    access: Access,
    count: usize,
    bits: u32,
}

enum Access {
    Mapped(Mapping),
    /// The file and its fan-out table (at most 65,537 entries).
    Read { file: File, fan: Vec<u32> },
}

fn prefix(d: &Digest, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (u16::from_be_bytes([d.0[0], d.0[1]]) >> (16 - bits)) as usize
    }
}

fn bits_for(count: usize) -> u32 {
    (usize::BITS - count.max(1).leading_zeros() - 1).min(16)
}

fn fan_len(bits: u32) -> usize {
    ((1usize << bits) + 1) * 4
}

impl Run {
    fn open(path: &Path) -> std::result::Result<Run, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
        let mut head = [0u8; HEADER];
        file.read_exact_at(&mut head, 0).map_err(|e| format!("header: {e}"))?;
        if &head[..8] != RUN_MAGIC {
            return Err("bad magic".into());
        }
        let count = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) as usize;
        let bits = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
        if bits > 16 || len != HEADER + fan_len(bits) + count * REC {
            return Err(format!("{len} bytes for {count} records"));
        }
        let access = if len <= MAP_LIMIT {
            Access::Mapped(Mapping::of(&file, len).map_err(|e| format!("mmap: {e}"))?)
        } else {
            let mut raw = vec![0u8; fan_len(bits)];
            file.read_exact_at(&mut raw, HEADER as u64).map_err(|e| format!("fan-out: {e}"))?;
            let fan = raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            Access::Read { file, fan }
        };
        Ok(Run { access, count, bits })
    }

    /// The first record of `d` that `usable` accepts.
    pub fn find(&self, d: &Digest, usable: impl Fn(&Rec) -> bool) -> Option<Rec> {
        let p = prefix(d, self.bits);
        match &self.access {
            Access::Mapped(map) => {
                let bytes = map.bytes();
                let fan = |i: usize| u32::from_le_bytes(bytes[HEADER + i * 4..HEADER + i * 4 + 4].try_into().expect("4 bytes")) as usize;
                let recs = &bytes[HEADER + fan_len(self.bits)..];
                let hi = fan(p + 1).min(self.count);
                let lo = fan(p).min(hi);
                find_in(&recs[lo * REC..hi * REC], d, usable)
            }
            Access::Read { file, fan } => {
                let hi = (fan[p + 1] as usize).min(self.count);
                let lo = (fan[p] as usize).min(hi);
                let mut buf = vec![0u8; (hi - lo) * REC];
                let at = (HEADER + fan_len(self.bits) + lo * REC) as u64;
                if let Err(e) = file.read_exact_at(&mut buf, at) {
                    // Not found is safe: a backup stores the chunk again, a read looks further.
                    tracing::warn!(error = %e, "index cache read failed");
                    return None;
                }
                find_in(&buf, d, usable)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The first record of `d` in `recs` (whole sorted records) that `usable` accepts.
fn find_in(recs: &[u8], d: &Digest, usable: impl Fn(&Rec) -> bool) -> Option<Rec> {
    let n = recs.len() / REC;
    let key = |i: usize| &recs[i * REC..i * REC + 32];
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid) < &d.0[..] {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    while lo < n && key(lo) == &d.0[..] {
        let r = Rec::read(&recs[lo * REC..(lo + 1) * REC]);
        if usable(&r) {
            return Some(r);
        }
        lo += 1;
    }
    None
}

/// Writes records (sorted by digest, at most `upper` of them) as table
/// `path`, whole: a temporary name, synced, then renamed. The count written.
fn write_run(path: &Path, upper: usize, recs: impl Iterator<Item = std::io::Result<Rec>>) -> std::io::Result<usize> {
    let bits = bits_for(upper);
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(IO_BUF, file);
    w.write_all(&[0u8; HEADER])?;
    w.write_all(&vec![0u8; fan_len(bits)])?;
    let mut fan = vec![0u32; (1usize << bits) + 1];
    let mut buf = [0u8; REC];
    let mut count = 0usize;
    for r in recs {
        let r = r?;
        fan[prefix(&r.digest, bits) + 1] += 1;
        r.write(&mut buf);
        w.write_all(&buf)?;
        count += 1;
    }
    for i in 1..fan.len() {
        fan[i] += fan[i - 1];
    }
    let mut head = [0u8; HEADER];
    head[..8].copy_from_slice(RUN_MAGIC);
    head[8..16].copy_from_slice(&(count as u64).to_le_bytes());
    head[16..20].copy_from_slice(&bits.to_le_bytes());
    w.seek(SeekFrom::Start(0))?;
    w.write_all(&head)?;
    let fan_bytes: Vec<u8> = fan.iter().flat_map(|f| f.to_le_bytes()).collect();
    w.write_all(&fan_bytes)?;
    // Not synced: the cache is rebuildable, and what a crash can leave
    // (zeros, a short file) is a table that fails its checks or a chunk
    // not found (stored again), never a chunk placed in the wrong pack.
    drop(w.into_inner().map_err(|e| e.into_error())?);
    std::fs::rename(&tmp, path)?;
    Ok(count)
}

/// Reads a table's records in order with plain reads (not the mapping).
struct RunReader {
    r: BufReader<File>,
    left: usize,
}

impl RunReader {
    fn open(path: &Path) -> std::io::Result<RunReader> {
        let mut f = File::open(path)?;
        let mut head = [0u8; HEADER];
        f.read_exact(&mut head)?;
        let count = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) as usize;
        let bits = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
        f.seek(SeekFrom::Start((HEADER + fan_len(bits)) as u64))?;
        Ok(RunReader { r: BufReader::with_capacity(IO_BUF, f), left: count })
    }

    fn next(&mut self) -> std::io::Result<Option<Rec>> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = [0u8; REC];
        self.r.read_exact(&mut b)?;
        self.left -= 1;
        Ok(Some(Rec::read(&b)))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// Records of `packs` in force (the file may be longer after a crash).
    packs: usize,
    runs: Vec<RunState>,
    next: u64,
    /// Where the cache stands in the repository's index log (`None`: the
    /// next open lists everything).
    #[serde(default)]
    log: Option<LogPos>,
}

/// A cache's position in the index log ([`super::index_log`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LogPos {
    /// The newest segment applied (or that existed before the last full listing).
    seq: u64,
    /// Every GC with a plan up to this number has its removals in the tables.
    gc: u64,
    /// When the last full listing was made (this machine's clock, seconds
    /// since the epoch): after [`FULL_LISTING_EVERY`] the next open lists
    /// again, which bounds how long a pack deleted outside the GC protocol
    /// (by hand) stays in the cache. Only the cache's own refresh policy,
    /// compared with no object's time.
    #[serde(default)]
    listed_at: u64,
    /// The newest segment whose contents the cache holds (the newest it
    /// applied, listed up to, or its own writers published), with the hash
    /// of its body: an open checks it is still there, unchanged (`None`: a
    /// cache from before anchors; the next open records one).
    #[serde(default)]
    anchor: Option<Anchor>,
}

/// A segment the cache's contents rest on: its number and the BLAKE3 of its body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Anchor {
    seq: u64,
    hash: String,
}

/// A warm cache still lists every pack index once this long after its last
/// full listing (see [`LogPos::listed_at`]).
pub const FULL_LISTING_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How [`open`] refreshes the cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refresh {
    /// List every pack index (the fallback) even with a warm cache.
    pub full: bool,
    /// The newest GC plan number the caller has just read (0: none), read
    /// before the open; `None`: the open reads it.
    pub newest_plan: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    name: String,
    count: usize,
}

/// A repository's cache, refreshed and opened.
pub struct Opened {
    /// Pack ids by pack number (every pack the cache has seen).
    pub packs: Vec<Digest>,
    /// Whether the pack was listed at open (false: gone, or purged).
    pub listed: Vec<bool>,
    /// Whether the pack holds chunks compressed with the dictionary.
    pub dict: Vec<bool>,
    pub runs: Vec<Run>,
    /// Pack indexes read by this refresh (the others came from the cache).
    pub indexes_read: usize,
    /// Whether this refresh listed every pack index (else it read the index log).
    pub listed_all: bool,
    /// Why it listed everything (`None` when it did not).
    pub relist_reason: Option<String>,
    /// The index log position the cache stands at.
    pub log_seq: u64,
    /// The shared flock on the `use` file: held as long as the cache is
    /// used (keep it with the tables), so no cleanup removes it.
    pub in_use: File,
}

struct Pack {
    id: Digest,
    flags: u8,
}

/// Refreshes the cache in `dir` from `repo` and opens it. `read_index`
/// gives a pack's entries (`None`: it vanished since the listing).
pub fn open(
    dir: &Path,
    repo: &dyn Repository,
    refresh: Refresh,
    read_index: impl Fn(&Digest, &str) -> Result<Option<Vec<PackEntry>>>,
) -> Result<Opened> {
    let io = |what: &str, e: std::io::Error| {
        EngineError::Pipeline(format!("index cache {}: {what}: {e}", dir.display()))
    };
    let lock = lock_dir(dir).map_err(|e| io("lock", e))?;
    // In use from now on (the refresh lock keeps cleanups out meanwhile).
    let in_use = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(USE_FILE)).map_err(|e| io("use", e))?;
    rustix::fs::flock(&in_use, rustix::fs::FlockOperation::LockShared).map_err(|e| io("use", e.into()))?;
    let _ = in_use.set_modified(std::time::SystemTime::now());
    let location = repo.describe();
    if location_of(dir).as_deref() != Some(location.as_str()) {
        let tmp = dir.join("location.tmp");
        std::fs::write(&tmp, &location).map_err(|e| io("location", e))?;
        std::fs::rename(&tmp, dir.join(LOCATION_FILE)).map_err(|e| io("location", e))?;
    }

    let mut fresh = false;
    let (mut state, mut packs) = match load(dir) {
        Ok(x) => x,
        Err(reason) => {
            fresh = true;
            if reason != "absent" {
                tracing::warn!(cache = %dir.display(), %reason, "index cache unreadable; rebuilding it from the repository");
            }
            for e in std::fs::read_dir(dir).map_err(|e| io("read", e))?.flatten() {
                if e.file_name().to_string_lossy().starts_with("run-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            (State { version: 1, ..State::default() }, Vec::new())
        }
    };
    let known_packs = state.packs;

    // What the repository holds now: from the index log when the cache
    // has a position in it and nothing says it could be stale, else from
    // the full listing (read the newest plan, then the log's head, then
    // list: every GC record and segment up to the head is in the listing).
    let old_log = state.log.clone();
    let newest_plan = match refresh.newest_plan {
        Some(p) => p,
        None => super::gc_plan::plan_seqs(repo)?.last().copied().unwrap_or(0),
    };
    let mut by_id: HashMap<Digest, u32> = HashMap::with_capacity(packs.len());
    for (p, pk) in packs.iter().enumerate() {
        if pk.flags & (PACK_PURGED | PACK_GONE) == 0 {
            by_id.insert(pk.id, p as u32);
        }
    }
    let mut listed = vec![false; packs.len()];
    let mut new = Vec::new();
    let mut gone_any = false;
    let mut relist_reason = match (refresh.full, fresh, &old_log) {
        (true, _, _) => Some("asked for".to_string()),
        (_, true, _) => Some("new cache".to_string()),
        (_, _, None) => Some("no index log position".to_string()),
        _ => None,
    };
    let abandoned = abandoned_marks(dir);
    if relist_reason.is_none() && !abandoned.is_empty() {
        relist_reason = Some("a writer on this machine stopped before publishing the packs it put in the cache".to_string());
    }
    if let (None, Some(pos)) = (&relist_reason, &old_log) {
        let now = unix_now();
        if now < pos.listed_at || now - pos.listed_at >= FULL_LISTING_EVERY.as_secs() {
            relist_reason = Some(format!("the last full listing is older than {} h", FULL_LISTING_EVERY.as_secs() / 3600));
        }
    }
    let mut head = None;
    if let (None, Some(pos)) = (&relist_reason, &old_log) {
        let mut gc = pos.gc;
        let mut seq = pos.seq;
        let mut segments = Vec::new();
        let mut last_hash = None;
        let mut rolled_back = false;
        while let Some(fetched) = super::index_log::fetch(repo, seq + 1)? {
            let seg = match fetched.segment {
                Ok(seg) => seg,
                Err(reason) => {
                    // Listed past it (its packs were published before it).
                    seq += 1;
                    relist_reason = Some(reason);
                    break;
                }
            };
            seq += 1;
            if pos.anchor.as_ref().is_some_and(|a| a.seq == seq && a.hash != fetched.hash) {
                relist_reason = Some(format!("index log segment {seq} is not the one this cache read or wrote: the repository was rolled back"));
                rolled_back = true;
                break;
            }
            last_hash = Some(fetched.hash);
            if let Some(r) = seg.gc_plan {
                if r > gc + 1 {
                    relist_reason = Some(format!("the index log has no record of GC plan {}", gc + 1));
                }
                gc = gc.max(r);
            }
            segments.push(seg);
        }
        head = (!rolled_back).then_some(seq);
        // The log ended at `seq` (the next number was absent). Is it still
        // the log this cache read? A segment its contents rest on (the
        // anchor: the newest it applied or its writers published) must be
        // there with the same body, and the segment it stood on (or the
        // last one read) must still be there after that absence: a
        // repository rolled back (a storage snapshot, a directory restored
        // from an older copy) lacks them or has others at their numbers,
        // and a compacted log has deleted them (in ascending order, so the
        // next number was absent because it was deleted only if this one
        // is gone too). Otherwise: list, and find the real head.
        if relist_reason.is_none() {
            let check = if pos.seq > 0 { pos.seq } else { seq };
            if let Some(a) = pos.anchor.as_ref().filter(|a| a.seq > seq) {
                relist_reason = Some(format!(
                    "the index log ends at {seq}, before segment {} whose packs this cache holds: the repository was rolled back",
                    a.seq
                ));
            } else if check > 0 {
                match super::index_log::fetch(repo, check)? {
                    None => {
                        relist_reason = Some(format!(
                            "index log segment {check} is gone: the log was compacted past this cache, or the repository was rolled back"
                        ))
                    }
                    Some(f) => {
                        if pos.anchor.as_ref().is_some_and(|a| a.seq == check && a.hash != f.hash) {
                            relist_reason = Some(format!("index log segment {check} is not the one this cache read or wrote: the repository was rolled back"));
                        }
                        if check == seq {
                            last_hash = Some(f.hash);
                        }
                    }
                }
            } else if !repo.list(super::index_log::LOG_PREFIX)?.is_empty() {
                // Segment 1 absent, yet segments exist: compacted past 1.
                relist_reason = Some("the index log was compacted past this cache".to_string());
            }
            if relist_reason.is_some() {
                head = None;
            }
        }
        if relist_reason.is_none() && (newest_plan > gc + 1 || newest_plan + 1 < gc) {
            relist_reason = Some(format!("GC plan {newest_plan} is newer than the index log's GC records (plan {gc})"));
        }
        if relist_reason.is_none() {
            for (p, pk) in packs.iter().enumerate() {
                listed[p] = pk.flags & (PACK_PURGED | PACK_GONE) == 0;
            }
            let mut pending: HashMap<Digest, usize> = HashMap::new();
            for seg in &segments {
                for id in seg.removed_ids() {
                    if let Some(p) = by_id.remove(&id) {
                        listed[p as usize] = false;
                        packs[p as usize].flags |= PACK_GONE;
                        gone_any = true;
                    }
                    if let Some(i) = pending.remove(&id) {
                        new[i] = None;
                    }
                }
                for id in seg.added_ids() {
                    if !by_id.contains_key(&id) && !pending.contains_key(&id) {
                        pending.insert(id, new.len());
                        new.push(Some((id, pack::pack_index_key(&id))));
                    }
                }
            }
            let anchor = match (pos.anchor.clone(), last_hash) {
                (Some(a), _) if a.seq >= seq => Some(a),
                (_, Some(hash)) if seq > 0 => Some(Anchor { seq, hash }),
                (a, _) => a,
            };
            state.log = Some(LogPos { seq, gc, listed_at: pos.listed_at, anchor });
        }
    }
    let listed_all = relist_reason.is_some();
    if listed_all {
        let head = match head {
            Some(h) => h,
            None => super::index_log::head(repo)?,
        };
        listed = vec![false; packs.len()];
        new.clear();
        for obj in repo.list(pack::PACK_INDEX_PREFIX)? {
            let Some(id) = pack::id_from_key(&obj.key) else { continue };
            match by_id.get(&id) {
                Some(&p) => listed[p as usize] = true,
                None => new.push(Some((id, obj.key))),
            }
        }
        // Known packs the listing lacks stay unusable until a segment or a
        // listing names them again.
        for (p, pk) in packs.iter_mut().enumerate() {
            if !listed[p] && pk.flags & (PACK_PURGED | PACK_GONE) == 0 {
                pk.flags |= PACK_GONE;
                gone_any = true;
            }
        }
        // The head's body: a later open tells a rolled-back repository
        // (that segment gone, or another at its number) from this one.
        let anchor = match head {
            0 => None,
            h => super::index_log::fetch(repo, h)?.map(|f| Anchor { seq: h, hash: f.hash }),
        };
        state.log = Some(LogPos { seq: head, gc: newest_plan.saturating_sub(1), listed_at: unix_now(), anchor });
    }
    let new: Vec<(Digest, String)> = new.into_iter().flatten().collect();
    drop(by_id);

    // The new packs' chunks, as new tables.
    let mut created = Vec::new();
    let mut buf: Vec<Rec> = Vec::new();
    let mut indexes_read = 0;
    let flush = |buf: &mut Vec<Rec>, state: &mut State, created: &mut Vec<String>| -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        buf.sort_unstable_by(|a, b| a.digest.cmp(&b.digest));
        let name = format!("run-{:08}", state.next);
        state.next += 1;
        let count = write_run(&dir.join(&name), buf.len(), buf.drain(..).map(Ok)).map_err(|e| io(&name, e))?;
        created.push(name.clone());
        state.runs.push(RunState { name, count });
        Ok(())
    };
    for (id, key) in new {
        let Some(entries) = read_index(&id, &key)? else { continue };
        indexes_read += 1;
        let p = packs.len() as u32;
        let dict = entries.iter().any(|e| e.flags & FLAG_DICT != 0);
        packs.push(Pack { id, flags: if dict { PACK_DICT } else { 0 } });
        listed.push(true);
        buf.extend(entries.iter().map(|e| Rec::of(p, e)));
        if buf.len() >= FLUSH_RECS {
            flush(&mut buf, &mut state, &mut created)?;
        }
    }
    flush(&mut buf, &mut state, &mut created)?;
    drop(buf);

    // Merge the newest tables (dropping the chunks of packs no longer listed).
    let mut purged_any = false;
    let mut obsolete = Vec::new();
    while state.runs.len() >= 2 {
        let n = state.runs.len();
        let (a, b) = (&state.runs[n - 2], &state.runs[n - 1]);
        if n == 2 && b.count * DELTA_RATIO < a.count && b.count < FLUSH_RECS {
            break;
        }
        let name = format!("run-{:08}", state.next);
        state.next += 1;
        let (an, bn, upper) = (a.name.clone(), b.name.clone(), a.count + b.count);
        let mut purged = vec![false; packs.len()];
        let count = merge(&dir.join(&an), &dir.join(&bn), &dir.join(&name), upper, &listed, &mut purged)
            .map_err(|e| io(&name, e))?;
        for (p, gone) in purged.iter().enumerate() {
            if *gone {
                packs[p].flags |= PACK_PURGED;
                purged_any = true;
            }
        }
        state.runs.truncate(n - 2);
        state.runs.push(RunState { name: name.clone(), count });
        created.push(name);
        obsolete.push(an);
        obsolete.push(bn);
    }

    // Publish: the packs first (state names how many are in force), then the state.
    let purged_any = purged_any || gone_any;
    if purged_any || packs.len() != known_packs {
        let bytes: Vec<u8> = packs
            .iter()
            .flat_map(|p| p.id.0.iter().copied().chain(std::iter::once(p.flags)))
            .collect();
        let path = dir.join("packs");
        if purged_any {
            let tmp = dir.join("packs.tmp");
            std::fs::write(&tmp, &bytes).map_err(|e| io("packs", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io("packs", e))?;
        } else {
            let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| io("packs", e))?;
            f.write_all_at(&bytes[known_packs * PACK_REC..], (known_packs * PACK_REC) as u64).map_err(|e| io("packs", e))?;
            f.set_len(bytes.len() as u64).map_err(|e| io("packs", e))?;
        }
        state.packs = packs.len();
    }
    if fresh || !created.is_empty() || purged_any || packs.len() != known_packs || state.log != old_log {
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&state).expect("serialize cache state")).map_err(|e| io("state", e))?;
        std::fs::rename(&tmp, dir.join("state.json")).map_err(|e| io("state", e))?;
        for name in obsolete {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }

    let mut runs = Vec::with_capacity(state.runs.len());
    for r in &state.runs {
        let run = Run::open(&dir.join(&r.name))
            .map_err(|reason| EngineError::Pipeline(format!("index cache {}: table {}: {reason}", dir.display(), r.name)))?;
        runs.push(run);
    }
    drop(lock);
    // The listing covered what the stopped writers left: their marks go.
    for (path, _held) in abandoned {
        let _ = std::fs::remove_file(path);
    }
    let log_seq = state.log.as_ref().map_or(0, |l| l.seq);
    let mut out = Opened {
        packs: Vec::with_capacity(packs.len()),
        listed,
        dict: Vec::with_capacity(packs.len()),
        runs,
        indexes_read,
        listed_all,
        relist_reason,
        log_seq,
        in_use,
    };
    for (p, pk) in packs.into_iter().enumerate() {
        if pk.flags & (PACK_PURGED | PACK_GONE) != 0 {
            out.listed[p] = false;
        }
        out.packs.push(pk.id);
        out.dict.push(pk.flags & PACK_DICT != 0);
    }
    Ok(out)
}

/// Adds packs this process has just written (with their entries) to the
/// cache in `dir`, so the next open does not read their indexes back
/// (write-through). Packs the cache knows already are left out. A cache
/// that does not load is left for the next open to rebuild.
pub fn add_packs(dir: &Path, written: &[(Digest, Vec<PackEntry>)]) -> Result<()> {
    let io = |what: &str, e: std::io::Error| EngineError::Pipeline(format!("index cache {}: {what}: {e}", dir.display()));
    if written.is_empty() || !dir.join("state.json").exists() {
        return Ok(());
    }
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE)).map_err(|e| io("lock", e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| io("lock", e.into()))?;
    let Ok((mut state, packs)) = load(dir) else { return Ok(()) };
    let known: std::collections::HashSet<Digest> =
        packs.iter().filter(|p| p.flags & (PACK_PURGED | PACK_GONE) == 0).map(|p| p.id).collect();
    let mut recs = Vec::new();
    let mut added = Vec::new();
    for (id, entries) in written {
        if known.contains(id) || added.iter().any(|(a, _): &(Digest, u8)| a == id) {
            continue;
        }
        let p = (packs.len() + added.len()) as u32;
        let dict = entries.iter().any(|e| e.flags & FLAG_DICT != 0);
        added.push((*id, if dict { PACK_DICT } else { 0 }));
        recs.extend(entries.iter().map(|e| Rec::of(p, e)));
    }
    drop(known);
    if added.is_empty() {
        return Ok(());
    }
    recs.sort_unstable_by(|a, b| a.digest.cmp(&b.digest));
    let name = format!("run-{:08}", state.next);
    state.next += 1;
    let count = write_run(&dir.join(&name), recs.len(), recs.drain(..).map(Ok)).map_err(|e| io(&name, e))?;
    state.runs.push(RunState { name, count });
    let n = packs.len() + added.len();
    let listed: Vec<bool> =
        packs.iter().map(|p| p.flags & (PACK_PURGED | PACK_GONE) == 0).chain(std::iter::repeat(true)).take(n).collect();
    let mut obsolete = Vec::new();
    while state.runs.len() > 2 || (state.runs.len() == 2 && state.runs[1].count * DELTA_RATIO >= state.runs[0].count) {
        let k = state.runs.len();
        let (an, bn, upper) = (state.runs[k - 2].name.clone(), state.runs[k - 1].name.clone(), state.runs[k - 2].count + state.runs[k - 1].count);
        let name = format!("run-{:08}", state.next);
        state.next += 1;
        let mut purged = vec![false; n];
        let count = merge(&dir.join(&an), &dir.join(&bn), &dir.join(&name), upper, &listed, &mut purged).map_err(|e| io(&name, e))?;
        state.runs.truncate(k - 2);
        state.runs.push(RunState { name, count });
        obsolete.push(an);
        obsolete.push(bn);
    }
    let bytes: Vec<u8> = added.iter().flat_map(|(id, f)| id.0.iter().copied().chain(std::iter::once(*f))).collect();
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("packs")).map_err(|e| io("packs", e))?;
    f.write_all_at(&bytes, (packs.len() * PACK_REC) as u64).map_err(|e| io("packs", e))?;
    f.set_len((n * PACK_REC) as u64).map_err(|e| io("packs", e))?;
    state.packs = n;
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&state).expect("serialize cache state")).map_err(|e| io("state", e))?;
    std::fs::rename(&tmp, dir.join("state.json")).map_err(|e| io("state", e))?;
    for name in obsolete {
        let _ = std::fs::remove_file(dir.join(name));
    }
    Ok(())
}

/// Records in the cache in `dir` that a writer of this machine published
/// index log segment `seq` (whose body has `hash`) naming packs it put in
/// the cache: it becomes the cache's anchor (unless a newer one is), so a
/// later open that does not find that segment, or finds another at its
/// number (the repository was rolled back), lists every pack index instead
/// of trusting those packs. Call it before [`WriteMark::done`]. A cache
/// without a log position (it lists at its next open anyway) is left.
pub fn note_published(dir: &Path, seq: u64, hash: &str) -> std::io::Result<()> {
    if !dir.join("state.json").exists() {
        return Ok(());
    }
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    let Ok((mut state, _)) = load(dir) else { return Ok(()) };
    let Some(log) = state.log.as_mut() else { return Ok(()) };
    if log.anchor.as_ref().is_some_and(|a| a.seq >= seq) {
        return Ok(());
    }
    log.anchor = Some(Anchor { seq, hash: hash.to_string() });
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&state).expect("serialize cache state"))?;
    std::fs::rename(&tmp, dir.join("state.json"))
}

/// Name prefix of a writer's mark in a cache directory (see [`mark_writing`]).
const WRITING_PREFIX: &str = "writing-";

/// A writer's mark: this process put packs it wrote into the cache (write
/// through) before they were all durable and named in an index log
/// segment. It holds an exclusive flock on its `writing-*` file until it
/// has published them ([`WriteMark::done`] removes the file). A mark whose
/// lock can be taken was left by a writer that stopped before that (an
/// error, a kill, the machine crashing): the next open lists every pack
/// index instead of trusting the log, as packs the cache names may never
/// have become durable.
pub struct WriteMark {
    path: PathBuf,
    _file: File,
}

/// Puts a writer's mark in the cache directory `dir` (synced: it is on
/// disk before any pack it covers is in the cache).
pub fn mark_writing(dir: &Path) -> std::io::Result<WriteMark> {
    let mut name = [0u8; 8];
    getrandom::fill(&mut name).map_err(|e| std::io::Error::other(format!("random source: {e}")))?;
    let path = dir.join(format!("{WRITING_PREFIX}{}", hex::encode(name)));
    let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    File::open(dir)?.sync_all()?;
    Ok(WriteMark { path, _file: file })
}

impl WriteMark {
    /// The packs it covers are durable and published: the mark goes.
    pub fn done(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Marks of writers that stopped before publishing (their lock is free),
/// each with its lock now held by the caller.
fn abandoned_marks(dir: &Path) -> Vec<(PathBuf, File)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(WRITING_PREFIX))
        .filter_map(|e| {
            let f = OpenOptions::new().write(true).open(e.path()).ok()?;
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
            Some((e.path(), f))
        })
        .collect()
}

/// Makes the next open of the cache in `dir` list every pack index
/// instead of reading the index log (a pack the cache named was found gone,
/// or a chunk a manifest references was not in it). Best effort.
pub fn distrust(dir: &Path) {
    let run = || -> std::io::Result<()> {
        if !dir.join("state.json").exists() {
            return Ok(());
        }
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let Ok((mut state, _)) = load(dir) else { return Ok(()) };
        if state.log.is_none() {
            return Ok(());
        }
        state.log = None;
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&state).expect("serialize cache state"))?;
        std::fs::rename(&tmp, dir.join("state.json"))
    };
    if let Err(e) = run() {
        tracing::warn!(cache = %dir.display(), error = %e, "index cache not marked for a full listing");
    }
}

/// The state and packs in force; `Err("absent")` for a new cache.
fn load(dir: &Path) -> std::result::Result<(State, Vec<Pack>), String> {
    let body = match std::fs::read(dir.join("state.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("absent".into()),
        Err(e) => return Err(format!("state.json: {e}")),
    };
    let state: State = serde_json::from_slice(&body).map_err(|e| format!("state.json: {e}"))?;
    if state.version != 1 {
        return Err(format!("state.json: version {}", state.version));
    }
    let raw = if state.packs == 0 { Vec::new() } else { std::fs::read(dir.join("packs")).map_err(|e| format!("packs: {e}"))? };
    if raw.len() < state.packs * PACK_REC {
        return Err(format!("packs: {} bytes for {} packs", raw.len(), state.packs));
    }
    let packs = raw[..state.packs * PACK_REC]
        .chunks_exact(PACK_REC)
        .map(|c| Pack { id: Digest(c[..32].try_into().expect("32 bytes")), flags: c[32] })
        .collect();
    for r in &state.runs {
        check_run(&dir.join(&r.name), r.count).map_err(|e| format!("{}: {e}", r.name))?;
    }
    Ok((state, packs))
}

/// Whether table `path` is whole and holds `count` records.
fn check_run(path: &Path, count: usize) -> std::result::Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
    let mut head = [0u8; HEADER];
    file.read_exact_at(&mut head, 0).map_err(|e| format!("header: {e}"))?;
    let n = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) as usize;
    let bits = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
    if &head[..8] != RUN_MAGIC || n != count || bits > 16 || len != HEADER + fan_len(bits) + count * REC {
        return Err(format!("{len} bytes, not a table of {count} records"));
    }
    Ok(())
}

/// Merges two tables into `out`, leaving out the records of packs not
/// `listed` (marked in `purged`). The count written.
fn merge(a: &Path, b: &Path, out: &Path, upper: usize, listed: &[bool], purged: &mut [bool]) -> std::io::Result<usize> {
    let mut ra = RunReader::open(a)?;
    let mut rb = RunReader::open(b)?;
    let mut x = ra.next()?;
    let mut y = rb.next()?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("pack number out of range in {what}"));
    let mut err = None;
    let iter = std::iter::from_fn(|| loop {
        let take_a = match (&x, &y) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(p), Some(q)) => p.digest <= q.digest,
        };
        let r = if take_a {
            let r = x.take().expect("some");
            match ra.next() {
                Ok(n) => x = n,
                Err(e) => return Some(Err(e)),
            }
            r
        } else {
            let r = y.take().expect("some");
            match rb.next() {
                Ok(n) => y = n,
                Err(e) => return Some(Err(e)),
            }
            r
        };
        let p = r.pack as usize;
        if p >= listed.len() {
            err = Some(bad(&a.display().to_string()));
            return None;
        }
        if listed[p] {
            return Some(Ok(r));
        }
        purged[p] = true;
    });
    let count = write_run(out, upper, iter)?;
    if let Some(e) = err {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(d: u8, pack: u32) -> Rec {
        let mut digest = [d; 32];
        digest[31] = pack as u8;
        Rec { digest: Digest(digest), pack, offset: d as u64 * 7, stored_len: 10, raw_len: 20, flags: 0 }
    }

    /// When a warm cache reads the index log and when it lists every pack
    /// index instead (no pack indexes here: only the decisions).
    #[test]
    fn a_warm_cache_reads_the_log_unless_it_could_be_stale() {
        use crate::engine::index_log::{self, Segment};
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("tmp")).unwrap();
        let repo = crate::engine::local_repository::LocalRepository::new(t.path());
        let dir = t.path().join("cache");
        let none = |_: &Digest, _: &str| Ok(None);
        let open_with = |plan: Option<u64>| {
            let o = open(&dir, &repo, Refresh { full: false, newest_plan: plan }, none).unwrap();
            (o.listed_all, o.relist_reason.unwrap_or_default())
        };
        assert_eq!(open_with(Some(0)), (true, "new cache".to_string()));
        assert_eq!(open_with(Some(0)), (false, String::new()), "warm: the log");
        // A GC's record (plan 1), then the newest plan one past it: the log.
        index_log::append(&repo, None, &mut Segment { version: 1, gc_plan: Some(1), ..Segment::default() }).unwrap();
        assert_eq!(open_with(Some(2)), (false, String::new()), "plan 2's GC may be running");
        // Plan 2's GC left no record, plan 3's did: the gap makes it list.
        index_log::append(&repo, None, &mut Segment { version: 1, gc_plan: Some(3), ..Segment::default() }).unwrap();
        let (all, why) = open_with(Some(3));
        assert!(all && why.contains("no record of GC plan 2"), "{why}");
        assert_eq!(open_with(Some(3)), (false, String::new()));
        // The newest plan two past the records: list.
        let (all, why) = open_with(Some(5));
        assert!(all && why.contains("GC plan 5"), "{why}");
        assert_eq!(open_with(Some(5)), (false, String::new()));
        // Distrusted (a pack found gone): list once.
        distrust(&dir);
        assert_eq!(open_with(Some(5)), (true, "no index log position".to_string()));
        // A day after the last full listing: list.
        let mut state: State = serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
        state.log.as_mut().unwrap().listed_at -= FULL_LISTING_EVERY.as_secs();
        std::fs::write(dir.join("state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
        let (all, why) = open_with(Some(5));
        assert!(all && why.contains("older than 24 h"), "{why}");
        assert_eq!(open_with(Some(5)), (false, String::new()));
        // An unreadable segment: list (past it), then the log again.
        repo.put(&index_log::segment_key(3), b"{").unwrap();
        let (all, why) = open_with(Some(5));
        assert!(all && why.contains("unreadable"), "{why}");
        assert_eq!(open_with(Some(5)), (false, String::new()));
        // A writer that put packs in the cache and stopped before publishing
        // them (its mark's lock free, the file left, as a killed process
        // leaves it): list once; a writer still at work does not count.
        let alive = mark_writing(&dir).unwrap();
        assert_eq!(open_with(Some(5)), (false, String::new()), "a writer at work");
        drop(mark_writing(&dir).unwrap());
        let (all, why) = open_with(Some(5));
        assert!(all && why.contains("stopped before publishing"), "{why}");
        assert_eq!(open_with(Some(5)), (false, String::new()), "its mark went with the listing");
        alive.done();
        let marks = std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(WRITING_PREFIX)).count();
        assert_eq!(marks, 0);
    }

    /// A warm cache whose repository's log is not the one it read lists
    /// every pack index: the repository rolled back past a segment the cache
    /// rests on (its own writer's, or one it read), rolled back and written
    /// again by another writer at the same number, or its log compacted past
    /// the cache's position (also from position 0). Each time the position
    /// goes to the repository's real head, and the next open reads the log.
    #[test]
    fn a_rolled_back_or_compacted_log_makes_a_warm_cache_list() {
        use crate::engine::index_log::{self, Segment};
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("tmp")).unwrap();
        let repo = crate::engine::local_repository::LocalRepository::new(t.path());
        let dir = t.path().join("cache");
        let none = |_: &Digest, _: &str| Ok(None);
        let open_at = |dir: &Path| {
            let o = open(dir, &repo, Refresh { full: false, newest_plan: Some(0) }, none).unwrap();
            (o.listed_all, o.relist_reason.unwrap_or_default(), o.log_seq)
        };
        let seg = |n: u8| Segment::added([Digest([n; 32])]);
        assert!(open_at(&dir).0, "new cache");
        index_log::append(&repo, None, &mut seg(1)).unwrap();
        assert_eq!(open_at(&dir), (false, String::new(), 1));
        // This machine's writer publishes segment 2 (its packs in the cache),
        // then the repository is rolled back to before it.
        let (two, hash) = index_log::append_hashed(&repo, Some(1), &mut seg(2)).unwrap().unwrap();
        assert_eq!(two, 2);
        note_published(&dir, two, &hash).unwrap();
        repo.delete(&index_log::segment_key(2)).unwrap();
        let (all, why, seq) = open_at(&dir);
        assert!(all && why.contains("before segment 2") && why.contains("rolled back"), "{why}");
        assert_eq!(seq, 1, "the repository's real head");
        assert_eq!(open_at(&dir), (false, String::new(), 1));
        // Read segment 2 of another writer; the repository rolled back and
        // a third writer took number 2 again: same number, other body.
        index_log::append(&repo, Some(1), &mut seg(3)).unwrap();
        assert_eq!(open_at(&dir), (false, String::new(), 2));
        repo.delete(&index_log::segment_key(2)).unwrap();
        index_log::append(&repo, Some(1), &mut seg(3)).unwrap();
        let (all, why, _) = open_at(&dir);
        assert!(all && why.contains("segment 2 is not the one"), "{why}");
        assert_eq!(open_at(&dir), (false, String::new(), 2));
        // Compacted past the cache: three segments later, a GC keeps the newest two.
        for n in 4..=6 {
            index_log::append(&repo, None, &mut seg(n)).unwrap();
        }
        assert_eq!(index_log::compact(&repo, 3).unwrap(), 3);
        let (all, why, seq) = open_at(&dir);
        assert!(all && why.contains("segment 2 is gone") && why.contains("compacted"), "{why}");
        assert_eq!(seq, 5);
        assert_eq!(open_at(&dir), (false, String::new(), 5));
        // A cache that saw an empty log (position 0) and segment 1 compacted away.
        let t2 = tempfile::tempdir().unwrap();
        std::fs::create_dir(t2.path().join("tmp")).unwrap();
        let repo2 = crate::engine::local_repository::LocalRepository::new(t2.path());
        let dir2 = t2.path().join("cache");
        let open2 = || {
            let o = open(&dir2, &repo2, Refresh { full: false, newest_plan: Some(0) }, none).unwrap();
            (o.listed_all, o.relist_reason.unwrap_or_default(), o.log_seq)
        };
        assert!(open2().0);
        assert_eq!(open2(), (false, String::new(), 0), "an empty log");
        index_log::append(&repo2, None, &mut seg(1)).unwrap();
        index_log::append(&repo2, None, &mut seg(2)).unwrap();
        index_log::compact(&repo2, 1).unwrap();
        let (all, why, seq) = open2();
        assert!(all && why.contains("compacted"), "{why}");
        assert_eq!(seq, 2);
        // A writer that saw the empty log does not take number 1 again.
        assert_eq!(index_log::append(&repo2, Some(0), &mut seg(3)).unwrap(), Some(3));
    }

    #[test]
    fn tables_find_and_merge_drop_gone_packs() {
        let t = tempfile::tempdir().unwrap();
        let mut a: Vec<Rec> = (0..=255u8).map(|d| rec(d, 0)).collect();
        a.sort_by(|x, y| x.digest.cmp(&y.digest));
        let mut b: Vec<Rec> = (0..=255u8).step_by(3).map(|d| rec(d, 1)).collect();
        b.sort_by(|x, y| x.digest.cmp(&y.digest));
        assert_eq!(write_run(&t.path().join("a"), a.len(), a.iter().copied().map(Ok)).unwrap(), 256);
        assert_eq!(write_run(&t.path().join("b"), b.len(), b.iter().copied().map(Ok)).unwrap(), 86);
        let ra = Run::open(&t.path().join("a")).unwrap();
        for r in &a {
            assert_eq!(ra.find(&r.digest, |_| true), Some(*r));
        }
        assert_eq!(ra.find(&Digest([9; 32]), |_| true), None, "absent digest");
        let mut purged = vec![false; 2];
        let n = merge(&t.path().join("a"), &t.path().join("b"), &t.path().join("m"), 342, &[true, false], &mut purged).unwrap();
        assert_eq!((n, purged), (256, vec![false, true]));
        let m = Run::open(&t.path().join("m")).unwrap();
        assert_eq!(m.len(), 256);
        for r in &a {
            assert_eq!(m.find(&r.digest, |_| true), Some(*r));
        }
        assert_eq!(m.find(&b[0].digest, |_| true), None, "records of the gone pack were dropped");
    }

    #[test]
    fn a_big_table_is_read_not_mapped_and_finds_the_same() {
        let t = tempfile::tempdir().unwrap();
        let mut recs: Vec<Rec> = (0..100_000u32)
            .map(|i| Rec { digest: Digest(*blake3::hash(&i.to_le_bytes()).as_bytes()), pack: i % 7, offset: i as u64, stored_len: 1, raw_len: 2, flags: 0 })
            .collect();
        recs.sort_by(|x, y| x.digest.cmp(&y.digest));
        write_run(&t.path().join("big"), recs.len(), recs.iter().copied().map(Ok)).unwrap();
        let run = Run::open(&t.path().join("big")).unwrap();
        assert!(matches!(run.access, Access::Read { .. }), "{} bytes are read with pread", 100_000 * REC);
        for r in recs.iter().step_by(997) {
            assert_eq!(run.find(&r.digest, |_| true), Some(*r));
        }
        assert_eq!(run.find(&Digest([0xee; 32]), |_| true), None);
    }

    #[test]
    fn one_digest_in_two_packs_finds_the_usable_one() {
        let t = tempfile::tempdir().unwrap();
        let d = Digest([5; 32]);
        let recs = [
            Rec { digest: d, pack: 3, offset: 0, stored_len: 1, raw_len: 1, flags: 0 },
            Rec { digest: d, pack: 4, offset: 9, stored_len: 1, raw_len: 1, flags: 0 },
        ];
        write_run(&t.path().join("r"), 2, recs.iter().copied().map(Ok)).unwrap();
        let r = Run::open(&t.path().join("r")).unwrap();
        assert_eq!(r.find(&d, |x| x.pack != 3).map(|x| x.offset), Some(9));
        assert_eq!(r.find(&d, |_| false), None);
    }

    #[test]
    fn unit_tests_keep_their_caches_out_of_the_users_cache() {
        if std::env::var_os(ENV_DIR).is_none() && ROOT.read().unwrap().is_none() {
            let r = root();
            assert!(r.starts_with(std::env::temp_dir()) && r.ends_with(format!("pid-{}", std::process::id())), "{}", r.display());
        }
    }

    #[test]
    fn stale_caches_are_removed_unless_kept_or_busy() {
        let t = tempfile::tempdir().unwrap();
        let cache = |name: &str, location: Option<&str>| {
            let d = t.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("state.json"), "{}").unwrap();
            if let Some(l) = location {
                std::fs::write(d.join(LOCATION_FILE), l).unwrap();
            }
            d
        };
        let kept = cache(&"a".repeat(32), Some("/srv/kept"));
        let gone = cache(&"b".repeat(32), Some("/srv/gone"));
        let unnamed = cache(&"c".repeat(32), None);
        let busy = cache(&"d".repeat(32), Some("/srv/gone"));
        let other = cache("not-a-cache", Some("/srv/gone"));
        let held = OpenOptions::new().create(true).truncate(false).write(true).open(busy.join("lock")).unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let keep = ["/srv/kept".to_string()].into_iter().collect();
        assert_eq!(remove_stale(t.path(), &keep), 2);
        assert!(kept.exists() && busy.exists() && other.exists());
        assert!(!gone.exists() && !unnamed.exists());
        drop(held);
        assert_eq!(remove_where(t.path(), |c| c.location.as_deref() == Some("/srv/gone")), 1, "the busy one, once free");
        assert!(!busy.exists() && kept.exists());
    }

    #[test]
    fn unused_and_gone_caches_are_removed_unless_open() {
        let t = tempfile::tempdir().unwrap();
        let repo_here = t.path().join("repo-here");
        std::fs::create_dir(&repo_here).unwrap();
        std::fs::write(repo_here.join("config.json"), "{}").unwrap();
        let cache = |name: &str, location: &Path, days_unused: u64| {
            let d = t.path().join("root").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(LOCATION_FILE), location.to_str().unwrap()).unwrap();
            let used = File::create(d.join(USE_FILE)).unwrap();
            used.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(days_unused * 86400)).unwrap();
            d
        };
        let fresh = cache(&"a".repeat(32), &repo_here, 1);
        let old = cache(&"b".repeat(32), &repo_here, 40);
        let gone = cache(&"c".repeat(32), &t.path().join("repo-gone"), 0);
        let unplugged = cache(&"d".repeat(32), &t.path().join("no-disk/repo"), 0);
        let open_old = cache(&"e".repeat(32), &repo_here, 40);
        let holder = OpenOptions::new().write(true).open(open_old.join(USE_FILE)).unwrap();
        rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockShared).unwrap();
        let month = std::time::Duration::from_secs(UNUSED_DAYS * 86400);
        assert_eq!(remove_unused(&t.path().join("root"), month), 2);
        assert!(fresh.exists() && unplugged.exists() && open_old.exists(), "fresh, unplugged and in use are kept");
        assert!(!old.exists() && !gone.exists());
        drop(holder);
        assert_eq!(remove_unused(&t.path().join("root"), month), 1, "once nobody has it open");
        assert!(!open_old.exists());
    }

    #[test]
    fn the_sweeps_age_is_set_in_days_or_off_and_a_bad_value_says_what_is_expected() {
        use std::ffi::OsStr;
        let age = |v: &str| max_age_days(Some(OsStr::new(v)));
        assert_eq!(max_age_days(None).unwrap(), Some(UNUSED_DAYS), "unset: the default");
        assert_eq!(age("").unwrap(), Some(UNUSED_DAYS), "empty: the default");
        assert_eq!(age("7").unwrap(), Some(7));
        assert_eq!(age(" 90 ").unwrap(), Some(90));
        assert_eq!(age("36500").unwrap(), Some(36_500));
        assert_eq!(age("0").unwrap(), None, "0: no sweep");
        assert_eq!(age("off").unwrap(), None);
        assert_eq!(age("OFF").unwrap(), None);
        for bad in ["-1", "7d", "1.5", "thirty", "36501", "99999999999999999999"] {
            let e = age(bad).unwrap_err().to_string();
            assert!(e.contains(ENV_MAX_AGE) && e.contains(&format!("{bad:?}")) && e.contains("whole number of days") && e.contains("'off'"), "{bad}: {e}");
        }
        let not_text = <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"f\xff");
        assert!(max_age_days(Some(not_text)).is_err());
    }
}
