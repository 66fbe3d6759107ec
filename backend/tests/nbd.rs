//! The NBD client and the `qemu-nbd` wrapper against the real qemu tools:
//! images made with `qemu-img`, written with `qemu-io`, served by
//! `qemu-nbd`, read back with [`NbdClient`] (and, for writes, checked with
//! `qemu-io` / `qemu-img` once the export is gone).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sendense::platforms::nbd::*;

const K64: u64 = 64 * 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn qcow2(dir: &Path, name: &str, size: u64) -> PathBuf {
    let img = dir.join(name);
    run("qemu-img", &["create", "-q", "-f", "qcow2", p(&img), &size.to_string()]);
    img
}

/// Writes each `(pattern, offset, len)` with one `qemu-io` run.
fn qemu_write(img: &Path, writes: &[(u8, u64, u64)]) {
    let mut args = vec!["-f".to_string(), "qcow2".to_string()];
    for (pat, off, len) in writes {
        args.push("-c".into());
        args.push(format!("write -P {pat:#04x} {off} {len}"));
    }
    args.push(p(img).into());
    run("qemu-io", &args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The export's expected content after `writes` on a zeroed disk.
fn expected_image(size: u64, writes: &[(u8, u64, u64)]) -> Vec<u8> {
    let mut v = vec![0u8; size as usize];
    for &(pat, off, len) in writes {
        v[off as usize..(off + len) as usize].fill(pat);
    }
    v
}

/// 64 KiB clusters touched by `writes`, joined, clipped to `size`.
fn cluster_ranges(size: u64, writes: &[(u8, u64, u64)]) -> Vec<(u64, u64)> {
    let mut clusters: Vec<u64> = writes
        .iter()
        .flat_map(|&(_, off, len)| (off / K64)..(off + len).div_ceil(K64))
        .collect();
    clusters.sort();
    clusters.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for c in clusters {
        let (start, end) = (c * K64, ((c + 1) * K64).min(size));
        match out.last_mut() {
            Some((o, l)) if *o + *l == start => *l = end - *o,
            _ => out.push((start, end - start)),
        }
    }
    out
}

fn total(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|r| r.1).sum()
}

#[test]
fn scattered_writes_show_as_dirty_allocated_and_readable() {
    let t = tempfile::tempdir().unwrap();
    let size = 80 * MIB;
    let img = qcow2(t.path(), "disk.qcow2", size);
    run("qemu-img", &["bitmap", "--add", p(&img), "cbt0"]);
    // Two of them adjacent (10 MiB and 10 MiB + 64 KiB) to see ranges join.
    let first: Vec<(u8, u64, u64)> = vec![
        (0x11, 0, K64),
        (0x22, 3 * K64, K64),
        (0x33, 5 * MIB + K64, K64),
        (0x44, 10 * MIB, K64),
        (0x55, 10 * MIB + K64, K64),
        (0x66, 33 * MIB, K64),
    ];
    qemu_write(&img, &first);
    // A second bitmap starts here, as at a backup's bitmap rotation.
    run("qemu-img", &["bitmap", "--add", p(&img), "cbt1"]);
    let second: Vec<(u8, u64, u64)> = vec![(0x77, 40 * MIB - K64, K64), (0x88, size - K64, K64)];
    qemu_write(&img, &second);
    let all: Vec<_> = first.iter().chain(&second).copied().collect();

    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().bitmap("cbt0").bitmap("cbt1")).unwrap();
    let (cbt0, cbt1) = (bitmap_context("cbt0"), bitmap_context("cbt1"));
    let mut nbd = server.connect(&[BASE_ALLOCATION, &cbt0, &cbt1]).unwrap();
    assert_eq!(nbd.size(), size);
    assert!(nbd.read_only());
    assert!(
        nbd.has_context(BASE_ALLOCATION) && nbd.has_context(&cbt0) && nbd.has_context(&cbt1),
        "{nbd:?}"
    );

    // Changed blocks: exactly the written clusters, per bitmap.
    let dirty0 = dirty_ranges(&mut nbd, "cbt0").unwrap();
    assert_eq!(dirty0, cluster_ranges(size, &all));
    assert_eq!(dirty0[3], (10 * MIB, 2 * K64), "adjacent dirty clusters join");
    assert_eq!(total(&dirty0), 8 * K64);
    assert_eq!(dirty_ranges(&mut nbd, "cbt1").unwrap(), cluster_ranges(size, &second));

    // Allocation: the written clusters are data, everything else a hole.
    let alloc = allocated_ranges(&mut nbd, 0, size).unwrap();
    assert_eq!(alloc, cluster_ranges(size, &all));
    let extents = nbd.block_status(BASE_ALLOCATION, 0, size).unwrap();
    assert_eq!(extents.first().map(|e| (e.offset, e.flags & STATE_HOLE)), Some((0, 0)));
    assert_eq!(
        extents.iter().map(|e| e.length).sum::<u64>(),
        size,
        "extents cover the disk"
    );
    assert!(
        extents
            .windows(2)
            .all(|w| w[0].offset + w[0].length == w[1].offset && w[0].flags != w[1].flags),
        "{extents:?}"
    );
    // A sub-range is clipped to what was asked.
    let part = nbd.block_status(BASE_ALLOCATION, 3 * K64 + 100, K64).unwrap();
    assert_eq!(
        part.first().map(|e| (e.offset, e.flags & STATE_HOLE)),
        Some((3 * K64 + 100, 0))
    );
    assert_eq!(part.iter().map(|e| e.length).sum::<u64>(), K64);

    let want = expected_image(size, &all);
    // Each written block returns its pattern.
    for &(pat, off, len) in &all {
        let mut buf = vec![0xEEu8; len as usize];
        nbd.read_at(&mut buf, off).unwrap();
        assert!(buf.iter().all(|&b| b == pat), "pattern {pat:#x} at {off}");
    }
    // Spanning hole, data, hole; and unaligned.
    let (off, len) = (3 * K64 - 32 * 1024, 2 * K64);
    let mut buf = vec![0xEEu8; len as usize];
    nbd.read_at(&mut buf, off).unwrap();
    assert_eq!(buf, want[off as usize..(off + len) as usize]);
    let (off, len) = (5 * MIB + K64 - 7, 1000);
    let mut buf = vec![0xEEu8; len as usize];
    nbd.read_at(&mut buf, off).unwrap();
    assert_eq!(buf, want[off as usize..(off + len) as usize]);
    // The whole 80 MiB in one call: split into requests of at most 32 MiB.
    assert!(nbd.max_payload() as u64 <= 32 * MIB);
    let mut whole = vec![0xEEu8; size as usize];
    nbd.read_at(&mut whole, 0).unwrap();
    assert!(whole == want, "the whole disk reads back as written, zeros elsewhere");

    nbd.disconnect().unwrap();
    server.close().unwrap();
}

