//! Full VM restore through the API with the demo lab's VMs on real libvirt
//! hosts and real qemu-img: back up web-01 through the job runner, check and
//! restore it onto the DR host as qcow2 (powered on: its QEMU runs) and as
//! vmdk (cross-platform), compare each
//! restored disk with the restore point's image, refuse the vmdk restore on
//! the standard tier, refuse bad input with a 4xx naming the problem, and
//! leave no VM on the target when a restore is stopped mid-way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sea_orm::EntityTrait;
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::{backups, repositories};
use sendense::engine::progress::Progress;
use sendense::lab::{self, InitOptions};
use serde_json::{json, Value};
use shared_types::backups::BackupPage;
use shared_types::discovery::{BulkAddResponse, DiscoverVmsResponse, Platform};
use shared_types::error::ErrorBody;
use shared_types::jobs::{Job, QueuedJobs};
use shared_types::recovery::{CompatibilityReport, LicenseFeatures, LicenseTier, NoteSeverity};

mod support;

use support::api::Api;
use support::kvm::TestHost;

fn same_image(a: &Path, a_format: &str, raw: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U", "-f", a_format, "-F", "raw"]).arg(a).arg(raw).status().unwrap().success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_restored_as_a_new_vm_on_the_dr_host() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let mut api = Api::admin(f).await;

    // Licence: the demo default is enterprise, everything enabled.
    let lic: LicenseFeatures = api.ok("GET", "/api/v1/license/features", None, StatusCode::OK).await;
    assert_eq!(lic.tier, LicenseTier::Enterprise);
    assert!(lic.features.iter().all(|f| f.enabled));

    // web-01 managed and backed up (full) by the job runner.
    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod: Platform = api.add_host(&prod_host).await;
    let dr: Platform = api.add_host(&dr_host).await;
    let found: DiscoverVmsResponse = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod.id})), StatusCode::OK).await;
    let web = found.vms.iter().find(|v| v.vm.name == "web-01").expect("web-01 in the lab");
    let added: BulkAddResponse =
        api.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod.id, "vm_ids": [web.vm.id]})), StatusCode::OK).await;
    let vm = added.added[0].id.clone();
    let queued: QueuedJobs = api.ok("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm], "backup_type": "full"})), StatusCode::ACCEPTED).await;
    let j = api.wait(&queued.jobs[0].id, 120).await;
    assert_eq!(j["job"]["status"], "completed", "{}", j["job"]);
    let points: BackupPage = api.ok("GET", &format!("/api/v1/backup/list?vm={vm}"), None, StatusCode::OK).await;
    let backup = points.items[0].id.clone();

    // The restore point's disks as raw images, by the engine.
    let row = backups::Entity::find_by_id(backup.clone()).one(&api.f.state.db).await.unwrap().unwrap();
    let repo = repositories::Entity::find_by_id(row.repository_id.clone()).one(&api.f.state.db).await.unwrap().unwrap();
    let raw_dir = dir.path().join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let (data, rn, ri, rd) = (api.f.data.path().to_path_buf(), row.snapshot_name.clone(), row.snapshot_id.clone(), raw_dir.clone());
    let raws: Vec<(String, PathBuf)> = tokio::task::spawn_blocking(move || {
        let ds = sendense::catalog::repositories::open_datastore(&data, &repo).unwrap();
        let m = ds.resolve(&rn, &ri).unwrap();
        m.disks
            .iter()
            .map(|d| {
                let out = rd.join(format!("{}.raw", d.name));
                sendense::engine::restore::restore(&ds, &rn, &ri, Some(&d.name), &out, 2, &Progress::new()).unwrap();
                (d.name.clone(), out)
            })
            .collect()
    })
    .await
    .unwrap();

    let body = |name: &str, format: Option<&str>| {
        let mut b = json!({"backup_id": backup, "target_platform_id": dr.id, "name": name, "power_on": true});
        if let Some(f) = format {
            b["disk_format"] = json!(f);
        }
        b
    };

    // Check: qcow2 to the DR host is fine, with notes and space figures.
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-restored", Some("qcow2"))), StatusCode::OK).await;
    eprintln!("check: {report:#?}");
    assert!(report.ok, "{report:?}");
    assert!(report.required_bytes > 0 && report.free_bytes > report.required_bytes);
    assert!(report.notes.iter().any(|n| n.message.contains("qcow2 is a native format")));
    assert!(report.estimated_seconds.is_some(), "an estimate from the backup's throughput");

    // Restore as qcow2, powered on.
    let mut restored = Vec::new();
    for (name, format) in [("web-01-restored", "qcow2"), ("web-01-vmdk", "vmdk")] {
        let t = Instant::now();
        let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body(name, Some(format))), StatusCode::ACCEPTED).await;
        assert_eq!(job.kind.as_str(), "restore");
        assert_eq!((job.backup_id.as_deref(), job.target_platform_id.as_deref()), (Some(backup.as_str()), Some(dr.id.as_str())));
        let done = api.wait(&job.id, 180).await;
        assert_eq!(done["job"]["status"], "completed", "{}", done);
        let secs = t.elapsed().as_secs_f64();
        let (data, logical) = (done["job"]["bytes_read"].as_u64().unwrap(), done["job"]["bytes_total"].as_u64().unwrap());
        assert!(data > 0 && data <= logical, "{done}");
        eprintln!(
            "METRIC vm_restore_{format} seconds={secs:.2} data_bytes={data} logical_bytes={logical} data_mb_s={:.1} logical_mb_s={:.1}",
            data as f64 / secs / 1e6,
            logical as f64 / secs / 1e6
        );
        let log: Vec<String> = done["logs"].as_array().map(|l| l.iter().filter_map(|x| x["message"].as_str().map(String::from)).collect()).unwrap_or_default();
        assert!(log.iter().any(|l| l.contains("created")) && log.iter().any(|l| l.contains("powered on")), "{log:?}");
        assert!(dr_host.is_running(name), "{name} was powered on: its QEMU runs");
        let files = dr_host.disk_files(name);
        for (disk, raw) in &raws {
            let (_, file) = files.iter().find(|(t, _)| t == disk).unwrap_or_else(|| panic!("{name} has disk {disk}: {files:?}"));
            assert!(same_image(file, format, raw), "{} equals the restore point's {disk}", file.display());
        }
        restored.push(name);
    }
    assert_eq!(dr_host.vm_names(), vec!["web-01-restored".to_string(), "web-01-vmdk".to_string()]);

    // Cross-platform check notes, and the standard tier refuses it.
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-x", Some("vmdk"))), StatusCode::OK).await;
    assert!(report.notes.iter().any(|n| n.message.starts_with("VMware format (vmdk) on a KVM/QEMU host")), "{report:?}");
    api.f.state.license_tier = LicenseTier::Standard;
    let lic: LicenseFeatures = api.ok("GET", "/api/v1/license/features", None, StatusCode::OK).await;
    assert!(lic.features.iter().any(|f| f.feature.as_str() == "cross_platform_restore" && !f.enabled && f.reason.is_some()));
    let m = api.refused("/api/v1/restore/start", body("web-01-x", Some("vmdk")), StatusCode::FORBIDDEN, "license_required").await;
    assert!(m.contains("Enterprise"), "{m}");
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-x", Some("vmdk"))), StatusCode::OK).await;
    assert!(!report.ok && report.blockers().any(|n| n.message.contains("Enterprise")));
    api.f.state.license_tier = LicenseTier::Enterprise;

    // Bad input: each a 4xx naming the problem.
    let mut b = body("x1", None);
    b["backup_id"] = json!("no-such-backup");
    assert!(api.refused("/api/v1/restore/start", b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await.contains("no-such-backup"));
    let mut b = body("x1", None);
    b["target_platform_id"] = json!("no-such-platform");
    assert!(api.refused("/api/v1/restore/check", b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await.contains("no-such-platform"));
    api.refused("/api/v1/restore/start", body("bad name/..", None), StatusCode::BAD_REQUEST, "invalid_field").await;
    api.refused("/api/v1/restore/start", body("", None), StatusCode::BAD_REQUEST, "invalid_field").await;
    let m = api.refused("/api/v1/restore/start", body("web-01-restored", None), StatusCode::CONFLICT, "vm_exists").await;
    assert!(m.contains("web-01-restored") && m.contains("confirm_overwrite"), "{m}");
    let mut b = body("web-01-restored", None);
    b["overwrite"] = json!(true);
    api.refused("/api/v1/restore/start", b.clone(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    b["confirm_overwrite"] = json!("web-01-RESTORED");
    api.refused("/api/v1/restore/start", b.clone(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    let mut b = body("x2", None);
    b["network_mapping"] = json!({"lan": "no-such-net"});
    assert!(api.refused("/api/v1/restore/start", b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await.contains("no-such-net"));
    let mut b = body("x2", None);
    b["disk_format"] = json!("ova");
    let r = api.call("POST", "/api/v1/restore/start", Some(b)).await;
    assert!(r.status.is_client_error(), "{}", r.body);

    // A blocker from the check: a restore point of a VM with more memory
    // (1 TiB) than the DR host has, made by the engine beside the real one.
    let repo = repositories::Entity::find_by_id(row.repository_id.clone()).one(&api.f.state.db).await.unwrap().unwrap();
    let (data, repo_row, rn, ri, work) = (api.f.data.path().to_path_buf(), repo.clone(), row.snapshot_name.clone(), row.snapshot_id.clone(), dir.path().to_path_buf());
    let big = tokio::task::spawn_blocking(move || {
        use sendense::engine::backup::{backup, BackupOptions, DiskSource};
        let ds = sendense::catalog::repositories::open_datastore(&data, &repo_row).unwrap();
        let m = ds.resolve(&rn, &ri).unwrap();
        let mut vm = m.vm.clone().expect("the restore point keeps its VM");
        vm.memory_mib = 1 << 20;
        let image = work.join("big.raw");
        std::fs::write(&image, vec![0x5a_u8; 1 << 20]).unwrap();
        let mut opts = BackupOptions::new(&rn);
        opts.vm = Some(vm);
        opts.vm_definition = m.vm_definition.clone();
        opts.workers = 1;
        let source = std::sync::Arc::new(sendense::engine::block_source::FileSource::open(&image).unwrap());
        let disks = [DiskSource { name: m.disks[0].name.clone(), source, changed_ranges: None, cbt_token: None }];
        backup(&ds, &opts, &disks, &Progress::new()).unwrap()
    })
    .await
    .unwrap();
    let big = sendense::catalog::backups::record(
        &api.f.state.db,
        sendense::catalog::backups::NewBackup { vm_context_id: &vm, job_id: None, repository_id: &repo.id, manifest: &big, immutable_days: 0, backup_type: None },
    )
    .await
    .unwrap();
    let mut b = body("x3", None);
    b["backup_id"] = json!(big.id);
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(b.clone()), StatusCode::OK).await;
    assert!(!report.ok && report.notes.iter().any(|n| n.severity == NoteSeverity::Blocker && n.message.contains("1048576 MiB")), "{report:?}");
    let m = api.refused("/api/v1/restore/start", b, StatusCode::CONFLICT, "restore_blocked").await;
    assert!(m.contains("1048576 MiB"), "{m}");

    // Overwrite with the right confirmation replaces the VM.
    let mut b = body("web-01-restored", Some("raw"));
    b["overwrite"] = json!(true);
    b["confirm_overwrite"] = json!("web-01-restored");
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(b), StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 180).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let files = dr_host.disk_files("web-01-restored");
    assert!(files[0].1.to_string_lossy().ends_with(".raw"), "{files:?}");
    assert!(same_image(&files[0].1, "raw", &raws[0].1), "the raw volume equals the restore point's disk");
    // Uploaded sparse: the 6 GiB raw volume takes about its data on the host.
    let (on_disk, data) = (std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&files[0].1).unwrap()) * 512, done["job"]["bytes_read"].as_u64().unwrap());
    assert!(on_disk <= 2 * data + (16 << 20), "the raw volume takes {on_disk} bytes on the host for {data} bytes of data");

    // A restore paused, resumed, then stopped mid-way (stop, and emergency
    // stop for a second one) leaves no VM and no staging behind.
    api.f.state.runner.set_read_limit(4 << 20);
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body("web-01-stopped", None)), StatusCode::ACCEPTED).await;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let j: Value = api.ok("GET", &format!("/api/v1/jobs/{}", job.id), None, StatusCode::OK).await;
        if j["job"]["status"] == "running" && j["job"]["bytes_read"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < until && j["job"]["status"] != "completed", "{}", j["job"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let paused: Job = api.ok("POST", &format!("/api/v1/jobs/{}/pause", job.id), None, StatusCode::OK).await;
    assert_eq!(paused.status.as_str(), "paused");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a: Value = api.ok("GET", &format!("/api/v1/jobs/{}", job.id), None, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b: Value = api.ok("GET", &format!("/api/v1/jobs/{}", job.id), None, StatusCode::OK).await;
    assert_eq!(a["job"]["bytes_read"], b["job"]["bytes_read"], "a paused restore holds still");
    assert_eq!(b["job"]["status"], "paused");
    let resumed: Job = api.ok("POST", &format!("/api/v1/jobs/{}/resume", job.id), None, StatusCode::OK).await;
    assert_eq!(resumed.status.as_str(), "running");
    let _: Job = api.ok("POST", &format!("/api/v1/jobs/{}/stop", job.id), None, StatusCode::OK).await;
    let done = api.wait(&job.id, 60).await;
    assert_eq!(done["job"]["status"], "cancelled", "{done}");
    assert!(done["job"]["error"].as_str().unwrap().contains("no VM was left"), "{done}");
    let second: Job = api.ok("POST", "/api/v1/restore/start", Some(body("web-01-emergency", None)), StatusCode::ACCEPTED).await;
    let dup = api.refused("/api/v1/restore/start", body("web-01-emergency", None), StatusCode::CONFLICT, "conflict").await;
    assert!(dup.contains("already"), "{dup}");
    let _: Value = api.ok("POST", "/api/v1/jobs/emergency-stop", None, StatusCode::OK).await;
    let done = api.wait(&second.id, 60).await;
    assert_eq!(done["job"]["status"], "cancelled", "{done}");
    api.f.state.runner.set_read_limit(0);
    assert_eq!(dr_host.vm_names(), vec!["web-01-restored".to_string(), "web-01-vmdk".to_string()], "nothing of the stopped restores on the target");
    let staging = api.f.data.path().join("staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "staging emptied");

    // A restore whose name was taken after it was queued fails and keeps the other VM.
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body("web-01-late", None)), StatusCode::ACCEPTED).await;
    let conn = dr_host.platform().connect().unwrap();
    conn.define_domain_xml("<domain type='qemu'><name>web-01-late</name><memory unit='MiB'>16</memory><os><type arch='x86_64'>hvm</type></os></domain>")
        .unwrap();
    let done = api.wait(&job.id, 180).await;
    assert_eq!(done["job"]["status"], "failed", "{done}");
    assert!(done["job"]["error"].as_str().unwrap().contains("already exists"), "{done}");
    assert_eq!(dr_host.vm_names().len(), 3, "the VM that took the name stays");
    let _ = restored;
}

#[tokio::test]
async fn restore_and_license_routes_are_documented_and_refuse_malformed_bodies() {
    let f = support::fixture().await;
    let doc: Value = f.call("GET", "/api/v1/openapi.json", None, None).await.json();
    for path in ["/restore/check", "/restore/start", "/license/features"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    for schema in ["RestoreVmRequest", "CompatibilityReport", "CompatibilityNote", "NoteSeverity", "LicenseFeatures", "LicenseTier", "LicenseFeature"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
    }
    let token = f.admin_token().await;
    let bad = [
        json!({}),
        json!({"backup_id": 1, "target_platform_id": "p", "name": "n"}),
        json!({"backup_id": "b", "target_platform_id": "p", "name": "n", "surprise": true}),
        json!({"backup_id": "b", "target_platform_id": "p", "name": "n", "disk_format": "ova"}),
        json!({"backup_id": "b", "target_platform_id": "p", "name": "n", "network_mapping": ["lan"]}),
        json!({"backup_id": "", "target_platform_id": "p", "name": "n"}),
        json!({"backup_id": "b\u{0}", "target_platform_id": "p", "name": "n"}),
        json!({"backup_id": "b", "target_platform_id": "p", "name": "n\u{7}"}),
        json!({"backup_id": "b", "target_platform_id": "p", "name": "n"}),
        json!([1, 2]),
    ];
    for path in ["/api/v1/restore/check", "/api/v1/restore/start"] {
        for body in &bad {
            let r = f.call("POST", path, Some(&token), Some(body.clone())).await;
            assert!(r.status.is_client_error(), "POST {path} {body}: {} {}", r.status, r.body);
            let e: ErrorBody = r.json();
            assert!(!e.message.is_empty());
        }
    }
    let viewer = f.user_with_role("watcher", shared_types::auth::Role::Viewer).await.1;
    let r = f.call("POST", "/api/v1/restore/start", Some(&viewer), Some(json!({"backup_id": "b", "target_platform_id": "p", "name": "n"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let lic: LicenseFeatures = f.call("GET", "/api/v1/license/features", Some(&viewer), None).await.json();
    assert_eq!(lic.tier, LicenseTier::Enterprise);
}
