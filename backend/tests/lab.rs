//! The demo lab, checked with the real tools: `lab init` makes hosts and VM
//! definitions that parse, qcow2 disks that `qemu-img check` accepts and that
//! carry the Sendense bitmap, partition tables that `partx` reads back as
//! written, and filesystems that their own checkers find clean, holding the
//! files the lab put there. `lab activity` changes those files inside the
//! filesystems and the disk blocks the dirty bitmaps then count.
//!
//! One lab is built for the whole file (about 10 s) and shared read-only; the
//! activity test works on a copy of it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use sendense::lab::activity::{self, ActivityReport, ChangeKind};
use sendense::lab::content::{paths, PG_RELATIONS};
use sendense::lab::filesystem::FsKind;
use sendense::lab::image;
use sendense::lab::manifest::{LabDisk, LabManifest, LabPartition};
use sendense::lab::partition::TableKind;
use sendense::lab::{init, InitOptions, InitOutcome};
use sendense::platforms::kvm::definition;
use shared_types::platform::{Firmware, PowerState};

const BIN: &str = env!("CARGO_BIN_EXE_sendense");

struct Lab {
    dir: PathBuf,
}

/// The shared lab, built once. A static is never dropped, so a small shell
/// watcher removes the lab when this test process has exited.
fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap().keep();
        let script = format!("while kill -0 {} 2>/dev/null; do sleep 1; done; rm -rf \"$0\"", std::process::id());
        // It outlives this process on purpose: nothing here waits for it.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .arg(&tmp)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let dir = tmp.join("lab");
        let started = Instant::now();
        let outcome = init(&dir, &InitOptions::default(), &mut |line| eprintln!("lab init: {line}")).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert!(matches!(outcome, InitOutcome::Created(_)), "{outcome:?}");
        let du = run("du", ["-s", "--block-size=1"].iter().map(|s| s.to_string()).chain([dir.display().to_string()]));
        let allocated: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
        metric(&format!("lab init: {seconds:.1} s wall time, {:.1} MiB on disk (du)", allocated as f64 / 1048576.0));
        assert!(allocated < 600 << 20, "the lab takes {allocated} bytes");
        Lab { dir }
    })
}

