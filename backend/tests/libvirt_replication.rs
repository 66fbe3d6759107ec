//! Replication between two real libvirt hosts (each its own daemon, as the
//! lab's are) of a running guest that boots a Linux kernel: the replica is
//! a shut-off domain on the DR host whose disks are qcow2 chains in its
//! storage pool, synced from the source's own checkpoint chain; the
//! incremental copies exactly the blocks the guest wrote; a test VM boots
//! from a point on the isolated network (its tap on that bridge; it reaches
//! the bridge's address but not the source guest's address on the
//! production network) while syncs go on; a live failover
//! boots the replica with the guest's last write; a rollback with sync back
//! brings the replica's writes to the source, which boots again; removing
//! the replication leaves nothing on either host. Needs root, libvirt and
//! the guest kit (scripts/test.sh installs and makes them).

// Index caches under target/tmp, not in ~/.cache.
#[path = "support/test_cache.rs"]
mod test_cache;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sendense::engine::progress::Progress;
use sendense::lab::guest::{self, GuestSpec};
use sendense::lab::guest_console::{self, GuestConsole};
use sendense::lab::libvirt_host::LibvirtHost;
use sendense::lab::slot;
use sendense::platforms::libvirt::{ffi, LibvirtPlatform};
use sendense::platforms::Platform;
use sendense::replication::{self, replica, Ctx, FailoverOptions, Phase, ReplicaSpec};
use shared_types::networks::NetworkPair;
use shared_types::platform::PowerState;
use shared_types::replication::SyncKind;

const K64: u64 = 64 * 1024;

