//! Replication between two real libvirt hosts (each the test's own daemon,
//! see `support::kvm`) with real qemu tools: initial and incremental syncs
//! (exact bytes), restore points and their pruning, a sync killed with
//! SIGKILL mid-copy (the child process is this test binary re-run, on the
//! same hosts), test failover, live failover, rollback with and without sync
//! back, cleanup, refusals, and the demo lab. The source VM is shut off and
//! written with `qemu-io` (libvirt's checkpoint bitmaps in the qcow2 record
//! it); where it runs (and on a running replica or test VM), its guest (the
//! lab's guest kit) writes the same bytes on its disk over its console.
//! Prints METRIC lines (also appended to `target/replication-metrics.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sendense::engine::backup::BackupOptions;
use sendense::engine::datastore::Datastore;
use sendense::engine::progress::Progress;
use sendense::jobs::vm_backup::backup_vm;
use sendense::lab::guest_console::GuestConsole;
use sendense::platforms::kvm::definition::{self, DiskDefinition, HostDefinition, VmDefinition};
use sendense::platforms::kvm::qemu_img;
use sendense::platforms::libvirt::{ffi, LibvirtPlatform};
use sendense::platforms::Platform;
use sendense::replication::{self, replica, Ctx, FailoverOptions, Phase, ReplicaSpec};
use shared_types::networks::NetworkPair;
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState};
use shared_types::replication::{SyncKind, ISOLATED_NETWORK};

mod support;
use support::kvm::TestHost;

const K64: u64 = 65536;
const MIB: u64 = 1 << 20;
/// How long a guest may take to answer the ACPI button before it is stopped
/// hard. A booted guest kit powers off in about a second; a timeout that
/// close races with it (the hard stop of a guest that just powered itself
/// off fails: "domain is not running"), so a little longer.
const SHUTDOWN: Duration = Duration::from_secs(5);

fn metric(line: &str) {
    use std::io::Write;
    eprintln!("METRIC {line}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/replication-metrics.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `qemu-io` commands on an image no QEMU has open.
fn qemu_io(disk: &Path, cmds: &[String]) {
    let mut args = vec!["-f".to_string(), "qcow2".to_string()];
    for c in cmds {
        args.extend(["-c".to_string(), c.clone()]);
    }
    args.push(p(disk).into());
    run("qemu-io", &args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// `qemu-io` commands on disk `vda` of VM `vm` of `host`: on its image
/// while it is shut off; while it runs, its guest writes the same bytes
/// (`write -P` only) on `/dev/vda` over its console and syncs them to the
/// disk (QEMU holds the image then).
fn write(host: &TestHost, vm: &str, cmds: &[String]) {
    if !host.is_running(vm) {
        let (_, image) = host.disk_files(vm).into_iter().find(|(t, _)| t == "vda").expect("a disk vda");
        return qemu_io(&image, cmds);
    }
    let platform = host.platform();
    let line = platform.wait_until_up(vm, Duration::from_secs(180)).unwrap();
    assert!(line.is_some(), "{vm}: its guest never came up to write");
    let conn = platform.connect().unwrap();
    let pty = platform.definition(&platform.domain(&conn, vm).unwrap()).unwrap().console_pty.expect("a console pty while running");
    let mut console = GuestConsole::open(Path::new(&pty)).unwrap();
    for c in cmds {
        let (byte, offset, len) = match c.split_whitespace().collect::<Vec<_>>()[..] {
            ["write", "-P", byte, offset, len] => (u8::from_str_radix(byte.trim_start_matches("0x"), 16).unwrap(), size(offset), size(len)),
            _ => panic!("{vm} runs: its guest writes only `write -P`, not `{c}`"),
        };
        assert!(offset % 4096 == 0 && len % 4096 == 0, "{c}: whole pages");
        let dd = format!(
            "dd if=/dev/zero bs=4096 count={} 2>/dev/null | tr '\\000' '\\{byte:03o}' | dd of=/dev/vda bs=4096 seek={} conv=fsync 2>/dev/null",
            len / 4096,
            offset / 4096
        );
        console.run(&dd, Duration::from_secs(120)).unwrap_or_else(|e| panic!("{vm}: {c}: {e:#}"));
    }
}

/// `64k`, `4M`, `1234` in bytes.
fn size(s: &str) -> u64 {
    let (n, unit) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1 << 10),
        None => match s.strip_suffix('M') {
            Some(n) => (n, MIB),
            None => (s, 1),
        },
    };
    n.parse::<u64>().unwrap() * unit
}

/// Writes 64 KiB of pattern `0x40 + i` at each offset.
fn scatter(host: &TestHost, vm: &str, offsets: &[u64], seed: u8) {
    let cmds: Vec<String> = offsets.iter().enumerate().map(|(i, o)| format!("write -P 0x{:x} {o} 64k", seed.wrapping_add(i as u8) | 1)).collect();
    write(host, vm, &cmds);
}

/// `qemu-img compare` of two qcow2 images (through their backing chains).
fn same(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U", "-f", "qcow2", "-F", "qcow2", p(a), p(b)]).status().unwrap().success()
}

/// A raw copy of what `disk` reads as now.
fn snapshot_raw(disk: &Path, out: &Path) {
    run("qemu-img", &["convert", "-U", "-f", "qcow2", "-O", "raw", p(disk), p(out)]);
}

fn same_as_raw(disk: &Path, raw: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U", "-f", "qcow2", "-F", "raw", p(disk), p(raw)]).status().unwrap().success()
}

/// blake3 of every file in a directory (name → digest), to prove nothing changed.
fn digests(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".qcow2"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), blake3::hash(&std::fs::read(e.path()).unwrap()).to_hex().to_string()))
        .collect();
    out.sort();
    out
}

