//! Real images built by the real tools (e2fsprogs, dosfstools + mtools,
//! ntfs-3g + wimtools), whole-disk and behind MBR and GPT tables, read back
//! through the public API and checked byte for byte.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use guest_fs::{
    open, walk, Disk, EntryKind, Error, FileDisk, FsKind, GuestFs, GuestPath, PartitionType,
    TableKind, WalkLimits,
};

fn p(s: &str) -> GuestPath {
    GuestPath::parse(s).unwrap()
}

fn open_image(path: &Path) -> Disk {
    open(Arc::new(FileDisk::open(path).unwrap())).unwrap()
}

fn read_all(fs: &dyn GuestFs, path: &str, buf_size: usize) -> Vec<u8> {
    let mut r = fs.open_file(&p(path)).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_size];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn names(fs: &dyn GuestFs, dir: &str) -> Vec<String> {
    fs.list(&p(dir), 0, 1000)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// Checks the tree of `make_tree` (without links) on any filesystem.
fn check_tree(fs: &dyn GuestFs) {
    let root = fs.list(&GuestPath::root(), 0, 1000).unwrap();
    let root_names: Vec<&str> = root.entries.iter().map(|e| e.name.as_str()).collect();
    for want in ["docs", "empty", "hello.txt", "nested"] {
        assert!(
            root_names.contains(&want),
            "{want} missing from {root_names:?}"
        );
    }
    let mut sorted = root_names.clone();
    sorted.sort();
    assert_eq!(root_names, sorted, "root listing is not sorted");
    assert_eq!(root.total as usize, root.entries.len());

    let hello = fs.stat(&p("/hello.txt")).unwrap();
    assert_eq!(
        (hello.kind, hello.size, hello.name.as_str()),
        (EntryKind::File, 12, "hello.txt")
    );
    assert!(
        hello.mtime.is_some_and(|t| t > 1_000_000_000),
        "mtime {:?}",
        hello.mtime
    );
    assert_eq!(read_all(fs, "hello.txt", 5), b"hello world\n");

    let data = fs.stat(&p("nested/deeper/data.bin")).unwrap();
    assert_eq!(data.size, 300_000);
    let want = pattern(300_000, 7);
    assert!(
        read_all(fs, "/nested/deeper/data.bin", 7_001) == want,
        "data.bin differs"
    );
    assert!(
        read_all(fs, "nested/./deeper/../deeper/data.bin", 1 << 20) == want,
        "data.bin differs (big buffer)"
    );
    // Ends exactly at a read chunk's end; 8 KiB is what io::copy and tar ask for.
    let want = pattern(128 * 1024, 3);
    assert!(
        read_all(fs, "nested/deeper/two-chunks.bin", 8192) == want,
        "two-chunks.bin differs"
    );

    assert_eq!(fs.stat(&p("empty")).unwrap().size, 0);
    assert!(read_all(fs, "empty", 10).is_empty());
    assert_eq!(names(fs, "nested"), ["deeper"]);
    assert_eq!(fs.stat(&p("nested/deeper")).unwrap().kind, EntryKind::Dir);
    assert_eq!(read_all(fs, "docs/readme.md", 4096), b"# readme\n");

    assert!(matches!(
        fs.open_file(&p("nested")),
        Err(Error::NotAFile { .. })
    ));
    assert!(matches!(fs.stat(&p("nope")), Err(Error::NotFound { .. })));
    assert!(matches!(
        fs.stat(&p("nested/nope/x")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        fs.list(&p("hello.txt"), 0, 10),
        Err(Error::NotADirectory { .. })
    ));
    assert!(matches!(
        fs.stat(&p("hello.txt/x")),
        Err(Error::NotADirectory { .. })
    ));

    let mut seen = Vec::new();
    walk(
        fs,
        &GuestPath::root(),
        WalkLimits::default(),
        &mut |path, e| {
            seen.push((path.as_relative(), e.kind));
            Ok(())
        },
    )
    .unwrap();
    for want in [
        "nested",
        "nested/deeper",
        "nested/deeper/data.bin",
        "docs/readme.md",
        "hello.txt",
    ] {
        assert!(
            seen.iter().any(|(s, _)| s == want),
            "walk missed {want}: {seen:?}"
        );
    }
    assert!(seen
        .iter()
        .all(|(s, _)| !s.starts_with('/') && !s.split('/').any(|c| c == ".." || c == ".")));
    let too_shallow = WalkLimits {
        max_depth: 1,
        max_entries: 1000,
    };
    assert!(matches!(
        walk(fs, &GuestPath::root(), too_shallow, &mut |_, _| Ok(())),
        Err(Error::LimitExceeded { .. })
    ));
}

#[test]
fn path_traversal_is_rejected() {
    for bad in [
        "../etc",
        "/a/../../b",
        "a/\0",
        "a/\0/b",
        "..",
        "/..",
        "a\\..\\b",
        "x\n",
    ] {
        let err = GuestPath::parse(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(p("/a/b/../c").as_relative(), "a/c");
    assert_eq!(p("//a/./b/").to_string(), "/a/b");
}

#[test]
fn ext4_whole_disk() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree, true);
    let img = dir.path().join("ext4.img");
    ext4(&img, 16 * MIB, &tree);

    let disk = open_image(&img);
    assert_eq!(disk.table(), TableKind::None);
    let parts = disk.partitions();
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].filesystem, parts[0].start, parts[0].length),
        (FsKind::Ext4, 0, 16 * MIB)
    );
    assert_eq!(parts[0].part_type, PartitionType::WholeDisk);
    let fs = disk.filesystem(0).unwrap();
    assert_eq!(fs.kind(), FsKind::Ext4);
    check_tree(&*fs);

    assert_eq!(
        names(&*fs, "/"),
        [
            "abs-link",
            "dir-link",
            "docs",
            "empty",
            "hello.txt",
            "lost+found",
            "nested",
            "rel-link"
        ]
    );
    let hello = fs.stat(&p("hello.txt")).unwrap();
    assert_eq!(hello.mode.map(|m| m & 0o170000), Some(0o100000));
    let rel = fs.stat(&p("rel-link")).unwrap();
    assert_eq!(
        (rel.kind, rel.symlink_target.as_deref()),
        (EntryKind::Symlink, Some("nested/deeper/data.bin"))
    );
    let listed = fs.list(&GuestPath::root(), 0, 100).unwrap();
    let abs = listed
        .entries
        .iter()
        .find(|e| e.name == "abs-link")
        .unwrap();
    assert_eq!(
        (abs.kind, abs.symlink_target.as_deref()),
        (EntryKind::Symlink, Some("/etc/passwd"))
    );
    // Links are never followed: not to read, not to list, not on the way.
    assert!(matches!(
        fs.open_file(&p("rel-link")),
        Err(Error::Symlink { .. })
    ));
    assert!(matches!(
        fs.open_file(&p("abs-link")),
        Err(Error::Symlink { .. })
    ));
    assert!(matches!(
        fs.list(&p("dir-link"), 0, 10),
        Err(Error::Symlink { .. })
    ));
    assert!(matches!(
        fs.stat(&p("dir-link/deeper")),
        Err(Error::Symlink { .. })
    ));
    assert!(matches!(
        fs.open_file(&p("dir-link/deeper/data.bin")),
        Err(Error::Symlink { .. })
    ));
    assert!(matches!(
        disk.filesystem(1),
        Err(Error::NoSuchPartition { index: 1, count: 1 })
    ));
}

