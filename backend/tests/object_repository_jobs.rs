//! The server's jobs on object-store repositories, on the real demo lab and
//! real S3 (moto) and Azure Blob (Azurite) servers: a repository added
//! through the API (`POST /api/v1/repositories`, kind s3 / azure), a flow
//! pointed at it, backups through the job runner, restore points that name
//! it, verify, file-level mount, a full restore compared byte for byte, the
//! key download, an instant-recovery export process handed the repository
//! in a 0600 spec file (no secret on its command line), and a repository
//! that stops answering mid-backup: the job fails naming the repository and
//! the cause, no restore point appears, and once the storage is back the
//! next backup succeeds.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sea_orm::EntityTrait;
use sendense::catalog::repositories::ensure_local;
use sendense::catalog::spec_files;
use sendense::db::entities::instant_recoveries;
use sendense::runner::instant_job::export_args;
use sendense::db::entities::repositories;
use sendense::restore::export_process;
use serde_json::{json, Value};
use shared_types::backups::Backup;
use shared_types::flow::Flow;
use shared_types::jobs::{Job, JobPage};
use shared_types::repositories::{Repository, RepositoryStatus};

mod support;

use support::api::Api;
use support::kvm::TestHost;
use support::object_servers::{Azurite, Moto, AZURITE_ACCOUNT, AZURITE_KEY, MOTO_REGION};

const MIB: f64 = 1024.0 * 1024.0;

/// MiB/s a finished backup job read at, from its catalog row.
fn rate(job: &Value) -> (f64, f64, f64) {
    let j: Job = serde_json::from_value(job["job"].clone()).unwrap();
    let secs = (j.finished_at.unwrap() - j.started_at.unwrap()).num_milliseconds() as f64 / 1000.0;
    (j.bytes_read as f64 / MIB, j.bytes_written as f64 / MIB, secs)
}

