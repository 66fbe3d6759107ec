//! Instant recovery on a real libvirt host: a running guest whose disk holds
//! a known file is backed up; a VM boots straight from that restore point
//! (served by the engine's NBD server, qcow2 overlays in the host's pool);
//! its guest reads the file with the same SHA-256 and writes new data;
//! finalize copies the rest into the overlays while it runs; the guest then
//! survives the export's end; the restore point is byte-identical to before
//! (the guest's writes never reached the repository) and was pinned the
//! whole time. Needs root, libvirt and the guest kit (scripts/test.sh).

// Index caches under target/tmp, not in ~/.cache.
#[path = "support/test_cache.rs"]
mod test_cache;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sendense::engine::backup::BackupOptions;
use sendense::engine::datastore::Datastore;
use sendense::engine::progress::Progress;
use sendense::engine::{lease, prune, restore, EngineError};
use sendense::jobs::vm_backup::backup_vm;
use sendense::lab::guest::{self, GuestSpec};
use sendense::lab::guest_console::{self, GuestConsole};
use sendense::lab::libvirt_host::LibvirtHost;
use sendense::platforms::libvirt::LibvirtPlatform;
use sendense::platforms::Platform;
use sendense::restore::instant::{self, Export, InstantRequest};
use sha2::{Digest, Sha256};
use shared_types::platform::{Firmware, GuestOs, NicInfo, PowerState};

