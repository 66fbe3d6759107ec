//! Partition tables: GPT (behind its protective MBR), MBR with extended /
//! logical partitions, or none (the whole disk is one filesystem). Parsed by
//! hand; every offset and count is checked against the disk size, and the
//! chain of extended boot records is bounded.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::read_at::{read_exact_at, ReadAt};

/// Most GPT entries read (the specification's minimum array holds 128).
const MAX_GPT_ENTRIES: u32 = 1024;
/// Most logical partitions followed in an MBR extended partition.
const MAX_LOGICAL: usize = 128;

/// Which kind of table the disk has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// GUID partition table.
    Gpt,
    /// DOS master boot record (with extended/logical partitions).
    Mbr,
    /// No table: the whole disk is one partition.
    None,
}

/// The type recorded in the table for a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionType {
    /// An MBR type byte and its common name.
    Mbr {
        /// The type byte.
        byte: u8,
        /// Its common name (`unknown` if not in the small built-in table).
        name: &'static str,
    },
    /// A GPT type GUID (lower-case, canonical text form) and its common name.
    Gpt {
        /// The type GUID.
        guid: String,
        /// Its common name (`unknown` if not in the small built-in table).
        name: &'static str,
    },
    /// No table.
    WholeDisk,
}

/// A partition as the table records it (detection is added by [`crate::Disk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The number an operating system would give it (1-based; logical MBR
    /// partitions start at 5); `None` for a whole disk.
    pub number: Option<u32>,
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// The type recorded in the table.
    pub part_type: PartitionType,
    /// GPT partition name, if any.
    pub label: Option<String>,
}

/// The parsed table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The kind of table.
    pub kind: TableKind,
    /// The partitions, in table order.
    pub entries: Vec<TableEntry>,
    /// Entries dropped or clamped because they did not fit the disk.
    pub warnings: Vec<String>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn read(disk: &dyn ReadAt, what: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    read_exact_at(disk, offset, &mut buf).map_err(|e| Error::io(what, offset, e))?;
    Ok(buf)
}

/// Reads the partition table of `disk`. `whole_disk_fs` tells whether a
/// filesystem boot sector sits at byte 0 (FAT and NTFS boot sectors carry
/// the same 0x55AA signature as an MBR).
pub(crate) fn read_table(disk: &dyn ReadAt, whole_disk_fs: bool) -> Result<Table> {
    let size = disk.size();
    let whole = || Table {
        kind: TableKind::None,
        // An empty disk has nothing to show.
        entries: if size == 0 {
            Vec::new()
        } else {
            vec![TableEntry {
                number: None,
                start: 0,
                length: size,
                part_type: PartitionType::WholeDisk,
                label: None,
            }]
        },
        warnings: Vec::new(),
    };
    if size < 512 {
        return Ok(whole());
    }
    let mbr = read(disk, "the master boot record", 0, 512)?;
    if mbr[510] != 0x55 || mbr[511] != 0xAA {
        return Ok(whole());
    }
    let slots: Vec<&[u8]> = (0..4)
        .map(|i| &mbr[446 + 16 * i..446 + 16 * (i + 1)])
        .collect();
    if slots.iter().any(|s| s[4] == 0xEE) {
        // Boot code of a partitionless FAT/NTFS volume may hold 0xEE there
        // by chance: without a valid GPT, the volume wins.
        return match read_gpt(disk) {
            Err(_) if whole_disk_fs => Ok(whole()),
            other => other,
        };
    }
    // A real MBR has boot flags 0x00/0x80 only; with a FAT or NTFS boot
    // sector at byte 0, the table must also look sane to win over it.
    let flags_ok = slots.iter().all(|s| s[0] == 0 || s[0] == 0x80);
    if !flags_ok || (whole_disk_fs && !plausible_mbr(&slots, size)) {
        return Ok(whole());
    }
    let table = read_mbr(disk, &slots)?;
    if table.entries.is_empty() && table.warnings.is_empty() {
        return Ok(whole());
    }
    Ok(table)
}