fn many_files(tree: &Path) {
    std::fs::create_dir_all(tree.join("many")).unwrap();
    for i in 0..10_000 {
        std::fs::write(
            tree.join(format!("many/file-{i:05}-{}", i * 7919 % 10_007)),
            i.to_string(),
        )
        .unwrap();
    }
}

/// Pages through the 10 000-entry directory `many` by 100: sorted, no
/// duplicates, total right; prints the time of one page from the middle.
fn check_large_dir(fs: &dyn GuestFs, label: &str) {
    let mut all = Vec::new();
    let mut offset = 0;
    loop {
        let page = fs.list(&p("many"), offset, 100).unwrap();
        assert_eq!(page.total, 10_000);
        assert_eq!(page.offset, offset);
        if page.entries.is_empty() {
            break;
        }
        assert!(page.entries.len() <= 100);
        offset += page.entries.len() as u64;
        all.extend(page.entries.into_iter().map(|e| e.name));
    }
    assert_eq!(all.len(), 10_000);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "pages are not sorted or hold duplicates");
    assert_eq!(all[0], "file-00000-0");

    // One page from the middle, timed (printed, not asserted).
    let started = Instant::now();
    let page = fs.list(&p("many"), 5_000, 100).unwrap();
    let took = started.elapsed();
    assert_eq!(page.entries[0].name, all[5_000]);
    assert_eq!(page.entries[0].size, 4);
    println!(
        "{label}: page of 100 at offset 5000 of a 10000-entry directory: {:.1} ms ({} build)",
        took.as_secs_f64() * 1000.0,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let past = fs.list(&p("many"), 20_000, 100).unwrap();
    assert!(past.entries.is_empty() && past.total == 10_000);
}

