//! The KVM connector with real qemu tools: changed-block tracking through
//! qemu-nbd dirty bitmaps, point-in-time reads with a write landing during a
//! backup, restore targets in every disk format, and bad input.

#[path = "engine_support/mod.rs"]
mod engine_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use engine_support::{fails, ok, p};
use sendense::engine::backup::{self, BackupOptions, DiskSource};
use sendense::engine::datastore::Datastore;
use sendense::engine::progress::Progress;
use sendense::engine::restore;
use sendense::jobs::vm_backup::backup_vm;
use sendense::jobs::vm_restore::{restore_vm, RestoreRequest};
use sendense::platforms::kvm::definition::{self, DiskDefinition, HostDefinition, VmDefinition};
use sendense::platforms::kvm::{cbt, KvmHost};
use sendense::platforms::{Platform, PlatformError};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState};

const K64: u64 = 65536;

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host directory with one running VM `vm1` whose qcow2 disk (`size`)
/// holds data at a few places and is tracked.
fn host_with_vm(root: &Path, size: &str) -> (PathBuf, PathBuf) {
    let host = root.join("host");
    definition::write_host(
        &host,
        &HostDefinition {
            name: "kvm-test".into(),
            cpu_cores: 4,
            memory_mib: 8192,
            networks: vec![NetworkInfo { name: "lan".into(), bridge: Some("br0".into()), cidr: None, ..Default::default() }],
        },
    )
    .unwrap();
    let vm = VmDefinition {
        name: "vm1".into(),
        uuid: "0b4f6c2e-1111-4222-8333-944445555666".into(),
        vcpus: 2,
        memory_mib: 2048,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        power: PowerState::Running,
        role: Some("test".into()),
        nics: vec![NicInfo { mac: "52:54:00:12:34:56".into(), network: "lan".into(), model: "virtio".into() }],
        disks: vec![DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: DiskFormat::Qcow2, bus: "virtio".into() }],
    };
    definition::write_vm(&host, &vm).unwrap();
    let disk = definition::vm_dir(&host, "vm1").join("disk0.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", p(&disk), size]);
    qemu_io(&disk, &["write -P 0x11 0 1M", "write -P 0x22 5M 192k", "write -P 0x33 17M 64k"]);
    cbt::enable_tracking(&disk).unwrap();
    (host, disk)
}

fn qemu_io(disk: &Path, cmds: &[&str]) {
    let mut args = vec!["-f", "qcow2"];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(p(disk));
    run("qemu-io", &args);
}

fn repo(root: &Path) -> (PathBuf, Datastore) {
    let dir = root.join("repo");
    let ds = Datastore::init(&dir, None).unwrap();
    (dir, ds)
}

fn restore_raw(ds: &Datastore, snapshot: &str, out: &Path) {
    restore::restore(ds, "vm1", snapshot, Some("disk0"), out, 2, &Progress::new()).unwrap();
}

/// `qemu-img compare` of a raw image with the disk (or its snapshot view).
fn same_content(raw: &Path, disk: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U", "-f", "raw", "-F", "qcow2", p(raw), p(disk)]).status().unwrap().success()
}

