//! 3-2-1 copies, on SQLite and PostgreSQL for the catalog, and end to end on
//! the demo lab with the real engine:
//!
//! * copy targets on policies and flows: validated (an unknown repository,
//!   the flow's own repository: 422 naming `copy_target.repository_id`), a
//!   flow that follows a policy takes its copy target and cannot set its
//!   own (409), a policy's change reaches its flows;
//! * restore points answer with their locations (primary and copies, by
//!   repository name); deleting one is refused while a copy is immutable,
//!   naming the copy's repository and date; retention at a repository
//!   touches only the restore points in the role asked (primaries written
//!   there, or copies made there), and a restore point stays while any
//!   location holds it;
//! * the migration gives every existing restore point its primary location;
//! * end to end: web-01 backed up by a flow with a copy target (a second
//!   local repository): the copy job runs after the backup, verified at the
//!   target; the primary repository's directory is deleted; the VM restored
//!   from the copy has the same disks byte for byte, and a file-level
//!   restore session on it downloads the same files as before.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use sendense::catalog::backup_locations;
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::{backup_locations as locations, backups};
use sendense::engine::progress::Progress;
use sendense::lab::{self, InitOptions};
use sendense::runner::retention;
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::backups::{Backup, LocationRole, LocationState};
use shared_types::error::ErrorBody;
use shared_types::flow::Flow;
use shared_types::jobs::{Job, JobPage};
use shared_types::policies::Policy;
use shared_types::recovery::CompatibilityReport;
use shared_types::repositories::Repository;
use shared_types::restore::Mount;
use support::api::Api;
use support::kvm::TestHost;
use support::{fixture, rows, Fixture};

// The migrations' throw-away PostgreSQL server, shared rather than copied.
#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_catalog_on_sqlite() {
    copy_catalog_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_catalog_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    copy_catalog_on(support::postgres_fixture(&cluster.url(), "copies").await).await;
    backfill_on(&format!("{}/backfill", cluster.url().trim_end_matches("/postgres")), Some(&cluster.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_gives_existing_restore_points_their_primary_location() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("catalog.db").display());
    backfill_on(&url, None).await;
}


fn names_field(e: &ErrorBody, field: &str) -> bool {
    e.details.iter().any(|d| d.field == field)
}


