//! A repository attached on a new server (the old one lost with its data
//! directory and catalog): its encrypted key given in the request, checked
//! against the repository (a wrong or malformed key refused naming `key`),
//! its restore points recorded for the VMs the new server manages, matched
//! by the platform's id of the VM (never by name: two VMs named alike keep
//! their own points), the others listed until their VM is managed and the
//! import runs again, a second copy of the directory recorded as copies,
//! and an imported restore point read back byte for byte with the key. On
//! SQLite and PostgreSQL.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use sea_orm::EntityTrait;
use sendense::db::entities::{backups, repositories, vm_contexts};
use sendense::engine::backup::{backup, BackupOptions, DiskSource};
use sendense::engine::block_source::FileSource;
use sendense::engine::progress::Progress;
use serde_json::{json, Value};
use shared_types::backups::BackupPage;
use shared_types::error::ErrorBody;
use shared_types::platform::{DiskFormat, DiskInfo, Firmware, GuestOs, PowerState, VmInfo};
use shared_types::repositories::Repository;
use shared_types::repository_setup::{RepositoryImport, RepositoryTest};
use support::api::Api;
use support::{fixture, rows, Fixture};

#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

fn vm_info(uuid: &str, name: &str) -> VmInfo {
    VmInfo {
        id: uuid.into(),
        name: name.into(),
        vcpus: 1,
        memory_mib: 512,
        power: PowerState::Running,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        role: None,
        disks: vec![DiskInfo { name: "vda".into(), capacity_bytes: 4 << 20, allocated_bytes: 4 << 20, format: DiskFormat::Raw, cbt: false }],
        nics: Vec::new(),
    }
}