#[test]
fn an_incremental_reads_exactly_the_blocks_written_since_the_last_backup() {
    let dir = tempfile::tempdir().unwrap();
    let (host_dir, disk) = host_with_vm(dir.path(), "64M");
    let host = KvmHost::open(&host_dir).unwrap();
    let (_, ds) = repo(dir.path());
    let opts = BackupOptions::new("vm1");

    let full = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(!full.disks[0].incremental);
    assert!(full.disks[0].full_read_reason.as_deref().unwrap().contains("no previous backup"), "{:?}", full.disks[0]);
    // Only allocated clusters are read: 1 MiB + 192 KiB + 64 KiB.
    assert_eq!(full.bytes_read, (1 << 20) + 192 * 1024 + K64, "a full read skips unallocated clusters");

    // Seven scattered 64 KiB blocks, one of them overwriting old data.
    let offsets = [2u64 << 20, 9 << 20, 9 * (1 << 20) + 5 * K64, 17 << 20, 30 << 20, 41 << 20, 63 << 20];
    let cmds: Vec<String> = offsets.iter().enumerate().map(|(i, o)| format!("write -P 0x{:x} {o} 64k", 0x40 + i)).collect();
    qemu_io(&disk, &cmds.iter().map(String::as_str).collect::<Vec<_>>());

    let inc = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(inc.disks[0].incremental, "{:?}", inc.disks[0]);
    assert_eq!(inc.disks[0].changed_bytes, offsets.len() as u64 * K64);
    assert_eq!(inc.bytes_read, offsets.len() as u64 * K64, "the incremental reads exactly the written blocks");
    assert_eq!(inc.parent.as_deref(), Some(full.snapshot.as_str()));

    let out = dir.path().join("restored.raw");
    restore_raw(&ds, &inc.snapshot, &out);
    assert!(same_content(&out, &disk), "the incremental restores as the full disk, byte for byte");

    // Nothing written since: the next incremental reads nothing.
    let none = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(none.disks[0].incremental);
    assert_eq!(none.bytes_read, 0);
    let info = sendense::platforms::kvm::qemu_img::info(&disk, None).unwrap();
    assert!(info.snapshots.is_empty(), "the backup's snapshot is removed: {:?}", info.snapshots);
    assert_eq!(info.bitmaps.len(), 1, "one recording bitmap between backups: {:?}", info.bitmaps);
}

#[test]
fn a_write_during_a_backup_is_in_the_next_incremental_not_in_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let (host_dir, disk) = host_with_vm(dir.path(), "32M");
    let host = KvmHost::open(&host_dir).unwrap();
    let (_, ds) = repo(dir.path());
    let opts = BackupOptions::new("vm1");
    let first = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    let before = dir.path().join("before.raw");
    run("qemu-img", &["convert", "-U", "-f", "qcow2", "-O", "raw", p(&disk), p(&before)]);

    // A backup that has opened the disk (rotation done, export running)...
    let token = ds.resolve("vm1", "latest").unwrap().disks[0].cbt_token.clone();
    let read = host.open_disk("vm1", "disk0", token.as_deref(), "vm1").unwrap();
    assert_eq!(read.changed_ranges.as_deref(), Some(&[][..]), "nothing changed since the first backup");
    // ...while the VM writes.
    qemu_io(&disk, &["write -P 0x99 5M 64k", "write -P 0x98 20M 64k"]);
    let mut o = opts.clone();
    o.parent = Some(first.snapshot.clone());
    let sources = [DiskSource {
        name: "disk0".into(),
        source: Arc::clone(&read.source),
        changed_ranges: read.changed_ranges.clone(),
        cbt_token: read.token.clone(),
    }];
    let during = backup::backup(&ds, &o, &sources, &Progress::new()).unwrap();
    drop(sources);
    read.finish(true).unwrap();
    let out = dir.path().join("during.raw");
    restore_raw(&ds, &during.id, &out);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&before).unwrap(), "the backup is the point in time it started at");

    let next = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(next.disks[0].incremental);
    assert_eq!(next.bytes_read, 2 * K64, "both writes made during the backup are in the next incremental");
    let out = dir.path().join("next.raw");
    restore_raw(&ds, &next.snapshot, &out);
    assert!(same_content(&out, &disk));
}

#[test]
fn a_failed_backup_keeps_the_changes_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (host_dir, disk) = host_with_vm(dir.path(), "32M");
    let host = KvmHost::open(&host_dir).unwrap();
    let (_, ds) = repo(dir.path());
    let opts = BackupOptions::new("vm1");
    backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    qemu_io(&disk, &["write -P 0x71 3M 64k"]);
    let token = ds.resolve("vm1", "latest").unwrap().disks[0].cbt_token.clone();
    let read = host.open_disk("vm1", "disk0", token.as_deref(), "vm1").unwrap();
    assert_eq!(read.changed_ranges.as_deref(), Some(&[(3u64 << 20, K64)][..]));
    qemu_io(&disk, &["write -P 0x72 7M 64k"]);
    read.finish(false).unwrap(); // the backup failed
    let next = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(next.disks[0].incremental);
    assert_eq!(next.bytes_read, 2 * K64, "changes before and during the failed backup are both read");
}

