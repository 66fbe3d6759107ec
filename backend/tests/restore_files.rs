//! Restoring selected files of a file-level restore session
//! (`POST /restore/{mount_id}/restore-files`) on the real demo lab with the
//! real tools: web-01 is backed up by the job runner, then
//!
//! * its `/etc/nginx` and `/etc/hostname` land in a host directory, byte for
//!   byte what the session downloads, with times, modes and the link; the
//!   conflict policies, links planted to escape the destination, traversal
//!   and the other bad requests each behave as documented;
//! * files go back into web-01's ext4 root (to where they were, after the lab
//!   changed one, and into a new `/restored`), proven by reading the qcow2
//!   with guest-fs, by `e2fsck -fn`, and by a new incremental backup (the
//!   dirty bitmap recorded the writes); into win-01's FAT ESP and NTFS C:;
//!   a running VM, a full filesystem and bad targets are refused with the
//!   disk unchanged.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::http::StatusCode;
use guest_fs::{EntryKind, GuestPath};
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, InitOptions};
use sendense::platforms::nbd::{QemuNbd, QemuNbdOptions};
use sendense::platforms::{NewDisk, NewVm, Platform as _};
use sendense::restore::into_disk::NbdDisk;
use serde_json::{json, Value};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, PowerAction, PowerState};
use shared_types::jobs::{Job, JobDetails, JobKind, JobStatus};
use shared_types::restore::{FileKind, FileListing, FileRestoreResult, Mount};

mod support;

use support::api::Api;
use support::kvm::TestHost;

/// A lab with web-01 managed and backed up, and a session on that backup.
struct Lab {
    dir: tempfile::TempDir,
    api: Api,
    host: TestHost,
    platform: shared_types::discovery::Platform,
    web: String,
    mount: Mount,
    /// web-01's ext4 root volume (`vda-p1`).
    vol: String,
}

async fn lab() -> Lab {
    // The restore's own log line carries its phases' times and the bytes
    // written into the disk (shown with --nocapture).
    let _ = tracing_subscriber::fmt().with_env_filter("sendense::restore=info").with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let mut f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    // Host-directory restores land under the lab's `out` (the restore root).
    let mut roots = (*f.state.roots).clone();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    roots.set_restore_roots(&[dir.path().join("out")]);
    f.state.roots = Arc::new(roots);
    let api = Api::admin(f).await;
    let host = TestHost::start(lab_dir.join("hosts/kvm-prod-01")).await;
    let platform = api.add_host(&host).await;
    let web = api.manage(&platform, &["web-01"]).await.remove(0);
    let backup = api.back_up(&web, "full").await;
    let mount: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": backup})), StatusCode::CREATED).await;
    let vol = mount.volumes.iter().find(|v| v.filesystem == "ext4").expect("an ext4 volume").id.clone();
    Lab { dir, api, host, platform, web, mount, vol }
}

impl Lab {
    fn url(&self) -> String {
        format!("/api/v1/restore/{}/restore-files", self.mount.id)
    }

    /// Queues a file restore (202 with a `file_restore` job) and waits for
    /// it; the job's details.
    async fn run(&self, body: Value) -> JobDetails {
        let job: Job = self.api.ok("POST", &self.url(), Some(body.clone()), StatusCode::ACCEPTED).await;
        assert_eq!((job.kind, job.status), (JobKind::FileRestore, JobStatus::Queued), "{job:?}");
        let details = self.api.wait(&job.id, 180).await;
        serde_json::from_value(details).unwrap()
    }

    /// A file restore job that completes; its result.
    async fn restore(&self, body: Value) -> FileRestoreResult {
        let d = self.run(body.clone()).await;
        assert_eq!(d.job.status, JobStatus::Completed, "{body}: {:?} {:?}", d.job.error, d.logs);
        let r = d.file_restore.clone().expect("a completed file restore has its result");
        assert_eq!(d.job.bytes_written, r.bytes, "the job's progress counts the bytes written");
        if r.files > 0 {
            assert!(d.logs.iter().any(|l| l.message.starts_with("written: ")), "{:?}", d.logs);
        }
        for s in r.skipped.iter().take(5) {
            assert!(d.logs.iter().any(|l| l.message.contains(&s.path) && l.message.contains("skipped")), "skipped {} is in the log: {:?}", s.path, d.logs);
        }
        eprintln!("METRIC restore_files {} files={} dirs={} links={} bytes={} skipped={} ms={}", r.destination, r.files, r.directories, r.symlinks, r.bytes, r.skipped_total, r.duration_ms);
        r
    }

    /// A file restore job that fails; its error (the disk is left as it was).
    async fn fails(&self, body: Value) -> String {
        let d = self.run(body.clone()).await;
        assert_eq!(d.job.status, JobStatus::Failed, "{body}: {:?}", d.job);
        let e = d.job.error.clone().expect("a failed job says why");
        assert!(d.logs.iter().any(|l| l.message == e), "the reason is in the log: {:?}", d.logs);
        e
    }

