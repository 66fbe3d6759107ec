//! Backup and restore through the real binary: full, incremental with and
//! without changed ranges, zero chunks, dedup across images, sparse restore,
//! and the random-access reader.

#[path = "engine_support/mod.rs"]
mod support;

use std::io::{Read, Seek, SeekFrom};

use sendense::engine::datastore::Datastore;
use sendense::engine::snapshot_reader::SnapshotReader;
use sendense::engine::stats::StatsCache;
use support::*;

#[test]
fn full_and_incremental_backups_restore_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, ranges, out) = (t.path().join("repo"), t.path().join("d.raw"), t.path().join("ch.json"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_image(&img, 1, 12);
    let full_copy = t.path().join("full.raw");
    std::fs::copy(&img, &full_copy).unwrap();
    let s1 = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm1", p(&img), "--no-progress"]).trim().to_string();

    // Scattered 64 KiB writes, some into holes, one spanning two blocks.
    let mut r = mutate(&img, 2, &[0, 3, 17, 18, 40, 101, 150, 191]);
    r.push((5 * 65536 + 100, 10)); // unaligned range: rounds out to its chunk
    mutate(&img, 3, &[5]);
    write_ranges(&ranges, &r);
    let inc_copy = t.path().join("inc.raw");
    std::fs::copy(&img, &inc_copy).unwrap();
    let before = tree(&repo);
    let s2 = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm1", p(&img), "--changed-ranges", p(&ranges), "--no-progress"])
        .trim()
        .to_string();
    // The incremental stores about what changed: 9 chunks of 64 KiB (+ metadata).
    let after = tree(&repo);
    let added: u64 = after.iter().filter(|(k, _)| !before.contains_key(*k)).map(|(_, v)| v.0).sum();
    assert!(added <= 2 * 9 * 65536, "incremental added {added} bytes for 9 changed chunks");

    // Another change, backed up without ranges: read everything, store only new chunks.
    mutate(&img, 4, &[60, 61]);
    let s3 = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm1", p(&img), "--no-progress"]).trim().to_string();
    assert_eq!(snapshots(&repo, "vm1"), vec![s1.clone(), s2.clone(), s3.clone()]);

    for (snap, expect) in [(&s1, &full_copy), (&s2, &inc_copy), (&s3, &img)] {
        ok(&["image", "restore", "--repo", p(&repo), "--id", "vm1", "--snapshot", snap, p(&out), "--no-progress"]);
        assert!(same_file(&out, expect), "snapshot {snap} restores to its image");
    }
    ok(&["image", "restore", "--repo", p(&repo), "--id", "vm1", p(&out), "--no-progress"]);
    assert!(same_file(&out, &img), "latest is the default");
    ok(&["repo", "verify", p(&repo)]);
}

#[test]
fn zero_chunks_are_not_stored_and_restore_stays_sparse() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, out) = (t.path().join("repo"), t.path().join("z.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&repo)]);
    // 16 MiB: all holes but one random MiB, plus a written (not sparse) zero MiB.
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(16 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&random_bytes(9, 1 << 20), 4 << 20).unwrap();
    f.write_all_at(&vec![0u8; 1 << 20], 8 << 20).unwrap();
    drop(f);
    ok(&["image", "backup", "--repo", p(&repo), "--id", "z", p(&img), "--no-progress"]);
    let stats: serde_json::Value = serde_json::from_str(&ok(&["repo", "stats", p(&repo), "--json"])).unwrap();
    assert_eq!(stats["unique_bytes"], 1 << 20, "{stats}");
    assert_eq!(stats["zero_bytes"], 15 << 20);
    assert!(stats["pack_bytes"].as_u64().unwrap() < (1 << 20) + 4096);
    ok(&["image", "restore", "--repo", p(&repo), "--id", "z", p(&out), "--no-progress"]);
    assert!(same_file(&out, &img));
    assert!(allocated(&out) <= (1 << 20) + 65536, "restore keeps holes: {} bytes allocated", allocated(&out));
}

#[test]
fn dedup_across_two_images_and_names() {
    let t = tempfile::tempdir().unwrap();
    let (repo, a, b) = (t.path().join("repo"), t.path().join("a.raw"), t.path().join("b.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_random_image(&a, 5, 8);
    std::fs::copy(&a, &b).unwrap();
    mutate(&b, 6, &[1]); // b = a with one chunk changed
    ok(&["image", "backup", "--repo", p(&repo), "--id", "vm-a", p(&a), "--no-progress"]);
    let cache = StatsCache::default();
    let first = cache.stats(&repo, &Datastore::open(&repo, None).unwrap()).unwrap();
    assert_eq!(first.logical_bytes, 8 << 20);
    let packs_a: u64 = tree(&repo).iter().filter(|(k, _)| k.starts_with("packs")).map(|(_, v)| v.0).sum();
    ok(&["image", "backup", "--repo", p(&repo), "--id", "vm-b", p(&b), "--no-progress"]);
    let packs_ab: u64 = tree(&repo).iter().filter(|(k, _)| k.starts_with("packs")).map(|(_, v)| v.0).sum();
    assert_eq!(packs_ab - packs_a, 65536, "only the changed chunk of vm-b is new");
    let stats: serde_json::Value = serde_json::from_str(&ok(&["repo", "stats", p(&repo), "--json"])).unwrap();
    assert_eq!(stats["logical_bytes"], 16 << 20);
    assert_eq!(stats["unique_bytes"], (8 << 20) + 65536);
    // A request reads the cache only: the new snapshot shows once the
    // operation that wrote it refreshes the cache.
    let ds = Datastore::open(&repo, None).unwrap();
    let cached = cache.stats(&repo, &ds).unwrap();
    assert_eq!((cached.snapshots, cached.logical_bytes), (1, 8 << 20), "a request recomputed the statistics");
    cache.refresh(&repo, &ds).unwrap();
    let cached = cache.stats(&repo, &ds).unwrap();
    assert_eq!((cached.snapshots, cached.logical_bytes, cached.unique_bytes), (2, 16 << 20, (8 << 20) + 65536));
}

#[test]
fn random_access_reader_reads_any_offset() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img) = (t.path().join("repo"), t.path().join("d.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_image(&img, 7, 6);
    // An odd size: the last chunk is partial.
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len((6 << 20) - 1234).unwrap();
    ok(&["image", "backup", "--repo", p(&repo), "--id", "r", p(&img), "--no-progress"]);
    let expect = std::fs::read(&img).unwrap();
    let ds = Datastore::open(&repo, None).unwrap();
    let mut reader = SnapshotReader::open(&ds, "r", "latest", None, 8).unwrap();
    assert_eq!(reader.size(), expect.len() as u64);
    for &(off, len) in &[(0u64, 10usize), (65530, 20), (1 << 20, 3 << 16), (3_000_001, 200_000), (expect.len() as u64 - 5, 5)] {
        let mut buf = vec![0u8; len];
        assert_eq!(reader.read_at(off, &mut buf).unwrap(), len);
        assert_eq!(&buf[..], &expect[off as usize..off as usize + len], "offset {off}");
    }
    let mut buf = vec![0u8; 100];
    assert_eq!(reader.read_at(expect.len() as u64 - 10, &mut buf).unwrap(), 10);
    let (hits, _) = reader.cache_stats();
    assert!(hits > 0, "repeated reads of one chunk hit the cache");
    reader.seek(SeekFrom::Start(12345)).unwrap();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(&all[..], &expect[12345..]);
}

#[test]
fn a_paused_backup_holds_and_a_cancelled_one_leaves_no_snapshot() {
    use sendense::engine::backup::{backup, BackupOptions, DiskSource};
    use sendense::engine::block_source::FileSource;
    use sendense::engine::progress::Progress;
    use sendense::engine::EngineError;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    let t = tempfile::tempdir().unwrap();
    let (repo, img) = (t.path().join("repo"), t.path().join("d.raw"));
    make_image(&img, 7, 64);
    let ds = Arc::new(Datastore::init(&repo, None).unwrap());
    let disks = vec![DiskSource { name: "disk0".into(), source: Arc::new(FileSource::open(&img).unwrap()), changed_ranges: None, cbt_token: None }];
    let progress = Arc::new(Progress::new());
    progress.control.pause();
    let job = {
        let (ds, progress, disks) = (ds.clone(), progress.clone(), disks.clone());
        std::thread::spawn(move || backup(&ds, &BackupOptions::new("vm1"), &disks, &progress))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(progress.bytes_read.load(Ordering::Relaxed), 0, "paused before the first run: nothing read");
    assert!(!job.is_finished());
    progress.control.cancel();
    assert!(matches!(job.join().unwrap(), Err(EngineError::Cancelled)));
    assert!(ds.list_snapshots(None).unwrap().is_empty(), "a cancelled backup is not visible");

    // Resumed after a pause, a backup completes and restores.
    let progress = Arc::new(Progress::new());
    progress.control.pause();
    let job = {
        let (ds, progress, disks) = (ds.clone(), progress.clone(), disks.clone());
        std::thread::spawn(move || backup(&ds, &BackupOptions::new("vm1"), &disks, &progress))
    };
    std::thread::sleep(Duration::from_millis(200));
    progress.control.resume();
    let m = job.join().unwrap().unwrap();
    let out = t.path().join("out.raw");
    ok(&["image", "restore", "--repo", p(&repo), "--id", "vm1", "--snapshot", &m.id, p(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
    ok(&["repo", "verify", p(&repo)]);
}
