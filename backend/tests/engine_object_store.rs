//! The engine on object stores: an encrypted repository created with
//! `Datastore::init_spec` in a real S3 server (moto, signatures checked) and
//! a real Azure Blob service (Azurite), a full and an incremental backup of a
//! small image through `Datastore::open_spec`, restores compared byte for
//! byte, verify, no plaintext in any stored object, and the CLI's
//! `--spec-file` (mode 0600 required) on the same repository. Prints the
//! throughput and the requests made (for the issue 18 benchmark notes).

mod support;
#[path = "engine_support/mod.rs"]
mod engine_support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use engine_support::{make_image, mutate, ok, p, same_file};
use sendense::engine::backup::{self, BackupOptions, DiskSource};
use sendense::engine::block_source::FileSource;
use sendense::engine::datastore::{Datastore, DEFAULT_CHUNK_SIZE};
use sendense::engine::progress::Progress;
use sendense::engine::{restore, verify, EngineError};
use sendense::repos::http::request_counts;
use sendense::repos::{open_backend, RepoSpec};
use support::object_servers::{Azurite, Moto};

/// The request counters are per process: one object-store test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const IMAGE_MIB: usize = 24;

fn backup_image(ds: &Datastore, image: &Path, ranges: Option<Vec<(u64, u64)>>) -> String {
    let opts = BackupOptions::new("vm1");
    let source = Arc::new(FileSource::open(image).unwrap());
    let disks = [DiskSource { name: "disk0".into(), source, changed_ranges: ranges, cbt_token: None }];
    backup::backup(ds, &opts, &disks, &Progress::new()).unwrap_or_else(|e| panic!("backup to {}: {e}", ds.repo.describe())).id
}

fn mib_per_s(bytes: u64, started: Instant) -> f64 {
    bytes as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64()
}

