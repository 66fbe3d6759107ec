//! FAT12/16/32, read-only, parsed by hand.
//!
//! The `fatfs` crate was used first; fuzzing found it panicking within
//! seconds on corrupt images (arithmetic on unchecked cluster numbers) and
//! it needs a writable stream. FAT is small enough to read safely here:
//! every cluster number is checked against the cluster count, every chain
//! walk is bounded by that count (a longer chain must loop), directories are
//! capped at the 65 536 slots the format allows, and a file never yields
//! more than its recorded size. Everything runs on the caller's thread.
//!
//! Names: long (VFAT) names when their checksum matches the short entry,
//! else the 8.3 name (with the NT lower-case flags). Lookups match exactly,
//! then case-insensitively (ASCII), as FAT does.

use std::io::{self, Read};
use std::sync::Arc;

use crate::detect::FsKind;
use crate::error::{Error, Result};
use crate::guest_fs::{
    check_dir_count, paginate, Entry, EntryKind, GuestFs, Listing, WinAttributes,
};
use crate::path::GuestPath;
use crate::read_at::Window;

/// FAT allows 65 536 32-byte slots per directory (long names included).
const MAX_DIR_SLOTS: usize = 65_536;

const ATTR_READ_ONLY: u8 = 0x01;
const ATTR_HIDDEN: u8 = 0x02;
const ATTR_SYSTEM: u8 = 0x04;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_LFN: u8 = 0x0F;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The volume geometry, validated once.
#[derive(Debug)]
struct Volume {
    kind: FsKind,
    io: Window,
    fat_offset: u64,
    /// Fixed root directory region (FAT12/16): offset and length in bytes.
    root_region: (u64, u64),
    /// FAT32 root directory cluster.
    root_cluster: u32,
    data_offset: u64,
    cluster_size: u64,
    /// Valid clusters are 2 ..= max_cluster.
    max_cluster: u32,
}

fn corrupt(kind: FsKind, context: impl Into<String>, message: impl ToString) -> Error {
    Error::fs(kind, context, message)
}

impl Volume {
    fn open(part: Window) -> Result<Self> {
        let mut bs = [0u8; 512];
        part.read_exact_at(0, &mut bs)
            .map_err(|e| Error::io("the FAT boot sector", 0, e))?;
        let kind = crate::detect::fat_kind(&bs)
            .ok_or_else(|| corrupt(FsKind::Fat32, "boot sector", "not a valid FAT boot sector"))?;
        let bad = |m: &str| corrupt(kind, "boot sector", m);
        let bps = u64::from(le16(&bs, 11));
        let spc = u64::from(bs[13]);
        let reserved = u64::from(le16(&bs, 14));
        let fats = u64::from(bs[16]);
        let root_entries = u64::from(le16(&bs, 17));
        let total = if le16(&bs, 19) != 0 {
            u64::from(le16(&bs, 19))
        } else {
            u64::from(le32(&bs, 32))
        };
        let fat_size = if le16(&bs, 22) != 0 {
            u64::from(le16(&bs, 22))
        } else {
            u64::from(le32(&bs, 36))
        };
        if fat_size == 0 {
            return Err(bad("the FAT has no sectors"));
        }
        if kind == FsKind::Fat32 && root_entries != 0 {
            return Err(bad("FAT32 with a fixed root directory"));
        }
        if kind != FsKind::Fat32 && root_entries == 0 {
            return Err(bad("FAT12/16 without a root directory"));
        }
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let root_start = reserved + fats * fat_size;
        let data_start = root_start + root_sectors;
        let total = total.min(part.len() / bps);
        if data_start >= total {
            return Err(bad("no data area inside the partition"));
        }
        let clusters = (total - data_start) / spc;
        // Entries the FAT itself can hold (2 are reserved).
        let fat_capacity = match kind {
            FsKind::Fat12 => fat_size * bps * 2 / 3,
            FsKind::Fat16 => fat_size * bps / 2,
            _ => fat_size * bps / 4,
        };
        let clusters = clusters
            .min(fat_capacity.saturating_sub(2))
            .min(0x0FFF_FFF5);
        if clusters == 0 {
            return Err(bad("no clusters"));
        }
        let root_cluster = if kind == FsKind::Fat32 {
            le32(&bs, 44) & 0x0FFF_FFFF
        } else {
            0
        };
        let vol = Volume {
            kind,
            io: part,
            fat_offset: reserved * bps,
            root_region: (root_start * bps, root_entries * 32),
            root_cluster,
            data_offset: data_start * bps,
            cluster_size: spc * bps,
            max_cluster: (clusters + 1) as u32,
        };
        if kind == FsKind::Fat32 && !vol.valid(root_cluster) {
            return Err(bad("the root directory cluster is out of range"));
        }
        Ok(vol)
    }

