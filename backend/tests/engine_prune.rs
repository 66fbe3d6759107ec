//! Retention rules and immutability through the CLI.

#[path = "engine_support/mod.rs"]
mod support;

use support::*;

#[test]
fn prune_keep_last_and_immutability_refusal() {
    let t = tempfile::tempdir().unwrap();
    let (repo, img) = (t.path().join("repo"), t.path().join("d.raw"));
    ok(&["repo", "init", p(&repo)]);
    make_image(&img, 41, 3);
    let mut ids = Vec::new();
    for i in 0..5 {
        mutate(&img, 100 + i, &[i]);
        let mut args = vec!["image", "backup", "--repo", p(&repo), "--id", "vm", p(&img), "--no-progress"];
        if i == 1 {
            args.extend(["--immutable-days", "7"]);
        }
        ids.push(ok(&args).trim().to_string());
    }
    make_image(&t.path().join("o.raw"), 42, 2);
    ok(&["image", "backup", "--repo", p(&repo), "--id", "other", p(&t.path().join("o.raw")), "--no-progress"]);

    // Immutable: cannot be deleted.
    let err = fails(&["repo", "forget", p(&repo), "--id", "vm", "--snapshot", &ids[1]]);
    assert!(err.contains(&format!("vm/{}", ids[1])) && err.contains("immutable until"), "{err}");
    // Nothing happens without a rule.
    let err = fails(&["repo", "prune", p(&repo)]);
    assert!(err.contains("--keep"), "{err}");
    // Dry run changes nothing.
    let out = ok(&["repo", "prune", p(&repo), "--id", "vm", "--keep-last", "2", "--dry-run"]);
    assert_eq!(out.matches("would remove").count(), 2, "{out}");
    assert_eq!(snapshots(&repo, "vm").len(), 5);

    let out = ok(&["repo", "prune", p(&repo), "--keep-last", "2"]);
    assert!(out.contains(&format!("keep (immutable) vm/{}", ids[1])), "{out}");
    assert_eq!(snapshots(&repo, "vm"), vec![ids[1].clone(), ids[3].clone(), ids[4].clone()]);
    assert_eq!(snapshots(&repo, "other").len(), 1, "rules apply per name");

    // All five were taken today: keep-daily 1 keeps only the newest, plus the immutable one.
    ok(&["repo", "prune", p(&repo), "--id", "vm", "--keep-daily", "1"]);
    assert_eq!(snapshots(&repo, "vm"), vec![ids[1].clone(), ids[4].clone()]);
    ok(&["repo", "gc", p(&repo), "--grace-seconds", "0"]);
    ok(&["repo", "verify", p(&repo)]);
    let o = t.path().join("r.raw");
    ok(&["image", "restore", "--repo", p(&repo), "--id", "vm", "--snapshot", &ids[1], p(&o), "--no-progress"]);
}
