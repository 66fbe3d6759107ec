//! Encrypted repositories: round trip, key never stored in clear, wrong or
//! missing key refused with the repository left as it was.

#[path = "engine_support/mod.rs"]
mod support;

use support::*;

#[test]
fn encrypted_round_trip_and_key_errors() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img, out) = (t.path().join("repo"), t.path().join("d.raw"), t.path().join("out.raw"));
    let key = t.path().join("repo.key");
    ok(&["repo", "init", p(&repo), "--encrypt", p(&key)]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    make_image(&img, 11, 6);
    ok(&["image", "backup", "--repo", p(&repo), "--id", "e", p(&img), "--key", p(&key), "--no-progress"]);

    // The master key and the plain text never appear in the repository.
    let key_json: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    let master = key_json["master_key"].as_str().unwrap().to_string();
    // Extent 2 is text for seed 11 ((2 + 11) % 3 == 1).
    let text_sample = &std::fs::read(&img).unwrap()[(2 << 20) + 1000..(2 << 20) + 1064];
    for f in files_under(&repo) {
        let data = std::fs::read(&f).unwrap();
        assert!(!String::from_utf8_lossy(&data).contains(&master), "{} holds the key", f.display());
        assert!(!data.windows(64).any(|w| w == text_sample), "{} holds plain image bytes", f.display());
    }

    ok(&["image", "restore", "--repo", p(&repo), "--id", "e", p(&out), "--key", p(&key), "--no-progress"]);
    assert!(same_file(&out, &img));
    ok(&["repo", "verify", p(&repo), "--key", p(&key)]);
    // The key also comes from the environment.
    let st = bin().args(["repo", "verify", p(&repo)]).env("SENDENSE_KEY_FILE", &key).status().unwrap();
    assert!(st.success());

    let before = tree(&repo);
    let err = fails(&["image", "backup", "--repo", p(&repo), "--id", "e", p(&img), "--no-progress"]);
    assert!(err.contains("encrypted") && err.contains("--key"), "{err}");
    let err = fails(&["image", "restore", "--repo", p(&repo), "--id", "e", p(&out), "--no-progress"]);
    assert!(err.contains("encrypted"), "{err}");

    let other_key = t.path().join("other.key");
    let other_repo = t.path().join("other");
    ok(&["repo", "init", p(&other_repo), "--encrypt", p(&other_key)]);
    let err = fails(&["image", "restore", "--repo", p(&repo), "--id", "e", p(&out), "--key", p(&other_key), "--no-progress"]);
    assert!(err.contains("other.key") && err.contains("does not belong"), "{err}");
    let err = fails(&["image", "backup", "--repo", p(&repo), "--id", "e", p(&img), "--key", p(&other_key), "--no-progress"]);
    assert!(err.contains("does not belong"), "{err}");
    let err = fails(&["repo", "verify", p(&repo), "--key", p(&t.path().join("missing.key"))]);
    assert!(err.contains("missing.key"), "{err}");
    assert_eq!(before, tree(&repo), "refused commands leave the repository as it was");

    // A key file must not be created inside the repository, nor overwrite a file.
    let err = fails(&["repo", "init", p(&t.path().join("r2")), "--encrypt", p(&t.path().join("r2/k"))]);
    assert!(err.contains("inside the repository"), "{err}");
    let err = fails(&["repo", "init", p(&t.path().join("r3")), "--encrypt", p(&key)]);
    assert!(err.contains("repo.key"), "{err}");
}

