//! The engine's storage trait (`engine::repository::Repository`) on every
//! backend: the same tests, instantiated by `conformance!` for a local
//! directory, S3 (a real moto server, signatures checked) and Azure Blob (a
//! real Azurite), each repository made by `sendense::repos::open_backend`
//! from its `RepoSpec`. Then what only object stores have (wrong
//! credentials, a missing bucket or container), and the server harness
//! itself (`support::object_servers`).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use sendense::engine::repository::Repository;
use sendense::engine::EngineError;
use sendense::repos::{open_backend, RepoSpec};
use support::object_servers::{Azurite, Moto, AZURITE_ACCOUNT, AZURITE_KEY};

/// A repository under test, a second one beside it (same bucket or
/// container, another prefix; a sibling directory), and what keeps their
/// server or directory alive.
struct Target {
    repo: Arc<dyn Repository>,
    sibling: Arc<dyn Repository>,
    _keep: Box<dyn std::any::Any>,
}

fn open(spec: &RepoSpec) -> Arc<dyn Repository> {
    open_backend(spec).unwrap_or_else(|e| panic!("opening {}: {e:#}", spec.describe()))
}

fn with_prefix(mut spec: RepoSpec, new: &str) -> RepoSpec {
    match &mut spec {
        RepoSpec::S3 { prefix, .. } | RepoSpec::Azure { prefix, .. } => *prefix = new.to_string(),
        RepoSpec::Local { .. } => unreachable!(),
    }
    spec
}

fn local() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let path = dir.path().join(name);
        // What `Datastore::init` makes: the local backend writes through tmp/.
        std::fs::create_dir_all(path.join("tmp")).unwrap();
        open(&RepoSpec::Local { path })
    };
    // "a" and "ab": a prefix is a folder, not the start of a name.
    let (repo, sibling) = (make("a"), make("ab"));
    Target { repo, sibling, _keep: Box::new(dir) }
}

fn s3() -> Target {
    let moto = Moto::start();
    moto.create_bucket("conformance", false);
    let spec = moto.spec("conformance");
    let repo = open(&with_prefix(spec.clone(), "team/a"));
    let sibling = open(&with_prefix(spec, "team/ab"));
    Target { repo, sibling, _keep: Box::new(moto) }
}

fn azure() -> Target {
    let azurite = Azurite::start();
    azurite.create_container("conformance");
    let spec = azurite.spec("conformance");
    let repo = open(&with_prefix(spec.clone(), "team/a"));
    let sibling = open(&with_prefix(spec, "team/ab"));
    Target { repo, sibling, _keep: Box::new(azurite) }
}

/// Deterministic bytes that do not compress or repeat.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn keys(repo: &dyn Repository, prefix: &str) -> BTreeSet<String> {
    repo.list(prefix).unwrap().into_iter().map(|o| o.key).collect()
}

/// The tests, each on one backend's `Target`.
mod check {
    use super::*;

