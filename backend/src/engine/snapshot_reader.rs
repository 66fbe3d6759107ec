//! Random access to a snapshot's disk: read any byte range through its fixed
//! index, with a small cache of decoded chunks. File-level restore (partition
//! table and filesystem parsers) sits on this reader via `Read + Seek`.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use super::chunk_store::ChunkStore;
use super::datastore::Datastore;
use super::error::Result;
use super::fixed_index::FixedIndex;

pub struct SnapshotReader {
    store: ChunkStore,
    index: FixedIndex,
    label: String,
    cache: Mutex<ChunkCache>,
    pos: u64,
}

struct ChunkCache {
    capacity: usize,
    map: HashMap<usize, Arc<Vec<u8>>>,
    order: VecDeque<usize>,
    hits: u64,
    misses: u64,
}

impl SnapshotReader {
    /// `cache_chunks` decoded chunks are kept (64 KiB each by default).
    pub fn open(ds: &Datastore, name: &str, which: &str, disk: Option<&str>, cache_chunks: usize) -> Result<Self> {
        let (m, _, index) = super::restore::open_disk(ds, name, which, disk)?;
        Ok(SnapshotReader {
            store: ds.load_chunk_store()?,
            index,
            label: format!("{}/{}", m.name, m.id),
            cache: Mutex::new(ChunkCache {
                capacity: cache_chunks.max(1),
                map: HashMap::new(),
                order: VecDeque::new(),
                hits: 0,
                misses: 0,
            }),
            pos: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.index.size
    }

    /// (hits, misses) of the chunk cache.
    pub fn cache_stats(&self) -> (u64, u64) {
        let c = self.cache.lock().unwrap();
        (c.hits, c.misses)
    }

    fn chunk(&self, i: usize) -> Result<Option<Arc<Vec<u8>>>> {
        let d = self.index.digests[i];
        if d.is_zero_marker() {
            return Ok(None);
        }
        {
            let mut c = self.cache.lock().unwrap();
            if let Some(v) = c.map.get(&i).cloned() {
                c.hits += 1;
                return Ok(Some(v));
            }
            c.misses += 1;
        }
        let data = Arc::new(self.store.read_chunk(&d, &self.label)?);
        let mut c = self.cache.lock().unwrap();
        if c.map.len() >= c.capacity {
            if let Some(old) = c.order.pop_front() {
                c.map.remove(&old);
            }
        }
        if c.map.insert(i, data.clone()).is_none() {
            c.order.push_back(i);
        }
        Ok(Some(data))
    }

    /// The run from `offset` (at most `max` bytes, within the disk) whose
    /// chunks are all zero chunks or all data chunks: (zeros, length).
    pub fn extent(&self, offset: u64, max: u64) -> (bool, u64) {
        let end = offset.saturating_add(max).min(self.index.size);
        if offset >= end {
            return (true, max.max(1));
        }
        let cs = self.index.chunk_size as u64;
        let zero = self.index.digests[(offset / cs) as usize].is_zero_marker();
        let mut pos = offset;
        while pos < end {
            let i = (pos / cs) as usize;
            if self.index.digests[i].is_zero_marker() != zero {
                break;
            }
            pos = ((i as u64 + 1) * cs).min(end);
        }
        (zero, pos - offset)
    }

    /// Fill `buf` from `offset`; returns bytes read (short only at the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.index.size {
            return Ok(0);
        }
        let want = buf.len().min((self.index.size - offset) as usize);
        let cs = self.index.chunk_size as u64;
        let mut done = 0;
        while done < want {
            let pos = offset + done as u64;
            let i = (pos / cs) as usize;
            let within = (pos % cs) as usize;
            let (_, len) = self.index.chunk_range(i);
            let n = (len - within).min(want - done);
            match self.chunk(i)? {
                Some(data) => buf[done..done + n].copy_from_slice(&data[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(want)
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.read_at(self.pos, buf).map_err(std::io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SnapshotReader {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.index.size as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if new < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start"));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// File-level restore reads partition tables and filesystems through this.
impl guest_fs::ReadAt for SnapshotReader {
    fn size(&self) -> u64 {
        self.index.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        SnapshotReader::read_at(self, offset, buf).map_err(std::io::Error::other)
    }
}