    async fn download(&self, path: &str) -> Vec<u8> {
        let reply = self.api.call("GET", &format!("/api/v1/restore/{}/download?path={path}", self.mount.id), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        reply.bytes
    }

    async fn listing(&self, path: &str) -> FileListing {
        self.api.ok("GET", &format!("/api/v1/restore/{}/files?path={path}&limit=1000", self.mount.id), None, StatusCode::OK).await
    }
}

fn host_dir(to: &Path) -> Value {
    json!({"kind": "host_directory", "path": to.display().to_string()})
}

/// Checks the host tree `root` against a tar of the same directory.
fn same_as_tar(tar_bytes: &[u8], root: &Path) -> usize {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut n = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let rel = entry.path().unwrap().into_owned();
        let on_host = root.join(&rel);
        let meta = std::fs::symlink_metadata(&on_host).unwrap_or_else(|e| panic!("{} restored: {e}", on_host.display()));
        let header = entry.header().clone();
        match header.entry_type() {
            tar::EntryType::Regular => {
                let mut want = Vec::new();
                entry.read_to_end(&mut want).unwrap();
                assert!(meta.file_type().is_file(), "{rel:?}");
                assert_eq!(std::fs::read(&on_host).unwrap(), want, "{rel:?} bytes");
                assert_eq!(meta.mode() & 0o777, header.mode().unwrap() & 0o777, "{rel:?} mode");
                assert_eq!(meta.mtime() as u64, header.mtime().unwrap(), "{rel:?} mtime");
            }
            tar::EntryType::Symlink => {
                assert!(meta.file_type().is_symlink(), "{rel:?} is a link");
                assert_eq!(std::fs::read_link(&on_host).unwrap(), header.link_name().unwrap().unwrap().into_owned(), "{rel:?} target");
            }
            tar::EntryType::Directory => {
                assert!(meta.is_dir(), "{rel:?}");
                assert_eq!(meta.mode() & 0o777, header.mode().unwrap() & 0o777, "{rel:?} mode");
            }
            other => panic!("unexpected {other:?} in the archive"),
        }
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_files_are_restored_to_a_host_directory() {
    let lab = lab().await;
    let (vol, url) = (lab.vol.clone(), lab.url());
    let out = lab.dir.path().join("out");
    let dest = out.join("dest");
    let paths = json!([format!("/{vol}/etc/nginx"), format!("/{vol}/etc/hostname")]);

    // Into a directory that does not exist yet: created.
    let r = lab.restore(json!({"paths": paths, "destination": host_dir(&dest), "conflict": "skip"})).await;
    assert_eq!(std::fs::read(dest.join("hostname")).unwrap(), b"web-01\n");
    let tar = lab.download(&format!("/{vol}/etc/nginx")).await;
    let entries = same_as_tar(&tar, &dest);
    assert_eq!(r.files + r.directories + r.symlinks, entries as u64 + 1, "{r:?}");
    assert!(r.symlinks >= 1 && r.skipped.is_empty() && r.skipped_total == 0, "{r:?}");
    assert!(r.destination.contains(&dest.display().to_string()), "{}", r.destination);
    let link = dest.join("nginx/sites-enabled/shop.example.com");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../sites-available/shop.example.com"));
    let hostname = lab.listing(&format!("/{vol}/etc")).await.entries.into_iter().find(|e| e.name == "hostname").unwrap();
    let meta = std::fs::metadata(dest.join("hostname")).unwrap();
    assert_eq!(meta.mtime(), hostname.modified.unwrap().timestamp());
    assert_eq!(meta.permissions().mode() & 0o777, hostname.mode.unwrap() & 0o777);

    // Conflicts: skip leaves what is there, overwrite replaces it, keep_both adds a copy.
    std::fs::write(dest.join("hostname"), b"changed\n").unwrap();
    let r = lab.restore(json!({"paths": paths, "destination": host_dir(&dest), "conflict": "skip"})).await;
    assert_eq!((r.files, r.symlinks), (0, 0), "{r:?}");
    assert_eq!(r.skipped_total as usize, entries - r.directories as usize + 1, "every file and link skipped: {r:?}");
    assert!(r.skipped.iter().any(|s| s.path == format!("/{vol}/etc/hostname") && s.reason.contains("skip")), "{:?}", r.skipped);
    assert_eq!(std::fs::read(dest.join("hostname")).unwrap(), b"changed\n");
    let r = lab.restore(json!({"paths": paths, "destination": host_dir(&dest), "conflict": "overwrite"})).await;
    assert_eq!(std::fs::read(dest.join("hostname")).unwrap(), b"web-01\n");
    assert!(r.skipped.is_empty() && r.files >= 2, "{r:?}");
    same_as_tar(&tar, &dest);
    std::fs::write(dest.join("hostname"), b"changed\n").unwrap();
    let r = lab.restore(json!({"paths": [format!("/{vol}/etc/hostname")], "destination": host_dir(&dest), "conflict": "keep_both"})).await;
    assert_eq!(r.files, 1);
    assert_eq!(std::fs::read(dest.join("hostname")).unwrap(), b"changed\n");
    let copies: Vec<String> = std::fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("hostname.restored-")).collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].len(), "hostname.restored-YYYYMMDD-HHMMSS".len(), "{copies:?}");
    assert_eq!(std::fs::read(dest.join(&copies[0])).unwrap(), b"web-01\n");
    assert!(std::fs::read_dir(&dest).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".sendense-restore-")), "no temporary file left");

    // Escapes: a link restored first, then a file of the same name, must not
    // write through the link (it points at ../sites-available/... outside).
    let esc = out.join("escape");
    let sentinel = esc.join("sites-available/shop.example.com");
    std::fs::create_dir_all(sentinel.parent().unwrap()).unwrap();
    std::fs::write(&sentinel, b"sentinel").unwrap();
    let dest2 = esc.join("dest");
    let pair = json!([format!("/{vol}/etc/nginx/sites-enabled/shop.example.com"), format!("/{vol}/etc/nginx/sites-available/shop.example.com")]);
    let r = lab.restore(json!({"paths": pair, "destination": host_dir(&dest2), "conflict": "overwrite"})).await;
    assert_eq!((r.symlinks, r.files), (1, 1), "{r:?}");
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"sentinel", "nothing written outside the destination");
    let landed = dest2.join("shop.example.com");
    assert!(std::fs::symlink_metadata(&landed).unwrap().is_file(), "the link itself was replaced by the file");
    assert!(String::from_utf8(std::fs::read(&landed).unwrap()).unwrap().contains("server_name shop.example.com"));
    // Links planted at the destination beforehand: a directory and a file name.
    let outside = esc.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"victim").unwrap();
    let dest3 = esc.join("planted");
    std::fs::create_dir_all(&dest3).unwrap();
    std::os::unix::fs::symlink(&outside, dest3.join("nginx")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), dest3.join("hostname")).unwrap();
    for conflict in ["overwrite", "skip", "keep_both"] {
        lab.restore(json!({"paths": paths, "destination": host_dir(&dest3), "conflict": conflict})).await;
        let mut inside: Vec<String> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        inside.sort();
        assert_eq!(inside, vec!["victim"], "{conflict}: nothing landed through the planted link");
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"victim", "{conflict}");
    }
    assert!(std::fs::symlink_metadata(dest3.join("nginx")).unwrap().file_type().is_symlink(), "a link is not replaced by a directory");
    assert_eq!(std::fs::read(dest3.join("hostname")).unwrap(), b"web-01\n");
    assert!(std::fs::symlink_metadata(dest3.join("hostname")).unwrap().is_file(), "overwrite replaced the planted link itself");
    let kept: Vec<String> = std::fs::read_dir(&dest3).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("nginx.restored-")).collect();
    assert_eq!(kept.len(), 1, "keep_both restored the directory beside the link: {kept:?}");
    let copy = std::fs::read(dest3.join(&kept[0]).join("sites-available/shop.example.com")).unwrap();
    assert!(String::from_utf8(copy).unwrap().contains("server_name shop.example.com"));

    // Something larger: logs and the site, MBs in a hundred files.
    let bulk = out.join("bulk");
    let r = lab.restore(json!({"paths": [format!("/{vol}/var/log/nginx"), format!("/{vol}/var/www")], "destination": host_dir(&bulk), "conflict": "skip"})).await;
    assert!(r.files > 100 && r.bytes > 1 << 20, "{r:?}");
    assert_eq!(std::fs::read(bulk.join("nginx/access.log.1")).unwrap(), lab.download(&format!("/{vol}/var/log/nginx/access.log.1")).await);

    // Bad requests, each a 4xx naming the problem; nothing written.
    let body = |paths: Value, dest: Value| json!({"paths": paths, "destination": dest, "conflict": "skip"});
    let d = host_dir(&out.join("bad"));
    let m = lab.api.refused(&url, body(json!([format!("/{vol}/etc/../../etc/passwd")]), d.clone()), StatusCode::BAD_REQUEST, "invalid_path").await;
    assert!(m.contains(".."), "{m}");
    lab.api.refused(&url, body(json!([format!("/{vol}/../{vol}/etc/hostname")]), d.clone()), StatusCode::BAD_REQUEST, "invalid_path").await;
    lab.api.refused(&url, body(json!([format!("/{vol}")]), d.clone()), StatusCode::BAD_REQUEST, "invalid_path").await;
    lab.api.refused(&url, body(json!([]), d.clone()), StatusCode::BAD_REQUEST, "invalid_field").await;
    let many: Vec<String> = (0..1001).map(|i| format!("/{vol}/etc/f{i}")).collect();
    assert!(lab.api.refused(&url, body(json!(many), d.clone()), StatusCode::BAD_REQUEST, "invalid_field").await.contains("1000"));
    let m = lab.api.refused(&url, body(json!([format!("/{vol}/etc/hostname"), "/vda-p2/x"]), d.clone()), StatusCode::BAD_REQUEST, "mixed_volumes").await;
    assert!(m.contains("vda-p2"), "{m}");
    let m = lab.api.refused(&url, body(json!([format!("/{vol}/etc/no-such-file")]), d.clone()), StatusCode::NOT_FOUND, "path_not_found").await;
    assert!(m.contains("no-such-file"), "{m}");
    lab.api.refused(&url, body(json!(["/vda-p2/x"]), d.clone()), StatusCode::UNPROCESSABLE_ENTITY, "volume_not_browsable").await;
    lab.api.refused(&url, body(json!(["/disk9-p9/x"]), d.clone()), StatusCode::NOT_FOUND, "volume_not_found").await;
    let m = lab.api.refused(&url, body(json!([format!("/{vol}/etc/hostname")]), json!({"kind": "host_directory", "path": "relative/dir"})), StatusCode::BAD_REQUEST, "invalid_field").await;
    assert!(m.contains("absolute"), "{m}");
    let file = out.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    lab.api.refused(&url, body(json!([format!("/{vol}/etc/hostname")]), host_dir(&file)), StatusCode::UNPROCESSABLE_ENTITY, "destination_not_a_directory").await;
    let m = lab.api.refused(&url, body(json!([format!("/{vol}/etc/hostname")]), host_dir(&file.join("below"))), StatusCode::UNPROCESSABLE_ENTITY, "destination_unusable").await;
    assert!(m.contains("parents is a file"), "{m}");
    assert!(!out.join("bad").exists(), "refused requests write nothing");
    for bad in [json!({"paths": "x", "destination": d, "conflict": "skip"}), json!({"paths": [], "destination": d, "conflict": "merge"}), json!({"paths": [], "destination": {"kind": "cloud"}, "conflict": "skip"})] {
        let r = lab.api.call("POST", &url, Some(bad.clone())).await;
        assert!(r.status.is_client_error(), "{bad}: {} {}", r.status, r.body);
    }
    lab.api.refused("/api/v1/restore/nope/restore-files", body(json!([format!("/{vol}/etc/hostname")]), d.clone()), StatusCode::NOT_FOUND, "mount_not_found").await;
    let (_, viewer) = lab.api.f.user_with_role("watcher", shared_types::auth::Role::Viewer).await;
    let r = lab.api.f.call("POST", &url, Some(&viewer), Some(body(json!([format!("/{vol}/etc/hostname")]), d.clone()))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    destinations_stay_in_the_restore_root(&lab).await;

    // Documented, and audited.
    let doc: Value = lab.api.f.call("GET", "/api/v1/openapi.json", None, None).await.json();
    assert!(doc["paths"].get("/restore/{mount_id}/restore-files").is_some(), "route missing from the OpenAPI document");
    for schema in ["FileRestoreRequest", "FileRestoreDestination", "ConflictPolicy", "FileRestoreResult", "SkippedFile"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
    }
    let audit: Value = lab.api.ok("GET", "/api/v1/audit?limit=200", None, StatusCode::OK).await;
    assert!(audit.to_string().contains("restore.files"), "restores are in the audit log");
    let _ = &lab.web;
}

