//! One location of a restore point (3-2-1), on SQLite and PostgreSQL for
//! the catalog, with real snapshots in local repositories:
//!
//! * `DELETE /api/v1/restore-points/{id}/locations/{repository_id}` removes
//!   a copy: its manifest leaves that repository (its packs stay for GC),
//!   the restore point stays in its primary and restores' read there, and
//!   the removal is in the audit log; refused (409 with the reason) while
//!   the copy is immutable there (Sendense's date, the storage's Object
//!   Lock), while it is the last location (delete the restore point then),
//!   404 for a repository it is not in, 403 for viewers; in the OpenAPI
//!   document;
//! * `POST /api/v1/restore-points/{id}/locations/check` reads each
//!   location's manifest: a primary whose directory was deleted shows
//!   missing at once, and a restore asking for it is refused naming the copy.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sendense::catalog::backup_locations::{self, ChooseError, CopyDone};
use sendense::catalog::repositories::{ensure_local, open_datastore};
use sendense::db::entities::{audit_log, backup_storage_locks, backups, repositories};
use sendense::engine::backup::{backup, BackupOptions, DiskSource};
use sendense::engine::block_source::FileSource;
use sendense::engine::copy::{copy_snapshot, CopyOptions};
use sendense::engine::progress::Progress;
use sendense::engine::EngineError;
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::backups::{Backup, LocationRole, LocationState};
use shared_types::repositories::Repository;
use support::api::Api;
use support::{fixture, rows, Fixture};

#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_on_sqlite() {
    locations_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    locations_on(support::postgres_fixture(&cluster.url(), "locations").await).await;
}

/// A 4 MiB image of varied bytes.
fn image(path: &Path, seed: u8) {
    let body: Vec<u8> = (0..4u32 << 20).map(|i| ((i / 4096) as u8).wrapping_mul(31).wrapping_add(seed) ^ (i as u8)).collect();
    std::fs::write(path, body).unwrap();
}

/// Backs `img` up into `from` as `name`, copies it to `to`; records the
/// restore point `id` of `vm` with its primary in `from` and its copy in
/// `to` (the copy `immutable_until` there).
async fn point_with_copy(
    db: &sea_orm::DatabaseConnection,
    data: &Path,
    id: &str,
    vm: &str,
    img: &Path,
    from: &repositories::Model,
    to: &repositories::Model,
    immutable_until: Option<chrono::DateTime<Utc>>,
) -> backups::Model {
    let (d, f, t, i) = (data.to_path_buf(), from.clone(), to.clone(), img.to_path_buf());
    let name = format!("vm-{vm}");
    let n = name.clone();
    let (manifest, copied) = tokio::task::spawn_blocking(move || {
        let src = open_datastore(&d, &f).unwrap();
        let dst = open_datastore(&d, &t).unwrap();
        let disk = DiskSource { name: "disk0".into(), source: Arc::new(FileSource::open(&i).unwrap()), changed_ranges: None, cbt_token: None };
        let m = backup(&src, &BackupOptions { workers: 2, ..BackupOptions::new(&n) }, &[disk], &Progress::new()).unwrap();
        let c = copy_snapshot(&src, &dst, &n, &m.id, &CopyOptions { workers: 2, ..Default::default() }, &Progress::new()).unwrap();
        (m, c)
    })
    .await
    .unwrap();
    let row = backups::ActiveModel {
        id: Set(id.into()),
        vm_context_id: Set(vm.into()),
        job_id: Set(None),
        repository_id: Set(from.id.clone()),
        snapshot_name: Set(name),
        snapshot_id: Set(manifest.id.clone()),
        parent_snapshot_id: Set(None),
        backup_type: Set("full".into()),
        status: Set("available".into()),
        logical_bytes: Set(4 << 20),
        bytes_read: Set(4 << 20),
        bytes_written: Set(1 << 20),
        created_at: Set(Utc::now()),
        immutable_until: Set(None),
        verified_at: Set(None),
        verify_reason: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    backup_locations::record_primary(db, &row).await.unwrap();
    backup_locations::begin_copy(db, &row, &to.id, "j-copy").await.unwrap();
    let done = CopyDone { snapshot_name: copied.name.clone(), snapshot_id: copied.snapshot.clone(), immutable_until, bytes_sent: copied.bytes_sent };
    backup_locations::end_copy(db, &row.id, &to.id, Ok(done)).await.unwrap();
    row
}

fn manifest_in(data: &Path, repo: &repositories::Model, b: &backups::Model) -> Result<(), EngineError> {
    let ds = open_datastore(data, repo)?;
    ds.load_manifest(&b.snapshot_name, &b.snapshot_id).map(|_| ())
}

fn packs_in(dir: &Path) -> usize {
    walk(&dir.join("packs"))
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()).unwrap_or(0)
}

