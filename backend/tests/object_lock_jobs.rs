//! Restore points of an S3 repository with Object Lock through the server
//! (issue 18), on the real demo lab and a real S3 server with Object Lock
//! (moto, signatures checked):
//!
//! * a backup job records the storage's own lock of the restore point: the
//!   API answers `lock: {enforced_by: "storage", mode, until}` with `until`
//!   equal to the retain-until date boto3 reads on the manifest's version;
//! * the verify job runs the "ensure retention" repair: objects a crash left
//!   without retention are locked (a delete by VersionId is then refused);
//! * someone with the bucket's credentials deletes the manifests (plain
//!   DELETEs: delete markers) and the catalog loses a row; `POST
//!   /repositories/{id}/undelete` (admins, audited) removes the markers, the
//!   damaged point is available again, the lost one recorded again with its
//!   lock, and it restores to the DR host byte for byte;
//! * a local repository and a bucket without versioning answer 422 saying
//!   why; an operator gets 403;
//! * the GC job's version sweep keeps the undelete window.

use std::process::Command;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use sea_orm::EntityTrait;
use sendense::catalog::repositories::{ensure_local, open_datastore};
use sendense::db::entities::{audit_log, backups, repositories};
use sendense::engine::backup::{self, BackupOptions, DiskSource};
use sendense::engine::block_source::FileSource;
use sendense::engine::manifest::manifest_key;
use sendense::engine::progress::Progress;
use sendense::engine::repository::Repository;
use sendense::repos::object::ObjectRepository;
use sendense::repos::RepoSpec;
use serde_json::{json, Value};
use shared_types::backups::{Backup, BackupStatus, LockEnforcer};
use shared_types::jobs::Job;
use shared_types::repositories::{Repository as RepositoryInfo, UndeleteReport};
use shared_types::repository_setup::ObjectLockMode;

mod support;

use support::api::Api;
use support::kvm::TestHost;
use support::object_servers::{Moto, MOTO_REGION};

const BUCKET: &str = "sendense-locked";
const PREFIX: &str = "site-a";

async fn backup_job(api: &Api, vm: &str, repository: &str, backup_type: &str) -> Value {
    let done = api.backup_into(vm, backup_type, repository, 300).await;
    assert_eq!(done["job"]["status"], "completed", "{}", done["job"]);
    done
}

/// The retention boto3 reads on the current version of `key` (under the prefix).
fn storage_retention(moto: &Moto, key: &str) -> (Option<String>, Option<DateTime<Utc>>) {
    let full = format!("{PREFIX}/{key}");
    let v = moto.all_versions(BUCKET).into_iter().find(|v| v.key == full && v.is_latest && !v.delete_marker).unwrap_or_else(|| panic!("no current {full}"));
    let r = moto.retention(BUCKET, &full, &v.version_id);
    (r.mode, r.until.map(|u| DateTime::parse_from_rfc3339(&u).unwrap().with_timezone(&Utc)))
}

/// The point's lock is the storage's, in compliance mode, until the date boto3 reads.
fn assert_storage_lock(moto: &Moto, b: &Backup) {
    let lock = b.lock.as_ref().unwrap_or_else(|| panic!("no lock on {b:?}"));
    assert_eq!((lock.enforced_by, lock.mode), (LockEnforcer::Storage, Some(ObjectLockMode::Compliance)), "{lock:?}");
    let (mode, until) = storage_retention(moto, &manifest_key(&b.snapshot_name, &b.snapshot_id));
    assert_eq!(mode.as_deref(), Some("COMPLIANCE"));
    assert_eq!(lock.until.timestamp_millis(), until.unwrap().timestamp_millis(), "the API's date is the storage's: {lock:?}");
    assert!(lock.checked_at.is_some());
}