/// The bytes of `path` in volume `volume` (partition number, `None` for a
/// whole disk) of the qcow2 `image`, read with guest-fs through qemu-nbd.
fn read_guest(image: &Path, volume: Option<u32>, path: &str) -> Result<(guest_fs::Entry, Vec<u8>), String> {
    let server = QemuNbd::start(image, &QemuNbdOptions::qcow2().read_only()).map_err(|e| e.to_string())?;
    let disk = Arc::new(NbdDisk::new(server.connect(&[]).map_err(|e| e.to_string())?));
    let result = (|| {
        let opened = guest_fs::open(disk.clone()).map_err(|e| e.to_string())?;
        let part = opened.partitions().iter().find(|p| p.number == volume).ok_or("no such volume")?;
        let fs = opened.filesystem(part.index).map_err(|e| e.to_string())?;
        let p = GuestPath::parse(path).unwrap();
        let entry = fs.stat(&p).map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        match entry.kind {
            EntryKind::File => {
                fs.open_file(&p).map_err(|e| e.to_string())?.read_to_end(&mut data).map_err(|e| e.to_string())?;
            }
            EntryKind::Symlink => data = entry.symlink_target.clone().unwrap_or_default().into_bytes(),
            _ => {}
        }
        Ok((entry, data))
    })();
    drop(disk);
    let _ = server.close();
    result
}

