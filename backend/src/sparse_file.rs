//! Sparse files: where a file holds data (holes skipped, by `SEEK_DATA` /
//! `SEEK_HOLE`) and a copy that keeps the holes.
//!
//! `std::fs::copy` writes every byte of a sparse raw disk (a 6 GiB disk
//! with 30 MiB of data becomes 6 GiB on disk), which fills small disks;
//! [`copy`] writes only the source's data extents.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The data extents `(start, end)` of a file (holes skipped).
pub fn data_extents(file: &File) -> std::io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let len = file.metadata()?.len();
    let mut extents = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = seek(file, SeekFrom::Hole(start)).map_err(std::io::Error::from)?.min(len);
        if end > start {
            extents.push((start, end));
        }
        pos = end.max(start + 1);
    }
    Ok(extents)
}

/// Copies `src` to `dst` (created or truncated) with the same length,
/// writing only the source's data extents, so holes stay holes. Returns the
/// bytes written. The copy is flushed to disk before it returns.
pub fn copy(src: &Path, dst: &Path) -> std::io::Result<u64> {
    let from = File::open(src)?;
    let len = from.metadata()?.len();
    let to = OpenOptions::new().write(true).create(true).truncate(true).open(dst)?;
    to.set_len(len)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    for (start, end) in data_extents(&from)? {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            from.read_exact_at(&mut buf[..n], pos)?;
            to.write_all_at(&buf[..n], pos)?;
            written += n as u64;
            pos += n as u64;
        }
    }
    to.sync_all()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_the_holes_and_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
        let f = File::create(&src).unwrap();
        f.set_len(256 << 20).unwrap();
        f.write_all_at(b"first", 4096).unwrap();
        f.write_all_at(&[7u8; 100_000], 100 << 20).unwrap();
        f.write_all_at(b"last", (256 << 20) - 4).unwrap();
        drop(f);
        let written = copy(&src, &dst).unwrap();
        assert!(written < 2 << 20, "{written} bytes written for ~100 KB of data");
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
        use std::os::unix::fs::MetadataExt;
        let blocks = std::fs::metadata(&dst).unwrap().blocks() * 512;
        assert!(blocks < 4 << 20, "the copy takes {blocks} bytes on disk");
    }
}