/// Stops the hosts (guests, networks, daemons) however the test ends.
struct Hosts(Vec<LibvirtHost>);
impl Drop for Hosts {
    fn drop(&mut self) {
        for h in &self.0 {
            if let Err(e) = h.stop() {
                eprintln!("stopping a test host: {e:#}");
            }
        }
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn qemu_img(args: &[&str]) {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    assert!(o.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A storage pool `images` on `dir`, and networks (name, bridge, subnet byte, nat).
fn prepare(platform: &LibvirtPlatform, dir: &Path, networks: &[(&str, &str, u8, bool)]) {
    let conn = platform.connect().unwrap();
    let pool = format!("<pool type='dir'><name>images</name><target><path>{}</path></target></pool>", dir.display());
    conn.define_storage_pool_xml(&pool, 0).unwrap().create(0).unwrap();
    for (name, bridge, subnet, nat) in networks {
        let forward = if *nat { "<forward mode='nat'/>" } else { "" };
        let (bridge, subnet) = (slot::test_bridge(lab_slot(), bridge), net(*subnet));
        let xml = format!(
            "<network><name>{name}</name>{forward}<bridge name='{bridge}' stp='off' delay='0'/><ip address='{subnet}.1' netmask='255.255.255.0'/></network>"
        );
        conn.define_network_xml(&xml).unwrap().create().unwrap();
    }
}

/// The console of a running domain.
fn console(platform: &LibvirtPlatform, vm: &str) -> GuestConsole {
    let conn = platform.connect().unwrap();
    let pty = platform.definition(&platform.domain(&conn, vm).unwrap()).unwrap().console_pty.expect("a console pty while running");
    GuestConsole::open(Path::new(&pty)).unwrap()
}

/// Waits for a boot line in `log` written after `before` bytes of it.
fn boot_line_after(log: &Path, before: usize, timeout: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        if let Some(l) = text.get(before.min(text.len())..).unwrap_or("").lines().find(|l| l.contains(guest_console::BOOT_MARKER)) {
            return l.trim().to_string();
        }
        assert!(t0.elapsed() < timeout, "no boot line in {} within {:?}: {}", log.display(), timeout, text.lines().rev().take(5).collect::<Vec<_>>().join(" | "));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_len(log: &Path) -> usize {
    std::fs::metadata(log).map(|m| m.len() as usize).unwrap_or(0)
}

/// `dd` of `kib` KiB of `byte` at `off` on `/dev/<dev>`, fsynced.
fn write_cmd(dev: &str, off: u64, kib: u64, byte: u8) -> String {
    format!("dd if=/dev/zero bs=4096 count={} 2>/dev/null | tr '\\000' '\\{:03o}' | dd of=/dev/{dev} bs=4096 seek={} conv=fsync 2>/dev/null", kib / 4, byte, off / 4096)
}

/// The 12-byte marker at `sector` of `/dev/<dev>` as the guest reads it.
fn read_marker(c: &mut GuestConsole, dev: &str, sector: u64) -> String {
    let out = c.run(&format!("dd if=/dev/{dev} bs=512 skip={sector} count=1 2>/dev/null | head -c 12; echo"), Duration::from_secs(30)).unwrap();
    out.lines().map(str::trim).find(|l| l.starts_with("mark-")).unwrap_or("").to_string()
}

fn digests(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".rp-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// This process's lab slot (SENDENSE_LAB_SLOT): the test's bridges and
/// subnets are apart from another lane's copy of it.
fn lab_slot() -> u8 {
    slot::current().unwrap()
}

/// The first three octets of the test's network `k`: 1 production, 2 DR, 3 isolated.
fn net(k: u8) -> String {
    slot::test_subnet(lab_slot(), k)
}

/// Whether this machine gets an answer from `ip` (a few tries: ARP first).
fn host_pings(ip: &str) -> bool {
    (0..3).any(|_| Command::new("busybox").args(["ping", "-c", "1", "-W", "3", ip]).output().is_ok_and(|o| o.status.success()))
}

/// Each interface of the running `vm`: its tap device and the bridge the
/// host put it on (read from the host, not from the domain's definition).
fn live_bridges(platform: &LibvirtPlatform, vm: &str) -> Vec<(String, String)> {
    let conn = platform.connect().unwrap();
    let xml = platform.domain(&conn, vm).unwrap().xml_desc(0).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("interface"))
        .map(|i| {
            let tap = i.children().find(|c| c.has_tag_name("target")).and_then(|t| t.attribute("dev")).expect("a running VM's NIC has a tap").to_string();
            let master = std::fs::read_link(format!("/sys/class/net/{tap}/master")).expect("the tap is a bridge port");
            (tap, master.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect()
}

fn interface_networks(platform: &LibvirtPlatform, vm: &str) -> Vec<String> {
    let conn = platform.connect().unwrap();
    platform.definition(&platform.domain(&conn, vm).unwrap()).unwrap().nics.into_iter().map(|n| n.network).collect()
}

#[test]
fn a_running_guest_replicates_between_libvirt_hosts_tests_fails_over_and_rolls_back_booting_each_time() {
    let kit = guest::kit_dir().unwrap();
    let t = tempfile::Builder::new().prefix("sd-lr").tempdir_in("/tmp").unwrap();
    let hosts = Hosts(vec![LibvirtHost::new("rp", &t.path().join("prod")), LibvirtHost::new("rd", &t.path().join("dr"))]);
    for h in &hosts.0 {
        h.start().unwrap();
    }
    let (prod_images, dr_images) = (hosts.0[0].images(), hosts.0[1].images());
    let mut prod = LibvirtPlatform::new(&hosts.0[0].uri());
    let mut dr = LibvirtPlatform::new(&hosts.0[1].uri());
    // The guests power off on the ACPI button; a hard stop only after this.
    prod.shutdown_timeout = Duration::from_secs(30);
    dr.shutdown_timeout = Duration::from_secs(30);
    prepare(&prod, &prod_images, &[("lan", "sdrp-lan", 1, true)]);
    prepare(&dr, &dr_images, &[("dr-lan", "sdrd-lan", 2, true), ("isolated", "sdrd-iso", 3, false)]);

    // The source: a two-disk guest on the production network, running.
    let (vda, vdb): (PathBuf, PathBuf) = (prod_images.join("g1-vda.qcow2"), prod_images.join("g1-vdb.qcow2"));
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=1.1", p(&vda), "64M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=1.1", p(&vdb), "32M"]);
    let source_log = prod_images.join("g1.console.log");
    let xml = guest::domain_xml(&kit, &GuestSpec { name: "g1", memory_mib: 128, disks: &[("vda", &vda), ("vdb", &vdb)], networks: &["lan"], console_log: &source_log, role: Some("db") });
    let id = prod.connect().unwrap().define_domain_xml(&xml).unwrap().uuid_string().unwrap();
    prod.set_power(&id, PowerState::Running).unwrap();
    guest_console::wait_for_boot(&source_log, Duration::from_secs(90)).unwrap();
    let mut c = console(&prod, &id);
    c.run(&write_cmd("vda", 2 << 20, 512, 0x5a), Duration::from_secs(60)).unwrap();
    // The source guest gets an address on the production network (and a
    // way back to any other network): what a test VM must not reach.
    let prod_guest = format!("{}.10", net(1));
    c.run(&format!("ip addr add {prod_guest}/24 dev eth0 && ip link set eth0 up && ip route add default via {}.1", net(1)), Duration::from_secs(30)).unwrap();
    assert!(host_pings(&prod_guest), "the host reaches the source guest at {prod_guest} on the production network");

    let progress = Progress::new();
    let log = |l: String| eprintln!("  log: {l}");
    let ctx = Ctx::new(&progress, &log);
    let spec = ReplicaSpec { id: "flow-1".into(), source_vm: "g1".into(), source_vm_id: id.clone(), replica_name: "g1-replica".into(), keep_points: 3 };

    // First sync: the replica domain is made on the DR host, shut off, its
    // disks chains in the DR pool; every allocated block is copied.
    let first = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert!(first.created_replica && first.kind == SyncKind::Full, "{first:?}");
    let replica_vm = dr.vm("g1-replica").unwrap();
    assert_eq!(replica_vm.power, PowerState::Stopped);
    assert_eq!(replica_vm.disks.iter().map(|d| (d.name.as_str(), d.capacity_bytes)).collect::<Vec<_>>(), vec![("vda", 64 << 20), ("vdb", 32 << 20)]);
    assert_eq!(interface_networks(&dr, "g1-replica"), vec![String::new()], "its NIC is there, unconnected (link down) until failover");
    let pci = |vm: &str| -> String {
        let conn = dr.connect().unwrap();
        let xml = dr.domain(&conn, vm).unwrap().xml_desc(0).unwrap();
        let at = xml.find("<interface").unwrap();
        xml[at..].split("</interface>").next().unwrap().split("<address").nth(1).unwrap_or_default().to_string()
    };
    let slot_before = pci("g1-replica");
    assert!(!slot_before.is_empty(), "libvirt gave the NIC its PCI address");
    let rdir = dr_images.join("g1-replica");
    assert!(rdir.join("vda.rp-1.qcow2").exists() && rdir.join("vdb.rp-1.qcow2").exists());
    let checkpoints = |vm: &str| -> Vec<String> {
        let conn = prod.connect().unwrap();
        ffi::list_checkpoints(&prod.domain(&conn, vm).unwrap()).unwrap().into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(checkpoints(&id).iter().filter(|n| n.starts_with("sendense-r.")).count(), 1, "the replication's own chain: {:?}", checkpoints(&id));

    // The guest writes a known set of blocks: the incremental copies exactly those.
    c.run(&write_cmd("vda", 1 << 20, 4, 0xab), Duration::from_secs(60)).unwrap();
    c.run(&write_cmd("vda", 20 << 20, 200, 0xcd), Duration::from_secs(60)).unwrap();
    c.run(&write_cmd("vdb", 3 << 20, 64, 0xef), Duration::from_secs(60)).unwrap();
    let inc = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!(inc.kind, SyncKind::Incremental, "{inc:?}");
    assert_eq!(inc.bytes_changed, K64 + 4 * K64 + K64, "exactly the guest's 64 KiB blocks: {inc:?}");
    assert_eq!(inc.bytes_read, 6 * K64);
    eprintln!("incremental sync: {} bytes changed, {} written in {} ms", inc.bytes_changed, inc.bytes_written, inc.duration_ms);
    let t0 = Instant::now();
    let empty = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    eprintln!("a sync with nothing to copy took {} ms (timed here: {} ms)", empty.duration_ms, t0.elapsed().as_millis());
    assert_eq!((empty.kind, empty.bytes_changed), (SyncKind::Incremental, 0));

    // Test failover: a test VM from the newest point boots on the isolated
    // network; the replica's point files are untouched; syncs go on.
    let before = digests(&rdir);
    let test_log = dr_images.join("g1-test.console.log");
    let t0 = Instant::now();
    let test = replication::test_failover(&dr, &spec, None, &[], &ctx).unwrap();
    let line = test.boot_line.clone().expect("the test failover waits for the guest's boot line");
    assert_eq!(boot_line_after(&test_log, 0, Duration::ZERO), line);
    eprintln!("test VM up {} ms after the test failover started ({} ms timed here): {line}", test.boot_ms.unwrap(), t0.elapsed().as_millis());
    assert!(line.contains("name=g1"), "{line}");
    assert_eq!(dr.vm(&test.vm).unwrap().power, PowerState::Running);
    assert_eq!(interface_networks(&dr, &test.vm), vec!["isolated".to_string()], "the test VM is on the isolated network only");
    let bridge = live_bridges(&dr, &test.vm);
    assert_eq!(bridge.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>(), vec![slot::test_bridge(lab_slot(), "sdrd-iso")], "the test VM's interface is a port of the isolated network's bridge");
    let mut tc = console(&dr, &test.vm);
    // Its NIC works on the isolated network (the bridge's own address
    // answers), yet the production network cannot be reached from it, even
    // with a route through the host.
    let iso = net(3);
    tc.run(&format!("ip addr add {iso}.10/24 dev eth0 && ip link set eth0 up && ip route add default via {iso}.1"), Duration::from_secs(30)).unwrap();
    tc.run(&format!("ping -c 1 -W 5 {iso}.1"), Duration::from_secs(30)).expect("the test VM reaches its isolated network's gateway");
    let reach = tc.run(&format!("ping -c 2 -W 3 {prod_guest}"), Duration::from_secs(30));
    assert!(reach.is_err(), "the test VM must not reach the production network: {reach:?}");
    assert!(host_pings(&prod_guest), "the production guest was up all along");
    assert_eq!(read_marker(&mut tc, "vda", 0).len(), 0);
    let seen = tc.run("dd if=/dev/vdb bs=1M skip=3 count=1 2>/dev/null | head -c 4 | od -An -tx1", Duration::from_secs(30)).unwrap();
    assert!(seen.contains("ef ef ef ef"), "the test VM sees the guest's data at the point: {seen}");
    tc.run(&write_cmd("vdb", 8 << 20, 64, 0x77), Duration::from_secs(60)).unwrap();
    drop(tc);
    c.run(&write_cmd("vda", 30 << 20, 64, 0x12), Duration::from_secs(60)).unwrap();
    let during = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!((during.kind, during.bytes_changed), (SyncKind::Incremental, K64), "syncs go on during the test");
    let after: Vec<_> = digests(&rdir).into_iter().filter(|(n, _)| before.iter().any(|(b, _)| b == n)).collect();
    assert_eq!(after, before, "the test VM's writes never reach the replica's points");
    replication::end_test(&dr, &spec, &ctx).unwrap();
    assert!(matches!(dr.vm(&test.vm), Err(sendense::platforms::PlatformError::VmNotFound(_))));
    assert!(!dr_images.join(&test.vm).exists(), "its overlays are gone");

    // Live failover: the guest's last write (a marker) before the switch is
    // on the replica, which boots on the mapped network.
    c.run("printf 'mark-source1' | dd of=/dev/vdb bs=512 seek=40000 conv=fsync,notrunc 2>/dev/null", Duration::from_secs(30)).unwrap();
    drop(c);
    let replica_log = dr_images.join("g1-replica.console.log");
    let mapping = vec![NetworkPair { source_network: "lan".into(), target_network: "dr-lan".into() }];
    let t0 = Instant::now();
    let fo = replication::failover(&prod, &dr, &spec, &FailoverOptions { network_mapping: mapping, final_sync: true, shutdown_timeout: Duration::from_secs(30) }, &ctx).unwrap();
    let line = fo.boot_line.clone().expect("the failover waits for the replica's boot line");
    assert_eq!(boot_line_after(&replica_log, 0, Duration::ZERO), line);
    assert!(fo.downtime_ms >= fo.power_off_ms + fo.final_sync_ms + fo.power_on_ms + fo.boot_ms.unwrap(), "{fo:?}");
    eprintln!(
        "failover: source off {} ms, final sync {} ms, replica on {} ms, guest up {} ms later; downtime {} ms; {} ms in all: {line}",
        fo.power_off_ms,
        fo.final_sync_ms,
        fo.power_on_ms,
        fo.boot_ms.unwrap(),
        fo.downtime_ms,
        t0.elapsed().as_millis()
    );
    assert_eq!(prod.vm(&id).unwrap().power, PowerState::Stopped);
    assert!(fo.power_off_ms < 10_000, "the source shut down gracefully (ACPI), not by the 30 s timeout: {fo:?}");
    assert_eq!(interface_networks(&dr, "g1-replica"), vec!["dr-lan".to_string()]);
    assert_eq!(pci("g1-replica"), slot_before, "the NIC kept its PCI address: the guest names it as before");
    let mut rc = console(&dr, "g1-replica");
    assert_eq!(read_marker(&mut rc, "vdb", 40000), "mark-source1", "the replica holds the guest's last write");
    // Production runs on the replica and writes.
    rc.run("printf 'mark-replica' | dd of=/dev/vdb bs=512 seek=40000 conv=fsync,notrunc 2>/dev/null", Duration::from_secs(30)).unwrap();
    rc.run(&write_cmd("vda", 40 << 20, 128, 0x99), Duration::from_secs(60)).unwrap();
    drop(rc);

    // Rollback with sync back: the replica's writes go to the source, which boots with them.
    let before_boot = log_len(&source_log);
    let rb = replication::rollback(&prod, &dr, &spec, true, &ctx).unwrap();
    eprintln!("rollback: {} bytes changed on the replica, {} written back, downtime {} ms", rb.bytes_changed_on_replica, rb.bytes_written, rb.downtime_ms);
    assert!(rb.bytes_changed_on_replica >= 3 * K64 && rb.bytes_changed_on_replica < 1 << 20, "{rb:?}");
    assert_eq!(rb.kind, Some(SyncKind::Incremental));
    assert!(rb.boot_line.as_deref().is_some_and(|l| l.contains("name=g1")), "the rollback waits for the source's guest: {rb:?}");
    boot_line_after(&source_log, before_boot.min(log_len(&source_log)), Duration::ZERO);
    assert_eq!(dr.vm("g1-replica").unwrap().power, PowerState::Stopped);
    let mut c = console(&prod, &id);
    assert_eq!(read_marker(&mut c, "vdb", 40000), "mark-replica", "the source has the replica's writes");
    assert_eq!(replication::status(&dr, "g1-replica").unwrap().unwrap().phase, Phase::Replicating);
    // Replication goes on incrementally from the rollback's point.
    c.run(&write_cmd("vda", 50 << 20, 64, 0x31), Duration::from_secs(60)).unwrap();
    drop(c);
    let next = replication::sync(&prod, &dr, &spec, &ctx).unwrap();
    assert_eq!((next.kind, next.bytes_changed), (SyncKind::Incremental, K64), "{next:?}");

    // Removing the replication: the replica domain, its folder and the
    // source's chain for it are gone; the source runs on.
    replication::remove(&prod, &dr, &spec, &ctx).unwrap();
    assert!(matches!(dr.vm("g1-replica"), Err(sendense::platforms::PlatformError::VmNotFound(_))));
    assert!(!rdir.exists());
    assert!(checkpoints(&id).iter().all(|n| !n.starts_with("sendense-r.")), "{:?}", checkpoints(&id));
    assert_eq!(prod.vm(&id).unwrap().power, PowerState::Running);
    assert!(replica::valid_name("g1-replica"));
}
