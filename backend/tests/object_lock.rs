//! Immutability enforced by the storage (issue 18 item 4) on a real S3
//! server with Object Lock (moto, signatures checked): an immutable backup
//! locks every object of its restore point, and deleting any version of
//! them straight through the S3 API (boto3, DeleteObject with VersionId) is
//! refused by the storage; a reused pack is not locked again while its
//! retention band covers the new restore point; a bucket without Object
//! Lock fails such a backup before anything is written, and the repository
//! test says so naming the bucket. After a plain DELETE of every key (delete
//! markers), `undelete` brings the restore points back.
//!
//! The lock date a restore point shows is the storage's own (GetObjectRetention
//! of its manifest, `object_lock::restore_point_lock`), equal to what boto3
//! reads. The "ensure retention" repair (`repo ensure-retention`) locks what a
//! crash between a write and its lock left unlocked: afterwards deleting any
//! version is refused. `repo undelete --since` brings back a manifest deleted
//! with a plain DELETE, and the restore point restores byte for byte; a bucket
//! without versioning and a local directory refuse it, saying why.

mod support;
#[path = "engine_support/mod.rs"]
mod engine_support;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use engine_support::{fails, make_image, mutate, ok, p, same_file};
use sendense::catalog::repository_setup::object_lock_check;
use sendense::engine::backup::{self, BackupOptions, DiskSource};
use sendense::engine::block_source::FileSource;
use sendense::engine::datastore::{Datastore, DEFAULT_CHUNK_SIZE};
use sendense::engine::manifest::{manifest_key, Manifest};
use sendense::engine::object_lock::{ensure_retention, restore_point_lock};
use sendense::engine::repository::Repository;
use sendense::engine::progress::Progress;
use sendense::engine::repository::LockMode;
use sendense::engine::restore;
use sendense::repos::object::ObjectRepository;
use sendense::repos::open_backend;
use support::object_servers::{BucketVersion, Moto};

const IMAGE_MIB: usize = 16;

/// Keys of a restore point's objects and of what it needs to open.
fn is_restore_point_object(key: &str) -> bool {
    ["packs/", "pack-index/", "indexes/", "snapshots/", "dicts/"].iter().any(|p| key.starts_with(p)) || key == "config.json"
}

fn backup_image(ds: &Datastore, image: &Path, ranges: Option<Vec<(u64, u64)>>, lock: Option<LockMode>) -> Result<Manifest, String> {
    let mut opts = BackupOptions::new("vm1");
    opts.immutable_days = Some(1);
    opts.object_lock = lock;
    let source = Arc::new(FileSource::open(image).unwrap());
    let disks = [DiskSource { name: "disk0".into(), source, changed_ranges: ranges, cbt_token: None }];
    backup::backup(ds, &opts, &disks, &Progress::new()).map_err(|e| e.to_string())
}

/// `spec` as a 0600 spec file for the CLI's `--spec-file`.
fn spec_file(dir: &Path, spec: &sendense::repos::RepoSpec) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let f = dir.join("repo.json");
    std::fs::write(&f, serde_json::to_vec(spec).unwrap()).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

fn objects(moto: &Moto, bucket: &str) -> Vec<BucketVersion> {
    let mut v: Vec<BucketVersion> = moto.all_versions(bucket).into_iter().filter(|v| is_restore_point_object(&v.key)).collect();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v
}

fn retention_puts(moto: &Moto) -> usize {
    moto.requests().iter().filter(|r| r.starts_with("PUT ") && r.contains("?retention")).count()
}

fn until(m: &Manifest) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(m.immutable_until.as_deref().unwrap()).unwrap().with_timezone(&Utc)
}

