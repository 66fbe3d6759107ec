//! Filesystem detection by magic numbers, reading only the first pages of a
//! partition. Detection says what a partition *looks like*; the filesystem
//! readers validate the structures themselves when opened.

use std::fmt;

use crate::read_at::Window;

/// What a partition holds, as far as magic numbers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsKind {
    /// ext2 (no journal, no ext4 features).
    Ext2,
    /// ext3 (journal, no ext4 features).
    Ext3,
    /// ext4 (extents, 64-bit, flex_bg or inline data).
    Ext4,
    /// NTFS.
    Ntfs,
    /// FAT12 (fewer than 4085 clusters).
    Fat12,
    /// FAT16 (fewer than 65525 clusters).
    Fat16,
    /// FAT32.
    Fat32,
    /// Linux swap space (not browsable).
    Swap,
    /// Nothing recognised.
    Unknown,
}

impl FsKind {
    /// True when [`crate::Disk::filesystem`] can open this kind.
    pub fn is_readable(self) -> bool {
        !matches!(self, FsKind::Swap | FsKind::Unknown)
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Ntfs => "NTFS",
            FsKind::Fat12 => "FAT12",
            FsKind::Fat16 => "FAT16",
            FsKind::Fat32 => "FAT32",
            FsKind::Swap => "swap",
            FsKind::Unknown => "unknown",
        })
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Looks at the start of `part` and names the filesystem. Read errors and
/// short partitions give [`FsKind::Unknown`].
pub fn detect(part: &Window) -> FsKind {
    let mut head = [0u8; 4096];
    let have = part.len().min(head.len() as u64) as usize;
    if part.read_exact_at(0, &mut head[..have]).is_err() {
        return FsKind::Unknown;
    }
    let head = &head[..have];
    if have >= 2048 {
        if let Some(kind) = ext_kind(&head[1024..2048]) {
            return kind;
        }
    }
    if have >= 512 {
        if &head[3..11] == b"NTFS    " {
            return FsKind::Ntfs;
        }
        if let Some(kind) = fat_kind(&head[..512]) {
            return kind;
        }
    }
    if have == 4096 && (&head[4086..4096] == b"SWAPSPACE2" || &head[4086..4096] == b"SWAP-SPACE") {
        return FsKind::Swap;
    }
    FsKind::Unknown
}

/// ext2/3/4 from the superblock (1024 bytes at offset 1024).
fn ext_kind(sb: &[u8]) -> Option<FsKind> {
    if le16(sb, 56) != 0xEF53 {
        return None;
    }
    let compat = le32(sb, 92);
    let incompat = le32(sb, 96);
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    // extents, 64bit, flex_bg, inline data: features ext3 never had.
    const INCOMPAT_EXT4: u32 = 0x40 | 0x80 | 0x200 | 0x8000;
    Some(if incompat & INCOMPAT_EXT4 != 0 {
        FsKind::Ext4
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    })
}

/// FAT12/16/32 from a plausible BIOS parameter block; the variant follows
/// the cluster count, as the specification says.
pub(crate) fn fat_kind(bs: &[u8]) -> Option<FsKind> {
    if bs.len() < 512 || !(bs[0] == 0xEB || bs[0] == 0xE9) {
        return None;
    }
    let bytes_per_sector = u32::from(le16(bs, 11));
    let sectors_per_cluster = u32::from(bs[13]);
    let reserved = u32::from(le16(bs, 14));
    let fats = u32::from(bs[16]);
    let root_entries = u32::from(le16(bs, 17));
    let total16 = u32::from(le16(bs, 19));
    let fat16_size = u32::from(le16(bs, 22));
    let total32 = le32(bs, 32);
    let fat32_size = le32(bs, 36);
    if ![512, 1024, 2048, 4096].contains(&bytes_per_sector)
        || !sectors_per_cluster.is_power_of_two()
        || reserved == 0
        || fats == 0
        || fats > 4
    {
        return None;
    }
    let total = if total16 != 0 { total16 } else { total32 };
    let fat_size = if fat16_size != 0 {
        fat16_size
    } else {
        fat32_size
    };
    let root_sectors = (root_entries * 32).div_ceil(bytes_per_sector);
    let meta =
        u64::from(reserved) + u64::from(fats) * u64::from(fat_size) + u64::from(root_sectors);
    let data = u64::from(total).checked_sub(meta)?;
    let clusters = data / u64::from(sectors_per_cluster);
    Some(if clusters < 4085 {
        FsKind::Fat12
    } else if clusters < 65525 {
        FsKind::Fat16
    } else {
        FsKind::Fat32
    })
}
