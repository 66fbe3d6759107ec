//! The command line cleans its own index caches (issue 18): before a
//! command that opens repositories it removes, at most once a day, the
//! caches under its root (`SENDENSE_CACHE_DIR` here) that nobody opened for
//! 30 days and those of local repositories that are gone, through the same
//! removal the server uses for its catalog's caches; a cache another
//! process has open is kept, and removed once it is free.

#[path = "engine_support/mod.rs"]
mod support;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sendense::engine::index_cache;
use support::*;

/// Runs `sendense` with `cache` as its cache root; expects success.
fn run(cache: &Path, args: &[&str]) -> String {
    let out = bin().env(index_cache::ENV_DIR, cache).args(args).output().expect("run sendense");
    assert!(out.status.success(), "sendense {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cache directory under `cache` that recorded `repo` as its location.
fn cache_of(cache: &Path, repo: &Path) -> Option<PathBuf> {
    std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|d| index_cache::location_of(d).as_deref() == Some(repo.to_str().unwrap()))
}

fn backdate(path: &Path, days: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86400)).unwrap();
}

#[test]
fn the_cli_removes_unused_and_orphaned_caches_but_never_one_in_use() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let img = t.path().join("d.raw");
    make_random_image(&img, 81, 1);
    let repo = |name: &str| {
        let r = t.path().join(name);
        run(&cache, &["repo", "init", p(&r)]);
        run(&cache, &["image", "backup", "--repo", p(&r), "--id", "vm1", p(&img), "--no-progress"]);
        (cache_of(&cache, &r).unwrap_or_else(|| panic!("a cache for {}", r.display())), r)
    };
    let (kept, kept_repo) = repo("kept");
    let (idle, _) = repo("idle");
    let (orphan, orphan_repo) = repo("deleted");
    let (busy, _) = repo("busy");
    // "swept" was written by the first command: no sweep again today.
    assert!(cache.join("swept").exists());
    backdate(&idle.join("use"), 40);
    backdate(&busy.join("use"), 40);
    std::fs::remove_dir_all(&orphan_repo).unwrap();
    // Another process has the busy one open (the engine holds this flock shared while it uses a cache).
    let holder = File::open(busy.join("use")).unwrap();
    rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockShared).unwrap();

    run(&cache, &["repo", "snapshots", p(&kept_repo)]);
    assert!(idle.exists() && orphan.exists(), "at most one sweep a day");
    backdate(&cache.join("swept"), 2);
    run(&cache, &["repo", "snapshots", p(&kept_repo)]);
    assert!(!idle.exists(), "a cache unused for 40 days is removed");
    assert!(!orphan.exists(), "the cache of a deleted repository is removed");
    assert!(kept.exists(), "a cache in use this month stays");
    assert!(busy.exists(), "a cache another process has open stays, however old");

    drop(holder);
    backdate(&cache.join("swept"), 2);
    run(&cache, &["repo", "snapshots", p(&kept_repo)]);
    assert!(!busy.exists(), "removed once nobody has it open");
    assert!(kept.exists());
    // The kept repository still works from its cache.
    let listed = run(&cache, &["repo", "snapshots", p(&kept_repo)]);
    assert!(listed.contains("vm1"), "{listed}");
}