    pub fn round_trip(t: Target) {
        let r = &*t.repo;
        let data = noise(300_000, 1);
        r.put("packs/ab/abcdef0123", &data).unwrap();
        assert_eq!(r.get("packs/ab/abcdef0123").unwrap(), data);
        r.put("config.json", br#"{"version":1}"#).unwrap();
        assert_eq!(r.get("config.json").unwrap(), br#"{"version":1}"#);
        r.put("locks/empty", b"").unwrap();
        assert_eq!(r.get("locks/empty").unwrap(), b"");
        let info = r.stat("packs/ab/abcdef0123").unwrap().expect("a stored object has a stat");
        assert_eq!(info.size, 300_000);
        assert_eq!(r.stat("locks/empty").unwrap().map(|i| i.size), Some(0));
        match r.get("packs/ab/missing") {
            Err(EngineError::NotFound { key }) => assert!(key.ends_with("packs/ab/missing"), "{key}"),
            other => panic!("a missing object must be NotFound (the engine relies on it): {:?}", other.map(|d| d.len())),
        }
        // The sibling repository sees none of it.
        assert!(matches!(t.sibling.get("config.json"), Err(EngineError::NotFound { .. })));
    }

    pub fn ranged_get(t: Target) {
        let r = &*t.repo;
        let data = noise(1 << 20, 2);
        r.put("packs/00/range", &data).unwrap();
        for (offset, len) in [(0usize, 1usize), (0, 4096), (123_457, 40_000), ((1 << 20) - 10, 10), (0, 1 << 20)] {
            assert_eq!(
                r.get_range("packs/00/range", offset as u64, len).unwrap(),
                &data[offset..offset + len],
                "range {offset}+{len}"
            );
        }
        // A range past the end is an error, not a short read.
        assert!(r.get_range("packs/00/range", (1 << 20) - 10, 20).is_err(), "range past the end");
        assert!(r.get_range("packs/00/nope", 0, 1).is_err(), "range of a missing object");
    }

    pub fn put_replaces_whole_object(t: Target) {
        let r = &*t.repo;
        r.put("snapshots/vm/one.json", &noise(100_000, 3)).unwrap();
        r.put("snapshots/vm/one.json", b"short").unwrap();
        assert_eq!(r.get("snapshots/vm/one.json").unwrap(), b"short");
        assert_eq!(r.stat("snapshots/vm/one.json").unwrap().unwrap().size, 5);
        assert_eq!(keys(r, "snapshots/"), BTreeSet::from(["snapshots/vm/one.json".to_string()]));
    }

    pub fn put_if_absent_has_one_winner(t: Target) {
        let r = &t.repo;
        assert!(r.put_if_absent("packs/cd/single", b"first").unwrap());
        assert!(!r.put_if_absent("packs/cd/single", b"second").unwrap());
        assert_eq!(r.get("packs/cd/single").unwrap(), b"first");
        for round in 0..3 {
            let key = format!("locks/gc-{round}.lock");
            let start = Arc::new(Barrier::new(16));
            let racers: Vec<_> = (0..16u8)
                .map(|i| {
                    let (r, start, key) = (r.clone(), start.clone(), key.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        r.put_if_absent(&key, &[i; 64]).map(|won| won.then_some(i))
                    })
                })
                .collect();
            let winners: Vec<u8> = racers.into_iter().filter_map(|h| h.join().unwrap().unwrap()).collect();
            assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
            assert_eq!(r.get(&key).unwrap(), [winners[0]; 64], "round {round}: the winner's bytes stay");
        }
    }

    pub fn list_paginates_and_filters(t: Target) {
        let r = &t.repo;
        // More than one page (S3 and Azure give 1,000 names a page), put by
        // 8 writers.
        const PACKS: usize = 1_050;
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in (w..PACKS).step_by(8) {
                        r.put(&format!("packs/{:02x}/{i:06}", i % 256), &i.to_le_bytes()[..(i % 8) + 1]).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        for i in 0..3 {
            r.put(&format!("pack-index/00/{i}"), b"idx").unwrap();
        }
        r.put("packsfile", b"not in packs/").unwrap();
        t.sibling.put("packs/00/sibling", b"beside").unwrap();

        let packs = r.list("packs/").unwrap();
        assert_eq!(packs.len(), PACKS, "every object under packs/, once");
        let want: BTreeSet<String> = (0..PACKS).map(|i| format!("packs/{:02x}/{i:06}", i % 256)).collect();
        assert_eq!(packs.iter().map(|o| o.key.clone()).collect::<BTreeSet<_>>(), want);
        for o in &packs {
            let i: usize = o.key.rsplit('/').next().unwrap().parse().unwrap();
            assert_eq!(o.size, (i % 8) as u64 + 1, "{}", o.key);
        }
        assert_eq!(keys(&**r, "packs/07/"), want.iter().filter(|k| k.starts_with("packs/07/")).cloned().collect());
        assert_eq!(keys(&**r, "pack-index/"), (0..3).map(|i| format!("pack-index/00/{i}")).collect());
        assert!(keys(&**r, "snapshots/").is_empty());
        let all = keys(&**r, "");
        assert_eq!(all.len(), PACKS + 4, "everything, and nothing of the sibling repository");
        assert!(all.contains("packsfile") && !all.contains("packs/00/sibling"));
        assert_eq!(keys(&*t.sibling, ""), BTreeSet::from(["packs/00/sibling".to_string()]));
    }

    pub fn delete_and_stat(t: Target) {
        let r = &*t.repo;
        assert!(r.stat("locks/backup-1.json").unwrap().is_none(), "stat of a missing object is None");
        r.delete("locks/backup-1.json").expect("deleting a missing object is Ok");
        let before = SystemTime::now() - Duration::from_secs(300);
        r.put("locks/backup-1.json", b"{}").unwrap();
        let info = r.stat("locks/backup-1.json").unwrap().unwrap();
        assert_eq!((info.key.ends_with("locks/backup-1.json"), info.size), (true, 2), "{info:?}");
        assert!(info.modified > before && info.modified < SystemTime::now() + Duration::from_secs(300), "{info:?}");
        r.delete("locks/backup-1.json").unwrap();
        assert!(r.stat("locks/backup-1.json").unwrap().is_none());
        assert!(matches!(r.get("locks/backup-1.json"), Err(EngineError::NotFound { .. })));
        r.delete("locks/backup-1.json").expect("deleting twice is Ok");
        assert!(keys(r, "locks/").is_empty());
    }

    pub fn touch(t: Target) {
        let r = &*t.repo;
        assert!(!r.touch("packs/ef/missing").unwrap(), "touching a missing object says so");
        assert!(r.stat("packs/ef/missing").unwrap().is_none(), "and does not create it");
        r.put("packs/ef/present", b"pack bytes").unwrap();
        let before = r.stat("packs/ef/present").unwrap().unwrap().modified;
        std::thread::sleep(Duration::from_millis(1_100));
        assert!(r.touch("packs/ef/present").unwrap());
        assert_eq!(r.get("packs/ef/present").unwrap(), b"pack bytes");
        let after = r.stat("packs/ef/present").unwrap().unwrap().modified;
        assert!(after > before, "touch moves the modification time: {before:?} -> {after:?}");
    }
}

/// One test function per check, on the backend `$make` opens.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            #[test]
            fn round_trip() {
                check::round_trip($make());
            }
            #[test]
            fn ranged_get() {
                check::ranged_get($make());
            }
            #[test]
            fn put_replaces_whole_object() {
                check::put_replaces_whole_object($make());
            }
            #[test]
            fn put_if_absent_has_one_winner() {
                check::put_if_absent_has_one_winner($make());
            }
            #[test]
            fn list_paginates_and_filters() {
                check::list_paginates_and_filters($make());
            }
            #[test]
            fn delete_and_stat() {
                check::delete_and_stat($make());
            }
            #[test]
            fn touch() {
                check::touch($make());
            }
        }
    };
}

