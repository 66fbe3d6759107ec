//! Verify: for every snapshot, load its manifest and fixed indexes (checksums),
//! then fetch, decrypt, decompress and re-hash every chunk they reference
//! (each distinct chunk once, on all cores). Problems are collected, each
//! naming the snapshot(s), the chunk digest and the pack, not stopping at the first.
//! Each snapshot's own problems are kept too ([`VerifyReport::damaged`]), so a
//! catalog can mark exactly the damaged restore points. `bytes_total` is set
//! to the plain bytes to check before reading; workers obey the progress
//! control between chunks (pause holds, stop ends with `Cancelled`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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
    ds.load_chunk_store()?.check_pack_indexes()?;
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
    let mut todo: Vec<(Digest, Vec<u32>)> = refs.into_iter().collect();
    // Read packs in order.
    todo.sort_by_key(|(d, _)| store.get(d).map(|l| (l.pack, l.offset)));
    progress.bytes_total.store(
        todo.iter().map(|(d, _)| store.get(d).map_or(0, |l| l.raw_len as u64)).sum(),
        Ordering::Relaxed,
    );
    let names = |v: &[u32]| v.iter().map(|&i| labels[i as usize].as_str()).collect::<Vec<_>>().join(", ");
    let next = AtomicUsize::new(0);
    // (snapshots, message)
    let errors: Mutex<Vec<(Vec<u32>, String)>> = Mutex::new(Vec::new());
    let checked = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                if progress.control.checkpoint().is_err() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((d, snaps)) = todo.get(i) else { return };
                let err = match store.read_chunk(d, "") {
                    Ok(data) => {
                        Progress::add(&progress.bytes_read, data.len() as u64);
                        checked.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(EngineError::MissingChunk { .. }) => {
                        format!("snapshot {}: chunk {d} is missing", names(snaps))
                    }
                    Err(e) => format!("snapshot {}: {e}", names(snaps)),
                };
                errors.lock().unwrap_or_else(|p| p.into_inner()).push((snaps.clone(), err));
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
