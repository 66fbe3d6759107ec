//! The libvirt platform against a real libvirtd (started here in its own
//! namespaces, as the lab's hosts are) and a real guest booting a Linux
//! kernel under QEMU: discovery, power, and backups of a running two-disk
//! VM whose incremental reads exactly the blocks the guest wrote, restoring
//! byte for byte (also read over TCP, as from a host reached remotely); a
//! shut-off VM backed up incrementally; a guest with a guest agent quiesced
//! for its backup (crash-consistent, saying why, when the agent is gone);
//! checkpoint chains
//! kept to one checkpoint per consumer. Needs root, libvirt and the guest
//! kit (scripts/test.sh installs and makes them).

// Index caches under target/tmp, not in ~/.cache.
#[path = "support/test_cache.rs"]
mod test_cache;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sendense::engine::backup::BackupOptions;
use sendense::engine::datastore::Datastore;
use sendense::engine::progress::Progress;
use sendense::engine::restore;
use sendense::jobs::vm_backup::backup_vm;
use sendense::jobs::vm_restore::{restore_vm, RestoreRequest};
use sendense::lab::guest::{self, GuestSpec};
use sendense::lab::guest_console::{self, GuestConsole};
use sendense::lab::libvirt_host::LibvirtHost;
use sendense::platforms::libvirt::{ffi, LibvirtPlatform};
use sendense::platforms::Platform;
use shared_types::platform::{Firmware, GuestOs, PowerState};

const K64: u64 = 64 * 1024;

/// Stops the host (guests, networks, daemon) however the test ends.
struct HostGuard(LibvirtHost);
impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop() {
            eprintln!("stopping the test host: {e:#}");
        }
    }
}

