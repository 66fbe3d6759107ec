//! Kill -9 of a real `sendense image backup` process at several moments:
//! no snapshot becomes visible, verify stays clean, GC removes the debris and
//! the next backup succeeds and restores byte for byte.

#[path = "engine_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn kill_9_mid_backup_leaves_no_snapshot_and_next_backup_works() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, out) = (t.path().join("repo"), t.path().join("big.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_random_image(&img, 77, 192);
    // A first snapshot of another image, which must survive everything.
    let small = t.path().join("small.raw");
    make_image(&small, 3, 4);
    ok(&["image", "backup", "--repo", p(&repo), "--id", "other", p(&small), "--no-progress"]);

    let mut killed = 0;
    let mut completed = 0;
    for delay_ms in [20u64, 60, 120, 250, 500] {
        let mut child = bin()
            .args(["image", "backup", "--repo", p(&repo), "--id", "big", p(&img), "--no-progress", "--workers", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(delay_ms) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(status) = child.try_wait().unwrap() {
            // Finished before the kill (fast machine): a complete snapshot.
            assert!(status.success());
            completed += 1;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed += 1;
        // The kill can land after the manifest's atomic rename but before the
        // process exits: then the new snapshot is whole (verify below reads
        // every chunk of it). Anything else must leave no trace.
        let visible = snapshots(&repo, "big").len();
        if visible == completed + 1 {
            completed += 1;
        }
        assert_eq!(visible, completed, "no partial snapshot visible after kill at {delay_ms} ms");
        assert_eq!(snapshots(&repo, "other").len(), 1);
        ok(&["repo", "verify", p(&repo)]);
    }
    assert!(killed >= 2, "the backup ran long enough to be killed at least twice ({killed})");
    // Debris (packs without manifest, stale lease) is collectable.
    let gc = ok(&["repo", "gc", p(&repo), "--grace-seconds", "0"]);
    assert!(gc.contains("stale leases"), "{gc}");
    assert!(std::fs::read_dir(repo.join("locks")).unwrap().next().is_none(), "stale leases removed");

    let mut expect = snapshots(&repo, "big");
    let snap = ok(&["image", "backup", "--repo", p(&repo), "--id", "big", p(&img), "--no-progress"]).trim().to_string();
    expect.push(snap);
    assert_eq!(snapshots(&repo, "big"), expect);
    ok(&["repo", "verify", p(&repo)]);
    ok(&["image", "restore", "--repo", p(&repo), "--id", "big", p(&out), "--no-progress"]);
    assert!(same_file(&out, &img));
    ok(&["image", "restore", "--repo", p(&repo), "--id", "other", p(&out), "--no-progress"]);
    assert!(same_file(&out, &small));
}
