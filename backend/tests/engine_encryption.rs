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
