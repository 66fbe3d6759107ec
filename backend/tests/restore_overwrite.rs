//! An overwrite restore never loses both VMs, with the demo lab's VMs on
//! real libvirt hosts and real qemu-img: web-01 restored to the DR host,
//! then overwritten by a restore whose disk conversion fails half-way (the
//! target "runs out of space"), by one stopped during the disk write, and by
//! one that succeeds. The failed and stopped ones leave the existing VM
//! (definition and disk) byte for byte as it was; the successful one
//! replaces it with a complete, powered-on VM. A switch interrupted by a
//! stop of the server is finished or undone when it starts again.
//!
//! One test in its own binary: it puts a failing `qemu-img` first on PATH
//! for a while.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, InitOptions};
use serde_json::{json, Value};
use shared_types::jobs::Job;

mod support;

use support::api::Api;
use support::kvm::TestHost;

/// The VM `name` on `host`: its definition and every disk's bytes.
fn state(host: &TestHost, name: &str) -> (String, Vec<(PathBuf, Vec<u8>)>) {
    let conn = host.platform().connect().unwrap();
    let xml = conn.lookup_domain_by_name(name).unwrap().xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).unwrap();
    let disks = host.disk_files(name).into_iter().map(|(_, f)| (f.clone(), std::fs::read(&f).unwrap())).collect();
    (xml, disks)
}

fn same_disk(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(a).arg(b).status().unwrap().success()
}

/// A `qemu-img` that fails converting a disk for the target's new VM (an
/// `.upload.` image) after writing part of it, like a target that runs out of space.
fn failing_qemu_img(dir: &Path) -> PathBuf {
    let real = String::from_utf8(Command::new("sh").args(["-c", "command -v qemu-img"]).output().unwrap().stdout).unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
if [ "$1" = convert ]; then
  for a in "$@"; do last="$a"; done
  case "$last" in *".upload."*)
    {real} "$@" || exit $?
    truncate -s 1M "$last"
    echo "qemu-img: error while writing at byte 1048576: No space left on device" >&2
    exit 1;;
  esac
fi
exec {real} "$@"
"#,
        real = real.trim()
    );
    let path = bin.join("qemu-img");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_restore_replaces_the_vm_only_once_the_new_one_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let prod_layout = lab_dir.join("hosts/kvm-prod-01");
    let (prod_host, dr_host) = tokio::join!(TestHost::start(&prod_layout), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);
    let backup = api.back_up(&vm, "full").await;
    let body = |overwrite: bool, power_on: bool| {
        let mut b = json!({"backup_id": backup, "target_platform_id": dr.id, "name": "web-01-dr", "power_on": power_on});
        if overwrite {
            b["overwrite"] = json!(true);
            b["confirm_overwrite"] = json!("web-01-dr");
        }
        b
    };

    // The VM to overwrite, changed after its restore so that it differs from the restore point.
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body(false, false)), StatusCode::ACCEPTED).await;
    assert_eq!(api.wait(&job.id, 180).await["job"]["status"], "completed");
    let old_disk = dr_host.disk_files("web-01-dr")[0].1.clone();
    assert!(Command::new("qemu-io").args(["-f", "qcow2", "-c", "write -P 0x5a 1M 256k"]).arg(&old_disk).output().unwrap().status.success());
    let before = state(&dr_host, "web-01-dr");
    let kept = dir.path().join("old-disk.qcow2");
    std::fs::copy(&old_disk, &kept).unwrap();
    let unchanged = |what: &str| {
        assert_eq!(dr_host.vm_names(), vec!["web-01-dr".to_string()], "{what}: nothing but the old VM on the target");
        assert!(state(&dr_host, "web-01-dr") == before, "{what}: the old VM's definition and disks are byte for byte the same");
        assert!(same_disk(&kept, &old_disk), "{what}: qemu-img compare");
        let staging = api.f.data.path().join("staging");
        assert_eq!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0), 0, "{what}: staging emptied");
    };

    // 1. The conversion on the target fails half-way: the old VM is untouched.
    let path = std::env::var("PATH").unwrap();
    let bin = failing_qemu_img(dir.path());
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body(true, true)), StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 180).await;
    std::env::set_var("PATH", &path);
    assert_eq!(done["job"]["status"], "failed", "{done}");
    let error = done["job"]["error"].as_str().unwrap();
    assert!(error.contains("No space left") && error.contains("existing VM 'web-01-dr'") && error.contains("unchanged"), "{error}");
    unchanged("failed overwrite");

    // 2. Stopped during the disk write: the old VM is untouched.
    api.f.state.runner.set_read_limit(4 << 20);
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body(true, true)), StatusCode::ACCEPTED).await;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let j: Value = api.ok("GET", &format!("/api/v1/jobs/{}", job.id), None, StatusCode::OK).await;
        if j["job"]["status"] == "running" && j["job"]["bytes_read"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < until && j["job"]["status"] != "completed", "{}", j["job"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: Job = api.ok("POST", &format!("/api/v1/jobs/{}/stop", job.id), None, StatusCode::OK).await;
    let done = api.wait(&job.id, 60).await;
    api.f.state.runner.set_read_limit(0);
    assert_eq!(done["job"]["status"], "cancelled", "{done}");
    assert!(done["job"]["error"].as_str().unwrap().contains("unchanged"), "{done}");
    unchanged("stopped overwrite");

    // 3. Switches interrupted by a stop of the server: a new VM that was
    //    never switched in is removed (the old one stays); one whose old VM
    //    was already removed takes its name.
    let conn = dr_host.platform().connect().unwrap();
    let stray = |name: &str| format!("<domain type='qemu'><name>{name}</name><memory unit='MiB'>16</memory><os><type arch='x86_64'>hvm</type></os></domain>");
    conn.define_domain_xml(&stray("web-01-dr.sendense-new-0badf00d")).unwrap();
    let marked = conn.define_domain_xml(&stray("web-01-gone.sendense-new-5ca1ab1e")).unwrap();
    marked
        .set_metadata(
            virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some("<replacing name='web-01-gone' old='00000000-dead-4000-8000-000000000000'/>"),
            Some("sdr"),
            Some("https://sendense.io/xmlns/replacing/1"),
            virt::sys::VIR_DOMAIN_AFFECT_CONFIG,
        )
        .unwrap();
    assert_eq!(sendense::runner::restore_job::recover_replacements(&api.f.state.db).await, 2);
    assert_eq!(dr_host.vm_names(), vec!["web-01-dr".to_string(), "web-01-gone".to_string()]);
    conn.lookup_domain_by_name("web-01-gone").unwrap().undefine().unwrap();
    unchanged("recovered switches");

    // 4. A successful overwrite: the new VM, complete and powered on, in the old one's place.
    let old_uuid = conn.lookup_domain_by_name("web-01-dr").unwrap().uuid_string().unwrap();
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body(true, true)), StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 180).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    assert_eq!(dr_host.vm_names(), vec!["web-01-dr".to_string()], "only the new VM, nothing left aside");
    let new = conn.lookup_domain_by_name("web-01-dr").unwrap();
    assert_ne!(new.uuid_string().unwrap(), old_uuid, "a new VM");
    assert!(new.is_active().unwrap(), "powered on: its QEMU runs");
    assert!(!old_disk.exists(), "the old VM's volume is deleted");
    let new_disk = dr_host.disk_files("web-01-dr")[0].1.clone();
    assert!(!same_disk(&kept, &new_disk), "the old content is gone");
    let source = prod_host.vm("web-01").disks[0].1.clone();
    assert!(same_disk(&source, &new_disk), "the new disk is the restore point's");
}
