//! Helpers shared by the `engine_*` integration tests (included with
//! `#[path]`): run the real `sendense` binary, make small test images.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../support/test_cache.rs"]
pub mod test_cache;

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sendense"));
    c.env_remove("SENDENSE_KEY_FILE");
    c
}

fn show(args: &[&str], out: &Output) -> String {
    format!(
        "sendense {}\nstatus: {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run, expect success, return stdout.
pub fn ok(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("run sendense");
    assert!(out.status.success(), "expected success: {}", show(args, &out));
    String::from_utf8(out.stdout).unwrap()
}

/// Run, expect failure (exit 1), return stderr.
pub fn fails(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("run sendense");
    assert_eq!(out.status.code(), Some(1), "expected exit 1: {}", show(args, &out));
    String::from_utf8(out.stderr).unwrap()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut out = vec![0u8; n];
    blake3::Hasher::new_keyed(&key).finalize_xof().fill(&mut out);
    out
}

/// A `mib` MiB image of 1 MiB extents cycling hole / text / random (seeded):
/// like the benchmark's mkimage.py, small.
pub fn make_image(path: &Path, seed: u64, mib: usize) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len((mib as u64) << 20).unwrap();
    for i in 0..mib {
        let off = (i as u64) << 20;
        match (i as u64 + seed) % 3 {
            0 => {}
            1 => {
                let mut text = Vec::with_capacity(1 << 20);
                let mut n = seed * 1_000_003 + i as u64;
                while text.len() < 1 << 20 {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    text.extend_from_slice(
                        format!("2024-03-01T10:00:{:02} node-{:02} app[{}]: GET /items/{} 200\n", n % 60, n % 24, n % 997, n >> 40)
                            .as_bytes(),
                    );
                }
                text.truncate(1 << 20);
                f.write_all_at(&text, off).unwrap();
            }
            _ => f.write_all_at(&random_bytes(seed * 7919 + i as u64, 1 << 20), off).unwrap(),
        }
    }
}

/// A fully random (incompressible, unique) image.
pub fn make_random_image(path: &Path, seed: u64, mib: usize) {
    let f = std::fs::File::create(path).unwrap();
    for i in 0..mib {
        f.write_all_at(&random_bytes(seed << 20 | i as u64, 1 << 20), (i as u64) << 20).unwrap();
    }
}

/// Overwrite 64 KiB blocks with new random data; returns the changed ranges.
pub fn mutate(path: &Path, seed: u64, blocks: &[u64]) -> Vec<(u64, u64)> {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut ranges = Vec::new();
    for (k, &b) in blocks.iter().enumerate() {
        f.write_all_at(&random_bytes(seed * 31 + k as u64 + 1_000_000, 65536), b * 65536).unwrap();
        ranges.push((b * 65536, 65536));
    }
    ranges
}

pub fn write_ranges(path: &Path, ranges: &[(u64, u64)]) {
    std::fs::write(path, serde_json::to_vec(ranges).unwrap()).unwrap();
}

/// Every file in a tree with its size and content hash.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                let data = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), (data.len() as u64, blake3::hash(&data).to_hex().to_string()));
            }
        }
    }
    out
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    tree(dir).into_keys().map(|k| dir.join(k)).collect()
}

/// Snapshot ids of `name`, oldest first.
pub fn snapshots(repo: &Path, name: &str) -> Vec<String> {
    ok(&["repo", "snapshots", p(repo), "--id", name])
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// Allocated bytes of a file (st_blocks × 512).
pub fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}
