//! 3-2-1 copies (issue 18 item 7): `sendense repo copy` and
//! `engine::copy::copy_snapshot` copy one restore point to another
//! repository, sending only the chunks the target lacks (re-encrypted when
//! the keys differ), verify it there, and publish its manifest (same name
//! and id) last. Local to local with different keys, unencrypted to
//! encrypted and back, plain to plain (stored bytes copied as they are);
//! the next restore point sends only its changed chunks; a copy again sends
//! nothing; the target restores byte for byte after the source is deleted;
//! local to S3 (moto) and Azure (Azurite); a cancelled copy and a killed
//! copy process leave no snapshot, GC at the target cleans and the next copy
//! completes; a GC at the target during a copy takes nothing it needs; an
//! immutable copy to an Object Lock bucket is locked by the storage.

mod support;
#[path = "engine_support/mod.rs"]
mod engine_support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_support::{bin, fails, files_under, make_image, make_random_image, mutate, ok, p, same_file, write_ranges};
use sendense::engine::copy::{self, copy_snapshot, CopyOptions};
use sendense::engine::datastore::{Datastore, DEFAULT_CHUNK_SIZE};
use sendense::engine::gc::{self, GcOptions};
use sendense::engine::progress::Progress;
use sendense::engine::EngineError;
use sendense::repos::RepoSpec;
use serde_json::Value;
use support::object_servers::{Azurite, Moto};

const IMAGE_MIB: usize = 16;

