//! Read guest filesystems from a VM disk image without mounting anything,
//! for file-level restore.
//!
//! ```no_run
//! use std::sync::Arc;
//! use guest_fs::{FileDisk, GuestPath};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let disk = guest_fs::open(Arc::new(FileDisk::open("disk.raw")?))?;
//! for p in disk.partitions() {
//!     println!("{} {:?} {} bytes: {}", p.index, p.part_type, p.length, p.filesystem);
//! }
//! let fs = disk.filesystem(0)?;
//! let page = fs.list(&GuestPath::parse("/etc")?, 0, 100)?;
//! let mut file = fs.open_file(&GuestPath::parse("/etc/hostname")?)?;
//! std::io::copy(&mut file, &mut std::io::stdout())?;
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! * [`ReadAt`]: random access to the disk (a raw file, or the backup
//!   engine's snapshot reader); [`Window`] is a `Read + Seek` view of one
//!   partition.
//! * [`open`] reads the partition table (GPT, MBR with logical partitions,
//!   or none) and detects each partition's filesystem by magic numbers.
//! * [`Disk::filesystem`] opens ext2/3/4 (`ext4-view`), NTFS (`ntfs`) or
//!   FAT (parsed here, see `fat.rs`) behind one trait, [`GuestFs`]; [`walk`] traverses a tree.
//!
//! # Safety against hostile images
//!
//! * All paths go through one normaliser, [`GuestPath`]: no `..` above the
//!   root, no NUL or control characters; names read from an image are
//!   checked the same way before they become paths. Symbolic links and
//!   reparse points are reported, never followed.
//! * Hand-written parsers (partition tables, detection) bounds-check every
//!   field against the disk size; loops (logical partition chains, directory
//!   sizes, walks) have explicit limits ([`MAX_DIR_ENTRIES`], [`WalkLimits`]).
//! * Third-party parsers (`ext4-view`, `ntfs`) run on threads of their own
//!   (`worker.rs`, `pump.rs`): a panic there ends that thread only and
//!   surfaces as [`Error::Worker`] for that filesystem instead of unwinding
//!   through the caller, and a stalled parser gives a timeout error (the
//!   stuck thread is left behind). This is the last line of defence, for
//!   bugs we cannot validate around: fuzzing found one in `ntfs` 0.4.0
//!   (an index entry shorter than its header). It relies on unwinding: do
//!   not build with `panic = "abort"`. No `catch_unwind`, no `unsafe`.
//! * FAT is parsed here (`fat.rs`): `fatfs` 0.3 panicked on fuzzed images.
//! * File content is streamed: at most 64 KiB per read call, at most four
//!   such chunks queued ahead (NTFS); a file never yields more than its size.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod detect;
mod disk;
mod error;
mod ext4;
mod fat;
#[doc(hidden)]
pub mod fuzzing;
mod guest_fs;
mod ntfs;
mod partitions;
mod path;
mod pump;
mod read_at;
mod worker;

pub use detect::FsKind;
pub use disk::{open, Disk, Partition};
pub use error::{Error, Result};
pub use guest_fs::{
    walk, Entry, EntryKind, GuestFs, Listing, WalkLimits, WalkStats, WinAttributes,
    MAX_DIR_ENTRIES, MAX_PAGE,
};
pub use partitions::{PartitionType, TableKind};
pub use path::GuestPath;
pub use read_at::{read_exact_at, FileDisk, MemDisk, ReadAt, Window};
