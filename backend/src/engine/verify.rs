//! Verify: for every snapshot, load its manifest and fixed indexes (checksums),
//! then fetch, decrypt, decompress and re-hash every chunk they reference
//! (each distinct chunk once; a pack's chunks by neighbours in one ranged
//! read, as restore does, so an object store answers one request per run of
//! chunks, not per chunk; on all cores, more threads where the repository
//! says reads wait on the network). Problems are collected, each
//! naming the snapshot(s), the chunk digest and the pack, not stopping at the first.
//! Each snapshot's own problems are kept too ([`VerifyReport::damaged`]), so a
//! catalog can mark exactly the damaged restore points. `bytes_total` is set
//! to the plain bytes to check before reading; workers obey the progress
//! control between chunks (pause holds, stop ends with `Cancelled`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::chunk_store::{coalesce, ChunkLoc, ChunkStore, Span};
use super::datastore::Datastore;
use super::digest::Digest;
use super::error::{EngineError, Result};
use super::manifest::Manifest;
use super::progress::Progress;

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub snapshots: usize,
    pub chunks_checked: usize,
    pub bytes_checked: u64,
    pub errors: Vec<String>,
    /// Per damaged snapshot (`name/id`): what is wrong with it.
    pub damaged: BTreeMap<String, Vec<String>>,
    /// Snapshots checked whole and found intact (`name/id`).
    pub intact: Vec<String>,
}

pub fn verify(ds: &Datastore, workers: usize, progress: &Progress) -> Result<VerifyReport> {
    // Chunk locations come from the local index cache: the pack indexes
    // it stands in for are read and checked here (a corrupt one names itself).
    // Refreshed from the full listing: the index cache is set right about
    // packs deleted outside the GC protocol too (no index log names them).
    ds.load_chunk_store_listed()?.check_pack_indexes()?;
    let manifests = ds
        .list_snapshots(None)?
        .into_iter()
        .map(|(name, id)| (format!("{name}/{id}"), ds.load_manifest(&name, &id)))
        .collect();
    check(ds, manifests, workers, progress)
}

/// [`verify`] of one snapshot only: its manifest, fixed indexes and every
/// chunk they reference.
pub fn verify_snapshot(ds: &Datastore, name: &str, id: &str, workers: usize, progress: &Progress) -> Result<VerifyReport> {
    check(ds, vec![(format!("{name}/{id}"), ds.load_manifest(name, id))], workers, progress)
}

/// [`verify`] of a manifest not (yet) written to the repository: its fixed
/// indexes and chunks as the repository holds them (a copy checks what it
/// wrote before it publishes the manifest).
pub fn verify_manifest(ds: &Datastore, m: &Manifest, workers: usize, progress: &Progress) -> Result<VerifyReport> {
    check(ds, vec![(format!("{}/{}", m.name, m.id), Ok(m.clone()))], workers, progress)
}