/// `repo copy ... --json`: its JSON line.
fn copy_json(args: &[&str]) -> Value {
    let mut all = vec!["repo", "copy", "--json", "--no-progress"];
    all.extend_from_slice(args);
    let out = ok(&all);
    let line = out.lines().last().unwrap_or_else(|| panic!("no output from {all:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn n(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("no {field} in {v}"))
}

/// `image backup` into a local repository; the snapshot id.
fn backup(repo: &Path, key: Option<&Path>, img: &Path, ranges: Option<&Path>) -> String {
    let mut args = vec!["image", "backup", "--repo", p(repo), "--id", "vm1", p(img), "--no-progress"];
    if let Some(k) = key {
        args.extend(["--key", p(k)]);
    }
    if let Some(r) = ranges {
        args.extend(["--changed-ranges", p(r)]);
    }
    ok(&args).trim().to_string()
}

/// `image restore` of vm1/`id` from a directory or a spec file, compared with `want`.
fn assert_restores(repo: &[&str], key: Option<&Path>, id: &str, want: &Path, out: &Path) {
    let mut args = vec!["image", "restore"];
    args.extend_from_slice(repo);
    args.extend(["--id", "vm1", "--snapshot", id, p(out), "--no-progress"]);
    if let Some(k) = key {
        args.extend(["--key", p(k)]);
    }
    ok(&args);
    assert!(same_file(out, want), "vm1/{id} from {repo:?} differs from {}", want.display());
}

/// `spec` as a 0600 spec file.
fn spec_file(path: &Path, spec: &RepoSpec) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, serde_json::to_vec(spec).unwrap()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_path_buf()
}

fn bytes_under(dir: &Path) -> u64 {
    if !dir.exists() {
        return 0;
    }
    files_under(dir).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum()
}

fn count_under(dir: &Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    files_under(dir).len()
}

#[test]
fn between_keys_only_missing_chunks_are_sent_and_the_target_restores_alone() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (ka, kb) = (t.path().join("a.key"), t.path().join("b.key"));
    let (img, v1, out) = (t.path().join("d.raw"), t.path().join("v1.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src), "--encrypt", p(&ka)]);
    ok(&["repo", "init", p(&dst), "--encrypt", p(&kb)]);
    make_image(&img, 3, IMAGE_MIB);
    std::fs::copy(&img, &v1).unwrap();
    let s1 = backup(&src, Some(&ka), &img, None);
    let ends = ["--from", p(&src), "--from-key", p(&ka), "--to", p(&dst), "--to-key", p(&kb), "--id", "vm1"];
    let copy = |s: &str| copy_json(&[&ends[..], &["--snapshot", s][..]].concat());

    let started = Instant::now();
    let j1 = copy(&s1);
    let took = started.elapsed();
    assert_eq!(j1["snapshot"], s1.as_str());
    assert_eq!(j1["already_present"], false);
    assert_eq!(j1["reencoded"], true, "different keys: {j1}");
    let total = n(&j1, "chunks_total");
    assert!(total > 100, "{j1}");
    assert_eq!(n(&j1, "chunks_sent"), total, "an empty target gets every chunk: {j1}");
    assert_eq!(n(&j1, "chunks_present"), 0);
    assert_eq!(n(&j1, "verified_chunks"), total, "every chunk read back at the target: {j1}");
    assert_eq!(n(&j1, "bytes_logical"), (IMAGE_MIB as u64) << 20);
    assert!(n(&j1, "bytes_sent") > 0 && n(&j1, "objects_written") >= 4, "{j1}");
    println!("full copy of {IMAGE_MIB} MiB between keys: {} chunks, {} bytes sent in {} objects, {took:?}", total, n(&j1, "bytes_sent"), n(&j1, "objects_written"));

    // The next restore point of the same VM: only its changed chunks go,
    // and only they are read at the source.
    let ranges = mutate(&img, 4, &[2, 50, 200]);
    let rf = t.path().join("ranges.json");
    write_ranges(&rf, &ranges);
    let s2 = backup(&src, Some(&ka), &img, Some(&rf));
    let j2 = copy(&s2);
    let total2 = n(&j2, "chunks_total");
    assert_eq!(n(&j2, "chunks_sent"), 3, "three changed chunks: {j2}");
    assert_eq!(n(&j2, "chunks_present"), total2 - 3, "{j2}");
    assert!(n(&j2, "bytes_read") <= 4 * 65536, "only the changed chunks are read at the source: {j2}");
    assert!(n(&j2, "bytes_sent") < n(&j1, "bytes_sent") / 10, "{j2} vs {j1}");
    println!("incremental copy: {} of {} chunks sent, {} bytes read, {} bytes sent", n(&j2, "chunks_sent"), total2, n(&j2, "bytes_read"), n(&j2, "bytes_sent"));

    // Again: nothing sent, the copy verified where it is.
    let j3 = copy(&s2);
    assert_eq!(j3["already_present"], true, "{j3}");
    assert_eq!((n(&j3, "chunks_sent"), n(&j3, "bytes_sent"), n(&j3, "objects_written")), (0, 0, 0), "{j3}");
    assert_eq!(n(&j3, "verified_chunks"), total2);
    let listed = ok(&["repo", "snapshots", p(&dst), "--key", p(&kb), "--id", "vm1"]);
    let ids: Vec<&str> = listed.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(ids, vec![s1.as_str(), s2.as_str()], "same ids at the target");

    // The source goes away (and its key): the target alone restores both.
    std::fs::remove_dir_all(&src).unwrap();
    std::fs::remove_file(&ka).unwrap();
    assert_restores(&["--repo", p(&dst)], Some(&kb), &s1, &v1, &out);
    assert_restores(&["--repo", p(&dst)], Some(&kb), &s2, &img, &out);
    ok(&["repo", "verify", p(&dst), "--key", p(&kb)]);
    let no_key = fails(&["image", "restore", "--repo", p(&dst), "--id", "vm1", p(&out), "--no-progress"]);
    assert!(no_key.contains("encrypted"), "{no_key}");
}

#[test]
fn unencrypted_to_encrypted_back_and_plain_to_plain() {
    let t = tempfile::tempdir().unwrap();
    let (src, enc, plain, back) = (t.path().join("src"), t.path().join("enc"), t.path().join("plain"), t.path().join("back"));
    let kb = t.path().join("b.key");
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    ok(&["repo", "init", p(&enc), "--encrypt", p(&kb)]);
    ok(&["repo", "init", p(&plain)]);
    ok(&["repo", "init", p(&back)]);
    make_image(&img, 8, IMAGE_MIB);
    let s1 = backup(&src, None, &img, None);

    let j = copy_json(&["--from", p(&src), "--to", p(&enc), "--to-key", p(&kb), "--id", "vm1", "--snapshot", &s1]);
    assert_eq!(j["reencoded"], true, "{j}");
    assert_eq!(n(&j, "chunks_sent"), n(&j, "chunks_total"));
    // No chunk of the source's stored bytes appears at the encrypted target.
    let a_pack = std::fs::read(&files_under(&src.join("packs"))[0]).unwrap();
    let probe = &a_pack[..64];
    for f in files_under(&enc.join("packs")) {
        let data = std::fs::read(&f).unwrap();
        assert!(!data.windows(64).any(|w| w == probe), "plain bytes of the source in {}", f.display());
    }

    // Plain to plain: the same ids, stored bytes copied as they are (and
    // the source's dictionary adopted when it has one).
    let j = copy_json(&["--from", p(&src), "--to", p(&plain), "--id", "vm1", "--snapshot", &s1]);
    assert_eq!(j["reencoded"], false, "{j}");
    assert_eq!(n(&j, "chunks_sent"), n(&j, "chunks_total"));
    assert_eq!(bytes_under(&plain.join("packs")), bytes_under(&src.join("packs")), "the same stored chunks");
    assert_eq!(plain.join("dicts/chunks").exists(), src.join("dicts/chunks").exists());

    // Encrypted to unencrypted, as a server runs it: progress lines on
    // stderr, the result on stdout.
    let run = bin()
        .args(["repo", "copy", "--from", p(&enc), "--from-key", p(&kb), "--to", p(&back), "--id", "vm1", "--snapshot", "latest", "--json", "--progress-json"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let j: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(j["snapshot"], s1.as_str());
    assert_eq!(j["reencoded"], true);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let last: Value = serde_json::from_str(stderr.lines().rev().find(|l| l.starts_with("{\"progress\"")).expect("a progress line")).unwrap();
    assert_eq!(last["progress"]["phase"], "verify", "{stderr}");
    assert_eq!(last["progress"]["bytes_done"], last["progress"]["bytes_total"], "{stderr}");

    std::fs::remove_dir_all(&src).unwrap();
    assert_restores(&["--repo", p(&enc)], Some(&kb), &s1, &img, &out);
    assert_restores(&["--repo", p(&plain)], None, &s1, &img, &out);
    assert_restores(&["--repo", p(&back)], None, &s1, &img, &out);
    for r in [&plain, &back] {
        ok(&["repo", "verify", p(r)]);
    }
    // A wrong key for either side is refused before anything is written.
    let err = fails(&["repo", "copy", "--from", p(&enc), "--from-key", p(&kb), "--to", p(&plain), "--to-key", p(&kb), "--id", "vm1", "--snapshot", &s1]);
    assert!(err.contains("target repository") && err.contains("not encrypted"), "{err}");
    let err = fails(&["repo", "copy", "--from", p(&plain), "--to", p(&back), "--id", "vm1", "--snapshot", "nope"]);
    assert!(err.contains("vm1/nope") && err.contains("not found"), "{err}");
}

#[test]
fn the_same_key_on_both_sides_copies_stored_bytes_as_they_are() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (ka, kb) = (t.path().join("a.key"), t.path().join("b.key"));
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src), "--encrypt", p(&ka)]);
    ok(&["repo", "init", p(&dst), "--encrypt", p(&kb)]);
    // A second repository of the same key: its config names key A.
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    make_image(&img, 17, IMAGE_MIB);
    let s1 = backup(&src, Some(&ka), &img, None);
    let j = copy_json(&["--from", p(&src), "--from-key", p(&ka), "--to", p(&dst), "--to-key", p(&ka), "--id", "vm1", "--snapshot", &s1]);
    assert_eq!(j["reencoded"], false, "{j}");
    assert_eq!(n(&j, "chunks_sent"), n(&j, "chunks_total"));
    assert_eq!(bytes_under(&dst.join("packs")), bytes_under(&src.join("packs")), "the stored chunks as they are");
    std::fs::remove_dir_all(&src).unwrap();
    assert_restores(&["--repo", p(&dst)], Some(&ka), &s1, &img, &out);
}

