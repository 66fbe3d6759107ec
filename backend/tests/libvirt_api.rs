//! A libvirt host through the product's API: added by its URI (bad URIs
//! refused with a message naming the problem), discovered with its running
//! guest, and backed up by the job runner, full then incremental, the
//! incremental reading exactly the block the guest wrote.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use sendense::lab::guest::{self, GuestSpec};
use sendense::lab::guest_console::{self, GuestConsole};
use sendense::lab::libvirt_host::LibvirtHost;
use sendense::platforms::libvirt::LibvirtPlatform;
use serde_json::{json, Value};
use shared_types::discovery::Platform;
use shared_types::platform::PowerState;

mod support;
use support::api::Api;

struct HostGuard(LibvirtHost);
impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop() {
            eprintln!("stopping the test host: {e:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_libvirt_host_is_added_by_uri_discovered_and_its_running_guest_backed_up_incrementally() {
    let kit = guest::kit_dir().unwrap();
    let t = tempfile::Builder::new().prefix("sd-lva").tempdir_in("/tmp").unwrap();
    let host = HostGuard(LibvirtHost::new("api", &t.path().join("host")));
    let h = host.0.clone();
    tokio::task::spawn_blocking(move || h.start()).await.unwrap().unwrap();
    let vda = host.0.images().join("web-vda.qcow2");
    let o = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", "-o", "compat=1.1", vda.to_str().unwrap(), "48M"]).output().unwrap();
    assert!(o.status.success());
    let log = host.0.images().join("web.console.log");
    let xml = guest::domain_xml(&kit, &GuestSpec { name: "web", memory_mib: 128, disks: &[("vda", &vda)], networks: &[], console_log: &log, role: Some("web") });
    let platform = LibvirtPlatform::new(&host.0.uri());
    let conn = platform.connect().unwrap();
    conn.define_domain_xml(&xml).unwrap().create().unwrap();

    let f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;

    // Bad URIs: a 4xx naming the problem, nothing added.
    for (bad, says) in [("qemu://host/nothing", "/system"), ("xen:///system", "not a libvirt URI"), ("qemu+unix:///system?socket=rel/sock", "absolute")] {
        let r = api.call("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": bad}))).await;
        assert!(r.status.is_client_error(), "{bad}: {}", r.status);
        assert!(r.body.contains(says), "{bad}: {}", r.body);
    }
    let added: Platform = api.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": host.0.uri()})), StatusCode::CREATED).await;
    assert_eq!(added.address, host.0.uri());

    let line = tokio::task::spawn_blocking(move || guest_console::wait_for_boot(&log, Duration::from_secs(90))).await.unwrap().unwrap();
    assert!(line.contains("name=web"), "{line}");
    let found: Value = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": added.id})), StatusCode::OK).await;
    let web = found["vms"].as_array().unwrap().iter().find(|v| v["vm"]["name"] == "web").expect("web discovered").clone();
    assert_eq!(web["vm"]["power"], json!(PowerState::Running), "{web}");
    let ids = api.manage(&added, &["web"]).await;

    api.back_up(&ids[0], "full").await;
    // The guest writes one 64 KiB block.
    let dom = platform.domain(&conn, "web").unwrap();
    let pty = platform.definition(&dom).unwrap().console_pty.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut c = GuestConsole::open(Path::new(&pty)).unwrap();
        c.run("dd if=/dev/urandom of=/dev/vda bs=65536 seek=100 count=1 conv=fsync 2>/dev/null", Duration::from_secs(60)).unwrap();
    })
    .await
    .unwrap();
    api.back_up(&ids[0], "incremental").await;
    let jobs: Value = api.ok("GET", "/api/v1/jobs?limit=5", None, StatusCode::OK).await;
    let newest = &jobs["items"].as_array().expect("jobs")[0];
    assert_eq!(newest["bytes_read"], json!(65536), "the incremental read the guest's one block: {newest}");

    // Power from the API, on the real guest, audited.
    let bad = api.call("POST", &format!("/api/v1/vms/{}/power", ids[0]), Some(json!({"action": "explode"}))).await;
    assert!(bad.status.is_client_error() && bad.body.contains("action"), "{} {}", bad.status, bad.body);
    let bad = api.call("POST", &format!("/api/v1/vms/{}/power", ids[0]), Some(json!({"action": "shutdown", "timeout_seconds": 0}))).await;
    assert!(bad.status.is_client_error() && bad.body.contains("timeout_seconds"), "{} {}", bad.status, bad.body);
    let off: Value = api.ok("POST", &format!("/api/v1/vms/{}/power", ids[0]), Some(json!({"action": "shutdown", "timeout_seconds": 2})), StatusCode::OK).await;
    assert_eq!(off["vm"]["power"], "stopped", "{}", off["vm"]);
    assert!(!dom.is_active().unwrap(), "the QEMU process is gone");
    let on: Value = api.ok("POST", &format!("/api/v1/vms/{}/power", ids[0]), Some(json!({"action": "start"})), StatusCode::OK).await;
    assert_eq!(on["vm"]["power"], "running", "{}", on["vm"]);
    let log = host.0.images().join("web.console.log");
    let line = tokio::task::spawn_blocking(move || guest_console::wait_for_boot(&log, Duration::from_secs(90))).await.unwrap().unwrap();
    assert!(line.contains("name=web"), "booted again: {line}");
    let console: Value = api.ok("GET", &format!("/api/v1/vms/{}/console?lines=5", ids[0]), None, StatusCode::OK).await;
    let lines: Vec<&str> = console["lines"].as_array().unwrap().iter().filter_map(|l| l.as_str()).collect();
    assert!(lines.len() <= 5 && lines.iter().any(|l| l.contains("SENDENSE-GUEST-UP name=web")), "{lines:?}");
    let bad = api.call("GET", &format!("/api/v1/vms/{}/console?lines=0", ids[0]), None).await;
    assert!(bad.status.is_client_error() && bad.body.contains("lines"), "{}", bad.body);
    let audit: Value = api.ok("GET", "/api/v1/audit?limit=20", None, StatusCode::OK).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"vm.power.shutdown") && actions.contains(&"vm.power.start"), "{actions:?}");
    let stopped: Value = api.ok("POST", &format!("/api/v1/vms/{}/power", ids[0]), Some(json!({"action": "stop"})), StatusCode::OK).await;
    assert_eq!(stopped["vm"]["power"], "stopped");

    // Started on the host behind Sendense's back (as `virsh start` would):
    // the catalog says running within a second, without a rediscovery.
    let t0 = std::time::Instant::now();
    dom.create().unwrap();
    let seen = loop {
        let v: Value = api.ok("GET", &format!("/api/v1/vms/{}", ids[0]), None, StatusCode::OK).await;
        if v["vm"]["power"] == "running" {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the start on the host never reached the catalog: {}", v["vm"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("a start on the host reached the catalog in {} ms", seen.as_millis());
    assert!(seen < Duration::from_secs(1), "within a second: {seen:?}");
    dom.destroy().unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let v: Value = api.ok("GET", &format!("/api/v1/vms/{}", ids[0]), None, StatusCode::OK).await;
        if v["vm"]["power"] == "stopped" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the stop on the host never reached the catalog: {}", v["vm"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
