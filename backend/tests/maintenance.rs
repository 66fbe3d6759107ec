//! The server maintains what it stores, through the real router and job
//! runner on real KVM host directories and a real repository:
//! verify finds a restore point whose pack was damaged on disk, marks it
//! corrupt with the reason, raises an alert and leaves the others verified;
//! prune applies a flow's retention and GC then gives the space back; the
//! maintenance schedules validate, show their next runs and queue jobs; the
//! catalog prunes old samples, logs, sessions and audit rows; repository
//! statistics are read from the cache (timed over 1,000 restore points).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::{audit_log, job_logs, job_samples, jobs, sessions};
use sendense::catalog::repository_keys;
use sendense::engine::datastore::Datastore;
use sendense::platforms::kvm::definition;
use serde_json::{json, Value};
use shared_types::backups::{Backup, BackupStatus};
use shared_types::discovery::{BulkAddResponse, Platform};
use shared_types::jobs::{Job, JobKind};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState};
use shared_types::repositories::{Repository, VerifyOutcome};
use shared_types::ws::ServerMessage;

mod support;
use support::kvm::TestHost;
use support::api::Api;
use support::fixture;

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(out.status.success(), "{tool} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A KVM host directory with VMs `names`, each one qcow2 disk with `mib`
/// MiB of its own random data, tracked.
fn host(root: &Path, names: &[&str], mib: u64) -> PathBuf {
    let dir = root.join("host");
    definition::write_host(
        &dir,
        &definition::HostDefinition {
            name: "kvm-maint".into(),
            cpu_cores: 4,
            memory_mib: 8192,
            networks: vec![NetworkInfo { name: "lan".into(), bridge: None, cidr: None, ..Default::default() }],
        },
    )
    .unwrap();
    for (i, name) in names.iter().enumerate() {
        definition::write_vm(
            &dir,
            &definition::VmDefinition {
                name: (*name).into(),
                uuid: format!("00000000-0000-4000-8000-0000000000a{i}"),
                vcpus: 1,
                memory_mib: 512,
                firmware: Firmware::Bios,
                os: GuestOs::Linux,
                power: PowerState::Running,
                role: None,
                nics: vec![NicInfo { mac: format!("52:54:00:00:0a:0{i}"), network: "lan".into(), model: "virtio".into() }],
                disks: vec![definition::DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: DiskFormat::Qcow2, bus: "virtio".into() }],
            },
        )
        .unwrap();
        let vm_dir = definition::vm_dir(&dir, name);
        let raw = vm_dir.join("seed.raw");
        std::fs::write(&raw, random_bytes((mib << 20) as usize, 0x5eed ^ (i as u64 + 1))).unwrap();
        let disk = vm_dir.join("disk0.qcow2");
        run("qemu-img", &["convert", "-q", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), disk.to_str().unwrap()]);
        std::fs::remove_file(&raw).unwrap();
    }
    dir
}

/// The test's scratch directory and its libvirt host (stopped when dropped).
struct Root {
    dir: tempfile::TempDir,
    host: Option<TestHost>,
}

impl Root {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ seed;
    for b in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    data
}

/// Signed-in API, the local repository, and managed VMs `names`.
async fn setup(names: &[&str], mib: u64) -> (Api, Repository, Vec<String>, Root) {
    let f = fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let mut root = Root { dir: tempfile::tempdir().unwrap(), host: None };
    let repos: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    let repo = repos.into_iter().next().unwrap();
    if names.is_empty() {
        return (api, repo, Vec::new(), root);
    }
    let kvm = TestHost::start(host(root.path(), names, mib)).await;
    let p: Platform = api.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": kvm.uri()})), StatusCode::CREATED).await;
    root.host = Some(kvm);
    let ids: Vec<String> = (0..names.len()).map(|i| format!("00000000-0000-4000-8000-0000000000a{i}")).collect();
    let added: BulkAddResponse = api.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": p.id, "vm_ids": ids})), StatusCode::OK).await;
    let vms = names.iter().map(|n| added.added.iter().find(|v| v.name == *n).unwrap().id.clone()).collect();
    (api, repo, vms, root)
}

async fn backup(api: &Api, vm: &str) -> Backup {
    let id = api.back_up(vm, "full").await;
    api.ok("GET", &format!("/api/v1/backup/{id}"), None, StatusCode::OK).await
}

