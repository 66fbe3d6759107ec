//! The demo lab's VMs on real libvirt hosts (shut off, their disks the ones
//! `lab init` made), end to end with real tools: discovery returns what
//! `lab init` made; after one round of `lab activity`
//! each VM's incremental reads exactly the blocks the round wrote; a lab VM
//! restores onto the DR host (as VHD, a cross-format restore). Prints full vs incremental bytes per VM to
//! `target/lab-metrics.txt`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sendense::engine::backup::BackupOptions;
use sendense::engine::datastore::Datastore;
use sendense::engine::progress::Progress;
use sendense::jobs::vm_backup::backup_vm;
use sendense::jobs::vm_restore::{restore_vm, RestoreRequest};
use sendense::lab::{self, InitOptions, InitOutcome};
use sendense::platforms::kvm::definition;
use sendense::platforms::Platform;
use shared_types::platform::{DiskFormat, PowerState};

mod support;
use support::kvm::TestHost;

fn metric(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-metrics.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

#[test]
fn the_lab_is_discovered_backed_up_incrementally_and_restored_to_the_dr_host() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let made = match lab::init(&lab_dir, &InitOptions { force: false }, &mut |_| {}).unwrap() {
        InitOutcome::Created(m) => m,
        InitOutcome::Exists(_) => panic!("a fresh directory holds no lab"),
    };
    let prod_spec = made.hosts.iter().find(|h| h.role == "production").unwrap();
    let dr_spec = made.hosts.iter().find(|h| h.role != "production").unwrap();

    // Discovery returns the VMs, disks and networks lab init made.
    let prod_layout = lab_dir.join(&prod_spec.dir);
    let prod_host = TestHost::start_blocking(&prod_layout);
    let prod = prod_host.platform();
    let inv = prod.inventory().unwrap();
    assert_eq!(inv.host.name, prod_spec.name);
    let found: Vec<&str> = inv.vms.iter().map(|v| v.name.as_str()).collect();
    let made_vms: Vec<&str> = prod_spec.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(found, { let mut m = made_vms.clone(); m.sort(); m });
    assert!(made_vms.len() >= 5, "about six VMs: {made_vms:?}");
    for spec in &prod_spec.vms {
        let vm = inv.vms.iter().find(|v| v.name == spec.name).unwrap();
        let disks: Vec<u64> = vm.disks.iter().map(|d| d.capacity_bytes).collect();
        let want: Vec<u64> = spec.disks.iter().map(|d| d.virtual_size).collect();
        assert_eq!(disks, want, "{}", spec.name);
        assert!(vm.disks.iter().all(|d| d.cbt && d.format == DiskFormat::Qcow2), "{}", spec.name);
        assert!(!vm.nics.is_empty() && vm.nics.iter().all(|n| inv.networks.iter().any(|net| net.name == n.network)), "{}", spec.name);
    }
    let nets: Vec<&str> = inv.networks.iter().map(|n| n.name.as_str()).collect();
    assert!(nets.contains(&"lan") && nets.len() >= 2, "{nets:?}");
    let dr_host = TestHost::start_blocking(&lab_dir.join(&dr_spec.dir));
    let dr = dr_host.platform();
    assert!(dr.inventory().unwrap().vms.is_empty(), "the DR host starts empty");

    // Full backups, one activity round, incrementals.
    let ds = Datastore::init(&dir.path().join("repo"), None).unwrap();
    let mut full = BTreeMap::new();
    for vm in &inv.vms {
        let r = backup_vm(&prod, &vm.name, &ds, &BackupOptions::new(&vm.name), &Progress::new()).unwrap();
        assert!(r.disks.iter().all(|d| !d.incremental));
        full.insert(vm.name.clone(), r.bytes_read);
    }
    let round = lab::round(&lab_dir).unwrap();
    assert!(round.bytes_written > 0);
    metric(&format!("lab backup: {:<10} {:>14} {:>14} {:>14}", "vm", "full read B", "activity B", "incr read B"));
    for vm in &inv.vms {
        let written: u64 = round.vms.iter().filter(|a| a.vm == vm.name).flat_map(|a| &a.disks).map(|d| d.bytes_written).sum();
        let r = backup_vm(&prod, &vm.name, &ds, &BackupOptions::new(&vm.name), &Progress::new()).unwrap();
        assert!(r.disks.iter().all(|d| d.incremental), "{}: {:?}", vm.name, r.disks);
        assert_eq!(r.bytes_read, written, "{}: the incremental reads exactly what the round wrote", vm.name);
        if definition::read_vm(&prod_layout, &vm.name).unwrap().power == PowerState::Running {
            assert!(written > 0, "{} has a running role and was written to", vm.name);
        }
        metric(&format!("lab backup: {:<10} {:>14} {:>14} {:>14}", vm.name, full[&vm.name], written, r.bytes_read));
    }

    // A lab VM restored onto the DR host, as VHD (vpc), equals its source disk.
    let win = inv.vms.iter().find(|v| v.name == "win-01").unwrap_or(&inv.vms[0]);
    let m = ds.resolve(&win.name, "latest").unwrap();
    let info = m.vm.clone().unwrap();
    let req = RestoreRequest {
        source_vm: win.name.clone(),
        snapshot: "latest".into(),
        new_name: format!("{}-dr", win.name),
        format: Some(DiskFormat::Vpc),
        vcpus: info.vcpus,
        memory_mib: info.memory_mib,
        firmware: info.firmware,
        os: info.os,
        nics: info.nics.clone(),
        power_on: true,
        storage_pool: None,
    };
    let created = restore_vm(&ds, &dr, &req, dir.path(), 2, &Progress::new()).unwrap();
    assert_eq!(dr.inventory().unwrap().vms.len(), 1);
    assert!(dr_host.is_running(&created.name), "powered on: its QEMU runs");
    let restored = dr_host.disk_files(&created.name);
    assert_eq!(restored.len(), prod_host.vm(&win.name).disks.len());
    for ((_, src), (_, dst)) in prod_host.vm(&win.name).disks.iter().zip(&restored) {
        let same = Command::new("qemu-img")
            .args(["compare", "-q", "-U", "-f", "vpc", "-F", "qcow2"])
            .arg(&dst)
            .arg(&src)
            .status()
            .unwrap();
        assert!(same.success(), "{} equals {}", dst.display(), src.display());
    }
}