/// True when the four slots look like a partition table: at least one
/// used slot, and every used slot inside the disk after sector 0. A FAT or
/// NTFS boot sector's code at the same place almost never passes.
fn plausible_mbr(slots: &[&[u8]], size: u64) -> bool {
    let sectors = size / 512;
    slots.iter().any(|s| s[4] != 0 && le32(s, 12) != 0)
        && slots.iter().all(|s| {
            let used = s[4] != 0 && le32(s, 12) != 0;
            (s[0] == 0 || s[0] == 0x80)
                && (!used
                    || (le32(s, 8) >= 1
                        && u64::from(le32(s, 8)) + u64::from(le32(s, 12)) <= sectors))
        })
}

fn push_checked(
    entries: &mut Vec<TableEntry>,
    warnings: &mut Vec<String>,
    size: u64,
    mut entry: TableEntry,
) {
    let name = entry
        .number
        .map_or_else(|| "whole disk".to_string(), |n| format!("partition {n}"));
    if entry.start >= size || entry.length == 0 {
        warnings.push(format!(
            "{name} starts at byte {} beyond the disk end ({size} bytes) or is empty: ignored",
            entry.start
        ));
        return;
    }
    if entry.start.saturating_add(entry.length) > size {
        warnings.push(format!(
            "{name} ends past the disk end ({size} bytes): cut to fit"
        ));
        entry.length = size - entry.start;
    }
    entries.push(entry);
}

fn is_extended(t: u8) -> bool {
    matches!(t, 0x05 | 0x0F | 0x85)
}

fn read_mbr(disk: &dyn ReadAt, slots: &[&[u8]]) -> Result<Table> {
    let size = disk.size();
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let mut extended: Option<u64> = None;
    for (i, s) in slots.iter().enumerate() {
        let ty = s[4];
        let lba = u64::from(le32(s, 8));
        let sectors = u64::from(le32(s, 12));
        if ty == 0 || sectors == 0 {
            continue;
        }
        if is_extended(ty) {
            if extended.is_none() {
                extended = Some(lba);
            } else {
                warnings.push(format!(
                    "partition {}: a second extended partition is ignored",
                    i + 1
                ));
            }
            continue;
        }
        let entry = TableEntry {
            number: Some(i as u32 + 1),
            start: lba * 512,
            length: sectors * 512,
            part_type: PartitionType::Mbr {
                byte: ty,
                name: mbr_type_name(ty),
            },
            label: None,
        };
        push_checked(&mut entries, &mut warnings, size, entry);
    }
    if let Some(ext_lba) = extended {
        read_logical(disk, ext_lba, &mut entries, &mut warnings)?;
    }
    Ok(Table {
        kind: TableKind::Mbr,
        entries,
        warnings,
    })
}

/// Follows the chain of extended boot records. Each one holds a logical
/// partition (relative to itself) and a link to the next (relative to the
/// extended partition). Loops and over-long chains end with a warning.
fn read_logical(
    disk: &dyn ReadAt,
    ext_lba: u64,
    entries: &mut Vec<TableEntry>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let size = disk.size();
    let mut seen = HashSet::new();
    let mut ebr_lba = ext_lba;
    let mut number = 5u32;
    loop {
        if !seen.insert(ebr_lba) || seen.len() > MAX_LOGICAL {
            warnings.push("the chain of logical partitions loops or is too long: cut".to_string());
            return Ok(());
        }
        let Some(offset) = ebr_lba
            .checked_mul(512)
            .filter(|o| o.saturating_add(512) <= size)
        else {
            warnings.push(format!(
                "extended boot record at sector {ebr_lba} is beyond the disk end: chain cut"
            ));
            return Ok(());
        };
        let ebr = read(disk, "an extended boot record", offset, 512)?;
        if ebr[510] != 0x55 || ebr[511] != 0xAA {
            warnings.push(format!(
                "extended boot record at sector {ebr_lba} has no signature: chain cut"
            ));
            return Ok(());
        }
        let first = &ebr[446..462];
        let next = &ebr[462..478];
        let ty = first[4];
        let sectors = u64::from(le32(first, 12));
        if ty != 0 && sectors != 0 {
            let start = ebr_lba
                .saturating_add(u64::from(le32(first, 8)))
                .saturating_mul(512);
            let entry = TableEntry {
                number: Some(number),
                start,
                length: sectors * 512,
                part_type: PartitionType::Mbr {
                    byte: ty,
                    name: mbr_type_name(ty),
                },
                label: None,
            };
            push_checked(entries, warnings, size, entry);
            number += 1;
        }
        if next[4] == 0 || le32(next, 12) == 0 {
            return Ok(());
        }
        ebr_lba = ext_lba.saturating_add(u64::from(le32(next, 8)));
    }
}