conformance!(local, super::local);
conformance!(s3, super::s3);
conformance!(azure, super::azure);

/// `repo`'s first request fails with a message naming the repository and
/// one of `causes` (case-insensitive).
fn assert_refused(spec: &RepoSpec, causes: &[&str]) {
    let repo = open(spec);
    let err = repo.put("config.json", b"{}").expect_err("the write must be refused");
    let msg = err.to_string();
    let lower = msg.to_lowercase();
    assert!(msg.contains(&spec.describe()), "the message names the repository ({}): {msg}", spec.describe());
    assert!(causes.iter().any(|c| lower.contains(&c.to_lowercase())), "the message gives the cause ({causes:?}): {msg}");
    let err = repo.list("").expect_err("the listing must be refused");
    assert!(err.to_string().contains(&spec.describe()), "{err}");
}

#[test]
fn s3_wrong_credentials_are_named() {
    let moto = Moto::start();
    moto.create_bucket("creds", false);
    let mut wrong_secret = moto.spec("creds");
    if let RepoSpec::S3 { secret_access_key, .. } = &mut wrong_secret {
        *secret_access_key = "not-the-secret".into();
    }
    assert_refused(&wrong_secret, &["SignatureDoesNotMatch", "signature"]);
    let mut unknown_key = moto.spec("creds");
    if let RepoSpec::S3 { access_key_id, .. } = &mut unknown_key {
        *access_key_id = "AKIAUNKNOWNKEY000000".into();
    }
    assert_refused(&unknown_key, &["InvalidAccessKeyId", "access key"]);
    // Nothing was written by the refused requests.
    assert!(open(&moto.spec("creds")).list("").unwrap().is_empty());
}

#[test]
fn s3_missing_bucket_is_named() {
    let moto = Moto::start();
    assert_refused(&moto.spec("no-such-bucket"), &["NoSuchBucket", "bucket"]);
}

