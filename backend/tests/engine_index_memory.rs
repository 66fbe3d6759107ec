//! Memory stays flat with repository size (issue 18, local index cache):
//! a repository of 1,000 restore points with many distinct chunks (4 KiB
//! chunks, 1 MiB of new data per restore point: 256,000 chunks), and the
//! peak RSS of the `sendense` child for an incremental backup and a restore
//! at 10 restore points and at 1,000. The chunk map the engine held before
//! (a HashMap of every chunk) grew by 41 MiB (backup) and 43 MiB (restore)
//! between the two on this workload (measured with the release binary of
//! 5e8dd91: 28.0 -> 69.2 MiB, 24.3 -> 67.8 MiB); the index cache's tables
//! are on disk, small ones mapped, big ones read a bucket at a time.

#[path = "engine_support/mod.rs"]
mod support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sendense::engine::backup::{self, BackupOptions, DiskSource};
use sendense::engine::block_source::FileSource;
use sendense::engine::datastore::Datastore;
use sendense::engine::index_cache;
use sendense::engine::progress::Progress;
use support::*;

const CHUNK: u32 = 4096;
const IMAGE: usize = 1 << 20;

/// Image content of restore point `n`: every 4 KiB chunk distinct (its
/// number and the restore point's at the front, the rest a pattern that
/// compresses), so each restore point adds 256 new chunks and little data.
fn fill(img: &Path, n: u64) {
    let mut data = vec![0u8; IMAGE];
    for (c, chunk) in data.chunks_mut(CHUNK as usize).enumerate() {
        chunk[..8].copy_from_slice(&n.to_le_bytes());
        chunk[8..16].copy_from_slice(&(c as u64).to_le_bytes());
        for (i, b) in chunk[16..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
    }
    std::fs::File::options().write(true).create(true).truncate(false).open(img).unwrap().write_all_at(&data, 0).unwrap();
}

fn backup_in_process(ds: &Datastore, img: &Path) {
    let src = Arc::new(FileSource::open(img).unwrap());
    let disk = DiskSource { name: "disk0".into(), source: src, changed_ranges: None, cbt_token: None };
    let mut opts = BackupOptions::new("vm");
    opts.workers = 2;
    backup::backup(ds, &opts, &[disk], &Progress::new()).unwrap();
}

/// The `peak_rss_bytes` of the child's `--stats` line on stderr.
fn peak_rss(args: &[&str], cache: &Path) -> u64 {
    let out = bin().env(index_cache::ENV_DIR, cache).args(args).output().expect("run sendense");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "sendense {}: {stderr}", args.join(" "));
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["peak_rss_bytes"].as_u64())
        .unwrap_or_else(|| panic!("no peak_rss_bytes in: {stderr}"))
}

/// Peak RSS of an incremental backup (new content: 256 new chunks) and of
/// a restore of the newest restore point.
fn measure(repo: &Path, img: &Path, out: &Path, cache: &Path, n: u64) -> (u64, u64) {
    fill(img, n);
    let b = peak_rss(&["image", "backup", "--repo", p(repo), "--id", "vm", p(img), "--no-progress", "--stats"], cache);
    let r = peak_rss(&["image", "restore", "--repo", p(repo), "--id", "vm", p(out), "--no-progress", "--stats"], cache);
    assert!(same_file(img, out), "restore of restore point {n} is byte for byte");
    std::fs::remove_file(out).unwrap();
    (b, r)
}

#[test]
fn peak_rss_of_backup_and_restore_is_flat_from_10_to_1000_restore_points() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, out, cache) = (t.path().join("repo"), t.path().join("d.raw"), t.path().join("out.raw"), t.path().join("cache"));
    std::env::remove_var(index_cache::ENV_DIR);
    index_cache::set_root(cache.clone());
    let ds = Datastore::init_with(&repo, None, CHUNK).unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    let mut small = None;
    while n < 1000 {
        if n == 10 {
            small = Some(measure(&repo, &img, &out, &cache, 1_000_000 + n));
        }
        fill(&img, n);
        backup_in_process(&ds, &img);
        n += 1;
    }
    let made = started.elapsed();
    let (b10, r10) = small.unwrap();
    let (b1000, r1000) = measure(&repo, &img, &out, &cache, 2_000_000);
    let points = sendense::engine::datastore::Datastore::open(&repo, None).unwrap().list_snapshots(Some("vm")).unwrap().len();
    assert!(points >= 1000, "{points} restore points");
    let chunks = points as u64 * (IMAGE as u64 / CHUNK as u64);
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!(
        "{points} restore points, {chunks} chunks (made in {:.1} s); peak RSS: incremental backup {:.1} MiB at 10 -> {:.1} MiB at 1000, restore {:.1} MiB -> {:.1} MiB",
        made.as_secs_f64(),
        mib(b10),
        mib(b1000),
        mib(r10),
        mib(r1000)
    );
    // A map of every chunk added 41 MiB here.
    let bound = 6 << 20;
    assert!(b1000 < b10 + bound, "backup peak RSS grew from {:.1} to {:.1} MiB", mib(b10), mib(b1000));
    assert!(r1000 < r10 + bound, "restore peak RSS grew from {:.1} to {:.1} MiB", mib(r10), mib(r1000));
}