/// Checks the snapshots given as (label, loaded manifest or why not).
fn check(ds: &Datastore, manifests: Vec<(String, Result<Manifest>)>, workers: usize, progress: &Progress) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let store = ds.load_chunk_store()?;
    // digest -> snapshots referencing it (indexes into `labels`)
    let mut refs: HashMap<Digest, Vec<u32>> = HashMap::new();
    let mut labels = Vec::new();
    for (label, m) in manifests {
        report.snapshots += 1;
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                report.damaged.entry(label).or_default().push(e.to_string());
                report.errors.push(e.to_string());
                continue;
            }
        };
        let li = labels.len() as u32;
        labels.push(label.clone());
        for disk in &m.disks {
            progress.control.checkpoint()?;
            match ds.load_index(&label, &disk.index) {
                Ok(idx) => {
                    for d in idx.digests.iter().filter(|d| !d.is_zero_marker()) {
                        let v = refs.entry(*d).or_default();
                        if v.last() != Some(&li) {
                            v.push(li);
                        }
                    }
                }
                Err(e) => {
                    report.damaged.entry(label.clone()).or_default().push(e.to_string());
                    report.errors.push(e.to_string());
                }
            }
        }
    }
    let todo: Vec<(Digest, Vec<u32>)> = refs.into_iter().collect();
    let (units, located) = plan_reads(&store, &todo);
    progress.bytes_total.store(located.iter().map(|(_, l)| l.raw_len as u64).sum(), Ordering::Relaxed);
    let names = |v: &[u32]| v.iter().map(|&i| labels[i as usize].as_str()).collect::<Vec<_>>().join(", ");
    let next = AtomicUsize::new(0);
    // (snapshots, message)
    let errors: Mutex<Vec<(Vec<u32>, String)>> = Mutex::new(Vec::new());
    let checked = AtomicUsize::new(0);
    // One chunk's outcome: counted, or an error naming its snapshots.
    let outcome = |i: usize, r: Result<Vec<u8>>| {
        let (d, snaps) = &todo[i];
        let err = match r {
            Ok(data) => {
                Progress::add(&progress.bytes_read, data.len() as u64);
                checked.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(EngineError::MissingChunk { .. }) => format!("snapshot {}: chunk {d} is missing", names(snaps)),
            Err(e) => format!("snapshot {}: {e}", names(snaps)),
        };
        errors.lock().unwrap_or_else(|p| p.into_inner()).push((snaps.clone(), err));
    };
    let threads = workers.max(store.repo.parallel_requests()).clamp(1, units.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if progress.control.checkpoint().is_err() {
                    return;
                }
                let u = next.fetch_add(1, Ordering::Relaxed);
                let Some(unit) = units.get(u) else { return };
                match unit {
                    Unit::Lone(i) => outcome(*i, store.read_chunk(&todo[*i].0, "")),
                    Unit::Span { pack, offset, len, first, end } => {
                        let chunks = &located[*first..*end];
                        match store.read_span(*pack, *offset, *len as usize) {
                            Ok(buf) => {
                                for (i, loc) in chunks {
                                    if progress.control.checkpoint().is_err() {
                                        return;
                                    }
                                    let at = (loc.offset - offset) as usize;
                                    outcome(*i, store.decode_at(&todo[*i].0, loc, &buf[at..at + loc.stored_len as usize]));
                                }
                            }
                            // The pack went (a GC repacked it): each chunk is looked up again.
                            Err(EngineError::NotFound { .. }) => {
                                for (i, _) in chunks {
                                    if progress.control.checkpoint().is_err() {
                                        return;
                                    }
                                    outcome(*i, store.read_chunk(&todo[*i].0, ""));
                                }
                            }
                            Err(e) => {
                                let msg = e.to_string();
                                for (i, _) in chunks {
                                    outcome(*i, Err(EngineError::Pipeline(msg.clone())));
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    progress.control.checkpoint()?;
    report.chunks_checked = checked.into_inner();
    report.bytes_checked = progress.bytes_read.load(Ordering::Relaxed);
    let mut errs = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errs.sort_by(|a, b| a.1.cmp(&b.1));
    for (snaps, msg) in &errs {
        for &i in snaps {
            report.damaged.entry(labels[i as usize].clone()).or_default().push(msg.clone());
        }
    }
    report.errors.extend(errs.into_iter().map(|(_, m)| m));
    report.intact = labels.iter().filter(|l| !report.damaged.contains_key(*l)).cloned().collect();
    Ok(report)
}

/// One read of verify's: a run of a pack's chunks, or one chunk the chunk
/// map does not place (looked up again, or reported missing).
enum Unit {
    Span { pack: u32, offset: u64, len: u64, first: usize, end: usize },
    Lone(usize),
}

/// The reads for the chunks of `todo` (by position): the located ones
/// sorted by pack and offset in coalesced spans over the returned list
/// (position, location), then one unit per unplaced chunk.
fn plan_reads(store: &ChunkStore, todo: &[(Digest, Vec<u32>)]) -> (Vec<Unit>, Vec<(usize, ChunkLoc)>) {
    let mut located = Vec::with_capacity(todo.len());
    let mut lone = Vec::new();
    for (i, (d, _)) in todo.iter().enumerate() {
        match store.get(d) {
            Some(l) => located.push((i, l)),
            None => lone.push(Unit::Lone(i)),
        }
    }
    located.sort_unstable_by_key(|(_, l)| (l.pack, l.offset));
    let mut units: Vec<Unit> = coalesce(located.iter().map(|(_, l)| l))
        .into_iter()
        .map(|Span { pack, offset, len, first, end }| Unit::Span { pack, offset, len, first, end })
        .collect();
    units.extend(lone);
    (units, located)
}