#[test]
fn azure_wrong_key_is_named() {
    let azurite = Azurite::start();
    azurite.create_container("creds");
    // A valid base64 key of the right length, not the account's.
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, noise(64, 9));
    let mut spec = azurite.spec("creds");
    if let RepoSpec::Azure { access_key, .. } = &mut spec {
        *access_key = Some(wrong);
    }
    assert_refused(&spec, &["AuthorizationFailure", "authoriz", "authenticat", "403"]);
    assert!(open(&azurite.spec("creds")).list("").unwrap().is_empty());
}

#[test]
fn azure_missing_container_is_named() {
    let azurite = Azurite::start();
    assert_refused(&azurite.spec("no-such-container"), &["ContainerNotFound", "container"]);
}

/// The process with this pid is gone (reaped) and nothing answers on `port`.
fn assert_gone(what: &str, pid: u32, port: u16) {
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{what} (pid {pid}) still runs after drop");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{what}'s port {port} still answers after drop");
}

#[test]
fn moto_harness_checks_signatures_and_object_lock() {
    let moto = Moto::start();
    let (pid, port) = (moto.server().pid(), moto.server().port());
    moto.create_bucket("locked", true);
    moto.create_bucket("plain", false);
    assert_eq!(moto.buckets(), ["locked", "plain"]);
    assert!(moto.object_lock_enabled("locked"), "boto3 sees Object Lock on the bucket");
    assert!(!moto.object_lock_enabled("plain"));
    let (id, _) = moto.access_key();
    let refused = moto.check_credentials(id, "wrong-secret").expect_err("a wrong secret is refused");
    assert_eq!((refused.error.as_str(), refused.status), ("SignatureDoesNotMatch", 403));
    let refused = moto.check_credentials("AKIAUNKNOWNKEY000000", "x").expect_err("an unknown key is refused");
    assert_eq!(refused.error, "InvalidAccessKeyId");
    // A version under COMPLIANCE retention cannot be deleted by version id;
    // one without retention can.
    let locked = moto.put_object("locked", "packs/00/kept", 3600).expect("a versioned bucket gives version ids");
    let refused = moto.delete_object_version("locked", "packs/00/kept", &locked).expect_err("retention holds");
    assert_eq!((refused.error.as_str(), refused.status), ("AccessDenied", 403));
    let free = moto.put_object("locked", "packs/00/free", 0).unwrap();
    moto.delete_object_version("locked", "packs/00/free", &free).unwrap();
    assert!(moto.versions("locked", "packs/00/free").is_empty());
    let kept = moto.versions("locked", "packs/00/kept");
    assert_eq!((kept.len(), kept[0].version_id.as_str()), (1, locked.as_str()), "{kept:?}");
    let requests = moto.requests();
    assert_eq!(requests[..3], ["POST / 200", "POST / 200", "POST / 200"], "the three free IAM requests first: {requests:?}");
    assert!(requests.contains(&"PUT /locked/packs/00/kept 200".to_string()), "{requests:?}");
    assert!(requests.contains(&"GET / 403".to_string()), "the refused listing is logged: {requests:?}");
    drop(moto);
    assert_gone("moto", pid, port);
}

#[test]
fn azurite_harness_checks_the_account_key() {
    let azurite = Azurite::start();
    let (pid, port) = (azurite.server().pid(), azurite.server().port());
    assert_eq!(azurite.endpoint(), format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"));
    azurite.create_container("first");
    azurite.create_container("second");
    assert_eq!(azurite.containers(), ["first", "second"]);
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, noise(64, 9));
    assert_eq!(azurite.request("GET", "/?comp=list", &wrong).status, 403, "a wrong key is refused");
    assert_eq!(azurite.request("GET", "/?comp=list", AZURITE_KEY).status, 200);
    drop(azurite);
    assert_gone("Azurite", pid, port);
}

#[test]
fn servers_are_killed_when_a_test_panics() {
    let started = std::sync::Mutex::new(Vec::new());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let moto = Moto::start();
        let azurite = Azurite::start();
        started.lock().unwrap().push(("moto", moto.server().pid(), moto.server().port()));
        started.lock().unwrap().push(("Azurite", azurite.server().pid(), azurite.server().port()));
        panic!("a failing test");
    }));
    assert!(outcome.is_err());
    let started = started.into_inner().unwrap();
    assert_eq!(started.len(), 2);
    for (what, pid, port) in started {
        assert_gone(what, pid, port);
    }
}
