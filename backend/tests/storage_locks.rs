//! The catalog's record of restore points the storage locks (S3 Object
//! Lock), on SQLite and PostgreSQL: what `catalog::storage_locks::record`
//! stores is what the restore point API answers as `lock` (the storage's
//! mode and date), a point without a storage lock shows Sendense's own
//! `immutable_until`, a record made again replaces the first, `None` removes
//! it, and a lock recorded for another repository (a copy) is not the
//! point's own but its location's there (each location answers its own
//! lock). The lock and the undelete endpoint are in the OpenAPI document.

use axum::http::StatusCode;
use chrono::{Duration, SubsecRound, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::catalog::storage_locks;
use sendense::db::entities::{backup_locations, backup_storage_locks, backups};
use sendense::engine::repository::{LockMode, Retention};
use shared_types::backups::{Backup, BackupPage, LocationRole, LocationState, LockEnforcer};
use shared_types::repository_setup::ObjectLockMode;

mod support;
use support::api::Api;
use support::{rows, Fixture};

#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

async fn locks_on(f: Fixture) {
    let db = f.state.db.clone();
    let repo = ensure_local(&db, f.data.path()).await.unwrap();
    rows::platform(&db, "p1", "kvm-prod").await;
    rows::vm(&db, "vm1", "p1", "web-01").await;
    // Whole seconds: both catalogs keep them exactly.
    let now = Utc::now().trunc_subsecs(0);
    let (sendense_until, storage_until) = (now + Duration::days(2), now + Duration::days(3));
    rows::point(&db, rows::Point { immutable_until: Some(sendense_until), ..rows::Point::new("b-storage", "vm1", &repo.id) }).await;
    rows::point(&db, rows::Point { immutable_until: Some(sendense_until), ..rows::Point::new("b-sendense", "vm1", &repo.id) }).await;
    rows::point(&db, rows::Point::new("b-none", "vm1", &repo.id)).await;

    let first = Retention { mode: LockMode::Governance, until: now + Duration::days(1) };
    storage_locks::record(&db, "b-storage", &repo.id, Some(first), now).await.unwrap();
    // Read again (a verify): the new reading replaces the first.
    let second = Retention { mode: LockMode::Compliance, until: storage_until };
    storage_locks::record(&db, "b-storage", &repo.id, Some(second), now + Duration::minutes(5)).await.unwrap();
    // A lock read in another repository (a copy) is not the point's own.
    storage_locks::record(&db, "b-sendense", "other-repo", Some(first), now).await.unwrap();
    // No retention read: no row.
    storage_locks::record(&db, "b-none", &repo.id, Some(first), now).await.unwrap();
    storage_locks::record(&db, "b-none", &repo.id, None, now).await.unwrap();
    let stored = backup_storage_locks::Entity::find().all(&db).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");

    let api = Api::admin(f).await;
    let page: BackupPage = api.ok("GET", "/api/v1/backup/list?vm=vm1", None, StatusCode::OK).await;
    let by_id = |id: &str| page.items.iter().find(|b| b.id == id).unwrap_or_else(|| panic!("{id}")).clone();
    let locked = by_id("b-storage").lock.expect("a storage lock");
    assert_eq!((locked.enforced_by, locked.mode, locked.until), (LockEnforcer::Storage, Some(ObjectLockMode::Compliance), storage_until));
    assert_eq!(locked.checked_at, Some(now + Duration::minutes(5)));
    let own = by_id("b-sendense").lock.expect("Sendense's lock");
    assert_eq!((own.enforced_by, own.mode, own.until, own.checked_at), (LockEnforcer::Sendense, None, sendense_until, None));
    assert_eq!(by_id("b-none").lock, None);
    // One restore point answers the same.
    let one: Backup = api.ok("GET", "/api/v1/backup/b-storage", None, StatusCode::OK).await;
    assert_eq!(one.lock.map(|l| (l.enforced_by, l.until)), Some((LockEnforcer::Storage, storage_until)));
    // The wire form.
    let raw: serde_json::Value = api.ok("GET", "/api/v1/backup/b-storage", None, StatusCode::OK).await;
    assert_eq!((raw["lock"]["enforced_by"].as_str(), raw["lock"]["mode"].as_str()), (Some("storage"), Some("compliance")), "{raw}");

    // Each location shows its own lock: the copy in 'other-repo' the
    // storage's lock read there, the primary Sendense's own.
    let copy_until = now + Duration::days(4);
    let b = backups::Entity::find_by_id("b-sendense").one(&api.f.state.db).await.unwrap().unwrap();
    sendense::catalog::backup_locations::record_primary(&api.f.state.db, &b).await.unwrap();
    backup_locations::ActiveModel {
        backup_id: Set("b-sendense".into()),
        repository_id: Set("other-repo".into()),
        role: Set(LocationRole::Copy.as_str().into()),
        state: Set(LocationState::Present.as_str().into()),
        snapshot_name: Set("vm-vm1".into()),
        snapshot_id: Set("snap-b-sendense".into()),
        immutable_until: Set(Some(copy_until)),
        copied_at: Set(Some(now)),
        bytes_sent: Set(0),
        job_id: Set(None),
        error: Set(None),
        updated_at: Set(now),
    }
    .insert(&api.f.state.db)
    .await
    .unwrap();
    let page: BackupPage = api.ok("GET", "/api/v1/backup/list?vm=vm1", None, StatusCode::OK).await;
    let point = page.items.iter().find(|b| b.id == "b-sendense").unwrap();
    let at = |repo: &str| point.locations.iter().find(|l| l.repository_id == repo).unwrap_or_else(|| panic!("{repo} in {:?}", point.locations)).lock.clone();
    let copy = at("other-repo").expect("the copy's lock");
    assert_eq!((copy.enforced_by, copy.mode, copy.until, copy.checked_at), (LockEnforcer::Storage, Some(ObjectLockMode::Governance), first.until, Some(now)));
    let primary = at(&repo.id).expect("the primary's lock");
    assert_eq!((primary.enforced_by, primary.until), (LockEnforcer::Sendense, sendense_until));
    assert_eq!(point.lock.as_ref().map(|l| l.enforced_by), Some(LockEnforcer::Sendense), "the point's own lock is its primary's");
    let b_storage = page.items.iter().find(|b| b.id == "b-storage").unwrap();
    assert_eq!(b_storage.locations[0].lock.as_ref().map(|l| (l.enforced_by, l.until)), Some((LockEnforcer::Storage, storage_until)));
    let none = page.items.iter().find(|b| b.id == "b-none").unwrap();
    assert_eq!(none.locations[0].lock, None);
    // A location that goes takes the lock read there with it; the rest go
    // with the restore point (cascade).
    storage_locks::record(&api.f.state.db, "b-sendense", &repo.id, Some(second), now).await.unwrap();
    assert!(!sendense::catalog::backup_locations::remove(&api.f.state.db, &b, "other-repo").await.unwrap(), "the primary still holds it");
    let left = backup_storage_locks::Entity::find().all(&api.f.state.db).await.unwrap();
    assert!(!left.iter().any(|l| l.backup_id == "b-sendense" && l.repository_id == "other-repo"), "{left:?}");
    assert!(left.iter().any(|l| l.backup_id == "b-sendense" && l.repository_id == repo.id), "{left:?}");
    backups::Entity::delete_by_id("b-sendense").exec(&api.f.state.db).await.unwrap();
    let left = backup_storage_locks::Entity::find().all(&api.f.state.db).await.unwrap();
    assert!(left.iter().all(|l| l.backup_id != "b-sendense"), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_locks_are_what_restore_points_show_on_sqlite() {
    locks_on(support::fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_locks_are_what_restore_points_show_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    locks_on(support::postgres_fixture(&cluster.url(), "locks").await).await;
}

#[tokio::test]
async fn locks_and_undelete_are_in_the_openapi_document() {
    let f = support::fixture().await;
    let doc: serde_json::Value = f.call("GET", "/api/v1/openapi.json", None, None).await.json();
    let undelete = &doc["paths"]["/repositories/{id}/undelete"]["post"];
    assert!(undelete.is_object(), "{}", doc["paths"]);
    assert!(undelete["responses"]["422"].is_object() && undelete["responses"]["200"].is_object(), "{undelete}");
    let schemas = &doc["components"]["schemas"];
    for name in ["UndeleteRequest", "UndeleteReport", "UndeletedSnapshot", "RestorePointLock", "LockEnforcer"] {
        assert!(schemas[name].is_object(), "{name} missing from the schemas");
    }
    assert!(schemas["Backup"]["properties"]["lock"].is_object(), "{}", schemas["Backup"]);
}