/// Every version of every restore-point object: the retention boto3 reads
/// is `mode` and reaches `at_least`; DeleteObject with its VersionId is
/// refused with AccessDenied.
fn assert_locked(moto: &Moto, bucket: &str, mode: &str, manifest_until: DateTime<Utc>) -> usize {
    let versions = objects(moto, bucket);
    for prefix in ["packs/", "pack-index/", "indexes/", "snapshots/", "config.json"] {
        assert!(versions.iter().any(|v| v.key.starts_with(prefix)), "no {prefix} object in {bucket}: {versions:?}");
    }
    for v in &versions {
        assert!(!v.delete_marker, "{v:?}");
        let r = moto.retention(bucket, &v.key, &v.version_id);
        assert_eq!(r.mode.as_deref(), Some(mode), "{} has retention {r:?}", v.key);
        let got = DateTime::parse_from_rfc3339(r.until.as_deref().unwrap()).unwrap().with_timezone(&Utc);
        // Manifests to their until; the rest to until + immutable days (the band).
        let want = if v.key.starts_with("snapshots/") { manifest_until } else { manifest_until + Duration::days(1) };
        assert!(got >= want - Duration::seconds(1), "{} locked until {got}, needs {want}", v.key);
        let refused = moto.delete_object_version(bucket, &v.key, &v.version_id);
        let err = refused.expect_err(&format!("deleting {} version {} must be refused by the storage", v.key, v.version_id));
        assert_eq!(err.error, "AccessDenied", "{}: {err:?}", v.key);
    }
    // Nothing went: every version is still there.
    assert_eq!(objects(moto, bucket).len(), versions.len());
    versions.len()
}

#[test]
fn compliance_locks_every_object_and_bands_reused_packs() {
    let moto = Moto::start();
    moto.create_bucket("locked", true);
    let spec = moto.spec("locked");
    let t = tempfile::tempdir().unwrap();
    let (img, key, out) = (t.path().join("d.raw"), t.path().join("repo.key"), t.path().join("out.raw"));
    make_image(&img, 11, IMAGE_MIB);
    let full_copy = t.path().join("full.raw");
    std::fs::copy(&img, &full_copy).unwrap();
    Datastore::init_spec(&spec, Some(&key), DEFAULT_CHUNK_SIZE).unwrap();
    let ds = Datastore::open_spec(&spec, Some(&key)).unwrap();

    let s1 = backup_image(&ds, &img, None, Some(LockMode::Compliance)).unwrap();
    let after_full = objects(&moto, "locked").len();
    let locked_full = retention_puts(&moto);
    // Every object got its retention, config.json included.
    assert_eq!(locked_full, after_full, "retention requests of the full backup vs its objects");

    // The incremental reuses the full's packs: they are locked until
    // s1's until + 1 day already, past s2's until, so only the new objects
    // get a retention request (config.json too is locked long enough).
    let ranges = mutate(&img, 12, &[1, 40, 130]);
    let s2 = backup_image(&ds, &img, Some(ranges), Some(LockMode::Compliance)).unwrap();
    let new_objects = objects(&moto, "locked").len() - after_full;
    assert!(new_objects >= 3, "the incremental wrote a pack, its index, a fixed index and a manifest: {new_objects}");
    assert_eq!(retention_puts(&moto) - locked_full, new_objects, "the incremental locked exactly its new objects");
    assert!(until(&s2) <= until(&s1) + Duration::days(1), "s2 fits in the band of s1's packs");

    let n = assert_locked(&moto, "locked", "COMPLIANCE", until(&s1));
    println!("compliance: {n} object versions locked; {locked_full} retention requests for the full, {new_objects} for the incremental");

    // Both restore points still restore byte for byte after the attempts.
    restore::restore(&ds, "vm1", &s1.id, None, &out, 2, &Progress::new()).unwrap();
    assert!(same_file(&out, &full_copy));
    restore::restore(&ds, "vm1", &s2.id, None, &out, 2, &Progress::new()).unwrap();
    assert!(same_file(&out, &img));

    // Someone with the credentials deletes every key: only delete markers
    // land over the locked versions. Undelete removes the markers and both
    // restore points are back.
    let attack = Utc::now() - Duration::seconds(2);
    let hidden = moto.delete_all("locked");
    assert!(hidden >= n / 2, "{hidden} keys deleted");
    assert!(ds.list_snapshots(Some("vm1")).unwrap().is_empty(), "the manifests are hidden by delete markers");
    let back = ObjectRepository::open(&spec).unwrap().undelete(attack).unwrap();
    // Every key but the leases of the two backups, which Sendense removed itself.
    assert_eq!(back.len(), hidden, "{back:?}");
    assert!(back.iter().all(|k| !k.starts_with("locks/")), "{back:?}");
    assert!(back.iter().any(|k| k == "config.json"));
    assert_eq!(ds.list_snapshots(Some("vm1")).unwrap().len(), 2);
    let ds = Datastore::open_spec(&spec, Some(&key)).unwrap();
    restore::restore(&ds, "vm1", &s2.id, None, &out, 2, &Progress::new()).unwrap();
    assert!(same_file(&out, &img), "the incremental restores after undelete");
}