/// Prints a measured figure and appends it to `target/lab-metrics.txt`.
fn metric(line: &str) {
    use std::io::Write;
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab-metrics.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

fn run<I, S>(tool: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(tool).args(&args).env("MTOOLS_SKIP_CHECK", "1").output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {args:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn manifest(dir: &Path) -> LabManifest {
    LabManifest::read(dir).unwrap()
}

fn all_disks(m: &LabManifest) -> Vec<(String, LabDisk)> {
    m.hosts.iter().flat_map(|h| h.vms.iter().flat_map(|v| v.disks.iter().map(|d| (v.name.clone(), d.clone())))).collect()
}

fn disk<'a>(m: &'a LabManifest, vm: &str, disk: &str) -> &'a LabDisk {
    m.vm(vm).unwrap().1.disks.iter().find(|d| d.name == disk).unwrap()
}

/// Extracts a partition of a lab disk into a raw file in `into`.
fn extract(dir: &Path, disk: &LabDisk, part: &LabPartition, into: &Path) -> PathBuf {
    let out = into.join(format!("{}-p{}-{}.raw", disk.file.replace('/', "_"), part.number, rand_suffix()));
    image::extract(&dir.join(&disk.file), part.start, part.size, &out).unwrap();
    out
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn ext4_cat(img: &Path, path: &str) -> Vec<u8> {
    let out = run("debugfs", ["-R".into(), format!("cat \"{path}\""), img.display().to_string()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not found"), "{path} is not in {}", img.display());
    out.stdout
}

#[test]
fn lab_init_makes_a_production_host_with_six_vms_and_an_empty_dr_host() {
    let lab = lab();
    let m = manifest(&lab.dir);
    assert_eq!(m.hosts.len(), 2);
    let prod = lab.dir.join("hosts/kvm-prod-01");
    let host = definition::read_host(&prod).unwrap();
    assert_eq!(host.name, "kvm-prod-01");
    let networks: Vec<&str> = host.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(networks, ["lan", "dmz", "storage"]);
    assert!(host.networks.iter().all(|n| n.bridge.is_some() && n.cidr.is_some()));
    let vms = definition::list_vms(&prod).unwrap();
    assert_eq!(vms, ["app-01", "db-01", "files-01", "web-01", "web-02", "win-01"]);
    let mut macs = BTreeSet::new();
    let mut uuids = BTreeSet::new();
    let mut stopped = 0;
    for name in &vms {
        let vm = definition::read_vm(&prod, name).unwrap();
        assert!(uuid::Uuid::parse_str(&vm.uuid).is_ok(), "{}", vm.uuid);
        uuids.insert(vm.uuid.clone());
        assert!(vm.vcpus >= 2 && vm.memory_mib >= 2048, "{name}");
        assert!(vm.role.is_some());
        for nic in &vm.nics {
            assert!(nic.mac.starts_with("52:54:00:") && nic.mac.len() == 17, "{}", nic.mac);
            assert!(networks.contains(&nic.network.as_str()), "{name}: {}", nic.network);
            macs.insert(nic.mac.clone());
        }
        for d in &vm.disks {
            assert!(definition::disk_path(&prod, name, d).is_file(), "{name}/{}", d.file);
        }
        if vm.power == PowerState::Stopped {
            stopped += 1;
        }
        assert_eq!(m.vm(name).unwrap().1.disks.len(), vm.disks.len());
    }
    assert_eq!(uuids.len(), 6, "VM uuids are distinct");
    assert_eq!(macs.len(), vms.iter().map(|n| definition::read_vm(&prod, n).unwrap().nics.len()).sum::<usize>(), "MACs are distinct");
    assert_eq!(stopped, 1);
    let windows = definition::read_vm(&prod, "win-01").unwrap();
    assert_eq!(windows.firmware, Firmware::Uefi);
    let dr = lab.dir.join("hosts/kvm-dr-01");
    assert_eq!(definition::read_host(&dr).unwrap().name, "kvm-dr-01");
    assert!(definition::list_vms(&dr).unwrap().is_empty());
    assert!(m.content_bytes > 100 << 20 && m.content_bytes < 500 << 20, "{}", m.content_bytes);
}

#[test]
fn every_disk_is_a_clean_sparse_qcow2_with_the_sendense_bitmap() {
    let lab = lab();
    let m = manifest(&lab.dir);
    let disks = all_disks(&m);
    assert_eq!(disks.len(), 8);
    for (vm, d) in &disks {
        let path = lab.dir.join(&d.file);
        run("qemu-img", ["check".as_ref(), path.as_os_str()]);
        let info: serde_json::Value = serde_json::from_slice(&run("qemu-img", ["info".as_ref(), "--output=json".as_ref(), path.as_os_str()]).stdout).unwrap();
        assert_eq!(info["format"], "qcow2", "{vm}/{}", d.name);
        let size = info["virtual-size"].as_u64().unwrap();
        assert_eq!(size, d.virtual_size);
        assert!((1 << 30..=8 << 30).contains(&size), "{vm}: {size}");
        let bitmaps = &info["format-specific"]["data"]["bitmaps"];
        assert_eq!(bitmaps[0]["name"], "sendense-1", "{vm}/{}: {bitmaps}", d.name);
        assert_eq!(bitmaps[0]["granularity"], 65536);
        // Sparse: tens of MiB of data in gigabytes.
        let actual = info["actual-size"].as_u64().unwrap();
        assert!(actual > 1 << 20 && actual < 120 << 20, "{vm}/{}: {actual} bytes allocated", d.name);
    }
}

#[test]
fn partition_tables_read_back_as_written() {
    let lab = lab();
    let m = manifest(&lab.dir);
    let scratch = tempfile::tempdir_in(&lab.dir).unwrap();
    for (vm, d) in all_disks(&m) {
        let raw = scratch.path().join(format!("{vm}-{}.raw", d.name));
        run("qemu-img", ["convert".as_ref(), "-O".as_ref(), "raw".as_ref(), lab.dir.join(&d.file).as_os_str(), raw.as_os_str()]);
        // partx (libblkid) checks the GPT header and entry CRCs.
        let out = text(&run("partx", ["--show".as_ref(), "--bytes".as_ref(), "--noheadings".as_ref(), "-o".as_ref(), "NR,START,SECTORS,TYPE,SCHEME".as_ref(), raw.as_os_str()]));
        let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows.len(), d.partitions.len(), "{vm}/{}: {out}", d.name);
        let firmware = definition::read_vm(&lab.dir.join("hosts/kvm-prod-01"), &vm).unwrap().firmware;
        for (row, p) in rows.iter().zip(&d.partitions) {
            assert_eq!(row[0], p.number.to_string());
            assert_eq!(row[1].parse::<u64>().unwrap() * 512, p.start, "{vm}/{} p{}", d.name, p.number);
            assert_eq!(row[2].parse::<u64>().unwrap() * 512, p.size, "{vm}/{} p{}", d.name, p.number);
            assert_eq!(p.start % (1 << 20), 0, "1 MiB aligned");
            match d.table {
                TableKind::Gpt => {
                    assert_eq!(row[4], "gpt");
                    assert_eq!(row[3], p.ptype.gpt_type().to_string());
                }
                TableKind::Mbr => {
                    assert_eq!(row[4], "dos");
                    assert_eq!(row[3], format!("0x{:x}", p.ptype.mbr_type()));
                }
            }
        }
        if d.name == "disk0" {
            assert_eq!(d.table == TableKind::Gpt, firmware == Firmware::Uefi, "{vm}: UEFI boots from GPT, BIOS from MBR");
        }
        std::fs::remove_file(&raw).unwrap();
    }
}

/// Known files by VM, mount point and path: a piece of their content.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    ("web-01", "/", "/etc/hostname", "web-01\n"),
    ("web-01", "/", "/etc/nginx/nginx.conf", "worker_processes auto;"),
    ("web-01", "/", paths::WEB_INDEX, "<h1>Welcome</h1>"),
    ("web-02", "/", "/etc/os-release", "Debian GNU/Linux 12 (bookworm)"),
    ("db-01", "/", "/etc/postgresql/15/main/postgresql.conf", "wal_level = replica"),
    ("db-01", "/var/lib/postgresql", "/15/main/PG_VERSION", "15\n"),
    ("db-01", "/var/lib/postgresql", "/exports", ""),
    ("files-01", "/srv/share", paths::LEDGER, "date,reference,party,account,amount,currency,status\n"),
    ("files-01", "/", "/etc/samba/smb.conf", "[Finance]"),
    ("app-01", "/", "/opt/orders-api/config/application.yml", "jdbc:postgresql://db-01.lab.internal:5432/shop"),
    ("app-01", "/boot/efi", "/EFI/debian/grub.cfg", "configfile $prefix/grub.cfg"),
    ("win-01", "EFI", paths::BCD, "regf"),
    ("win-01", "C:", "/Users/Administrator/Documents/server-notes.txt", "win-01: ERP client terminal server."),
    ("win-01", "C:", paths::SOFTWARE_HIVE, "regf"),
];

#[test]
fn filesystems_are_clean_and_hold_their_files() {
    let lab = lab();
    let m = manifest(&lab.dir);
    let scratch = tempfile::tempdir_in(&lab.dir).unwrap();
    let mut checked = 0;
    for (vm, d) in all_disks(&m) {
        for p in &d.partitions {
            let Some(kind) = p.filesystem else {
                assert_eq!(p.mount, None);
                continue;
            };
            let img = extract(&lab.dir, &d, p, scratch.path());
            // libblkid identifies the filesystem, its label and UUID as recorded.
            let probe = text(&run("blkid", ["-p".as_ref(), "-o".as_ref(), "export".as_ref(), img.as_os_str()]));
            let want_type = match kind {
                FsKind::Ext4 => "TYPE=ext4",
                FsKind::Vfat => "TYPE=vfat",
                FsKind::Ntfs => "TYPE=ntfs",
                FsKind::Swap => "TYPE=swap",
            };
            assert!(probe.lines().any(|l| l == want_type), "{vm}/{} p{}: {probe}", d.name, p.number);
            if let Some(label) = &p.label {
                assert!(probe.lines().any(|l| l == format!("LABEL={label}")), "{vm} p{}: {probe}", p.number);
            }
            match kind {
                FsKind::Ext4 => {
                    run("e2fsck", ["-fn".as_ref(), img.as_os_str()]);
                    let uuid = p.uuid.as_deref().unwrap();
                    assert!(probe.contains(&format!("UUID={uuid}")), "{probe}");
                    if p.mount.as_deref() == Some("/") {
                        // The guest's fstab mounts every filesystem of the VM by its UUID.
                        let fstab = String::from_utf8(ext4_cat(&img, "/etc/fstab")).unwrap();
                        let (_, lab_vm) = m.vm(&vm).unwrap();
                        for q in lab_vm.disks.iter().flat_map(|d| &d.partitions).filter(|q| q.filesystem.is_some()) {
                            let id = q.uuid.as_deref().unwrap();
                            let id = if q.filesystem == Some(FsKind::Vfat) { format!("{}-{}", &id[..4], &id[4..]).to_uppercase() } else { id.to_string() };
                            let mount = if q.filesystem == Some(FsKind::Swap) { "none" } else { q.mount.as_deref().unwrap() };
                            assert!(fstab.lines().any(|l| l.starts_with(&format!("UUID={id} {mount} "))), "{vm}: {fstab}");
                        }
                    }
                }
                FsKind::Vfat => {
                    run("fsck.vfat", ["-n".as_ref(), img.as_os_str()]);
                    let id = p.uuid.as_deref().unwrap().to_uppercase();
                    assert!(probe.contains(&format!("UUID={}-{}", &id[..4], &id[4..])), "{probe}");
                }
                FsKind::Ntfs => {
                    run("ntfsfix", ["-n".as_ref(), img.as_os_str()]);
                    let docs = text(&run("ntfsls", ["-p".as_ref(), "/Users/alice/Documents".as_ref(), img.as_os_str()]));
                    assert!(docs.lines().any(|l| l == "Budget 2026.xlsx"), "{docs}");
                }
                FsKind::Swap => {}
            }
            for &(_, _, path, want) in KNOWN.iter().filter(|k| k.0 == vm && Some(k.1) == p.mount.as_deref()) {
                let data = match kind {
                    FsKind::Ext4 if want.is_empty() => {
                        // A directory: listed.
                        let out = text(&run("debugfs", ["-R".into(), format!("ls -p {path}"), img.display().to_string()]));
                        assert!(out.contains(".csv"), "{path}: {out}");
                        checked += 1;
                        continue;
                    }
                    FsKind::Ext4 => ext4_cat(&img, path),
                    FsKind::Vfat => {
                        let local = scratch.path().join(format!("mcopy-{}", rand_suffix()));
                        run("mcopy", ["-n".as_ref(), "-i".as_ref(), img.as_os_str(), format!("::{path}").as_ref(), local.as_os_str()]);
                        std::fs::read(local).unwrap()
                    }
                    FsKind::Ntfs => run("ntfscat", [img.as_os_str(), path.as_ref()]).stdout,
                    FsKind::Swap => unreachable!(),
                };
                assert!(data.windows(want.len()).any(|w| w == want.as_bytes()), "{vm}:{path} lacks {want:?}");
                checked += 1;
            }
            std::fs::remove_file(&img).unwrap();
        }
    }
    assert_eq!(checked, KNOWN.len(), "every known file was found on its filesystem");
}

#[test]
fn init_on_an_existing_lab_changes_nothing() {
    let lab = lab();
    let before = std::fs::read(lab.dir.join("lab.json")).unwrap();
    let disk = lab.dir.join("hosts/kvm-prod-01/vms/web-01/disk0.qcow2");
    let mtime = std::fs::metadata(&disk).unwrap().modified().unwrap();
    let out = Command::new(BIN).args(["lab", "init", "--dir"]).arg(&lab.dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("already holds a lab"), "{stdout}");
    assert_eq!(std::fs::read(lab.dir.join("lab.json")).unwrap(), before);
    assert_eq!(std::fs::metadata(&disk).unwrap().modified().unwrap(), mtime);
    let again = init(&lab.dir, &InitOptions::default(), &mut |_| {}).unwrap();
    assert!(matches!(again, InitOutcome::Exists(_)));
}

#[test]
fn init_refuses_a_directory_that_is_not_a_lab() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my documents");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("thesis.txt"), b"do not delete").unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let out = Command::new(BIN).args(["lab", "init", "--dir"]).arg(&dir).args(extra).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&dir.display().to_string()) && err.contains("not empty"), "{err}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(std::fs::read(dir.join("thesis.txt")).unwrap(), b"do not delete");
    // Activity needs a lab.
    let out = Command::new(BIN).args(["lab", "activity", "--dir"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&dir.display().to_string()) && err.contains("not a Sendense lab"), "{err}");
}

/// Bytes the disk's Sendense bitmap marks dirty, from QEMU itself
/// (`query-named-block-nodes` on a read-only qemu-storage-daemon).
fn dirty_bytes(image: &Path) -> u64 {
    use std::io::Write;
    let file = format!("driver=file,filename={},node-name=f,read-only=on", image.display().to_string().replace(',', ",,"));
    let mut child = Command::new("qemu-storage-daemon")
        .args(["--blockdev", &file, "--blockdev", "driver=qcow2,file=f,node-name=d,read-only=on", "--chardev", "stdio,id=m", "--monitor", "chardev=m"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-named-block-nodes\",\"arguments\":{\"flat\":true}}\n{\"execute\":\"quit\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let Some(nodes) = v["return"].as_array() {
            if let Some(node) = nodes.iter().find(|n| n["node-name"] == "d") {
                let bitmap = node["dirty-bitmaps"].as_array().unwrap().iter().find(|b| b["name"] == "sendense-1").expect("sendense-1 bitmap");
                return bitmap["count"].as_u64().unwrap();
            }
        }
    }
    panic!("no answer from qemu-storage-daemon: {}", String::from_utf8_lossy(&out.stdout));
}

fn changes_of<'a>(r: &'a ActivityReport, vm: &str, disk: &str) -> &'a activity::DiskActivity {
    let v = r.vms.iter().find(|v| v.vm == vm).unwrap();
    v.disks.iter().find(|d| d.disk == disk).unwrap_or_else(|| panic!("{vm}/{disk} not in the report"))
}

