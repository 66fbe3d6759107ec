//! Discovery at scale: a libvirt host with 1,000 VMs (shut off) is added
//! and discovered through the API in under 5 s (the target); the time is
//! printed to target/lab-metrics.txt.

use std::process::Command;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::json;
use sendense::platforms::kvm::definition::{self, DiskDefinition, HostDefinition, VmDefinition};
use shared_types::discovery::{DiscoverVmsResponse, Platform};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState};

mod support;

const VMS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_thousand_vms_is_discovered_in_under_five_seconds() {
    let f = support::fixture().await;
    let token = f.admin_token().await;
    let root = tempfile::tempdir().unwrap();
    let host = root.path().join("big-host");
    definition::write_host(
        &host,
        &HostDefinition { name: "kvm-big".into(), cpu_cores: 128, memory_mib: 1 << 20, networks: vec![NetworkInfo { name: "lan".into(), bridge: None, cidr: None, ..Default::default() }] },
    )
    .unwrap();
    let template = root.path().join("template.qcow2");
    let out = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&template).arg("20G").output().unwrap();
    assert!(out.status.success());
    for i in 0..VMS {
        let name = format!("vm-{i:04}");
        definition::write_vm(
            &host,
            &VmDefinition {
                name: name.clone(),
                uuid: format!("00000000-0000-4000-8000-{i:012}"),
                vcpus: 2,
                memory_mib: 4096,
                firmware: Firmware::Uefi,
                os: GuestOs::Linux,
                power: PowerState::Running,
                role: None,
                nics: vec![NicInfo { mac: format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256), network: "lan".into(), model: "virtio".into() }],
                disks: vec![DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: DiskFormat::Qcow2, bus: "virtio".into() }],
            },
        )
        .unwrap();
        std::fs::hard_link(&template, definition::vm_dir(&host, &name).join("disk0.qcow2")).unwrap();
    }

    let kvm = support::kvm::TestHost::start(&host).await;
    let started = Instant::now();
    let reply = f.call("POST", "/api/v1/platforms", Some(&token), Some(json!({"kind": "kvm", "address": kvm.uri()}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let p: Platform = reply.json();
    let reply = f.call("POST", "/api/v1/discovery/discover-vms", Some(&token), Some(json!({"platform_id": p.id}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let found: DiscoverVmsResponse = reply.json();
    let took = started.elapsed();
    assert_eq!(found.vms.len(), VMS);
    assert!(found.vms.iter().all(|v| v.vm.disks[0].cbt && v.vm.disks[0].capacity_bytes == 20 << 30));
    let line = format!("discovery: {VMS} libvirt VMs added and discovered through the API in {} ms (target < 5000 ms)", took.as_millis());
    eprintln!("{line}");
    {
        use std::io::Write;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-metrics.txt");
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{line}");
        }
    }
    assert!(took.as_secs_f64() < 5.0, "{line}");
}