    fn valid(&self, cluster: u32) -> bool {
        (2..=self.max_cluster).contains(&cluster)
    }

    /// Most clusters a chain can have before it must be looping.
    fn chain_limit(&self) -> u64 {
        u64::from(self.max_cluster)
    }

    fn read(&self, what: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.io
            .read_exact_at(offset, buf)
            .map_err(|e| Error::io(format!("FAT {what}"), offset, e))
    }

    /// The cluster after `cluster`: `None` at the end of the chain.
    fn next(&self, cluster: u32) -> Result<Option<u32>> {
        let c = u64::from(cluster);
        let (value, eoc) = match self.kind {
            FsKind::Fat12 => {
                let mut b = [0u8; 2];
                self.read("table", self.fat_offset + c + c / 2, &mut b)?;
                let v = u32::from(u16::from_le_bytes(b));
                (if cluster % 2 == 1 { v >> 4 } else { v & 0xFFF }, 0xFF8)
            }
            FsKind::Fat16 => {
                let mut b = [0u8; 2];
                self.read("table", self.fat_offset + c * 2, &mut b)?;
                (u32::from(u16::from_le_bytes(b)), 0xFFF8)
            }
            _ => {
                let mut b = [0u8; 4];
                self.read("table", self.fat_offset + c * 4, &mut b)?;
                (u32::from_le_bytes(b) & 0x0FFF_FFFF, 0x0FFF_FFF8)
            }
        };
        if value >= eoc {
            return Ok(None);
        }
        if !self.valid(value) {
            return Err(corrupt(
                self.kind,
                "cluster chain",
                format!("cluster {cluster} links to invalid cluster {value}"),
            ));
        }
        Ok(Some(value))
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset + u64::from(cluster - 2) * self.cluster_size
    }
}

/// Where a directory's slots are.
#[derive(Clone, Copy)]
enum DirLoc {
    /// The fixed FAT12/16 root region.
    FixedRoot,
    Chain(u32),
}

/// One decoded directory entry.
#[derive(Debug, Clone)]
struct RawEntry {
    name: String,
    attr: u8,
    cluster: u32,
    size: u32,
    time: u16,
    date: u16,
}

impl RawEntry {
    fn is_dir(&self) -> bool {
        self.attr & ATTR_DIR != 0
    }
}

/// Reads all slots of a directory (bounded) and decodes its entries.
fn read_dir(vol: &Volume, loc: DirLoc, path: &GuestPath) -> Result<Vec<RawEntry>> {
    let mut raw = Vec::new();
    match loc {
        DirLoc::FixedRoot => {
            let (off, len) = vol.root_region;
            let len = usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(MAX_DIR_SLOTS * 32);
            raw.resize(len, 0);
            vol.read("root directory", off, &mut raw)?;
        }
        DirLoc::Chain(first) => {
            let mut cluster = first;
            let cs = usize::try_from(vol.cluster_size).unwrap_or(usize::MAX);
            let mut steps = 0u64;
            loop {
                if !vol.valid(cluster) {
                    return Err(corrupt(
                        vol.kind,
                        format!("directory {path}"),
                        format!("invalid cluster {cluster}"),
                    ));
                }
                steps += 1;
                if steps > vol.chain_limit() {
                    return Err(corrupt(
                        vol.kind,
                        format!("directory {path}"),
                        "its cluster chain loops",
                    ));
                }
                let start = raw.len();
                if start + cs > MAX_DIR_SLOTS * 32 {
                    return Err(Error::limit(
                        format!("slots in FAT directory {path}"),
                        MAX_DIR_SLOTS as u64,
                    ));
                }
                raw.resize(start + cs, 0);
                vol.read("directory", vol.cluster_offset(cluster), &mut raw[start..])?;
                // Stop early at the end marker.
                if raw[start..].chunks_exact(32).any(|s| s[0] == 0) {
                    break;
                }
                match vol.next(cluster)? {
                    Some(n) => cluster = n,
                    None => break,
                }
            }
        }
    }
    decode_dir(vol.kind, &raw, path)
}

fn short_name_checksum(name: &[u8]) -> u8 {
    name.iter().fold(0u8, |sum, &b| {
        ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(b)
    })
}