/// Runs a read-only filesystem check on one partition of `image`.
fn fsck(image: &Path, start: u64, size: u64, tool: &str, arg: &str, scratch: &Path) {
    let raw = scratch.join("check.raw");
    let _ = std::fs::remove_file(&raw);
    lab::image::extract(image, start, size, &raw).unwrap();
    let out = Command::new(tool).arg(arg).arg(&raw).output().unwrap();
    assert!(out.status.success(), "{tool} {arg} on {}: {}{}", image.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&raw).unwrap();
}

fn same_content(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(a).arg(b).status().unwrap().success()
}

/// Every file in `dir` with its bytes (links as their target).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let m = std::fs::symlink_metadata(&e).unwrap();
        let data = if m.file_type().is_symlink() { std::fs::read_link(&e).unwrap().into_os_string().into_encoded_bytes() } else if m.is_file() { std::fs::read(&e).unwrap() } else { Vec::new() };
        out.push((e, data));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The destination with path tricks (`..`, links planted inside the root
/// pointing out, absolute paths elsewhere, NUL bytes, very long names,
/// Unicode): every answer a 4xx or a 202 whose job writes inside the root;
/// a sentinel directory outside untouched.
async fn destinations_stay_in_the_restore_root(lab: &Lab) {
    let url = lab.url();
    let root = lab.dir.path().join("out");
    let sentinel = lab.dir.path().join("sentinel");
    std::fs::create_dir_all(sentinel.join("deep")).unwrap();
    std::fs::write(sentinel.join("keep.txt"), b"keep").unwrap();
    std::os::unix::fs::symlink(&sentinel, root.join("link-out")).unwrap();
    std::os::unix::fs::symlink("/", root.join("link-root")).unwrap();
    std::os::unix::fs::symlink("../sentinel", root.join("rel-out")).unwrap();
    let before = snapshot(&sentinel);
    let one = json!([format!("/{}/etc/hostname", lab.vol)]);
    let root_words = std::fs::canonicalize(&root).unwrap().display().to_string();

    // Named cases: outside, 422 naming the root.
    let data = lab.api.f.data.path().display().to_string();
    for dest in [
        sentinel.display().to_string(),
        format!("{}/link-out", root.display()),
        format!("{}/link-out/deep/x", root.display()),
        format!("{}/rel-out", root.display()),
        format!("{}/link-root/etc", root.display()),
        format!("{}/../sentinel", root.display()),
        format!("{}/new/../../sentinel", root.display()),
        data.clone(),
        format!("{data}/restores"),
        "/etc".into(),
        "/".into(),
    ] {
        let m = lab.api.refused(&url, json!({"paths": one, "destination": host_dir(Path::new(&dest)), "conflict": "overwrite"}), StatusCode::UNPROCESSABLE_ENTITY, "destination_not_allowed").await;
        assert!(m.contains(&root_words) && m.contains("--restore-root"), "{dest}: the allowed roots are named: {m}");
    }

    // Fuzz: pieces put together; never a 5xx; what is accepted lands inside.
    let long = "y".repeat(300);
    let pieces: Vec<String> = vec![
        "..".into(), ".".into(), "link-out".into(), "link-root".into(), "rel-out".into(), "new".into(), "\u{0}".into(), "é".into(), "🦀".into(),
        long, "".into(), "%2e%2e".into(), "sub".into(), "deep".into(), " ".into(),
    ];
    let starts: Vec<String> = vec![root.display().to_string(), format!("{}/sub", root.display()), sentinel.display().to_string(), "/".into(), data.clone(), "/tmp".into(), "relative".into()];
    let mut seed: u64 = 0x0dd5_eed5_0000_0005;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut tried, mut accepted) = (0, 0);
    for _ in 0..60 {
        let mut dest = starts[next(starts.len())].clone();
        for _ in 0..(1 + next(4)) {
            dest.push('/');
            dest.push_str(&pieces[next(pieces.len())]);
        }
        let conflict = ["skip", "overwrite", "keep_both"][next(3)];
        let body = json!({"paths": one, "destination": {"kind": "host_directory", "path": dest}, "conflict": conflict});
        let reply = lab.api.call("POST", &url, Some(body.clone())).await;
        assert!(reply.status == StatusCode::ACCEPTED || reply.status.is_client_error(), "{dest:?}: {} {}", reply.status, reply.body);
        tried += 1;
        if reply.status == StatusCode::ACCEPTED {
            accepted += 1;
            let resolved = sendense::confinement::resolve(Path::new(&dest));
            assert!(resolved.starts_with(std::fs::canonicalize(&root).unwrap()), "{dest:?} accepted, resolving to {}", resolved.display());
            let job: Job = reply.json();
            let d: JobDetails = serde_json::from_value(lab.api.wait(&job.id, 60).await).unwrap();
            assert!(matches!(d.job.status, JobStatus::Completed | JobStatus::Failed), "{dest:?}: {:?}", d.job);
        }
    }
    eprintln!("METRIC restore_destination_fuzz tried={tried} accepted={accepted}");
    assert!(accepted > 0, "some destinations inside the root were tried");
    assert_eq!(snapshot(&sentinel), before, "nothing landed outside the restore root");
    assert!(!lab.api.f.data.path().join("restores").join("hostname").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selected_files_are_restored_into_a_powered_off_vms_disk() {
    let lab = lab().await;
    let (vol, url) = (lab.vol.clone(), lab.url());
    let scratch = lab.dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let kvm = lab.host.platform();
    let web_disk = lab.host.vm("web-01").disk("vda").to_path_buf();
    let root = lab.mount.volumes.iter().find(|v| v.id == vol).unwrap().clone();
    let site = format!("/{vol}/etc/nginx/sites-available/shop.example.com");
    let site_bytes = lab.download(&site).await;

    // The lab's guest changes /etc/hostname (through qemu-io, so the bitmap sees it).
    let part = scratch.join("part.raw");
    lab::image::extract(&web_disk, root.start_bytes, root.size_bytes, &part).unwrap();
    let edited = scratch.join("edited.raw");
    sendense::sparse_file::copy(&part, &edited).unwrap();
    lab::filesystem::Editor::new(lab::filesystem::FsKind::Ext4, &edited, &scratch).unwrap().write("/etc/hostname", b"tampered\n").unwrap();
    let runs = lab::image::changed_runs(&part, &edited).unwrap();
    lab::image::write_runs(&web_disk, root.start_bytes, &edited, &runs, &scratch).unwrap();
    std::fs::remove_file(&part).unwrap();
    std::fs::remove_file(&edited).unwrap();
    assert_eq!(read_guest(&web_disk, root.partition, "/etc/hostname").unwrap().1, b"tampered\n");

    // Running (its QEMU started): refused, nothing touched.
    kvm.set_power("web-01", PowerState::Running).unwrap();
    let to_web = |volume: &str, directory: Option<&str>| {
        let mut d = json!({"kind": "vm_disk", "vm_id": lab.web, "volume": volume});
        if let Some(dir) = directory {
            d["directory"] = json!(dir);
        }
        d
    };
    let back = json!([format!("/{vol}/etc/hostname"), format!("/{vol}/etc/nginx")]);
    let m = lab.api.refused(&url, json!({"paths": back, "destination": to_web(&vol, None), "conflict": "overwrite"}), StatusCode::CONFLICT, "vm_running").await;
    assert!(m.contains("web-01") && m.contains("power it off"), "{m}");
    kvm.power("web-01", PowerAction::Stop, std::time::Duration::ZERO).unwrap();

    // Bad targets: 4xx when the request shows it, a failed job naming the
    // problem when only reading the disk does; the disk unchanged.
    let before = scratch.join("before.qcow2");
    std::fs::copy(&web_disk, &before).unwrap();
    let one = json!([format!("/{vol}/etc/hostname")]);
    let refuse = |dest: Value, status, code: &'static str| {
        let body = json!({"paths": one, "destination": dest, "conflict": "skip"});
        let api = &lab.api;
        let url = url.clone();
        async move { api.refused(&url, body, status, code).await }
    };
    // What only the job can find out fails the job, naming the problem.
    let fail = |dest: Value| {
        let body = json!({"paths": one, "destination": dest, "conflict": "skip"});
        let lab = &lab;
        async move { lab.fails(body).await }
    };
    let m = refuse(json!({"kind": "vm_disk", "vm_id": "no-such-vm", "volume": vol}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert!(m.contains("no-such-vm"), "{m}");
    let m = fail(to_web("vda-p9", None)).await;
    assert!(m.contains("vda-p1") && m.contains("vda-p2"), "the VM's volumes are listed: {m}");
    let m = fail(to_web("vda-p2", None)).await;
    assert!(m.contains("swap"), "{m}");
    let m = refuse(to_web("sdb1", None), StatusCode::UNPROCESSABLE_ENTITY, "volume_not_found").await;
    assert!(m.contains("vda-p1"), "{m}");
    refuse(to_web(&vol, Some("relative")), StatusCode::BAD_REQUEST, "invalid_field").await;
    refuse(to_web(&vol, Some("/etc/../..")), StatusCode::BAD_REQUEST, "invalid_field").await;
    let m = fail(to_web(&vol, Some("/etc/hostname/sub"))).await;
    assert!(m.contains("/etc/hostname"), "{m}");
    // Another process holding the image's write lock (a VM's QEMU would).
    let holder = QemuNbd::start(&web_disk, &QemuNbdOptions::qcow2()).unwrap();
    let m = fail(to_web(&vol, None)).await;
    assert!(m.contains("write lock"), "{m}");
    holder.close().unwrap();
    assert!(same_content(&web_disk, &before), "refused requests leave the disk as it was");

    // Back to where they were (overwrite): the tampered hostname is repaired.
    let r = lab.restore(json!({"paths": back, "destination": to_web(&vol, None), "conflict": "overwrite"})).await;
    assert!(r.files >= 3 && r.symlinks == 1 && r.skipped.is_empty(), "{r:?}");
    assert_eq!(r.destination, format!("web-01 {vol} (original locations)"));
    // Into a new directory, with the link; and once more with keep_both.
    let r = lab.restore(json!({"paths": back, "destination": to_web(&vol, Some("/restored")), "conflict": "skip"})).await;
    assert!(r.files >= 3 && r.symlinks == 1 && r.skipped.is_empty(), "{r:?}");
    let r = lab.restore(json!({"paths": one, "destination": to_web(&vol, Some("/restored")), "conflict": "keep_both"})).await;
    assert_eq!(r.files, 1, "{r:?}");
    let r = lab.restore(json!({"paths": one, "destination": to_web(&vol, Some("/restored")), "conflict": "skip"})).await;
    assert_eq!((r.files, r.skipped_total), (0, 1), "{r:?}");

    // In the guest filesystem, with the right bytes, modes, owners and times.
    let (e, data) = read_guest(&web_disk, root.partition, "/etc/hostname").unwrap();
    assert_eq!(data, b"web-01\n");
    let src = lab.listing(&format!("/{vol}/etc")).await.entries.into_iter().find(|x| x.name == "hostname").unwrap();
    assert_eq!((e.mode.map(|m| m & 0o7777), e.uid, e.gid, e.mtime), (src.mode, src.uid, src.gid, src.modified.map(|t| t.timestamp())));
    assert_eq!(read_guest(&web_disk, root.partition, "/restored/hostname").unwrap().1, b"web-01\n");
    assert_eq!(read_guest(&web_disk, root.partition, "/restored/nginx/sites-available/shop.example.com").unwrap().1, site_bytes);
    let (link, target) = read_guest(&web_disk, root.partition, "/restored/nginx/sites-enabled/shop.example.com").unwrap();
    assert_eq!((link.kind, target.as_slice()), (EntryKind::Symlink, b"../sites-available/shop.example.com".as_slice()));
    fsck(&web_disk, root.start_bytes, root.size_bytes, "e2fsck", "-fn", &scratch);
    let info = String::from_utf8(Command::new("qemu-img").args(["info", "-U", "--output=json"]).arg(&web_disk).output().unwrap().stdout).unwrap();
    assert!(!info.contains("in-use") && info.contains("sendense-"), "the dirty bitmap is kept and closed cleanly: {info}");

    // A new incremental backup carries the restored files: the disk's
    // change tracking recorded the write-back.
    let second = lab.api.back_up(&lab.web, "incremental").await;
    let points: Value = lab.api.ok("GET", &format!("/api/v1/backup/list?vm={}", lab.web), None, StatusCode::OK).await;
    let newest = points["items"].as_array().unwrap().iter().find(|b| b["id"] == second.as_str()).unwrap();
    assert_eq!(newest["backup_type"], "incremental", "{newest}");
    let m2: Mount = lab.api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": second})), StatusCode::CREATED).await;
    for (path, want) in [("etc/hostname", b"web-01\n".to_vec()), ("restored/hostname", b"web-01\n".to_vec()), ("restored/nginx/sites-available/shop.example.com", site_bytes.clone())] {
        let reply = lab.api.call("GET", &format!("/api/v1/restore/{}/download?path=/{vol}/{path}", m2.id), None).await;
        assert_eq!((reply.status, &reply.bytes), (StatusCode::OK, &want), "{path} in the new backup");
    }
    let listing: FileListing = lab.api.ok("GET", &format!("/api/v1/restore/{}/files?path=/{vol}/restored", m2.id), None, StatusCode::OK).await;
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert!(names.len() == 3 && names.contains(&"nginx") && names.iter().any(|n| n.starts_with("hostname.restored-")), "{names:?}");
    assert!(listing.entries.iter().any(|e| e.name == "nginx" && e.kind == FileKind::Directory));

    // win-01: its FAT ESP and its NTFS C: volume.
    let platform = &lab.platform;
    let win = lab.api.manage(platform, &["win-01"]).await.remove(0);
    let (win_target, win_disk) = lab.host.vm("win-01").disks[0].clone();
    let win_vol = |n: u8| format!("{win_target}-p{n}");
    let to_win = |volume: &str, directory: &str| json!({"kind": "vm_disk", "vm_id": win, "volume": volume, "directory": directory});
    let layout = lab::LabManifest::read(&lab.dir.path().join("lab")).unwrap();
    let win_parts = layout.hosts[0].vms.iter().find(|v| v.name == "win-01").unwrap().disks[0].partitions.clone();
    let (esp, ntfs) = (&win_parts[0], &win_parts[2]);

    let r = lab.restore(json!({"paths": back, "destination": to_win(&win_vol(1), "/restored"), "conflict": "skip"})).await;
    assert!(r.files >= 3 && r.symlinks == 0, "{r:?}");
    assert!(r.skipped.iter().any(|s| s.path.ends_with("sites-enabled/shop.example.com") && s.reason.contains("FAT")), "the link is reported: {:?}", r.skipped);
    assert_eq!(read_guest(&win_disk, Some(1), "/restored/hostname").unwrap().1, b"web-01\n");
    assert_eq!(read_guest(&win_disk, Some(1), "/restored/nginx/sites-available/shop.example.com").unwrap().1, site_bytes);
    let (e, _) = read_guest(&win_disk, Some(1), "/restored/hostname").unwrap();
    assert!(e.mtime.unwrap().abs_diff(src.modified.unwrap().timestamp()) <= 2, "FAT keeps the time (2 s resolution): {e:?}");
    fsck(&win_disk, esp.start, esp.size, "fsck.fat", "-n", &scratch);
    let r = lab.restore(json!({"paths": one, "destination": to_win(&win_vol(1), "/RESTORED"), "conflict": "keep_both"})).await;
    assert_eq!(r.files, 1, "FAT names compare without case: {r:?}");

    let r = lab.restore(json!({"paths": back, "destination": to_win(&win_vol(3), "/Restored"), "conflict": "skip"})).await;
    assert!(r.files >= 3, "{r:?}");
    let r2 = lab.restore(json!({"paths": one, "destination": to_win(&win_vol(3), "/Windows"), "conflict": "overwrite"})).await;
    assert_eq!(r2.files, 1, "{r2:?}");
    let (e, data) = read_guest(&win_disk, Some(3), "/Restored/hostname").unwrap();
    assert_eq!((data.as_slice(), e.mtime), (b"web-01\n".as_slice(), src.modified.map(|t| t.timestamp())), "NTFS keeps the time");
    assert_eq!(read_guest(&win_disk, Some(3), "/Restored/nginx/sites-available/shop.example.com").unwrap().1, site_bytes);
    assert_eq!(read_guest(&win_disk, Some(3), "/Windows/hostname").unwrap().1, b"web-01\n");
    assert!(read_guest(&win_disk, Some(3), "/Windows/System32").is_ok(), "what was there stays");
    fsck(&win_disk, ntfs.start, ntfs.size, "ntfsfix", "-n", &scratch);
    let m = lab.fails(json!({"paths": back, "destination": to_win(&win_vol(3), "/Windows/NewDir"), "conflict": "skip"})).await;
    assert!(m.contains("NTFS") && m.contains("top-level"), "{m}");

    // A filesystem too small for the selection: refused before any write.
    let tiny = scratch.join("tiny.img");
    let mk = Command::new("mkfs.vfat").arg("-C").arg(&tiny).arg("1024").output().unwrap();
    assert!(mk.status.success(), "{}", String::from_utf8_lossy(&mk.stderr));
    kvm.create_vm(&NewVm {
        name: "tiny-01".into(),
        vcpus: 1,
        memory_mib: 256,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        role: None,
        nics: vec![],
        disks: vec![NewDisk { name: "vda".into(), image: tiny.clone(), image_format: DiskFormat::Raw, format: None, in_place: false }],
        power: PowerState::Stopped,
        definition: None,
        pool: None,
    })
    .unwrap();
    let tiny_vm = lab.api.manage(platform, &["tiny-01"]).await.remove(0);
    let tiny_disk = lab.host.disk_files("tiny-01")[0].1.clone();
    std::fs::copy(&tiny_disk, &before).unwrap();
    let logs = json!([format!("/{vol}/var/log/nginx")]);
    let m = lab.fails(json!({"paths": logs, "destination": {"kind": "vm_disk", "vm_id": tiny_vm, "volume": "vda", "directory": "/"}, "conflict": "skip"})).await;
    assert!(m.contains("bytes are needed") && m.contains("nothing was changed"), "{m}");
    assert!(same_content(&tiny_disk, &before), "the disk is unchanged");
    let r = lab.restore(json!({"paths": one, "destination": {"kind": "vm_disk", "vm_id": tiny_vm, "volume": "vda", "directory": "/"}, "conflict": "skip"})).await;
    assert_eq!(r.files, 1, "a whole-disk FAT12 volume takes a small file: {r:?}");
    assert_eq!(read_guest(&tiny_disk, None, "/hostname").unwrap().1, b"web-01\n");

    // Something larger: web-01's logs and site (MBs, a hundred files) into its own disk.
    let bulk = json!([format!("/{vol}/var/log/nginx"), format!("/{vol}/var/www")]);
    let r = lab.restore(json!({"paths": bulk, "destination": to_web(&vol, Some("/bulk")), "conflict": "skip"})).await;
    assert!(r.files > 100 && r.bytes > 1 << 20 && r.skipped.is_empty(), "{r:?}");
    let log = lab.download(&format!("/{vol}/var/log/nginx/access.log.1")).await;
    assert_eq!(read_guest(&web_disk, root.partition, "/bulk/nginx/access.log.1").unwrap().1, log);
    fsck(&web_disk, root.start_bytes, root.size_bytes, "e2fsck", "-fn", &scratch);

    let staging = lab.api.f.data.path().join("staging");
    let left: Vec<_> = std::fs::read_dir(&staging).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "staging emptied: {left:?}");
}