#[test]
fn an_internal_snapshot_exports_its_own_content() {
    let t = tempfile::tempdir().unwrap();
    let img = qcow2(t.path(), "disk.qcow2", 8 * MIB);
    qemu_write(&img, &[(0xAA, MIB, K64)]);
    run("qemu-img", &["snapshot", "-c", "s1", p(&img)]);
    qemu_write(&img, &[(0xBB, MIB, K64)]);

    let mut buf = vec![0u8; K64 as usize];
    let snap = QemuNbd::start(&img, &QemuNbdOptions::qcow2().snapshot("s1")).unwrap();
    let mut nbd = snap.connect(&[]).unwrap();
    assert!(nbd.read_only(), "a snapshot is exported read-only");
    nbd.read_at(&mut buf, MIB).unwrap();
    assert!(buf.iter().all(|&b| b == 0xAA), "snapshot s1 holds A");
    nbd.disconnect().unwrap();
    snap.close().unwrap();

    let current = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only()).unwrap();
    let mut nbd = current.connect(&[]).unwrap();
    nbd.read_at(&mut buf, MIB).unwrap();
    assert!(buf.iter().all(|&b| b == 0xBB), "the current state holds B");
}

#[test]
fn writes_reach_the_image_and_a_read_only_export_refuses_them() {
    let t = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    let img = qcow2(t.path(), "target.qcow2", size);

    // Small unaligned write and a 40 MiB one (split at the 32 MiB payload limit).
    let big: Vec<u8> = (0..40 * MIB).map(|i| (i / 4096 % 251) as u8).collect();
    {
        let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2()).unwrap();
        let mut nbd = server.connect(&[]).unwrap();
        assert!(!nbd.read_only());
        nbd.write_at(&vec![0x5A; 200_000], K64 + 100).unwrap();
        nbd.write_at(&big, 8 * MIB).unwrap();
        nbd.flush().unwrap();
        let mut back = vec![0u8; 1000];
        nbd.read_at(&mut back, 8 * MIB + 30 * MIB).unwrap();
        assert_eq!(back, big[30 * MIB as usize..30 * MIB as usize + 1000]);
        nbd.disconnect().unwrap();
        server.close().unwrap();
    }
    // Checked by qemu's own tools once the export is gone.
    run(
        "qemu-io",
        &[
            "-r",
            "-f",
            "qcow2",
            "-c",
            "read -P 0 0 65636",
            "-c",
            "read -P 0x5a 65636 200000",
            "-c",
            "read -P 0 265636 100",
            p(&img),
        ],
    );
    let raw = t.path().join("target.raw");
    run("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", p(&img), p(&raw)]);
    let bytes = std::fs::read(&raw).unwrap();
    assert!(
        bytes[8 * MIB as usize..48 * MIB as usize] == big[..],
        "the 40 MiB write is in the image"
    );
    assert!(bytes[48 * MIB as usize..].iter().all(|&b| b == 0));

    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only()).unwrap();
    let mut nbd = server.connect(&[]).unwrap();
    let err = nbd.write_at(&[1, 2, 3], 0).unwrap_err();
    assert!(matches!(err, NbdError::ReadOnly { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("read-only") && msg.contains(p(server.socket())), "{msg}");
    nbd.flush().unwrap();
    // The refused write did not break the connection.
    let mut buf = [0u8; 3];
    nbd.read_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [0, 0, 0]);
}