struct HostGuard(LibvirtHost);
impl Drop for HostGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.stop() {
            eprintln!("stopping the test host: {e:#}");
        }
    }
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A 64 MiB qcow2 disk: an MBR with one Linux partition from 1 MiB holding
/// an ext4 filesystem made from `content`.
fn disk_with_files(dir: &Path, content: &Path, out: &Path) {
    let raw = dir.join("disk.raw");
    let mut f = std::fs::File::create(&raw).unwrap();
    f.set_len(64 << 20).unwrap();
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(((64u32 << 20) / 512) - 2048).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    f.write_all(&mbr).unwrap();
    drop(f);
    run("mkfs.ext4", &["-q", "-F", "-E", "offset=1048576", "-d", content.to_str().unwrap(), raw.to_str().unwrap(), "63M"]);
    run("qemu-img", &["convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw.to_str().unwrap(), out.to_str().unwrap()]);
    std::fs::remove_file(raw).unwrap();
}

fn console(platform: &LibvirtPlatform, vm: &str) -> GuestConsole {
    let conn = platform.connect().unwrap();
    let pty = platform.definition(&platform.domain(&conn, vm).unwrap()).unwrap().console_pty.expect("a console pty while running");
    GuestConsole::open(Path::new(&pty)).unwrap()
}

/// The SHA-256 the guest computes of `file`.
fn guest_sha256(c: &mut GuestConsole, file: &str) -> String {
    let out = c.run(&format!("sha256sum {file}"), Duration::from_secs(60)).unwrap();
    out.lines().filter_map(|l| l.split_whitespace().next()).find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit())).unwrap_or_else(|| panic!("no checksum in: {out}")).to_string()
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn file_digest(p: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

#[test]
fn a_vm_boots_from_a_restore_point_is_finalized_while_running_and_the_restore_point_stays_as_it_was() {
    let kit = guest::kit_dir().unwrap();
    let t = tempfile::Builder::new().prefix("sd-ir").tempdir_in("/tmp").unwrap();
    let host = HostGuard(LibvirtHost::new("ir", &t.path().join("host")));
    host.0.start().unwrap();
    let images = host.0.images();
    let mut platform = LibvirtPlatform::new(&host.0.uri());
    platform.shutdown_timeout = Duration::from_secs(30);
    {
        let conn = platform.connect().unwrap();
        let pool = format!("<pool type='dir'><name>images</name><target><path>{}</path></target></pool>", images.display());
        conn.define_storage_pool_xml(&pool, 0).unwrap().create(0).unwrap();
        // Bridges and subnet apart per lab slot (SENDENSE_LAB_SLOT): another lane's copy of this test may run beside.
        let slot = sendense::lab::slot::current().unwrap();
        let net = format!(
            "<network><name>lan</name><bridge name='{}' stp='off' delay='0'/><ip address='{}.1' netmask='255.255.255.0'/></network>",
            sendense::lab::slot::test_bridge(slot, "sdir-lan"),
            sendense::lab::slot::test_subnet(slot, 7)
        );
        conn.define_network_xml(&net).unwrap().create().unwrap();
        // Defined, never started: reported, and no NIC can be placed on it.
        conn.define_network_xml(&format!("<network><name>cold</name><bridge name='{}' stp='off' delay='0'/></network>", sendense::lab::slot::test_bridge(slot, "sdir-cold"))).unwrap();
    }
    let inv = platform.inventory().unwrap();
    let cold = inv.networks.iter().find(|n| n.name == "cold").expect("the stopped network is reported");
    assert!(cold.inactive && !inv.networks.iter().find(|n| n.name == "lan").unwrap().inactive);
    assert_eq!(
        shared_types::networks::place_nic("lan", Some("cold"), false, &inv.networks),
        Err(shared_types::networks::Unplaced::Inactive("cold".into()))
    );

    // The source guest: its disk holds known.bin (2 MiB of varied bytes).
    let content = t.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    let known: Vec<u8> = (0..2u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(content.join("known.bin"), &known).unwrap();
    let known_sha = hex(&Sha256::digest(&known));
    let vda = images.join("g1-vda.qcow2");
    disk_with_files(t.path(), &content, &vda);
    let source_log = images.join("g1.console.log");
    let xml = guest::domain_xml(&kit, &GuestSpec { name: "g1", memory_mib: 128, disks: &[("vda", &vda)], networks: &["lan"], console_log: &source_log, role: Some("app") });
    let id = platform.connect().unwrap().define_domain_xml(&xml).unwrap().uuid_string().unwrap();
    platform.set_power(&id, PowerState::Running).unwrap();
    let line = guest_console::wait_for_boot(&source_log, Duration::from_secs(90)).unwrap();
    assert!(line.contains("mounts=vda1:ext4"), "the guest mounts its filesystem: {line}");

    // A backup of the running guest.
    let ds = Datastore::init(&t.path().join("repo"), None).unwrap();
    let report = backup_vm(&platform, &id, &ds, &BackupOptions::new("vm-g1"), &Progress::new()).unwrap();
    let (name, snap) = (report.manifest.name.clone(), report.manifest.id.clone());
    let before = t.path().join("before.raw");
    restore::restore(&ds, &name, &snap, Some("vda"), &before, 2, &Progress::new()).unwrap();
    let before_digest = file_digest(&before);

    // Instant recovery: up without copying the disk.
    let sock_dir = tempfile::Builder::new().prefix("sd-ir").tempdir_in("/tmp").unwrap();
    let export = Export::open(&ds, &name, &snap, &sock_dir.path().join("e.sock"), "ir-1").unwrap();
    let req = InstantRequest {
        snapshot_name: name.clone(),
        snapshot_id: snap.clone(),
        name: "g1-instant".into(),
        vcpus: 1,
        memory_mib: 128,
        firmware: Firmware::Bios,
        os: GuestOs::Linux,
        nics: vec![NicInfo { mac: "52:54:00:00:00:01".into(), network: "lan".into(), model: "virtio".into() }],
        pool: None,
    };
    let log = |l: String| eprintln!("  log: {l}");
    let t0 = Instant::now();
    let booted = instant::boot(&ds, &platform, export.server.socket(), &req, &log).unwrap();
    let up_ms = booted.up_ms.expect("the guest's boot line is read from its console");
    eprintln!("instant VM up {up_ms} ms after the start ({} ms timed here): {}", t0.elapsed().as_millis(), booted.boot_line.as_deref().unwrap_or(""));
    assert!(booted.boot_line.as_deref().unwrap().contains("mounts=vda1:ext4"), "{:?}", booted.boot_line);
    assert_eq!(platform.vm(&booted.vm.id).unwrap().power, PowerState::Running);
    assert!(export.server.stats().bytes_sent.load(std::sync::atomic::Ordering::Relaxed) < 16 << 20, "booting read only what the guest needed");
    let mac = platform.vm(&booted.vm.id).unwrap().nics[0].mac.clone();
    assert_ne!(mac, "52:54:00:00:00:01", "a new MAC, not the source's");

    // Pinned: the restore point cannot be removed while the VM runs on it.
    match prune::forget(&ds, &name, &snap) {
        Err(EngineError::Pinned { snapshot }) => assert_eq!(snapshot, format!("{name}/{snap}")),
        other => panic!("forget of a pinned restore point: {other:?}"),
    }

    // The guest reads the backed-up file and writes new data (to its overlay).
    let mut c = console(&platform, &booted.vm.id);
    assert_eq!(guest_sha256(&mut c, "/mnt/vda1/known.bin"), known_sha, "the instant VM's guest sees the restore point's file");
    c.run("dd if=/dev/urandom of=/mnt/vda1/new.bin bs=64k count=32 2>/dev/null; sync", Duration::from_secs(60)).unwrap();
    let new_sha = guest_sha256(&mut c, "/mnt/vda1/new.bin");

    // Finalize while it runs.
    let seen = std::sync::Mutex::new((0u64, 0u64, 0usize));
    let t0 = Instant::now();
    instant::finalize(&platform, &booted.vm.id, 0, &|done, total| {
        let mut s = seen.lock().unwrap();
        *s = (done, total, s.2 + 1);
    }, &|| false)
    .unwrap();
    let (done, total, calls) = *seen.lock().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("finalize: {done} of {total} bytes in {secs:.2} s ({:.1} MB/s, {calls} progress reports)", total as f64 / secs / 1e6);
    assert_eq!((done, total), (64 << 20, 64 << 20), "the whole disk was accounted for");
    assert_eq!(platform.vm(&booted.vm.id).unwrap().power, PowerState::Running, "the guest ran throughout");
    let info = Command::new("qemu-img").args(["info", "-U", "--output=json"]).arg(booted.dir.join("vda.qcow2")).output().unwrap();
    assert!(!String::from_utf8_lossy(&info.stdout).contains("backing-filename"), "the overlay stands alone: {}", String::from_utf8_lossy(&info.stdout));

    // The export goes; the guest no longer needs it (caches dropped: read from disk).
    export.close();
    assert!(!sock_dir.path().join("e.sock").exists());
    assert!(lease::pinned_snapshots(ds.repo.as_ref()).unwrap().is_empty(), "the pin went with the export");
    c.run("sync; echo 3 > /proc/sys/vm/drop_caches", Duration::from_secs(30)).unwrap();
    assert_eq!(guest_sha256(&mut c, "/mnt/vda1/known.bin"), known_sha);
    assert_eq!(guest_sha256(&mut c, "/mnt/vda1/new.bin"), new_sha);
    drop(c);

    // The restore point is as it was: the guest's writes stayed on the host.
    let after = t.path().join("after.raw");
    restore::restore(&ds, &name, &snap, Some("vda"), &after, 2, &Progress::new()).unwrap();
    assert_eq!(file_digest(&after), before_digest, "the restore point is byte-identical to before the instant recovery");

    // Discard leaves nothing: a second instant VM from the same point, its
    // overlays in another storage pool of the host (an unknown pool is
    // refused by name).
    let fast = t.path().join("fast-pool");
    std::fs::create_dir_all(&fast).unwrap();
    let conn = platform.connect().unwrap();
    conn.define_storage_pool_xml(&format!("<pool type='dir'><name>fast</name><target><path>{}</path></target></pool>", fast.display()), 0).unwrap().create(0).unwrap();
    let nowhere = instant::folder(&platform, Some("nope"), "g1-x").unwrap_err().to_string();
    assert!(nowhere.contains("no storage pool 'nope'") && nowhere.contains("fast"), "{nowhere}");
    let export = Export::open(&ds, &name, &snap, &sock_dir.path().join("e2.sock"), "ir-2").unwrap();
    let second =
        instant::boot(&ds, &platform, export.server.socket(), &InstantRequest { name: "g1-instant2".into(), pool: Some("fast".into()), ..req.clone() }, &log).unwrap();
    assert_eq!(second.dir, fast.join("g1-instant2"), "the overlays are in the chosen pool");
    instant::discard(&platform, &second.vm.id, &second.dir).unwrap();
    export.close();
    assert!(matches!(platform.vm("g1-instant2"), Err(sendense::platforms::PlatformError::VmNotFound(_))));
    assert!(!second.dir.exists(), "its overlays are gone");
    // The finalized VM is an ordinary VM now: deleted like one.
    instant::discard(&platform, &booted.vm.id, &booted.dir).unwrap();
    assert!(!booted.dir.exists());
}
