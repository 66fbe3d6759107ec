//! Bad input: each case is an error naming the snapshot / chunk / file, exit
//! status 1, and the repository left as it was.

#[path = "engine_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use support::*;

struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
    repo: PathBuf,
    img: PathBuf,
    snap: String,
}

fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let (repo, img) = (dir.join("repo"), dir.join("d.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_image(&img, 31, 4);
    let snap = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm", p(&img), "--no-progress"]).trim().to_string();
    Fixture { _t: t, dir, repo, img, snap }
}

fn truncate_half(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len / 2).unwrap();
}

#[test]
fn truncated_manifest() {
    let f = fixture();
    truncate_half(&f.repo.join(format!("snapshots/vm/{}.json", f.snap)));
    let before = tree(&f.repo);
    let out = f.dir.join("out.raw");
    let err = fails(&["image", "restore", "--repo", p(&f.repo), "--id", "vm", p(&out), "--no-progress"]);
    assert!(err.contains(&format!("vm/{}", f.snap)) && err.contains("manifest"), "{err}");
    let err = fails(&["image", "backup", "--repo", p(&f.repo), "--id", "vm", p(&f.img), "--no-progress"]);
    assert!(err.contains(&format!("vm/{}", f.snap)), "a backup on top of a corrupt parent says which: {err}");
    let err = fails(&["repo", "verify", p(&f.repo)]);
    assert!(err.contains(&format!("vm/{}", f.snap)), "{err}");
    let err = fails(&["repo", "gc", p(&f.repo), "--grace-seconds", "0"]);
    assert!(err.contains(&format!("vm/{}", f.snap)), "GC refuses to sweep blind: {err}");
    assert_eq!(before, tree(&f.repo));
    assert!(!out.exists());
}

#[test]
fn truncated_index() {
    let f = fixture();
    let index = files_under(&f.repo.join("indexes"))[0].clone();
    truncate_half(&index);
    let before = tree(&f.repo);
    let out = f.dir.join("out.raw");
    let err = fails(&["image", "restore", "--repo", p(&f.repo), "--id", "vm", p(&out), "--no-progress"]);
    assert!(err.contains(&format!("vm/{}", f.snap)) && err.contains("index") && err.contains("truncated"), "{err}");
    let err = fails(&["repo", "verify", p(&f.repo)]);
    assert!(err.contains(&format!("vm/{}", f.snap)), "{err}");
    // An incremental that would reuse the broken index refuses too.
    let ranges = f.dir.join("r.json");
    write_ranges(&ranges, &[(0, 65536)]);
    let err = fails(&["image", "backup", "--repo", p(&f.repo), "--id", "vm", p(&f.img), "--changed-ranges", p(&ranges), "--no-progress"]);
    assert!(err.contains(&format!("vm/{}", f.snap)), "{err}");
    assert_eq!(before, tree(&f.repo));
    assert!(!out.exists());
}

#[test]
fn missing_chunk() {
    let f = fixture();
    // Remove one pack and its index: its chunks are gone.
    let pack_file = files_under(&f.repo.join("packs"))[0].clone();
    let id = pack_file.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&pack_file).unwrap();
    let before = tree(&f.repo);
    let out = f.dir.join("out.raw");
    let err = fails(&["image", "restore", "--repo", p(&f.repo), "--id", "vm", p(&out), "--no-progress"]);
    assert!(err.contains(&format!("vm/{}", f.snap)) && err.contains("chunk") && err.contains("missing"), "{err}");
    assert!(!out.exists(), "no half-restored output is left");
    let err = fails(&["repo", "verify", p(&f.repo)]);
    assert!(err.contains(&format!("vm/{}", f.snap)) && err.contains("missing"), "{err}");
    assert_eq!(before, tree(&f.repo));
    // With the pack index gone as well, restore refuses before writing anything.
    std::fs::remove_file(f.repo.join(format!("pack-index/{}/{id}", &id[..2]))).unwrap();
    let err = fails(&["image", "restore", "--repo", p(&f.repo), "--id", "vm", p(&out), "--no-progress"]);
    assert!(err.contains("is missing from the repository"), "{err}");
    assert!(!out.exists());
}

#[test]
fn changed_ranges_beyond_image_end() {
    let f = fixture();
    let ranges = f.dir.join("r.json");
    write_ranges(&ranges, &[(0, 65536), (4 << 20, 65536)]);
    let before = tree(&f.repo);
    let err = fails(&["image", "backup", "--repo", p(&f.repo), "--id", "vm", p(&f.img), "--changed-ranges", p(&ranges), "--no-progress"]);
    assert!(err.contains(p(&f.img)) && err.contains("shorter"), "{err}");
    std::fs::write(&ranges, "[[0, 65536], [1]]").unwrap();
    let err = fails(&["image", "backup", "--repo", p(&f.repo), "--id", "vm", p(&f.img), "--changed-ranges", p(&ranges), "--no-progress"]);
    assert!(err.contains(p(&ranges)), "{err}");
    let err = fails(&["image", "backup", "--repo", p(&f.repo), "--id", "vm", p(&f.dir.join("nope.raw")), "--no-progress"]);
    assert!(err.contains("nope.raw"), "{err}");
    let err = fails(&["image", "backup", "--repo", p(&f.dir.join("not-a-repo")), "--id", "vm", p(&f.img), "--no-progress"]);
    assert!(err.contains("not-a-repo") && err.contains("not a Sendense repository"), "{err}");
    assert_eq!(before, tree(&f.repo));
}

#[test]
fn repository_not_writable() {
    let f = fixture();
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    // Root ignores permission bits: run the CLI as nobody then.
    for path in [f.dir.clone(), f.img.clone()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut dirs = vec![f.repo.clone()];
    for file in files_under(&f.repo) {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
        dirs.push(file.parent().unwrap().to_path_buf());
    }
    for d in [f.repo.join("tmp"), f.repo.join("locks")] {
        if d.exists() {
            dirs.push(d);
        }
    }
    for d in &dirs {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let before = tree(&f.repo);
    mutate(&f.img, 1, &[2]);
    let mut cmd = bin();
    cmd.args(["image", "backup", "--repo", p(&f.repo), "--id", "vm", p(&f.img), "--no-progress"]);
    if is_root {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("locks/") && err.contains("Permission denied"), "names the object it could not write: {err}");
    for d in &dirs {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(before, tree(&f.repo));
    ok(&["repo", "verify", p(&f.repo)]);
}