#[test]
fn write_zeroes_hides_backing_data_in_an_overlay_and_leaves_the_backing_alone() {
    let t = tempfile::tempdir().unwrap();
    let base = qcow2(t.path(), "base.qcow2", 16 * MIB);
    qemu_write(&base, &[(0x77, 0, 4 * MIB)]);
    let top = t.path().join("top.qcow2");
    run("qemu-img", &["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p(&top)]);
    let server = QemuNbd::start(&top, &QemuNbdOptions::qcow2()).unwrap();
    let mut nbd = server.connect(&[]).unwrap();
    nbd.write_zeroes(MIB, 2 * MIB).unwrap();
    let mut buf = vec![1u8; 4 * MIB as usize];
    nbd.read_at(&mut buf, 0).unwrap();
    assert!(buf[..MIB as usize].iter().all(|&b| b == 0x77) && buf[3 * MIB as usize..].iter().all(|&b| b == 0x77));
    assert!(buf[MIB as usize..3 * MIB as usize].iter().all(|&b| b == 0), "the zeroed range reads as zeros");
    nbd.disconnect().unwrap();
    server.close().unwrap();
    run("qemu-io", &["-r", "-f", "qcow2", "-c", "read -P 0x77 0 4M", p(&base)]);
    let map = run("qemu-img", &["map", "--output=json", "-f", "qcow2", p(&top)]);
    assert!(map.contains("\"zero\": true, \"data\": false"), "zero clusters, no data written: {map}");
}

#[test]
fn bad_input_names_the_bitmap_snapshot_export_or_file() {
    let t = tempfile::tempdir().unwrap();
    let img = qcow2(t.path(), "disk.qcow2", 4 * MIB);
    run("qemu-img", &["bitmap", "--add", p(&img), "cbt0"]);

    // A bitmap the disk does not have.
    let err = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().bitmap("nope")).unwrap_err();
    assert!(
        matches!(err, NbdError::BitmapNotFound { ref bitmap, .. } if bitmap == "nope"),
        "{err:?}"
    );
    assert!(err.is_bitmap_unavailable());
    let msg = err.to_string();
    assert!(msg.contains("'nope'") && msg.contains(p(&img)), "{msg}");

    // A bitmap that exists but was not exported, asked for as a context.
    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only()).unwrap();
    let mut nbd = server.connect(&[BASE_ALLOCATION, &bitmap_context("cbt0")]).unwrap();
    assert!(nbd.has_context(BASE_ALLOCATION) && !nbd.has_context(&bitmap_context("cbt0")));
    let err = dirty_ranges(&mut nbd, "cbt0").unwrap_err();
    assert!(
        matches!(err, NbdError::ContextUnavailable { .. }) && err.is_bitmap_unavailable(),
        "{err:?}"
    );
    assert!(err.to_string().contains("dirty bitmap 'cbt0' is not exported"), "{err}");
    // Out of range: refused before sending, connection still usable.
    let err = nbd.read_at(&mut [0u8; 10], 4 * MIB - 5).unwrap_err();
    assert!(
        matches!(err, NbdError::OutOfRange { .. }) && !err.is_bitmap_unavailable(),
        "{err:?}"
    );
    nbd.read_at(&mut [0u8; 5], 4 * MIB - 5).unwrap();
    nbd.disconnect().unwrap();
    server.close().unwrap();

    // A file that is not qcow2, opened as qcow2.
    let raw = t.path().join("not-qcow2.img");
    std::fs::write(&raw, vec![7u8; 1 << 20]).unwrap();
    let err = QemuNbd::start(&raw, &QemuNbdOptions::qcow2().read_only()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NbdError::QemuNbdFailed { .. }), "{err:?}");
    assert!(msg.contains(p(&raw)) && msg.contains("not in qcow2 format"), "{msg}");

    // A file that does not exist.
    let missing = t.path().join("missing.qcow2");
    let err = QemuNbd::start(&missing, &QemuNbdOptions::qcow2()).unwrap_err();
    assert!(matches!(err, NbdError::DiskNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains(p(&missing)), "{err}");

    // A snapshot the disk does not have.
    let err = QemuNbd::start(&img, &QemuNbdOptions::qcow2().snapshot("s9")).unwrap_err();
    assert!(matches!(err, NbdError::SnapshotNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("'s9'") && err.to_string().contains(p(&img)),
        "{err}"
    );

    // An export name the server does not have (persistent: the failed
    // handshake does not end the server).
    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().persistent(2)).unwrap();
    let err = NbdClient::connect_unix(server.socket(), "other", &[]).unwrap_err();
    assert!(
        matches!(err, NbdError::ExportNotFound { ref export, .. } if export == "other"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no export named 'other'"), "{err}");
    server.connect(&[]).unwrap().disconnect().unwrap();
    server.close().unwrap();

    // A socket nobody listens on.
    let err = NbdClient::connect_unix(&t.path().join("nobody.sock"), "", &[]).unwrap_err();
    assert!(
        matches!(err, NbdError::Connect { .. }) && err.to_string().contains("nobody.sock"),
        "{err:?}"
    );

    // No qemu-nbd program.
    let err = QemuNbd::start(&img, &QemuNbdOptions::qcow2().program("qemu-nbd-not-installed")).unwrap_err();
    assert!(matches!(err, NbdError::QemuNbdMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("qemu-utils"), "{err}");
}

#[test]
fn a_non_persistent_server_serves_one_client_then_says_it_has_gone() {
    let t = tempfile::tempdir().unwrap();
    let img = qcow2(t.path(), "disk.qcow2", MIB);
    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only()).unwrap();
    server.connect(&[]).unwrap().disconnect().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let err = loop {
        match server.connect(&[]) {
            Err(e) => break e,
            Ok(c) if std::time::Instant::now() < deadline => {
                drop(c);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(_) => panic!("qemu-nbd still serves a second client"),
        }
    };
    assert!(matches!(err, NbdError::QemuNbdExited { .. }), "{err:?}");
    assert!(
        err.to_string().contains("one connection unless started persistent"),
        "{err}"
    );
    server.close().unwrap();
}

#[test]
fn a_disk_held_by_a_writer_needs_force_share_and_its_bitmap_is_inconsistent() {
    let t = tempfile::tempdir().unwrap();
    let img = qcow2(t.path(), "busy.qcow2", 4 * MIB);
    run("qemu-img", &["bitmap", "--add", p(&img), "cbt0"]);
    // A writer (stand-in for a running VM) that keeps the image open.
    let mut writer = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            "write -P 0x42 0 64k",
            "-c",
            "flush",
            "-c",
            "sleep 60000",
            p(&img),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // (qemu-io's stdout is block-buffered on a pipe, so wait for the data instead.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = Command::new("qemu-io")
            .args(["-r", "-U", "-f", "qcow2", "-c", "read -P 0x42 0 64k", p(&img)])
            .output()
            .unwrap();
        if seen.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the writer did not write");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(writer.try_wait().unwrap().is_none(), "the writer is still running");

    let err = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only()).unwrap_err();
    assert!(matches!(err, NbdError::DiskLocked { .. }), "{err:?}");
    assert!(err.to_string().contains(p(&img)), "{err}");

    let shared = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().force_share()).unwrap();
    let mut nbd = shared.connect(&[]).unwrap();
    let mut buf = vec![0u8; K64 as usize];
    nbd.read_at(&mut buf, 0).unwrap();
    assert!(
        buf.iter().all(|&b| b == 0x42),
        "force-share reads what the writer wrote"
    );
    drop(nbd);
    drop(shared);

    let err = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().force_share().bitmap("cbt0")).unwrap_err();
    assert!(
        matches!(err, NbdError::BitmapInconsistent { .. }) && err.is_bitmap_unavailable(),
        "{err:?}"
    );

    // A writer that dies without closing the image leaves the bitmap inconsistent.
    assert!(
        writer.try_wait().unwrap().is_none(),
        "the writer was running throughout"
    );
    writer.kill().unwrap();
    writer.wait().unwrap();
    let err = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().bitmap("cbt0")).unwrap_err();
    assert!(
        matches!(err, NbdError::BitmapInconsistent { ref bitmap, .. } if bitmap == "cbt0"),
        "{err:?}"
    );
    assert!(err.to_string().contains("full read"), "{err}");
}