async fn location(db: &sea_orm::DatabaseConnection, backup: &str, repo: &str, role: LocationRole, immutable_until: Option<chrono::DateTime<Utc>>) {
    locations::ActiveModel {
        backup_id: Set(backup.into()),
        repository_id: Set(repo.into()),
        role: Set(role.as_str().into()),
        state: Set(LocationState::Present.as_str().into()),
        snapshot_name: Set("copied-name".into()),
        snapshot_id: Set(format!("snap-{backup}")),
        immutable_until: Set(immutable_until),
        copied_at: Set(Some(Utc::now())),
        bytes_sent: Set(4096),
        job_id: Set(None),
        error: Set(None),
        updated_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .unwrap();
}

async fn copy_catalog_on(f: Fixture) {
    let primary = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let db = api.f.state.db.clone();
    let second_dir = tempfile::tempdir().unwrap();
    let make = |name: &str| json!({"name": name, "kind": "local", "path": second_dir.path().join(name).display().to_string(), "encrypted": false});
    let site_b: Repository = api.ok("POST", "/api/v1/repositories", Some(make("site-b")), StatusCode::CREATED).await;
    let site_c: Repository = api.ok("POST", "/api/v1/repositories", Some(make("site-c")), StatusCode::CREATED).await;
    rows::platform(&db, "p1", "kvm-1").await;
    rows::vm(&db, "vm1", "p1", "web-01").await;
    rows::vm(&db, "vm2", "p1", "db-01").await;

    // Copy targets: validated, with the field named.
    let e = api.rejected("POST", "/api/v1/policies", Some(json!({"name": "offsite", "copy_target": {"repository_id": "nope"}})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert!(names_field(&e, "copy_target.repository_id") && e.message.contains("nope"), "{e:?}");
    let e = api.rejected("POST", "/api/v1/policies", Some(json!({"name": "offsite", "copy_target": {"repository_id": site_b.id, "retention": {"keep_last": 0}}})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value")
    .await;
    assert!(e.details.iter().any(|d| d.field.starts_with("copy_target.retention")), "{e:?}");
    let flow_body = |name: &str, target: &str| {
        json!({"name": name, "kind": "backup", "source": {"type": "vms", "vm_ids": ["vm1"]}, "repository_id": primary.id,
               "copy_target": {"repository_id": target, "retention": {"keep_last": 2}, "immutable_days": 3}})
    };
    let reply = api.call("POST", "/api/v1/flows", Some(flow_body("same", &primary.id))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let e: ErrorBody = reply.json();
    assert!(names_field(&e, "copy_target.repository_id") && e.message.contains("second repository"), "{e:?}");
    let flow: Flow = api.ok("POST", "/api/v1/flows", Some(flow_body("nightly", &site_b.id)), StatusCode::CREATED).await;
    let t = flow.copy_target.clone().expect("the flow's copy target");
    assert_eq!((t.repository_id.as_str(), t.retention.keep_last, t.immutable_days), (site_b.id.as_str(), Some(2), 3));

    // A flow that follows a policy takes its copy target and cannot set its own.
    let policy: Policy = api
        .ok("POST", "/api/v1/policies", Some(json!({"name": "offsite", "copy_target": {"repository_id": site_c.id, "retention": {"keep_daily": 7}}})), StatusCode::CREATED)
        .await;
    assert_eq!(policy.copy_target.as_ref().map(|t| t.repository_id.as_str()), Some(site_c.id.as_str()));
    let followed: Flow = api.ok("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"policy_id": policy.id})), StatusCode::OK).await;
    assert_eq!(followed.copy_target.as_ref().map(|t| (t.repository_id.as_str(), t.retention.keep_daily)), Some((site_c.id.as_str(), Some(7))));
    let e = api.rejected("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"copy_target": null})), StatusCode::CONFLICT, "flow_follows_policy").await;
    assert!(e.message.contains("copy target"), "{e:?}");
    // The policy's target cannot be a follower's own repository; a change reaches the flow.
    let e = api.rejected("PATCH", &format!("/api/v1/policies/{}", policy.id), Some(json!({"copy_target": {"repository_id": primary.id}})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value")
        .await;
    assert!(e.message.contains("nightly"), "{e:?}");
    let _: Policy = api
        .ok("PATCH", &format!("/api/v1/policies/{}", policy.id), Some(json!({"copy_target": {"repository_id": site_b.id, "immutable_days": 1}})), StatusCode::OK)
        .await;
    let details: Value = api.ok("GET", &format!("/api/v1/flows/{}", flow.id), None, StatusCode::OK).await;
    let now: Flow = serde_json::from_value(details["flow"].clone()).unwrap();
    assert_eq!(now.copy_target.as_ref().map(|t| (t.repository_id.as_str(), t.immutable_days)), Some((site_b.id.as_str(), 1)));
    // Detached, the flow keeps the copy target and may drop it.
    let detached: Flow = api.ok("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"policy_id": null})), StatusCode::OK).await;
    assert!(detached.copy_target.is_some());
    let dropped: Flow = api.ok("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"copy_target": null})), StatusCode::OK).await;
    assert!(dropped.copy_target.is_none());
    // Moving the flow onto its copy target's repository is refused.
    let _: Flow = api.ok("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"copy_target": {"repository_id": site_c.id}})), StatusCode::OK).await;
    let e = api.rejected("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"repository_id": site_c.id})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert!(names_field(&e, "repository_id"), "{e:?}");

    // Locations: a row-less restore point is at its own repository; a copy shows with its repository's name.
    rows::point(&db, rows::Point { at: Utc::now() - Duration::hours(3), logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new("b1", "vm1", &primary.id) }).await;
    rows::point(&db, rows::Point { at: Utc::now() - Duration::hours(2), logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new("b2", "vm1", &primary.id) }).await;
    rows::point(&db, rows::Point { at: Utc::now() - Duration::hours(1), logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new("b3", "vm2", &primary.id) }).await;
    let b1: Backup = api.ok("GET", "/api/v1/backup/b1", None, StatusCode::OK).await;
    assert_eq!(b1.locations.len(), 1);
    assert_eq!((b1.locations[0].role, b1.locations[0].state, b1.locations[0].repository_id.as_str()), (LocationRole::Primary, LocationState::Present, primary.id.as_str()));
    for b in ["b1", "b2", "b3"] {
        let row = backups::Entity::find_by_id(b.to_string()).one(&db).await.unwrap().unwrap();
        backup_locations::record_primary(&db, &row).await.unwrap();
    }
    let until = Utc::now() + Duration::days(2);
    location(&db, "b1", &site_b.id, LocationRole::Copy, Some(until)).await;
    location(&db, "b2", &site_b.id, LocationRole::Copy, None).await;
    location(&db, "b3", &site_b.id, LocationRole::Copy, None).await;
    let b1: Backup = api.ok("GET", "/api/v1/backup/b1", None, StatusCode::OK).await;
    let seen: Vec<(LocationRole, &str)> = b1.locations.iter().map(|l| (l.role, l.repository_name.as_str())).collect();
    assert_eq!(seen, vec![(LocationRole::Primary, primary.name.as_str()), (LocationRole::Copy, "site-b")]);
    assert_eq!(b1.locations[1].immutable_until.map(|u| u.timestamp()), Some(until.timestamp()));
    let page: Value = api.ok("GET", "/api/v1/backup/list?vm=vm1", None, StatusCode::OK).await;
    assert!(page["items"].as_array().unwrap().iter().all(|i| i["locations"].as_array().unwrap().len() == 2), "{page}");

    // Deleting is refused while the copy is immutable, naming where and until when.
    let reply = api.call("DELETE", "/api/v1/backup/b1", None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let e: ErrorBody = reply.json();
    assert!(e.code == "backup_immutable" && e.message.contains("site-b") && e.message.contains(&until.format("%Y-%m-%d").to_string()), "{e:?}");

    // Retention candidates by role: copies at site-b, primaries at the primary.
    let copies = retention::candidates_at(&db, &site_b.id, "vm1", LocationRole::Copy).await.unwrap();
    let ids: Vec<&str> = copies.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["b2", "b1"], "vm1's copies newest first, not vm2's");
    assert!(copies.iter().all(|c| c.repository_id == site_b.id && c.snapshot_name == "copied-name"), "as they are at the copy");
    assert_eq!(copies[1].immutable_until.map(|u| u.timestamp()), Some(until.timestamp()), "the copy's own immutability decides");
    assert!(retention::candidates_at(&db, &site_b.id, "vm1", LocationRole::Primary).await.unwrap().is_empty(), "nothing was written to site-b");
    assert_eq!(retention::candidates(&db, &primary.id, "vm1").await.unwrap().len(), 2);
    let decided = retention::decide(&copies, &sendense::engine::prune::KeepRules { last: Some(0), ..Default::default() }, Utc::now());
    assert_eq!(decided, vec![retention::Fate::Remove, retention::Fate::KeepImmutable]);

    // A restore point leaves with its last location.
    let b2 = backups::Entity::find_by_id("b2".to_string()).one(&db).await.unwrap().unwrap();
    assert!(!backup_locations::remove(&db, &b2, &primary.id).await.unwrap(), "the copy still holds it");
    assert!(retention::candidates(&db, &primary.id, "vm1").await.unwrap().iter().all(|b| b.id != "b2"), "no longer a primary candidate");
    let b2_now: Backup = api.ok("GET", "/api/v1/backup/b2", None, StatusCode::OK).await;
    assert_eq!(b2_now.locations.iter().map(|l| l.role).collect::<Vec<_>>(), vec![LocationRole::Copy]);
    assert!(backup_locations::remove(&db, &b2, &site_b.id).await.unwrap(), "gone with its last location");
    assert!(backups::Entity::find_by_id("b2".to_string()).one(&db).await.unwrap().is_none());

    // On-demand copies: validated, refused where it is already, operators only.
    let e = api.rejected("POST", "/api/v1/restore-points/b3/copy", Some(json!({"repository_id": "zzz"})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert!(names_field(&e, "repository_id"), "{e:?}");
    let e = api.rejected("POST", "/api/v1/restore-points/b3/copy", Some(json!({"repository_id": site_b.id})), StatusCode::CONFLICT, "conflict").await;
    assert!(e.message.contains("already"), "{e:?}");
    api.rejected("POST", "/api/v1/restore-points/none/copy", Some(json!({"repository_id": site_c.id})), StatusCode::NOT_FOUND, "backup_not_found").await;
    let (_, viewer) = api.f.user_with_role("watcher", Role::Viewer).await;
    let reply = api.f.call("POST", "/api/v1/restore-points/b3/copy", Some(&viewer), Some(json!({"repository_id": site_c.id}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let job: Job = api.ok("POST", "/api/v1/restore-points/b3/copy", Some(json!({"repository_id": site_c.id})), StatusCode::ACCEPTED).await;
    assert_eq!((job.kind.as_str(), job.backup_id.as_deref(), job.repository_id.as_deref()), ("copy", Some("b3"), Some(site_c.id.as_str())));
    // The fake restore point has no snapshot anywhere: the copy fails, says so, and raises an alert.
    let done = api.wait(&job.id, 60).await;
    assert_eq!(done["job"]["status"], "failed", "{done}");
    let b3: Backup = api.ok("GET", "/api/v1/backup/b3", None, StatusCode::OK).await;
    assert!(b3.locations.iter().all(|l| l.repository_id != site_c.id || l.state == LocationState::Failed), "{:?}", b3.locations);
    let alerts: Value = api.ok("GET", "/api/v1/alerts", None, StatusCode::OK).await;
    assert!(alerts.to_string().contains("Copy of db-01"), "{alerts}");
    // The on-demand copy is in the OpenAPI document.
    let doc: Value = api.f.call("GET", "/api/v1/openapi.json", None, None).await.json();
    assert!(doc["paths"].get("/restore-points/{id}/copy").is_some(), "route missing from the OpenAPI document");
    assert!(doc["components"]["schemas"]["CompatibilityReport"]["properties"].get("read_from").is_some(), "the check's read_from is not documented");
    assert!(doc["components"]["schemas"].get("ReadFrom").is_some(), "ReadFrom is not in the OpenAPI document");

    // Repositories count the copies they hold, and cannot leave the catalog
    // while they hold copies or flows and policies copy to them.
    // b4: written to the primary, copied to site-b, then its primary removed.
    rows::point(&db, rows::Point { at: Utc::now() - Duration::hours(1), logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new("b4", "vm1", &primary.id) }).await;
    let b4 = backups::Entity::find_by_id("b4".to_string()).one(&db).await.unwrap().unwrap();
    backup_locations::record_primary(&db, &b4).await.unwrap();
    location(&db, "b4", &site_b.id, LocationRole::Copy, None).await;
    assert!(!backup_locations::remove(&db, &b4, &primary.id).await.unwrap());
    let count = |repos: &[Repository], id: &str| repos.iter().find(|r| r.id == id).map(|r| r.backup_count);
    let listed: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    assert_eq!(count(&listed, &primary.id), Some(2), "b1 and b3 (b4's primary was removed)");
    assert_eq!(count(&listed, &site_b.id), Some(3), "the copies of b1, b3 and b4");
    assert_eq!(count(&listed, &site_c.id), Some(0), "a failed copy is not held");
    let one: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", site_b.id), None, StatusCode::OK).await;
    assert_eq!(one.backup_count, 3);
    // The restore point list of a repository shows the same ones.
    for (repo, want) in [(&primary.id, vec!["b1", "b3"]), (&site_b.id, vec!["b1", "b3", "b4"]), (&site_c.id, vec![])] {
        let page: Value = api.ok("GET", &format!("/api/v1/backup/list?repository={repo}"), None, StatusCode::OK).await;
        let mut ids: Vec<&str> = page["items"].as_array().unwrap().iter().filter_map(|b| b["id"].as_str()).collect();
        ids.sort();
        assert_eq!((ids, page["total"].as_u64()), (want.clone(), Some(want.len() as u64)), "{page}");
    }
    let e = api.rejected("DELETE", &format!("/api/v1/repositories/{}", site_b.id), None, StatusCode::CONFLICT, "repository_in_use").await;
    assert!(e.message.contains("3 copies of restore points") && e.message.contains("'offsite'") && !e.message.contains("restore points (forget or move"), "{e:?}");
    let e = api.rejected("DELETE", &format!("/api/v1/repositories/{}", site_c.id), None, StatusCode::CONFLICT, "repository_in_use").await;
    assert!(e.message.contains("flow 'nightly' as copy target"), "{e:?}");
    assert!(!e.message.contains("copies of restore points"), "a failed copy does not keep it: {e:?}");
    // Without the flow's copy target it leaves, and b3's failed copy there with it.
    let _: Flow = api.ok("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"copy_target": null})), StatusCode::OK).await;
    let _: Value = api.ok("DELETE", &format!("/api/v1/repositories/{}", site_c.id), None, StatusCode::OK).await;
    let b3: Backup = api.ok("GET", "/api/v1/backup/b3", None, StatusCode::OK).await;
    assert!(b3.locations.iter().all(|l| l.repository_id != site_c.id), "{:?}", b3.locations);
}

/// The migrations up to the one before `backup_copies` on `url`, a restore
/// point recorded then, the rest: the restore point has its primary location.
async fn backfill_on(url: &str, create_on: Option<&str>) {
    use migrations::MigratorTrait;
    if let Some(server) = create_on {
        let admin = sea_orm::Database::connect(server).await.unwrap();
        admin.execute_unprepared("CREATE DATABASE backfill").await.unwrap();
    }
    let db = sea_orm::Database::connect(url).await.unwrap();
    let all = migrations::Migrator::migrations();
    let before = all.iter().position(|m| m.name().contains("backup_copies")).expect("the backup_copies migration") as u32;
    migrations::Migrator::up(&db, Some(before)).await.unwrap();
    rows::platform(&db, "p1", "kvm-1").await;
    rows::vm(&db, "vm1", "p1", "web-01").await;
    // The repository as a row of that schema (the entity has columns of later migrations).
    let now = Utc::now();
    db.execute_unprepared(&format!(
        "INSERT INTO repositories (id, name, kind, path, created_at, is_default) VALUES ('r1', 'local', 'local', '/var/lib/sendense/repo', '{}', true)",
        now.to_rfc3339()
    ))
    .await
    .unwrap();
    let repo_id = "r1";
    let insert = format!(
        "INSERT INTO backups (id, vm_context_id, job_id, repository_id, snapshot_name, snapshot_id, parent_snapshot_id, backup_type, status, logical_bytes, bytes_read, bytes_written, created_at, immutable_until) \
         VALUES ('old1', 'vm1', NULL, '{}', 'vm-web', 'snap-1', NULL, 'full', 'available', 100, 100, 77, '{}', '{}')",
        repo_id,
        now.to_rfc3339(),
        (now + Duration::days(1)).to_rfc3339()
    );
    db.execute_unprepared(&insert).await.unwrap();
    migrations::Migrator::up(&db, None).await.unwrap();
    let rows = locations::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r.backup_id.as_str(), r.repository_id.as_str(), r.role.as_str(), r.state.as_str(), r.snapshot_id.as_str(), r.bytes_sent),
        ("old1", repo_id, "primary", "present", "snap-1", 77)
    );
    assert_eq!(r.immutable_until.map(|u| u.timestamp()), Some((now + Duration::days(1)).timestamp()));
}

fn same_image(a: &Path, a_format: &str, raw: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U", "-f", a_format, "-F", "raw"]).arg(a).arg(raw).status().unwrap().success()
}

/// The restore point's disks as raw images, read by the engine from `repo`.
async fn raw_disks(api: &Api, backup: &str, repo_id: &str, out: &Path) -> Vec<(String, PathBuf)> {
    let row = backups::Entity::find_by_id(backup.to_string()).one(&api.f.state.db).await.unwrap().unwrap();
    let row = backup_locations::at(&api.f.state.db, row, repo_id).await.unwrap();
    let repo = sendense::db::entities::repositories::Entity::find_by_id(repo_id.to_string()).one(&api.f.state.db).await.unwrap().unwrap();
    std::fs::create_dir_all(out).unwrap();
    let (data, rn, ri, rd) = (api.f.data.path().to_path_buf(), row.snapshot_name.clone(), row.snapshot_id.clone(), out.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let ds = sendense::catalog::repositories::open_datastore(&data, &repo).unwrap();
        let m = ds.resolve(&rn, &ri).unwrap();
        m.disks
            .iter()
            .map(|d| {
                let to = rd.join(format!("{}.raw", d.name));
                sendense::engine::restore::restore(&ds, &rn, &ri, Some(&d.name), &to, 2, &Progress::new()).unwrap();
                (d.name.clone(), to)
            })
            .collect()
    })
    .await
    .unwrap()
}

async fn download(api: &Api, mount: &Mount, path: &str) -> Vec<u8> {
    let reply = api.call("GET", &format!("/api/v1/restore/{}/download?path={path}", mount.id), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    reply.bytes
}

/// Runs the flow; waits for its backup job and then the copy job it queues.
async fn run_and_copy(api: &Api, flow: &str, vm: &str) -> (Value, Value, f64) {
    let known: JobPage = api.ok("GET", &format!("/api/v1/jobs?vm={vm}&kind=copy"), None, StatusCode::OK).await;
    let seen: Vec<String> = known.items.iter().map(|j| j.id.clone()).collect();
    let before: JobPage = api.ok("GET", &format!("/api/v1/jobs?flow={flow}&kind=backup"), None, StatusCode::OK).await;
    let backups_before: Vec<String> = before.items.iter().map(|j| j.id.clone()).collect();
    let _: Value = api.ok("POST", &format!("/api/v1/flows/{flow}/run"), None, StatusCode::ACCEPTED).await;
    let backup_job = loop {
        let page: JobPage = api.ok("GET", &format!("/api/v1/jobs?flow={flow}&kind=backup"), None, StatusCode::OK).await;
        if let Some(j) = page.items.iter().find(|j| !backups_before.contains(&j.id)) {
            break j.id.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let done = api.wait(&backup_job, 180).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let copy_job = loop {
        let page: JobPage = api.ok("GET", &format!("/api/v1/jobs?vm={vm}&kind=copy"), None, StatusCode::OK).await;
        if let Some(j) = page.items.iter().find(|j| !seen.contains(&j.id)) {
            break j.id.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The backup's log as it is once the copy is queued (the line saying so
    // is written after the backup job ends).
    let done = api.wait(&backup_job, 10).await;
    let t = std::time::Instant::now();
    let copied = api.wait(&copy_job, 300).await;
    assert_eq!(copied["job"]["status"], "completed", "{copied}");
    (done, copied, t.elapsed().as_secs_f64())
}

/// "N of M chunks sent" in a copy job's log.
fn chunks_sent(copy: &Value) -> (u64, u64) {
    let log = copy["logs"].to_string();
    let at = log.find(" chunks sent").unwrap_or_else(|| panic!("no chunk counts in {log}"));
    let words: Vec<&str> = log[..at].rsplit(' ').take(3).collect();
    (words[2].parse().unwrap(), words[0].parse().unwrap())
}

async fn maintenance(api: &Api, repo: &str, what: &str) -> Value {
    let job: Job = api.ok("POST", &format!("/api/v1/repositories/{repo}/{what}"), None, StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 300).await;
    assert_eq!(done["job"]["status"], "completed", "{what}: {done}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_restores_the_vm_and_its_files_when_the_primary_repository_is_gone() {
    // Instant recovery's export process is this package's binary.
    std::env::set_var("SENDENSE_EXE", env!("CARGO_BIN_EXE_sendense"));
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    let primary = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let offsite_dir = dir.path().join("offsite");
    std::fs::create_dir_all(&offsite_dir).unwrap();
    // An encrypted second repository: chunks are re-encrypted for its own key.
    let offsite: Repository = api
        .ok("POST", "/api/v1/repositories", Some(json!({"name": "offsite", "kind": "local", "path": offsite_dir.join("repo").display().to_string()})), StatusCode::CREATED)
        .await;
    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let web = api.manage(&prod, &["web-01"]).await.remove(0);
    // The primary keeps the newest restore point only; the copies keep three.
    let flow: Flow = api
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "web-3-2-1", "kind": "backup", "source": {"type": "vms", "vm_ids": [web]}, "repository_id": primary.id,
                        "retention": {"keep_last": 1}, "copy_target": {"repository_id": offsite.id, "retention": {"keep_last": 3}}})),
            StatusCode::CREATED,
        )
        .await;

    // The flow's first backup, then its copy job: verified at the target, re-encrypted.
    let (done, first_copy, first_secs) = run_and_copy(&api, &flow.id, &web).await;
    assert!(done["logs"].to_string().contains("copy to 'offsite' queued"), "{}", done["logs"]);
    let log = first_copy["logs"].to_string();
    assert!(log.contains("verified at the target") && log.contains("re-encrypted"), "{log}");
    let (sent1, total1) = chunks_sent(&first_copy);
    assert!(sent1 > 0 && sent1 == total1, "the first copy sends every chunk: {sent1} of {total1}");
    let points: shared_types::backups::BackupPage = api.ok("GET", &format!("/api/v1/backup/list?vm={web}"), None, StatusCode::OK).await;
    let first = points.items[0].clone();
    let places: Vec<(LocationRole, LocationState, &str)> = first.locations.iter().map(|l| (l.role, l.state, l.repository_name.as_str())).collect();
    assert_eq!(places, vec![(LocationRole::Primary, LocationState::Present, primary.name.as_str()), (LocationRole::Copy, LocationState::Present, "offsite")]);
    let sent_first = locations::Entity::find_by_id((first.id.clone(), offsite.id.clone())).one(&api.f.state.db).await.unwrap().unwrap().bytes_sent;

    // The second backup: the primary's retention removes the first restore
    // point there; it stays as a copy. Its copy sends only what the target lacks.
    let (_, second_copy, second_secs) = run_and_copy(&api, &flow.id, &web).await;
    let (sent2, total2) = chunks_sent(&second_copy);
    assert!(sent2 < total2, "only the chunks the target lacks are sent: {sent2} of {total2}");
    let points: shared_types::backups::BackupPage = api.ok("GET", &format!("/api/v1/backup/list?vm={web}"), None, StatusCode::OK).await;
    assert_eq!(points.items.len(), 2, "{:?}", points.items);
    let second = points.items.iter().max_by_key(|b| b.created_at).unwrap().clone();
    let first_now = points.items.iter().find(|b| b.id == first.id).expect("the first restore point stays as a copy");
    let places: Vec<(LocationRole, &str)> = first_now.locations.iter().map(|l| (l.role, l.repository_name.as_str())).collect();
    assert_eq!(places, vec![(LocationRole::Copy, "offsite")], "gone from the primary only");
    assert_eq!(second.locations.len(), 2);
    let sent_second = locations::Entity::find_by_id((second.id.clone(), offsite.id.clone())).one(&api.f.state.db).await.unwrap().unwrap().bytes_sent;
    eprintln!(
        "METRIC copy_321 logical_bytes={} first_copy_seconds={first_secs:.2} first_copy_bytes_sent={sent_first} first_chunks_sent={sent1}/{total1} \
         second_copy_seconds={second_secs:.2} second_copy_bytes_sent={sent_second} second_chunks_sent={sent2}/{total2} second_primary_written={}",
        second.logical_bytes, second.bytes_written
    );

    // Maintenance sees the copies: GC and verify of the primary run (the first
    // point left it), verify of the copy target marks its copies present.
    maintenance(&api, &primary.id, "gc").await;
    maintenance(&api, &primary.id, "verify").await;
    let first_now: Backup = api.ok("GET", &format!("/api/v1/backup/{}", first.id), None, StatusCode::OK).await;
    assert_ne!(first_now.status, shared_types::backups::BackupStatus::Corrupt, "verify of the primary does not judge a point that left it");
    maintenance(&api, &offsite.id, "verify").await;
    maintenance(&api, &offsite.id, "gc").await;
    let second_now: Backup = api.ok("GET", &format!("/api/v1/backup/{}", second.id), None, StatusCode::OK).await;
    assert!(second_now.locations.iter().all(|l| l.state == LocationState::Present), "{:?}", second_now.locations);

    // What the primary holds, before it goes: its disks and a file.
    let before = raw_disks(&api, &second.id, &primary.id, &dir.path().join("raw-primary")).await;
    let mount: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": second.id})), StatusCode::CREATED).await;
    let vol = mount.volumes.iter().find(|v| v.filesystem == "ext4").expect("an ext4 volume").id.clone();
    let hostname = download(&api, &mount, &format!("/{vol}/etc/hostname")).await;
    assert!(!hostname.is_empty());
    let _ = api.call("DELETE", &format!("/api/v1/restore/{}", mount.id), None).await;

    // The check says where a restore reads from: the primary, while it can be read.
    let body = |name: &str| json!({"backup_id": second.id, "target_platform_id": dr.id, "name": name, "disk_format": "qcow2"});
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-from-copy")), StatusCode::OK).await;
    let from = report.read_from.expect("the check names the repository it reads from");
    assert_eq!((from.repository.id.as_str(), from.role, from.fallback_reason.as_deref()), (primary.id.as_str(), LocationRole::Primary, None));

    // The primary repository's directory is deleted.
    std::fs::remove_dir_all(&primary.path).unwrap();

    // Asking for the primary explicitly is refused, naming the copy; left
    // out, the copy is used, and the check says why.
    let mut at_primary = body("web-01-primary");
    at_primary["repository_id"] = json!(primary.id);
    let reply = api.call("POST", "/api/v1/restore/start", Some(at_primary)).await;
    assert!(reply.status.is_client_error(), "{}", reply.body);
    assert!(reply.body.to_string().contains("it is also in 'offsite'"), "{}", reply.body);
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-from-copy")), StatusCode::OK).await;
    let from = report.read_from.expect("the check names the repository it reads from");
    assert_eq!((from.repository.id.as_str(), from.role), (offsite.id.as_str(), LocationRole::Copy));
    let why = from.fallback_reason.unwrap_or_default();
    assert!(why.starts_with(&format!("the primary '{}' cannot be read: ", primary.name)), "{why}");
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body("web-01-from-copy")), StatusCode::ACCEPTED).await;
    assert_eq!(job.repository_id.as_deref(), Some(offsite.id.as_str()), "the restore reads the copy");
    let restored = api.wait(&job.id, 300).await;
    assert_eq!(restored["job"]["status"], "completed", "{restored}");
    let point_now: Backup = api.ok("GET", &format!("/api/v1/backup/{}", second.id), None, StatusCode::OK).await;
    assert_eq!(point_now.locations[0].state, LocationState::Missing, "the primary is shown missing: {:?}", point_now.locations);

    // The restored VM's disks are the restore point's, byte for byte.
    let files = dr_host.disk_files("web-01-from-copy");
    for (disk, raw) in &before {
        let (_, file) = files.iter().find(|(t, _)| t == disk).unwrap_or_else(|| panic!("the restored VM has disk {disk}: {files:?}"));
        assert!(same_image(file, "qcow2", raw), "{} equals the restore point's {disk}", file.display());
    }
    assert!(!before.is_empty());

    // File-level restore from the copy: the same file; and from the point only the copy ever held after retention.
    let mount: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": second.id})), StatusCode::CREATED).await;
    assert_eq!(download(&api, &mount, &format!("/{vol}/etc/hostname")).await, hostname);
    let _ = api.call("DELETE", &format!("/api/v1/restore/{}", mount.id), None).await;
    let mount: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": first.id})), StatusCode::CREATED).await;
    assert_eq!(download(&api, &mount, &format!("/{vol}/etc/hostname")).await, hostname);
    let _ = api.call("DELETE", &format!("/api/v1/restore/{}", mount.id), None).await;

    // Instant recovery from the copy: the VM runs on the DR host, served from offsite.
    let started: Value = api
        .ok("POST", "/api/v1/restore/instant", Some(json!({"backup_id": second.id, "target_platform_id": dr.id, "name": "web-01-instant"})), StatusCode::ACCEPTED)
        .await;
    let id = started["id"].as_str().unwrap().to_string();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let state = loop {
        let ir: Value = api.ok("GET", &format!("/api/v1/restore/instant/{id}"), None, StatusCode::OK).await;
        let jobs: JobPage = api.ok("GET", &format!("/api/v1/jobs?vm={web}&kind=instant_recovery"), None, StatusCode::OK).await;
        if let Some(j) = jobs.items.iter().find(|j| j.status.as_str() == "failed") {
            panic!("the instant recovery's job failed: {:?}", j.error);
        }
        match ir["state"].as_str() {
            Some("running") | Some("failed") => break ir,
            _ if std::time::Instant::now() > until => panic!("the instant recovery did not come up: {ir}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    };
    assert_eq!(state["state"], "running", "{state}");
    let row = sendense::db::entities::instant_recoveries::Entity::find_by_id(id.clone()).one(&api.f.state.db).await.unwrap().unwrap();
    assert_eq!(row.repository_id, offsite.id, "served from the copy");
    assert!(dr_host.is_running("web-01-instant"));
    let reply = api.call("DELETE", &format!("/api/v1/restore/instant/{id}"), None).await;
    assert!(reply.status.is_success(), "{}", reply.body);
}

/// The copy target is an Azure container (Azurite): web-01's flow copies
/// its restore point there; with the primary's directory deleted, the VM is
/// restored from Azure byte for byte and a file comes back through a
/// file-level restore session on the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_in_azure_restores_when_the_primary_repository_is_gone() {
    use support::object_servers::{Azurite, AZURITE_ACCOUNT, AZURITE_KEY};
    let azurite = Azurite::start();
    azurite.create_container("copies");
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    let primary = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let azure: Repository = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "azure-copies", "kind": "azure", "endpoint": azurite.endpoint(), "account": AZURITE_ACCOUNT, "container": "copies", "account_key": AZURITE_KEY})),
            StatusCode::CREATED,
        )
        .await;
    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let web = api.manage(&prod, &["web-01"]).await.remove(0);
    let flow: Flow = api
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "web-to-azure", "kind": "backup", "source": {"type": "vms", "vm_ids": [web]}, "repository_id": primary.id,
                        "copy_target": {"repository_id": azure.id, "immutable_days": 1}})),
            StatusCode::CREATED,
        )
        .await;
    let (_, copied, secs) = run_and_copy(&api, &flow.id, &web).await;
    let (sent, total) = chunks_sent(&copied);
    assert!(sent == total && sent > 0, "{sent} of {total}");
    let points: shared_types::backups::BackupPage = api.ok("GET", &format!("/api/v1/backup/list?vm={web}"), None, StatusCode::OK).await;
    let point = points.items[0].clone();
    let copy = point.locations.iter().find(|l| l.role == LocationRole::Copy).expect("the copy");
    assert_eq!((copy.repository_name.as_str(), copy.state), ("azure-copies", LocationState::Present));
    assert!(copy.immutable_until.is_some_and(|u| u > Utc::now() + Duration::hours(23)), "the copy's own immutability: {copy:?}");
    let row = locations::Entity::find_by_id((point.id.clone(), azure.id.clone())).one(&api.f.state.db).await.unwrap().unwrap();
    eprintln!("METRIC copy_321_azure copy_seconds={secs:.2} bytes_sent={} chunks_sent={sent}", row.bytes_sent);
    // Deleting is refused while the copy is immutable, naming it.
    let reply = api.call("DELETE", &format!("/api/v1/backup/{}", point.id), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(reply.body.contains("azure-copies"), "{}", reply.body);

    let before = raw_disks(&api, &point.id, &primary.id, &dir.path().join("raw-primary")).await;
    let mount: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": point.id})), StatusCode::CREATED).await;
    let vol = mount.volumes.iter().find(|v| v.filesystem == "ext4").expect("an ext4 volume").id.clone();
    let hostname = download(&api, &mount, &format!("/{vol}/etc/hostname")).await;
    let _ = api.call("DELETE", &format!("/api/v1/restore/{}", mount.id), None).await;

    std::fs::remove_dir_all(&primary.path).unwrap();

    let job: Job = api
        .ok("POST", "/api/v1/restore/start", Some(json!({"backup_id": point.id, "target_platform_id": dr.id, "name": "web-01-from-azure", "disk_format": "qcow2"})), StatusCode::ACCEPTED)
        .await;
    assert_eq!(job.repository_id.as_deref(), Some(azure.id.as_str()));
    let restored = api.wait(&job.id, 300).await;
    assert_eq!(restored["job"]["status"], "completed", "{restored}");
    let files = dr_host.disk_files("web-01-from-azure");
    for (disk, raw) in &before {
        let (_, file) = files.iter().find(|(t, _)| t == disk).unwrap_or_else(|| panic!("the restored VM has disk {disk}: {files:?}"));
        assert!(same_image(file, "qcow2", raw), "{} equals the restore point's {disk}", file.display());
    }
    let mount: Mount = api
        .ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": point.id, "repository_id": azure.id})), StatusCode::CREATED)
        .await;
    assert_eq!(download(&api, &mount, &format!("/{vol}/etc/hostname")).await, hostname);
}