fn read_gpt(disk: &dyn ReadAt) -> Result<Table> {
    let mut errors = Vec::new();
    for sector in [512u64, 4096] {
        match read_gpt_at(disk, sector, sector) {
            Ok(t) => return Ok(t),
            Err(e) => errors.push(e),
        }
    }
    // The primary header is damaged: try the backup in the last sector.
    let size = disk.size();
    for sector in [512u64, 4096] {
        if size >= 2 * sector {
            if let Ok(mut t) = read_gpt_at(disk, sector, (size / sector - 1) * sector) {
                t.warnings.push(
                    "the primary GPT header is damaged: the backup header was used".to_string(),
                );
                return Ok(t);
            }
        }
    }
    let reason = errors
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::PartitionTable {
        table: "GPT",
        reason,
    })
}

fn gpt_err(reason: impl Into<String>) -> Error {
    Error::PartitionTable {
        table: "GPT",
        reason: reason.into(),
    }
}

fn read_gpt_at(disk: &dyn ReadAt, sector: u64, header_at: u64) -> Result<Table> {
    let size = disk.size();
    if header_at.saturating_add(sector) > size {
        return Err(gpt_err(format!(
            "no header at byte {header_at}: the disk is too small"
        )));
    }
    let hdr = read(disk, "the GPT header", header_at, 512)?;
    if &hdr[0..8] != b"EFI PART" {
        return Err(gpt_err(format!(
            "no \"EFI PART\" signature at byte {header_at}"
        )));
    }
    let header_size = le32(&hdr, 12) as usize;
    if !(92..=512).contains(&header_size) {
        return Err(gpt_err(format!(
            "header size {header_size} is not between 92 and 512"
        )));
    }
    let mut h = hdr[..header_size].to_vec();
    let crc = le32(&h, 16);
    h[16..20].fill(0);
    if crc32fast::hash(&h) != crc {
        return Err(gpt_err(format!(
            "header checksum mismatch at byte {header_at}"
        )));
    }
    let entries_lba = le64(&hdr, 72);
    let count = le32(&hdr, 80);
    let entry_size = le32(&hdr, 84);
    let entries_crc = le32(&hdr, 88);
    if count > MAX_GPT_ENTRIES {
        return Err(gpt_err(format!(
            "{count} entries (at most {MAX_GPT_ENTRIES} are read)"
        )));
    }
    if !(128..=4096).contains(&entry_size) || entry_size % 8 != 0 {
        return Err(gpt_err(format!("entry size {entry_size} is invalid")));
    }
    let array_len = u64::from(count) * u64::from(entry_size);
    let array_at = entries_lba
        .checked_mul(sector)
        .ok_or_else(|| gpt_err("entry array position overflows"))?;
    if array_at.saturating_add(array_len) > size {
        return Err(gpt_err(format!(
            "entry array ({array_len} bytes at byte {array_at}) is beyond the disk end"
        )));
    }
    let array = read(disk, "the GPT entry array", array_at, array_len as usize)?;
    if crc32fast::hash(&array) != entries_crc {
        return Err(gpt_err("entry array checksum mismatch"));
    }
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    for (i, e) in array.chunks_exact(entry_size as usize).enumerate() {
        let type_guid = &e[0..16];
        if type_guid.iter().all(|&b| b == 0) {
            continue;
        }
        let first = le64(e, 32);
        let last = le64(e, 40);
        if last < first {
            warnings.push(format!(
                "partition {}: last sector {last} before first {first}: ignored",
                i + 1
            ));
            continue;
        }
        let guid = guid_text(type_guid);
        let name_units: Vec<u16> = (0..36)
            .map(|k| le16(e, 56 + 2 * k))
            .take_while(|&u| u != 0)
            .collect();
        let label = String::from_utf16_lossy(&name_units);
        let entry = TableEntry {
            number: Some(i as u32 + 1),
            start: first.saturating_mul(sector),
            length: (last - first + 1).saturating_mul(sector),
            part_type: PartitionType::Gpt {
                name: gpt_type_name(&guid),
                guid,
            },
            label: (!label.is_empty()).then_some(label),
        };
        push_checked(&mut entries, &mut warnings, size, entry);
    }
    Ok(Table {
        kind: TableKind::Gpt,
        entries,
        warnings,
    })
}