#[test]
fn an_activity_round_changes_files_and_exactly_the_blocks_the_bitmaps_count() {
    let lab = lab();
    let tmp = tempfile::tempdir_in(lab.dir.parent().unwrap()).unwrap();
    let dir = tmp.path().join("lab");
    run("cp", ["-a".as_ref(), "--sparse=always".as_ref(), lab.dir.as_os_str(), dir.as_os_str()]);
    let m = manifest(&dir);
    let scratch = tempfile::tempdir_in(tmp.path()).unwrap();
    let web = disk(&m, "web-01", "disk0");
    let web_root = web.mounted("/").unwrap();
    let db = disk(&m, "db-01", "disk1");
    let db_part = db.mounted("/var/lib/postgresql").unwrap();
    let win = disk(&m, "win-01", "disk0");
    let win_c = win.mounted("C:").unwrap();

    let img = extract(&dir, web, web_root, scratch.path());
    let log_before = ext4_cat(&img, paths::ACCESS_LOG);
    let index_before = ext4_cat(&img, paths::WEB_INDEX);
    let img = extract(&dir, db, db_part, scratch.path());
    let tables_before: Vec<Vec<u8>> = PG_RELATIONS.iter().map(|(_, node, _)| ext4_cat(&img, &format!("{}/{node}", paths::PG_BASE))).collect();
    let img = extract(&dir, win, win_c, scratch.path());
    let cbs_before = run("ntfscat", [img.as_os_str(), paths::CBS_LOG.as_ref()]).stdout;
    for (_, d) in all_disks(&m) {
        assert_eq!(dirty_bytes(&dir.join(&d.file)), 0, "{}: a new lab has nothing dirty", d.file);
    }

    let report = activity::round(&dir).unwrap();
    for v in &report.vms {
        metric(&format!("lab activity round: {} {} bytes written", v.vm, v.bytes_written()));
    }
    metric(&format!("lab activity round: {} bytes written in all, {:.1} s", report.bytes_written, report.seconds));

    // Only running VMs change.
    let web02 = report.vms.iter().find(|v| v.vm == "web-02").unwrap();
    assert_eq!(web02.skipped.as_deref(), Some("stopped"));
    assert!(web02.disks.is_empty());
    for v in report.vms.iter().filter(|v| v.skipped.is_none()) {
        assert!(v.bytes_written() > 0, "{} wrote nothing", v.vm);
    }

    // The dirty bitmap of every disk counts exactly the blocks written, and
    // every disk still checks clean.
    for (vm, d) in all_disks(&m) {
        let path = dir.join(&d.file);
        run("qemu-img", ["check".as_ref(), path.as_os_str()]);
        let written = report.vms.iter().find(|v| v.vm == vm).unwrap().disks.iter().find(|x| x.disk == d.name).map(|x| x.bytes_written).unwrap_or(0);
        assert_eq!(dirty_bytes(&path), written, "{vm}/{}", d.name);
    }

    // The access log grew by the appended lines; the home page changed; a news page appeared.
    let img = extract(&dir, web, web_root, scratch.path());
    run("e2fsck", ["-fn".as_ref(), img.as_os_str()]);
    let log_after = ext4_cat(&img, paths::ACCESS_LOG);
    let web_changes = changes_of(&report, "web-01", "disk0");
    let appended = web_changes.changes.iter().find(|c| c.path == paths::ACCESS_LOG && c.kind == ChangeKind::Appended).unwrap();
    assert_eq!(log_after.len() as u64, log_before.len() as u64 + appended.bytes);
    assert!(log_after.starts_with(&log_before));
    assert!(String::from_utf8_lossy(&log_after[log_before.len()..]).lines().all(|l| l.contains("HTTP/1.1\"")));
    let index_after = ext4_cat(&img, paths::WEB_INDEX);
    assert_ne!(index_after, index_before);
    assert!(String::from_utf8_lossy(&index_after).contains("Latest news"));
    let news = web_changes.changes.iter().find(|c| c.kind == ChangeKind::Created).unwrap();
    assert_eq!(ext4_cat(&img, &news.path).len() as u64, news.bytes);

    // Database: exactly the reported 64 KiB stretches of the tables differ.
    let img = extract(&dir, db, db_part, scratch.path());
    run("e2fsck", ["-fn".as_ref(), img.as_os_str()]);
    let db_changes = changes_of(&report, "db-01", "disk1");
    let mut pages = 0;
    for ((_, node, _), before) in PG_RELATIONS.iter().zip(&tables_before) {
        let path = format!("{}/{node}", paths::PG_BASE);
        let after = ext4_cat(&img, &path);
        assert_eq!(after.len(), before.len(), "{path} keeps its size");
        let differing: Vec<u64> =
            before.chunks(65536).zip(after.chunks(65536)).enumerate().filter(|(_, (a, b))| a != b).map(|(i, _)| i as u64 * 65536).collect();
        let reported = db_changes.changes.iter().find(|c| c.path == path).map(|c| c.offsets.clone()).unwrap_or_default();
        assert_eq!(differing, reported, "{path}");
        pages += reported.len();
    }
    assert!((8..=32).contains(&pages), "{pages} pages rewritten");
    // ... and the disk blocks reported differ from the original disk's.
    let original = lab.dir.join(&db.file);
    let current = dir.join(&db.file);
    for &block in &db_changes.blocks {
        let a = scratch.path().join("a.raw");
        let b = scratch.path().join("b.raw");
        image::extract(&original, block, 65536, &a).unwrap();
        image::extract(&current, block, 65536, &b).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "block at {block}");
    }
    assert_eq!(db_changes.blocks_written * 65536, db_changes.bytes_written);

    // Windows: the CBS log grew, the spreadsheet is new, NTFS and FAT stay consistent.
    let img = extract(&dir, win, win_c, scratch.path());
    run("ntfsfix", ["-n".as_ref(), img.as_os_str()]);
    let cbs_after = run("ntfscat", [img.as_os_str(), paths::CBS_LOG.as_ref()]).stdout;
    assert!(cbs_after.len() > cbs_before.len() && cbs_after.starts_with(&cbs_before));
    let win_changes = changes_of(&report, "win-01", "disk0");
    let download = win_changes.changes.iter().find(|c| c.kind == ChangeKind::Created).unwrap();
    assert_eq!(run("ntfscat", [img.as_os_str(), download.path.as_ref()]).stdout.len() as u64, download.bytes);
    let esp = extract(&dir, win, win.mounted("EFI").unwrap(), scratch.path());
    run("fsck.vfat", ["-n".as_ref(), esp.as_os_str()]);
    let files = disk(&m, "files-01", "disk1");
    let share = extract(&dir, files, files.mounted("/srv/share").unwrap(), scratch.path());
    run("e2fsck", ["-fn".as_ref(), share.as_os_str()]);
    let ledger = ext4_cat(&share, paths::LEDGER);
    assert!(String::from_utf8_lossy(&ledger).lines().all(|l| l.split(',').count() == 7), "the ledger stays a CSV");
}