/// Waits (in another thread) until `dir` holds a file, then runs `then`.
fn when_a_file_appears(dir: PathBuf, then: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if count_under(&dir) > 0 {
                then();
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    })
}

fn gc_now(ds: &Datastore) {
    for _ in 0..2 {
        gc::gc_opts(ds, &GcOptions { grace: Duration::ZERO, expected_manifests: None }, &Progress::new()).unwrap();
    }
}

#[test]
fn a_cancelled_copy_leaves_no_snapshot_gc_cleans_and_the_next_copy_completes() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let kb = t.path().join("b.key");
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    ok(&["repo", "init", p(&dst), "--encrypt", p(&kb)]);
    make_random_image(&img, 9, 48);
    let s1 = backup(&src, None, &img, None);
    let src_ds = Datastore::open(&src, None).unwrap();
    let dst_ds = Datastore::open(&dst, Some(&kb)).unwrap();

    // Cancelled once the first pack landed at the target.
    let progress = Arc::new(Progress::new());
    let watcher = {
        let progress = progress.clone();
        when_a_file_appears(dst.join("packs"), move || progress.control.cancel())
    };
    let opts = CopyOptions { workers: 2, ..Default::default() };
    let r = copy_snapshot(&src_ds, &dst_ds, "vm1", &s1, &opts, &progress);
    assert!(watcher.join().unwrap(), "no pack appeared at the target");
    assert!(matches!(r, Err(EngineError::Cancelled)), "{r:?}");
    assert!(dst_ds.list_snapshots(None).unwrap().is_empty(), "a cancelled copy shows no snapshot");
    assert!(count_under(&dst.join("packs")) > 0, "the orphans of the cancelled copy");
    assert_eq!(count_under(&dst.join("locks")), 0, "the copy's lease is gone");
    assert_eq!(count_under(&src.join("locks")), 0, "the source's pin is released");

    gc_now(&dst_ds);
    assert_eq!(count_under(&dst.join("packs")) + count_under(&dst.join("pack-index")), 0, "GC removed the orphans");

    let stats = copy_snapshot(&src_ds, &dst_ds, "vm1", &s1, &opts, &Progress::new()).unwrap();
    assert_eq!(stats.chunks_sent, stats.chunks_total);
    assert_eq!(stats.verified_chunks, stats.chunks_total);
    std::fs::remove_dir_all(&src).unwrap();
    assert_restores(&["--repo", p(&dst)], Some(&kb), &s1, &img, &out);
}