/// Flips bytes inside the stored chunk at the start of the restore point's
/// first disk, in its pack on disk.
fn damage_first_chunk(data_dir: &Path, repo: &Repository, b: &Backup) {
    let ds = repository_keys::open_datastore(data_dir, &repo.id, Path::new(&repo.path)).unwrap();
    let m = ds.load_manifest(&b.snapshot_name, &b.snapshot_id).unwrap();
    let idx = ds.load_index("test", &m.disks[0].index).unwrap();
    let digest = idx.digests.iter().find(|d| !d.is_zero_marker()).expect("a stored chunk");
    let store = ds.load_chunk_store().unwrap();
    let loc = store.get(digest).expect("the chunk is in the repository");
    let pack = Path::new(&repo.path).join(sendense::engine::pack::pack_key(&store.packs[loc.pack as usize]));
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&pack).unwrap();
    let at = loc.offset + u64::from(loc.stored_len) / 2;
    let mut buf = [0u8; 16];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut buf).unwrap();
    for x in &mut buf {
        *x ^= 0xff;
    }
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&buf).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_marks_a_damaged_restore_point_and_raises_an_alert() {
    let (api, repo, vms, _root) = setup(&["web-01", "db-01"], 2).await;
    let web = backup(&api, &vms[0]).await;
    let db = backup(&api, &vms[1]).await;
    damage_first_chunk(api.f.data.path(), &repo, &web);
    let mut events = api.f.state.events.subscribe();

    // Queued while the repository is in maintenance, so a second request meets it.
    api.ok::<Value>("PUT", &format!("/api/v1/repositories/{}/maintenance", repo.id), Some(json!({"enabled": true, "reason": "test"})), StatusCode::OK).await;
    let job: Job = api.ok("POST", &format!("/api/v1/repositories/{}/verify", repo.id), None, StatusCode::ACCEPTED).await;
    assert_eq!((job.kind, job.vm_name.as_str(), job.repository_id.as_deref()), (JobKind::Verify, "local", Some(repo.id.as_str())));
    let again = api.call("POST", &format!("/api/v1/repositories/{}/verify", repo.id), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body.contains(&job.id), "the refusal names the running job: {}", again.body);
    api.ok::<Value>("PUT", &format!("/api/v1/repositories/{}/maintenance", repo.id), Some(json!({"enabled": false})), StatusCode::OK).await;

    let done = api.wait(&job.id, 120).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let logical = web.logical_bytes + db.logical_bytes;
    assert!(done["job"]["bytes_read"].as_u64().unwrap() > 0 && done["job"]["bytes_total"].as_u64().unwrap() <= logical, "{}", done["job"]);
    let log = done["logs"].to_string();
    assert!(log.contains("is damaged") && log.contains("web-01"), "{log}");

    let web_after: Backup = api.ok("GET", &format!("/api/v1/backup/{}", web.id), None, StatusCode::OK).await;
    let db_after: Backup = api.ok("GET", &format!("/api/v1/backup/{}", db.id), None, StatusCode::OK).await;
    assert_eq!(web_after.status, BackupStatus::Corrupt);
    let reason = web_after.verify_reason.clone().unwrap_or_default();
    assert!(reason.contains(&web.snapshot_id) && reason.contains("chunk"), "{reason}");
    assert!(web_after.verified_at.is_some());
    assert_eq!((db_after.status, db_after.verify_reason.as_deref()), (BackupStatus::Verified, None));
    assert!(db_after.verified_at.is_some());
    // The list the RECOVERY page reads carries the state too.
    let list: shared_types::backups::BackupPage = api.ok("GET", "/api/v1/backup/list?status=corrupt", None, StatusCode::OK).await;
    assert_eq!(list.items.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), vec![web.id.as_str()]);

    let r: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", repo.id), None, StatusCode::OK).await;
    let last = r.upkeep.last_verify.clone().expect("last verify");
    assert_eq!((last.outcome, last.damaged), (VerifyOutcome::Damaged, 1));
    assert!(r.upkeep.next_verify_at.is_some() && r.upkeep.next_gc_at.is_some(), "{:?}", r.upkeep);

    let mut alert = None;
    while let Ok(m) = events.try_recv() {
        if let ServerMessage::Alert(a) = m {
            alert = Some(a);
        }
    }
    let alert = alert.expect("an alert for the damaged restore point");
    assert!(alert.title.contains("damaged") && alert.message.contains("web-01"), "{alert:?}");
    assert_eq!(alert.job_id.as_deref(), Some(job.id.as_str()));

    // The audit log names who started it.
    let audit: Value = api.ok("GET", "/api/v1/audit?limit=20", None, StatusCode::OK).await;
    assert!(audit.to_string().contains("repository.verify"), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_applies_flow_retention_and_gc_gives_the_space_back() {
    let (api, repo, vms, root) = setup(&["app-01"], 4).await;
    api.f.state.runner.set_gc_grace_secs(0);
    let group: shared_types::groups::GroupDetails =
        api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "apps", "vm_ids": [vms[0]]})), StatusCode::CREATED).await;
    api.ok::<Value>(
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "apps-nightly", "kind": "backup", "source": {"type": "group", "group_id": group.group.id},
                    "repository_id": repo.id, "retention": {"keep_last": 1}})),
        StatusCode::CREATED,
    )
    .await;
    let first = backup(&api, &vms[0]).await;
    // Rewrite the whole disk: the second restore point shares no chunk with the first.
    let disk = root.host.as_ref().unwrap().vm("app-01").disk("vda").to_path_buf();
    let fresh = root.path().join("fresh.raw");
    std::fs::write(&fresh, random_bytes(4 << 20, 77)).unwrap();
    run("qemu-io", &["-f", "qcow2", "-c", &format!("write -s {} 0 4M", fresh.display()), disk.to_str().unwrap()]);
    let second = backup(&api, &vms[0]).await;
    let before: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", repo.id), None, StatusCode::OK).await;
    let before_bytes = before.stats.as_ref().unwrap().repository_bytes;
    assert_eq!(before.stats.as_ref().unwrap().snapshots, 2, "the backup job refreshed the cached statistics");

    let job: Job = api.ok("POST", &format!("/api/v1/repositories/{}/prune", repo.id), None, StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 60).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let points: shared_types::backups::BackupPage = api.ok("GET", &format!("/api/v1/backup/list?vm={}", vms[0]), None, StatusCode::OK).await;
    assert_eq!(points.items.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), vec![second.id.as_str()], "keep_last 1 kept the newest");
    assert!(done["logs"].to_string().contains(&first.snapshot_id), "{}", done["logs"]);

    // GC keeps packs younger than its mtime slack even with no grace: on a
    // fast machine the first restore point's pack is that young here.
    tokio::time::sleep(sendense::engine::gc::MTIME_SLACK + std::time::Duration::from_millis(200)).await;
    let job: Job = api.ok("POST", &format!("/api/v1/repositories/{}/gc", repo.id), None, StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 60).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let reclaimed = done["job"]["bytes_written"].as_u64().unwrap();
    assert!(reclaimed >= 3 << 20, "the first restore point's 4 MiB of random chunks were given back: {reclaimed}");
    let after: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", repo.id), None, StatusCode::OK).await;
    let last = after.upkeep.last_gc.expect("last gc");
    assert_eq!(last.reclaimed_bytes, reclaimed);
    let stats = after.stats.unwrap();
    assert_eq!(stats.snapshots, 1);
    assert!(stats.repository_bytes + reclaimed <= before_bytes + 4096, "{} + {reclaimed} vs {before_bytes}", stats.repository_bytes);
    // What is left still restores whole.
    let verify: Job = api.ok("POST", &format!("/api/v1/repositories/{}/verify", repo.id), None, StatusCode::ACCEPTED).await;
    let v = api.wait(&verify.id, 60).await;
    assert_eq!(v["job"]["status"], "completed");
    let kept: Backup = api.ok("GET", &format!("/api/v1/backup/{}", second.id), None, StatusCode::OK).await;
    assert_eq!(kept.status, BackupStatus::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_schedules_validate_show_next_runs_and_queue_jobs() {
    let (api, repo, _vms, _root) = setup(&[], 1).await;
    let path = format!("/api/v1/repositories/{}/maintenance-schedule", repo.id);
    let bad = api.call("PATCH", &path, Some(json!({"verify_schedule": "every sunday"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains("verify_schedule") && bad.body.contains("every sunday"), "{}", bad.body);
    let r: Repository = api.ok("PATCH", &path, Some(json!({"verify_schedule": "*/5 * * * *", "gc_schedule": ""})), StatusCode::OK).await;
    assert_eq!((r.upkeep.verify_schedule.as_deref(), r.upkeep.gc_schedule.as_deref(), r.upkeep.next_gc_at), (Some("*/5 * * * *"), None, None));
    let next = r.upkeep.next_verify_at.expect("next verify");
    assert!(next > Utc::now() && next <= Utc::now() + chrono::Duration::minutes(5));

    let mut plan = std::collections::HashMap::new();
    let t0 = Utc::now();
    sendense::runner::scheduler::maintenance_tick(&api.f.state.runner, &mut plan, t0).await.unwrap();
    let count = |kind: &'static str| {
        let db = api.f.state.db.clone();
        async move { jobs::Entity::find().filter(jobs::Column::Kind.eq(kind)).count(&db).await.unwrap() }
    };
    assert_eq!(count("verify").await, 0, "the first look only plans");
    sendense::runner::scheduler::maintenance_tick(&api.f.state.runner, &mut plan, t0 + chrono::Duration::minutes(6)).await.unwrap();
    assert_eq!((count("verify").await, count("gc").await), (1, 0), "a due verify is queued, GC is off");
    let page: shared_types::jobs::JobPage = api.ok("GET", "/api/v1/jobs?limit=5", None, StatusCode::OK).await;
    assert_eq!(page.items[0].requested_by.as_deref(), Some("schedule"));

    let r: Repository = api.ok("PATCH", &path, Some(json!({"gc_schedule": "default"})), StatusCode::OK).await;
    assert_eq!(r.upkeep.gc_schedule.as_deref(), Some(shared_types::repositories::DEFAULT_GC_SCHEDULE));
    assert_eq!(r.upkeep.verify_schedule.as_deref(), Some("*/5 * * * *"), "a field left out stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_prunes_old_samples_logs_sessions_and_audit() {
    let f = fixture().await;
    let repo = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let db = &f.state.db;
    let now = Utc::now();
    let old = now - chrono::Duration::days(91);
    let recent = now - chrono::Duration::days(89);
    jobs::ActiveModel {
        id: Set("j1".into()),
        vm_context_id: Set(None),
        repository_id: Set(Some(repo.id.clone())),
        kind: Set("gc".into()),
        status: Set("completed".into()),
        priority: Set(0),
        bytes_total: Set(0),
        bytes_read: Set(0),
        bytes_written: Set(0),
        created_at: Set(old),
        updated_at: Set(old),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    for at in [old, recent] {
        job_samples::ActiveModel { id: sea_orm::NotSet, job_id: Set("j1".into()), at: Set(at), bytes_read: Set(1), bytes_written: Set(1), throughput_bps: Set(1) }
            .insert(db)
            .await
            .unwrap();
        job_logs::ActiveModel { id: sea_orm::NotSet, job_id: Set("j1".into()), at: Set(at), level: Set("info".into()), message: Set("x".into()) }
            .insert(db)
            .await
            .unwrap();
    }
    let user = sendense::db::entities::users::Entity::find().one(db).await.unwrap().unwrap();
    for (id, expires, revoked) in [("s-old", now - chrono::Duration::days(3), None), ("s-revoked", now + chrono::Duration::hours(5), Some(now - chrono::Duration::days(2))), ("s-live", now + chrono::Duration::hours(5), None)] {
        sessions::ActiveModel {
            id: Set(id.into()),
            token_hash: Set(format!("hash-{id}")),
            user_id: Set(user.id.clone()),
            created_at: Set(now - chrono::Duration::days(4)),
            expires_at: Set(expires),
            revoked_at: Set(revoked),
            address: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
    }
    for days in [401, 399] {
        audit_log::ActiveModel {
            id: sea_orm::NotSet,
            at: Set(now - chrono::Duration::days(days)),
            actor: Set(Some("admin".into())),
            action: Set("test".into()),
            target: Set(format!("{days} days ago")),
            result: Set("ok".into()),
            status: Set(200),
            address: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
    }
    let audit_before = audit_log::Entity::find().count(db).await.unwrap();
    let pruned = sendense::catalog::housekeeping::prune(db, Default::default(), now).await.unwrap();
    assert_eq!((pruned.job_samples, pruned.job_logs, pruned.sessions, pruned.audit), (1, 1, 2, 1));
    assert_eq!(job_samples::Entity::find().count(db).await.unwrap(), 1);
    assert_eq!(job_logs::Entity::find().count(db).await.unwrap(), 1);
    let left: Vec<String> = sessions::Entity::find().filter(sessions::Column::Id.starts_with("s-")).all(db).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(left, vec!["s-live".to_string()]);
    assert_eq!(audit_log::Entity::find().count(db).await.unwrap(), audit_before - 1);
    assert!(jobs::Entity::find_by_id("j1".to_string()).one(db).await.unwrap().is_some(), "the job itself stays");
    // A shorter audit retention (--audit-retention-days 30) takes the other one too.
    let pruned = sendense::catalog::housekeeping::prune(db, sendense::catalog::housekeeping::Retention { job_history_days: 90, audit_days: 30 }, now).await.unwrap();
    assert_eq!(pruned.audit, 1);
}

/// GET /repositories over a repository of 1,000 restore points: a request
/// reads the cached statistics (it does not even see snapshots written
/// behind the server's back); the operation that changed the repository
/// refreshes them, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_statistics_are_read_from_the_cache() {
    let (api, repo, _vms, root) = setup(&[], 1).await;
    // A second, empty repository: timed alternately with the big one, so
    // the load of a shared machine weighs on both alike.
    let empty_path = root.path().join("empty-repo");
    Datastore::init(&empty_path, None).unwrap();
    sendense::db::entities::repositories::ActiveModel {
        id: Set("empty-repo".into()),
        name: Set("empty".into()),
        kind: Set("local".into()),
        path: Set(empty_path.display().to_string()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&api.f.state.db)
    .await
    .unwrap();
    let timed = |id: String| {
        let api = &api;
        async move {
            let t = Instant::now();
            let r: Repository = api.ok("GET", &format!("/api/v1/repositories/{id}"), None, StatusCode::OK).await;
            (t.elapsed(), r)
        }
    };
    let n: usize = std::env::var("SENDENSE_STATS_SNAPSHOTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let repo_path = PathBuf::from(&repo.path);
    let img = root.path().join("small.raw");
    let made = Instant::now();
    let (path, data_dir, repo_id) = (repo_path.clone(), api.f.data.path().to_path_buf(), repo.id.clone());
    tokio::task::spawn_blocking(move || {
        let ds = repository_keys::open_datastore(&data_dir, &repo_id, &path).unwrap();
        for i in 0..n {
            // 128 KiB: one chunk shared by every snapshot, one of its own.
            let mut data = random_bytes(65536, 1);
            data.extend(random_bytes(65536, 1000 + i as u64));
            std::fs::write(&img, &data).unwrap();
            let src = std::sync::Arc::new(sendense::engine::block_source::FileSource::open(&img).unwrap());
            let disks = [sendense::engine::backup::DiskSource { name: "disk0".into(), source: src, changed_ranges: None, cbt_token: None }];
            let mut opts = sendense::engine::backup::BackupOptions::new(&format!("vm-{}", i % 50));
            opts.workers = 1;
            sendense::engine::backup::backup(&ds, &opts, &disks, &sendense::engine::progress::Progress::new()).unwrap();
        }
    })
    .await
    .unwrap();
    eprintln!("made {n} snapshots in {:.1} s", made.elapsed().as_secs_f64());

    // Written behind the server's back: requests still read the cache.
    let stale: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    assert_eq!(stale[0].stats.as_ref().unwrap().snapshots, 0, "a request recomputed the statistics");

    // What a backup, prune or GC job does once it changed the repository.
    let cache = api.f.state.runner.repo_stats();
    let t = Instant::now();
    let (path, data_dir, repo_id) = (repo_path.clone(), api.f.data.path().to_path_buf(), repo.id.clone());
    tokio::task::spawn_blocking(move || cache.refresh(&path, &repository_keys::open_datastore(&data_dir, &repo_id, &path).unwrap()).unwrap()).await.unwrap();
    let refresh = t.elapsed();

    let (_, r) = timed(repo.id.clone()).await;
    assert_eq!(r.stats.as_ref().unwrap().snapshots, n as u64, "the refreshed statistics are served");
    timed("empty-repo".into()).await; // computes the empty one's, once
    let (mut big, mut small) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        big.push(timed(repo.id.clone()).await.0);
        small.push(timed("empty-repo".into()).await.0);
    }
    big.sort();
    small.sort();
    let (median, empty) = (big[big.len() / 2], small[small.len() / 2]);
    eprintln!(
        "{n} restore points: refresh after a change {:.1} ms; GET /repositories/{{id}} median {:.2} ms (max {:.2} ms) vs {:.2} ms for an empty repository, 20 requests each",
        refresh.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        big[big.len() - 1].as_secs_f64() * 1e3,
        empty.as_secs_f64() * 1e3,
    );
    // The request cost does not grow with the repository (loose bounds for a
    // shared, loaded machine); the stale answer above is the proof that a
    // request never recomputes.
    assert!(median < empty * 2 + Duration::from_millis(10), "{median:?} with {n} restore points vs {empty:?} empty");
    assert!(median < Duration::from_millis(200), "{median:?}");
}
