//! Where a backup reads a disk from: a size, reads at any offset, and which
//! ranges are known to read as zeros without reading them (holes of a sparse
//! file, unallocated clusters a platform reports). Platform connectors give
//! their own sources (a qcow2 disk through NBD); [`FileSource`] reads an image
//! file.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{EngineError, Result};

pub trait BlockSource: Send + Sync {
    /// Names the source in errors and logs (a path, `vm/disk`).
    fn label(&self) -> String;
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`; a short read is [`EngineError::ImageChanged`].
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// True when `[offset, offset + len)` is known to read as zeros, so the
    /// backup can skip reading it. False when unsure.
    fn is_hole(&self, offset: u64, len: u64) -> bool;
}

/// A raw image file; holes found with `SEEK_DATA`.
pub struct FileSource {
    path: PathBuf,
    file: File,
    size: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource> {
        let mut file = File::open(path).map_err(|e| EngineError::file(path, e))?;
        let size = file.seek(SeekFrom::End(0)).map_err(|e| EngineError::file(path, e))?;
        Ok(FileSource { path: path.into(), file, size })
    }
}

impl BlockSource for FileSource {
    fn label(&self) -> String {
        self.path.display().to_string()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                EngineError::ImageChanged { path: self.path.clone() }
            } else {
                EngineError::file(&self.path, e)
            }
        })
    }

    /// `SEEK_DATA` finds no data before the range's end. Any error or an
    /// unsupported filesystem: false.
    fn is_hole(&self, offset: u64, len: u64) -> bool {
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(next_data) => next_data >= offset + len,
            // ENXIO: no data after `offset` at all.
            Err(e) if e == rustix::io::Errno::NXIO => offset + len <= self.size,
            Err(_) => false,
        }
    }
}

/// A source whose known-allocated ranges are listed up front (a platform's
/// allocation map); everything outside them reads as zeros.
pub fn hole_in(allocated: &[(u64, u64)], offset: u64, len: u64) -> bool {
    // `allocated` is sorted and disjoint: find the first range ending after `offset`.
    let i = allocated.partition_point(|&(o, l)| o + l <= offset);
    match allocated.get(i) {
        Some(&(o, _)) => o >= offset + len,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_found_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.raw");
        let f = File::create(&path).unwrap();
        f.set_len(4 << 20).unwrap();
        f.write_all_at(&[1u8; 65536], 1 << 20).unwrap();
        f.sync_all().unwrap();
        let src = FileSource::open(&path).unwrap();
        assert_eq!(src.size(), 4 << 20);
        assert!(src.is_hole(0, 65536));
        assert!(!src.is_hole(1 << 20, 65536));
        assert!(!src.is_hole((1 << 20) - 65536, 2 * 65536), "a run that reaches data is read");
        assert!(src.is_hole(3 << 20, 65536), "after the last data (ENXIO)");
    }

    #[test]
    fn a_short_read_says_the_image_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img.raw");
        std::fs::write(&path, [7u8; 100]).unwrap();
        let src = FileSource::open(&path).unwrap();
        let mut buf = [0u8; 200];
        assert!(matches!(src.read_exact_at(&mut buf, 0), Err(EngineError::ImageChanged { .. })));
    }

    #[test]
    fn holes_from_an_allocation_map() {
        let map = [(65536, 65536), (1 << 20, 4096)];
        assert!(hole_in(&map, 0, 65536));
        assert!(!hole_in(&map, 0, 65537));
        assert!(!hole_in(&map, 100_000, 10));
        assert!(hole_in(&map, 131072, 65536));
        assert!(!hole_in(&map, (1 << 20) + 4000, 10_000));
        assert!(hole_in(&map, 2 << 20, 1));
        assert!(hole_in(&[], 0, 1));
    }
}