#[test]
fn ext4_large_directory_pages() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    many_files(&tree);
    let img = dir.path().join("ext4.img");
    ext4(&img, 64 * MIB, &tree);
    let disk = open_image(&img);
    check_large_dir(&*disk.filesystem(0).unwrap(), "ext4");
}

#[test]
fn ntfs_large_directory_pages() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    many_files(&tree);
    let img = dir.path().join("ntfs.img");
    ntfs(&img, 64 * MIB, &tree, dir.path());
    let disk = open_image(&img);
    check_large_dir(&*disk.filesystem(0).unwrap(), "NTFS");
}

#[test]
fn fat16_whole_disk() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree, false);
    let img = dir.path().join("fat.img");
    fat(&img, 16 * MIB, 16, &tree);
    let disk = open_image(&img);
    assert_eq!(disk.table(), TableKind::None);
    assert_eq!(disk.partitions()[0].filesystem, FsKind::Fat16);
    let fs = disk.filesystem(0).unwrap();
    check_tree(&*fs);
    assert_eq!(names(&*fs, "/"), ["docs", "empty", "hello.txt", "nested"]);
    let e = fs.stat(&p("hello.txt")).unwrap();
    assert!(e.attributes.is_some() && e.mode.is_none());
    // FAT names match case-insensitively, like the guest does.
    assert_eq!(read_all(&*fs, "HELLO.TXT", 100), b"hello world\n");
}

#[test]
fn ntfs_whole_disk() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree, false);
    let img = dir.path().join("ntfs.img");
    ntfs(&img, 16 * MIB, &tree, dir.path());
    let disk = open_image(&img);
    assert_eq!(disk.table(), TableKind::None);
    assert_eq!(disk.partitions()[0].filesystem, FsKind::Ntfs);
    let fs = disk.filesystem(0).unwrap();
    check_tree(&*fs);
    let root = names(&*fs, "/");
    assert!(
        root.iter().all(|n| !n.starts_with('$')),
        "metadata files listed: {root:?}"
    );
}

