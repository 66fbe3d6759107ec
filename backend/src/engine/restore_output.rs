//! Writing a restore's output file. Each worker gathers the chunks it
//! decodes that follow one another on the disk into a page-aligned buffer
//! (up to [`RUN_BYTES`]) and writes that run with one `O_DIRECT` write:
//! the data goes from the buffer to the disk without being copied into the
//! page cache. On a buffered file, copying 1.4 GB of restored data into the
//! page cache took more CPU than decrypting, decompressing and hashing it
//! (and the closing fsync then waits for all of it), and 1.4 GB of dirty
//! pages pushed other programs' cache out. Where `O_DIRECT` is refused (a
//! file system without it, such as tmpfs, or an unaligned piece: a chunk
//! size or disk size that is not a multiple of [`ALIGN`]) the bytes are
//! written through the page cache as before; the closing `sync_all` of the
//! restore covers both.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub use super::aligned_buf::ALIGN;
use super::aligned_buf::AlignedBuf;
/// The longest run a worker gathers before writing it (one buffer per worker).
pub const RUN_BYTES: usize = 2 << 20;

/// The output: the file the restore opened (buffered) and, where the file
/// system takes it, a second descriptor of the same file with `O_DIRECT`.
pub struct Output<'a> {
    buffered: &'a File,
    direct: Option<File>,
    /// Cleared when a direct write is refused: the rest goes buffered.
    direct_ok: AtomicBool,
}

impl<'a> Output<'a> {
    /// `file` is `path` opened for writing. The direct descriptor is opened
    /// by path and used only if it is the same file (device and inode).
    pub fn new(path: &Path, file: &'a File) -> Output<'a> {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok()
            .filter(|d| match (d.metadata(), file.metadata()) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            });
        let direct_ok = AtomicBool::new(direct.is_some());
        Output { buffered: file, direct, direct_ok }
    }

    /// Whether writes still go direct.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some() && self.direct_ok.load(Ordering::Relaxed)
    }

    /// A gatherer for one worker.
    pub fn runs(&self) -> RunWriter<'_, 'a> {
        RunWriter { out: self, buf: None, start: 0, len: 0 }
    }

    /// Writes `data` at `off`: the aligned part direct (when it may), the
    /// rest buffered.
    fn write(&self, data: &[u8], off: u64) -> std::io::Result<()> {
        let mut done = 0usize;
        if let Some(d) = self.direct.as_ref().filter(|_| self.is_direct() && off % ALIGN as u64 == 0) {
            let aligned = data.len() / ALIGN * ALIGN;
            while done < aligned {
                match d.write_at(&data[done..aligned], off + done as u64) {
                    Ok(0) => break,
                    // A short direct write leaves an aligned remainder only
                    // if it stopped on a block boundary; otherwise buffered.
                    Ok(n) => {
                        done += n;
                        if done % ALIGN != 0 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        self.direct_ok.store(false, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if done < data.len() {
            self.buffered.write_all_at(&data[done..], off + done as u64)?;
        }
        Ok(())
    }
}

/// One worker's run: chunks that follow one another on the disk, gathered
/// in an aligned buffer and written when the next chunk does not follow,
/// the buffer is full, or [`RunWriter::flush`] is called.
pub struct RunWriter<'o, 'a> {
    out: &'o Output<'a>,
    buf: Option<AlignedBuf>,
    start: u64,
    len: usize,
}

impl RunWriter<'_, '_> {
    /// Writes `data` at `off` (now or with the run it joins).
    pub fn push(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        if self.len > 0 && (self.start + self.len as u64 != off || self.len + data.len() > RUN_BYTES) {
            self.flush()?;
        }
        let starts_aligned = self.len > 0 || off % ALIGN as u64 == 0;
        if !self.out.is_direct() || !starts_aligned || data.len() > RUN_BYTES {
            self.flush()?;
            return self.out.write(data, off);
        }
        let buf = self.buf.get_or_insert_with(|| AlignedBuf::new(RUN_BYTES));
        if self.len == 0 {
            self.start = off;
        }
        buf.as_mut_slice()[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        Ok(())
    }

    /// Writes the gathered run.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let len = std::mem::take(&mut self.len);
        match &self.buf {
            Some(b) => self.out.write(&b.as_slice()[..len], self.start),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Runs, gaps, unaligned pieces and an unaligned tail land byte-exact.
    #[test]
    fn runs_and_unaligned_pieces_land_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.raw");
        let size = 9 * 65536 + 1000;
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(size as u64).unwrap();
        let out = Output::new(&path, &file);
        let mut want = vec![0u8; size];
        let mut w = out.runs();
        // Chunks 0..3 (a run), 5 (a gap before it), 4 (backwards), a piece
        // at an unaligned offset, the unaligned tail; a run longer than a buffer.
        let mut put = |w: &mut RunWriter, off: usize, data: Vec<u8>| {
            want[off..off + data.len()].copy_from_slice(&data);
            w.push(off as u64, &data).unwrap();
        };
        for (i, c) in [0usize, 1, 2, 5, 4].into_iter().enumerate() {
            put(&mut w, c * 65536, pattern(65536, i as u8));
        }
        put(&mut w, 6 * 65536 + 100, pattern(5000, 9));
        put(&mut w, 9 * 65536, pattern(1000, 7));
        w.flush().unwrap();
        let mut w2 = out.runs();
        put(&mut w2, 7 * 65536, pattern(2 * 65536, 3));
        w2.flush().unwrap();
        drop(w);
        file.sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