/// Waits until job `id` runs and has read something; panics if it ends first.
async fn wait_reading(api: &Api, id: &str) {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let j: Value = api.ok("GET", &format!("/api/v1/jobs/{id}"), None, StatusCode::OK).await;
        assert!(!matches!(j["job"]["status"].as_str(), Some("completed" | "failed" | "cancelled")), "the backup ended before the storage was stopped: {}", j["job"]);
        if j["job"]["bytes_read"].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(Instant::now() < until, "job {id} read nothing in 120 s: {}", j["job"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_is_backed_up_to_s3_its_restore_points_verified_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (lab_dir, source_disk) = support::kvm::lab_in(dir.path()).await;
    let f = support::fixture().await;
    let data = f.data.path().to_path_buf();
    let local = ensure_local(&f.state.db, &data).await.unwrap();
    let api = Api::admin(f).await;
    let moto = Moto::start();
    moto.create_bucket("sendense-jobs", false);
    let (access_key_id, secret) = (moto.access_key().0.to_owned(), moto.access_key().1.to_owned());

    // The operator adds the bucket as a repository: tested, created encrypted, online, no capacity of its own.
    let s3: Repository = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "offsite-s3", "kind": "s3", "endpoint": moto.endpoint(), "region": MOTO_REGION, "bucket": "sendense-jobs",
                        "prefix": "site-a", "access_key_id": access_key_id, "secret_access_key": secret})),
            StatusCode::CREATED,
        )
        .await;
    assert!(s3.encrypted && s3.status == RepositoryStatus::Online && s3.capacity.is_none(), "{s3:?}");
    let row = repositories::Entity::find_by_id(s3.id.clone()).one(&api.f.state.db).await.unwrap().unwrap();

    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);

    // A flow made on the local repository, then pointed at the S3 one, runs its backup there.
    let flow: Flow = api
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "web to s3", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": local.id})),
            StatusCode::CREATED,
        )
        .await;
    let flow: Flow = api.ok("PATCH", &format!("/api/v1/flows/{}", flow.id), Some(json!({"repository_id": s3.id})), StatusCode::OK).await;
    let _: Value = api.ok("POST", &format!("/api/v1/flows/{}/run", flow.id), None, StatusCode::ACCEPTED).await;
    let jobs: JobPage = api.ok("GET", &format!("/api/v1/jobs?flow={}", flow.id), None, StatusCode::OK).await;
    assert_eq!(jobs.items.len(), 1, "{jobs:?}");
    assert_eq!(jobs.items[0].repository_id.as_deref(), Some(s3.id.as_str()));
    let full = api.wait(&jobs.items[0].id, 300).await;
    assert_eq!(full["job"]["status"], "completed", "{}", full["job"]);
    let (read, written, secs) = rate(&full);
    let puts = moto.requests().iter().filter(|r| r.starts_with("PUT ")).count();
    eprintln!("full backup to S3 (moto) through a job: {read:.1} MiB read, {written:.1} MiB stored in {secs:.2} s = {:.1} MiB/s; {puts} PUTs so far", read / secs);

    // Its restore point names the S3 repository; the repository counts it.
    let listed = api.points(&vm).await;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].repository.id.as_str(), listed[0].repository.name.as_str()), (s3.id.as_str(), "offsite-s3"));
    let repo: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", s3.id), None, StatusCode::OK).await;
    let stats = repo.stats.clone().expect("engine statistics of the S3 repository");
    assert_eq!((stats.snapshots, repo.backup_count, repo.capacity.is_none()), (1, 1, true), "{repo:?}");
    assert!(stats.repository_bytes > 0 && stats.logical_bytes >= listed[0].logical_bytes, "{stats:?}");
    let objects = moto.requests().iter().filter(|r| r.starts_with("PUT /sendense-jobs/site-a/packs/")).count();
    assert!(objects > 0, "packs went to the bucket under the prefix");
    assert!(!Path::new(&local.path).join("snapshots").read_dir().map(|d| d.count() > 0).unwrap_or(false), "nothing went to the local repository");

    // An incremental into the same repository (the request names it).
    let inc = api.start_backup(&vm, "incremental", &s3.id).await;
    let inc = api.wait(&inc, 300).await;
    assert_eq!(inc["job"]["status"], "completed", "{}", inc["job"]);
    let (r2, w2, s2) = rate(&inc);
    eprintln!("incremental backup to S3 through a job: {r2:.1} MiB read, {w2:.2} MiB stored in {s2:.2} s");
    let listed = api.points(&vm).await;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|b| b.repository.name == "offsite-s3"));

    // Verify reads every restore point back from the bucket.
    let verify: Job = api.ok("POST", &format!("/api/v1/repositories/{}/verify", s3.id), None, StatusCode::ACCEPTED).await;
    let verified = api.wait(&verify.id, 300).await;
    assert_eq!(verified["job"]["status"], "completed", "{verified}");
    let b: Backup = api.ok("GET", &format!("/api/v1/backup/{}", listed[0].id), None, StatusCode::OK).await;
    assert!(b.verified_at.is_some(), "{b:?}");

    // File-level restore opens it; a full restore to the DR host equals the source disk.
    let newest = listed.iter().max_by_key(|b| b.created_at).unwrap().clone();
    let mount: Value = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": newest.id})), StatusCode::CREATED).await;
    assert!(mount["volumes"].as_array().is_some_and(|v| !v.is_empty()), "{mount}");
    let job: Job = api
        .ok("POST", "/api/v1/restore/start", Some(json!({"backup_id": newest.id, "target_platform_id": dr.id, "name": "web-01-back"})), StatusCode::ACCEPTED)
        .await;
    let started = Instant::now();
    let done = api.wait(&job.id, 300).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    eprintln!("restore from S3 through a job: {:.2} s", started.elapsed().as_secs_f64());
    let restored = dr_host.disk_files("web-01-back")[0].1.clone();
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(&source_disk).arg(&restored).status().unwrap();
    assert!(cmp.success(), "the disk restored from S3 equals web-01's");

    // The key downloads (checked against the repository's configuration in the bucket).
    let reply = api.call("GET", &format!("/api/v1/repositories/{}/key", s3.id), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.bytes, std::fs::read(data.join("keys").join(format!("{}.key", s3.id))).unwrap());

    // An instant recovery's export process (arguments made by the server's
    // own instant_job::export_args) gets the repository in a 0600 spec file,
    // never its secret on argv.
    let now = chrono::Utc::now();
    let ir = instant_recoveries::Model {
        id: "ir-test".into(),
        backup_id: newest.id.clone(),
        vm_context_id: vm.clone(),
        repository_id: s3.id.clone(),
        target_platform_id: dr.id.clone(),
        name: "web-01-instant".into(),
        vm_id: None,
        state: "starting".into(),
        options: "{}".into(),
        dir: None,
        socket: dir.path().join("export.sock").display().to_string(),
        export_pid: None,
        up_ms: None,
        boot_line: None,
        finalize_done: 0,
        finalize_total: 0,
        error: None,
        job_id: None,
        created_by: None,
        created_at: now,
        updated_at: now,
        finalized_at: None,
    };
    let snapshot = format!("{}/{}", newest.snapshot_name, newest.snapshot_id);
    let (args, spec_file) = tokio::task::spawn_blocking({
        let (data, row) = (data.clone(), row.clone());
        move || export_args(&data, &row, &ir, snapshot).unwrap()
    })
    .await
    .unwrap();
    let spec_file = spec_file.expect("an S3 repository is handed over in a spec file");
    assert!(args.repository.is_none() && args.spec_file.as_deref() == Some(spec_file.path()));
    assert_eq!(args.key_file, Some(data.join("keys").join(format!("{}.key", s3.id))));
    assert!(spec_file.path().starts_with(spec_files::dir(&data)));
    std::env::set_var("SENDENSE_EXE", env!("CARGO_BIN_EXE_sendense"));
    let log = dir.path().join("export.log");
    let (a, l) = (args.clone(), log.clone());
    let pid = tokio::task::spawn_blocking(move || export_process::start(&a, &l)).await.unwrap().unwrap_or_else(|e| {
        panic!("{e:#}: {}", std::fs::read_to_string(&log).unwrap_or_default())
    });
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    assert!(cmdline.contains("--spec-file") && !cmdline.contains(&secret) && !cmdline.contains("sendense-jobs"), "{cmdline}");
    let spec_path = spec_file.path().to_path_buf();
    drop(spec_file);
    assert!(!spec_path.exists(), "the spec file goes once the process serves");
    assert!(export_process::is_serving(pid, &args.socket), "it serves without its spec file");
    let nbd = std::os::unix::net::UnixStream::connect(&args.socket);
    assert!(nbd.is_ok());
    let (d, r, sock) = (data.clone(), row.clone(), args.socket.clone());
    tokio::task::spawn_blocking(move || {
        let ds = sendense::catalog::repositories::open_datastore(&d, &r).unwrap();
        export_process::stop(Some(pid), &sock, ds.repo.as_ref(), "ir-test");
    })
    .await
    .unwrap();
    assert!(!std::fs::read_to_string(&log).unwrap_or_default().contains(&secret));

    // The same VM into the local repository, for comparison (a first full there too).
    let local_job = api.start_backup(&vm, "full", &local.id).await;
    let local_job = api.wait(&local_job, 300).await;
    assert_eq!(local_job["job"]["status"], "completed", "{}", local_job["job"]);
    let (lr, lw, ls) = rate(&local_job);
    eprintln!("full backup to the local repository through a job: {lr:.1} MiB read, {lw:.1} MiB stored in {ls:.2} s = {:.1} MiB/s", lr / ls);

    // A second S3 server dies mid-backup (while the first full uploads its
    // packs): the job fails naming the repository and the cause, and no
    // restore point appears. moto keeps its buckets in memory, so it cannot
    // come back with them: the Azure test below brings the storage back.
    let mut doomed = Moto::start();
    doomed.create_bucket("sendense-doomed", false);
    let (ak, sk) = (doomed.access_key().0.to_owned(), doomed.access_key().1.to_owned());
    let gone: Repository = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "doomed-s3", "kind": "s3", "endpoint": doomed.endpoint(), "bucket": "sendense-doomed", "access_key_id": ak, "secret_access_key": sk})),
            StatusCode::CREATED,
        )
        .await;
    let before = api.points(&vm).await.len();
    let failing = api.start_backup(&vm, "full", &gone.id).await;
    wait_reading(&api, &failing).await;
    doomed.kill();
    let started = Instant::now();
    let failed = api.wait(&failing, 300).await;
    assert_eq!(failed["job"]["status"], "failed", "{}", failed["job"]);
    let error = failed["job"]["error"].as_str().unwrap_or_default().to_owned();
    eprintln!("backup with moto killed, failed after {:.1} s: {error}", started.elapsed().as_secs_f64());
    assert!(error.contains("repository 'doomed-s3'") && error.contains("sendense-doomed") && (error.contains("refused") || error.contains("answer") || error.contains("connect")), "{error}");
    assert!(!error.contains(&sk), "no secret in the job's error");
    let after = api.points(&vm).await;
    assert_eq!(after.len(), before, "no restore point from the failed backup");
    assert!(after.iter().all(|b| b.repository.id != gone.id));
    let repo: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", gone.id), None, StatusCode::OK).await;
    assert_eq!(repo.status, RepositoryStatus::Unavailable, "{repo:?}");
    assert!(repo.error.as_deref().is_some_and(|e| e.contains("sendense-doomed")), "{repo:?}");
    // The first S3 repository is unaffected.
    let repo: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", s3.id), None, StatusCode::OK).await;
    assert_eq!((repo.status, repo.stats.map(|s| s.snapshots)), (RepositoryStatus::Online, Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_repository_that_stops_answering_fails_the_backup_cleanly_and_the_next_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (lab_dir, source_disk) = support::kvm::lab_in(dir.path()).await;
    let f = support::fixture().await;
    let data = f.data.path().to_path_buf();
    ensure_local(&f.state.db, &data).await.unwrap();
    let api = Api::admin(f).await;
    let mut azurite = Azurite::start();
    azurite.create_container("sendense-jobs");
    let azure: Repository = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "offsite-azure", "kind": "azure", "endpoint": azurite.endpoint(), "account": AZURITE_ACCOUNT,
                        "container": "sendense-jobs", "account_key": AZURITE_KEY})),
            StatusCode::CREATED,
        )
        .await;
    assert!(azure.encrypted && azure.status == RepositoryStatus::Online && azure.capacity.is_none(), "{azure:?}");

    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);
    // Azurite saves its blob list every few seconds: the repository's configuration must be on disk before the kill.
    tokio::time::sleep(Duration::from_secs(6)).await;

    // Azurite is killed mid-backup: the job fails with the repository and the cause; nothing is recorded.
    let failing = api.start_backup(&vm, "full", &azure.id).await;
    wait_reading(&api, &failing).await;
    azurite.kill();
    let started = Instant::now();
    let failed = api.wait(&failing, 300).await;
    assert_eq!(failed["job"]["status"], "failed", "{}", failed["job"]);
    let error = failed["job"]["error"].as_str().unwrap_or_default().to_owned();
    eprintln!("backup with Azurite killed, failed after {:.1} s: {error}", started.elapsed().as_secs_f64());
    assert!(error.contains("repository 'offsite-azure'") && error.contains("sendense-jobs") && (error.contains("refused") || error.contains("answer") || error.contains("connect")), "{error}");
    assert!(api.points(&vm).await.is_empty(), "no restore point from the failed backup");

    // Azurite comes back with its data: nothing half-written is visible, and the next backup succeeds.
    azurite.restart();
    // Until a write succeeds there again, the repository says its storage failed, with the job.
    let repo: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", azure.id), None, StatusCode::OK).await;
    assert_eq!(repo.status, RepositoryStatus::Degraded, "{repo:?}");
    let failure = repo.storage_failure.as_ref().unwrap_or_else(|| panic!("the failed write is on the repository: {repo:?}"));
    assert_eq!(failure.job_id.as_deref(), Some(failing.as_str()), "{failure:?}");
    assert_eq!(repo.stats.as_ref().map(|s| s.snapshots), Some(0), "{repo:?}");
    let next = api.start_backup(&vm, "full", &azure.id).await;
    let done = api.wait(&next, 300).await;
    assert_eq!(done["job"]["status"], "completed", "{}", done["job"]);
    let repo: Repository = api.ok("GET", &format!("/api/v1/repositories/{}", azure.id), None, StatusCode::OK).await;
    assert!(repo.status == RepositoryStatus::Online && repo.storage_failure.is_none(), "the good backup clears it: {repo:?}");
    let (read, written, secs) = rate(&done);
    eprintln!("full backup to Azure (Azurite) through a job: {read:.1} MiB read, {written:.1} MiB stored in {secs:.2} s = {:.1} MiB/s", read / secs);
    let listed = api.points(&vm).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].repository.name, "offsite-azure");

    // And it restores byte for byte.
    let job: Job = api
        .ok("POST", "/api/v1/restore/start", Some(json!({"backup_id": listed[0].id, "target_platform_id": dr.id, "name": "web-01-az"})), StatusCode::ACCEPTED)
        .await;
    let done = api.wait(&job.id, 300).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let restored = dr_host.disk_files("web-01-az")[0].1.clone();
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(&source_disk).arg(&restored).status().unwrap();
    assert!(cmp.success(), "the disk restored from Azure equals web-01's");
}