#[test]
fn a_disk_over_4_gib_with_an_odd_size_is_covered_to_its_last_byte() {
    let t = tempfile::tempdir().unwrap();
    let size = 5 * GIB + 1536; // a multiple of 512, not of 64 KiB
    let img = qcow2(t.path(), "big.qcow2", size);
    run("qemu-img", &["bitmap", "--add", p(&img), "cbt0"]);
    let split = 0xFFFF_0000; // where block status splits the first request
    let writes = [
        (0x01, K64, K64),
        (0x02, split - K64, 3 * K64), // across the split
        (0x03, 4 * GIB + 7 * K64, K64),
        (0x04, size - 512, 512), // the last sector, in a partial cluster
    ];
    qemu_write(&img, &writes);

    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().bitmap("cbt0")).unwrap();
    let mut nbd = server.connect(&[BASE_ALLOCATION, &bitmap_context("cbt0")]).unwrap();
    assert_eq!(nbd.size(), size);
    let expected = cluster_ranges(size, &writes);
    assert_eq!(expected.last(), Some(&(5 * GIB, 1536)));
    assert_eq!(dirty_ranges(&mut nbd, "cbt0").unwrap(), expected);
    assert_eq!(allocated_ranges(&mut nbd, 0, size).unwrap(), expected);
    let extents = nbd.block_status(&bitmap_context("cbt0"), 0, size).unwrap();
    assert_eq!(extents.iter().map(|e| e.length).sum::<u64>(), size);
    assert_eq!(
        extents.last().map(|e| (e.offset + e.length, e.flags)),
        Some((size, STATE_DIRTY))
    );
    // The dirty run across the request split comes back as one extent.
    assert!(
        extents.contains(&Extent {
            offset: split - K64,
            length: 3 * K64,
            flags: STATE_DIRTY
        }),
        "{extents:?}"
    );
    assert!(extents.windows(2).all(|w| w[0].flags != w[1].flags), "{extents:?}");

    // Reads across the split and at the very end.
    let mut buf = vec![0u8; (4 * K64) as usize];
    nbd.read_at(&mut buf, split - 2 * K64).unwrap();
    let want: Vec<u8> = [vec![0u8; K64 as usize], vec![0x02; 3 * K64 as usize]].concat();
    assert_eq!(buf, want);
    let mut tail = vec![0xEEu8; 1536];
    nbd.read_at(&mut tail, 5 * GIB).unwrap();
    assert!(tail[..1024].iter().all(|&b| b == 0) && tail[1024..].iter().all(|&b| b == 0x04));
    assert!(matches!(
        nbd.read_at(&mut [0u8; 2], size - 1),
        Err(NbdError::OutOfRange { .. })
    ));
    nbd.disconnect().unwrap();
    server.close().unwrap();
}