fn round_trip(spec: RepoSpec) {
    let t = tempfile::tempdir().unwrap();
    let (img, key, out) = (t.path().join("d.raw"), t.path().join("repo.key"), t.path().join("out.raw"));
    make_image(&img, 5, IMAGE_MIB);
    let full_copy = t.path().join("full.raw");
    std::fs::copy(&img, &full_copy).unwrap();
    let where_ = spec.describe();

    let before = request_counts();
    Datastore::init_spec(&spec, Some(&key), DEFAULT_CHUNK_SIZE).unwrap_or_else(|e| panic!("init in {where_}: {e}"));
    let again = Datastore::init_spec(&spec, None, DEFAULT_CHUNK_SIZE);
    assert!(matches!(again, Err(EngineError::AlreadyExists { .. })), "a second init in {where_} is refused");
    assert!(matches!(Datastore::open_spec(&spec, None), Err(EngineError::KeyMissing)));
    let ds = Datastore::open_spec(&spec, Some(&key)).unwrap();
    assert!(ds.crypt.is_some());

    let started = Instant::now();
    let s1 = backup_image(&ds, &img, None);
    let full_rate = mib_per_s((IMAGE_MIB as u64) << 20, started);
    let after_full = request_counts();

    // Scattered 64 KiB writes; the incremental reuses the full's packs.
    let ranges = mutate(&img, 6, &[1, 40, 41, 130, 300]);
    let started = Instant::now();
    let s2 = backup_image(&ds, &img, Some(ranges));
    let inc_secs = started.elapsed().as_secs_f64();
    let after_inc = request_counts();
    assert_eq!(ds.list_snapshots(Some("vm1")).unwrap(), vec![("vm1".into(), s1.clone()), ("vm1".into(), s2.clone())]);

    let started = Instant::now();
    restore::restore(&ds, "vm1", &s1, None, &out, 2, &Progress::new()).unwrap();
    let restore_rate = mib_per_s((IMAGE_MIB as u64) << 20, started);
    let after_restore = request_counts();
    assert!(same_file(&out, &full_copy), "the full backup in {where_} restores byte for byte");
    restore::restore(&ds, "vm1", "latest", None, &out, 2, &Progress::new()).unwrap();
    assert!(same_file(&out, &img), "the incremental in {where_} restores byte for byte");

    let report = verify::verify(&ds, 2, &Progress::new()).unwrap();
    assert!(report.errors.is_empty(), "verify on {where_}: {:?}", report.errors);
    assert_eq!(report.snapshots, 2);

    // Encrypted: the image's text (log lines) is in no stored object.
    let backend = open_backend(&spec).unwrap();
    let objects = backend.list("").unwrap();
    assert!(objects.iter().any(|o| o.key.starts_with("packs/")), "{objects:?}");
    // Restore reads coalesced runs of chunks (whole packs here, one GET
    // each), not one ranged GET per chunk (that was ~300 for this image):
    // pack indexes, packs, and a few small objects (config, manifest, fixed index).
    let packs = objects.iter().filter(|o| o.key.starts_with("packs/")).count() as u64;
    let restore_gets = after_restore.since(&after_inc).get;
    assert!(restore_gets <= packs + 8, "restore from {where_}: {restore_gets} GETs for {packs} packs");
    for o in &objects {
        let body = backend.get(&o.key).unwrap();
        assert!(!body.windows(11).any(|w| w == b"GET /items/"), "plaintext in {} of {where_}", o.key);
    }

    // touch (the GC grace rule) on a pack: alive, Last-Modified refreshed,
    // the bytes unchanged; a missing object is reported absent, not made.
    let pack = objects.iter().find(|o| o.key.starts_with("packs/")).unwrap();
    let pack_body = backend.get(&pack.key).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before_touch = request_counts();
    assert!(backend.touch(&pack.key).unwrap());
    let touch_requests = request_counts().since(&before_touch);
    // One server-side copy (S3: CopyObject with metadata REPLACE), no bytes through us.
    assert_eq!((touch_requests.put, touch_requests.total()), (1, 1), "touch on {where_}: {touch_requests:?}");
    let touched = backend.stat(&pack.key).unwrap().unwrap();
    assert!(touched.modified > pack.modified, "touch refreshed {} in {where_}", pack.key);
    assert_eq!(backend.get(&pack.key).unwrap(), pack_body);
    assert_eq!(touched.size, pack.size);
    assert!(!backend.touch("packs/00/no-such-pack").unwrap());
    assert!(backend.stat("packs/00/no-such-pack").unwrap().is_none());

    println!("{where_}: touch {touch_requests:?}");
    println!(
        "{where_}: full backup of {IMAGE_MIB} MiB {full_rate:.1} MiB/s ({:?}), incremental of 5 x 64 KiB {inc_secs:.2} s ({:?}), restore {restore_rate:.1} MiB/s ({:?})",
        after_full.since(&before),
        after_inc.since(&after_full),
        after_restore.since(&after_inc),
    );

    // The CLI on the same repository through --spec-file (0600 only).
    let spec_file = t.path().join("repo.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&spec_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out_cli = engine_support::bin()
        .args(["repo", "snapshots", "--spec-file", p(&spec_file), "--key", p(&key)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out_cli.stderr);
    assert!(!out_cli.status.success() && err.contains("chmod 600"), "a spec file others can read is refused: {err}");
    std::fs::set_permissions(&spec_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listed = ok(&["repo", "snapshots", "--spec-file", p(&spec_file), "--key", p(&key)]);
    assert!(listed.contains(&s1) && listed.contains(&s2), "{listed}");
    std::fs::remove_file(&out).unwrap();
    ok(&["image", "restore", "--spec-file", p(&spec_file), "--key", p(&key), "--id", "vm1", "--snapshot", &s2, p(&out), "--no-progress"]);
    assert!(same_file(&out, &img), "the CLI restores from {where_}");
    let line = ok(&["image", "backup", "--spec-file", p(&spec_file), "--key", p(&key), "--id", "vm2", p(&full_copy), "--no-progress"]);
    assert_eq!(ds.list_snapshots(Some("vm2")).unwrap().len(), 1, "the CLI backs up to {where_}: {line}");
    assert!(!line.contains("secret"));
}

/// Opening with a wrong secret fails at the first request, naming the
/// repository and the cause.
fn wrong_secret_is_named(mut spec: RepoSpec) {
    match &mut spec {
        RepoSpec::S3 { secret_access_key, .. } => *secret_access_key = "not-the-secret".into(),
        RepoSpec::Azure { access_key, .. } => *access_key = Some("bm90LXRoZS1rZXk=".into()),
        RepoSpec::Local { .. } => unreachable!(),
    }
    let e = Datastore::open_spec(&spec, None).err().expect("a wrong secret is refused").to_string();
    assert!(e.contains(&spec.describe()) && e.contains("wrong credentials"), "{e}");
    assert!(!e.contains("not-the-secret") && !e.contains("bm90LXRoZS1rZXk="), "{e}");
}

#[test]
fn backup_and_restore_on_s3() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let moto = Moto::start();
    moto.create_bucket("engine", false);
    let mut spec = moto.spec("engine");
    if let RepoSpec::S3 { prefix, .. } = &mut spec {
        *prefix = "site-a/repo1".into();
    }
    round_trip(spec.clone());
    wrong_secret_is_named(spec);
}

#[test]
fn backup_and_restore_on_azure() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let azurite = Azurite::start();
    azurite.create_container("engine");
    round_trip(azurite.spec("engine"));
    wrong_secret_is_named(azurite.spec("engine"));
}
