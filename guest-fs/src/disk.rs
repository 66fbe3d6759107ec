//! A disk opened for browsing: its partitions and the filesystems in them.

use std::sync::Arc;

use crate::detect::{detect, fat_kind, FsKind};
use crate::error::{Error, Result};
use crate::ext4::ExtFs;
use crate::fat::FatFs;
use crate::guest_fs::GuestFs;
use crate::ntfs::NtfsFs;
use crate::partitions::{read_table, PartitionType, TableKind};
use crate::read_at::{read_exact_at, ReadAt, Window};

/// One partition (or the whole disk when there is no table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Position in [`Disk::partitions`]; what [`Disk::filesystem`] takes.
    pub index: usize,
    /// The number an operating system gives it (1-based; MBR logical
    /// partitions from 5); `None` for a whole disk.
    pub number: Option<u32>,
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// The type recorded in the table.
    pub part_type: PartitionType,
    /// GPT partition name.
    pub label: Option<String>,
    /// The filesystem found by its magic numbers.
    pub filesystem: FsKind,
}

/// A disk image with its partition table read.
pub struct Disk {
    disk: Arc<dyn ReadAt>,
    table: TableKind,
    partitions: Vec<Partition>,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("table", &self.table)
            .field("partitions", &self.partitions)
            .finish()
    }
}

/// Reads the partition table of `disk` and detects the filesystem of each
/// partition. Nothing else is read until [`Disk::filesystem`].
pub fn open(disk: Arc<dyn ReadAt>) -> Result<Disk> {
    // A FAT or NTFS boot sector at byte 0 means a partitionless disk, even
    // though it carries the MBR signature.
    let mut head = [0u8; 512];
    let fs_at_zero = disk.size() >= 512
        && read_exact_at(&*disk, 0, &mut head).is_ok()
        && (&head[3..11] == b"NTFS    " || fat_kind(&head).is_some());
    let table = read_table(&*disk, fs_at_zero)?;
    let mut partitions = Vec::with_capacity(table.entries.len());
    for (index, e) in table.entries.into_iter().enumerate() {
        let window = Window::new(disk.clone(), e.start, e.length)
            .map_err(|err| Error::io("a partition", e.start, err))?;
        partitions.push(Partition {
            index,
            number: e.number,
            start: e.start,
            length: e.length,
            part_type: e.part_type,
            label: e.label,
            filesystem: detect(&window),
        });
    }
    Ok(Disk {
        disk,
        table: table.kind,
        partitions,
        warnings: table.warnings,
    })
}

impl Disk {
    /// The kind of partition table.
    pub fn table(&self) -> TableKind {
        self.table
    }

    /// The partitions, in table order.
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }

    /// Table entries that were ignored or cut because they did not fit.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Opens the filesystem of partition `index` read-only.
    pub fn filesystem(&self, index: usize) -> Result<Box<dyn GuestFs>> {
        let p = self.partitions.get(index).ok_or(Error::NoSuchPartition {
            index,
            count: self.partitions.len(),
        })?;
        let window = Window::new(self.disk.clone(), p.start, p.length)
            .map_err(|e| Error::io("a partition", p.start, e))?;
        Ok(match p.filesystem {
            k @ (FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4) => Box::new(ExtFs::open(k, window)?),
            FsKind::Ntfs => Box::new(NtfsFs::open(window)?),
            FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32 => Box::new(FatFs::open(window)?),
            k @ (FsKind::Swap | FsKind::Unknown) => {
                return Err(Error::Unsupported { index, detected: k })
            }
        })
    }
}
