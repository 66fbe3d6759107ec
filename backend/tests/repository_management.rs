//! Repository management through the real router, on SQLite and
//! PostgreSQL: testing and adding a local repository (created encrypted, or
//! an existing one attached with its key), the refusals (bad paths, a path
//! inside or around another repository, a directory of other files, a
//! duplicate name, missing fields per kind naming the field, non-admins),
//! renaming, immutability, the default repository, removal refused while
//! restore points or flows use it (naming them) and never deleting data,
//! and secrets (S3 secret key, Azure key) never in any answer or audit row.

mod support;

use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sendense::catalog::repositories::{default_repository, ensure_local, row_spec};
use sendense::db::entities::{audit_log, backups, repositories};
use sendense::repos::RepoSpec;
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::error::ErrorBody;
use shared_types::flow::Flow;
use shared_types::repositories::{Repository, RepositoryKind};
use shared_types::repository_setup::{Immutability, RepositoryRemoved, RepositoryTest, TestCheck};
use support::api::Api;
use support::{fixture, rows, Fixture};

#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

const S3_SECRET: &str = "wJalrXUtnFEMI-S3-SECRET-never-shown";
const AZURE_SECRET: &str = "QXp1cmUta2V5LW5ldmVyLXNob3du-AZURE-SECRET";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_management_on_sqlite() {
    management_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_management_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    management_on(support::postgres_fixture(&cluster.url(), "repository_management").await).await;
}

/// A request that must fail with `status`, naming `field`; the message.
async fn refused_field(api: &Api, method: &str, path: &str, body: Value, status: StatusCode, field: &str) -> String {
    let reply = api.call(method, path, Some(body.clone())).await;
    assert_eq!(reply.status, status, "{method} {path} {body}: {}", reply.body);
    let e: ErrorBody = reply.json();
    // A conflict names the field in its code (`repository_exists` for the name).
    let named = e.details.iter().any(|d| d.field == field) || (status == StatusCode::CONFLICT && field == "name" && e.code == "repository_exists");
    assert!(named, "{method} {path} {body}: expected the field {field}: {}", reply.body);
    assert!(!reply.body.contains(S3_SECRET) && !reply.body.contains(AZURE_SECRET), "a secret in {}", reply.body);
    e.message
}

async fn refused_code(api: &Api, method: &str, path: &str, status: StatusCode, code: &str) -> String {
    let body = (method == "PATCH").then(|| json!({}));
    let reply = api.call(method, path, body).await;
    assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
    let e: ErrorBody = reply.json();
    assert_eq!(e.code, code, "{}", reply.body);
    e.message
}