#[test]
fn a_paused_copy_holds_still_and_then_completes() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    ok(&["repo", "init", p(&dst)]);
    make_random_image(&img, 11, 24);
    let s1 = backup(&src, None, &img, None);
    let src_ds = Datastore::open(&src, None).unwrap();
    let dst_ds = Datastore::open(&dst, None).unwrap();
    let progress = Arc::new(Progress::new());
    let watcher = {
        let progress = progress.clone();
        let dst = dst.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while progress.snapshot().bytes_read == 0 && started.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(1));
            }
            progress.control.pause();
            std::thread::sleep(Duration::from_millis(300));
            let before = progress.snapshot();
            let files = count_under(&dst);
            std::thread::sleep(Duration::from_millis(700));
            let after = progress.snapshot();
            let still = (before.bytes_read, before.chunks_new, files) == (after.bytes_read, after.chunks_new, count_under(&dst));
            let visible = count_under(&dst.join("snapshots"));
            progress.control.resume();
            (still, before.bytes_read, before.bytes_total, visible)
        })
    };
    let stats = copy_snapshot(&src_ds, &dst_ds, "vm1", &s1, &CopyOptions { workers: 2, ..Default::default() }, &progress).unwrap();
    let (still, read, total, visible) = watcher.join().unwrap();
    assert!(still, "a paused copy stands still");
    assert!(read > 0 && read < total, "paused midway ({read} of {total} bytes)");
    assert_eq!(visible, 0, "no snapshot while paused");
    assert_eq!(stats.chunks_sent, stats.chunks_total);
    assert_restores(&["--repo", p(&dst)], None, &s1, &img, &out);
}