#[test]
fn mbr_with_logical_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree, true);
    let fat_img = dir.path().join("fat.img");
    fat(&fat_img, 8 * MIB, 12, &tree.join("docs"));
    let ext_img = dir.path().join("ext.img");
    ext4(&ext_img, 16 * MIB, &tree);
    let ntfs_tree = dir.path().join("ntfs-tree");
    make_tree(&ntfs_tree, false);
    let ntfs_img = dir.path().join("ntfs.img");
    ntfs(&ntfs_img, 8 * MIB, &ntfs_tree, dir.path());

    // p1 FAT at 1 MiB; p2 extended 10..40 MiB holding p5 ext4 (at 11 MiB)
    // and p6 NTFS (at 30 MiB).
    let disk_img = dir.path().join("disk.img");
    blank(&disk_img, 48 * MIB);
    let s = |mib: u64| (mib * MIB / 512) as u32;
    write_mbr(&disk_img, &[(0x0C, s(1), s(8)), (0x0F, s(10), s(30))]);
    write_ebr(
        &disk_img,
        u64::from(s(10)),
        0x83,
        s(1),
        s(16),
        Some((s(19), s(10))),
    );
    write_ebr(&disk_img, u64::from(s(29)), 0x07, s(1), s(8), None);
    place(&disk_img, MIB, &fat_img);
    place(&disk_img, 11 * MIB, &ext_img);
    place(&disk_img, 30 * MIB, &ntfs_img);

    let disk = open_image(&disk_img);
    assert_eq!(disk.table(), TableKind::Mbr);
    assert!(disk.warnings().is_empty(), "{:?}", disk.warnings());
    let got: Vec<_> = disk
        .partitions()
        .iter()
        .map(|p| (p.index, p.number, p.start, p.length, p.filesystem))
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(1), MIB, 8 * MIB, FsKind::Fat12),
            (1, Some(5), 11 * MIB, 16 * MIB, FsKind::Ext4),
            (2, Some(6), 30 * MIB, 8 * MIB, FsKind::Ntfs),
        ]
    );
    assert_eq!(
        disk.partitions()[1].part_type,
        PartitionType::Mbr {
            byte: 0x83,
            name: "Linux"
        }
    );

    let fat_fs = disk.filesystem(0).unwrap();
    assert_eq!(read_all(&*fat_fs, "readme.md", 3), b"# readme\n");
    check_tree(&*disk.filesystem(1).unwrap());
    check_tree(&*disk.filesystem(2).unwrap());
}

#[test]
fn gpt_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree, true);
    let ntfs_tree = dir.path().join("ntfs-tree");
    make_tree(&ntfs_tree, false);
    let fat_img = dir.path().join("esp.img");
    fat(&fat_img, 40 * MIB, 32, &ntfs_tree);
    let ext_img = dir.path().join("ext.img");
    ext4(&ext_img, 16 * MIB, &tree);
    let ntfs_img = dir.path().join("ntfs.img");
    ntfs(&ntfs_img, 8 * MIB, &ntfs_tree, dir.path());

    let size = 72 * MIB;
    let disk_img = dir.path().join("disk.img");
    blank(&disk_img, size);
    let lba = |mib: u64| mib * MIB / 512;
    write_gpt(
        &disk_img,
        size,
        &[
            (
                "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                lba(1),
                lba(41) - 1,
                "EFI",
            ),
            (
                "0fc63daf-8483-4772-8e79-3d69d8477de4",
                lba(41),
                lba(57) - 1,
                "root",
            ),
            (
                "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",
                lba(57),
                lba(65) - 1,
                "data",
            ),
        ],
    );
    place(&disk_img, MIB, &fat_img);
    place(&disk_img, 41 * MIB, &ext_img);
    place(&disk_img, 57 * MIB, &ntfs_img);

    let disk = open_image(&disk_img);
    assert_eq!(disk.table(), TableKind::Gpt);
    let got: Vec<_> = disk
        .partitions()
        .iter()
        .map(|p| {
            (
                p.number,
                p.start,
                p.length,
                p.filesystem,
                p.label.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some(1), MIB, 40 * MIB, FsKind::Fat32, "EFI".to_string()),
            (
                Some(2),
                41 * MIB,
                16 * MIB,
                FsKind::Ext4,
                "root".to_string()
            ),
            (Some(3), 57 * MIB, 8 * MIB, FsKind::Ntfs, "data".to_string()),
        ]
    );
    match &disk.partitions()[0].part_type {
        PartitionType::Gpt { guid, name } => {
            assert_eq!(
                (guid.as_str(), *name),
                ("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "EFI system")
            )
        }
        other => panic!("{other:?}"),
    }
    for i in 0..3 {
        check_tree(&*disk.filesystem(i).unwrap());
    }

    // A damaged primary header: the backup header still gives the table.
    write_at(&disk_img, 512 + 100, b"garbage");
    write_at(&disk_img, 512 + 24, &[0xFF; 8]);
    let disk = open_image(&disk_img);
    assert_eq!(disk.partitions().len(), 3);
    assert!(
        disk.warnings().iter().any(|w| w.contains("backup")),
        "{:?}",
        disk.warnings()
    );
    // Both damaged: an error, not a guess.
    write_at(&disk_img, size - 512 + 24, &[0xFF; 8]);
    let err = open(Arc::new(FileDisk::open(&disk_img).unwrap())).unwrap_err();
    assert!(
        matches!(err, Error::PartitionTable { table: "GPT", .. }),
        "{err}"
    );
}

