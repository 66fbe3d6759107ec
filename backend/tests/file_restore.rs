//! File-level restore through the API on a real demo-lab VM: back up web-01
//! (full, through the job runner), open a session on the restore point,
//! browse its ext4 volume, download a file and a directory (tar) and check
//! them against what the lab wrote; bad paths, unknown and expired sessions,
//! a viewer, and a restore point whose data is gone each get a clear 4xx.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, InitOptions};
use sendense::restore::sessions::Sessions;
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::backups::BackupPage;
use shared_types::discovery::{BulkAddResponse, DiscoverVmsResponse, Platform};
use shared_types::error::ErrorBody;
use shared_types::jobs::QueuedJobs;
use shared_types::restore::{FileKind, FileListing, Mount};

mod support;

use support::api::Api;

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_point_is_browsed_and_downloaded_without_mounting() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let mut f = support::fixture().await;
    // Sessions close after 4 idle seconds here, so expiry is tested too.
    f.state.restore_sessions = std::sync::Arc::new(Sessions::new(chrono::Duration::seconds(4)));
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;

    // web-01 managed and backed up (full) by the job runner.
    let host = support::kvm::TestHost::start(lab_dir.join("hosts/kvm-prod-01")).await;
    let p: Platform = api.add_host(&host).await;
    let found: DiscoverVmsResponse = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": p.id})), StatusCode::OK).await;
    let web = found.vms.iter().find(|v| v.vm.name == "web-01").expect("web-01 in the lab");
    let added: BulkAddResponse =
        api.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": p.id, "vm_ids": [web.vm.id]})), StatusCode::OK).await;
    let vm = added.added[0].id.clone();
    let queued: QueuedJobs =
        api.ok("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm], "backup_type": "full"})), StatusCode::ACCEPTED).await;
    let job = queued.jobs[0].id.clone();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let j: Value = api.ok("GET", &format!("/api/v1/jobs/{job}"), None, StatusCode::OK).await;
        match j["job"]["status"].as_str() {
            Some("completed") => break,
            Some("failed" | "cancelled") => panic!("the backup ended {}", j["job"]),
            _ if Instant::now() > until => panic!("the backup did not finish in 120 s: {}", j["job"]),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let points: BackupPage = api.ok("GET", &format!("/api/v1/backup/list?vm={vm}"), None, StatusCode::OK).await;
    let backup = points.items[0].id.clone();

    // A session: the partition table and filesystems, read from the store.
    let m: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": backup})), StatusCode::CREATED).await;
    eprintln!("METRIC file_restore_open_ms={} volumes={:?}", m.open_ms, m.volumes.iter().map(|v| (&v.id, &v.filesystem, v.browsable)).collect::<Vec<_>>());
    assert_eq!(m.vm_name, "web-01");
    let ext4: Vec<_> = m.volumes.iter().filter(|v| v.filesystem == "ext4").collect();
    assert!(!ext4.is_empty() && ext4.iter().all(|v| v.browsable && v.partition.is_some()), "{:?}", m.volumes);
    for v in m.volumes.iter().filter(|v| !v.browsable) {
        assert!(v.note.is_some(), "an unbrowsable volume says why: {v:?}");
    }
    let base = format!("/api/v1/restore/{}", m.id);
    let root: FileListing = api.ok("GET", &format!("{base}/files?path=/"), None, StatusCode::OK).await;
    assert_eq!(root.total as usize, m.volumes.len());

    // The volume with /etc/hostname: that file's bytes are what the lab wrote.
    let mut system = None;
    for v in &ext4 {
        let reply = api.call("GET", &format!("{base}/download?path={}", enc(&format!("/{}/etc/hostname", v.id))), None).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.bytes, b"web-01\n");
            assert_eq!(reply.headers["content-disposition"], "attachment; filename=\"hostname\"");
            system = Some(v.id.clone());
        }
    }
    let vol = system.expect("a volume holds /etc/hostname");
    let etc: FileListing = api.ok("GET", &format!("{base}/files?path=/{vol}/etc&limit=1000"), None, StatusCode::OK).await;
    let names: Vec<&str> = etc.entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries come sorted by name");
    let hostname = etc.entries.iter().find(|e| e.name == "hostname").unwrap();
    assert_eq!((hostname.kind, hostname.size, hostname.path.as_str()), (FileKind::File, 7, format!("/{vol}/etc/hostname").as_str()));
    assert!(hostname.mode.is_some() && hostname.modified.is_some(), "{hostname:?}");
    // Pages: two halves make the whole.
    let half = etc.total / 2;
    let a: FileListing = api.ok("GET", &format!("{base}/files?path=/{vol}/etc&limit={half}"), None, StatusCode::OK).await;
    let b: FileListing = api.ok("GET", &format!("{base}/files?path=/{vol}/etc&offset={half}&limit=1000"), None, StatusCode::OK).await;
    let joined: Vec<String> = a.entries.iter().chain(&b.entries).map(|e| e.name.clone()).collect();
    assert_eq!(joined, names);

    // A directory as a tar stream: relative names under its own name, the site config inside.
    let started = Instant::now();
    let reply = api.call("GET", &format!("{base}/download?path=/{vol}/etc/nginx"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/x-tar");
    let mut archive = tar::Archive::new(reply.bytes.as_slice());
    let mut site = None;
    let mut n = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        assert!(path.is_relative() && path.starts_with("nginx") && !path.components().any(|c| c == std::path::Component::ParentDir), "{path:?}");
        if path == Path::new("nginx/sites-available/shop.example.com") {
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            site = Some(s);
        }
        n += 1;
    }
    eprintln!("METRIC file_restore_tar_entries={n} bytes={} ms={}", reply.bytes.len(), started.elapsed().as_millis());
    assert!(site.expect("the site config is in the archive").contains("server_name shop.example.com"));

    // Bad input: each a 4xx naming the problem.
    api.error(&format!("{base}/files?path=/{vol}/../../etc"), StatusCode::BAD_REQUEST, "invalid_path").await;
    api.error(&format!("{base}/files?path=/{vol}/etc/%00x"), StatusCode::BAD_REQUEST, "invalid_character").await;
    api.error(&format!("{base}/files?path=/{vol}/etc/a%01b"), StatusCode::BAD_REQUEST, "invalid_path").await;
    let msg = api.error(&format!("{base}/files?path=/{vol}/no/such/dir"), StatusCode::NOT_FOUND, "path_not_found").await;
    assert!(msg.contains("no"), "{msg}");
    api.error(&format!("{base}/files?path=/disk9-p9"), StatusCode::NOT_FOUND, "volume_not_found").await;
    api.error(&format!("{base}/files?path=/{vol}/etc/hostname"), StatusCode::UNPROCESSABLE_ENTITY, "not_a_directory").await;
    api.error(&format!("{base}/download?path=/"), StatusCode::BAD_REQUEST, "invalid_path").await;
    api.error(&format!("{base}/files?path=/&limit=0"), StatusCode::BAD_REQUEST, "invalid_field").await;
    api.error("/api/v1/restore/nope/files?path=/", StatusCode::NOT_FOUND, "mount_not_found").await;
    let reply = api.call("POST", "/api/v1/restore/mount", Some(json!({"backup_id": "nope"}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let (_, viewer) = api.f.user_with_role("watcher", Role::Viewer).await;
    let reply = api.f.call("GET", "/api/v1/restore/mounts", Some(&viewer), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "a viewer cannot read backed-up files: {}", reply.body);

    // Listed while open; closed on request; expired when idle.
    let open: Vec<Mount> = api.ok("GET", "/api/v1/restore/mounts", None, StatusCode::OK).await;
    assert_eq!(open.len(), 1);
    let second: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": backup})), StatusCode::CREATED).await;
    assert_eq!(api.call("DELETE", &format!("/api/v1/restore/{}", second.id), None).await.status, StatusCode::NO_CONTENT);
    api.error(&format!("/api/v1/restore/{}", second.id), StatusCode::NOT_FOUND, "mount_not_found").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let msg = api.error(&format!("{base}/files?path=/"), StatusCode::GONE, "mount_expired").await;
    assert!(msg.contains("without use"), "{msg}");

    // The restore point's data gone from the repository: opening says so.
    let packs = api.f.data.path().join("repos/local/packs");
    let mut removed = 0;
    for entry in walk(&packs) {
        std::fs::remove_file(entry).unwrap();
        removed += 1;
    }
    assert!(removed > 0, "the backup wrote packs under {}", packs.display());
    let reply = api.call("POST", "/api/v1/restore/mount", Some(json!({"backup_id": backup}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let e: ErrorBody = reply.json();
    assert_eq!(e.code, "restore_point_unreadable", "{}", reply.body);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