#[test]
fn a_killed_copy_process_leaves_no_snapshot_and_the_next_copy_completes() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let kb = t.path().join("b.key");
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    ok(&["repo", "init", p(&dst), "--encrypt", p(&kb)]);
    make_random_image(&img, 10, 64);
    let s1 = backup(&src, None, &img, None);
    let args = ["repo", "copy", "--from", p(&src), "--to", p(&dst), "--to-key", p(&kb), "--id", "vm1", "--snapshot", &s1, "--no-progress", "--workers", "1"];
    let mut child = bin().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while count_under(&dst.join("packs")) == 0 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the copy ended ({status}) before it was killed: the test proves nothing");
    let listed = ok(&["repo", "snapshots", p(&dst), "--key", p(&kb)]);
    assert!(listed.trim().is_empty(), "a killed copy shows no snapshot: {listed}");
    assert!(count_under(&dst.join("packs")) > 0);
    assert_eq!(count_under(&dst.join("locks")), 1, "the dead copy's lease");

    // GC at the target: the dead process's lease is stale, its orphans go.
    for _ in 0..2 {
        ok(&["repo", "gc", p(&dst), "--key", p(&kb), "--grace-seconds", "0"]);
    }
    assert_eq!(count_under(&dst.join("packs")) + count_under(&dst.join("locks")), 0);

    let mut again: Vec<&str> = args[2..].to_vec();
    again.retain(|a| *a != "--no-progress");
    let j = copy_json(&again);
    assert_eq!(n(&j, "chunks_sent"), n(&j, "chunks_total"), "{j}");
    std::fs::remove_dir_all(&src).unwrap();
    assert_restores(&["--repo", p(&dst)], Some(&kb), &s1, &img, &out);
}

#[test]
fn the_copy_follows_the_target_gc_plan_and_lease() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    ok(&["repo", "init", p(&dst)]);
    make_image(&img, 12, IMAGE_MIB);
    let s1 = backup(&src, None, &img, None);
    let src_ds = Datastore::open(&src, None).unwrap();
    let dst_ds = Datastore::open(&dst, None).unwrap();
    let opts = CopyOptions { workers: 2, ..Default::default() };

    // The target held this restore point once; it was forgotten and a GC
    // (with a grace period) named its packs as candidates. A copy must not
    // count on them: it sends the chunks again.
    let first = copy_snapshot(&src_ds, &dst_ds, "vm1", &s1, &opts, &Progress::new()).unwrap();
    ok(&["repo", "forget", p(&dst), "--id", "vm1", "--snapshot", &s1]);
    gc::gc_opts(&dst_ds, &GcOptions { grace: Duration::from_secs(86400), expected_manifests: None }, &Progress::new()).unwrap();
    let again = copy_snapshot(&src_ds, &dst_ds, "vm1", &s1, &opts, &Progress::new()).unwrap();
    assert_eq!(again.chunks_present, 0, "GC candidates are not counted on: {again:?}");
    assert_eq!(again.chunks_sent, first.chunks_total);
    gc_now(&dst_ds);
    assert_restores(&["--repo", p(&dst)], None, &s1, &img, &out);

    // A GC at the target while a copy has written everything but its
    // manifest: the copy's lease keeps its new packs.
    let me = std::thread::current().name().map(str::to_string);
    let gc_ran = Arc::new(AtomicBool::new(false));
    {
        let (dst, gc_ran) = (dst.clone(), gc_ran.clone());
        copy::set_stage_hook(Some(Arc::new(move |stage: &str| {
            if stage == "before-manifest" && std::thread::current().name().map(str::to_string) == me {
                let ds = Datastore::open(&dst, None).unwrap();
                gc_now(&ds);
                gc_ran.store(true, Ordering::Relaxed);
            }
        })));
    }
    ok(&["repo", "forget", p(&dst), "--id", "vm1", "--snapshot", &s1]);
    gc_now(&dst_ds);
    assert_eq!(count_under(&dst.join("packs")), 0, "the target is empty again");
    let third = copy_snapshot(&src_ds, &dst_ds, "vm1", &s1, &opts, &Progress::new());
    copy::set_stage_hook(None);
    let third = third.unwrap();
    assert!(gc_ran.load(Ordering::Relaxed), "the GC ran during the copy");
    assert_eq!(third.chunks_sent, first.chunks_total);
    gc_now(&dst_ds);
    assert_restores(&["--repo", p(&dst)], None, &s1, &img, &out);
    ok(&["repo", "verify", p(&dst)]);
}

