//! Random-access reading of a disk image: the [`ReadAt`] trait, two simple
//! implementations (a file, a byte vector) and [`Window`], a `Read + Seek`
//! view of one byte range (a partition) for parsers that want streams.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A disk image read at arbitrary offsets. Implementations must be safe to
/// share between threads; `read_at` takes `&self`.
pub trait ReadAt: Send + Sync {
    /// Size of the disk in bytes.
    fn size(&self) -> u64;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read,
    /// 0 only at or past the end of the disk.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// A raw image file.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
}

impl FileDisk {
    /// Opens `path` read-only; the size is taken once, here.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = File::open(path)?;
        Self::new(file)
    }

    /// Wraps an open file; the size is taken once, here.
    pub fn new(file: File) -> io::Result<Self> {
        let size = file.metadata()?.len();
        Ok(FileDisk { file, size })
    }
}

impl ReadAt for FileDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let max = usize::try_from(self.size - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        FileExt::read_at(&self.file, &mut buf[..max], offset)
    }
}

/// An image held in memory (tests, fuzzing).
#[derive(Debug, Clone)]
pub struct MemDisk(pub Vec<u8>);

impl ReadAt for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(src) = self.0.get(start..) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
}

/// Fills `buf` from `offset`, or fails with `UnexpectedEof` if the disk ends
/// first. Interrupted reads are retried.
pub fn read_exact_at(disk: &dyn ReadAt, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match disk.read_at(offset, buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("disk ends before byte {offset}"),
                ));
            }
            Ok(n) => {
                let n = n.min(buf.len());
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A `Read + Seek` view of bytes `start .. start + len` of a disk. Reads never
/// go outside the window. Cloning gives an independent cursor.
#[derive(Clone)]
pub struct Window {
    disk: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
    pos: u64,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("start", &self.start)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl Window {
    /// A window over `start .. start + len`; fails if that range is not
    /// inside the disk.
    pub fn new(disk: Arc<dyn ReadAt>, start: u64, len: u64) -> io::Result<Self> {
        let end = start.checked_add(len);
        if end.is_none_or(|end| end > disk.size()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {start}+{len} is outside the disk ({} bytes)",
                    disk.size()
                ),
            ));
        }
        Ok(Window {
            disk,
            start,
            len,
            pos: 0,
        })
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads exactly `buf.len()` bytes at `offset` inside the window.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {offset} goes past the end of the partition ({} bytes)",
                    buf.len(),
                    self.len
                ),
            ));
        }
        read_exact_at(&*self.disk, self.start + offset, buf)
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.len - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.disk.read_at(self.start + self.pos, &mut buf[..max])?;
        let n = n.min(max);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                // Seeking past the end is allowed (reads then return 0), as for files.
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}