async fn management_on(f: Fixture) {
    let db = f.state.db.clone();
    let data = f.data.path().to_path_buf();
    let local = ensure_local(&db, &data).await.unwrap();
    assert!(local.is_default && local.encrypted, "the first repository is the default and encrypted");
    let outside = tempfile::tempdir().unwrap();
    let (_, operator) = f.user_with_role("op", Role::Operator).await;
    rows::platform(&db, "plat", "prod").await;
    rows::vm(&db, "vm-a", "plat", "app-a").await;
    let api = Api::admin(f).await;

    // The routes are in the OpenAPI document (the API fuzzer works from it).
    let doc: Value = api.ok("GET", "/api/v1/openapi.json", None, StatusCode::OK).await;
    for (path, methods) in [
        ("/repositories", &["get", "post"][..]),
        ("/repositories/test", &["post"][..]),
        ("/repositories/{id}", &["get", "patch", "delete"][..]),
        ("/repositories/{id}/default", &["post"][..]),
    ] {
        for m in methods {
            assert!(doc["paths"][path].get(*m).is_some(), "{m} {path} missing from the OpenAPI document");
        }
    }
    for schema in ["CreateRepository", "UpdateRepository", "RepositoryTest", "RepositoryRemoved", "Immutability", "ObjectLocation"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
    }

    let listed: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].is_default && listed[0].immutability == Immutability::None && listed[0].location.is_none());

    // --- Test a local directory: every check passes, nothing is created.
    let site_b = outside.path().join("site-b");
    let body = json!({"name": "site-b", "kind": "local", "path": site_b.display().to_string()});
    let test: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(body.clone()), StatusCode::OK).await;
    assert!(test.ok && !test.attaches, "{test:?}");
    let checks: Vec<TestCheck> = test.checks.iter().map(|c| c.check).collect();
    assert_eq!(checks, vec![TestCheck::Location, TestCheck::Reachable, TestCheck::Write, TestCheck::Read, TestCheck::Delete]);
    assert!(!site_b.exists(), "a test creates nothing");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "the probe file was deleted");

    // --- Create it: encrypted by default, its key outside the repository, not the default.
    let created: Repository = api.ok("POST", "/api/v1/repositories", Some(body.clone()), StatusCode::CREATED).await;
    assert_eq!((created.name.as_str(), created.kind, created.is_default, created.encrypted), ("site-b", RepositoryKind::Local, false, true));
    assert!(created.key_fingerprint.is_some() && created.stats.is_some(), "{created:?}");
    assert!(site_b.join("config.json").exists());
    assert!(data.join("keys").join(format!("{}.key", created.id)).exists());
    // An unencrypted one when asked.
    let plain_dir = outside.path().join("plain");
    let plain: Repository = api
        .ok("POST", "/api/v1/repositories", Some(json!({"name": "plain", "kind": "local", "path": plain_dir.display().to_string(), "encrypted": false})), StatusCode::CREATED)
        .await;
    assert!(!plain.encrypted && plain.key_fingerprint.is_none());

    // --- Refusals, each naming its field.
    let msg = refused_field(&api, "POST", "/api/v1/repositories", body.clone(), StatusCode::CONFLICT, "name").await;
    assert!(msg.contains("site-b"), "{msg}");
    let same = json!({"name": "again", "kind": "local", "path": site_b.display().to_string()});
    let msg = refused_field(&api, "POST", "/api/v1/repositories", same, StatusCode::UNPROCESSABLE_ENTITY, "path").await;
    assert!(msg.contains("already the repository 'site-b'"), "{msg}");
    let inside = json!({"name": "inner", "kind": "local", "path": site_b.join("packs/x").display().to_string()});
    let msg = refused_field(&api, "POST", "/api/v1/repositories", inside, StatusCode::UNPROCESSABLE_ENTITY, "path").await;
    assert!(msg.contains("inside the repository 'site-b'"), "{msg}");
    let around = json!({"name": "outer", "kind": "local", "path": outside.path().display().to_string()});
    let msg = refused_field(&api, "POST", "/api/v1/repositories", around, StatusCode::UNPROCESSABLE_ENTITY, "path").await;
    assert!(msg.contains("holds the repository"), "{msg}");
    let foreign = outside.path().join("photos");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), b"meow").unwrap();
    let over = json!({"name": "photos", "kind": "local", "path": foreign.display().to_string()});
    let msg = refused_field(&api, "POST", "/api/v1/repositories", over.clone(), StatusCode::UNPROCESSABLE_ENTITY, "path").await;
    assert!(msg.contains("cat.jpg"), "{msg}");
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(over), StatusCode::OK).await;
    assert!(!t.ok && t.checks.len() == 1 && t.checks[0].message.contains("cat.jpg"), "{t:?}");
    let unmounted = json!({"name": "nfs", "kind": "local", "path": outside.path().join("not-mounted/site-c").display().to_string()});
    let msg = refused_field(&api, "POST", "/api/v1/repositories", unmounted, StatusCode::UNPROCESSABLE_ENTITY, "path").await;
    assert!(msg.contains("parent directory") && msg.contains("not-mounted"), "{msg}");
    let keys = json!({"name": "keys", "kind": "local", "path": data.join("keys").display().to_string()});
    refused_field(&api, "POST", "/api/v1/repositories", keys, StatusCode::UNPROCESSABLE_ENTITY, "path").await;
    for (body, field) in [
        (json!({"name": "x", "kind": "local"}), "path"),
        (json!({"name": "x", "kind": "local", "path": "relative/dir"}), "path"),
        (json!({"name": "x", "kind": "local", "path": "/top-level"}), "path"),
        (json!({"name": "x", "kind": "local", "path": "/srv/../etc"}), "path"),
        (json!({"name": "", "kind": "local", "path": "/srv/x"}), "name"),
        (json!({"name": "x", "kind": "local", "path": "/srv/x", "bucket": "b"}), "bucket"),
        (json!({"name": "x", "kind": "local", "path": "/srv/x", "immutable_days": 40000}), "immutable_days"),
        (json!({"name": "x", "kind": "s3", "access_key_id": "AK", "secret_access_key": S3_SECRET}), "bucket"),
        (json!({"name": "x", "kind": "s3", "bucket": "Not_A_Bucket", "access_key_id": "AK", "secret_access_key": S3_SECRET}), "bucket"),
        (json!({"name": "x", "kind": "s3", "bucket": "bkt", "secret_access_key": S3_SECRET}), "access_key_id"),
        (json!({"name": "x", "kind": "s3", "bucket": "bkt", "access_key_id": "AK"}), "secret_access_key"),
        (json!({"name": "x", "kind": "s3", "bucket": "bkt", "access_key_id": "AK", "secret_access_key": S3_SECRET, "endpoint": "ftp://x"}), "endpoint"),
        (json!({"name": "x", "kind": "s3", "bucket": "bkt", "access_key_id": "AK", "secret_access_key": S3_SECRET, "path": "/x"}), "path"),
        (json!({"name": "x", "kind": "azure", "container": "c1c", "account_key": AZURE_SECRET}), "account"),
        (json!({"name": "x", "kind": "azure", "account": "devstoreaccount1", "account_key": AZURE_SECRET}), "container"),
        (json!({"name": "x", "kind": "azure", "account": "devstoreaccount1", "container": "backups"}), "account_key"),
        (json!({"name": "x", "kind": "azure", "account": "devstoreaccount1", "container": "backups", "account_key": AZURE_SECRET, "object_lock_mode": "compliance"}), "object_lock_mode"),
    ] {
        refused_field(&api, "POST", "/api/v1/repositories", body.clone(), StatusCode::BAD_REQUEST, field).await;
        refused_field(&api, "POST", "/api/v1/repositories/test", body, StatusCode::BAD_REQUEST, field).await;
    }
    for body in [json!({"name": "x", "kind": "tape"}), json!({"name": "x", "kind": "local", "path": "/srv/x", "secret_key": "s"}), json!({"kind": "local"})] {
        let reply = api.call("POST", "/api/v1/repositories", Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
    }
    // Only admins add, change or remove repositories; operators still run upkeep.
    let reply = api.f.call("POST", "/api/v1/repositories", Some(&operator), Some(json!({"name": "op", "kind": "local", "path": "/srv/op"}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let reply = api.f.call("POST", "/api/v1/repositories/test", Some(&operator), Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    for (method, path) in [("PATCH", format!("/api/v1/repositories/{}", created.id)), ("DELETE", format!("/api/v1/repositories/{}", created.id)), ("POST", format!("/api/v1/repositories/{}/default", created.id))] {
        let reply = api.f.call(method, &path, Some(&operator), Some(json!({}))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.body);
    }

    // --- Change: rename, immutability, default.
    let path_b = format!("/api/v1/repositories/{}", created.id);
    let renamed: Repository = api.ok("PATCH", &path_b, Some(json!({"name": "site-b2", "immutable_days": 7})), StatusCode::OK).await;
    assert_eq!((renamed.name.as_str(), renamed.immutable_days, renamed.immutability), ("site-b2", 7, Immutability::Sendense));
    refused_field(&api, "PATCH", &path_b, json!({"name": "plain"}), StatusCode::CONFLICT, "name").await;
    refused_field(&api, "PATCH", &path_b, json!({"secret_access_key": S3_SECRET}), StatusCode::BAD_REQUEST, "secret_access_key").await;
    refused_field(&api, "PATCH", &path_b, json!({"is_default": false}), StatusCode::BAD_REQUEST, "is_default").await;
    refused_code(&api, "PATCH", "/api/v1/repositories/nope", StatusCode::NOT_FOUND, "repository_not_found").await;
    let made: Repository = api.ok("POST", &format!("{path_b}/default"), None, StatusCode::OK).await;
    assert!(made.is_default);
    let listed: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    let defaults: Vec<&str> = listed.iter().filter(|r| r.is_default).map(|r| r.name.as_str()).collect();
    assert_eq!(defaults, vec!["site-b2"], "exactly one default");
    assert_eq!(default_repository(&db).await.unwrap().map(|r| r.name), Some("site-b2".to_owned()), "backups naming no repository go there");
    let back: Repository = api.ok("PATCH", &format!("/api/v1/repositories/{}", local.id), Some(json!({"is_default": true})), StatusCode::OK).await;
    assert!(back.is_default);

    // --- Removal: refused while used, naming the users; never deletes data.
    let msg = refused_code(&api, "DELETE", &format!("/api/v1/repositories/{}", local.id), StatusCode::CONFLICT, "repository_is_default").await;
    assert!(msg.contains("make another repository the default"), "{msg}");
    let flow: Flow = api
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "nightly-b", "kind": "backup", "source": {"type": "vms", "vm_ids": ["vm-a"]}, "repository_id": created.id})),
            StatusCode::CREATED,
        )
        .await;
    backups::ActiveModel {
        id: Set("p1".into()),
        vm_context_id: Set("vm-a".into()),
        job_id: Set(None),
        repository_id: Set(created.id.clone()),
        snapshot_name: Set("vm/vm-a".into()),
        snapshot_id: Set("snap-p1".into()),
        parent_snapshot_id: Set(None),
        backup_type: Set("full".into()),
        status: Set("available".into()),
        logical_bytes: Set(1),
        bytes_read: Set(1),
        bytes_written: Set(1),
        created_at: Set(Utc::now()),
        immutable_until: Set(None),
        verified_at: Set(None),
        verify_reason: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();
    let msg = refused_code(&api, "DELETE", &path_b, StatusCode::CONFLICT, "repository_in_use").await;
    assert!(msg.contains("1 restore point") && msg.contains("'nightly-b'") && msg.contains("never deletes"), "{msg}");
    backups::Entity::delete_by_id("p1").exec(&db).await.unwrap();
    let msg = refused_code(&api, "DELETE", &path_b, StatusCode::CONFLICT, "repository_in_use").await;
    assert!(!msg.contains("restore point") && msg.contains("'nightly-b'"), "{msg}");
    assert_eq!(api.call("DELETE", &format!("/api/v1/flows/{}", flow.id), None).await.status, StatusCode::NO_CONTENT);
    let removed: RepositoryRemoved = api.ok("DELETE", &path_b, None, StatusCode::OK).await;
    assert!(removed.message.contains("not deleted") && removed.message.contains(&site_b.display().to_string()), "{}", removed.message);
    assert!(site_b.join("config.json").exists(), "the data stays");
    refused_code(&api, "GET", &path_b, StatusCode::NOT_FOUND, "repository_not_found").await;
    // Adding the same directory again attaches it, with its key and its former id.
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(body.clone()), StatusCode::OK).await;
    assert!(t.ok && t.attaches, "{t:?}");
    let again: Repository = api.ok("POST", "/api/v1/repositories", Some(body.clone()), StatusCode::CREATED).await;
    assert_eq!((again.id.as_str(), again.encrypted, again.status), (created.id.as_str(), true, shared_types::repositories::RepositoryStatus::Online));

    // --- Secrets never come back: an object-store test and create answer without them…
    let s3 = json!({"name": "offsite", "kind": "s3", "endpoint": "http://127.0.0.1:9", "bucket": "bkt", "prefix": "site-a/",
        "access_key_id": "AKIDEXAMPLE", "secret_access_key": S3_SECRET});
    let reply = api.call("POST", "/api/v1/repositories/test", Some(s3.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let t: RepositoryTest = reply.json();
    assert!(!t.ok && !reply.body.contains(S3_SECRET), "{}", reply.body);
    let reply = api.call("POST", "/api/v1/repositories", Some(s3)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert!(!reply.body.contains(S3_SECRET), "{}", reply.body);
    let azure = json!({"name": "az", "kind": "azure", "endpoint": "http://127.0.0.1:9/devstoreaccount1", "account": "devstoreaccount1",
        "container": "backups", "account_key": AZURE_SECRET, "immutable_days": 3});
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(azure), StatusCode::OK).await;
    assert_eq!(t.immutability, Immutability::Sendense, "Azure immutability is Sendense's only");
    // …and a stored one (sealed in the catalog) shows its location, never its secret.
    let sealed = sendense::alerts::secrets::seal(&data, "s3-row", S3_SECRET).unwrap();
    assert!(!sealed.contains(S3_SECRET));
    repositories::ActiveModel {
        id: Set("s3-row".into()),
        name: Set("s3-stored".into()),
        kind: Set("s3".into()),
        path: Set("s3://stored/site-a at http://127.0.0.1:9".into()),
        created_at: Set(Utc::now()),
        endpoint: Set(Some("http://127.0.0.1:9".into())),
        region: Set(Some("us-east-1".into())),
        bucket: Set(Some("stored".into())),
        prefix: Set(Some("site-a".into())),
        access_key_id: Set(Some("AKIDEXAMPLE".into())),
        secret_sealed: Set(Some(sealed)),
        credential_kind: Set(Some("secret_key".into())),
        immutable_days: Set(5),
        object_lock_mode: Set(Some("compliance".into())),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let row = repositories::Entity::find_by_id("s3-row").one(&db).await.unwrap().unwrap();
    match row_spec(&data, &row).unwrap() {
        RepoSpec::S3 { bucket, prefix, secret_access_key, endpoint, .. } => {
            assert_eq!((bucket.as_str(), prefix.as_str(), secret_access_key.as_str()), ("stored", "site-a", S3_SECRET));
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9"));
        }
        other => panic!("{other:?}"),
    }
    let reply = api.call("GET", "/api/v1/repositories/s3-row", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(!reply.body.contains(S3_SECRET) && !reply.body.contains("v1:"), "{}", reply.body);
    let stored: Repository = reply.json();
    let loc = stored.location.clone().expect("an object store has a location");
    assert_eq!((loc.bucket.as_deref(), loc.access_key_id.as_deref(), loc.credential.as_deref()), (Some("stored"), Some("AKIDEXAMPLE"), Some("secret_key")));
    assert_eq!((stored.immutability, stored.object_lock_mode.map(|m| m.as_str())), (Immutability::Storage, Some("compliance")));
    assert_eq!(stored.status, shared_types::repositories::RepositoryStatus::Unavailable);
    // Rotating to credentials the storage does not accept changes nothing.
    let new_secret = "rotated-SECRET-also-never-shown";
    let msg = refused_field(&api, "PATCH", "/api/v1/repositories/s3-row", json!({"access_key_id": "AK2", "secret_access_key": new_secret}), StatusCode::UNPROCESSABLE_ENTITY, "secret_access_key").await;
    assert!(msg.contains("nothing was changed") && !msg.contains(new_secret), "{msg}");
    let after = repositories::Entity::find_by_id("s3-row").one(&db).await.unwrap().unwrap();
    assert_eq!((after.access_key_id, after.secret_sealed), (row.access_key_id, row.secret_sealed));
    let reply = api.call("GET", "/api/v1/repositories", None).await;
    assert!(!reply.body.contains(S3_SECRET) && !reply.body.contains(new_secret), "{}", reply.body);

    // --- The audit log has every change, without a secret.
    let audit = audit_log::Entity::find().all(&db).await.unwrap();
    let text = serde_json::to_string(&audit.iter().map(|a| json!({"action": a.action, "target": a.target})).collect::<Vec<_>>()).unwrap();
    for action in ["repository.create", "repository.test", "repository.update", "repository.default", "repository.delete"] {
        assert!(audit.iter().any(|a| a.action == action && a.result == "ok"), "{action} missing: {text}");
    }
    assert!(audit.iter().any(|a| a.action == "repository.delete" && a.target.contains("data left in place")), "{text}");
    assert!(!text.contains(S3_SECRET) && !text.contains(AZURE_SECRET) && !text.contains(new_secret), "{text}");
}

/// Index caches: a repository leaving the catalog takes its caches on this
/// machine with it (another one's stay); at start the server removes the
/// caches under its own root that no catalog repository owns; the tests'
/// caches are under target/tmp, not in ~/.cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_repositories_leave_no_index_caches() {
    use sendense::catalog::index_caches;
    use sendense::engine::index_cache;
    let f = fixture().await;
    let db = f.state.db.clone();
    let root = index_cache::root();
    assert_eq!(root, support::test_cache::root());
    assert!(root.starts_with(env!("CARGO_TARGET_TMPDIR")), "test caches in {}", root.display());
    let outside = tempfile::tempdir().unwrap();
    let api = Api::admin(f).await;
    let caches_of = |location: &str| {
        std::fs::read_dir(&root).map(|d| d.flatten().filter(|e| index_cache::location_of(&e.path()).as_deref() == Some(location)).count()).unwrap_or(0)
    };
    let (gone, kept) = (outside.path().join("gone"), outside.path().join("kept"));
    let mut ids = Vec::new();
    // The first one added is the default (which cannot leave while others exist).
    for (name, dir) in [("kept", &kept), ("gone", &gone)] {
        let body = json!({"name": name, "kind": "local", "path": dir.display().to_string(), "encrypted": false});
        let created: Repository = api.ok("POST", "/api/v1/repositories", Some(body), StatusCode::CREATED).await;
        assert!(created.stats.is_some(), "{created:?}");
        assert_eq!(caches_of(&dir.display().to_string()), 1, "reading {name}'s statistics made its cache");
        ids.push(created.id);
    }
    let _: RepositoryRemoved = api.ok("DELETE", &format!("/api/v1/repositories/{}", ids[1]), None, StatusCode::OK).await;
    assert_eq!(caches_of(&gone.display().to_string()), 0, "the removed repository's cache is gone");
    assert_eq!(caches_of(&kept.display().to_string()), 1, "the other repository's cache stays");
    assert!(gone.join("config.json").exists(), "its data stays");

    // At start: under the server's own root, caches no catalog repository owns go.
    let own = tempfile::tempdir().unwrap();
    let cache = |name: char, location: Option<&str>| {
        let d = own.path().join(name.to_string().repeat(32));
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("state.json"), "{}").unwrap();
        if let Some(l) = location {
            std::fs::write(d.join("location"), l).unwrap();
        }
        d
    };
    let kept_cache = cache('a', Some(&kept.display().to_string()));
    let gone_cache = cache('b', Some(&gone.display().to_string()));
    let old_cache = cache('c', None);
    assert_eq!(index_caches::remove_stale(&db, own.path()).await.unwrap(), 2);
    assert!(kept_cache.exists() && !gone_cache.exists() && !old_cache.exists());
}

/// S3 (moto, signatures checked) and Azure Blob (Azurite) through the API:
/// the test's checks pass on a real bucket and container and fail on a wrong
/// secret (credentials) or a missing bucket; asking immutability of S3 checks
/// Object Lock; an added repository is created there (its config.json in the
/// bucket under the prefix), shows its location and immutability, refuses a
/// second repository over the same prefix and wrong rotated credentials, and
/// attaches again after removal; no secret in any answer or audit row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_repositories_on_sqlite() {
    use support::object_servers::{Azurite, Moto, AZURITE_ACCOUNT, AZURITE_KEY};
    let moto = Moto::start();
    moto.create_bucket("repo-s3", false);
    moto.create_bucket("repo-lock", true);
    let azurite = Azurite::start();
    azurite.create_container("repo-az");
    azurite.create_container("repo-az2");
    let f = fixture().await;
    let db = f.state.db.clone();
    ensure_local(&db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let (key_id, secret) = moto.access_key();
    let (key_id, secret) = (key_id.to_owned(), secret.to_owned());
    let s3 = |name: &str, bucket: &str, secret: &str| {
        json!({"name": name, "kind": "s3", "endpoint": moto.endpoint(), "bucket": bucket, "prefix": "site-a",
            "access_key_id": key_id, "secret_access_key": secret})
    };
    let no_secret = |body: &str| {
        assert!(!body.contains(&secret) && !body.contains(AZURITE_KEY) && !body.contains(AZURE_SECRET), "a secret in {body}");
    };

    // The checks on a real bucket.
    let reply = api.call("POST", "/api/v1/repositories/test", Some(s3("offsite", "repo-s3", &secret))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    no_secret(&reply.body);
    let t: RepositoryTest = reply.json();
    assert!(t.ok, "{t:?}");
    let checks: Vec<TestCheck> = t.checks.iter().map(|c| c.check).collect();
    assert_eq!(checks, vec![TestCheck::Reachable, TestCheck::Credentials, TestCheck::Location, TestCheck::Write, TestCheck::Read, TestCheck::Delete]);
    // A wrong secret fails the credentials check, and the create names the field.
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(s3("offsite", "repo-s3", AZURE_SECRET)), StatusCode::OK).await;
    let failed = t.checks.iter().find(|c| !c.ok).expect("a failed check");
    assert_eq!(failed.check, TestCheck::Credentials, "{t:?}");
    refused_field(&api, "POST", "/api/v1/repositories", s3("offsite", "repo-s3", AZURE_SECRET), StatusCode::UNPROCESSABLE_ENTITY, "secret_access_key").await;
    // A missing bucket.
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(s3("offsite", "no-such-bucket", &secret)), StatusCode::OK).await;
    let failed = t.checks.iter().find(|c| !c.ok).expect("a failed check");
    assert!(!t.ok && failed.message.contains("no-such-bucket"), "{t:?}");
    // Immutability asked: the Object Lock check runs.
    let mut locked = s3("locked", "repo-lock", &secret);
    locked["immutable_days"] = json!(7);
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(locked.clone()), StatusCode::OK).await;
    assert_eq!(t.immutability, Immutability::Storage);
    assert!(t.ok && t.checks.iter().any(|c| c.check == TestCheck::ObjectLock && c.ok), "a bucket with Object Lock: {t:?}");
    let mut unlocked = s3("unlocked", "repo-s3", &secret);
    unlocked["immutable_days"] = json!(7);
    unlocked["prefix"] = json!("site-z");
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(unlocked.clone()), StatusCode::OK).await;
    let failed = t.checks.iter().find(|c| !c.ok).expect("a failed check");
    assert!(failed.check == TestCheck::ObjectLock && failed.message.contains("no Object Lock"), "{t:?}");
    refused_field(&api, "POST", "/api/v1/repositories", unlocked, StatusCode::UNPROCESSABLE_ENTITY, "immutable_days").await;
    // Added with Object Lock: the storage enforces it, in the mode asked.
    locked["object_lock_mode"] = json!("compliance");
    let reply = api.call("POST", "/api/v1/repositories", Some(locked)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let lr: Repository = reply.json();
    assert_eq!((lr.immutability, lr.immutable_days, lr.object_lock_mode.map(|m| m.as_str())), (Immutability::Storage, 7, Some("compliance")));

    // Added: created in the bucket under its prefix.
    let reply = api.call("POST", "/api/v1/repositories", Some(s3("offsite", "repo-s3", &secret))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    no_secret(&reply.body);
    let created: Repository = reply.json();
    assert_eq!((created.kind, created.encrypted, created.status), (RepositoryKind::S3, true, shared_types::repositories::RepositoryStatus::Online), "{created:?}");
    let loc = created.location.clone().unwrap();
    assert_eq!((loc.bucket.as_deref(), loc.prefix.as_deref(), loc.endpoint.clone()), (Some("repo-s3"), Some("site-a"), Some(moto.endpoint())));
    let spec = moto.spec("repo-s3");
    let RepoSpec::S3 { endpoint, region, bucket, access_key_id, secret_access_key, virtual_hosted, .. } = spec else { unreachable!() };
    let in_prefix = RepoSpec::S3 { endpoint, region, bucket, prefix: "site-a".into(), access_key_id, secret_access_key, virtual_hosted };
    let backend = sendense::repos::open_backend(&in_prefix).unwrap();
    let config = tokio::task::spawn_blocking(move || backend.get("config.json")).await.unwrap().expect("config.json in the bucket under site-a/");
    assert!(String::from_utf8_lossy(&config).contains("sendense_repository"));
    // The same prefix again (or one inside it) is refused.
    let mut inner = s3("inner", "repo-s3", &secret);
    inner["prefix"] = json!("site-a/inner");
    refused_field(&api, "POST", "/api/v1/repositories", inner, StatusCode::UNPROCESSABLE_ENTITY, "bucket").await;
    // Rotating to a secret the storage refuses changes nothing; the right one is stored.
    let path = format!("/api/v1/repositories/{}", created.id);
    refused_field(&api, "PATCH", &path, json!({"access_key_id": key_id, "secret_access_key": AZURE_SECRET}), StatusCode::UNPROCESSABLE_ENTITY, "secret_access_key").await;
    let reply = api.call("PATCH", &path, Some(json!({"access_key_id": key_id, "secret_access_key": secret}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    no_secret(&reply.body);
    // Removed and added again: attached, not re-created.
    let removed: RepositoryRemoved = api.ok("DELETE", &path, None, StatusCode::OK).await;
    assert!(removed.message.contains("not deleted"), "{}", removed.message);
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(s3("offsite", "repo-s3", &secret)), StatusCode::OK).await;
    assert!(t.ok && t.attaches, "{t:?}");
    let again: Repository = api.ok("POST", "/api/v1/repositories", Some(s3("offsite", "repo-s3", &secret)), StatusCode::CREATED).await;
    assert_eq!((again.id.as_str(), again.status), (created.id.as_str(), shared_types::repositories::RepositoryStatus::Online));

    // Azure: immutability is Sendense's only.
    let az = json!({"name": "azure-site", "kind": "azure", "endpoint": azurite.endpoint(), "account": AZURITE_ACCOUNT,
        "container": "repo-az", "account_key": AZURITE_KEY, "immutable_days": 3});
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(az.clone()), StatusCode::OK).await;
    assert!(t.ok && t.immutability == Immutability::Sendense, "{t:?}");
    let reply = api.call("POST", "/api/v1/repositories", Some(az)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    no_secret(&reply.body);
    let azure: Repository = reply.json();
    assert_eq!((azure.kind, azure.immutability, azure.immutable_days, azure.status), (RepositoryKind::Azure, Immutability::Sendense, 3, shared_types::repositories::RepositoryStatus::Online));
    let mut wrong = json!({"name": "azure-wrong", "kind": "azure", "endpoint": azurite.endpoint(), "account": AZURITE_ACCOUNT,
        "container": "repo-az2", "account_key": AZURE_SECRET});
    wrong["prefix"] = json!("elsewhere");
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(wrong.clone()), StatusCode::OK).await;
    assert_eq!(t.checks.iter().find(|c| !c.ok).map(|c| c.check), Some(TestCheck::Credentials), "a key that is not base64: {t:?}");
    // Another account's key (well-formed): Azurite refuses the signature.
    wrong["account_key"] = json!(format!("A{}", &AZURITE_KEY[1..]));
    let t: RepositoryTest = api.ok("POST", "/api/v1/repositories/test", Some(wrong), StatusCode::OK).await;
    assert_eq!(t.checks.iter().find(|c| !c.ok).map(|c| c.check), Some(TestCheck::Credentials), "a wrong key: {t:?}");

    let reply = api.call("GET", "/api/v1/repositories", None).await;
    no_secret(&reply.body);
    let audit = audit_log::Entity::find().all(&db).await.unwrap();
    let text = serde_json::to_string(&audit.iter().map(|a| json!({"action": a.action, "target": a.target})).collect::<Vec<_>>()).unwrap();
    no_secret(&text);
}