/// How fast a backup job moves a VM's data into S3 (moto on loopback)
/// beside the same job into the local repository, in the same run: web-01's
/// disk replaced by one holding `DATA_MIB` of random (incompressible) data.
/// Prints the figures; asserts only that both work and restore equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_of_backup_and_restore_jobs_on_s3_beside_local() {
    const DATA_MIB: u64 = 128;
    let dir = tempfile::tempdir().unwrap();
    let (lab_dir, source_disk) = support::kvm::lab_in(dir.path()).await;
    let raw = dir.path().join("random.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(6 << 30).unwrap();
    drop(f);
    let dd = Command::new("dd")
        .args(["if=/dev/urandom", "bs=1M", "conv=notrunc", "status=none"])
        .arg(format!("count={DATA_MIB}"))
        .arg(format!("of={}", raw.display()))
        .status()
        .unwrap();
    assert!(dd.success());
    let conv = Command::new("qemu-img").args(["convert", "-O", "qcow2"]).arg(&raw).arg(&source_disk).status().unwrap();
    assert!(conv.success());
    std::fs::remove_file(&raw).unwrap();

    let f = support::fixture().await;
    let data = f.data.path().to_path_buf();
    let local = ensure_local(&f.state.db, &data).await.unwrap();
    let api = Api::admin(f).await;
    let moto = Moto::start();
    moto.create_bucket("sendense-speed", false);
    let (ak, sk) = (moto.access_key().0.to_owned(), moto.access_key().1.to_owned());
    let s3: Repository = api
        .ok(
            "POST",
            "/api/v1/repositories",
            Some(json!({"name": "speed-s3", "kind": "s3", "endpoint": moto.endpoint(), "bucket": "sendense-speed", "access_key_id": ak, "secret_access_key": sk})),
            StatusCode::CREATED,
        )
        .await;
    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);

    for (name, repo) in [("S3 (moto)", &s3.id), ("local", &local.id)] {
        let before = moto.requests().len();
        let job = api.start_backup(&vm, "full", repo).await;
        let done = api.wait(&job, 600).await;
        assert_eq!(done["job"]["status"], "completed", "{}", done["job"]);
        let (read, written, secs) = rate(&done);
        let requests = moto.requests().len() - before;
        eprintln!("full backup job to {name}: {read:.1} MiB read, {written:.1} MiB stored in {secs:.2} s = {:.1} MiB/s; {requests} S3 requests", read / secs);
        assert!(written >= DATA_MIB as f64 * 0.95, "random data is stored whole: {written:.1} MiB");
    }
    let on_s3 = api.points(&vm).await.into_iter().find(|b| b.repository.id == s3.id).unwrap();
    let job: Job = api
        .ok("POST", "/api/v1/restore/start", Some(json!({"backup_id": on_s3.id, "target_platform_id": dr.id, "name": "web-01-speed"})), StatusCode::ACCEPTED)
        .await;
    let done = api.wait(&job.id, 600).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let j: Job = serde_json::from_value(done["job"].clone()).unwrap();
    let secs = (j.finished_at.unwrap() - j.started_at.unwrap()).num_milliseconds() as f64 / 1000.0;
    eprintln!("restore job from S3 (moto): {DATA_MIB} MiB of data in {secs:.2} s = {:.1} MiB/s", DATA_MIB as f64 / secs);
    let restored = dr_host.disk_files("web-01-speed")[0].1.clone();
    let cmp = Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(&source_disk).arg(&restored).status().unwrap();
    assert!(cmp.success(), "the disk restored from S3 equals the source");
}
