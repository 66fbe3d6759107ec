//! Building real images with the real tools, in a temporary directory. A
//! missing tool fails the test and names the Debian package to install.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The full path of `tool`, or a panic naming the Debian package.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is needed by this test: install the Debian package `{package}`");
}

pub fn run(name: &str, package: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) {
    let exe = tool(name, package);
    let out = Command::new(&exe)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic pseudo-random bytes (xorshift), so content checks are exact.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The tree every filesystem gets: a small text file, an empty file, a
/// 300 000-byte file (several read chunks) and a file of exactly two
/// 64 KiB read chunks two levels down, and, when
/// `symlinks`, a relative and an absolute link plus a link to a directory.
pub fn make_tree(root: &Path, symlinks: bool) {
    fs::create_dir_all(root.join("nested/deeper")).unwrap();
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("nested/deeper/data.bin"), pattern(300_000, 7)).unwrap();
    fs::write(
        root.join("nested/deeper/two-chunks.bin"),
        pattern(128 * 1024, 3),
    )
    .unwrap();
    fs::write(root.join("docs/readme.md"), b"# readme\n").unwrap();
    if symlinks {
        std::os::unix::fs::symlink("nested/deeper/data.bin", root.join("rel-link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("nested", root.join("dir-link")).unwrap();
    }
}

fn sized(image: &Path, size: u64) {
    File::create(image).unwrap().set_len(size).unwrap();
}

pub fn ext4(image: &Path, size: u64, tree: &Path) {
    sized(image, size);
    run(
        "mkfs.ext4",
        "e2fsprogs",
        &[&"-q", &"-F", &"-E", &"root_owner=0:0", &"-d", &tree, &image],
    );
}

/// FAT of the given bits (12/16/32) with the tree copied by mcopy.
pub fn fat(image: &Path, size: u64, bits: u32, tree: &Path) {
    sized(image, size);
    let bits = bits.to_string();
    if bits == "32" {
        run(
            "mkfs.vfat",
            "dosfstools",
            &[&"-F", &bits, &"-s", &"1", &image],
        );
    } else {
        run("mkfs.vfat", "dosfstools", &[&"-F", &bits, &image]);
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"-s", &"-i", &image];
    for e in &entries {
        args.push(e);
    }
    args.push(&"::/");
    run("mcopy", "mtools", &args);
}

/// NTFS with the tree applied from a WIM (wimlib writes NTFS directly).
pub fn ntfs(image: &Path, size: u64, tree: &Path, scratch: &Path) {
    sized(image, size);
    run("mkntfs", "ntfs-3g", &[&"-Q", &"-F", &"-q", &image]);
    let wim = scratch.join("tree.wim");
    run(
        "wimcapture",
        "wimtools",
        &[&tree, &wim, &"--compress=none", &"--no-acls"],
    );
    run("wimapply", "wimtools", &[&wim, &"1", &image]);
    let _ = fs::remove_file(wim);
}

/// Copies `part` into `disk` at byte `offset`.
pub fn place(disk: &Path, offset: u64, part: &Path) {
    let data = fs::read(part).unwrap();
    let f = fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.write_all_at(&data, offset).unwrap();
}

pub const MIB: u64 = 1 << 20;

/// One MBR slot: (type byte, first sector, sector count).
pub type MbrSlot = (u8, u32, u32);

fn mbr_sector(slots: &[MbrSlot]) -> [u8; 512] {
    let mut s = [0u8; 512];
    for (i, (ty, lba, count)) in slots.iter().enumerate() {
        let e = &mut s[446 + 16 * i..446 + 16 * (i + 1)];
        e[4] = *ty;
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        e[12..16].copy_from_slice(&count.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

/// Writes an MBR (up to 4 slots) at sector 0 of `disk`.
pub fn write_mbr(disk: &Path, slots: &[MbrSlot]) {
    write_at(disk, 0, &mbr_sector(slots));
}

/// Writes an extended boot record at `lba`: a logical partition at
/// `rel_start` sectors from the EBR, and a link to the next EBR
/// (`next_rel`, relative to the extended partition's start).
pub fn write_ebr(
    disk: &Path,
    lba: u64,
    ty: u8,
    rel_start: u32,
    count: u32,
    next: Option<(u32, u32)>,
) {
    let mut slots = vec![(ty, rel_start, count)];
    if let Some((rel, len)) = next {
        slots.push((0x05, rel, len));
    }
    write_at(disk, lba * 512, &mbr_sector(&slots));
}

pub fn write_at(disk: &Path, offset: u64, data: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.write_all_at(data, offset).unwrap();
}

fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    g[8..16].copy_from_slice(&b[8..16]);
    g
}

/// One GPT partition: (type GUID text, first LBA, last LBA, name).
pub type GptPart<'a> = (&'a str, u64, u64, &'a str);

/// Writes a protective MBR, primary and backup GPT headers and entry arrays
/// (128 entries of 128 bytes) on a disk of `size` bytes.
pub fn write_gpt(disk: &Path, size: u64, parts: &[GptPart]) {
    let sectors = size / 512;
    write_mbr(
        disk,
        &[(0xEE, 1, (sectors - 1).min(u32::MAX as u64) as u32)],
    );
    let mut array = vec![0u8; 128 * 128];
    for (i, (ty, first, last, name)) in parts.iter().enumerate() {
        let e = &mut array[i * 128..(i + 1) * 128];
        e[0..16].copy_from_slice(&guid_bytes(ty));
        e[16..32].copy_from_slice(&guid_bytes("01234567-89ab-cdef-0123-456789abcdef"));
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (k, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * k..58 + 2 * k].copy_from_slice(&u.to_le_bytes());
        }
    }
    let array_crc = crc32fast::hash(&array);
    let header = |my: u64, alt: u64, entries: u64| {
        let mut h = [0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(sectors - 34).to_le_bytes());
        h[56..72].copy_from_slice(&guid_bytes("fedcba98-7654-3210-fedc-ba9876543210"));
        h[72..80].copy_from_slice(&entries.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    write_at(disk, 512, &header(1, sectors - 1, 2));
    write_at(disk, 1024, &array);
    write_at(disk, (sectors - 33) * 512, &array);
    write_at(
        disk,
        (sectors - 1) * 512,
        &header(sectors - 1, 1, sectors - 33),
    );
}

/// Creates an empty disk file of `size` bytes.
pub fn blank(disk: &Path, size: u64) {
    sized(disk, size);
}

pub fn write_file(path: &Path, data: &[u8]) {
    File::create(path).unwrap().write_all(data).unwrap();
}
