//! Partition tables written the way installers write them: an MBR (DOS)
//! table for BIOS VMs and a GPT (protective MBR, primary header and entries
//! at the start, backup entries and header at the end) for UEFI VMs.
//! Partitions start on 1 MiB boundaries, so 64 KiB blocks of a partition are
//! 64 KiB blocks (and qcow2 clusters) of the disk.

use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const SECTOR: u64 = 512;
pub const ALIGN: u64 = 1 << 20;
const GPT_ENTRIES: u64 = 128;
const GPT_ENTRY_SIZE: u64 = 128;
/// Sectors the GPT entry array takes (128 entries of 128 bytes).
const GPT_ENTRY_SECTORS: u64 = GPT_ENTRIES * GPT_ENTRY_SIZE / SECTOR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// DOS partition table in the master boot record.
    Mbr,
    /// GUID partition table.
    Gpt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartType {
    EfiSystem,
    MicrosoftReserved,
    MicrosoftBasicData,
    LinuxFilesystem,
    LinuxSwap,
}

impl PartType {
    /// The GPT partition type GUID.
    pub fn gpt_type(self) -> Uuid {
        let s = match self {
            PartType::EfiSystem => "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            PartType::MicrosoftReserved => "e3c9e316-0b5c-4db8-817d-f92df00215ae",
            PartType::MicrosoftBasicData => "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
            PartType::LinuxFilesystem => "0fc63daf-8483-4772-8e79-3d69d8477de4",
            PartType::LinuxSwap => "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
        };
        Uuid::parse_str(s).unwrap_or_default()
    }

    /// The MBR partition type byte.
    pub fn mbr_type(self) -> u8 {
        match self {
            PartType::EfiSystem => 0xef,
            PartType::MicrosoftReserved | PartType::MicrosoftBasicData => 0x07,
            PartType::LinuxFilesystem => 0x83,
            PartType::LinuxSwap => 0x82,
        }
    }
}

/// A partition to lay out: `size` in bytes, or `None` for the rest of the disk.
#[derive(Debug, Clone)]
pub struct PartSpec {
    pub ptype: PartType,
    pub size: Option<u64>,
    /// GPT partition name (ignored on MBR).
    pub name: String,
    /// MBR boot flag (ignored on GPT).
    pub bootable: bool,
}

/// A partition placed on the disk (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub number: u32,
    pub ptype: PartType,
    pub start: u64,
    pub size: u64,
    pub name: String,
    pub bootable: bool,
    /// GPT unique partition GUID.
    pub guid: Uuid,
}

/// Places `specs` one after the other from 1 MiB on, each on a 1 MiB boundary.
pub fn layout(kind: TableKind, disk_size: u64, specs: &[PartSpec]) -> Result<Vec<Placed>, String> {
    if disk_size % ALIGN != 0 || disk_size < 4 * ALIGN {
        return Err(format!("disk size {disk_size} is not a multiple of 1 MiB of at least 4 MiB"));
    }
    let max = match kind {
        TableKind::Mbr => {
            if specs.len() > 4 {
                return Err("an MBR holds at most 4 primary partitions".into());
            }
            if disk_size / SECTOR > u64::from(u32::MAX) {
                return Err("an MBR addresses at most 2 TiB".into());
            }
            disk_size
        }
        // The backup entries and header take the last 33 sectors.
        TableKind::Gpt => (disk_size - (GPT_ENTRY_SECTORS + 1) * SECTOR) / ALIGN * ALIGN,
    };
    let mut placed = Vec::new();
    let mut next = ALIGN;
    for (i, spec) in specs.iter().enumerate() {
        let size = match spec.size {
            Some(s) => s.div_ceil(ALIGN) * ALIGN,
            None => max.saturating_sub(next),
        };
        if size == 0 || next + size > max {
            return Err(format!("partition {} ({:?}) does not fit on a disk of {disk_size} bytes", i + 1, spec.ptype));
        }
        placed.push(Placed {
            number: i as u32 + 1,
            ptype: spec.ptype,
            start: next,
            size,
            name: spec.name.clone(),
            bootable: spec.bootable,
            guid: Uuid::new_v4(),
        });
        next += size;
    }
    Ok(placed)
}

/// Writes the partition table of a disk of `disk_size` bytes into `file`.
pub fn write_table(file: &File, kind: TableKind, disk_size: u64, disk_id: Uuid, parts: &[Placed]) -> std::io::Result<()> {
    match kind {
        TableKind::Mbr => {
            let entries: Vec<MbrEntry> = parts
                .iter()
                .map(|p| MbrEntry { bootable: p.bootable, ptype: p.ptype.mbr_type(), start: p.start / SECTOR, sectors: p.size / SECTOR })
                .collect();
            file.write_all_at(&mbr(disk_id, &entries), 0)
        }
        TableKind::Gpt => write_gpt(file, disk_size, disk_id, parts),
    }
}

struct MbrEntry {
    bootable: bool,
    ptype: u8,
    start: u64,
    sectors: u64,
}