fn spec(moto: &Moto, bucket: &str) -> RepoSpec {
    let (k, s) = moto.access_key();
    RepoSpec::S3 {
        endpoint: Some(moto.endpoint()),
        region: MOTO_REGION.into(),
        bucket: bucket.into(),
        prefix: PREFIX.into(),
        access_key_id: k.into(),
        secret_access_key: s.into(),
        virtual_hosted: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_restore_points_show_the_storages_date_are_repaired_by_verify_and_come_back_after_undelete() {
    let dir = tempfile::tempdir().unwrap();
    let (lab_dir, source_disk) = support::kvm::lab_in(dir.path()).await;
    let f = support::fixture().await;
    let data = f.data.path().to_path_buf();
    let local = ensure_local(&f.state.db, &data).await.unwrap();
    let api = Api::admin(f).await;
    let moto = Moto::start();
    moto.create_bucket(BUCKET, true);
    moto.create_bucket("sendense-unversioned", false);
    let (access_key_id, secret) = (moto.access_key().0.to_owned(), moto.access_key().1.to_owned());
    let s3: RepositoryInfo = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "locked-s3", "kind": "s3", "endpoint": moto.endpoint(), "region": MOTO_REGION, "bucket": BUCKET,
                        "prefix": PREFIX, "access_key_id": access_key_id, "secret_access_key": secret,
                        "immutable_days": 1, "object_lock_mode": "compliance"})),
            StatusCode::CREATED,
        )
        .await;
    let row = repositories::Entity::find_by_id(s3.id.clone()).one(&api.f.state.db).await.unwrap().unwrap();

    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);

    // --- A full and an incremental: each point shows the storage's lock date.
    let full = backup_job(&api, &vm, &s3.id, "full").await;
    assert!(full.to_string().contains("the storage locks the restore point until"), "{full}");
    backup_job(&api, &vm, &s3.id, "incremental").await;
    let listed = api.points(&vm).await;
    assert_eq!(listed.len(), 2);
    for b in &listed {
        assert_storage_lock(&moto, b);
    }
    let (older, newer) = if listed[0].created_at < listed[1].created_at { (listed[0].clone(), listed[1].clone()) } else { (listed[1].clone(), listed[0].clone()) };

    // --- A crash between writes and their locks: a snapshot whose objects
    // have no retention (written without the storage lock). Verify repairs.
    let img = dir.path().join("img.raw");
    std::fs::write(&img, (0..4u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    let (d, r, i) = (data.clone(), row.clone(), img.clone());
    let crashed = tokio::task::spawn_blocking(move || {
        let ds = open_datastore(&d, &r).unwrap();
        let mut opts = BackupOptions::new("img-crashed");
        opts.immutable_days = Some(1);
        let disks = [DiskSource { name: "disk0".into(), source: Arc::new(FileSource::open(&i).unwrap()), changed_ranges: None, cbt_token: None }];
        backup::backup(&ds, &opts, &disks, &Progress::new()).unwrap()
    })
    .await
    .unwrap();
    let crashed_key = manifest_key("img-crashed", &crashed.id);
    assert_eq!(storage_retention(&moto, &crashed_key).0, None, "written without retention");
    let verify: Job = api.ok("POST", &format!("/api/v1/repositories/{}/verify", s3.id), None, StatusCode::ACCEPTED).await;
    let verified = api.wait(&verify.id, 300).await;
    assert_eq!(verified["job"]["status"], "completed", "{verified}");
    let vlog = verified.to_string();
    assert!(vlog.contains("are locked again (compliance mode)") && vlog.contains("restore point(s) locked by the storage, dates re-read"), "{vlog}");
    assert_eq!(storage_retention(&moto, &crashed_key).0.as_deref(), Some("COMPLIANCE"));
    // Every object of the restore points is locked; leases, temporary
    // objects and the index log are not (the log only saves listings: a
    // deleted segment makes the next open list pack-index/ instead).
    let unlocked = |k: &str| k.contains("/locks/") || k.contains("/tmp/") || k.contains("/index-log/");
    for v in moto.all_versions(BUCKET).into_iter().filter(|v| !v.delete_marker && !unlocked(&v.key)) {
        let r = moto.retention(BUCKET, &v.key, &v.version_id);
        assert_eq!(r.mode.as_deref(), Some("COMPLIANCE"), "{} has {r:?} after the repair", v.key);
    }
    let v = moto.all_versions(BUCKET).into_iter().find(|v| v.key == format!("{PREFIX}/{crashed_key}")).unwrap();
    let refused = moto.delete_object_version(BUCKET, &v.key, &v.version_id).expect_err("the repaired manifest's version cannot be deleted");
    assert_eq!(refused.error, "AccessDenied");

    // --- Someone with the credentials deletes both manifests (delete
    // markers), and the catalog loses the newer point.
    let attack = Utc::now() - Duration::seconds(2);
    let (s, keys) = (spec(&moto, BUCKET), [manifest_key(&older.snapshot_name, &older.snapshot_id), manifest_key(&newer.snapshot_name, &newer.snapshot_id)]);
    tokio::task::spawn_blocking(move || {
        let repo = ObjectRepository::open(&s).unwrap();
        for k in &keys {
            repo.delete(k).unwrap();
        }
    })
    .await
    .unwrap();
    let verify: Job = api.ok("POST", &format!("/api/v1/repositories/{}/verify", s3.id), None, StatusCode::ACCEPTED).await;
    api.wait(&verify.id, 300).await;
    let b: Backup = api.ok("GET", &format!("/api/v1/backup/{}", older.id), None, StatusCode::OK).await;
    assert_eq!(b.status, BackupStatus::Corrupt, "verify finds the manifest gone: {b:?}");
    backups::Entity::delete_by_id(newer.id.clone()).exec(&api.f.state.db).await.unwrap();
    assert_eq!(api.points(&vm).await.len(), 1);

    // --- Undelete: viewers and operators cannot; stores without versions say why.
    let e = api.refused(&format!("/api/v1/repositories/{}/undelete", local.id), json!({"since": attack}), StatusCode::UNPROCESSABLE_ENTITY, "repository_not_versioned").await;
    assert!(e.contains("keeps no deleted versions") && e.contains("local"), "{e}");
    let plain: RepositoryInfo = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "plain-s3", "kind": "s3", "endpoint": moto.endpoint(), "region": MOTO_REGION, "bucket": "sendense-unversioned",
                        "access_key_id": moto.access_key().0, "secret_access_key": moto.access_key().1})),
            StatusCode::CREATED,
        )
        .await;
    let e = api.refused(&format!("/api/v1/repositories/{}/undelete", plain.id), json!({"since": attack}), StatusCode::UNPROCESSABLE_ENTITY, "repository_not_versioned").await;
    assert!(e.contains("bucket 'sendense-unversioned' has no versioning"), "{e}");
    let bad = api.call("POST", &format!("/api/v1/repositories/{}/undelete", s3.id), Some(json!({"since": "yesterday"}))).await;
    assert_eq!(bad.status.as_u16() / 100, 4, "{}", bad.body);
    let (_, operator) = api.f.user_with_role("olga", shared_types::auth::Role::Operator).await;
    let denied = api.f.call("POST", &format!("/api/v1/repositories/{}/undelete", s3.id), Some(&operator), Some(json!({"since": attack}))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);

    let report: UndeleteReport = api.ok("POST", &format!("/api/v1/repositories/{}/undelete", s3.id), Some(json!({"since": attack})), StatusCode::OK).await;
    assert_eq!(report.objects_restored, 2, "{report:?}");
    let by_id = |id: &str| report.snapshots.iter().find(|s| s.snapshot_id == id).unwrap_or_else(|| panic!("{id} not in {report:?}")).clone();
    let (o, n) = (by_id(&older.snapshot_id), by_id(&newer.snapshot_id));
    assert_eq!((o.backup_id.as_deref(), o.recorded), (Some(older.id.as_str()), false), "{o:?}");
    assert!(n.recorded && n.backup_id.is_some(), "the lost point is recorded again: {n:?}");
    let back = api.points(&vm).await;
    assert_eq!(back.len(), 2);
    let older_back = back.iter().find(|b| b.id == older.id).unwrap();
    assert_eq!(older_back.status, BackupStatus::Available, "{older_back:?}");
    let newer_back = back.iter().find(|b| Some(b.id.as_str()) == n.backup_id.as_deref()).unwrap().clone();
    assert_eq!((newer_back.snapshot_id.as_str(), newer_back.parent_snapshot_id.as_deref()), (newer.snapshot_id.as_str(), Some(older.snapshot_id.as_str())));
    assert_storage_lock(&moto, &newer_back);
    let audit = audit_log::Entity::find().all(&api.f.state.db).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "repository.undelete" && a.target.starts_with("locked-s3 since ")), "undelete is audited");

    // The point that came back restores to the DR host byte for byte.
    let job: Job = api
        .ok("POST", "/api/v1/restore/start", Some(json!({"backup_id": newer_back.id, "target_platform_id": dr.id, "name": "web-01-undeleted"})), StatusCode::ACCEPTED)
        .await;
    let done = api.wait(&job.id, 300).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let restored = dr_host.disk_files("web-01-undeleted")[0].1.clone();
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(&source_disk).arg(&restored).status().unwrap();
    assert!(cmp.success(), "the undeleted restore point restores web-01's disk");

    // GC then sweeps old versions, keeping the undelete window: nothing a
    // restore point needs goes, and both points still restore.
    let gc: Job = api.ok("POST", &format!("/api/v1/repositories/{}/gc", s3.id), None, StatusCode::ACCEPTED).await;
    let gc = api.wait(&gc.id, 300).await;
    assert_eq!(gc["job"]["status"], "completed", "{gc}");
    assert!(gc.to_string().contains("superseded in the last 7 days (time to undelete)"), "{gc}");
    for b in api.points(&vm).await {
        assert_storage_lock(&moto, &b);
    }

    // --- A copy into the bucket: its location shows the storage's lock of
    // the copy's manifest there (the primary's stays Sendense's own), and a
    // verify of the bucket reads it again.
    backup_job(&api, &vm, &local.id, "full").await;
    let point_id = api.points(&vm).await.into_iter().find(|b| b.repository.id == local.id).expect("the local restore point").id;
    let copy: Job = api
        .ok("POST", &format!("/api/v1/restore-points/{point_id}/copy"), Some(json!({"repository_id": s3.id, "immutable_days": 1})), StatusCode::ACCEPTED)
        .await;
    let copied = api.wait(&copy.id, 300).await;
    assert_eq!(copied["job"]["status"], "completed", "{copied}");
    assert!(copied.to_string().contains("the storage locks the copy in 'locked-s3' until"), "{copied}");
    let assert_copy_lock = |b: &Backup| {
        let here = b.locations.iter().find(|l| l.repository_id == s3.id).unwrap_or_else(|| panic!("no copy in {:?}", b.locations));
        let lock = here.lock.as_ref().unwrap_or_else(|| panic!("no lock on the copy: {here:?}"));
        assert_eq!((lock.enforced_by, lock.mode), (LockEnforcer::Storage, Some(ObjectLockMode::Compliance)), "{lock:?}");
        let (mode, until) = storage_retention(&moto, &manifest_key(&b.snapshot_name, &b.snapshot_id));
        assert_eq!(mode.as_deref(), Some("COMPLIANCE"));
        assert_eq!(lock.until.timestamp_millis(), until.unwrap().timestamp_millis(), "the copy's date is the storage's: {lock:?}");
        let primary = b.locations.iter().find(|l| l.repository_id == local.id).unwrap_or_else(|| panic!("no primary in {:?}", b.locations));
        assert_ne!(primary.lock.as_ref().map(|l| l.enforced_by), Some(LockEnforcer::Storage), "the primary is not locked by the bucket: {primary:?}");
        assert_ne!(b.lock.as_ref().map(|l| l.enforced_by), Some(LockEnforcer::Storage), "the point's own lock is its primary's: {:?}", b.lock);
    };
    let point = api.points(&vm).await.into_iter().find(|b| b.id == point_id).unwrap();
    assert_copy_lock(&point);
    let raw: Value = api.ok("GET", &format!("/api/v1/backup/list?vm={vm}"), None, StatusCode::OK).await;
    let wire = raw["items"].as_array().unwrap().iter().find(|b| b["id"] == point_id.as_str()).unwrap().clone();
    let wire_copy = wire["locations"].as_array().unwrap().iter().find(|l| l["repository_id"] == s3.id.as_str()).unwrap().clone();
    assert_eq!(wire_copy["lock"]["enforced_by"], "storage", "{wire_copy}");
    sendense::db::entities::backup_storage_locks::Entity::delete_many().exec(&api.f.state.db).await.unwrap();
    let verify: Job = api.ok("POST", &format!("/api/v1/repositories/{}/verify", s3.id), None, StatusCode::ACCEPTED).await;
    assert_eq!(api.wait(&verify.id, 300).await["job"]["status"], "completed");
    assert_copy_lock(&api.points(&vm).await.into_iter().find(|b| b.id == point_id).unwrap());
}
