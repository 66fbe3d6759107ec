//! Restore a disk image from a snapshot. Every snapshot is a full image (its
//! fixed index lists every chunk), so restore never replays a chain. All-zero
//! chunks are not written: a fresh output file keeps them as holes. Workers
//! (one per core) fetch, decrypt, decompress and re-hash chunks and write
//! them with positioned writes, in any order. Workers obey the progress
//! [`Control`](super::progress::Control) before every chunk: a paused
//! restore holds still, a cancelled one removes its output. Progress counts
//! stored chunks as read and all-zero chunks as skipped, like a backup.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::chunk_store::ChunkStore;
use super::datastore::Datastore;
use super::error::{EngineError, Result};
use super::fixed_index::FixedIndex;
use super::manifest::{DiskEntry, Manifest};
use super::progress::Progress;

/// The snapshot, its disk entry and fixed index.
pub fn open_disk(ds: &Datastore, name: &str, which: &str, disk: Option<&str>) -> Result<(Manifest, DiskEntry, FixedIndex)> {
    let m = ds.resolve(name, which)?;
    let label = format!("{}/{}", m.name, m.id);
    let entry = match disk {
        Some(d) => m.disks.iter().find(|x| x.name == d).cloned(),
        None => m.disks.first().cloned(),
    }
    .ok_or_else(|| EngineError::Invalid(format!("snapshot {label} has no disk {}", disk.unwrap_or("(none)"))))?;
    let index = ds.load_index(&label, &entry.index)?;
    if index.size != entry.size {
        return Err(EngineError::CorruptIndex {
            snapshot: label,
            key: entry.index.clone(),
            reason: format!("index covers {} bytes, manifest says {}", index.size, entry.size),
        });
    }
    Ok((m, entry, index))
}

pub fn restore(
    ds: &Datastore,
    name: &str,
    which: &str,
    disk: Option<&str>,
    out: &Path,
    workers: usize,
    progress: &Progress,
) -> Result<Manifest> {
    let (m, _entry, index) = open_disk(ds, name, which, disk)?;
    let label = format!("{}/{}", m.name, m.id);
    let store = ds.load_chunk_store()?;
    // Every chunk must be known before the output is touched.
    for d in index.digests.iter().filter(|d| !d.is_zero_marker()) {
        if !store.contains(d) {
            return Err(EngineError::MissingChunk { snapshot: label, digest: d.to_hex() });
        }
    }
    Progress::add(&progress.bytes_total, index.size);
    let is_dev = std::fs::metadata(out).map(|m| m.file_type().is_block_device()).unwrap_or(false);
    let file = if is_dev {
        OpenOptions::new().write(true).open(out)
    } else {
        OpenOptions::new().write(true).create(true).truncate(true).open(out)
    }
    .map_err(|e| EngineError::file(out, e))?;
    if !is_dev {
        file.set_len(index.size).map_err(|e| EngineError::file(out, e))?;
    }
    let res = write_chunks(&store, &index, &label, &file, out, workers.max(1), progress, is_dev)
        .and_then(|_| file.sync_all().map_err(|e| EngineError::file(out, e)));
    if let Err(e) = res {
        drop(file);
        if !is_dev {
            let _ = std::fs::remove_file(out);
        }
        return Err(e);
    }
    Ok(m)
}

#[allow(clippy::too_many_arguments)]
fn write_chunks(
    store: &ChunkStore,
    index: &FixedIndex,
    label: &str,
    file: &File,
    out: &Path,
    workers: usize,
    progress: &Progress,
    write_zeros: bool,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_err: Mutex<Option<EngineError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let zeros = vec![0u8; index.chunk_size as usize];
                while !stop.load(Ordering::Relaxed) {
                    // Pause holds here, cancel ends the restore (the output is removed).
                    if let Err(e) = progress.control.checkpoint() {
                        stop.store(true, Ordering::Relaxed);
                        first_err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= index.digests.len() {
                        return;
                    }
                    let d = &index.digests[i];
                    let (off, len) = index.chunk_range(i);
                    let r = if d.is_zero_marker() {
                        Progress::add(&progress.chunks_zero, 1);
                        Progress::add(&progress.bytes_skipped, len as u64);
                        if write_zeros {
                            file.write_all_at(&zeros[..len], off).map_err(|e| EngineError::file(out, e))
                        } else {
                            Ok(())
                        }
                    } else {
                        let t = std::time::Instant::now();
                        store.read_chunk(d, label).and_then(|data| {
                            progress.pace(len as u64, t.elapsed());
                            Progress::add(&progress.bytes_written, data.len() as u64);
                            Progress::add(&progress.bytes_read, len as u64);
                            file.write_all_at(&data, off).map_err(|e| EngineError::file(out, e))
                        })
                    };
                    if let Err(e) = r {
                        stop.store(true, Ordering::Relaxed);
                        first_err.lock().unwrap().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_err.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Bytes of data a restore of every disk of a snapshot writes: the chunks
/// that are not all zeros (a fresh output keeps the zeros as holes).
pub fn allocated_bytes(ds: &Datastore, name: &str, which: &str) -> Result<u64> {
    let m = ds.resolve(name, which)?;
    let mut total = 0u64;
    for d in &m.disks {
        let (_, _, index) = open_disk(ds, &m.name, &m.id, Some(&d.name))?;
        for (i, digest) in index.digests.iter().enumerate() {
            if !digest.is_zero_marker() {
                total += index.chunk_range(i).1 as u64;
            }
        }
    }
    Ok(total)
}
