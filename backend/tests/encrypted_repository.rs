//! Encrypted repositories in the server, on the real demo lab: a new
//! install's local repository is encrypted with a key in `DATA_DIR/keys`
//! (0600, outside the repository); backup, file-level mount and full restore
//! work through the API; nothing in the repository shows a guest file's text
//! or the VM's identity (an unencrypted repository next to it, still usable,
//! shows them); the key downloads for admins only, audited; a missing key
//! is an error naming the file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::catalog::repository_keys;
use sendense::db::entities::repositories;
use sendense::engine::datastore::Datastore;
use sendense::lab::{self, InitOptions};
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::backups::Backup;
use shared_types::error::ErrorBody;
use shared_types::jobs::{Job, QueuedJobs};
use shared_types::repositories::Repository;

mod support;

use support::api::Api;
use support::kvm::TestHost;

/// A string the lab writes into web-01's web site files.
const GUEST_TEXT: &[u8] = b"shop.example.com";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The repository files whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir).into_iter().filter(|p| contains(&std::fs::read(p).unwrap(), needle)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_repository_is_encrypted_and_its_key_is_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    let data = f.data.path().to_path_buf();
    let local = ensure_local(&f.state.db, &data).await.unwrap();
    let api = Api::admin(f).await;

    // The local repository of a new install: encrypted, key file 0600 in a 0700 directory outside it.
    let repo: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", local.id), None, StatusCode::OK).await;
    assert!(repo.encrypted, "{repo:?}");
    let fp = repo.key_fingerprint.clone().expect("a key fingerprint");
    let key = data.join("keys").join(format!("{}.key", local.id));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(data.join("keys")).unwrap().permissions().mode() & 0o777, 0o700);
    let repo_dir = PathBuf::from(&local.path);
    assert!(!key.starts_with(&repo_dir) && files_under(&repo_dir).iter().all(|p| !p.to_string_lossy().ends_with(".key")));
    let config = Datastore::read_config(&repo_dir).unwrap();
    assert!(config.encryption.as_ref().is_some_and(|e| e.key_check.starts_with(&fp)));

    // An unencrypted repository (as an older server made them) keeps working beside it.
    let plain_dir = data.join("repos").join("plain");
    Datastore::init(&plain_dir, None).unwrap();
    let plain = repositories::ActiveModel {
        id: Set("plain-repo".into()),
        name: Set("plain".into()),
        kind: Set("local".into()),
        path: Set(plain_dir.display().to_string()),
        created_at: Set(Utc::now()),
        maintenance_reason: Set(None),
        maintenance_since: Set(None),
        maintenance_by: Set(None),
        ..Default::default()
    }
    .insert(&api.f.state.db)
    .await
    .unwrap();
    let plain_repo: Repository = api.ok("GET", "/api/v1/repositories/plain-repo", None, StatusCode::OK).await;
    assert!(!plain_repo.encrypted && plain_repo.key_fingerprint.is_none() && plain_repo.error.is_none(), "{plain_repo:?}");

    // The guest text is really on web-01's disk.
    let prod_dir = lab_dir.join("hosts/kvm-prod-01");
    let dr_dir = lab_dir.join("hosts/kvm-dr-01");
    let source_disk = std::fs::read_dir(prod_dir.join("vms/web-01"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "qcow2"))
        .unwrap();
    let raw = dir.path().join("web-01.raw");
    assert!(Command::new("qemu-img").args(["convert", "-U", "-O", "raw"]).arg(&source_disk).arg(&raw).status().unwrap().success());
    assert!(contains(&std::fs::read(&raw).unwrap(), GUEST_TEXT), "the lab wrote {:?} on web-01's disk", String::from_utf8_lossy(GUEST_TEXT));
    std::fs::remove_file(&raw).unwrap();

    // Backups through the job runner into both repositories.
    let (prod_host, dr_host) = tokio::join!(TestHost::start(&prod_dir), TestHost::start(&dr_dir));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);
    let backup = api.back_up(&vm, "full").await;
    let queued: QueuedJobs = api
        .ok("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm], "backup_type": "full", "repository_id": plain.id})), StatusCode::ACCEPTED)
        .await;
    let j = api.wait(&queued.jobs[0].id, 120).await;
    assert_eq!(j["job"]["status"], "completed", "{}", j["job"]);
    let b: Backup = api.ok("GET", &format!("/api/v1/backup/{backup}"), None, StatusCode::OK).await;
    let details: Value = api.ok("GET", &format!("/api/v1/vm-contexts/{vm}"), None, StatusCode::OK).await;
    let uuid = details["vm"]["platform_vm_id"].as_str().expect("the VM's uuid").to_owned();

    // On disk: the encrypted repository shows neither the guest text nor the
    // VM's identity; the unencrypted one shows its identity in plain JSON.
    assert!(files_containing(&repo_dir, GUEST_TEXT).is_empty(), "plaintext guest data in the encrypted repository");
    assert!(files_containing(&repo_dir, uuid.as_bytes()).is_empty(), "the VM's uuid readable in the encrypted repository");
    assert!(!files_containing(&plain_dir, uuid.as_bytes()).is_empty(), "the unencrypted manifest names the VM (the check can see plaintext)");
    assert!(files_containing(&repo_dir, b"\"disks\"").is_empty(), "manifests are sealed");
    assert!(!files_containing(&plain_dir, b"\"disks\"").is_empty(), "unencrypted manifests are JSON");
    eprintln!("guest text in the unencrypted repository: {} file(s)", files_containing(&plain_dir, GUEST_TEXT).len());

    // File-level restore and a full restore read the encrypted repository.
    let mount: Value = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": b.id})), StatusCode::CREATED).await;
    assert!(mount["volumes"].as_array().is_some_and(|v| !v.is_empty()), "{mount}");
    let job: Job = api
        .ok("POST", "/api/v1/restore/start", Some(json!({"backup_id": b.id, "target_platform_id": dr.id, "name": "web-01-back"})), StatusCode::ACCEPTED)
        .await;
    let done = api.wait(&job.id, 180).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let restored = dr_host.disk_files("web-01-back")[0].1.clone();
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(&source_disk).arg(&restored).status().unwrap();
    assert!(cmp.success(), "the restored disk equals web-01's");

    // Export: the admin gets the very key file; viewers and operators get 403; it is audited.
    let reply = api.call("GET", &format!("/api/v1/repositories/{}/key", local.id), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.bytes, std::fs::read(&key).unwrap());
    assert!(reply.headers["content-disposition"].to_str().unwrap().contains("attachment"));
    for (name, role) in [("vera", Role::Viewer), ("otto", Role::Operator)] {
        let (_, token) = api.f.user_with_role(name, role).await;
        let r = api.f.call("GET", &format!("/api/v1/repositories/{}/key", local.id), Some(&token), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}: {}", r.body);
        assert!(!r.bytes.windows(10).any(|w| w == b"master_key"), "no key in a refusal");
    }
    let audit: Value = api.ok("GET", "/api/v1/audit?limit=50", None, StatusCode::OK).await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(entries.iter().any(|e| e["action"] == "repository.key.export" && e["result"] == "ok"), "{audit}");
    assert!(entries.iter().any(|e| e["actor"] == "vera" && e["result"] == "denied"), "{audit}");
    let e: ErrorBody = api.call("GET", "/api/v1/repositories/plain-repo/key", None).await.json();
    assert_eq!(e.code, "repository_not_encrypted");
    let e: ErrorBody = api.call("GET", "/api/v1/repositories/nope/key", None).await.json();
    assert_eq!(e.code, "repository_not_found");

    // The CLI exports the same key, by name or id, to a new 0600 file, and never overwrites one.
    let cli_out = dir.path().join("cli.key");
    let run = |repo: &str, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sendense"))
            .args(["key", "export", "--repository", repo, "--data-dir"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = run("local", &cli_out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&cli_out).unwrap(), reply.bytes);
    assert_eq!(std::fs::metadata(&cli_out).unwrap().permissions().mode() & 0o777, 0o600);
    let again = run(&local.id, &cli_out);
    assert!(!again.status.success(), "an existing file is not overwritten");
    let plain_out = run("plain", &dir.path().join("plain.key"));
    assert!(!plain_out.status.success() && String::from_utf8_lossy(&plain_out.stderr).contains("not encrypted"));

    // The exported key opens the repository.
    let exported = dir.path().join("exported.key");
    std::fs::write(&exported, &reply.bytes).unwrap();
    let ds = Datastore::open(&repo_dir, Some(&exported)).unwrap();
    assert!(!ds.list_snapshots(None).unwrap().is_empty());

    // A missing key: restore and the repository's status name the expected file.
    let aside = dir.path().join("aside.key");
    std::fs::rename(&key, &aside).unwrap();
    let r: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", local.id), None, StatusCode::OK).await;
    assert!(r.error.as_deref().is_some_and(|e| e.contains(&key.display().to_string())), "{r:?}");
    let reply = api.call("POST", "/api/v1/restore/check", Some(json!({"backup_id": b.id, "target_platform_id": dr.id, "name": "x"}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert!(reply.body.contains(&key.display().to_string()), "{}", reply.body);
    let e: ErrorBody = api.call("GET", &format!("/api/v1/repositories/{}/key", local.id), None).await.json();
    assert!(e.code == "key_unavailable" && e.message.contains(&key.display().to_string()), "{e:?}");
    std::fs::rename(&aside, &key).unwrap();
    assert_eq!(repository_keys::key_path(&data, &local.id).unwrap(), key);
}