fn short_name(slot: &[u8]) -> String {
    let mut base: Vec<u8> = slot[0..8].to_vec();
    if base[0] == 0x05 {
        base[0] = 0xE5;
    }
    let ext = &slot[8..11];
    let lower_base = slot[12] & 0x08 != 0;
    let lower_ext = slot[12] & 0x10 != 0;
    // OEM code page: ASCII kept, other bytes read as Latin-1 (close enough to show).
    let text = |bytes: &[u8], lower: bool| -> String {
        let s: String = bytes
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .trim_end_matches(' ')
            .to_string();
        if lower {
            s.to_ascii_lowercase()
        } else {
            s
        }
    };
    let b = text(&base, lower_base);
    let e = text(ext, lower_ext);
    if e.is_empty() {
        b
    } else {
        format!("{b}.{e}")
    }
}

fn decode_dir(kind: FsKind, raw: &[u8], path: &GuestPath) -> Result<Vec<RawEntry>> {
    let mut out = Vec::new();
    // Long name being assembled: (checksum, next expected ordinal, UTF-16 parts by ordinal).
    let mut lfn: Option<(u8, u8, Vec<[u16; 13]>)> = None;
    for slot in raw.chunks_exact(32) {
        match slot[0] {
            0x00 => break,
            0xE5 => {
                lfn = None;
                continue;
            }
            _ => {}
        }
        let attr = slot[11];
        if attr & 0x3F == ATTR_LFN {
            let ord = slot[0] & 0x1F;
            let mut units = [0u16; 13];
            for (i, at) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
                .iter()
                .enumerate()
            {
                units[i] = le16(slot, *at);
            }
            if slot[0] & 0x40 != 0 && ord >= 1 {
                let mut parts = vec![[0u16; 13]; usize::from(ord)];
                parts[usize::from(ord) - 1] = units;
                lfn = Some((slot[13], ord - 1, parts));
            } else if let Some((sum, expect, parts)) = lfn.as_mut() {
                if ord == *expect && ord >= 1 && *sum == slot[13] {
                    parts[usize::from(ord) - 1] = units;
                    *expect -= 1;
                } else {
                    lfn = None;
                }
            }
            continue;
        }
        let long = lfn.take();
        if attr & ATTR_VOLUME != 0 {
            continue;
        }
        let long_name = long.and_then(|(sum, expect, parts)| {
            if expect != 0 || sum != short_name_checksum(&slot[0..11]) {
                return None;
            }
            let units: Vec<u16> = parts
                .iter()
                .flatten()
                .copied()
                .take_while(|&u| u != 0)
                .collect();
            String::from_utf16(&units).ok()
        });
        let name = long_name.unwrap_or_else(|| short_name(slot));
        if name == "." || name == ".." || name.is_empty() {
            continue;
        }
        let hi = if kind == FsKind::Fat32 {
            u32::from(le16(slot, 20)) << 16
        } else {
            0
        };
        out.push(RawEntry {
            name,
            attr,
            cluster: hi | u32::from(le16(slot, 26)),
            size: le32(slot, 28),
            time: le16(slot, 22),
            date: le16(slot, 24),
        });
        check_dir_count(path, out.len())?;
    }
    Ok(out)
}

/// Unix seconds of a FAT local date and time, read as UTC.
fn unix_time(date: u16, time: u16) -> Option<i64> {
    let y = 1980 + i64::from(date >> 9);
    let m = i64::from((date >> 5) & 0xF);
    let d = i64::from(date & 0x1F);
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let (hh, mm, ss) = (
        i64::from(time >> 11),
        i64::from((time >> 5) & 0x3F),
        i64::from(time & 0x1F) * 2,
    );
    // Days from civil (proleptic Gregorian calendar).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn describe(e: &RawEntry, name: String) -> Entry {
    let kind = if e.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    let mut out = Entry::new(name, kind);
    out.size = if kind == EntryKind::File {
        u64::from(e.size)
    } else {
        0
    };
    out.mtime = unix_time(e.date, e.time);
    out.attributes = Some(WinAttributes {
        read_only: e.attr & ATTR_READ_ONLY != 0,
        hidden: e.attr & ATTR_HIDDEN != 0,
        system: e.attr & ATTR_SYSTEM != 0,
        archive: e.attr & ATTR_ARCHIVE != 0,
    });
    out
}

/// A FAT filesystem.
pub(crate) struct FatFs {
    vol: Arc<Volume>,
}

enum Found {
    Root,
    Entry(RawEntry),
}

impl FatFs {
    pub(crate) fn open(part: Window) -> Result<Self> {
        Ok(FatFs {
            vol: Arc::new(Volume::open(part)?),
        })
    }