fn mbr(disk_id: Uuid, entries: &[MbrEntry]) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[440..444].copy_from_slice(&disk_id.as_bytes()[..4]);
    for (i, e) in entries.iter().enumerate().take(4) {
        let o = 446 + 16 * i;
        s[o] = if e.bootable { 0x80 } else { 0 };
        s[o + 1..o + 4].copy_from_slice(&chs(e.start));
        s[o + 4] = e.ptype;
        s[o + 5..o + 8].copy_from_slice(&chs(e.start + e.sectors - 1));
        s[o + 8..o + 12].copy_from_slice(&(e.start.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        s[o + 12..o + 16].copy_from_slice(&(e.sectors.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

/// Cylinder/head/sector of an LBA in the 255-head, 63-sector geometry,
/// saturating at 1023/254/63 as fdisk does.
fn chs(lba: u64) -> [u8; 3] {
    let (heads, spt) = (255u64, 63u64);
    let mut c = lba / (heads * spt);
    let (mut h, mut sct) = ((lba / spt) % heads, lba % spt + 1);
    if c > 1023 {
        c = 1023;
        h = 254;
        sct = 63;
    }
    [h as u8, (sct as u8) | (((c >> 8) as u8) << 6), c as u8]
}

fn write_gpt(file: &File, disk_size: u64, disk_id: Uuid, parts: &[Placed]) -> std::io::Result<()> {
    let last_lba = disk_size / SECTOR - 1;
    let protective = MbrEntry { bootable: false, ptype: 0xee, start: 1, sectors: last_lba.min(u64::from(u32::MAX)) };
    let mut pmbr = mbr(Uuid::nil(), &[protective]);
    // A protective MBR's CHS fields: start 0/0/2, end saturated.
    pmbr[446 + 1..446 + 4].copy_from_slice(&[0x00, 0x02, 0x00]);
    pmbr[446 + 5..446 + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
    file.write_all_at(&pmbr, 0)?;

    let mut entries = vec![0u8; (GPT_ENTRIES * GPT_ENTRY_SIZE) as usize];
    for (i, p) in parts.iter().enumerate() {
        let e = &mut entries[i * GPT_ENTRY_SIZE as usize..(i + 1) * GPT_ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&p.ptype.gpt_type().to_bytes_le());
        e[16..32].copy_from_slice(&p.guid.to_bytes_le());
        e[32..40].copy_from_slice(&(p.start / SECTOR).to_le_bytes());
        e[40..48].copy_from_slice(&((p.start + p.size) / SECTOR - 1).to_le_bytes());
        // Attributes: the Microsoft reserved partition is "no automount" on Windows installs.
        let attrs: u64 = if p.ptype == PartType::MicrosoftReserved { 1 << 63 } else { 0 };
        e[48..56].copy_from_slice(&attrs.to_le_bytes());
        for (j, unit) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let entries_crc = crc32(&entries);
    let first_usable = 2 + GPT_ENTRY_SECTORS;
    let last_usable = last_lba - GPT_ENTRY_SECTORS - 1;
    let header = |current: u64, backup: u64, entries_at: u64| -> [u8; 512] {
        let mut h = [0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&current.to_le_bytes());
        h[32..40].copy_from_slice(&backup.to_le_bytes());
        h[40..48].copy_from_slice(&first_usable.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk_id.to_bytes_le());
        h[72..80].copy_from_slice(&entries_at.to_le_bytes());
        h[80..84].copy_from_slice(&(GPT_ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(GPT_ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let backup_entries = last_lba - GPT_ENTRY_SECTORS;
    file.write_all_at(&header(1, last_lba, 2), SECTOR)?;
    file.write_all_at(&entries, 2 * SECTOR)?;
    file.write_all_at(&entries, backup_entries * SECTOR)?;
    file.write_all_at(&header(last_lba, 1, backup_entries), last_lba * SECTOR)
}

/// CRC-32 (IEEE 802.3, reflected), as GPT headers and entry arrays use.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    fn spec(ptype: PartType, size: Option<u64>) -> PartSpec {
        PartSpec { ptype, size, name: String::new(), bootable: false }
    }

    #[test]
    fn layout_aligns_and_fills_the_rest() {
        let gib = 1u64 << 30;
        let parts = layout(TableKind::Gpt, 8 * gib, &[spec(PartType::EfiSystem, Some(100 << 20)), spec(PartType::MicrosoftBasicData, None)]).unwrap();
        assert_eq!(parts[0].start, ALIGN);
        assert_eq!(parts[1].start, ALIGN + (100 << 20));
        // The last MiB is left to the backup GPT (it needs 33 sectors).
        assert_eq!(parts[1].start + parts[1].size, 8 * gib - ALIGN);
        let mbr = layout(TableKind::Mbr, 2 * gib, &[spec(PartType::LinuxFilesystem, None)]).unwrap();
        assert_eq!(mbr[0].start + mbr[0].size, 2 * gib);
        let err = layout(TableKind::Mbr, 2 * gib, &[spec(PartType::LinuxFilesystem, Some(3 * gib))]).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        assert!(layout(TableKind::Mbr, 2 * gib, &vec![spec(PartType::LinuxSwap, Some(ALIGN)); 5]).is_err());
    }

    #[test]
    fn chs_saturates_past_the_geometry() {
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(1 << 30), [254, 0xff, 0xff]);
    }
}
