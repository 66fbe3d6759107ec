//! Restore a disk image from a snapshot. Every snapshot is a full image (its
//! fixed index lists every chunk), so restore never replays a chain. All-zero
//! chunks are not written: a fresh output file keeps them as holes. The
//! chunks are read by pack, neighbours in one ranged read (one request per
//! run of chunks, not per chunk, on an object store); workers (one per core,
//! more on an object store) fetch those reads in parallel, decrypt,
//! decompress and re-hash the chunks and write them in any order, chunks
//! that follow one another on the disk in one direct write
//! ([`restore_output`](super::restore_output): not copied through the page
//! cache). Workers obey the progress
//! [`Control`](super::progress::Control) before every read: a paused
//! restore holds still, a cancelled one removes its output. Progress counts
//! stored chunks as read and all-zero chunks as skipped, like a backup.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::chunk_store::{coalesce, ChunkLoc, ChunkStore, Span};
use super::datastore::Datastore;
use super::error::{EngineError, Result};
use super::fixed_index::FixedIndex;
use super::manifest::{DiskEntry, Manifest};
use super::progress::Progress;
use super::restore_output::{Output, RunWriter};

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
    let mut store = ds.load_chunk_store()?;
    // Every chunk must be known before the output is touched (after every
    // pack index is listed, if the cache read only the index log).
    store.relist_unless_all_known(&index.digests)?;
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

/// One chunk the restore needs: where it is stored, where it goes.
struct Want {
    loc: ChunkLoc,
    /// Position in the fixed index.
    pos: usize,
}

/// The reads a restore makes: the non-zero chunks grouped by pack, sorted
/// by offset, neighbours in one read ([`coalesce`]; a chunk used twice is read once).
fn plan_reads(store: &ChunkStore, index: &FixedIndex) -> (Vec<Want>, Vec<Span>) {
    let mut wants: Vec<Want> = index
        .digests
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.is_zero_marker())
        .filter_map(|(pos, d)| store.get(d).map(|loc| Want { loc, pos }))
        .collect();
    wants.sort_unstable_by_key(|w| (w.loc.pack, w.loc.offset, w.pos));
    let spans = coalesce(wants.iter().map(|w| &w.loc));
    (wants, spans)
}

/// Writes every chunk of `index` into `file`. The reads of [`plan_reads`]
/// run on `workers` threads (more where the repository says reads wait on
/// the network: [`Repository::parallel_requests`](super::repository::Repository::parallel_requests)),
/// each decoding its chunks and writing them with positioned writes. A pack
/// gone since the chunk store was loaded (a GC repacked it) is read chunk
/// by chunk through [`ChunkStore::read_chunk`], which finds the chunks'
/// new packs. All-zero chunks are counted (and written on a block device)
/// by one more thread.
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
    let (wants, spans) = plan_reads(store, index);
    let output = Output::new(out, file);
    let threads = workers.max(store.repo.parallel_requests()).min(spans.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_err: Mutex<Option<EngineError>> = Mutex::new(None);
    let fail = |e: EngineError| {
        stop.store(true, Ordering::Relaxed);
        first_err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let zeros = vec![0u8; index.chunk_size as usize];
            for (i, d) in index.digests.iter().enumerate() {
                if !d.is_zero_marker() {
                    continue;
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let (off, len) = index.chunk_range(i);
                Progress::add(&progress.chunks_zero, 1);
                Progress::add(&progress.bytes_skipped, len as u64);
                if write_zeros {
                    let r = progress
                        .control
                        .checkpoint()
                        .and_then(|_| file.write_all_at(&zeros[..len], off).map_err(|e| EngineError::file(out, e)));
                    if let Err(e) = r {
                        return fail(e);
                    }
                }
            }
        });
        for _ in 0..threads {
            s.spawn(|| {
                let mut runs = output.runs();
                while !stop.load(Ordering::Relaxed) {
                    // Pause holds here, cancel ends the restore (the output is removed).
                    if let Err(e) = progress.control.checkpoint() {
                        return fail(e);
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(sp) = spans.get(i) else { return };
                    if let Err(e) = write_span(store, index, label, &mut runs, out, progress, sp, &wants[sp.first..sp.end]) {
                        return fail(e);
                    }
                }
            });
        }
    });
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One coalesced read: fetch, then decode and write each chunk it covers
/// (chunks that follow one another on the disk in one write, see
/// [`super::restore_output`]).
#[allow(clippy::too_many_arguments)]
fn write_span(
    store: &ChunkStore,
    index: &FixedIndex,
    label: &str,
    runs: &mut RunWriter,
    out: &Path,
    progress: &Progress,
    sp: &Span,
    wants: &[Want],
) -> Result<()> {
    let t = std::time::Instant::now();
    let buf = match store.read_span(sp.pack, sp.offset, sp.len as usize) {
        Ok(b) => Some(b),
        Err(EngineError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let bytes: u64 = wants.iter().map(|w| index.chunk_range(w.pos).1 as u64).sum();
    progress.pace(bytes, t.elapsed());
    let mut last: Option<(u64, Vec<u8>)> = None;
    for w in wants {
        // A pause holds before each chunk is counted and written, not only
        // between spans (a span is up to 8 MiB): a paused restore stands still.
        progress.control.checkpoint()?;
        let d = &index.digests[w.pos];
        let (off, len) = index.chunk_range(w.pos);
        let data = match (&last, &buf) {
            (Some((o, data)), _) if *o == w.loc.offset => data,
            (_, Some(buf)) => {
                let at = (w.loc.offset - sp.offset) as usize;
                let data = store.decode_at(d, &w.loc, &buf[at..at + w.loc.stored_len as usize])?;
                &last.insert((w.loc.offset, data)).1
            }
            // The pack went (a GC repacked it): find each chunk again.
            (_, None) => &last.insert((w.loc.offset, store.read_chunk(d, label)?)).1,
        };
        Progress::add(&progress.bytes_written, data.len() as u64);
        Progress::add(&progress.bytes_read, len as u64);
        runs.push(off, data).map_err(|e| EngineError::file(out, e))?;
    }
    runs.flush().map_err(|e| EngineError::file(out, e))
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