#[test]
fn hostile_tables_give_errors_or_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    blank(&img, 4 * MIB);
    // An extended partition whose EBR links to itself, and a partition past the end.
    write_mbr(
        &img,
        &[
            (0x05, 2048, 4096),
            (0x83, 8000, 1_000_000),
            (0x83, 900_000, 10),
        ],
    );
    write_ebr(&img, 2048, 0x83, 1, 100, Some((0, 4096)));
    let disk = open_image(&img);
    assert_eq!(disk.table(), TableKind::Mbr);
    let w = disk.warnings().join("\n");
    assert!(w.contains("loops"), "{w}");
    assert!(
        w.contains("cut to fit") && w.contains("beyond the disk end"),
        "{w}"
    );
    let parts = disk.partitions();
    assert!(parts.iter().all(|p| p.start + p.length <= 4 * MIB));
    for part in parts {
        assert!(matches!(
            disk.filesystem(part.index),
            Err(Error::Unsupported { .. })
        ));
    }
    // GPT entry array claimed beyond the disk end.
    blank(&img, 4 * MIB);
    write_gpt(
        &img,
        4 * MIB,
        &[("0fc63daf-8483-4772-8e79-3d69d8477de4", 2048, 4095, "x")],
    );
    let mut hdr = std::fs::read(&img).unwrap()[512..1024].to_vec();
    hdr[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
    hdr[16..20].fill(0);
    let crc = crc32fast::hash(&hdr[..92]);
    hdr[16..20].copy_from_slice(&crc.to_le_bytes());
    write_at(&img, 512, &hdr);
    let disk = open_image(&img); // the backup header is intact
    assert_eq!(disk.partitions().len(), 1);
    // Tiny and empty disks.
    for size in [0u64, 1, 511, 512, 4096] {
        blank(&img, size);
        let disk = open_image(&img);
        assert_eq!(disk.partitions().len(), usize::from(size > 0));
    }
    // A corrupt ext4 superblock: an error naming the filesystem.
    let tree = dir.path().join("tree");
    make_tree(&tree, false);
    ext4(&img, 8 * MIB, &tree);
    write_at(&img, 1024 + 24, &[0xFF; 4]); // log block size
    let disk = open_image(&img);
    let err = disk
        .filesystem(0)
        .err()
        .expect("corrupt superblock accepted");
    assert!(err.to_string().contains("ext4"), "{err}");
}

/// Geometry of a FAT16 image and the root entry of `short` (8.3, padded).
struct Fat16 {
    fat: u64,
    fat_bytes: u64,
    entry: u64,
    first_cluster: u16,
}

