//! The job runner through the real router: a VM of a real libvirt host
//! (shut off; read through libvirt's backup export) is backed up by `POST /backup/start`, the job's figures and the
//! restore point agree with what the engine moved, the next backup is an
//! incremental that reads only what was written, jobs pause, resume and stop
//! at chunk boundaries, emergency stop cancels everything, a VM cannot be
//! backed up twice at once, and a restart leaves no job running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::jobs;
use sendense::platforms::kvm::definition;
use serde_json::{json, Value};
use shared_types::backups::BackupPage;
use shared_types::discovery::{BulkAddResponse, Platform};
use shared_types::jobs::{Job, JobDetails, JobStatus, JobsAffected, QueuedJobs};
use shared_types::platform::{DiskFormat, Firmware, GuestOs, NetworkInfo, NicInfo, PowerState};

mod support;
use support::kvm::TestHost;
use support::{fixture, Fixture};

const K64: u64 = 65536;

struct Env {
    f: Fixture,
    token: String,
    kvm: TestHost,
    _root: tempfile::TempDir,
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(out.status.success(), "{tool} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A host with VMs `names`, each with one qcow2 disk holding `mib` MiB of
/// random data at its start (so a backup takes a moment) and tracked.
fn host(root: &Path, names: &[&str], mib: u64) -> PathBuf {
    let dir = root.join("host");
    definition::write_host(
        &dir,
        &definition::HostDefinition {
            name: "kvm-runner".into(),
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
                uuid: format!("00000000-0000-4000-8000-00000000000{i}"),
                vcpus: 2,
                memory_mib: 1024,
                firmware: Firmware::Bios,
                os: GuestOs::Linux,
                power: PowerState::Running,
                role: None,
                nics: vec![NicInfo { mac: format!("52:54:00:00:00:0{i}"), network: "lan".into(), model: "virtio".into() }],
                disks: vec![definition::DiskDefinition {
                    name: "disk0".into(),
                    file: "disk0.qcow2".into(),
                    format: DiskFormat::Qcow2,
                    bus: "virtio".into(),
                }],
            },
        )
        .unwrap();
        let vm_dir = definition::vm_dir(&dir, name);
        let raw = vm_dir.join("seed.raw");
        let mut data = vec![0u8; (mib << 20) as usize];
        let mut x: u64 = 0x9e3779b97f4a7c15 ^ i as u64;
        for b in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        std::fs::write(&raw, &data).unwrap();
        let disk = vm_dir.join("disk0.qcow2");
        run("qemu-img", &["convert", "-q", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), disk.to_str().unwrap()]);
        run("qemu-img", &["resize", "-q", disk.to_str().unwrap(), &format!("{}M", mib * 2)]);
        std::fs::remove_file(&raw).unwrap();
    }
    dir
}

impl Env {
    async fn new(names: &[&str], mib: u64) -> (Env, Vec<String>) {
        let f = fixture().await;
        ensure_local(&f.state.db, f.data.path()).await.unwrap();
        let token = f.admin_token().await;
        let root = tempfile::tempdir().unwrap();
        let kvm = TestHost::start(&host(root.path(), names, mib)).await;
        let env = Env { f, token, kvm, _root: root };
        let p: Platform = env.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": env.kvm.uri()})), StatusCode::CREATED).await;
        let ids: Vec<String> = (0..names.len()).map(|i| format!("00000000-0000-4000-8000-00000000000{i}")).collect();
        let added: BulkAddResponse = env.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": p.id, "vm_ids": ids})), StatusCode::OK).await;
        let mut contexts = Vec::new();
        for n in names {
            contexts.push(added.added.iter().find(|v| v.name == *n).unwrap().id.clone());
        }
        (env, contexts)
    }

    /// The image of `vm`'s one disk.
    fn disk(&self, vm: &str) -> PathBuf {
        self.kvm.vm(vm).disk("vda").to_path_buf()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> support::Reply {
        self.f.call(method, path, Some(&self.token), body).await
    }

    async fn ok<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Option<Value>, status: StatusCode) -> T {
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        reply.json()
    }

    async fn start(&self, vms: &[&String], backup_type: &str) -> Vec<Job> {
        let q: QueuedJobs = self.ok("POST", "/api/v1/backup/start", Some(json!({"vm_ids": vms, "backup_type": backup_type})), StatusCode::ACCEPTED).await;
        q.jobs
    }

    async fn job(&self, id: &str) -> JobDetails {
        self.ok("GET", &format!("/api/v1/jobs/{id}"), None, StatusCode::OK).await
    }

