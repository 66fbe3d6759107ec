//! A restore point served for an instant recovery (`sendense
//! export-snapshot`, the process the server starts) is pinned while the
//! process runs: forget refuses it, prune keeps it, GC keeps its chunks,
//! and `qemu-img` reads the same bytes through the export as a restore
//! writes. Once the process ends (SIGTERM), the pin and the socket are gone
//! and the restore point can be forgotten.

#[path = "engine_support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn an_exported_restore_point_is_pinned_until_its_export_ends() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img) = (t.path().join("repo"), t.path().join("d.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_image(&img, 7, 3);
    let first = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm", p(&img), "--no-progress"]).trim().to_string();
    mutate(&img, 8, &[0, 5, 9]);
    let second = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm", p(&img), "--no-progress"]).trim().to_string();
    let restored = t.path().join("first.raw");
    ok(&["image", "restore", "--repo", p(&repo), "--id", "vm", "--snapshot", &first, p(&restored), "--no-progress"]);

    let sock = t.path().join("e.sock");
    let mut export = Command::new(env!("CARGO_BIN_EXE_sendense"))
        .args(["export-snapshot", "--repository", p(&repo), "--snapshot", &format!("vm/{first}"), "--socket", p(&sock), "--pin-id", "test-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the export did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(repo.join("locks/pin-test-1.json").exists());

    let err = fails(&["repo", "forget", p(&repo), "--id", "vm", "--snapshot", &first]);
    assert!(err.contains(&format!("vm/{first}")) && err.contains("pinned"), "{err}");
    let out = ok(&["repo", "prune", p(&repo), "--keep-last", "1"]);
    assert!(out.contains(&format!("keep (pinned by an instant recovery) vm/{first}")), "{out}");
    ok(&["repo", "gc", p(&repo), "--grace-seconds", "0"]);

    // Through the export: the restore point's bytes.
    let copy = t.path().join("copy.raw");
    let uri = format!("nbd+unix:///disk0?socket={}", sock.display());
    let o = Command::new("qemu-img").args(["convert", "-O", "raw", &uri, p(&copy)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(same_file(&copy, &restored), "the export serves the pinned restore point's bytes");

    // The export ends: pin and socket go, and forget works again.
    let pid = rustix::process::Pid::from_raw(export.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = export.wait().unwrap();
    assert!(status.success(), "the export ends cleanly on SIGTERM");
    assert!(!sock.exists() && !repo.join("locks/pin-test-1.json").exists());
    ok(&["repo", "forget", p(&repo), "--id", "vm", "--snapshot", &first]);
    assert_eq!(snapshots(&repo, "vm"), vec![second]);
    ok(&["repo", "verify", p(&repo)]);
}
