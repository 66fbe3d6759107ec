//! Immutability enforced by the storage (issue 18 item 4) on a real S3
//! server with Object Lock (moto, signatures checked): an immutable backup
//! locks every object of its restore point, and deleting any version of
//! them straight through the S3 API (boto3, DeleteObject with VersionId) is
//! refused by the storage; a reused pack is not locked again while its
//! retention band covers the new restore point; a bucket without Object
//! Lock fails such a backup before anything is written, and the repository
//! test says so naming the bucket. After a plain DELETE of every key (delete
//! markers), `undelete` brings the restore points back.

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
use sendense::engine::manifest::Manifest;
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