    async fn until(&self, id: &str, what: &str, done: impl Fn(&JobDetails) -> bool) -> JobDetails {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let j = self.job(id).await;
            if done(&j) {
                return j;
            }
            assert!(Instant::now() < deadline, "job {id} never became {what}: {:?}", j.job);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finished(&self, id: &str) -> JobDetails {
        self.until(id, "finished", |j| j.job.status.is_finished()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_job_records_what_the_engine_moved_and_the_next_is_incremental() {
    let (env, vms) = Env::new(&["web-01"], 24).await;
    let jobs = env.start(&[&vms[0]], "incremental").await;
    assert_eq!(jobs[0].status, JobStatus::Queued);
    let done = env.finished(&jobs[0].id).await;
    assert_eq!(done.job.status, JobStatus::Completed, "{:?} {:?}", done.job.error, done.logs);
    assert_eq!(done.job.bytes_read, 24 << 20, "the job read the allocated data and nothing else");
    assert!(done.logs.iter().any(|l| l.message.contains("full read")), "{:?}", done.logs);
    assert_eq!(done.job.backup_type, Some(shared_types::jobs::BackupType::Full), "asked incremental, read in full: the job says full");
    let page: BackupPage = env.ok("GET", &format!("/api/v1/backup/list?vm={}", vms[0]), None, StatusCode::OK).await;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].bytes_read, done.job.bytes_read, "the restore point and the job agree");

    // Three scattered writes, then an incremental that reads just them.
    let disk = env.disk("web-01");
    run("qemu-io", &["-f", "qcow2", "-c", "write -P 7 1M 64k", "-c", "write -P 8 30M 64k", "-c", "write -P 9 47M 64k", disk.to_str().unwrap()]);
    let jobs = env.start(&[&vms[0]], "incremental").await;
    let inc = env.finished(&jobs[0].id).await;
    assert_eq!(inc.job.status, JobStatus::Completed, "{:?}", inc.job.error);
    assert_eq!(inc.job.bytes_read, 3 * K64);
    assert_eq!(inc.job.backup_type, Some(shared_types::jobs::BackupType::Incremental));
    let page: BackupPage = env.ok("GET", &format!("/api/v1/backup/list?vm={}", vms[0]), None, StatusCode::OK).await;
    assert_eq!(page.items.len(), 2);
    assert!(page.items.iter().any(|b| b.backup_type == shared_types::jobs::BackupType::Incremental && b.bytes_read == 3 * K64));

    // A full backup when asked, even with change tracking.
    let jobs = env.start(&[&vms[0]], "full").await;
    let full = env.finished(&jobs[0].id).await;
    assert_eq!(full.job.bytes_read, (24 << 20) + 2 * K64, "a full backup reads every allocated block");

    // Telemetry: today's figures are the jobs' own.
    let perf: shared_types::telemetry::Performance = env.ok("GET", "/api/v1/telemetry/performance?minutes=5", None, StatusCode::OK).await;
    assert_eq!(perf.jobs.completed_today, 3);
    assert_eq!(perf.bytes_read_today, done.job.bytes_read + inc.job.bytes_read + full.job.bytes_read);
    assert_eq!(perf.per_minute.len(), 5);
    let sampled = done.samples.len() + inc.samples.len() + full.samples.len();
    assert!(sampled == 0 || perf.peak_bps > 0, "samples were kept, so a peak shows");
    let health: shared_types::telemetry::TelemetryHealth = env.ok("GET", "/api/v1/telemetry/health", None, StatusCode::OK).await;
    assert!(health.catalog.ok && health.jobs.running == 0 && health.jobs.completed_today == 3);
    let reply = env.call("GET", "/api/v1/telemetry/performance?minutes=0", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_pause_resume_stop_and_refuse_a_second_backup_of_the_same_vm() {
    let (env, vms) = Env::new(&["db-01", "app-01"], 160).await;
    let jobs = env.start(&[&vms[0]], "full").await;
    let id = jobs[0].id.clone();
    let reply = env.call("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vms[0]]}))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert!(reply.body.contains("already being backed up"), "{}", reply.body);

    env.until(&id, "running", |j| j.job.status == JobStatus::Running).await;
    let paused: Job = env.ok("POST", &format!("/api/v1/jobs/{id}/pause"), None, StatusCode::OK).await;
    assert_eq!(paused.status, JobStatus::Paused);
    tokio::time::sleep(Duration::from_millis(1500)).await; // the in-flight run drains
    let a = env.job(&id).await.job.bytes_read;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = env.job(&id).await.job.bytes_read;
    assert_eq!(a, b, "a paused job reads nothing");
    let reply = env.call("POST", &format!("/api/v1/jobs/{id}/pause"), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let _: Job = env.ok("POST", &format!("/api/v1/jobs/{id}/resume"), None, StatusCode::OK).await;
    let done = env.finished(&id).await;
    assert_eq!(done.job.status, JobStatus::Completed, "{:?}", done.job.error);
    assert!(done.samples.len() >= 2, "throughput samples were kept: {}", done.samples.len());

    // Stop: no restore point, and the VM can be backed up again.
    let jobs = env.start(&[&vms[1]], "full").await;
    let id = jobs[0].id.clone();
    env.until(&id, "running", |j| j.job.status == JobStatus::Running).await;
    let _: Job = env.ok("POST", &format!("/api/v1/jobs/{id}/stop"), None, StatusCode::OK).await;
    let stopped = env.finished(&id).await;
    assert_eq!(stopped.job.status, JobStatus::Cancelled, "{:?}", stopped.job);
    let page: BackupPage = env.ok("GET", &format!("/api/v1/backup/list?vm={}", vms[1]), None, StatusCode::OK).await;
    assert!(page.items.is_empty(), "a stopped backup leaves no restore point");
    let jobs = env.start(&[&vms[1]], "incremental").await;
    let again = env.finished(&jobs[0].id).await;
    assert_eq!(again.job.status, JobStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_stop_cancels_queued_and_running_jobs() {
    let (env, vms) = Env::new(&["a", "b", "c"], 96).await;
    let jobs = env.start(&[&vms[0], &vms[1], &vms[2]], "full").await;
    env.until(&jobs[0].id, "running", |j| j.job.status == JobStatus::Running).await;
    let n: JobsAffected = env.ok("POST", "/api/v1/jobs/emergency-stop", None, StatusCode::OK).await;
    assert!(n.count >= 1);
    for j in &jobs {
        let end = env.finished(&j.id).await;
        assert_eq!(end.job.status, JobStatus::Cancelled, "{:?}", end.job);
    }
    let page: BackupPage = env.ok("GET", "/api/v1/backup/list", None, StatusCode::OK).await;
    assert!(page.items.is_empty());
    // Bad input: unknown VM, no VM, wrong type.
    let reply = env.call("POST", "/api/v1/backup/start", Some(json!({"vm_ids": ["nope"]}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let reply = env.call("POST", "/api/v1/backup/start", Some(json!({"vm_ids": []}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = env.call("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vms[0]], "backup_type": "differential"}))).await;
    assert!(reply.status.is_client_error(), "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_leaves_no_job_running() {
    let (env, vms) = Env::new(&["web-01"], 1).await;
    let f = &env.f;
    let now = chrono::Utc::now();
    let row = jobs::ActiveModel {
        id: Set("j1".into()),
        flow_id: Set(None),
        vm_context_id: Set(Some(vms[0].clone())),
        repository_id: Set(None),
        kind: Set("backup".into()),
        backup_type: Set(Some("full".into())),
        status: Set("running".into()),
        priority: Set(0),
        bytes_total: Set(10),
        bytes_read: Set(5),
        bytes_written: Set(1),
        error: Set(None),
        requested_by: Set(None),
        created_at: Set(now),
        started_at: Set(Some(now)),
        finished_at: Set(None),
        updated_at: Set(now),
        backup_id: Set(None),
        target_platform_id: Set(None),
        options: Set(None),
        replication_id: Set(None),
        operation: Set(None),
    };
    row.insert(&f.state.db).await.unwrap();
    assert_eq!(sendense::runner::Runner::recover(&f.state.db).await.unwrap(), 1);
    let j = jobs::Entity::find_by_id("j1".to_string()).one(&f.state.db).await.unwrap().unwrap();
    assert_eq!(j.status, "failed");
    assert!(j.error.unwrap().contains("restart"));
    // And the VM can be backed up again.
    let jobs = env.start(&[&vms[0]], "incremental").await;
    assert_eq!(env.finished(&jobs[0].id).await.job.status, JobStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_flow_runs_on_time_keeps_its_retention_and_turns_healthy() {
    use shared_types::flow::{Flow, FlowState};
    let (env, vms) = Env::new(&["web-01"], 2).await;
    let repo: Vec<shared_types::repositories::Repository> = env.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    let group: shared_types::groups::GroupDetails =
        env.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "web", "vm_ids": [vms[0]]})), StatusCode::CREATED).await;
    let flow: Flow = env
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "every-minute", "kind": "backup", "source": {"type": "group", "group_id": group.group.id},
                        "repository_id": repo[0].id, "schedule": "* * * * *", "retention": {"keep_last": 1}})),
            StatusCode::CREATED,
        )
        .await;
    let mut next = std::collections::HashMap::new();
    let t0 = chrono::Utc::now();
    let disk = env.disk("web-01");
    for (round, at) in [t0, t0 + chrono::Duration::minutes(2), t0 + chrono::Duration::minutes(4)].into_iter().enumerate() {
        sendense::runner::scheduler::tick(&env.f.state.runner, &mut next, at).await.unwrap();
        let page: shared_types::jobs::JobPage = env.ok("GET", &format!("/api/v1/jobs?flow={}", flow.id), None, StatusCode::OK).await;
        assert_eq!(page.total as usize, round, "the first look only plans; each later one fires once");
        if let Some(j) = page.items.first() {
            assert_eq!(j.requested_by.as_deref(), Some("schedule"));
            env.finished(&j.id).await;
        }
        run("qemu-io", &["-f", "qcow2", "-c", &format!("write -P {} 0 64k", round + 1), disk.to_str().unwrap()]);
    }
    let after: shared_types::flow::FlowDetails = env.ok("GET", &format!("/api/v1/flows/{}", flow.id), None, StatusCode::OK).await;
    assert_eq!(after.flow.state, FlowState::Healthy, "{after:?}");
    let page: BackupPage = env.ok("GET", &format!("/api/v1/backup/list?vm={}", vms[0]), None, StatusCode::OK).await;
    assert_eq!(page.items.len(), 1, "retention keep_last 1 left one restore point");
}
