//! Garbage collection: orphans go, referenced chunks stay, and GC run again
//! and again beside a running backup loses nothing.

#[path = "engine_support/mod.rs"]
mod support;

use std::time::Duration;

use support::*;

fn pack_bytes(repo: &std::path::Path) -> u64 {
    tree(repo).iter().filter(|(k, _)| k.starts_with("packs")).map(|(_, v)| v.0).sum()
}

#[test]
fn gc_removes_only_unreferenced_packs_after_grace() {
    let t = tempfile::tempdir().unwrap();
    let (repo, a, b, out) = (t.path().join("repo"), t.path().join("a.raw"), t.path().join("b.raw"), t.path().join("o.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_random_image(&a, 1, 20);
    make_random_image(&b, 2, 20);
    let sa = ok(&["image", "backup", "--repo", p(&repo), "--id", "a", p(&a), "--no-progress"]).trim().to_string();
    ok(&["image", "backup", "--repo", p(&repo), "--id", "b", p(&b), "--no-progress"]);
    let full = pack_bytes(&repo);
    ok(&["repo", "forget", p(&repo), "--id", "a", "--snapshot", &sa]);
    // Inside the grace period nothing goes.
    let r = ok(&["repo", "gc", p(&repo)]);
    assert!(r.contains("removed 0 packs"), "{r}");
    assert_eq!(pack_bytes(&repo), full);
    std::thread::sleep(Duration::from_millis(1200)); // past GC's timestamp slack
    let r = ok(&["repo", "gc", p(&repo), "--grace-seconds", "0"]);
    assert!(!r.contains("removed 0 packs"), "{r}");
    assert!(pack_bytes(&repo) <= full / 2 + (8 << 20), "a's packs are gone: {} of {full}", pack_bytes(&repo));
    ok(&["repo", "verify", p(&repo)]);
    ok(&["image", "restore", "--repo", p(&repo), "--id", "b", p(&out), "--no-progress"]);
    assert!(same_file(&out, &b));
}

#[test]
fn gc_beside_a_running_backup_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, out) = (t.path().join("repo"), t.path().join("img.raw"), t.path().join("o.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_random_image(&img, 9, 160);
    // Snapshot the image, then forget it: its packs are orphans the next
    // backup will deduplicate against while GC wants to delete them.
    let s = ok(&["image", "backup", "--repo", p(&repo), "--id", "old", p(&img), "--no-progress"]).trim().to_string();
    ok(&["repo", "forget", p(&repo), "--id", "old", "--snapshot", &s]);
    std::thread::sleep(Duration::from_millis(1200)); // the orphans are past GC's slack
    // A changed copy: half of it new data, so the backup also writes new packs.
    let img2 = t.path().join("img2.raw");
    std::fs::copy(&img, &img2).unwrap();
    let blocks: Vec<u64> = (0..160 * 16).filter(|b| b % 2 == 0).collect();
    mutate(&img2, 5, &blocks);

    let ds = sendense::engine::datastore::Datastore::open(&repo, None).unwrap();
    for (name, image) in [("vm1", &img), ("vm2", &img2)] {
        let child = bin()
            .args(["image", "backup", "--repo", p(&repo), "--id", name, p(image), "--no-progress", "--workers", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // GC again and again in this process (no process start between
        // runs, so several land inside even a quick backup) until it ends.
        let done = std::sync::atomic::AtomicBool::new(false);
        let (o, gc_runs) = std::thread::scope(|scope| {
            let gc_loop = scope.spawn(|| {
                let mut runs = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(e) = sendense::engine::gc::gc(&ds, Duration::ZERO) {
                        assert!(e.to_string().contains("gc.lock"), "gc failed: {e}");
                    }
                    runs += 1;
                }
                runs
            });
            let o = child.wait_with_output().unwrap();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            (o, gc_loop.join().unwrap())
        });
        assert!(o.status.success(), "backup beside GC: {}", String::from_utf8_lossy(&o.stderr));
        eprintln!("{name}: {gc_runs} GC runs beside its backup");
        assert!(gc_runs >= 2, "GC ran {gc_runs} time(s) while the backup of {name} was running");
        // And once more after the backup.
        ok(&["repo", "gc", p(&repo), "--grace-seconds", "0"]);
        ok(&["repo", "verify", p(&repo)]);
        ok(&["image", "restore", "--repo", p(&repo), "--id", name, p(&out), "--no-progress"]);
        assert!(same_file(&out, image), "{name} restores after GC");
    }
}

/// A GC stopped between two packs ends with `Cancelled`, having removed some
/// packs whole (index first, then data) and kept the rest: every remaining
/// snapshot verifies and restores, and the next GC finishes the work.
#[test]
fn a_stopped_gc_leaves_the_repository_consistent() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use sendense::engine::datastore::Datastore;
    use sendense::engine::progress::Progress;
    use sendense::engine::{gc, verify, EngineError};

    let t = tempfile::tempdir().unwrap();
    let (repo, a, b, out) = (t.path().join("repo"), t.path().join("a.raw"), t.path().join("b.raw"), t.path().join("o.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_random_image(&a, 11, 96);
    make_random_image(&b, 12, 8);
    let sa = ok(&["image", "backup", "--repo", p(&repo), "--id", "a", p(&a), "--no-progress"]).trim().to_string();
    ok(&["image", "backup", "--repo", p(&repo), "--id", "b", p(&b), "--no-progress"]);
    ok(&["repo", "forget", p(&repo), "--id", "a", "--snapshot", &sa]);
    std::thread::sleep(Duration::from_millis(1200)); // past GC's timestamp slack
    let full = pack_bytes(&repo);

    let ds = Datastore::open(&repo, None).unwrap();
    let progress = Arc::new(Progress::new());
    // Stop as soon as the first pack is gone.
    let watcher = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            while progress.bytes_written.load(Ordering::Relaxed) == 0 {
                std::hint::spin_loop();
            }
            progress.control.cancel();
        })
    };
    let r = gc::gc_with(&ds, Duration::ZERO, &progress);
    watcher.join().unwrap();
    let removed = progress.bytes_written.load(Ordering::Relaxed);
    assert!(matches!(r, Err(EngineError::Cancelled)), "the stop landed between packs: {r:?}");
    assert!(removed > 0 && pack_bytes(&repo) == full - removed, "{removed} removed of {full}, {} left", pack_bytes(&repo));
    assert!(pack_bytes(&repo) > 8 << 20, "the stop left work for the next GC");

    let v = verify::verify(&ds, 2, &Progress::new()).unwrap();
    assert!(v.errors.is_empty() && v.intact.len() == 1, "{:?}", v.errors);
    ok(&["image", "restore", "--repo", p(&repo), "--id", "b", p(&out), "--no-progress"]);
    assert!(same_file(&out, &b));
    let r = gc::gc(&ds, Duration::ZERO).unwrap();
    assert!(r.packs_removed > 0);
    assert!(pack_bytes(&repo) <= (8 << 20) + (8 << 20), "a's packs are all gone now: {}", pack_bytes(&repo));
    ok(&["repo", "verify", p(&repo)]);
}

/// Packs that are partly used are rewritten: after retention removes the
/// older of two snapshots whose data differ in half their blocks, GC gives
/// that half back (plain and encrypted repositories), a reader that loaded
/// its chunk map before the GC still reads every chunk, and everything left
/// verifies and restores byte for byte.
#[test]
fn gc_repacks_partly_used_packs_and_a_reader_from_before_still_reads() {
    use sendense::engine::datastore::Datastore;
    use sendense::engine::progress::Progress;
    use sendense::engine::{gc, verify};

    for encrypted in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let (repo, img, out) = (t.path().join("repo"), t.path().join("d.raw"), t.path().join("o.raw"));
        let key = t.path().join("repo.key");
        let mut key_args: Vec<&str> = Vec::new();
        if encrypted {
            ok(&["repo", "init", p(&repo), "--encrypt", p(&key)]);
            key_args = vec!["--key", p(&key)];
        } else {
            ok(&["repo", "init", p(&repo)]);
        }
        let with_key = |args: &[&str]| -> String { ok(&[args, &key_args[..]].concat()) };
        make_random_image(&img, 21, 48);
        let first = with_key(&["image", "backup", "--repo", p(&repo), "--id", "vm", p(&img), "--no-progress"]).trim().to_string();
        // Every other 64 KiB block changes: each pack of the first snapshot
        // ends up half used.
        let blocks: Vec<u64> = (0..48 * 16).filter(|b| b % 2 == 1).collect();
        mutate(&img, 22, &blocks);
        with_key(&["image", "backup", "--repo", p(&repo), "--id", "vm", p(&img), "--no-progress"]);
        with_key(&["repo", "forget", p(&repo), "--id", "vm", "--snapshot", &first]);
        std::thread::sleep(Duration::from_millis(1200)); // past GC's timestamp slack
        let before = pack_bytes(&repo);

        let ds = Datastore::open(&repo, encrypted.then_some(key.as_path())).unwrap();
        let (name, id) = ds.list_snapshots(Some("vm")).unwrap().remove(0);
        let manifest = ds.load_manifest(&name, &id).unwrap();
        let index = ds.load_index(&name, &manifest.disks[0].index).unwrap();
        let reader = ds.load_chunk_store().unwrap();

        let r = gc::gc(&ds, Duration::ZERO).unwrap();
        assert!(r.packs_repacked >= 3 && r.packs_written >= 2, "{r:?}");
        let after = pack_bytes(&repo);
        let live = 48u64 << 20; // random data does not compress
        assert!(after < live + (live / 20), "{after} bytes of packs for {live} bytes in use (before GC {before})");
        // The first snapshot's changed half (24 MiB) was in use by nothing.
        assert!(before - after > live / 2 * 9 / 10, "reclaimed {} of about {}", before - after, live / 2);
        // The report's figure counts the new packs' indexes too.
        assert!(r.reclaimed() <= before - after && before - after - r.reclaimed() < 64 << 10, "{r:?}");

        // The reader's packs are gone; it finds every chunk again.
        for d in index.digests.iter().filter(|d| !d.is_zero_marker()) {
            reader.read_chunk(d, &name).unwrap();
        }
        let v = verify::verify(&ds, 2, &Progress::new()).unwrap();
        assert!(v.errors.is_empty() && v.intact.len() == 1, "{:?}", v.errors);
        with_key(&["image", "restore", "--repo", p(&repo), "--id", "vm", p(&out), "--no-progress"]);
        assert!(same_file(&out, &img), "restores after the repack (encrypted: {encrypted})");
        // Nothing is left to repack.
        let again = gc::gc(&ds, Duration::ZERO).unwrap();
        assert_eq!((again.packs_repacked, again.packs_removed), (0, 0), "{again:?}");
    }
}