#[test]
fn restore_creates_a_vm_in_every_disk_format() {
    let dir = tempfile::tempdir().unwrap();
    let (host_dir, disk) = host_with_vm(dir.path(), "32M");
    let host = KvmHost::open(&host_dir).unwrap();
    let (_, ds) = repo(dir.path());
    backup_vm(&host, "vm1", &ds, &BackupOptions::new("vm1"), &Progress::new()).unwrap();
    let dr_dir = dir.path().join("dr");
    definition::write_host(
        &dr_dir,
        &HostDefinition { name: "kvm-dr".into(), cpu_cores: 4, memory_mib: 8192, networks: vec![NetworkInfo { name: "lan".into(), bridge: None, cidr: None, ..Default::default() }] },
    )
    .unwrap();
    let dr = KvmHost::open(&dr_dir).unwrap();
    let m = ds.resolve("vm1", "latest").unwrap();
    let vm = m.vm.clone().expect("the manifest describes the VM");
    for format in DiskFormat::ALL {
        let req = RestoreRequest {
            source_vm: "vm1".into(),
            snapshot: "latest".into(),
            new_name: format!("vm1-{}", format.qemu_name()),
            format: Some(format),
            vcpus: vm.vcpus,
            memory_mib: vm.memory_mib,
            firmware: vm.firmware,
            os: vm.os,
            nics: vm.nics.clone(),
            power_on: format == DiskFormat::Qcow2,
            storage_pool: None,
        };
        let created = restore_vm(&ds, &dr, &req, dir.path(), 2, &Progress::new()).unwrap();
        assert_eq!(created.disks[0].format, format);
        assert_eq!(created.power, if format == DiskFormat::Qcow2 { PowerState::Running } else { PowerState::Stopped });
        let def = dr.definition(&created.name).unwrap();
        let file = definition::disk_path(&dr_dir, &def.name, &def.disks[0]);
        let info = sendense::platforms::kvm::qemu_img::info(&file, None).unwrap();
        assert_eq!(info.format, format.qemu_name(), "{}", file.display());
        assert!(info.virtual_size >= 32 << 20);
        let same = Command::new("qemu-img")
            .args(["compare", "-q", "-U", "-f", format.qemu_name(), "-F", "qcow2", p(&file), p(&disk)])
            .status()
            .unwrap();
        assert!(same.success(), "restored {} disk equals the source", format.qemu_name());
    }
    assert_eq!(dr.inventory().unwrap().vms.len(), DiskFormat::ALL.len());
    // Power and delete.
    let name = "vm1-qcow2";
    let err = dr.delete_vm(name).unwrap_err().to_string();
    assert!(err.contains("power it off"), "{err}");
    assert_eq!(dr.set_power(name, PowerState::Stopped).unwrap().power, PowerState::Stopped);
    dr.delete_vm(name).unwrap();
    assert!(matches!(dr.vm(name), Err(PlatformError::VmNotFound(_))));
    // A NIC on a network the target lacks is refused before anything is written.
    let mut req = RestoreRequest {
        source_vm: "vm1".into(),
        snapshot: "latest".into(),
        new_name: "vm1-x".into(),
        format: None,
        vcpus: 1,
        memory_mib: 512,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        nics: vec![NicInfo { mac: "52:54:00:00:00:09".into(), network: "dmz".into(), model: "virtio".into() }],
        power_on: false,
        storage_pool: None,
    };
    let err = restore_vm(&ds, &dr, &req, dir.path(), 2, &Progress::new()).unwrap_err().to_string();
    assert!(err.contains("network 'dmz' does not exist on host 'kvm-dr'"), "{err}");
    req.nics.clear();
    req.new_name = "vm1-raw".into();
    let err = restore_vm(&ds, &dr, &req, dir.path(), 2, &Progress::new()).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn bad_hosts_disks_and_vanished_vms_get_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = KvmHost::open(&dir.path().join("nowhere")).err().unwrap().to_string();
    assert!(err.contains("nowhere") && err.contains("does not exist"), "{err}");
    let err = KvmHost::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("not a Sendense KVM host directory"), "{err}");

    let (host_dir, disk) = host_with_vm(dir.path(), "32M");
    let host = KvmHost::open(&host_dir).unwrap();
    let (repo_dir, ds) = repo(dir.path());

    // Not a qcow2 file.
    std::fs::write(&disk, b"garbage, not an image").unwrap();
    let err = backup_vm(&host, "vm1", &ds, &BackupOptions::new("vm1"), &Progress::new()).unwrap_err().to_string();
    assert!(err.contains("disk0.qcow2"), "{err}");
    // A VM deleted after discovery.
    std::fs::remove_dir_all(definition::vm_dir(&host_dir, "vm1")).unwrap();
    let err = backup_vm(&host, "vm1", &ds, &BackupOptions::new("vm1"), &Progress::new()).unwrap_err().to_string();
    assert!(err.contains("VM 'vm1' not found") && err.contains("deleted"), "{err}");
    assert!(ds.list_snapshots(None).unwrap().is_empty(), "no snapshot from failed backups");

    // From the CLI, with exit codes.
    let err = fails(&["vm", "backup", "--host", p(&host_dir), "--vm", "vm1", "--repo", p(&repo_dir), "--no-progress"]);
    assert!(err.contains("VM 'vm1' not found"), "{err}");
    let err = fails(&["host", "inventory", p(&dir.path().join("nowhere"))]);
    assert!(err.contains("does not exist"), "{err}");

    // qemu tools missing from PATH: the error names the Debian package.
    // (Discovery reads qcow2 headers itself; a backup needs the tools.)
    let (host_dir2, _) = host_with_vm(&dir.path().join("second"), "32M");
    let out = engine_support::bin()
        .env("PATH", "/nonexistent")
        .args(["vm", "backup", "--host", p(&host_dir2), "--vm", "vm1", "--repo", p(&repo_dir), "--no-progress"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("apt-get install qemu-utils"), "{err}");
    let inv = ok(&["host", "inventory", "--json", p(&host_dir2)]);
    assert!(inv.contains("\"vm1\"") && inv.contains("\"cbt\": true"), "{inv}");
}

#[test]
fn an_inconsistent_bitmap_falls_back_to_a_full_read_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (host_dir, disk) = host_with_vm(dir.path(), "32M");
    let host = KvmHost::open(&host_dir).unwrap();
    let (_, ds) = repo(dir.path());
    let opts = BackupOptions::new("vm1");
    backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    // A writer killed with SIGKILL leaves the persistent bitmaps marked in use.
    let mut writer = Command::new("qemu-io")
        .args(["-f", "qcow2", p(&disk)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sendense::platforms::kvm::qemu_img::info(&disk, None).unwrap().bitmaps.iter().any(|b| b.in_use) {
        assert!(std::time::Instant::now() < deadline, "qemu-io never opened the image");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    writer.kill().unwrap();
    writer.wait().unwrap();
    let r = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(!r.disks[0].incremental);
    let reason = r.disks[0].full_read_reason.clone().unwrap();
    assert!(reason.contains("inconsistent"), "{reason}");
    // Tracking starts over: the next backup is incremental again.
    qemu_io(&disk, &["write -P 0x5a 4M 64k"]);
    let next = backup_vm(&host, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(next.disks[0].incremental, "{:?}", next.disks[0]);
    assert_eq!(next.bytes_read, K64);
}