fn qemu_img(args: &[&str]) {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    assert!(o.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn restore_raw(ds: &Datastore, group: &str, snapshot: &str, disk: &str, out: &Path) {
    restore::restore(ds, group, snapshot, Some(disk), out, 2, &Progress::new()).unwrap();
}

/// Converts a qcow2 image to raw and compares it with `raw`.
fn same_as_image(raw: &Path, image: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U", "-f", "raw", "-F", "qcow2", p(raw), p(image)]).status().unwrap().success()
}

fn our_checkpoints(platform: &LibvirtPlatform, vm: &str) -> Vec<String> {
    let conn = platform.connect().unwrap();
    let dom = platform.domain(&conn, vm).unwrap();
    ffi::list_checkpoints(&dom).unwrap().into_iter().map(|(n, _)| n).filter(|n| n.starts_with("sendense-")).collect()
}

/// Runs `sendense vm backup` of `vm` into `repo` and kills it (SIGKILL)
/// `settle` after libvirt's backup job for it has started.
fn kill_backup_mid_read(uri: &str, vm: &str, repo: &Path, dom: &virt::domain::Domain, settle: Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sendense"))
        .args(["vm", "backup", "--host", uri, "--vm", vm, "--repo", p(repo), "--no-progress"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while ffi::backup_job(dom).is_none() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the backup job never started");
        assert!(child.try_wait().unwrap().is_none(), "the backup ended before it could be killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(settle);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The one checkpoint of the chain `prefix` (`sendense-b.<owner>.`) on `vm`, and its generation.
fn only_checkpoint(platform: &LibvirtPlatform, vm: &str, prefix: &str) -> (String, u64) {
    let ours: Vec<String> = our_checkpoints(platform, vm).into_iter().filter(|n| n.starts_with(prefix)).collect();
    assert_eq!(ours.len(), 1, "one checkpoint of {prefix}: {ours:?}");
    let generation = ours[0][prefix.len()..].parse().unwrap();
    (ours[0].clone(), generation)
}

#[test]
fn a_running_guests_writes_are_exactly_what_its_incremental_reads_and_a_shut_off_vm_stays_incremental() {
    let kit = guest::kit_dir().unwrap();
    let t = tempfile::Builder::new().prefix("sd-lv").tempdir_in("/tmp").unwrap();
    let host = HostGuard(LibvirtHost::new("t1", &t.path().join("host")));
    let started = Instant::now();
    host.0.start().unwrap();
    eprintln!("libvirtd up in {} ms", started.elapsed().as_millis());

    let images = host.0.images();
    let (vda, vdb): (PathBuf, PathBuf) = (images.join("g1-vda.qcow2"), images.join("g1-vdb.qcow2"));
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=1.1", p(&vda), "64M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=1.1", p(&vdb), "32M"]);
    let console_log = images.join("g1.console.log");
    let xml = guest::domain_xml(&kit, &GuestSpec {
        name: "g1",
        memory_mib: 128,
        disks: &[("vda", &vda), ("vdb", &vdb)],
        networks: &[],
        console_log: &console_log,
        role: Some("web"),
    });
    let platform = LibvirtPlatform::new(&host.0.uri());
    let conn = platform.connect().unwrap();
    conn.define_domain_xml(&xml).unwrap();

    // Discovery reads the definition and the real power state.
    let inv = platform.inventory().unwrap();
    assert_eq!(inv.host.name, "lab-t1", "the host's own name");
    let vm = inv.vms.iter().find(|v| v.name == "g1").expect("g1 discovered");
    assert_eq!(vm.power, PowerState::Stopped);
    assert_eq!(vm.disks.iter().map(|d| (d.name.as_str(), d.capacity_bytes)).collect::<Vec<_>>(), vec![("vda", 64 << 20), ("vdb", 32 << 20)]);
    assert_eq!(vm.role.as_deref(), Some("web"));
    let id = vm.id.clone();

    // Power on: a QEMU process boots the kernel and the guest says who it is.
    let t0 = Instant::now();
    let on = platform.set_power(&id, PowerState::Running).unwrap();
    assert_eq!(on.power, PowerState::Running);
    let line = guest_console::wait_for_boot(&console_log, Duration::from_secs(90)).unwrap();
    assert!(line.contains("name=g1") && line.contains("vda:131072") && line.contains("vdb:65536"), "{line}");
    eprintln!("guest up {} ms after start: {line}", t0.elapsed().as_millis());
    let dom = platform.domain(&conn, &id).unwrap();
    let pty = platform.definition(&dom).unwrap().console_pty.expect("a console pty while running");
    let mut console = GuestConsole::open(Path::new(&pty)).unwrap();
    console.run("true", Duration::from_secs(30)).unwrap();

    let repo = t.path().join("repo");
    let ds = Datastore::init(&repo, None).unwrap();
    let opts = BackupOptions::new("vm-owner-1");
    let full = backup_vm(&platform, &id, &ds, &opts, &Progress::new()).unwrap();
    assert!(full.disks.iter().all(|d| !d.incremental), "{:?}", full.disks);
    assert!(full.disks[0].full_read_reason.as_deref().unwrap().contains("no previous backup"), "{:?}", full.disks);
    let chain = "sendense-b.vm-owner-1.";
    let (_, g1) = only_checkpoint(&platform, &id, chain);

    // The guest writes a known set of blocks on both disks (raw, fsynced).
    let w = |dev: &str, off: u64, kib: u64, byte: u8| {
        format!("dd if=/dev/zero bs=4096 count={} 2>/dev/null | tr '\\000' '\\{:03o}' | dd of=/dev/{dev} bs=4096 seek={} conv=fsync 2>/dev/null", kib / 4, byte, off / 4096)
    };
    let writes = [("vda", 1u64 << 20, 4u64, 0xabu8), ("vda", (5 << 20) + (128 << 10), 64, 0xcd), ("vda", 20 << 20, 200, 0xef), ("vdb", 3 << 20, 64, 0x11)];
    for (dev, off, kib, byte) in writes {
        console.run(&w(dev, off, kib, byte), Duration::from_secs(60)).unwrap();
    }
    // Expected dirty bytes at 64 KiB granularity: 64K + 64K + 256K on vda, 64K on vdb.
    let inc = backup_vm(&platform, &id, &ds, &opts, &Progress::new()).unwrap();
    assert!(inc.disks.iter().all(|d| d.incremental), "{:?}", inc.disks);
    assert_eq!(inc.disks[0].changed_bytes, 64 * 1024 + K64 + 4 * K64, "vda: exactly the guest's writes");
    assert_eq!(inc.disks[1].changed_bytes, K64, "vdb: exactly the guest's write");
    assert_eq!(inc.bytes_read, 7 * K64);
    let (_, g2) = only_checkpoint(&platform, &id, chain);
    assert!(g2 > g1, "the older checkpoint is deleted, the new one comes after it");

    // The same chain read over TCP, as from a host reached remotely:
    // libvirt opens the export on a TCP port of the host (its scratch files
    // stay on the host) and the read is still exactly the guest's write.
    console.run(&w("vdb", 7 << 20, 64, 0x22), Duration::from_secs(60)).unwrap();
    let mut remote = LibvirtPlatform::new(&host.0.uri());
    remote.export_host = Some("127.0.0.1".into());
    let t0 = Instant::now();
    let inc = backup_vm(&remote, &id, &ds, &opts, &Progress::new()).unwrap();
    eprintln!("incremental over TCP in {} ms", t0.elapsed().as_millis());
    assert!(inc.disks.iter().all(|d| d.incremental), "{:?}", inc.disks);
    assert_eq!((inc.disks[0].changed_bytes, inc.disks[1].changed_bytes), (0, K64), "over TCP: exactly the guest's write");
    let (_, g3) = only_checkpoint(&platform, &id, chain);
    assert!(g3 > g2, "the chain goes on over TCP");
    assert!(ffi::backup_job(&platform.domain(&conn, &id).unwrap()).is_none(), "the TCP export's job is ended");

    // Stop the guest (ACPI first; the short timeout stops it hard if need be) and
    // compare the restore point with what the disks hold.
    let mut p2 = LibvirtPlatform::new(&host.0.uri());
    p2.shutdown_timeout = Duration::from_secs(2);
    drop(console);
    assert_eq!(p2.set_power(&id, PowerState::Stopped).unwrap().power, PowerState::Stopped);
    for (disk, image) in [("vda", &vda), ("vdb", &vdb)] {
        let out = t.path().join(format!("{disk}.raw"));
        restore_raw(&ds, "vm-owner-1", &inc.snapshot, disk, &out);
        assert!(same_as_image(&out, image), "{disk} restores byte for byte as the guest left it");
        if disk == "vda" {
            let data = std::fs::read(&out).unwrap();
            assert!(data[(20 << 20)..(20 << 20) + 200 * 1024].iter().all(|&b| b == 0xef), "the guest's bytes are in the restore point");
        }
    }

    // Shut off: read through a paused start, still incremental, nothing changed.
    let off = backup_vm(&platform, &id, &ds, &opts, &Progress::new()).unwrap();
    assert!(off.disks.iter().all(|d| d.incremental), "{:?}", off.disks);
    assert_eq!(off.bytes_read, 0, "nothing was written while it was off");
    assert_eq!(platform.vm(&id).unwrap().power, PowerState::Stopped, "the VM started for the read is stopped again");
    let (c3, g3) = only_checkpoint(&platform, &id, chain);
    assert!(g3 > g2);

    // Another consumer's token is foreign: a full read that says so.
    let other = platform.open_vm_disks(&id, Some(c3.as_str()), "vm-owner-2").unwrap();
    assert!(other[0].changed_ranges.is_none());
    assert!(other[0].full_read_reason.as_deref().unwrap().contains("another VM or consumer"), "{:?}", other[0].full_read_reason);
    for r in other {
        r.finish(false).unwrap();
    }
    assert_eq!(our_checkpoints(&platform, &id), vec![c3.clone()], "a failed read leaves the chains as they were");
    assert_eq!(platform.vm(&id).unwrap().power, PowerState::Stopped);

    // A replication's own chain on the shut-off VM, then removed: its
    // checkpoint goes (through a paused start), the backups' stays, the VM stays off.
    let reads = platform.open_vm(&id, None, &sendense::platforms::libvirt::backup::Chain::consumer("flow-7")).unwrap();
    for r in reads {
        r.finish(true).unwrap();
    }
    assert_eq!(our_checkpoints(&platform, &id).len(), 2, "{:?}", our_checkpoints(&platform, &id));
    assert_eq!(platform.vm(&id).unwrap().power, PowerState::Stopped);
    platform.stop_tracking(&id, "flow-7").unwrap();
    assert_eq!(our_checkpoints(&platform, &id), vec![c3.clone()], "only the replication's chain is gone");
    assert_eq!(platform.vm(&id).unwrap().power, PowerState::Stopped, "stopped again after the paused start");
    // Restore the second restore point as a new VM with power on: its disks
    // go into the host's pool through libvirt, and it boots.
    let pool_xml = format!("<pool type='dir'><name>images</name><target><path>{}</path></target></pool>", images.display());
    conn.define_storage_pool_xml(&pool_xml, 0).unwrap().create(0).unwrap();
    let staging = t.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let req = RestoreRequest {
        source_vm: "vm-owner-1".into(),
        snapshot: inc.snapshot.clone(),
        new_name: "g1-restored".into(),
        format: None,
        vcpus: 1,
        memory_mib: 128,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        nics: vec![],
        power_on: true,
        storage_pool: None,
    };
    let t0 = Instant::now();
    let restored = restore_vm(&ds, &platform, &req, &staging, 2, &Progress::new()).unwrap();
    assert_eq!(restored.power, PowerState::Running);
    assert_ne!(restored.id, id, "a new VM, with its own uuid");
    let line = guest_console::wait_for_boot(&images.join("g1-restored.console.log"), Duration::from_secs(60)).unwrap();
    assert!(line.contains("name=g1") && line.contains("vda:131072") && line.contains("vdb:65536"), "{line}");
    assert!(line.contains("agent=on"), "the restored VM keeps the source's guest agent channel: {line}");
    eprintln!("restored guest up {} ms after the restore started: {line}", t0.elapsed().as_millis());
    for disk in ["vda", "vdb"] {
        let volume = images.join(format!("g1-restored-{disk}.qcow2"));
        assert!(same_as_image(&t.path().join(format!("{disk}.raw")), &volume), "{disk} of the restored VM holds the restore point");
    }
    platform.delete_vm(&restored.id).unwrap();
    assert!(matches!(platform.vm(&restored.id), Err(sendense::platforms::PlatformError::VmNotFound(_))));
    assert!(!images.join("g1-restored-vda.qcow2").exists(), "its volumes are deleted");
    // A chosen storage pool: the disks go there; an unknown one is refused by name.
    let fast = t.path().join("fast-pool");
    std::fs::create_dir_all(&fast).unwrap();
    let fast_xml = format!("<pool type='dir'><name>fast</name><target><path>{}</path></target></pool>", fast.display());
    conn.define_storage_pool_xml(&fast_xml, 0).unwrap().create(0).unwrap();
    let err = restore_vm(&ds, &platform, &RestoreRequest { new_name: "g1-nowhere".into(), power_on: false, storage_pool: Some("nope".into()), ..req.clone() }, &staging, 2, &Progress::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no storage pool 'nope'") && err.contains("fast") && err.contains("images"), "{err}");
    let placed = restore_vm(&ds, &platform, &RestoreRequest { new_name: "g1-fast".into(), power_on: false, storage_pool: Some("fast".into()), ..req.clone() }, &staging, 2, &Progress::new()).unwrap();
    assert!(fast.join("g1-fast-vda.qcow2").exists() && !images.join("g1-fast-vda.qcow2").exists(), "the disks are in the chosen pool");
    assert!(same_as_image(&t.path().join("vda.raw"), &fast.join("g1-fast-vda.qcow2")));
    // Both pools are on one filesystem here: the same free space, give or
    // take what other processes write between the two readings.
    let (fast_free, default_free) = (platform.disk_space_in(Some("fast")).unwrap().free_bytes, platform.disk_space_in(None).unwrap().free_bytes);
    assert!(fast_free.abs_diff(default_free) < 256 << 20, "both pools on one filesystem: {fast_free} vs {default_free} bytes free");
    platform.delete_vm(&placed.id).unwrap();
    assert!(!fast.join("g1-fast-vda.qcow2").exists());

    // Both disks written while the backup runs: the guest writes a counter
    // to vda, then the same to vdb, over and over. One point in time for
    // both disks means vda holds vdb's value or the next one; disks read at
    // different moments would disagree by more.
    let console_log_before = std::fs::read_to_string(&console_log).unwrap_or_default();
    assert_eq!(platform.set_power(&id, PowerState::Running).unwrap().power, PowerState::Running);
    let t0 = Instant::now();
    while std::fs::read_to_string(&console_log).unwrap_or_default() == console_log_before || guest_console::wait_for_boot(&console_log, Duration::from_millis(10)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(90), "g1 did not boot again");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pty = platform.definition(&platform.domain(&conn, &id).unwrap()).unwrap().console_pty.unwrap();
    let mut console = GuestConsole::open(Path::new(&pty)).unwrap();
    let w = |dev: &str, sector: u64| format!("dd if=/tmp/c of=/dev/{dev} bs=512 seek={sector} count=1 conv=fsync,notrunc 2>/dev/null");
    let writer = format!("mkdir -p /tmp; ( i=1; while true; do printf '%012d' $i > /tmp/c; {}; {}; i=$((i+1)); done ) & echo $! > /tmp/writer", w("vda", 100_000), w("vdb", 50_000));
    console.run(&writer, Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let during = backup_vm(&platform, &id, &ds, &opts, &Progress::new()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    console.run("kill $(cat /tmp/writer)", Duration::from_secs(30)).unwrap();
    let counter_at = |raw: &Path, sector: u64| -> u64 {
        let data = std::fs::read(raw).unwrap();
        let at = (sector * 512) as usize;
        std::str::from_utf8(&data[at..at + 12]).unwrap().parse().unwrap()
    };
    let (ra, rb) = (t.path().join("during-vda.raw"), t.path().join("during-vdb.raw"));
    restore_raw(&ds, "vm-owner-1", &during.snapshot, "vda", &ra);
    restore_raw(&ds, "vm-owner-1", &during.snapshot, "vdb", &rb);
    let (a, b) = (counter_at(&ra, 100_000), counter_at(&rb, 50_000));
    let now = console.run("dd if=/dev/vda bs=512 skip=100000 count=1 2>/dev/null | head -c 12", Duration::from_secs(30)).unwrap();
    let last: u64 = now.trim().trim_start_matches('0').parse().unwrap_or(0);
    eprintln!("counters in the restore point: vda {a}, vdb {b}; the guest went on to {last}");
    assert!(b > 0 && (a == b || a == b + 1), "both disks from one point in time: vda {a}, vdb {b}");
    assert!(last > a, "the guest kept writing after the backup's point in time ({a} then {last}): the backup ran during the writes");
    drop(console);

    let pid = host.0.pid().expect("the daemon runs");
    drop(host);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the host's daemon is gone");
}

/// A server killed mid-backup leaves libvirt's backup job exporting the
/// disk; the clean-up the server runs at start ends it (and nothing else),
/// and the next backup is incremental from the last good checkpoint,
/// restores byte for byte, and leaves one checkpoint in the chain.
#[test]
fn a_backup_killed_mid_read_leaves_nothing_dangling_after_the_clean_up() {
    let kit = guest::kit_dir().unwrap();
    let t = tempfile::Builder::new().prefix("sd-lk").tempdir_in("/tmp").unwrap();
    let host = HostGuard(LibvirtHost::new("t2", &t.path().join("host")));
    host.0.start().unwrap();
    let images = host.0.images();
    let vda = images.join("g2-vda.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=1.1", p(&vda), "512M"]);
    // 384 MiB of data: the read takes long enough to be killed in the middle.
    let o = Command::new("qemu-io").args(["-f", "qcow2", "-c", "write -P 0x5a 0 384M", p(&vda)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = images.join("g2.console.log");
    let xml = guest::domain_xml(&kit, &GuestSpec { name: "g2", memory_mib: 128, disks: &[("vda", &vda)], networks: &[], console_log: &log, role: None });
    let platform = LibvirtPlatform::new(&host.0.uri());
    let conn = platform.connect().unwrap();
    let dom = conn.define_domain_xml(&xml).unwrap();
    dom.create().unwrap();
    guest_console::wait_for_boot(&log, Duration::from_secs(90)).unwrap();

    let repo = t.path().join("repo");
    let cli = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_sendense")).args(args).output().unwrap();
    let o = cli(&["repo", "init", p(&repo)]);
    assert!(o.status.success());
    let uri = host.0.uri();
    let backup = ["vm", "backup", "--host", uri.as_str(), "--vm", "g2", "--repo", p(&repo), "--no-progress", "--json"];
    let o = cli(&backup);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(ffi::backup_job(&dom).is_none(), "a finished backup leaves no job: {}", String::from_utf8_lossy(&o.stderr));
    let chain = "sendense-b.g2.";
    let (first, _) = only_checkpoint(&platform, "g2", chain);

    // A full read (into another repository: no parent there) killed while it reads.
    let killed_repo = t.path().join("repo-killed");
    assert!(cli(&["repo", "init", p(&killed_repo)]).status.success());
    kill_backup_mid_read(&uri, "g2", &killed_repo, &dom, Duration::from_millis(100));
    let job = ffi::backup_job(&dom).expect("the killed read left its job exporting the disk");
    let at = job.find("socket=").expect("a unix socket export") + "socket=".len();
    let quote = job[at..].chars().next().unwrap();
    let socket = job[at + 1..].split(quote).next().unwrap();
    let socket_dir = Path::new(socket).parent().unwrap().to_path_buf();
    assert!(socket_dir.exists());
    let left = our_checkpoints(&platform, "g2");
    assert_eq!(left.len(), 2, "and its new checkpoint: {left:?}");
    let crashed = left.iter().find(|n| **n != first).unwrap().clone();

    // The clean-up at start ends it.
    assert_eq!(platform.clean_up_after_restart().unwrap(), 1);
    assert!(ffi::backup_job(&dom).is_none(), "no backup job is left");
    assert_eq!(platform.clean_up_after_restart().unwrap(), 0, "idempotent");
    assert!(!socket_dir.exists(), "its export socket directory {} is removed", socket_dir.display());

    // The next backup: incremental from the last good checkpoint, exact.
    let o = cli(&backup);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["disks"][0]["incremental"], true, "{report}");
    assert_eq!(report["bytes_read"], 0, "the guest wrote nothing: {report}");
    let (third, _) = only_checkpoint(&platform, "g2", chain);
    assert!(third != first && third != crashed, "the crashed read's checkpoint went with the older one: {third}");
    let ds = Datastore::open(&repo, None).unwrap();
    let out = t.path().join("g2.raw");
    restore_raw(&ds, "g2", "latest", "vda", &out);
    assert!(same_as_image(&out, &vda), "restores byte for byte");

    // The checkpoint's bitmap removed from the disk behind libvirt's back
    // (VM shut off): the next backup reads in full, says why, and the chain
    // starts again with one checkpoint.
    dom.destroy().unwrap();
    let o = Command::new("qemu-img").args(["bitmap", "--remove", p(&vda), third.as_str()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(&backup);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["disks"][0]["incremental"], false, "{report}");
    let reason = report["disks"][0]["full_read_reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&third) && reason.contains("could not be used"), "{reason}");
    assert!(report["bytes_read"].as_u64().unwrap() >= 384 << 20, "{report}");
    let (fourth, _) = only_checkpoint(&platform, "g2", chain);
    assert!(fourth != third);

    // A full read of the shut-off VM (started paused for it) killed: the
    // clean-up at start ends its job and stops the VM again.
    assert_eq!(platform.vm("g2").unwrap().power, PowerState::Stopped);
    let killed_repo2 = t.path().join("repo-killed-2");
    assert!(cli(&["repo", "init", p(&killed_repo2)]).status.success());
    kill_backup_mid_read(&uri, "g2", &killed_repo2, &dom, Duration::ZERO);
    assert_eq!(platform.vm("g2").unwrap().power, PowerState::Suspended, "the killed read left the VM paused");
    assert_eq!(platform.clean_up_after_restart().unwrap(), 1);
    assert_eq!(platform.vm("g2").unwrap().power, PowerState::Stopped, "the clean-up stopped the VM it had started paused");
    let out2 = t.path().join("g2-after.raw");
    restore_raw(&ds, "g2", "latest", "vda", &out2);
    assert!(same_as_image(&out2, &vda), "the full read restores byte for byte");
}

/// A disk image (qcow2) of `size` bytes with an MBR and one ext4 partition
/// from 1 MiB to the end, as a guest's data disk.
fn ext4_disk(raw: &Path, qcow2: &Path, size: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let f = std::fs::File::create(raw).unwrap();
    f.set_len(size).unwrap();
    let o = Command::new("mkfs.ext4").args(["-q", "-F", "-E", "offset=1048576", p(raw), &format!("{}k", (size - (1 << 20)) / 1024)]).output().unwrap();
    assert!(o.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&o.stderr));
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(((size >> 9) - 2048) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut f = std::fs::OpenOptions::new().write(true).open(raw).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&mbr).unwrap();
    drop(f);
    qemu_img(&["convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", p(raw), p(qcow2)]);
}

#[test]
fn a_running_guest_with_an_agent_is_quiesced_for_its_backup_and_without_one_the_backup_says_so() {
    use sendense::platforms::Quiesce;
    let kit = guest::kit_dir().unwrap();
    let t = tempfile::Builder::new().prefix("sd-lq").tempdir_in("/tmp").unwrap();
    let host = HostGuard(LibvirtHost::new("t3", &t.path().join("host")));
    host.0.start().unwrap();
    let images = host.0.images();
    let vda = images.join("g3-vda.qcow2");
    ext4_disk(&t.path().join("g3.raw"), &vda, 32 << 20);
    let log = images.join("g3.console.log");
    let xml = guest::domain_xml(&kit, &GuestSpec { name: "g3", memory_mib: 128, disks: &[("vda", &vda)], networks: &[], console_log: &log, role: Some("web") });
    assert!(xml.contains("org.qemu.guest_agent.0"), "lab guests have a guest agent channel");
    let platform = LibvirtPlatform::new(&host.0.uri());
    let conn = platform.connect().unwrap();
    let dom = conn.define_domain_xml(&xml).unwrap();
    dom.create().unwrap();
    let line = guest_console::wait_for_boot(&log, Duration::from_secs(90)).unwrap();
    assert!(line.contains("mounts=vda1:ext4") && line.contains("agent=on"), "{line}");
    // The agent answers once it has opened its port.
    let t0 = Instant::now();
    while ffi::fs_thaw(&dom).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(30), "the guest agent never answered");
        std::thread::sleep(Duration::from_millis(200));
    }

    let repo = t.path().join("repo");
    let ds = Datastore::init(&repo, None).unwrap();
    let opts = BackupOptions::new("vm-owner-3");
    let full = backup_vm(&platform, "g3", &ds, &opts, &Progress::new()).unwrap();
    assert_eq!(full.quiesce, Some(Quiesce::Frozen { filesystems: 1 }), "the agent froze the guest's one mounted filesystem");
    // Thawed again: the guest writes to it at once.
    let pty = platform.definition(&dom).unwrap().console_pty.unwrap();
    let mut console = GuestConsole::open(Path::new(&pty)).unwrap();
    console.run("echo after > /mnt/vda1/after-backup && sync", Duration::from_secs(10)).expect("the filesystem is thawed after the backup");
    assert!(dom.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some("https://sendense.io/xmlns/frozen-for-backup/1"), virt::sys::VIR_DOMAIN_AFFECT_LIVE).is_err(), "no freeze mark is left");

    // The agent stopped inside the guest: the backup still runs, crash-consistent, and says why.
    console.run("killall qemu-ga", Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let inc = backup_vm(&platform, "g3", &ds, &opts, &Progress::new()).unwrap();
    match &inc.quiesce {
        Some(Quiesce::AgentFailed { reason }) => assert!(!reason.is_empty()),
        other => panic!("expected a crash-consistent read naming the agent's failure, got {other:?}"),
    }
    assert!(inc.disks.iter().all(|d| d.incremental), "{:?}", inc.disks);
    console.run("echo still > /mnt/vda1/after-second && sync", Duration::from_secs(10)).expect("nothing stays frozen");

    // Shut off: read at rest.
    drop(console);
    dom.destroy().unwrap();
    let off = backup_vm(&platform, "g3", &ds, &opts, &Progress::new()).unwrap();
    assert_eq!(off.quiesce, Some(Quiesce::AtRest));
}