/// The canonical text of a GPT GUID (mixed-endian on disk).
fn guid_text(g: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        le32(g, 0),
        le16(g, 4),
        le16(g, 6),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

fn gpt_type_name(guid: &str) -> &'static str {
    match guid {
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" => "EFI system",
        "21686148-6449-6e6f-744e-656564454649" => "BIOS boot",
        "e3c9e316-0b5c-4db8-817d-f92df00215ae" => "Microsoft reserved",
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7" => "Microsoft basic data",
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac" => "Windows recovery",
        "0fc63daf-8483-4772-8e79-3d69d8477de4" => "Linux filesystem",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709" => "Linux root (x86-64)",
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f" => "Linux swap",
        "e6d6d379-f507-44c2-a23c-238f2a3df928" => "Linux LVM",
        "a19d880f-05fc-4d3b-a006-743f0f84911e" => "Linux RAID",
        "bc13c2ff-59e6-4262-a352-b275fd6f7172" => "Linux extended boot",
        _ => "unknown",
    }
}

fn mbr_type_name(t: u8) -> &'static str {
    match t {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0E => "FAT16",
        0x07 => "NTFS/exFAT",
        0x0B | 0x0C => "FAT32",
        0x27 => "Windows recovery",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8E => "Linux LVM",
        0xEF => "EFI system",
        0xFD => "Linux RAID",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::read_at::MemDisk;

    use super::TableKind;

    /// A FAT12 boot sector (1.44 MB floppy geometry) on a 4 MiB disk.
    fn fat_boot_disk() -> Vec<u8> {
        let mut d = vec![0u8; 4 << 20];
        d[0] = 0xEB;
        d[11..13].copy_from_slice(&512u16.to_le_bytes());
        d[13] = 1;
        d[14..16].copy_from_slice(&1u16.to_le_bytes());
        d[16] = 2;
        d[17..19].copy_from_slice(&224u16.to_le_bytes());
        d[19..21].copy_from_slice(&2880u16.to_le_bytes());
        d[22..24].copy_from_slice(&9u16.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        d
    }

    #[test]
    fn boot_sector_at_zero_versus_a_real_table() {
        // Boot code where the table would be: the volume is the whole disk.
        let mut d = fat_boot_disk();
        d[446..510].copy_from_slice(&[b'x'; 64]);
        let disk = crate::open(Arc::new(MemDisk(d.clone()))).unwrap();
        assert_eq!(disk.table(), TableKind::None);
        // 0xEE by chance in that code, no GPT behind it: still the volume.
        d[446 + 4] = 0xEE;
        let disk = crate::open(Arc::new(MemDisk(d))).unwrap();
        assert_eq!(disk.table(), TableKind::None);
        // A boot loader that starts like a FAT boot sector, with a sane table.
        let mut d = fat_boot_disk();
        d[446] = 0x80;
        d[446 + 4] = 0x83;
        d[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        d[446 + 12..446 + 16].copy_from_slice(&4096u32.to_le_bytes());
        let disk = crate::open(Arc::new(MemDisk(d))).unwrap();
        assert_eq!(disk.table(), TableKind::Mbr);
        assert_eq!(disk.partitions()[0].start, 2048 * 512);
    }
}