#[test]
fn copies_to_s3_and_azure_restore_from_the_target() {
    let moto = Moto::start();
    moto.create_bucket("copies", false);
    let azurite = Azurite::start();
    azurite.create_container("copies");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (ka, kb) = (t.path().join("a.key"), t.path().join("b.key"));
    let (img, v1, out) = (t.path().join("d.raw"), t.path().join("v1.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src), "--encrypt", p(&ka)]);
    make_image(&img, 14, IMAGE_MIB);
    std::fs::copy(&img, &v1).unwrap();
    let s1 = backup(&src, Some(&ka), &img, None);
    let rf = t.path().join("ranges.json");
    write_ranges(&rf, &mutate(&img, 15, &[7, 100]));
    let s2 = backup(&src, Some(&ka), &img, Some(&rf));

    let s3 = spec_file(&t.path().join("s3.json"), &moto.spec("copies"));
    let az = spec_file(&t.path().join("az.json"), &azurite.spec("copies"));
    ok(&["repo", "init", "--spec-file", p(&s3), "--encrypt", p(&kb)]);
    ok(&["repo", "init", "--spec-file", p(&az)]);
    for (target, key, spec) in [(&s3, Some(&kb), moto.spec("copies")), (&az, None, azurite.spec("copies"))] {
        let mut base = vec!["--from", p(&src), "--from-key", p(&ka), "--to-spec-file", p(target), "--id", "vm1"];
        if let Some(k) = key {
            base.extend(["--to-key", p(k)]);
        }
        let started = Instant::now();
        let j1 = copy_json(&[base.clone(), vec!["--snapshot", &s1]].concat());
        let took = started.elapsed();
        assert_eq!(n(&j1, "chunks_sent"), n(&j1, "chunks_total"), "{j1}");
        let j2 = copy_json(&[base.clone(), vec!["--snapshot", &s2]].concat());
        assert_eq!(n(&j2, "chunks_sent"), 2, "{j2}");
        assert!(j2["requests_source"].is_null(), "a local source counts no requests: {j2}");
        let (r1, r2) = (n(&j1, "requests_target"), n(&j2, "requests_target"));
        assert!(r1 > 0 && r2 > 0, "target requests: full {r1}, incremental {r2}");
        let j3 = copy_json(&[base.clone(), vec!["--snapshot", &s2]].concat());
        assert_eq!((j3["already_present"].as_bool(), n(&j3, "bytes_sent")), (Some(true), 0), "{j3}");
        let leases = sendense::repos::open_backend(&spec).unwrap().list("locks/").unwrap();
        assert!(leases.is_empty(), "the copies' leases are gone: {:?}", leases.iter().map(|o| &o.key).collect::<Vec<_>>());
        println!(
            "copy to {}: full {} chunks {} bytes in {took:?} ({} requests: {}), incremental {} chunks {} bytes",
            p(target),
            n(&j1, "chunks_sent"),
            n(&j1, "bytes_sent"),
            n(&j1, "requests_target"),
            j1["object_store_requests"],
            n(&j2, "chunks_sent"),
            n(&j2, "bytes_sent")
        );
    }
    std::fs::remove_dir_all(&src).unwrap();
    // A copy can be the source too (the primary gone): S3 back to a local directory.
    let back = t.path().join("back");
    ok(&["repo", "init", p(&back)]);
    let j = copy_json(&["--from-spec-file", p(&s3), "--from-key", p(&kb), "--to", p(&back), "--id", "vm1", "--snapshot", &s2]);
    assert_eq!(n(&j, "chunks_sent"), n(&j, "chunks_total"), "{j}");
    assert!(n(&j, "requests_source") > 0 && j["requests_target"].is_null(), "{j}");
    assert_restores(&["--repo", p(&back)], None, &s2, &img, &out);
    assert_restores(&["--spec-file", p(&s3)], Some(&kb), &s1, &v1, &out);
    assert_restores(&["--spec-file", p(&s3)], Some(&kb), &s2, &img, &out);
    assert_restores(&["--spec-file", p(&az)], None, &s1, &v1, &out);
    assert_restores(&["--spec-file", p(&az)], None, &s2, &img, &out);
}

#[test]
fn a_copy_killed_while_uploading_to_s3_leaves_no_snapshot_and_the_next_completes() {
    let moto = Moto::start();
    moto.create_bucket("target", false);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    make_random_image(&img, 18, 40);
    let s1 = backup(&src, None, &img, None);
    let spec = moto.spec("target");
    let f = spec_file(&t.path().join("s3.json"), &spec);
    ok(&["repo", "init", "--spec-file", p(&f)]);
    let args = ["repo", "copy", "--from", p(&src), "--to-spec-file", p(&f), "--id", "vm1", "--snapshot", &s1, "--no-progress"];
    let mut child = bin().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    let pack_put = |moto: &Moto| moto.requests().iter().any(|r| r.starts_with("PUT /target/packs/"));
    while !pack_put(&moto) && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the copy ended ({status}) before it was killed: the test proves nothing");
    let ds = Datastore::open_spec(&spec, None).unwrap();
    assert!(ds.list_snapshots(None).unwrap().is_empty(), "a killed copy shows no snapshot");
    let keys = |prefix: &str| ds.repo.list(prefix).unwrap().len();
    assert!(keys("packs/") > 0, "the killed copy's packs");
    for _ in 0..2 {
        ok(&["repo", "gc", "--spec-file", p(&f), "--grace-seconds", "0"]);
    }
    assert_eq!((keys("packs/"), keys("pack-index/"), keys("indexes/"), keys("locks/")), (0, 0, 0, 0), "GC at the target cleaned");
    let j = copy_json(&args[2..args.len() - 1]);
    assert_eq!(n(&j, "chunks_sent"), n(&j, "chunks_total"), "{j}");
    std::fs::remove_dir_all(&src).unwrap();
    assert_restores(&["--spec-file", p(&f)], None, &s1, &img, &out);
}

#[test]
fn an_immutable_copy_to_an_object_lock_bucket_is_locked_by_the_storage() {
    let moto = Moto::start();
    moto.create_bucket("locked", true);
    moto.create_bucket("plain", false);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&src)]);
    make_image(&img, 16, 8);
    let s1 = backup(&src, None, &img, None);
    let locked = spec_file(&t.path().join("locked.json"), &moto.spec("locked"));
    let plain = spec_file(&t.path().join("plain.json"), &moto.spec("plain"));
    Datastore::init_spec(&moto.spec("locked"), None, DEFAULT_CHUNK_SIZE).unwrap();
    Datastore::init_spec(&moto.spec("plain"), None, DEFAULT_CHUNK_SIZE).unwrap();

    // A bucket without Object Lock: refused before anything is written.
    let err = fails(&["repo", "copy", "--from", p(&src), "--to-spec-file", p(&plain), "--id", "vm1", "--snapshot", &s1, "--immutable-days", "1", "--object-lock", "governance"]);
    assert!(err.contains("s3://plain") && err.contains("no Object Lock"), "{err}");
    let written: Vec<String> = moto.all_versions("plain").into_iter().map(|v| v.key).filter(|k| k != "config.json").collect();
    assert!(written.is_empty(), "{written:?}");

    let j = copy_json(&["--from", p(&src), "--to-spec-file", p(&locked), "--id", "vm1", "--snapshot", &s1, "--immutable-days", "1", "--object-lock", "governance"]);
    let until = chrono::DateTime::parse_from_rfc3339(j["immutable_until"].as_str().unwrap()).unwrap();
    let now = chrono::Utc::now();
    assert!(until > now + chrono::Duration::hours(23) && until < now + chrono::Duration::hours(25), "{j}");
    let versions: Vec<_> = moto
        .all_versions("locked")
        .into_iter()
        .filter(|v| ["packs/", "pack-index/", "indexes/", "snapshots/", "dicts/"].iter().any(|p| v.key.starts_with(p)) || v.key == "config.json")
        .collect();
    for prefix in ["packs/", "pack-index/", "indexes/", "snapshots/", "config.json"] {
        assert!(versions.iter().any(|v| v.key.starts_with(prefix)), "no {prefix} in {versions:?}");
    }
    assert!(n(&j, "objects_locked") as usize >= versions.len(), "{j} for {} objects", versions.len());
    for v in &versions {
        let r = moto.retention("locked", &v.key, &v.version_id);
        assert_eq!(r.mode.as_deref(), Some("GOVERNANCE"), "{}: {r:?}", v.key);
        let got = chrono::DateTime::parse_from_rfc3339(r.until.as_deref().unwrap()).unwrap();
        assert!(got >= until - chrono::Duration::seconds(1), "{} locked until {got}, the copy until {until}", v.key);
        let refused = moto.delete_object_version("locked", &v.key, &v.version_id);
        assert_eq!(refused.expect_err(&v.key).error, "AccessDenied", "{}", v.key);
    }
    // Sendense refuses too.
    let err = fails(&["repo", "forget", "--spec-file", p(&locked), "--id", "vm1", "--snapshot", &s1]);
    assert!(err.contains("immutable"), "{err}");
    assert_restores(&["--spec-file", p(&locked)], None, &s1, &img, &out);
}
