//! Runs the fuzz target's exercise over every committed fuzz input: the
//! seeds (`fuzz/seeds/`) and each crash found so far (`fuzz/regressions/`).
//! Every input must finish (Ok or Err inside) within a time bound and
//! without a panic in any thread, except a panic inside a third-party
//! parser on a guest-fs parser thread, which guest-fs contains (the caller
//! gets an error; see `guest_fs::fuzzing::is_contained_parser_panic`).
//!
//! `write_fuzz_seeds` (ignored; run by scripts/fuzz-guest-fs.sh) rebuilds
//! the seeds with the real tools.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Per input; generous for a debug build on a loaded 2-core machine.
const TIME_BOUND: Duration = Duration::from_secs(60);

/// Panics outside third-party parser threads (failures).
static PANICS: AtomicUsize = AtomicUsize::new(0);
/// Panics inside a third-party parser on a guest-fs thread (contained).
static CONTAINED: AtomicUsize = AtomicUsize::new(0);

fn inputs() -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let dir = fuzz.join(dir);
        let list = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in list {
            let path = e.unwrap().path();
            if path.is_file()
                && path
                    .file_name()
                    .is_some_and(|n| n != ".gitkeep" && n != "README.md")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn fuzz_inputs_never_panic_or_hang() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if guest_fs::fuzzing::is_contained_parser_panic(info) {
            CONTAINED.fetch_add(1, Ordering::SeqCst);
            eprintln!("contained third-party parser panic: {info}");
        } else {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default_hook(info);
        }
    }));
    let files = inputs();
    assert!(
        files.iter().any(|f| f.to_string_lossy().contains("seeds")),
        "no seeds found in guest-fs/fuzz/seeds"
    );
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let before = PANICS.load(Ordering::SeqCst);
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        let name = file.display().to_string();
        std::thread::spawn(move || {
            let summary = guest_fs::fuzzing::exercise(data);
            let _ = tx.send(summary);
        });
        match rx.recv_timeout(TIME_BOUND) {
            Ok(summary) => println!(
                "{name}: {:.2}s {summary:?}",
                started.elapsed().as_secs_f64()
            ),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{name}: no result within {TIME_BOUND:?} (hang)")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: the exercise panicked"),
        }
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            before,
            "{name}: a panic happened (see above)"
        );
    }
}

/// Builds the seed images into `$GUEST_FS_SEEDS` (default `fuzz/seeds`).
#[test]
#[ignore = "generator, run by scripts/fuzz-guest-fs.sh"]
fn write_fuzz_seeds() {
    let out = std::env::var_os("GUEST_FS_SEEDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds"));
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
    std::fs::write(tree.join("hello.txt"), b"hello world\n").unwrap();
    std::fs::write(tree.join("a/b/c/data.bin"), pattern(5000, 3)).unwrap();
    for i in 0..40 {
        std::fs::write(tree.join(format!("a/file-{i:02}")), i.to_string()).unwrap();
    }
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    for e in ["hello.txt", "a"] {
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(tree.join(e))
            .arg(&plain)
            .status();
    }
    std::os::unix::fs::symlink("a/b", tree.join("link")).unwrap();

    let ext = out.join("ext4.img");
    let _ = std::fs::remove_file(&ext);
    run(
        "mkfs.ext4",
        "e2fsprogs",
        &[
            &"-q",
            &"-F",
            &"-N",
            &"64",
            &"-E",
            &"root_owner=0:0",
            &"-d",
            &tree,
            &{
                blank(&ext, 256 * 1024);
                ext.clone()
            },
        ],
    );
    let fat12 = out.join("fat12.img");
    fat(&fat12, 128 * 1024, 12, &plain);
    let ntfs_img = out.join("ntfs.img");
    ntfs(&ntfs_img, MIB + 4096, &plain, dir.path());

    // MBR: the FAT12 image (128 KiB) as partition 1 at sector 64.
    let mbr = out.join("mbr-fat12.img");
    blank(&mbr, 64 * 512 + 128 * 1024);
    write_mbr(&mbr, &[(0x01, 64, 256)]);
    place(&mbr, 64 * 512, &fat12);
    // GPT: the FAT12 image as partition 1 at sector 64, room for the backup.
    let gpt = out.join("gpt-fat12.img");
    let size = 64 * 512 + 128 * 1024 + 34 * 512;
    blank(&gpt, size);
    write_gpt(
        &gpt,
        size,
        &[("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 64, 64 + 255, "data")],
    );
    place(&gpt, 64 * 512, &fat12);
    let total: u64 = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!("seeds in {}: {total} bytes", out.display());
}