#[test]
fn governance_refuses_deletes_without_bypass() {
    let moto = Moto::start();
    moto.create_bucket("gov", true);
    let spec = moto.spec("gov");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("d.raw");
    make_image(&img, 21, 8);
    Datastore::init_spec(&spec, None, DEFAULT_CHUNK_SIZE).unwrap();
    let ds = Datastore::open_spec(&spec, None).unwrap();
    let m = backup_image(&ds, &img, None, Some(LockMode::Governance)).unwrap();
    // The CLI asks the same (`image backup --object-lock`).
    let f = spec_file(t.path(), &spec);
    ok(&["image", "backup", "--spec-file", p(&f), "--id", "vm2", "--immutable-days", "1", "--object-lock", "governance", p(&img), "--no-progress"]);
    let n = assert_locked(&moto, "gov", "GOVERNANCE", until(&m));
    assert!(n >= 6 && objects(&moto, "gov").iter().filter(|v| v.key.starts_with("snapshots/")).count() == 2, "{n}");
    // The bucket's lock is what the repository test reads.
    let backend = open_backend(&spec).unwrap();
    let check = object_lock_check(backend.as_ref(), &spec);
    assert!(check.ok, "{check:?}");
}

#[test]
fn a_bucket_without_object_lock_fails_the_backup_before_writing() {
    let moto = Moto::start();
    moto.create_bucket("plain", false);
    let spec = moto.spec("plain");
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("d.raw");
    make_image(&img, 31, 8);
    Datastore::init_spec(&spec, None, DEFAULT_CHUNK_SIZE).unwrap();
    let ds = Datastore::open_spec(&spec, None).unwrap();

    let err = backup_image(&ds, &img, None, Some(LockMode::Compliance)).unwrap_err();
    assert!(err.contains("s3://plain") && err.contains("Object Lock") && err.contains("nothing was written"), "{err}");
    let written: Vec<String> = moto.all_versions("plain").into_iter().map(|v| v.key).filter(|k| k != "config.json").collect();
    assert!(written.is_empty(), "a refused backup wrote {written:?}");
    assert!(ds.list_snapshots(None).unwrap().is_empty());
    assert_eq!(retention_puts(&moto), 0);
    let f = spec_file(t.path(), &spec);
    let cli = fails(&["image", "backup", "--spec-file", p(&f), "--id", "vm1", "--immutable-days", "1", "--object-lock", "compliance", p(&img), "--no-progress"]);
    assert!(cli.contains("s3://plain") && cli.contains("no Object Lock"), "{cli}");
    assert!(ds.list_snapshots(None).unwrap().is_empty());

    let backend = open_backend(&spec).unwrap();
    let check = object_lock_check(backend.as_ref(), &spec);
    assert!(!check.ok && check.message.contains("bucket 'plain' has no Object Lock"), "{check:?}");

    // Immutability kept by Sendense alone still works there.
    let m = backup_image(&ds, &img, None, None).unwrap();
    assert!(m.immutable_until.is_some());
    assert_eq!(retention_puts(&moto), 0);
}