fn image(path: &Path, seed: u8) {
    let body: Vec<u8> = (0..(4u32 << 20)).map(|i| ((i / 4096) as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    std::fs::write(path, body).unwrap();
}

/// A backup by the engine of `img` as snapshot `name` of the VM `vm`.
fn back_up(data: &Path, repo: &repositories::Model, name: &str, vm: VmInfo, img: &Path, parent: Option<String>) -> String {
    let ds = sendense::catalog::repositories::open_datastore(data, repo).unwrap();
    let mut opts = BackupOptions::new(name);
    opts.vm = Some(vm);
    opts.parent = parent;
    opts.workers = 1;
    let source = Arc::new(FileSource::open(img).unwrap());
    backup(&ds, &opts, &[DiskSource { name: "vda".into(), source, changed_ranges: None, cbt_token: None }], &Progress::new()).unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_repository_brings_its_restore_points_on_sqlite() {
    import_on(fixture().await, fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_repository_brings_its_restore_points_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    import_on(support::postgres_fixture(&cluster.url(), "import_old").await, support::postgres_fixture(&cluster.url(), "import_new").await).await;
}

async fn import_on(old: Fixture, new: Fixture) {
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site-a");
    let img = work.path().join("vda.raw");

    // The old server: an encrypted repository with two VMs both named 'web'
    // (three restore points of one, one of the other); its key exported.
    let old = Api::admin(old).await;
    let made: Repository = old.ok("POST", "/api/v1/repositories", Some(json!({"name": "site-a", "kind": "local", "path": site.display().to_string()})), StatusCode::CREATED).await;
    assert!(made.encrypted);
    let row = repositories::Entity::find_by_id(made.id.clone()).one(&old.f.state.db).await.unwrap().unwrap();
    let data = old.f.data.path().to_path_buf();
    let (r, d, i) = (row.clone(), data.clone(), img.clone());
    let (web_a, web_b) = tokio::task::spawn_blocking(move || {
        image(&i, 1);
        let a1 = back_up(&d, &r, "vm-old-a", vm_info("uuid-new-a", "web"), &i, None);
        image(&i, 2);
        let a2 = back_up(&d, &r, "vm-old-a", vm_info("uuid-new-a", "web"), &i, Some(a1.clone()));
        image(&i, 3);
        let a3 = back_up(&d, &r, "vm-old-a", vm_info("uuid-new-a", "web"), &i, Some(a2.clone()));
        image(&i, 9);
        let b1 = back_up(&d, &r, "vm-old-b", vm_info("uuid-new-b", "web"), &i, None);
        (vec![a1, a2, a3], vec![b1])
    })
    .await
    .unwrap();
    let key = old.call("GET", &format!("/api/v1/repositories/{}/key", made.id), None).await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.body);
    let key = String::from_utf8(key.bytes.clone()).unwrap();
    let wrong_key = {
        let other = work.path().join("other");
        let _: Repository = old.ok("POST", "/api/v1/repositories", Some(json!({"name": "other", "kind": "local", "path": other.display().to_string()})), StatusCode::CREATED).await;
        let list: Vec<Repository> = old.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
        let id = list.iter().find(|r| r.name == "other").unwrap().id.clone();
        String::from_utf8(old.call("GET", &format!("/api/v1/repositories/{id}/key"), None).await.bytes).unwrap()
    };

    // The new server manages web A (discovered anew: another catalog id, the same UUID).
    let new = Api::admin(new).await;
    let db = new.f.state.db.clone();
    rows::platform(&db, "kvm-new", "kvm-new").await;
    rows::vm(&db, "new-a", "kvm-new", "web").await;
    let body = |key: Option<&str>| {
        let mut b = json!({"name": "site-a", "kind": "local", "path": site.display().to_string()});
        if let Some(k) = key {
            b["key"] = json!(k);
        }
        b
    };

    // Without the key: the test says what to do; adding is refused.
    let t: RepositoryTest = new.ok("POST", "/api/v1/repositories/test", Some(body(None)), StatusCode::OK).await;
    assert!(!t.ok && t.attaches, "{t:?}");
    assert!(t.checks.iter().any(|c| !c.ok && c.message.contains("key is not on this server") && c.message.contains("sendense key export")), "{t:?}");
    let r = new.call("POST", "/api/v1/repositories", Some(body(None))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Another repository's key, and something that is no key: refused, naming `key`.
    for (k, says) in [(wrong_key.as_str(), "does not open this repository"), ("{\"not\": \"a key\"}", "not a Sendense key file")] {
        let r = new.call("POST", "/api/v1/repositories", Some(body(Some(k)))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let e: ErrorBody = r.json();
        assert!(e.details.iter().any(|d| d.field == "key") && e.message.contains(says), "{}", r.body);
        assert!(!r.body.contains(&key), "the key is never answered");
    }
    assert!(repositories::Entity::find().all(&db).await.unwrap().is_empty(), "nothing saved by a refused add");
    // A key for a location that holds no repository: refused.
    let empty = json!({"name": "fresh", "kind": "local", "path": work.path().join("fresh").display().to_string(), "key": key});
    let r = new.call("POST", "/api/v1/repositories", Some(empty)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

    // With its key: attached, web A's three restore points recorded for new-a.
    let t: RepositoryTest = new.ok("POST", "/api/v1/repositories/test", Some(body(Some(&key))), StatusCode::OK).await;
    assert!(t.ok && t.attaches, "{t:?}");
    let attached: Repository = new.ok("POST", "/api/v1/repositories", Some(body(Some(&key))), StatusCode::CREATED).await;
    assert!(attached.encrypted);
    let page: BackupPage = new.ok("GET", "/api/v1/backup/list?vm=new-a", None, StatusCode::OK).await;
    let mut ids: Vec<String> = page.items.iter().map(|b| b.snapshot_id.clone()).collect();
    ids.sort();
    let mut want = web_a.clone();
    want.sort();
    assert_eq!(ids, want, "web A's restore points, and only them");
    let all = backups::Entity::find().all(&db).await.unwrap();
    assert_eq!(all.len(), 3, "web B (same name, other UUID) is not given to new-a");
    assert_eq!(all.iter().filter(|b| b.parent_snapshot_id.is_some()).count(), 2, "the chain's links kept");

    // The same import again: nothing new; web B listed as not managed.
    let again: RepositoryImport = new.ok("POST", &format!("/api/v1/repositories/{}/import", attached.id), None, StatusCode::OK).await;
    assert_eq!((again.snapshots, again.recorded, again.known, again.copies), (4, 0, 3, 0), "{again:?}");
    assert_eq!(again.unmatched.len(), 1, "{again:?}");
    assert_eq!((again.unmatched[0].name.as_str(), again.unmatched[0].platform_vm_id.as_deref(), again.unmatched[0].restore_points), ("web", Some("uuid-new-b"), 1));

    // Web B managed now (discovered: its UUID): the import records its point.
    rows::vm(&db, "new-b", "kvm-new", "web").await;
    assert_eq!(vm_contexts::Entity::find_by_id("new-b".to_string()).one(&db).await.unwrap().unwrap().platform_vm_id, "uuid-new-b");
    let third: RepositoryImport = new.ok("POST", &format!("/api/v1/repositories/{}/import", attached.id), None, StatusCode::OK).await;
    assert_eq!((third.recorded, third.known, third.unmatched.len()), (1, 3, 0), "{third:?}");
    let page: BackupPage = new.ok("GET", "/api/v1/backup/list?vm=new-b", None, StatusCode::OK).await;
    assert_eq!(page.items.iter().map(|b| b.snapshot_id.clone()).collect::<Vec<_>>(), web_b);

    // A second copy of the directory (synced offsite) attached: copies, not new points.
    let mirror = work.path().join("site-a-mirror");
    let out = std::process::Command::new("cp").arg("-a").arg(&site).arg(&mirror).status().unwrap();
    assert!(out.success());
    let mirrored: Repository =
        new.ok("POST", "/api/v1/repositories", Some(json!({"name": "mirror", "kind": "local", "path": mirror.display().to_string()})), StatusCode::CREATED).await;
    assert_eq!(backups::Entity::find().all(&db).await.unwrap().len(), 4, "no second restore point for a copy");
    let fourth: RepositoryImport = new.ok("POST", &format!("/api/v1/repositories/{}/import", mirrored.id), None, StatusCode::OK).await;
    assert_eq!((fourth.known, fourth.copies, fourth.recorded), (4, 0, 0), "recorded as copies when attached: {fourth:?}");
    let point: Value = new.ok("GET", &format!("/api/v1/backup/{}", page.items[0].id), None, StatusCode::OK).await;
    let located = point.to_string();
    assert!(located.contains(&mirrored.id) && located.contains(&attached.id), "both locations listed: {point}");

    // The newest restore point of web A reads back as it was written, with the imported key.
    let newest = backups::Entity::find().all(&db).await.unwrap().into_iter().find(|b| b.snapshot_id == web_a[2]).unwrap();
    let repo = repositories::Entity::find_by_id(attached.id.clone()).one(&db).await.unwrap().unwrap();
    let (nd, out, i) = (new.f.data.path().to_path_buf(), work.path().join("back.raw"), img.clone());
    tokio::task::spawn_blocking(move || {
        image(&i, 3);
        let ds = sendense::catalog::repositories::open_datastore(&nd, &repo).unwrap();
        sendense::engine::restore::restore(&ds, &newest.snapshot_name, &newest.snapshot_id, Some("vda"), &out, 1, &Progress::new()).unwrap();
        assert!(std::fs::read(&out).unwrap() == std::fs::read(&i).unwrap(), "restored bytes equal the backed-up image");
    })
    .await
    .unwrap();

    // Only admins import.
    let operator = new.f.user_with_role("oper", shared_types::auth::Role::Operator).await.1;
    let r = new.f.call("POST", &format!("/api/v1/repositories/{}/import", attached.id), Some(&operator), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}