/// The end of the QEMU log libvirt keeps for VM `vm` of `host` (why it stopped).
fn qemu_log(host: &TestHost, vm: &str) -> String {
    let log = host.host.images().parent().unwrap().join("log/qemu").join(format!("{vm}.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| format!("{}: {e}", log.display()));
    text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// The checkpoints libvirt keeps for VM `vm` of `host`.
fn checkpoints(host: &TestHost, vm: &str) -> Vec<String> {
    let conn = sendense::platforms::libvirt::open(&host.uri()).unwrap();
    let mut names: Vec<String> = ffi::list_checkpoints(&conn.lookup_domain_by_name(vm).unwrap()).unwrap().into_iter().map(|(n, _)| n).collect();
    names.sort();
    names
}

/// A storage pool over the folder of each image of VM `vm` that is in none
/// yet: libvirt writes into a VM's disk (a rollback's sync back) only
/// through a storage pool's volume.
fn pool_over_disks(host: &TestHost, vm: &str) {
    let conn = sendense::platforms::libvirt::open(&host.uri()).unwrap();
    let pooled: Vec<PathBuf> = conn
        .list_all_storage_pools(0)
        .unwrap()
        .iter()
        .filter_map(|pool| {
            let xml = pool.xml_desc(0).ok()?;
            let doc = roxmltree::Document::parse(&xml).ok()?;
            let path = doc.descendants().find(|n| n.has_tag_name("target"))?.children().find(|n| n.has_tag_name("path"))?.text()?.trim().to_string();
            Some(PathBuf::from(path))
        })
        .collect();
    let mut dirs: Vec<PathBuf> = host.vm(vm).disks.iter().map(|(_, f)| f.parent().unwrap().to_path_buf()).filter(|d| !pooled.contains(d)).collect();
    dirs.dedup();
    for (i, dir) in dirs.iter().enumerate() {
        let xml = format!("<pool type='dir'><name>images-of-{vm}-{i}</name><target><path>{}</path></target></pool>", dir.display());
        conn.define_storage_pool_xml(&xml, 0).unwrap().create(0).unwrap();
    }
}

/// Starts the hosts of two layouts side by side.
fn start_hosts(a: &Path, b: &Path) -> (TestHost, TestHost) {
    std::thread::scope(|s| {
        let first = s.spawn(|| TestHost::start_blocking(a));
        let second = TestHost::start_blocking(b);
        (first.join().unwrap(), second)
    })
}

/// A platform on `host` whose graceful shutdowns wait [`SHUTDOWN`] at most.
fn platform(host: &TestHost) -> LibvirtPlatform {
    let mut p = host.platform();
    p.shutdown_timeout = SHUTDOWN;
    p
}

struct Lab {
    prod_host: TestHost,
    dr_host: TestHost,
    /// The layouts and the test's scratch files.
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Lab {
    fn prod(&self) -> LibvirtPlatform {
        platform(&self.prod_host)
    }
    fn dr(&self) -> LibvirtPlatform {
        platform(&self.dr_host)
    }
    fn disk(&self) -> PathBuf {
        self.prod_host.vm("vm1").disk("vda").to_path_buf()
    }
    /// The replica's folder in the DR host's storage pool.
    fn replica_dir(&self) -> PathBuf {
        self.dr_host.host.images().join("vm1-replica")
    }
    fn point(&self, seq: u64) -> PathBuf {
        self.replica_dir().join(replica::point_name("vda", seq))
    }
    fn top(&self) -> PathBuf {
        self.replica_dir().join(replica::top_name("vda"))
    }
    fn scratch(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn host(dir: &Path, name: &str, nets: &[&str], isolated: &[&str]) {
    let net = |n: &str, isolated: bool| NetworkInfo { name: n.to_string(), bridge: Some(format!("br-{n}")), cidr: None, vlan: None, isolated, inactive: false };
    definition::write_host(
        dir,
        &HostDefinition {
            name: name.into(),
            cpu_cores: 8,
            memory_mib: 16384,
            networks: nets.iter().map(|n| net(n, false)).chain(isolated.iter().map(|n| net(n, true))).collect(),
        },
    )
    .unwrap();
}

/// A production host with VM `vm1`, shut off (one qcow2 disk `vda` of
/// `size`, data at 0..1M, 5M..5M+192K and 17M..17M+64K, on networks lan and
/// dmz, its folder a storage pool) and an empty DR host with lan, dmz,
/// storage and the isolated network test VMs go on.
fn lab(size: &str) -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let prod_dir = root.join("prod");
    let dr_dir = root.join("dr");
    host(&prod_dir, "kvm-prod", &["lan", "dmz"], &[]);
    host(&dr_dir, "kvm-dr", &["lan", "dmz", "storage"], &[ISOLATED_NETWORK]);
    let vm = VmDefinition {
        name: "vm1".into(),
        uuid: "0b4f6c2e-1111-4222-8333-944445555666".into(),
        vcpus: 2,
        memory_mib: 2048,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        power: PowerState::Running,
        role: Some("web".into()),
        nics: vec![
            NicInfo { mac: "52:54:00:12:34:56".into(), network: "lan".into(), model: "virtio".into() },
            NicInfo { mac: "52:54:00:12:34:57".into(), network: "dmz".into(), model: "virtio".into() },
        ],
        disks: vec![DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: DiskFormat::Qcow2, bus: "virtio".into() }],
    };
    definition::write_vm(&prod_dir, &vm).unwrap();
    let disk = definition::vm_dir(&prod_dir, "vm1").join("disk0.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", p(&disk), size]);
    qemu_io(&disk, &["write -P 0x11 0 1M".into(), "write -P 0x22 5M 192k".into(), "write -P 0x33 17M 64k".into()]);
    let (prod_host, dr_host) = start_hosts(&prod_dir, &dr_dir);
    pool_over_disks(&prod_host, "vm1");
    Lab { prod_host, dr_host, root, _tmp: tmp }
}

fn spec(keep: u32) -> ReplicaSpec {
    ReplicaSpec { id: "f1".into(), source_vm: "vm1".into(), source_vm_id: String::new(), replica_name: "vm1-replica".into(), keep_points: keep }
}

fn quiet() -> (Progress, impl Fn(String) + Sync) {
    (Progress::new(), |l: String| eprintln!("  log: {l}"))
}

fn mapping() -> Vec<NetworkPair> {
    vec![
        NetworkPair { source_network: "lan".into(), target_network: "lan".into() },
        NetworkPair { source_network: "dmz".into(), target_network: "dmz".into() },
    ]
}

#[test]
fn initial_sync_then_incrementals_copy_exactly_the_changed_blocks_and_points_are_pruned() {
    let lab = lab("64M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let spec = spec(3);

    let full = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert!(full.created_replica && full.kind == SyncKind::Full, "{full:?}");
    let allocated = MIB + 192 * 1024 + K64;
    assert_eq!(full.bytes_read, allocated, "only allocated blocks are read");
    assert_eq!(full.bytes_written, allocated);
    assert!(same(&lab.disk(), &lab.point(1)), "point 1 equals the source");
    let rvm = dr.vm("vm1-replica").unwrap();
    assert_eq!((rvm.power, rvm.vcpus, rvm.memory_mib, rvm.disks.len()), (PowerState::Stopped, 2, 2048, 1));
    assert!(rvm.nics.iter().all(|n| n.network == replica::UNCONNECTED) && rvm.nics.len() == 2, "NICs unconnected until failover: {:?}", rvm.nics);
    assert_eq!(rvm.disks[0].capacity_bytes, 64 * MIB);
    assert_eq!(lab.dr_host.disk_files("vm1-replica"), vec![("vda".to_string(), lab.top())], "the replica VM's disk is the top of the chain");

    // Scattered writes, one over old data, one zeroing old data.
    let offsets = [2 * MIB, 9 * MIB, 9 * MIB + 5 * K64, 30 * MIB, 63 * MIB];
    scatter(&lab.prod_host, "vm1", &offsets, 0x40);
    write(&lab.prod_host, "vm1", &["write -z 5M 64k".into()]);
    let inc = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!(inc.kind, SyncKind::Incremental);
    assert_eq!(inc.bytes_changed, 6 * K64, "the source's tracking lists exactly the written blocks");
    assert_eq!(inc.bytes_written, 5 * K64, "the data blocks are copied");
    assert_eq!(inc.bytes_zeroed, K64, "the zeroed block is written as zeros");
    assert!(inc.bytes_read <= 6 * K64);
    assert!(same(&lab.disk(), &lab.point(2)));
    assert!(same_as_point_chain_intact(&lab, 1), "point 1 still reads as the source did then");
    metric(&format!("incremental: {} B changed, {} B read, {} B written, {} B zeroed", inc.bytes_changed, inc.bytes_read, inc.bytes_written, inc.bytes_zeroed));

    // Nothing written: an empty incremental still makes a point.
    let none = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!((none.kind, none.bytes_read, none.bytes_written, none.point.seq), (SyncKind::Incremental, 0, 0, 3));

    // Pruning: keep 3. Save what each point must read as, then sync twice more.
    let raws: Vec<PathBuf> = (2..=3)
        .map(|s| {
            let raw = lab.scratch(&format!("expect-{s}.raw"));
            snapshot_raw(&lab.point(s), &raw);
            raw
        })
        .collect();
    scatter(&lab.prod_host, "vm1", &[3 * MIB, 40 * MIB], 0x60);
    let s4 = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!(s4.pruned, vec![1]);
    scatter(&lab.prod_host, "vm1", &[3 * MIB + K64, 41 * MIB], 0x70);
    let s5 = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!(s5.pruned, vec![2]);
    let state = replication::status(&dr, "vm1-replica").unwrap().unwrap();
    assert_eq!(state.points.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert!(!lab.point(1).exists() && !lab.point(2).exists(), "merged point files are gone");
    assert_eq!(qemu_img::info(&lab.point(3), None).unwrap().backing, None, "the oldest point is the chain's base");
    assert!(same_as_raw(&lab.point(3), &raws[1]), "point 3 reads as before the merges");
    assert!(same(&lab.disk(), &lab.point(5)));
    assert!(std::fs::read_dir(lab.replica_dir()).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().ends_with(".new")));
    let api = replication::points(&state);
    assert_eq!(api[0].id, "rp-5");
    assert_eq!(api.len(), 3);
}

fn same_as_point_chain_intact(lab: &Lab, seq: u64) -> bool {
    // Point 1 was the source's first state: 0x11/0x22/0x33 data only.
    let raw = lab.scratch("p1.raw");
    snapshot_raw(&lab.point(seq), &raw);
    let bytes = std::fs::read(&raw).unwrap();
    bytes[..MIB as usize].iter().all(|&b| b == 0x11)
        && bytes[2 * MIB as usize..2 * MIB as usize + 65536].iter().all(|&b| b == 0)
        && bytes[5 * MIB as usize..5 * MIB as usize + 192 * 1024].iter().all(|&b| b == 0x22)
}

#[test]
fn full_sync_throughput_on_a_256_mib_disk() {
    let lab = lab("1G");
    write(&lab.prod_host, "vm1", &["write -P 0x5a 64M 256M".into()]);
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let t = Instant::now();
    let full = replication::sync(&prod, &dr, &spec(2), &ctx).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let data = 256 * MIB + MIB + 192 * 1024 + K64;
    assert_eq!(full.bytes_read, data);
    assert!(same(&lab.disk(), &lab.point(1)));
    let snap = progress.snapshot();
    assert_eq!(snap.bytes_read, data, "progress counts the bytes really read");
    assert_eq!(snap.bytes_read + snap.bytes_skipped, 1 << 30, "read and skipped cover the disk");
    metric(&format!(
        "full sync: {} MiB allocated of a 1 GiB disk in {:.2} s = {:.0} MiB/s (debug build)",
        data / MIB,
        secs,
        data as f64 / MIB as f64 / secs
    ));
}

/// Re-run of this test binary as a child (see `child`) that works on the
/// lab's hosts (reached by their URIs; it starts none of its own).
fn child_command(lab: &Lab, task: &str, arg: u64) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["sync_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SENDENSE_REPL_CHILD", format!("{task}|{}|{}|{arg}", lab.prod_host.uri(), lab.dr_host.uri()));
    c
}

/// A child that syncs vm1 at a read limit.
fn spawn_sync_child(lab: &Lab, read_limit: u64) -> std::process::Child {
    child_command(lab, "sync", read_limit).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
}

/// Not a test on its own: when started by `child_command`, does its task
/// (`sync`: syncs vm1 at a read limit; `die-committing`: see
/// [`die_while_committing`]).
#[test]
fn sync_child() {
    let Ok(arg) = std::env::var("SENDENSE_REPL_CHILD") else { return };
    let parts: Vec<&str> = arg.split('|').collect();
    let [task, prod_uri, dr_uri, n] = parts[..] else { panic!("SENDENSE_REPL_CHILD: {arg}") };
    let (prod, dr) = (LibvirtPlatform::new(prod_uri), LibvirtPlatform::new(dr_uri));
    match task {
        "sync" => {
            let progress = Progress::new();
            progress.set_read_limit(n.parse().unwrap());
            let log = |_: String| {};
            replication::sync(&prod, &dr, &spec(5), &Ctx::new(&progress, &log)).unwrap();
        }
        "die-committing" => die_while_committing(&prod, &dr),
        other => panic!("no child task {other}"),
    }
}

/// Ends what a dead child left on the source host as a restarted server
/// does: its backup job ended, the VM it started paused for the read
/// stopped again.
fn after_child_died(lab: &Lab) {
    assert_eq!(lab.prod().clean_up_after_restart().unwrap(), 1, "the dead child's backup job on the source is ended");
    assert!(!lab.prod_host.is_running("vm1"), "the VM the child started paused for its read is off again");
}

/// Waits until the child's sync has written its journal and copied some data, then SIGKILLs it.
fn kill_mid_sync(lab: &Lab, mut child: std::process::Child, after: Duration) {
    let journal = lab.replica_dir().join(replica::JOURNAL_FILE);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !journal.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the child finished before its sync started");
        assert!(Instant::now() < deadline, "no journal");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    assert!(child.try_wait().unwrap().is_none(), "the child's sync finished before the kill: raise the data or lower the limit");
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(journal.exists(), "killed mid-sync: the journal is still there");
    after_child_died(lab);
    // The killed process could not remove its qemu-nbd socket directories.
    std::thread::sleep(Duration::from_millis(300));
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(&format!("sendense-nbd-{pid}-")) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[test]
fn a_sync_killed_mid_copy_leaves_the_last_point_intact_and_the_next_sync_redoes_it() {
    let lab = lab("256M");
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);

    // The first full sync, killed, resumes.
    write(&lab.prod_host, "vm1", &["write -P 0x44 32M 48M".into()]);
    // 48 MiB at 8 MiB/s: killed after it recorded its progress (every 2 s), before the end.
    let child = spawn_sync_child(&lab, 8 * MIB);
    kill_mid_sync(&lab, child, Duration::from_millis(3500));
    let j: replica::SyncJournal = serde_json::from_slice(&std::fs::read(lab.replica_dir().join(replica::JOURNAL_FILE)).unwrap()).unwrap();
    assert_eq!(j.kind, SyncKind::Full);
    // The source keeps writing meanwhile, below and above the resume offset.
    scatter(&lab.prod_host, "vm1", &[0, 40 * MIB, 200 * MIB], 0x90);
    let full = replication::sync(&lab.prod(), &lab.dr(), &spec(5), &ctx).unwrap();
    assert!(full.recovered.iter().any(|n| n.contains("resuming")), "{:?}", full.recovered);
    assert!(full.disks[0].resumed_from.is_some(), "{:?}", full.disks[0]);
    let allocated = MIB + 192 * 1024 + K64 + 48 * MIB + K64 /* 200M */;
    assert!(full.bytes_read < allocated, "the resumed sync reads less than a full one: {} < {allocated}", full.bytes_read);
    assert!(same(&lab.disk(), &lab.point(1)), "the resumed full sync equals the source");
    metric(&format!("killed first sync resumed at {} B: read {} B of {} B allocated", full.disks[0].resumed_from.unwrap(), full.bytes_read, allocated));

    // An incremental killed mid-copy: point 1 intact, the next sync redoes it.
    let point1 = lab.scratch("point1.raw");
    snapshot_raw(&lab.point(1), &point1);
    let before = digests(&lab.replica_dir());
    write(&lab.prod_host, "vm1", &["write -P 0x55 100M 40M".into()]);
    let child = spawn_sync_child(&lab, 8 * MIB);
    kill_mid_sync(&lab, child, Duration::from_millis(1500));
    let state = replication::status(&lab.dr(), "vm1-replica").unwrap().unwrap();
    assert_eq!(state.points.len(), 1, "no point for the killed sync");
    assert!(same_as_raw(&lab.point(1), &point1), "point 1 reads as before");
    let after = digests(&lab.replica_dir());
    let point_files = |d: &Vec<(String, String)>| d.iter().filter(|(n, _)| n.contains(".rp-")).cloned().collect::<Vec<_>>();
    assert_eq!(point_files(&after), point_files(&before), "point files are byte for byte untouched");
    assert!(replica::has_own_data(&lab.top()).unwrap(), "the kill left data in the top");

    scatter(&lab.prod_host, "vm1", &[150 * MIB], 0xa0);
    let redo = replication::sync(&lab.prod(), &lab.dr(), &spec(5), &ctx).unwrap();
    assert!(redo.recovered.iter().any(|n| n.contains("interrupted")), "{:?}", redo.recovered);
    assert_eq!(redo.kind, SyncKind::Incremental, "still incremental: the source's checkpoints since the token cover the interrupted delta");
    assert_eq!(redo.bytes_changed, 40 * MIB + K64, "the interrupted delta and the later write");
    assert!(same(&lab.disk(), &lab.point(2)), "the next sync makes the replica equal to the source");
    metric(&format!("killed incremental redone: {} B changed, {} B read", redo.bytes_changed, redo.bytes_read));
}

#[test]
fn test_failover_leaves_the_replica_byte_identical_and_end_test_removes_everything() {
    let lab = lab("64M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let spec = spec(2);
    replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    let p1 = lab.scratch("p1.raw");
    snapshot_raw(&lab.point(1), &p1);
    scatter(&lab.prod_host, "vm1", &[8 * MIB, 20 * MIB], 0x20);
    replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    let before = digests(&lab.replica_dir());

    let t = Instant::now();
    let test = replication::test_failover(&dr, &spec, Some(1), &[], &ctx).unwrap();
    let start_ms = t.elapsed().as_millis();
    assert_eq!((test.vm.as_str(), test.point), ("vm1-test", 1));
    assert!(test.boot_line.as_deref().is_some_and(|l| l.contains("name=vm1")), "the test VM's guest is up: {test:?}");
    let tvm = dr.vm("vm1-test").unwrap();
    assert_eq!(tvm.power, PowerState::Running);
    assert!(lab.dr_host.is_running("vm1-test"));
    assert!(tvm.nics.iter().all(|n| n.network == ISOLATED_NETWORK) && tvm.nics.len() == 2, "{:?}", tvm.nics);
    assert!(dr.inventory().unwrap().networks.iter().any(|n| n.name == ISOLATED_NETWORK && n.isolated));
    let tdisk = lab.dr_host.host.images().join("vm1-test").join("vda.qcow2");
    assert_eq!(lab.dr_host.disk_files("vm1-test"), vec![("vda".to_string(), tdisk.clone())]);
    assert_eq!(qemu_img::info(&tdisk, None).unwrap().backing.as_deref(), Some("../vm1-replica/vda.rp-1.qcow2"));
    assert!(same_as_raw(&tdisk, &p1), "the test VM sees point 1");
    let status = replication::status(&dr, "vm1-replica").unwrap().unwrap();
    assert!(matches!(status.phase, Phase::Testing { point: 1, .. }));
    assert!(replication::points(&status).iter().any(|p| p.in_test && p.seq == 1));

    // The test VM writes; a sync runs beside it and must not prune point 1 from under it.
    write(&lab.dr_host, "vm1-test", &["write -P 0xee 0 4M".into()]);
    assert!(!same_as_raw(&tdisk, &p1), "the test VM's write is in its overlay");
    assert_eq!(digests(&lab.replica_dir()), before, "the replica's files are byte for byte untouched by the test VM");
    scatter(&lab.prod_host, "vm1", &[50 * MIB], 0x30);
    let beside = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert!(beside.pruned.is_empty(), "no merge while a test VM runs on the chain");
    assert!(lab.point(1).exists());

    let t = Instant::now();
    replication::end_test(&dr, &spec, &ctx).unwrap();
    let end_ms = t.elapsed().as_millis();
    assert!(!lab.dr_host.vm_names().contains(&"vm1-test".to_string()), "test VM gone");
    assert!(!lab.dr_host.host.images().join("vm1-test").exists(), "its overlay gone");
    assert!(same_as_raw(&lab.point(1), &p1), "point 1 unchanged");
    assert!(matches!(replication::status(&dr, "vm1-replica").unwrap().unwrap().phase, Phase::Replicating));
    // The deferred merge happens at the next sync.
    let next = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!(next.pruned, vec![1, 2]);
    assert!(same(&lab.disk(), &lab.point(4)));
    metric(&format!("test failover: start {start_ms} ms (guest up {:?} ms), end {end_ms} ms", test.boot_ms));
    // Ending again is harmless.
    replication::end_test(&dr, &spec, &ctx).unwrap();
}

#[test]
fn failover_then_rollback_with_and_without_sync_back() {
    let lab = lab("64M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, _) = quiet();
    // The first point of the failover's presync gets a write right after it
    // (the VM still runs): the final sync must carry it.
    let armed = AtomicBool::new(false);
    let log = |l: String| {
        eprintln!("  log: {l}");
        if l.starts_with("point ") && armed.swap(false, Ordering::SeqCst) {
            scatter(&lab.prod_host, "vm1", &[33 * MIB], 0x77);
        }
    };
    let ctx = Ctx::new(&progress, &log);
    let spec = spec(5);
    replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    scatter(&lab.prod_host, "vm1", &[10 * MIB, 11 * MIB], 0x10);
    // Production runs (the guest kit boots; it writes nothing on this disk).
    prod.set_power("vm1", PowerState::Running).unwrap();
    assert!(prod.wait_until_up("vm1", Duration::from_secs(180)).unwrap().is_some(), "the source's guest is up");

    // Refusals first: an unmapped network changes nothing.
    let bad = FailoverOptions { network_mapping: mapping()[..1].to_vec(), final_sync: true, shutdown_timeout: SHUTDOWN };
    let err = replication::failover(&prod, &dr, &spec, &bad, &ctx).unwrap_err().to_string();
    assert!(err.contains("'dmz'") && err.contains("not mapped"), "{err}");
    assert_eq!(prod.vm("vm1").unwrap().power, PowerState::Running);
    assert!(replication::rollback(&prod, &dr, &spec, true, &ctx).unwrap_err().to_string().contains("not failed over"));

    armed.store(true, Ordering::SeqCst);
    let opts = FailoverOptions { network_mapping: mapping(), final_sync: true, shutdown_timeout: SHUTDOWN };
    let fo = replication::failover(&prod, &dr, &spec, &opts, &ctx).unwrap();
    let presync = fo.presync.as_ref().unwrap();
    let final_sync = fo.final_sync.as_ref().unwrap();
    assert_eq!(presync.bytes_changed, 2 * K64);
    assert_eq!(final_sync.bytes_changed, K64, "the final sync carries the write made after the presync");
    assert_eq!(prod.vm("vm1").unwrap().power, PowerState::Stopped, "the source is off");
    assert!(fo.source_powered_off);
    let rvm = dr.vm("vm1-replica").unwrap();
    assert_eq!(rvm.power, PowerState::Running);
    assert!(fo.boot_line.as_deref().is_some_and(|l| l.contains("name=vm1")), "the replica's guest is up: {fo:?}");
    assert_eq!(rvm.nics.iter().map(|n| n.network.as_str()).collect::<Vec<_>>(), vec!["lan", "dmz"], "NICs mapped");
    assert!(same(&lab.disk(), &lab.point(fo.point)), "the replica equals the source at the failover point");
    let st = replication::status(&dr, "vm1-replica").unwrap().unwrap();
    assert!(matches!(st.phase, Phase::FailedOver { source_powered_off: true, .. }));
    assert!(st.points.last().unwrap().failover);
    metric(&format!(
        "failover: presync {} ms, power off {} ms, final sync {} ms ({} B), power on {} ms, downtime {} ms, total {} ms",
        fo.presync_ms, fo.power_off_ms, fo.final_sync_ms, final_sync.bytes_changed, fo.power_on_ms, fo.downtime_ms, fo.duration_ms
    ));

    // Illegal while failed over.
    assert!(replication::sync(&prod, &dr, &spec, &ctx).unwrap_err().to_string().contains("failed over"));
    assert!(replication::test_failover(&dr, &spec, None, &[], &ctx).is_err());
    assert!(replication::failover(&prod, &dr, &spec, &opts, &ctx).is_err());

    // Production writes on the replica; the source stays as it was.
    let source_at_failover = lab.scratch("source-at-failover.raw");
    snapshot_raw(&lab.disk(), &source_at_failover);
    scatter(&lab.dr_host, "vm1-replica", &[MIB, 12 * MIB, 60 * MIB], 0xb0);
    let rb = replication::rollback(&prod, &dr, &spec, true, &ctx).unwrap();
    assert_eq!(rb.bytes_changed_on_replica, 3 * K64);
    assert_eq!(rb.bytes_changed_on_source, 0);
    assert_eq!(rb.bytes_written, 3 * K64, "only what changed on the replica goes back");
    assert_eq!(rb.kind, Some(SyncKind::Incremental));
    assert_eq!(prod.vm("vm1").unwrap().power, PowerState::Running, "{}", qemu_log(&lab.prod_host, "vm1"));
    let rvm = dr.vm("vm1-replica").unwrap();
    assert_eq!(rvm.power, PowerState::Stopped);
    assert!(rvm.nics.iter().all(|n| n.network == replica::UNCONNECTED));
    let back = rb.point.as_ref().unwrap().seq;
    assert!(same(&lab.disk(), &lab.point(back)), "source and replica are equal after the sync back");
    assert!(!same_as_raw(&lab.disk(), &source_at_failover), "the source has the replica's changes");
    metric(&format!("rollback with sync back: {} B changed on the replica, {} B written to the source, downtime {} ms, total {} ms", rb.bytes_changed_on_replica, rb.bytes_written, rb.downtime_ms, rb.duration_ms));
    // Replication resumes incrementally from the restarted token.
    let after = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!((after.kind, after.bytes_changed), (SyncKind::Incremental, 0));
    scatter(&lab.prod_host, "vm1", &[7 * MIB], 0xc0);
    let after = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!((after.kind, after.bytes_changed), (SyncKind::Incremental, K64));
    assert!(same(&lab.disk(), &lab.point(after.point.seq)));

    // Second round: fail over, write on the replica, roll back discarding it.
    let before_round = lab.scratch("before-round-2.raw");
    snapshot_raw(&lab.disk(), &before_round);
    let fo = replication::failover(&prod, &dr, &spec, &opts, &ctx).unwrap();
    scatter(&lab.dr_host, "vm1-replica", &[2 * MIB, 3 * MIB], 0xd0);
    let rb = replication::rollback(&prod, &dr, &spec, false, &ctx).unwrap();
    assert_eq!(rb.bytes_written, 0);
    assert_eq!(prod.vm("vm1").unwrap().power, PowerState::Running, "{}", qemu_log(&lab.prod_host, "vm1"));
    assert!(same_as_raw(&lab.disk(), &before_round), "the source runs as it was");
    assert!(same(&lab.top(), &lab.point(fo.point)) && !replica::has_own_data(&lab.top()).unwrap(), "the replica is back at the failover point");
    let after = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!((after.kind, after.bytes_changed), (SyncKind::Incremental, 0), "the source's token still holds");
    metric(&format!("rollback discarding: downtime {} ms, total {} ms", rb.downtime_ms, rb.duration_ms));

    // Disaster: the source is unreachable; fail over to the newest point as
    // it is. The source, running meanwhile, diverges; sync back overwrites it.
    scatter(&lab.prod_host, "vm1", &[44 * MIB], 0xe0); // after the newest point: lost
    let dis = FailoverOptions { network_mapping: mapping(), final_sync: false, shutdown_timeout: SHUTDOWN };
    let fo = replication::failover(&prod, &dr, &spec, &dis, &ctx).unwrap();
    assert!(fo.final_sync.is_none() && !fo.source_powered_off);
    assert!(lab.prod_host.is_running("vm1"), "the source was left as it was");
    scatter(&lab.dr_host, "vm1-replica", &[45 * MIB], 0xf0);
    prod.set_power("vm1", PowerState::Stopped).unwrap();
    let rb = replication::rollback(&prod, &dr, &spec, true, &ctx).unwrap();
    assert_eq!((rb.bytes_changed_on_replica, rb.bytes_changed_on_source), (K64, K64));
    assert_eq!(rb.bytes_written, 2 * K64, "the replica's block and the source's divergent one");
    assert!(same(&lab.disk(), &lab.point(rb.point.unwrap().seq)));
}

#[test]
fn cleanup_removes_leftovers_undoes_a_crashed_failover_and_is_idempotent() {
    let lab = lab("32M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let spec = spec(3);
    // The VM's backups keep their own tracking (a checkpoint chain of their own).
    let ds = Datastore::init(&lab.scratch("repo"), None).unwrap();
    backup_vm(&prod, "vm1", &ds, &BackupOptions::new("vm1"), &Progress::new()).unwrap();
    let backups_tracking = checkpoints(&lab.prod_host, "vm1");
    assert!(backups_tracking.len() == 1 && backups_tracking[0].starts_with("sendense-b."), "{backups_tracking:?}");
    // Nothing yet: nothing to do.
    assert!(replication::cleanup(&prod, &dr, &spec, &ctx).unwrap().removed.is_empty());
    replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    let before = digests(&lab.replica_dir());

    // A test left running, a temporary top, a stray failback bitmap.
    replication::test_failover(&dr, &spec, None, &[], &ctx).unwrap();
    assert!(lab.dr_host.is_running("vm1-test"));
    std::fs::write(lab.replica_dir().join("vda.qcow2.new"), b"x").unwrap();
    let c = replication::cleanup(&prod, &dr, &spec, &ctx).unwrap();
    assert!(c.removed.iter().any(|r| r.contains("test VM 'vm1-test'")), "{c:?}");
    assert!(c.removed.iter().any(|r| r.contains("vda.qcow2.new")), "{c:?}");
    assert!(!lab.dr_host.vm_names().contains(&"vm1-test".to_string()));
    assert!(!lab.dr_host.host.images().join("vm1-test").exists());
    assert_eq!(c.phase, "replicating");
    assert_eq!(digests(&lab.replica_dir()), before);
    assert!(replication::cleanup(&prod, &dr, &spec, &ctx).unwrap().removed.is_empty(), "a second cleanup finds nothing");

    // A failover that crashed after powering the source off, before starting the replica.
    prod.set_power("vm1", PowerState::Stopped).unwrap();
    run("qemu-img", &["bitmap", "--add", "--enable", p(&lab.top()), replica::FAILBACK_BITMAP]);
    let mut state = replication::status(&dr, "vm1-replica").unwrap().unwrap();
    state.phase = Phase::FailingOver { source_was_running: true, started_at: chrono::Utc::now() };
    std::fs::write(lab.replica_dir().join(replica::STATE_FILE), serde_json::to_vec(&state).unwrap()).unwrap();
    let c = replication::cleanup(&prod, &dr, &spec, &ctx).unwrap();
    assert!(c.removed.iter().any(|r| r.contains("interrupted failover")), "{c:?}");
    assert_eq!(prod.vm("vm1").unwrap().power, PowerState::Running, "the source runs again");
    assert!(lab.prod_host.is_running("vm1"));
    assert!(qemu_img::info(&lab.top(), None).unwrap().bitmaps.is_empty(), "failback bitmap removed");
    assert_eq!(c.phase, "replicating");
    assert!(replication::cleanup(&prod, &dr, &spec, &ctx).unwrap().removed.is_empty());

    // Removing the replication removes the replica and the source's tracking of it.
    assert_eq!(checkpoints(&lab.prod_host, "vm1").len(), 2, "the backups' and the replication's");
    replication::remove(&prod, &dr, &spec, &ctx).unwrap();
    assert!(!lab.replica_dir().exists());
    assert!(!lab.dr_host.vm_names().contains(&"vm1-replica".to_string()));
    assert_eq!(checkpoints(&lab.prod_host, "vm1"), backups_tracking, "only the backups' tracking is left");
    prod.set_power("vm1", PowerState::Stopped).unwrap();
    let bitmaps: Vec<String> = qemu_img::info(&lab.disk(), None).unwrap().bitmaps.into_iter().map(|b| b.name).collect();
    assert_eq!(bitmaps, backups_tracking, "the image keeps only the backups' bitmap");
}

#[test]
fn backups_and_replication_of_one_vm_keep_their_own_change_tracking() {
    let lab = lab("32M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let ds = Datastore::init(&lab.scratch("repo"), None).unwrap();
    let opts = BackupOptions::new("vm1");
    backup_vm(&prod, "vm1", &ds, &opts, &Progress::new()).unwrap();
    replication::sync(&prod, &dr, &spec(3), &ctx).unwrap();
    scatter(&lab.prod_host, "vm1", &[4 * MIB], 0x12);
    let b = backup_vm(&prod, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(b.disks[0].incremental && b.bytes_read == K64, "{:?}", b.disks);
    scatter(&lab.prod_host, "vm1", &[6 * MIB], 0x13);
    let r = replication::sync(&prod, &dr, &spec(3), &ctx).unwrap();
    assert_eq!((r.kind, r.bytes_changed), (SyncKind::Incremental, 2 * K64), "the replication sees both writes, the backup did not reset it");
    let b = backup_vm(&prod, "vm1", &ds, &opts, &Progress::new()).unwrap();
    assert!(b.disks[0].incremental && b.bytes_read == K64);
}

#[test]
fn a_replica_of_another_replication_or_a_foreign_vm_is_refused() {
    let lab = lab("32M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    replication::sync(&prod, &dr, &spec(3), &ctx).unwrap();
    let other = ReplicaSpec { id: "f2".into(), ..spec(3) };
    let err = replication::sync(&prod, &dr, &other, &ctx).unwrap_err().to_string();
    assert!(err.contains("belongs to replication 'f1'"), "{err}");
    // A VM of that name that is not a replica.
    let foreign = ReplicaSpec { replica_name: "vm1".into(), ..spec(3) };
    let err = replication::sync(&prod, &prod, &foreign, &ctx).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(lab.prod_host.vm_names(), vec!["vm1"], "the foreign VM is left alone");
    // Test failover and failover need a point; end_test without a test is harmless.
    let fresh = ReplicaSpec { id: "f3".into(), replica_name: "vm1-r3".into(), ..spec(3) };
    assert!(replication::test_failover(&dr, &fresh, None, &[], &ctx).unwrap_err().to_string().contains("does not exist"));
}

#[test]
fn the_demo_lab_replicates_to_the_dr_host_incrementally_and_fails_over() {
    use sendense::lab::{self, InitOptions, InitOutcome};
    let tmp = tempfile::tempdir().unwrap();
    let lab_dir = tmp.path().join("lab");
    let t = Instant::now();
    let made = match lab::init(&lab_dir, &InitOptions { force: false }, &mut |_| {}).unwrap() {
        InitOutcome::Created(m) => m,
        InitOutcome::Exists(_) => panic!("a fresh directory holds no lab"),
    };
    eprintln!("lab init: {:.1} s", t.elapsed().as_secs_f64());
    let prod_spec = made.hosts.iter().find(|h| h.role == "production").unwrap();
    let dr_spec = made.hosts.iter().find(|h| h.role != "production").unwrap();
    let t = Instant::now();
    let (prod_host, dr_host) = start_hosts(&lab_dir.join(&prod_spec.dir), &lab_dir.join(&dr_spec.dir));
    eprintln!("lab hosts started: {:.1} s", t.elapsed().as_secs_f64());
    let (prod, dr) = (platform(&prod_host), platform(&dr_host));
    assert_eq!(dr.inventory().unwrap().host.name, "kvm-dr-01");
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let vms = prod.inventory().unwrap().vms;
    let spec_of = |vm: &str| ReplicaSpec { id: format!("lab-{vm}"), source_vm: vm.into(), source_vm_id: String::new(), replica_name: replication::default_replica_name(vm), keep_points: 3 };
    let disks_equal = |vm: &str, seq: u64| {
        let rdir = dr_host.host.images().join(replication::default_replica_name(vm));
        prod_host.vm(vm).disks.iter().all(|(target, src)| same(src, &rdir.join(replica::point_name(target, seq))))
    };

    let (mut bytes, t) = (0, Instant::now());
    for vm in &vms {
        let r = replication::sync(&prod, &dr, &spec_of(&vm.name), &ctx).unwrap();
        assert_eq!(r.kind, SyncKind::Full);
        assert!(disks_equal(&vm.name, 1), "{}: point 1 equals the source", vm.name);
        bytes += r.bytes_read;
        metric(&format!("lab full sync: {:<8} {} disk(s) {:>6.1} MiB in {:>5} ms", vm.name, r.disks.len(), r.bytes_read as f64 / MIB as f64, r.duration_ms));
    }
    let secs = t.elapsed().as_secs_f64();
    metric(&format!("lab full sync: {} VMs, {} MiB read in {:.2} s = {:.0} MiB/s (debug build)", vms.len(), bytes / MIB, secs, bytes as f64 / MIB as f64 / secs));

    let round = lab::round(&lab_dir).unwrap();
    metric(&format!("lab replication: {:<8} {:>12} {:>12} {:>12} {:>12}", "vm", "activity B", "changed B", "read B", "written B"));
    for vm in &vms {
        let written: u64 = round.vms.iter().filter(|a| a.vm == vm.name).flat_map(|a| &a.disks).map(|d| d.bytes_written).sum();
        let r = replication::sync(&prod, &dr, &spec_of(&vm.name), &ctx).unwrap();
        assert_eq!(r.kind, SyncKind::Incremental, "{}", vm.name);
        assert_eq!(r.bytes_changed, written, "{}: the sync's changed blocks are exactly what the round wrote", vm.name);
        assert!(r.bytes_written + r.bytes_zeroed == written, "{}: {} + {} != {written}", vm.name, r.bytes_written, r.bytes_zeroed);
        assert!(disks_equal(&vm.name, 2), "{}: point 2 equals the source", vm.name);
        metric(&format!("lab replication: {:<8} {:>12} {:>12} {:>12} {:>12}", vm.name, written, r.bytes_changed, r.bytes_read, r.bytes_written + r.bytes_zeroed));
    }

    // web-01, running, fails over to the DR host, its networks mapped by name.
    let web = vms.iter().find(|v| v.role.as_deref() == Some("web")).unwrap_or(&vms[0]);
    pool_over_disks(&prod_host, &web.name);
    let nets: Vec<NetworkPair> = prod
        .inventory()
        .unwrap()
        .networks
        .iter()
        .map(|n| NetworkPair { source_network: n.name.clone(), target_network: n.name.clone() })
        .collect();
    let spec = spec_of(&web.name);
    prod.set_power(&web.name, PowerState::Running).unwrap();
    let fo = replication::failover(&prod, &dr, &spec, &FailoverOptions { network_mapping: nets, final_sync: true, shutdown_timeout: SHUTDOWN }, &ctx).unwrap();
    assert_eq!(prod.vm(&web.name).unwrap().power, PowerState::Stopped);
    assert!(fo.presync.is_some() && fo.source_powered_off, "{fo:?}");
    let replica_vm = dr.vm(&spec.replica_name).unwrap();
    assert_eq!(replica_vm.power, PowerState::Running);
    assert_eq!(replica_vm.nics.iter().map(|n| n.network.clone()).collect::<Vec<_>>(), web.nics.iter().map(|n| n.network.clone()).collect::<Vec<_>>());
    assert!(disks_equal(&web.name, fo.point));
    assert!(fo.boot_line.as_deref().is_some_and(|l| l.contains(&format!("name={}", web.name))), "the replica's guest is up: {fo:?}");
    metric(&format!("lab failover of {}: downtime {} ms, total {} ms", web.name, fo.downtime_ms, fo.duration_ms));
    // The replica's guest ran (it mounted its filesystems and did its
    // role's work): that, and only that, goes back.
    let rb = replication::rollback(&prod, &dr, &spec, true, &ctx).unwrap();
    assert_eq!(rb.bytes_changed_on_source, 0, "the source was off since the failover's final sync");
    assert_eq!(rb.bytes_written, rb.bytes_changed_on_replica, "only what ran on the replica goes back");
    assert_eq!(rb.kind, Some(SyncKind::Incremental));
    assert_eq!(prod.vm(&web.name).unwrap().power, PowerState::Running);
    metric(&format!("lab rollback of {}: {} B written back, downtime {} ms, total {} ms", web.name, rb.bytes_written, rb.downtime_ms, rb.duration_ms));
}

#[test]
fn a_paused_sync_holds_still_and_a_cancelled_one_resumes_or_is_redone() {
    let lab = lab("256M");
    write(&lab.prod_host, "vm1", &["write -P 0x44 32M 64M".into()]);
    let (prod, dr) = (lab.prod(), lab.dr());
    let log = |l: String| eprintln!("  log: {l}");
    let progress = Progress::new();
    progress.set_read_limit(32 * MIB);
    let control = |progress: &Progress, pause_at: u64| {
        while progress.snapshot().bytes_read < pause_at {
            std::thread::sleep(Duration::from_millis(10));
        }
        progress.control.pause();
        std::thread::sleep(Duration::from_millis(100));
        let held = progress.snapshot().bytes_read;
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(progress.snapshot().bytes_read, held, "paused: no byte moves");
        progress.control.cancel();
    };
    let err = std::thread::scope(|s| {
        s.spawn(|| control(&progress, 40 * MIB));
        replication::sync(&prod, &dr, &spec(3), &Ctx::new(&progress, &log)).unwrap_err()
    });
    assert!(err.is_cancelled(), "{err}");
    assert!(lab.replica_dir().join(replica::JOURNAL_FILE).exists(), "a stopped first sync keeps its journal to resume");
    let first = Progress::new();
    let full = replication::sync(&prod, &dr, &spec(3), &Ctx::new(&first, &log)).unwrap();
    assert!(full.disks[0].resumed_from.is_some(), "{:?}", full.disks[0]);
    assert!(full.bytes_read < 64 * MIB, "resumed: {} B read", full.bytes_read);
    assert!(same(&lab.disk(), &lab.point(1)));

    // An incremental stopped mid-way: the replica is back at point 1 at once.
    write(&lab.prod_host, "vm1", &["write -P 0x66 100M 64M".into()]);
    let progress = Progress::new();
    progress.set_read_limit(32 * MIB);
    let err = std::thread::scope(|s| {
        s.spawn(|| control(&progress, 8 * MIB));
        replication::sync(&prod, &dr, &spec(3), &Ctx::new(&progress, &log)).unwrap_err()
    });
    assert!(err.is_cancelled());
    assert!(!lab.replica_dir().join(replica::JOURNAL_FILE).exists());
    assert!(!replica::has_own_data(&lab.top()).unwrap(), "the top was thrown away");
    let redo = replication::sync(&prod, &dr, &spec(3), &Ctx::new(&Progress::new(), &log)).unwrap();
    assert_eq!((redo.kind, redo.bytes_changed), (SyncKind::Incremental, 64 * MIB));
    assert!(same(&lab.disk(), &lab.point(2)));
}

/// In a child process: a sync of point 2 that copied everything and died
/// while committing: its top already renamed to the point file, the new top
/// not made, the record not written, the source's read not ended (the
/// process exits at once, its backup job left running on the source host).
fn die_while_committing(prod: &LibvirtPlatform, dr: &LibvirtPlatform) -> ! {
    use sendense::replication::copy::{self, Mode, NbdTarget};
    let spec = spec(5);
    let dir = dr.image_dir().unwrap().unwrap().join(&spec.replica_name);
    let state = replication::status(dr, &spec.replica_name).unwrap().unwrap();
    let vm = prod.vm("vm1").unwrap();
    let mut reads = prod.open_vm_disks_for(&vm.id, state.disks[0].token.as_deref(), &spec.consumer()).unwrap();
    let read = reads.remove(0);
    let changed = read.changed_ranges.clone().unwrap();
    assert_eq!(copy::total(&changed), 2 * K64);
    let top = dir.join(replica::top_name("vda"));
    let mut dst = NbdTarget::open(&top).unwrap();
    copy::copy(read.source.as_ref(), &mut dst, &changed, Mode::Changed, &Progress::new(), &mut |_, _| Ok(())).unwrap();
    dst.close().unwrap();
    let journal = replica::SyncJournal {
        seq: 2,
        started_at: chrono::Utc::now(),
        consistent_at: chrono::Utc::now(),
        kind: SyncKind::Incremental,
        committing: true,
        bytes_copied: 2 * K64,
        disks: vec![replica::JournalDisk { name: "vda".into(), token: read.token.clone(), copied_upto: None, write_limit: None }],
    };
    std::fs::write(dir.join(replica::JOURNAL_FILE), serde_json::to_vec(&journal).unwrap()).unwrap();
    std::fs::rename(&top, dir.join(replica::point_name("vda", 2))).unwrap();
    // The process dies: nothing is ended.
    std::process::exit(0)
}

#[test]
fn an_interrupted_commit_and_an_interrupted_merge_are_finished_by_the_next_sync() {
    let lab = lab("32M");
    let (prod, dr) = (lab.prod(), lab.dr());
    let (progress, log) = quiet();
    let ctx = Ctx::new(&progress, &log);
    let spec = spec(5);
    replication::sync(&prod, &dr, &spec, &ctx).unwrap();

    // A sync of point 2 dies while committing (see `die_while_committing`).
    scatter(&lab.prod_host, "vm1", &[2 * MIB, 20 * MIB], 0x31);
    let child = child_command(&lab, "die-committing", 0).output().unwrap();
    assert!(child.status.success(), "the child: {}\n{}", String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
    assert!(lab.point(2).exists() && !lab.top().exists(), "the child got as far as renaming the top");
    after_child_died(&lab);

    let next = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert!(next.recovered.iter().any(|n| n.contains("point was finished")), "{:?}", next.recovered);
    assert_eq!(next.point.seq, 3);
    assert!(same(&lab.disk(), &lab.point(2)), "the finished point 2 holds the copied data");
    assert_eq!((next.kind, next.bytes_changed), (SyncKind::Incremental, 0), "the committed token stays incremental");
    assert!(same(&lab.disk(), &lab.point(3)));

    // Dropping point 1 died mid-way: recorded, point 2's data merged into point 1's file, not renamed yet.
    let p2 = lab.scratch("p2.raw");
    snapshot_raw(&lab.point(2), &p2);
    let mut state = replication::status(&dr, "vm1-replica").unwrap().unwrap();
    state.points.remove(0);
    std::fs::write(lab.replica_dir().join(replica::STATE_FILE), serde_json::to_vec(&state).unwrap()).unwrap();
    run("qemu-img", &["commit", "-q", "-d", "-f", "qcow2", p(&lab.point(2))]);
    let next = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert!(next.recovered.iter().any(|n| n.contains("finished merging dropped point 1")), "{:?}", next.recovered);
    assert!(!lab.point(1).exists());
    assert_eq!(qemu_img::info(&lab.point(2), None).unwrap().backing, None);
    assert!(same_as_raw(&lab.point(2), &p2), "point 2 reads as before");
    assert!(same(&lab.disk(), &lab.point(next.point.seq)));
}