/// Metadata of an encrypted repository is encrypted too: no fixed index, pack
/// index, manifest or dictionary shows a chunk digest, the snapshot name or a
/// disk name in clear, although their decrypted contents hold them (checked
/// here through the library, so the scan cannot pass vacuously). Commands that
/// read metadata need the key; a manifest moved to another name is refused.
#[test]
fn encrypted_metadata_shows_no_digest_or_name() {
    use sendense::engine::crypto::CryptConfig;
    use sendense::engine::digest::Hasher;
    use sendense::engine::sealed::{self, Kind};
    use sendense::engine::{fixed_index, manifest, pack};

    let t = tempfile::tempdir().unwrap();
    let (repo, img, out) = (t.path().join("repo"), t.path().join("d.raw"), t.path().join("out.raw"));
    let key = t.path().join("repo.key");
    let name = "payroll-db-vm";
    ok(&["repo", "init", p(&repo), "--encrypt", p(&key)]);
    make_image(&img, 11, 6);
    let snap = ok(&["image", "backup", "--repo", p(&repo), "--id", name, p(&img), "--key", p(&key), "--no-progress"])
        .trim()
        .to_string();

    // Digests of every non-zero chunk of the image, as the repository computes them.
    let crypt = CryptConfig::load_key_file(&key).unwrap();
    let hasher = Hasher::keyed(crypt.id_key());
    let image = std::fs::read(&img).unwrap();
    let digests: Vec<[u8; 32]> =
        image.chunks(65536).filter(|c| c.iter().any(|&b| b != 0)).map(|c| hasher.digest(c).0).collect();
    assert!(digests.len() >= 48, "{} non-zero chunks", digests.len());
    let hexes: Vec<String> = digests.iter().map(hex::encode).collect();
    let leaks = |data: &[u8]| -> Vec<String> {
        let mut found = Vec::new();
        for (d, h) in digests.iter().zip(&hexes) {
            if data.windows(32).any(|w| w == d) {
                found.push(format!("digest {h}"));
            }
            if data.windows(64).any(|w| w == h.as_bytes()) {
                found.push(format!("hex digest {h}"));
            }
        }
        for word in [name.as_bytes(), b"disk0", b"chunks_new", snap.as_bytes()] {
            if data.windows(word.len()).any(|w| w == word) {
                found.push(format!("'{}'", String::from_utf8_lossy(word)));
            }
        }
        found
    };

    let mkey = manifest::manifest_key(name, &snap);
    let mut checked = [0usize; 3];
    for f in files_under(&repo) {
        let rel = f.strip_prefix(&repo).unwrap().to_str().unwrap().to_string();
        let stored = std::fs::read(&f).unwrap();
        if rel.starts_with(pack::PACK_PREFIX) {
            continue; // encrypted chunks: the test above looks for plain image bytes
        }
        // Stored bytes first: a plain object fails here, naming what it shows.
        assert_eq!(leaks(&stored), Vec::<String>::new(), "{rel} stores metadata in clear");
        let plain = if rel.starts_with(fixed_index::INDEX_PREFIX) {
            checked[0] += 1;
            sealed::open(Kind::FixedIndex, &stored, b"", Some(&crypt)).unwrap()
        } else if rel.starts_with(pack::PACK_INDEX_PREFIX) {
            checked[1] += 1;
            let id = pack::id_from_key(&rel).unwrap();
            sealed::open(Kind::PackIndex, &stored, &id.0, Some(&crypt)).unwrap()
        } else if rel == mkey {
            checked[2] += 1;
            sealed::open(Kind::Manifest, &stored, mkey.as_bytes(), Some(&crypt)).unwrap()
        } else {
            continue; // dictionary, config, locks: checked above
        };
        assert!(!leaks(&plain).is_empty(), "{rel}: its decrypted content names digests or the snapshot");
    }
    assert_eq!(checked[0], 1, "one fixed index");
    assert!(checked[1] >= 1, "pack indexes");
    assert_eq!(checked[2], 1, "one manifest");

    // Reading metadata needs the key now; with it, everything works.
    for args in [&["repo", "gc", p(&repo)][..], &["repo", "stats", p(&repo)], &["repo", "snapshots", p(&repo)]] {
        let err = fails(args);
        assert!(err.contains("encrypted") && err.contains("--key"), "{err}");
    }
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["repo", "stats", p(&repo), "--json", "--key", p(&key)])).unwrap();
    assert_eq!(stats["snapshots"], 1);
    ok(&["repo", "gc", p(&repo), "--key", p(&key), "--grace-seconds", "0"]);
    // An incremental decrypts its parent's index.
    let ranges = t.path().join("r.json");
    write_ranges(&ranges, &mutate(&img, 3, &[1, 40]));
    ok(&["image", "backup", "--repo", p(&repo), "--id", name, p(&img), "--changed-ranges", p(&ranges), "--key", p(&key), "--no-progress"]);
    ok(&["image", "restore", "--repo", p(&repo), "--id", name, p(&out), "--key", p(&key), "--no-progress"]);
    assert!(same_file(&out, &img));
    ok(&["repo", "verify", p(&repo), "--key", p(&key)]);

    // A manifest copied under another snapshot id does not authenticate.
    let fake = repo.join(manifest::manifest_key(name, "20990101T000000.000Z-ffff"));
    std::fs::copy(repo.join(&mkey), &fake).unwrap();
    let err = fails(&["image", "restore", "--repo", p(&repo), "--id", name, "--snapshot", "20990101T000000.000Z-ffff", p(&out), "--key", p(&key), "--no-progress"]);
    assert!(err.contains("20990101T000000.000Z-ffff") && err.contains("authentication"), "{err}");
}