fn fat16_layout(img: &Path, short: &[u8; 11]) -> Fat16 {
    let data = std::fs::read(img).unwrap();
    let le16 = |at: usize| u64::from(u16::from_le_bytes([data[at], data[at + 1]]));
    let (bps, reserved, fats, root_entries, fat_size) =
        (le16(11), le16(14), u64::from(data[16]), le16(17), le16(22));
    let root = (reserved + fats * fat_size) * bps;
    let slot = (0..root_entries)
        .map(|i| root + i * 32)
        .find(|&at| &data[at as usize..at as usize + 11] == short)
        .expect("entry not in the root directory");
    Fat16 {
        fat: reserved * bps,
        fat_bytes: fat_size * bps,
        entry: slot,
        first_cluster: le16(slot as usize + 26) as u16,
    }
}

fn read_err(fs: &dyn GuestFs, path: &str) -> String {
    let mut r = match fs.open_file(&p(path)) {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .expect_err("a corrupt file was read without error")
        .to_string()
}

#[test]
fn fat_corrupt_chains_give_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("big.bin"), pattern(20_000, 1)).unwrap();
    std::fs::write(tree.join("sub/x"), b"x").unwrap();
    let clean = dir.path().join("clean.img");
    fat(&clean, 16 * MIB, 16, &tree);
    let big = fat16_layout(&clean, b"BIG     BIN");
    let sub = fat16_layout(&clean, b"SUB        ");
    let img = dir.path().join("fat.img");
    let set_fat = |cluster: u16, value: u16| {
        for copy in 0..2 {
            write_at(
                &img,
                big.fat + copy * big.fat_bytes + 2 * u64::from(cluster),
                &value.to_le_bytes(),
            );
        }
    };
    let fresh = || {
        std::fs::copy(&clean, &img).unwrap();
    };
    let fs_of = || open_image(&img).filesystem(0).unwrap();

    // The chain links to a cluster outside the volume.
    fresh();
    set_fat(big.first_cluster, 0xFFF0);
    let e = read_err(&*fs_of(), "big.bin");
    assert!(e.contains("invalid cluster"), "{e}");
    // The chain ends before the recorded size.
    fresh();
    set_fat(big.first_cluster, 0xFFFF);
    let e = read_err(&*fs_of(), "big.bin");
    assert!(e.contains("ends before the file size"), "{e}");
    // The chain loops: the size still bounds the read.
    fresh();
    set_fat(big.first_cluster, big.first_cluster);
    let mut out = Vec::new();
    let n = fs_of()
        .open_file(&p("big.bin"))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(n, 20_000);
    // A file or a directory starting outside the volume.
    fresh();
    write_at(&img, big.entry + 26, &0xFFF0u16.to_le_bytes());
    let e = read_err(&*fs_of(), "big.bin");
    assert!(e.contains("invalid cluster"), "{e}");
    write_at(&img, sub.entry + 26, &1u16.to_le_bytes());
    let e = fs_of().list(&p("sub"), 0, 10).unwrap_err().to_string();
    assert!(e.contains("invalid cluster"), "{e}");
    // A directory whose chain loops and has no end marker: bounded.
    fresh();
    let fs_clean = fs_of();
    assert_eq!(names(&*fs_clean, "sub"), ["x"]);
    let data = std::fs::read(&img).unwrap();
    let bps = u64::from(u16::from_le_bytes([data[11], data[12]]));
    let spc = u64::from(data[13]);
    let root_sectors = (u64::from(u16::from_le_bytes([data[17], data[18]])) * 32).div_ceil(bps);
    let data_start = (big.fat + 2 * big.fat_bytes) + root_sectors * bps;
    let sub_at = data_start + (u64::from(sub.first_cluster) - 2) * spc * bps;
    let mut slots = vec![0u8; (spc * bps) as usize];
    for (i, s) in slots.chunks_exact_mut(32).enumerate() {
        s[0..11].copy_from_slice(format!("F{i:07}   ").as_bytes());
        s[11] = 0x20;
    }
    write_at(&img, sub_at, &slots);
    set_fat(sub.first_cluster, sub.first_cluster);
    let e = fs_of().list(&p("sub"), 0, 10).unwrap_err();
    assert!(
        matches!(e, Error::Filesystem { .. } | Error::LimitExceeded { .. }),
        "{e}"
    );
}