    fn root_loc(&self) -> DirLoc {
        if self.vol.kind == FsKind::Fat32 {
            DirLoc::Chain(self.vol.root_cluster)
        } else {
            DirLoc::FixedRoot
        }
    }

    fn dir_loc(&self, e: &RawEntry, path: &GuestPath) -> Result<DirLoc> {
        if e.cluster == 0 {
            // ".." uses 0 for the root; a named directory may not.
            return Err(corrupt(
                self.vol.kind,
                format!("directory {path}"),
                "starts at cluster 0",
            ));
        }
        Ok(DirLoc::Chain(e.cluster))
    }

    fn resolve(&self, path: &GuestPath) -> Result<Found> {
        let mut loc = self.root_loc();
        let mut here = GuestPath::root();
        let mut found = Found::Root;
        for name in path.components() {
            if let Found::Entry(e) = &found {
                if !e.is_dir() {
                    return Err(Error::NotADirectory {
                        path: here.to_string(),
                    });
                }
                loc = self.dir_loc(e, &here)?;
            }
            let entries = read_dir(&self.vol, loc, &here)?;
            here = here.child(name)?;
            let exact = entries.iter().position(|e| e.name == *name);
            let folded = || {
                entries
                    .iter()
                    .position(|e| e.name.eq_ignore_ascii_case(name))
            };
            let i = exact.or_else(folded).ok_or_else(|| Error::NotFound {
                path: here.to_string(),
            })?;
            found = Found::Entry(entries[i].clone());
        }
        Ok(found)
    }
}

impl GuestFs for FatFs {
    fn kind(&self) -> FsKind {
        self.vol.kind
    }

    fn list(&self, dir: &GuestPath, offset: u64, limit: usize) -> Result<Listing> {
        let loc = match self.resolve(dir)? {
            Found::Root => self.root_loc(),
            Found::Entry(e) if e.is_dir() => self.dir_loc(&e, dir)?,
            Found::Entry(_) => {
                return Err(Error::NotADirectory {
                    path: dir.to_string(),
                })
            }
        };
        let items = read_dir(&self.vol, loc, dir)?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        paginate(items, offset, limit, |name, e| Ok(describe(&e, name)))
    }

    fn stat(&self, path: &GuestPath) -> Result<Entry> {
        Ok(match self.resolve(path)? {
            Found::Root => Entry::new(String::new(), EntryKind::Dir),
            Found::Entry(e) => describe(&e, path.file_name().unwrap_or_default().to_string()),
        })
    }

    fn open_file(&self, path: &GuestPath) -> Result<Box<dyn Read + Send>> {
        let e = match self.resolve(path)? {
            Found::Entry(e) if !e.is_dir() => e,
            _ => {
                return Err(Error::NotAFile {
                    path: path.to_string(),
                })
            }
        };
        if e.size > 0 && !self.vol.valid(e.cluster) {
            return Err(corrupt(
                self.vol.kind,
                format!("file {path}"),
                format!("starts at invalid cluster {}", e.cluster),
            ));
        }
        Ok(Box::new(FatReader {
            vol: self.vol.clone(),
            path: path.to_string(),
            cluster: e.cluster,
            in_cluster: 0,
            remaining: u64::from(e.size),
            steps: 1,
        }))
    }
}

/// Streams a file along its cluster chain; never more than its size.
struct FatReader {
    vol: Arc<Volume>,
    path: String,
    cluster: u32,
    in_cluster: u64,
    remaining: u64,
    steps: u64,
}

impl FatReader {
    fn fail(&self, e: impl ToString) -> io::Error {
        io::Error::other(format!(
            "{} file {}: {}",
            self.vol.kind,
            self.path,
            e.to_string()
        ))
    }
}

impl Read for FatReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.in_cluster == self.vol.cluster_size {
            match self.vol.next(self.cluster).map_err(|e| self.fail(e))? {
                Some(n) => {
                    self.steps += 1;
                    if self.steps > self.vol.chain_limit() {
                        return Err(self.fail("the cluster chain loops"));
                    }
                    self.cluster = n;
                    self.in_cluster = 0;
                }
                None => return Err(self.fail("the cluster chain ends before the file size")),
            }
        }
        let want = (buf.len() as u64)
            .min(self.vol.cluster_size - self.in_cluster)
            .min(self.remaining) as usize;
        let offset = self.vol.cluster_offset(self.cluster) + self.in_cluster;
        self.vol
            .read("file data", offset, &mut buf[..want])
            .map_err(|e| self.fail(e))?;
        self.in_cluster += want as u64;
        self.remaining -= want as u64;
        Ok(want)
    }
}
