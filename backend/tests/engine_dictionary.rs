//! The chunk dictionary: trained by the first backup with enough compressible
//! chunks, used for the chunks after it, restored and verified through it; a
//! damaged dictionary is reported by name and never silently decoded.

#[path = "engine_support/mod.rs"]
mod support;

use std::os::unix::fs::FileExt;
use std::path::Path;

use support::*;

/// `mib` MiB of log-like text over a 400-word vocabulary: what a dictionary is for.
fn make_text_image(path: &Path, seed: u64, mib: usize) {
    let words: Vec<String> = (0..400u64)
        .map(|w| (0..5 + w % 7).map(|k| (b'a' + ((w * 31 + k * 17 + w * k) % 26) as u8) as char).collect())
        .collect();
    let mut x = seed;
    let mut next = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 20
    };
    let mut text = String::new();
    while text.len() < mib << 20 {
        text += &format!("2024-03-01T10:{:02}:{:02}Z", next() % 60, next() % 60);
        for _ in 0..6 {
            text += " ";
            text += &words[(next() % 400) as usize];
        }
        text += &format!(" id={}\n", next() % 100000);
    }
    text.truncate(mib << 20);
    std::fs::write(path, text).unwrap();
}

#[test]
fn dictionary_is_trained_used_and_checked() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, out) = (t.path().join("repo"), t.path().join("d.raw"), t.path().join("out.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_text_image(&img, 5, 8);
    ok(&["image", "backup", "--repo", p(&repo), "--id", "logs", p(&img), "--no-progress"]);
    let dict = repo.join("dicts/chunks");
    assert!(dict.exists(), "128 text chunks train a dictionary");
    let stats: serde_json::Value = serde_json::from_str(&ok(&["repo", "stats", p(&repo), "--json"])).unwrap();
    assert!(stats["compression_ratio"].as_f64().unwrap() > 2.0, "{stats}");

    // Another image compressed with it restores and verifies.
    let img2 = t.path().join("d2.raw");
    make_text_image(&img2, 6, 4);
    ok(&["image", "backup", "--repo", p(&repo), "--id", "logs2", p(&img2), "--no-progress"]);
    ok(&["image", "restore", "--repo", p(&repo), "--id", "logs2", p(&out), "--no-progress"]);
    assert!(same_file(&out, &img2));
    ok(&["image", "restore", "--repo", p(&repo), "--id", "logs", p(&out), "--no-progress"]);
    assert!(same_file(&out, &img));
    assert!(ok(&["repo", "verify", p(&repo)]).contains(": ok"));
    // GC leaves the dictionary alone.
    ok(&["repo", "gc", p(&repo), "--grace-seconds", "0"]);
    assert!(dict.exists());

    // A flipped byte in the dictionary: verify and restore name it, no output is left.
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&dict).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 40).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], 40).unwrap();
    let err = fails(&["repo", "verify", p(&repo)]);
    assert!(err.contains("dicts/chunks") && err.contains("logs2/"), "{err}");
    std::fs::remove_file(&out).unwrap();
    let err = fails(&["image", "restore", "--repo", p(&repo), "--id", "logs2", p(&out), "--no-progress"]);
    assert!(err.contains("dicts/chunks"), "{err}");
    assert!(!out.exists());
    // A backup does not build on a damaged dictionary either, nor replaces a
    // missing one that stored chunks need.
    let before = tree(&repo);
    let err = fails(&["image", "backup", "--repo", p(&repo), "--id", "logs3", p(&img2), "--no-progress"]);
    assert!(err.contains("dicts/chunks"), "{err}");
    std::fs::remove_file(&dict).unwrap();
    let err = fails(&["image", "backup", "--repo", p(&repo), "--id", "logs3", p(&img2), "--no-progress"]);
    assert!(err.contains("dicts/chunks") && err.contains("missing"), "{err}");
    assert!(!dict.exists());
    let mut after = tree(&repo);
    after.insert("dicts/chunks".into(), before[std::path::Path::new("dicts/chunks")].clone());
    assert_eq!(before, after, "refused backups leave the repository as it was");
}