/// The current version of `key` in `bucket`.
fn current_version(moto: &Moto, bucket: &str, key: &str) -> BucketVersion {
    moto.all_versions(bucket).into_iter().find(|v| v.key == key && v.is_latest).unwrap_or_else(|| panic!("no current version of {key}"))
}

#[test]
fn the_lock_date_is_the_storages_and_ensure_retention_locks_what_a_crash_left_unlocked() {
    let moto = Moto::start();
    moto.create_bucket("repair", true);
    let spec = moto.spec("repair");
    let t = tempfile::tempdir().unwrap();
    let (img, out) = (t.path().join("d.raw"), t.path().join("out.raw"));
    make_image(&img, 41, IMAGE_MIB);
    Datastore::init_spec(&spec, None, DEFAULT_CHUNK_SIZE).unwrap();
    let ds = Datastore::open_spec(&spec, None).unwrap();
    let s1 = backup_image(&ds, &img, None, Some(LockMode::Governance)).unwrap();

    // The lock the restore point shows is the one boto3 reads on its manifest.
    let lock = restore_point_lock(&ds, "vm1", &s1.id).unwrap().expect("a locked restore point");
    let key = manifest_key("vm1", &s1.id);
    let v = current_version(&moto, "repair", &key);
    let seen = moto.retention("repair", &key, &v.version_id);
    assert_eq!(seen.mode.as_deref(), Some("GOVERNANCE"));
    let boto_until = DateTime::parse_from_rfc3339(seen.until.as_deref().unwrap()).unwrap().with_timezone(&Utc);
    assert_eq!((lock.mode, lock.until.timestamp_millis()), (LockMode::Governance, boto_until.timestamp_millis()), "{lock:?} vs {seen:?}");
    assert!((lock.until - until(&s1)).num_milliseconds().abs() < 1000, "the manifest is locked to its immutable_until");
    // A local directory has no storage lock: no date, no request.
    let local = t.path().join("local");
    Datastore::init_with(&local, None, DEFAULT_CHUNK_SIZE).unwrap();
    let lds = Datastore::open(&local, None).unwrap();
    let lm = backup_image(&lds, &img, None, None).unwrap();
    assert_eq!(restore_point_lock(&lds, "vm1", &lm.id).unwrap(), None);

    // A crash between the writes and their retention requests: an immutable
    // incremental whose objects were written but never locked (the same
    // backup without the storage lock), and an object put without retention.
    let ranges = mutate(&img, 42, &[3, 70, 150]);
    let s2 = backup_image(&ds, &img, Some(ranges), None).unwrap();
    assert!(s2.immutable_until.is_some());
    let key2 = manifest_key("vm1", &s2.id);
    let unlocked = objects(&moto, "repair").into_iter().filter(|v| moto.retention("repair", &v.key, &v.version_id).mode.is_none()).count();
    assert!(unlocked >= 3, "the crashed backup left its pack, indexes and manifest unlocked: {unlocked}");
    assert_eq!(restore_point_lock(&ds, "vm1", &s2.id).unwrap(), None, "no lock claimed before the repair");
    let config_unlocked = current_version(&moto, "repair", "config.json");
    assert!(moto.retention("repair", "config.json", &config_unlocked.version_id).mode.is_some());

    // The repair (CLI) locks exactly what was left unlocked.
    let f = spec_file(t.path(), &spec);
    let printed = ok(&["repo", "ensure-retention", "--spec-file", p(&f), "--mode", "governance"]);
    let summary = printed.lines().last().unwrap();
    assert!(summary.contains("2 locked restore points") && summary.contains(&format!("{unlocked} locked again")), "{printed}");
    assert!(printed.contains(&format!("locked {key2}")), "{printed}");
    // Every version of every object of both restore points is locked now:
    // deleting one by VersionId is refused (AccessDenied).
    let n = assert_locked(&moto, "repair", "GOVERNANCE", until(&s1));
    let lock2 = restore_point_lock(&ds, "vm1", &s2.id).unwrap().expect("the repaired manifest is locked");
    assert!((lock2.until - until(&s2)).num_milliseconds().abs() < 1000, "{lock2:?}");
    // A second pass finds nothing to do (one HEAD per object, no retention request).
    let puts = retention_puts(&moto);
    let again = ensure_retention(&ds, LockMode::Governance).unwrap();
    assert_eq!((again.snapshots, again.extended.len(), again.missing.len()), (2, 0, 0), "{again:?}");
    assert_eq!(retention_puts(&moto), puts);
    println!("ensure-retention: {unlocked} objects locked again of {} checked; {n} versions refuse deletion", again.objects);
    restore::restore(&ds, "vm1", &s2.id, None, &out, 2, &Progress::new()).unwrap();
    assert!(same_file(&out, &img));
    // Not on a store that cannot lock.
    let refused = fails(&["repo", "ensure-retention", p(&local), "--mode", "governance"]);
    assert!(refused.contains("cannot lock objects"), "{refused}");
}

