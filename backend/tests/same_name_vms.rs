//! Identity by id, through the real router and the real job runner: two VMs
//! both named `web-01` on two KVM hosts, disks of the same size with the same
//! change-tracking history, backed up interleaved (full, incremental,
//! incremental). Every restore point restores byte for byte to its own VM's
//! disk as it was when the backup ran (`qemu-img compare`), retention of one
//! VM never touches the other's restore points, and a VM renamed on its
//! platform keeps its history (the next backup is still incremental). The
//! hosts are real libvirt hosts; their VMs are shut off and written with
//! `qemu-io`, which updates libvirt's checkpoint bitmaps in the qcow2.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sendense::catalog::repositories::{ensure_local, open_datastore};
use sendense::db::entities::repositories;
use sendense::engine::progress::Progress;
use sendense::engine::prune::KeepRules;
use sendense::engine::restore;
use sendense::platforms::kvm::definition;
use sendense::runner::retention;
use serde_json::{json, Value};
use shared_types::backups::{Backup, BackupPage};
use shared_types::discovery::{BulkAddResponse, Platform};
use shared_types::jobs::{JobDetails, JobStatus, QueuedJobs};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState};

mod support;
use support::kvm::TestHost;
use support::{fixture, Fixture};

const K64: u64 = 65536;
const MIB: u64 = 8;

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(out.status.success(), "{tool} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A host `host_name` with one VM `web-01` (platform id `uuid`): one qcow2
/// disk of 2×MIB MiB whose first MIB MiB hold data from `seed`, tracked.
fn host(root: &Path, host_name: &str, uuid: &str, seed: u64) -> (PathBuf, PathBuf) {
    let dir = root.join(host_name);
    definition::write_host(
        &dir,
        &definition::HostDefinition {
            name: host_name.into(),
            cpu_cores: 4,
            memory_mib: 8192,
            networks: vec![NetworkInfo { name: "lan".into(), bridge: None, cidr: None, ..Default::default() }],
        },
    )
    .unwrap();
    definition::write_vm(
        &dir,
        &definition::VmDefinition {
            name: "web-01".into(),
            uuid: uuid.into(),
            vcpus: 2,
            memory_mib: 1024,
            firmware: Firmware::Bios,
            os: GuestOs::Linux,
            power: PowerState::Running,
            role: None,
            nics: vec![NicInfo { mac: format!("52:54:00:00:00:{:02x}", seed & 0xff), network: "lan".into(), model: "virtio".into() }],
            disks: vec![definition::DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: DiskFormat::Qcow2, bus: "virtio".into() }],
        },
    )
    .unwrap();
    let vm_dir = definition::vm_dir(&dir, "web-01");
    let raw = vm_dir.join("seed.raw");
    let mut data = vec![0u8; (MIB << 20) as usize];
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ seed;
    for b in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    std::fs::write(&raw, &data).unwrap();
    let disk = vm_dir.join("disk0.qcow2");
    run("qemu-img", &["convert", "-q", "-f", "raw", "-O", "qcow2", p(&raw), p(&disk)]);
    run("qemu-img", &["resize", "-q", p(&disk), &format!("{}M", MIB * 2)]);
    std::fs::remove_file(&raw).unwrap();
    (dir, disk)
}

/// The guest writes 64 KiB of `pattern` at `offset`.
fn write(disk: &Path, pattern: u8, offset: &str) {
    run("qemu-io", &["-f", "qcow2", "-c", &format!("write -P {pattern} {offset} 64k"), p(disk)]);
}

struct Lab {
    f: Fixture,
    token: String,
    repo: repositories::Model,
    root: tempfile::TempDir,
}

/// One managed VM: its catalog id, its disk, and each restore point's
/// expected content (the disk as raw right after the backup).
struct Vm {
    id: String,
    disk: PathBuf,
    expected: Vec<(String, PathBuf)>,
}

impl Lab {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> support::Reply {
        self.f.call(method, path, Some(&self.token), body).await
    }