async fn locations_on(f: Fixture) {
    let primary = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let data = f.data.path().to_path_buf();
    let api = Api::admin(f).await;
    let db = api.f.state.db.clone();
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| json!({"name": name, "kind": "local", "path": dir.path().join(name).display().to_string()});
    let offsite: Repository = api.ok("POST", "/api/v1/repositories", Some(make("offsite")), StatusCode::CREATED).await;
    let site_a: Repository = api.ok("POST", "/api/v1/repositories", Some(make("site-a")), StatusCode::CREATED).await;
    let row = |id: String| {
        let db = db.clone();
        async move { repositories::Entity::find_by_id(id).one(&db).await.unwrap().unwrap() }
    };
    let (offsite_row, site_a_row) = (row(offsite.id.clone()).await, row(site_a.id.clone()).await);
    rows::platform(&db, "p1", "kvm-1").await;
    rows::vm(&db, "vm1", "p1", "web-01").await;
    rows::vm(&db, "vm2", "p1", "db-01").await;
    let img = dir.path().join("disk.raw");
    image(&img, 7);

    // b1: in the local repository, copied to offsite.
    let b1 = point_with_copy(&db, &data, "b1", "vm1", &img, &primary, &offsite_row, None).await;
    manifest_in(&data, &offsite_row, &b1).expect("the copy's manifest is at offsite");
    let packs_before = packs_in(Path::new(&offsite_row.path));
    assert!(packs_before > 0);
    let path = |b: &str, r: &str| format!("/api/v1/restore-points/{b}/locations/{r}");

    // Not there, not a restore point, viewers: refused.
    let e = api.rejected("DELETE", &path("b1", &site_a.id), None, StatusCode::NOT_FOUND, "location_not_found").await;
    assert!(e.message.contains("site-a") && e.message.contains("offsite"), "{e:?}");
    api.rejected("DELETE", &path("nope", &offsite.id), None, StatusCode::NOT_FOUND, "backup_not_found").await;
    let (_, viewer) = api.f.user_with_role("watcher", Role::Viewer).await;
    let reply = api.f.call("DELETE", &path("b1", &offsite.id), Some(&viewer), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // The copy goes: its manifest leaves offsite, its packs stay for GC, the primary stays.
    let after: Backup = api.ok("DELETE", &path("b1", &offsite.id), None, StatusCode::OK).await;
    let seen: Vec<(LocationRole, &str)> = after.locations.iter().map(|l| (l.role, l.repository_id.as_str())).collect();
    assert_eq!(seen, vec![(LocationRole::Primary, primary.id.as_str())]);
    let (d, o, b) = (data.clone(), offsite_row.clone(), b1.clone());
    let gone = tokio::task::spawn_blocking(move || manifest_in(&d, &o, &b)).await.unwrap();
    assert!(matches!(gone, Err(EngineError::SnapshotNotFound(_))), "the copy's manifest is gone: {gone:?}");
    assert_eq!(packs_in(Path::new(&offsite_row.path)), packs_before, "its packs wait for GC");
    let (d, p, b) = (data.clone(), primary.clone(), b1.clone());
    tokio::task::spawn_blocking(move || manifest_in(&d, &p, &b)).await.unwrap().expect("the primary is untouched");
    let listed: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    assert_eq!(listed.iter().find(|r| r.id == offsite.id).map(|r| r.backup_count), Some(0));
    let audit = audit_log::Entity::find().all(&db).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "backup.location.delete" && a.target.contains("offsite")),
        "{:?}",
        audit.iter().map(|a| (&a.action, &a.target)).collect::<Vec<_>>()
    );

    // Its last location: refused, pointing to deleting the restore point.
    let e = api.rejected("DELETE", &path("b1", &primary.id), None, StatusCode::CONFLICT, "last_location").await;
    assert!(e.message.contains("DELETE /api/v1/backup/b1"), "{e:?}");
    // So is a restore point recorded without location rows (its implicit primary).
    rows::vm(&db, "vm3", "p1", "app-01").await;
    let mut lone: backups::ActiveModel = backups::Entity::find_by_id("b1".to_string()).one(&db).await.unwrap().unwrap().into();
    lone.id = Set("b0".into());
    lone.vm_context_id = Set("vm3".into());
    lone.snapshot_id = Set("snap-b0".into());
    lone.insert(&db).await.unwrap();
    api.rejected("DELETE", &path("b0", &primary.id), None, StatusCode::CONFLICT, "last_location").await;

    // Immutable there (Sendense's date): refused with the date.
    let until = Utc::now() + Duration::days(2);
    image(&img, 9);
    let b2 = point_with_copy(&db, &data, "b2", "vm2", &img, &primary, &offsite_row, Some(until)).await;
    let e = api.rejected("DELETE", &path("b2", &offsite.id), None, StatusCode::CONFLICT, "location_immutable").await;
    assert!(e.message.contains("offsite") && e.message.contains(&until.format("%Y-%m-%d").to_string()), "{e:?}");
    let (d, o, b) = (data.clone(), offsite_row.clone(), b2.clone());
    tokio::task::spawn_blocking(move || manifest_in(&d, &o, &b)).await.unwrap().expect("the immutable copy stays");
    // Locked by the storage (the lock it last reported), even past Sendense's date.
    let mut loc: sendense::db::entities::backup_locations::ActiveModel =
        sendense::db::entities::backup_locations::Entity::find_by_id(("b2".to_string(), offsite.id.clone())).one(&db).await.unwrap().unwrap().into();
    loc.immutable_until = Set(None);
    loc.update(&db).await.unwrap();
    backup_storage_locks::ActiveModel {
        backup_id: Set("b2".into()),
        repository_id: Set(offsite.id.clone()),
        mode: Set("compliance".into()),
        locked_until: Set(until),
        checked_at: Set(Utc::now()),
    }
    .insert(&db)
    .await
    .unwrap();
    let e = api.rejected("DELETE", &path("b2", &offsite.id), None, StatusCode::CONFLICT, "location_immutable").await;
    assert!(e.message.contains("Object Lock") && e.message.contains("compliance"), "{e:?}");
    backup_storage_locks::Entity::delete_by_id(("b2".to_string(), offsite.id.clone())).exec(&db).await.unwrap();
    // Once free, the primary location may go while the copy holds it.
    let after: Backup = api.ok("DELETE", &path("b2", &primary.id), None, StatusCode::OK).await;
    assert_eq!(after.locations.iter().map(|l| (l.role, l.repository_id.as_str())).collect::<Vec<_>>(), vec![(LocationRole::Copy, offsite.id.as_str())]);

    // The route is documented.
    let doc: Value = api.f.call("GET", "/api/v1/openapi.json", None, None).await.json();
    for p in ["/restore-points/{id}/locations/{repository_id}", "/restore-points/{id}/locations/check", "/repositories/{id}/test"] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
    }

    // b5: written to site-a, copied to offsite; site-a's directory is deleted.
    image(&img, 11);
    let b5 = point_with_copy(&db, &data, "b5", "vm1", &img, &site_a_row, &offsite_row, None).await;
    // The wizard checks every time it opens: a check that changes nothing is not audited.
    let catalog = &db;
    let checks = move || async move { audit_log::Entity::find().all(catalog).await.unwrap().into_iter().filter(|a| a.action.contains("locations/check") || a.action == "backup.location.check").collect::<Vec<_>>() };
    let audited = audit_log::Entity::find().all(&db).await.unwrap().len();
    for _ in 0..2 {
        let healthy: Backup = api.ok("POST", "/api/v1/restore-points/b5/locations/check", None, StatusCode::OK).await;
        assert!(healthy.locations.iter().all(|l| l.state == LocationState::Present), "{:?}", healthy.locations);
    }
    assert_eq!(audit_log::Entity::find().all(&db).await.unwrap().len(), audited, "checks of a healthy restore point are not audited");
    std::fs::remove_dir_all(&site_a_row.path).unwrap();
    let listed: Backup = api.ok("GET", "/api/v1/backup/b5", None, StatusCode::OK).await;
    assert!(listed.locations.iter().all(|l| l.state == LocationState::Present), "the catalog has not read it yet: {:?}", listed.locations);
    // The wizard's check reads each location: the primary is missing at once, and that is audited.
    let checked: Backup = api.ok("POST", "/api/v1/restore-points/b5/locations/check", None, StatusCode::OK).await;
    let states: Vec<(LocationRole, LocationState)> = checked.locations.iter().map(|l| (l.role, l.state)).collect();
    assert_eq!(states, vec![(LocationRole::Primary, LocationState::Missing), (LocationRole::Copy, LocationState::Present)]);
    let found = checks().await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].action.as_str(), found[0].result.as_str(), found[0].actor.is_some()), ("backup.location.check", "ok", true), "{found:?}");
    assert!(found[0].target.contains("'site-a' (primary) present -> missing") && !found[0].target.contains("offsite"), "{found:?}");
    // Checked again, still missing: nothing changed, nothing audited.
    let _: Backup = api.ok("POST", "/api/v1/restore-points/b5/locations/check", None, StatusCode::OK).await;
    assert_eq!(checks().await.len(), 1);
    // A restore that asks for the primary is refused, naming the copy; asking for nothing reads the copy.
    match backup_locations::choose(&db, &data, &b5, Some(&site_a.id)).await {
        Err(ChooseError::Unreadable(m)) => assert!(m.contains("cannot be read from 'site-a'") && m.contains("'offsite'"), "{m}"),
        other => panic!("the deleted primary was chosen: {other:?}"),
    }
    let (_, repo) = backup_locations::choose(&db, &data, &b5, None).await.unwrap();
    assert_eq!(repo.id, offsite.id);
    // The copy cannot go: it is the last readable location.
    let e = api.rejected("DELETE", &path("b5", &offsite.id), None, StatusCode::CONFLICT, "last_location").await;
    assert!(e.message.contains("not readable") && e.message.contains("missing"), "{e:?}");
}