#[test]
fn undelete_brings_back_a_manifest_deleted_with_a_plain_delete() {
    let moto = Moto::start();
    moto.create_bucket("undel", true);
    moto.create_bucket("unversioned", false);
    let spec = moto.spec("undel");
    let t = tempfile::tempdir().unwrap();
    let (img, key, out) = (t.path().join("d.raw"), t.path().join("repo.key"), t.path().join("out.raw"));
    make_image(&img, 51, IMAGE_MIB);
    Datastore::init_spec(&spec, Some(&key), DEFAULT_CHUNK_SIZE).unwrap();
    let ds = Datastore::open_spec(&spec, Some(&key)).unwrap();
    let m = backup_image(&ds, &img, None, Some(LockMode::Compliance)).unwrap();

    // Someone with the credentials deletes the manifest: a delete marker
    // (the locked version stays); the restore point is gone from listings.
    let attack = Utc::now() - Duration::seconds(2);
    let mkey = manifest_key("vm1", &m.id);
    ObjectRepository::open(&spec).unwrap().delete(&mkey).unwrap();
    assert!(ds.list_snapshots(None).unwrap().is_empty());
    assert!(moto.all_versions("undel").iter().any(|v| v.key == mkey && v.delete_marker && v.is_latest));
    assert!(restore::restore(&ds, "vm1", &m.id, None, &out, 2, &Progress::new()).is_err());

    // A marker older than --since stays.
    let f = spec_file(t.path(), &spec);
    let later = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let none = ok(&["repo", "undelete", "--spec-file", p(&f), "--key", p(&key), "--since", &later]);
    assert!(none.contains("removed 0 delete markers"), "{none}");
    assert!(ds.list_snapshots(None).unwrap().is_empty());
    let printed = ok(&["repo", "undelete", "--spec-file", p(&f), "--key", p(&key), "--since", &attack.to_rfc3339()]);
    assert!(printed.contains(&format!("restored snapshot vm1/{}", m.id)) && printed.contains("removed 1 delete markers"), "{printed}");
    assert_eq!(ds.list_snapshots(None).unwrap(), vec![("vm1".to_string(), m.id.clone())]);
    restore::restore(&ds, "vm1", &m.id, None, &out, 2, &Progress::new()).unwrap();
    assert!(same_file(&out, &img), "the undeleted restore point restores byte for byte");
    // Its lock is the storage's, still.
    assert!(restore_point_lock(&ds, "vm1", &m.id).unwrap().is_some_and(|l| l.mode == LockMode::Compliance));

    // Stores that keep no deleted versions refuse, saying so.
    let pdir = t.path().join("plain");
    std::fs::create_dir_all(&pdir).unwrap();
    let plain = spec_file(&pdir, &moto.spec("unversioned"));
    let e = fails(&["repo", "undelete", "--spec-file", p(&plain), "--since", &attack.to_rfc3339()]);
    assert!(e.contains("bucket 'unversioned' has no versioning"), "{e}");
    let e = ObjectRepository::open(&moto.spec("unversioned")).unwrap().undelete(attack).unwrap_err().to_string();
    assert!(e.contains("no versioning"), "{e}");
    let local = t.path().join("local");
    Datastore::init_with(&local, None, DEFAULT_CHUNK_SIZE).unwrap();
    let e = fails(&["repo", "undelete", p(&local), "--since", &attack.to_rfc3339()]);
    assert!(e.contains("undelete needs an S3 bucket with versioning"), "{e}");
    // A time clap cannot read is a usage error (exit 2) saying what to give.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_sendense")).args(["repo", "undelete", p(&local), "--since", "yesterday"]).output().unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(bad.status.code() == Some(2) && e.contains("RFC 3339"), "{e}");
}