    async fn ok<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Option<Value>, status: StatusCode) -> T {
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        reply.json()
    }

    /// Adds `host` and its VM `uuid` as a managed VM.
    async fn add(&self, host: &TestHost, uuid: &str, disk: PathBuf) -> Vm {
        let platform: Platform = self.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": host.uri()})), StatusCode::CREATED).await;
        let added: BulkAddResponse =
            self.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": platform.id, "vm_ids": [uuid]})), StatusCode::OK).await;
        assert_eq!(added.added.len(), 1, "{added:?}");
        Vm { id: added.added[0].id.clone(), disk, expected: Vec::new() }
    }

    async fn points(&self, vm: &Vm) -> Vec<Backup> {
        let page: BackupPage = self.ok("GET", &format!("/api/v1/backup/list?vm={}&limit=100", vm.id), None, StatusCode::OK).await;
        page.items
    }

    /// Runs one backup of `vm` to completion; returns the job and records
    /// what its restore point must hold.
    async fn backup(&self, vm: &mut Vm, backup_type: &str) -> JobDetails {
        let q: QueuedJobs = self.ok("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm.id], "backup_type": backup_type})), StatusCode::ACCEPTED).await;
        let id = q.jobs[0].id.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        let done = loop {
            let j: JobDetails = self.ok("GET", &format!("/api/v1/jobs/{id}"), None, StatusCode::OK).await;
            if j.job.status.is_finished() {
                break j;
            }
            assert!(Instant::now() < deadline, "backup job {id} did not finish: {:?}", j.job);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done.job.status, JobStatus::Completed, "{:?} {:?}", done.job.error, done.logs);
        let point = self.points(vm).await.into_iter().find(|b| b.job_id.as_deref() == Some(id.as_str())).expect("the job's restore point is listed");
        let raw = self.root.path().join(format!("expected-{}.raw", point.id));
        run("qemu-img", &["convert", "-q", "-U", "-f", "qcow2", "-O", "raw", p(&vm.disk), p(&raw)]);
        vm.expected.push((point.id.clone(), raw));
        done
    }

    /// Restores every restore point of `vm` still in the catalog from the
    /// repository and compares it with the disk as it was; returns how many.
    async fn check_points(&self, vm: &Vm) -> usize {
        let points = self.points(vm).await;
        for b in &points {
            assert_eq!(b.vm_context_id, vm.id, "the list holds only this VM's restore points");
            let (_, expected) = vm.expected.iter().find(|(id, _)| *id == b.id).unwrap_or_else(|| panic!("restore point {} was not made by this VM's backups", b.id));
            let out = self.root.path().join(format!("restored-{}.raw", b.id));
            let (data, repo, name, snap, target) = (self.f.data.path().to_path_buf(), self.repo.clone(), b.snapshot_name.clone(), b.snapshot_id.clone(), out.clone());
            tokio::task::spawn_blocking(move || {
                let ds = open_datastore(&data, &repo).unwrap();
                restore::restore(&ds, &name, &snap, Some("vda"), &target, 2, &Progress::new()).unwrap();
            })
            .await
            .unwrap();
            let same = Command::new("qemu-img").args(["compare", "-q", "-f", "raw", "-F", "raw", p(&out), p(expected)]).status().unwrap();
            assert!(same.success(), "restore point {} ({}/{}) differs from its own VM's disk at backup time", b.id, b.snapshot_name, b.snapshot_id);
            std::fs::remove_file(&out).unwrap();
        }
        points.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vms_with_one_name_keep_their_own_restore_points_retention_and_history() {
    let f = fixture().await;
    let repo = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let token = f.admin_token().await;
    let lab = Lab { f, token, repo, root: tempfile::tempdir().unwrap() };
    let (dir_a, disk_a) = host(lab.root.path(), "site-a", "00000000-0000-4000-8000-00000000000a", 1);
    let (dir_b, disk_b) = host(lab.root.path(), "site-b", "00000000-0000-4000-8000-00000000000b", 2);
    let (host_a, host_b) = tokio::join!(TestHost::start(&dir_a), TestHost::start(&dir_b));
    let mut a = lab.add(&host_a, "00000000-0000-4000-8000-00000000000a", disk_a.clone()).await;
    let mut b = lab.add(&host_b, "00000000-0000-4000-8000-00000000000b", disk_b.clone()).await;
    assert_ne!(a.id, b.id);

    // Full backups of both.
    let j = lab.backup(&mut a, "full").await;
    assert_eq!(j.job.bytes_read, MIB << 20);
    let j = lab.backup(&mut b, "full").await;
    assert_eq!(j.job.bytes_read, MIB << 20);

    // The same writes (offsets) on both, different data: same history.
    write(&disk_a, 0x11, "1M");
    write(&disk_b, 0x22, "1M");
    let j = lab.backup(&mut a, "incremental").await;
    assert_eq!(j.job.bytes_read, K64, "A's incremental reads A's one write");
    let j = lab.backup(&mut b, "incremental").await;
    assert_eq!(j.job.bytes_read, K64, "B's incremental reads B's one write, not nothing on A's token");

    // A writes again, B does not: B's incremental reads nothing and still holds B.
    write(&disk_a, 0x33, "9M");
    let j = lab.backup(&mut a, "incremental").await;
    assert_eq!(j.job.bytes_read, K64);
    let j = lab.backup(&mut b, "incremental").await;
    assert_eq!(j.job.bytes_read, 0);
    write(&disk_b, 0x44, "12M");
    let j = lab.backup(&mut b, "incremental").await;
    assert_eq!(j.job.bytes_read, K64);

    // The snapshot groups are the managed VMs' ids, never the shared name.
    let groups: Vec<String> = lab.points(&a).await.iter().chain(lab.points(&b).await.iter()).map(|p| p.snapshot_name.clone()).collect();
    assert!(groups.iter().all(|g| g == &format!("vm-{}", a.id) || g == &format!("vm-{}", b.id)), "{groups:?}");
    assert_eq!(lab.check_points(&a).await, 3);
    assert_eq!(lab.check_points(&b).await, 4);
    // Each backup added its restore point to the cached statistics.
    let r: shared_types::repositories::Repository = lab.ok("GET", &format!("/api/v1/repositories/{}", lab.repo.id), None, StatusCode::OK).await;
    assert_eq!(r.stats.as_ref().map(|s| s.snapshots), Some(7), "{r:?}");

    // Retention of A (keep 1) removes A's older points and none of B's.
    let rules = KeepRules { last: Some(1), ..Default::default() };
    let out = retention::apply_for_vm(&lab.f.state.db, lab.f.data.path(), &lab.repo, &a.id, &rules).await.unwrap();
    assert_eq!(out.removed.len(), 2, "{out:?}");
    assert!(out.removed.iter().all(|r| r.starts_with(&format!("vm-{}/", a.id))), "{out:?}");
    assert_eq!(lab.check_points(&a).await, 1);
    assert_eq!(lab.check_points(&b).await, 4, "retention of A never touches B");
    let (data, repo, group_b) = (lab.f.data.path().to_path_buf(), lab.repo.clone(), format!("vm-{}", b.id));
    let in_repo = tokio::task::spawn_blocking(move || open_datastore(&data, &repo).unwrap().list_snapshots(Some(&group_b)).unwrap().len()).await.unwrap();
    assert_eq!(in_repo, 4, "B's manifests are all in the repository");

    // A renamed on its platform: still the same managed VM, history kept,
    // the next backup incremental on it.
    let conn = host_a.platform().connect().unwrap();
    conn.lookup_domain_by_name("web-01").unwrap().rename("web-01-renamed", 0).unwrap();
    write(&a.disk, 0x55, "14M");
    let j = lab.backup(&mut a, "incremental").await;
    assert_eq!(j.job.bytes_read, K64, "the renamed VM's backup is incremental on its own history: {:?}", j.logs);
    assert_eq!(lab.check_points(&a).await, 2);
    assert_eq!(lab.check_points(&b).await, 4);
}

/// A repository written before identity by id (restore points in a group
/// named after the VM): after the upgrade those restore points still
/// restore, the next backup goes to the VM's own group with a full read
/// saying why, and retention by the VM's id covers both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_points_of_the_old_name_keyed_layout_still_restore_after_the_upgrade() {
    use sendense::catalog::backups::{record, NewBackup};
    use sendense::engine::backup::BackupOptions;
    use sendense::jobs::vm_backup::backup_vm;

    let f = fixture().await;
    let repo = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let token = f.admin_token().await;
    let lab = Lab { f, token, repo, root: tempfile::tempdir().unwrap() };
    let uuid = "00000000-0000-4000-8000-0000000000c1";
    let (dir, disk) = host(lab.root.path(), "site-c", uuid, 3);
    let kvm = TestHost::start(&dir).await;
    let mut vm = lab.add(&kvm, uuid, disk.clone()).await;

    // The old layout: a snapshot group named after the VM, recorded in the catalog.
    let (data, repo_row, platform) = (lab.f.data.path().to_path_buf(), lab.repo.clone(), kvm.platform());
    let legacy = tokio::task::spawn_blocking(move || {
        let ds = open_datastore(&data, &repo_row).unwrap();
        backup_vm(&platform, uuid, &ds, &BackupOptions::new("web-01"), &Progress::new()).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(legacy.manifest.name, "web-01");
    let row = record(
        &lab.f.state.db,
        NewBackup { vm_context_id: &vm.id, job_id: None, repository_id: &lab.repo.id, manifest: &legacy.manifest, immutable_days: 0, backup_type: None },
    )
    .await
    .unwrap();
    let raw = lab.root.path().join("expected-legacy.raw");
    run("qemu-img", &["convert", "-q", "-U", "-f", "qcow2", "-O", "raw", p(&disk), p(&raw)]);
    vm.expected.push((row.id.clone(), raw));

    write(&disk, 0x66, "2M");
    let j = lab.backup(&mut vm, "incremental").await;
    assert_eq!(j.job.bytes_read, MIB << 20, "the first backup in the VM's own group reads in full");
    assert!(j.logs.iter().any(|l| l.message.contains("full read (no previous backup")), "{:?}", j.logs);
    let j = lab.backup(&mut vm, "incremental").await;
    assert_eq!(j.job.bytes_read, 0, "then incremental in its own group");
    assert_eq!(lab.check_points(&vm).await, 3, "the old restore point restores beside the new ones");

    let out = retention::apply_for_vm(&lab.f.state.db, lab.f.data.path(), &lab.repo, &vm.id, &KeepRules { last: Some(2), ..Default::default() }).await.unwrap();
    assert_eq!(out.removed, vec![format!("web-01/{}", legacy.manifest.id)], "retention by the VM's id reaches its old restore points");
    assert_eq!(lab.check_points(&vm).await, 2);
}