#[test]
fn writes_through_nbd_are_tracked_and_a_stopped_server_leaves_the_bitmap_consistent() {
    let t = tempfile::tempdir().unwrap();
    let img = qcow2(t.path(), "disk.qcow2", 16 * MIB);
    run("qemu-img", &["bitmap", "--add", p(&img), "cbt0"]);
    {
        // Persistent, and dropped while a client is still connected: the
        // server has to be stopped, it does not leave on its own.
        let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().persistent(1)).unwrap();
        let mut nbd = server.connect(&[]).unwrap();
        nbd.write_at(&[9u8; 4096], 3 * MIB).unwrap();
        nbd.write_at(&[9u8; 4096], 9 * MIB + K64 - 10).unwrap(); // spans two clusters
        nbd.flush().unwrap();
        drop(server);
        drop(nbd);
    }
    let server = QemuNbd::start(&img, &QemuNbdOptions::qcow2().read_only().bitmap("cbt0"))
        .expect("the bitmap is consistent after the writable server stopped");
    let mut nbd = server.connect(&[&bitmap_context("cbt0")]).unwrap();
    assert_eq!(
        dirty_ranges(&mut nbd, "cbt0").unwrap(),
        vec![(3 * MIB, K64), (9 * MIB, 2 * K64)]
    );
}
