//! Verify re-hashes every chunk: one flipped byte in a pack is reported with
//! the snapshot and the chunk's digest.

#[path = "engine_support/mod.rs"]
mod support;

use std::os::unix::fs::FileExt;

use sendense::engine::pack;
use support::*;

#[test]
fn verify_names_snapshot_and_chunk_of_a_flipped_byte() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img) = (t.path().join("repo"), t.path().join("d.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_image(&img, 21, 6);
    let snap = ok(&["image", "backup", "--repo", p(&repo), "--id", "vm7", p(&img), "--no-progress"]).trim().to_string();
    assert!(ok(&["repo", "verify", p(&repo)]).contains(": ok"));

    let pack_file = files_under(&repo.join("packs"))[0].clone();
    let id = pack::id_from_key(pack_file.to_str().unwrap()).unwrap();
    let index = std::fs::read(repo.join(pack::pack_index_key(&id))).unwrap();
    let entries = pack::open_index(&id, &index, None).unwrap();
    let victim = entries[entries.len() / 2];
    let at = victim.offset + victim.stored_len as u64 / 2;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&pack_file).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();

    let err = fails(&["repo", "verify", p(&repo)]);
    assert!(err.contains(&format!("vm7/{snap}")), "names the snapshot: {err}");
    assert!(err.contains(&victim.digest.to_hex()), "names the chunk: {err}");
    assert!(err.contains(&id.to_hex()), "names the pack: {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("verify: snapshot")).count(), 1, "exactly one bad chunk: {err}");

    // Restore of the damaged snapshot fails too, naming the chunk, and leaves no output.
    let out = t.path().join("out.raw");
    let err = fails(&["image", "restore", "--repo", p(&repo), "--id", "vm7", p(&out), "--no-progress"]);
    assert!(err.contains(&victim.digest.to_hex()), "{err}");
    assert!(!out.exists());
}