#[test]
fn the_version_sweep_removes_old_versions_once_their_retention_ended() {
    let moto = Moto::start();
    moto.create_bucket("sweep", true);
    let spec = moto.spec("sweep");
    let repo = ObjectRepository::open(&spec).unwrap();
    // Two packs GC deleted (plain DELETEs: delete markers over the versions),
    // one locked for 3 s, one for an hour; an object replaced (two versions,
    // no retention); a current object under retention.
    moto.put_object("sweep", "packs/aa/short", 3);
    moto.put_object("sweep", "packs/bb/long", 3600);
    moto.put_object("sweep", "packs/cc/current", 3600);
    repo.delete("packs/aa/short").unwrap();
    repo.delete("packs/bb/long").unwrap();
    repo.put("config.json", b"one").unwrap();
    repo.put("config.json", b"two").unwrap();
    let versions_of = |key: &str| moto.all_versions("sweep").into_iter().filter(|v| v.key == key).collect::<Vec<_>>();
    assert_eq!((versions_of("packs/aa/short").len(), versions_of("config.json").len()), (2, 2));

    // Inside the grace (time to undelete) nothing goes.
    let t = tempfile::tempdir().unwrap();
    let f = spec_file(t.path(), &spec);
    let kept = ok(&["repo", "sweep-versions", "--spec-file", p(&f), "--grace-seconds", "3600"]);
    assert!(kept.contains("removed 0 old versions") && kept.contains("kept 0 under retention"), "{kept}");
    assert_eq!(versions_of("packs/aa/short").len(), 2);

    // Once the short retention ended: its version and the replaced one go;
    // the pack still locked for an hour stays (and still refuses deletion).
    std::thread::sleep(std::time::Duration::from_secs(4));
    let swept = ok(&["repo", "sweep-versions", "--spec-file", p(&f), "--grace-seconds", "0"]);
    assert!(swept.contains("kept 1 under retention"), "{swept}");
    let short = versions_of("packs/aa/short");
    assert!(short.len() == 1 && short[0].delete_marker, "only the marker is left: {short:?}");
    let config = versions_of("config.json");
    assert!(config.len() == 1 && config[0].is_latest, "{config:?}");
    assert_eq!(repo.get("config.json").unwrap(), b"two", "the current object is untouched");
    let long = versions_of("packs/bb/long");
    let locked = long.iter().find(|v| !v.delete_marker).expect("the locked version stays");
    assert_eq!(moto.delete_object_version("sweep", "packs/bb/long", &locked.version_id).unwrap_err().error, "AccessDenied");
    assert_eq!(versions_of("packs/cc/current").len(), 1);
    let removed: u64 = swept.split("removed ").nth(1).and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(removed >= 2, "{swept}");
    println!("{}", swept.trim());
}