#[test]
fn activity_skips_deleted_vms_and_names_a_missing_disk() {
    let lab = lab();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    // The definitions without the disks.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(lab.dir.join("lab.json"), dir.join("lab.json")).unwrap();
    for host in ["kvm-prod-01", "kvm-dr-01"] {
        let from = lab.dir.join("hosts").join(host);
        let to = dir.join("hosts").join(host);
        std::fs::create_dir_all(to.join("vms")).unwrap();
        std::fs::copy(from.join("host.json"), to.join("host.json")).unwrap();
        for vm in definition::list_vms(&from).unwrap() {
            std::fs::create_dir_all(to.join("vms").join(&vm)).unwrap();
            std::fs::copy(from.join("vms").join(&vm).join("vm.json"), to.join("vms").join(&vm).join("vm.json")).unwrap();
        }
    }
    std::fs::remove_dir_all(dir.join("hosts/kvm-prod-01/vms/web-01")).unwrap();
    let err = activity::round(&dir).unwrap_err().to_string();
    let missing = dir.join("hosts/kvm-prod-01/vms/db-01/disk0.qcow2");
    assert!(err.contains(&missing.display().to_string()) && err.contains("missing"), "{err}");
    // With db-01 gone too, the next VM's disk is named; web-01 and db-01 are skipped, not errors.
    for vm in ["db-01", "files-01", "app-01", "win-01"] {
        std::fs::remove_dir_all(dir.join("hosts/kvm-prod-01/vms").join(vm)).unwrap();
    }
    let report = activity::round(&dir).unwrap();
    let skipped: Vec<(&str, &str)> = report.vms.iter().map(|v| (v.vm.as_str(), v.skipped.as_deref().unwrap_or(""))).collect();
    assert_eq!(skipped[0], ("web-01", "deleted from the host"));
    assert_eq!(skipped[1], ("web-02", "stopped"));
    assert_eq!(report.bytes_written, 0);
}

#[test]
fn a_missing_tool_is_named_with_its_package_and_init_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    // Every tool the lab uses but mkswap (util-linux).
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "e2fsck", "mkfs.vfat", "mcopy", "mkntfs", "wimcapture", "wimapply"] {
        let path = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
        std::os::unix::fs::symlink(path, bin.join(tool)).unwrap();
    }
    let dir = tmp.path().join("lab");
    let out = Command::new(BIN).args(["lab", "init", "--dir"]).arg(&dir).env("PATH", &bin).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mkswap is not installed") && err.contains("apt-get install util-linux"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "init left {left:?} behind");
}
