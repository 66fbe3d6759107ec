//! Replication flows through the API on the real demo lab and real qemu
//! tools: web-01 (production host) replicated to the DR host by the job
//! runner; the first sync full, the next after lab activity incremental and
//! of about the activity's size; a test failover on the isolated network and
//! its end; a live failover refused without network mappings and without the
//! typed VM name, then done (replica equals the source, source off); a
//! rollback with sync back; pause and resume; the state rule's refusals;
//! bad input; deleting the flow removes the replica. On SQLite and on
//! PostgreSQL.

use std::path::Path;
use std::process::Command;

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, InitOptions};
use sendense::platforms::Platform as _;
use serde_json::{json, Value};
use shared_types::discovery::Platform;
use shared_types::error::ErrorBody;
use shared_types::networks::Recommendations;
use shared_types::replication::{ReplicationAccepted, ReplicationDetails, ReplicationFlow, ReplicationState, SyncKind};

mod support;

// The migrations' throw-away PostgreSQL server, shared rather than copied.
#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

use support::api::Api;
use support::kvm::TestHost;
use support::Fixture;

/// Whether VM `name` of `host` runs (a QEMU process).
fn running(host: &TestHost, name: &str) -> bool {
    host.is_running(name)
}

/// The guest-visible contents of two images are equal.
fn same_image(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(a).arg(b).status().unwrap().success()
}

async fn act(api: &Api, flow: &str, action: &str, body: Value) -> ReplicationAccepted {
    api.ok("POST", &format!("/api/v1/replication/{flow}/{action}"), Some(body), StatusCode::ACCEPTED).await
}

/// Runs an action and waits for its job; the flow afterwards.
async fn done(api: &Api, flow: &str, action: &str, body: Value) -> (ReplicationFlow, Value) {
    let a = act(api, flow, action, body).await;
    let job = a.job.unwrap_or_else(|| panic!("{action} runs a job"));
    let j = api.wait(&job.id, 180).await;
    assert_eq!(j["job"]["status"], "completed", "{action}: {}", j);
    let d: ReplicationDetails = api.ok("GET", &format!("/api/v1/replication/{flow}"), None, StatusCode::OK).await;
    (d.flow, j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_vm_is_replicated_tested_failed_over_and_rolled_back() {
    replicate_test_fail_over_and_roll_back(support::fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_works_on_postgresql() {
    use sea_orm::ConnectionTrait;
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    let admin = sea_orm::Database::connect(cluster.url()).await.unwrap();
    admin.execute_unprepared("CREATE DATABASE replication").await.unwrap();
    let url = format!("{}/replication", cluster.url().trim_end_matches("/postgres"));
    let data = tempfile::tempdir().unwrap();
    let catalog = sendense::db::open(&url, sendense::db::CatalogKind::Postgres).await.unwrap();
    sendense::auth::bootstrap::ensure_admin(&catalog, data.path(), Some(support::ADMIN_PASSWORD)).await.unwrap();
    let (mut state, health_tx) = sendense::state::AppState::new(catalog, sendense::db::CatalogKind::Postgres, data.path().to_path_buf());
    support::allow_temp_hosts(&mut state);
    replicate_test_fail_over_and_roll_back(Fixture { state, health_tx, web: tempfile::tempdir().unwrap(), data }).await;
}

async fn replicate_test_fail_over_and_roll_back(f: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let dr_dir = lab_dir.join("hosts/kvm-dr-01");
    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(&dr_dir));
    let prod: Platform = api.add_host(&prod_host).await;
    let dr: Platform = api.add_host(&dr_host).await;
    let _: Value = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": dr.id})), StatusCode::OK).await;
    let ids = api.manage(&prod, &["web-01"]).await;
    let vm = ids[0].clone();

    // Bad input: named problems, nothing stored.
    let e = api.refused("/api/v1/replication", json!({"vm_id": "nope", "target_platform_id": dr.id}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert!(e.contains("vm_id") && e.contains("nope"), "{e}");
    let e = api.refused("/api/v1/replication", json!({"vm_id": vm, "target_platform_id": prod.id}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    assert!(e.contains("standby host"), "{e}");
    api.refused("/api/v1/replication", json!({"vm_id": vm, "target_platform_id": dr.id, "interval_seconds": 5}), StatusCode::BAD_REQUEST, "invalid_field").await;
    api.refused("/api/v1/replication", json!({"vm_id": vm, "target_platform_id": dr.id, "bogus": 1}), StatusCode::BAD_REQUEST, "invalid_body").await;
    let none: Vec<ReplicationFlow> = api.ok("GET", "/api/v1/replication", None, StatusCode::OK).await;
    assert!(none.is_empty());

    // Start: the initial full sync runs as a job.
    let started: ReplicationAccepted = api.ok(
        "POST",
        "/api/v1/replication/start",
        Some(json!({"vm_id": vm, "target_platform_id": dr.id, "interval_seconds": 600, "keep_points": 3})),
        StatusCode::CREATED,
    )
    .await;
    let id = started.flow.id.clone();
    assert_eq!(started.flow.state, ReplicationState::Syncing);
    assert_eq!(started.flow.name, "web-01 to kvm-dr-01");
    let job = started.job.expect("the initial sync job");
    assert_eq!(job.replication_id.as_deref(), Some(id.as_str()));
    let j = api.wait(&job.id, 180).await;
    assert_eq!(j["job"]["status"], "completed", "{j}");
    let api_again = api.refused("/api/v1/replication", json!({"vm_id": vm, "target_platform_id": dr.id}), StatusCode::CONFLICT, "already_replicated").await;
    assert!(api_again.contains("web-01-replica"), "{api_again}");
    let d: ReplicationDetails = api.ok("GET", &format!("/api/v1/replication/{id}"), None, StatusCode::OK).await;
    assert_eq!(d.flow.state, ReplicationState::Healthy, "{:?}", d.flow.failure_reason);
    assert_eq!((d.flow.point_count, d.points.len()), (1, 1));
    let full = d.flow.last_sync.clone().expect("a sync summary");
    assert_eq!(full.kind, SyncKind::Full);
    assert!(full.bytes_read > 1_000_000 && full.bytes_written > 0, "{full:?}");
    assert!(d.replica_bytes > 0 && !d.flow.lag.rpo_missed && d.flow.next_sync_at.is_some());
    assert!(d.recent_jobs.iter().any(|j| j.id == job.id));
    let replica = || dr_host.disk_files("web-01-replica")[0].1.clone();
    assert!(replica().exists());
    assert!(!running(&dr_host, "web-01-replica"));

    // Lab activity, then an incremental sync of only what changed.
    let activity = tokio::task::spawn_blocking({
        let lab_dir = lab_dir.clone();
        move || lab::activity::round(&lab_dir).unwrap()
    })
    .await
    .unwrap();
    let web_written: u64 = activity.vms.iter().filter(|v| v.vm == "web-01").map(|v| v.bytes_written()).sum();
    assert!(web_written > 0, "the lab activity wrote to web-01");
    let (flow, _) = done(&api, &id, "sync", json!({})).await;
    let inc = flow.last_sync.clone().unwrap();
    assert_eq!(inc.kind, SyncKind::Incremental);
    assert!(inc.bytes_read >= web_written && inc.bytes_read < full.bytes_read / 2, "activity {web_written} B, incremental {inc:?}, full {full:?}");
    assert_eq!(flow.point_count, 2);
    println!("METRIC replication full read={} written={}; incremental changed={} read={} written={} (activity wrote {web_written})",
        full.bytes_read, full.bytes_written, inc.bytes_changed, inc.bytes_read, inc.bytes_written);

    // No mapping yet: the flow says why a failover cannot go, and it is refused.
    assert!(!flow.network_problems.is_empty(), "unmapped NICs are named");
    let e = api.refused(&format!("/api/v1/replication/{id}/failover"), json!({"confirm": "web-01"}), StatusCode::UNPROCESSABLE_ENTITY, "network_mapping_incomplete").await;
    assert!(e.contains("web-01"), "{e}");
    let e = api.refused(&format!("/api/v1/replication/{id}/rollback"), json!({"confirm": "web-01", "sync_back": true}), StatusCode::CONFLICT, "invalid_state").await;
    assert!(e.contains("not failed over"), "{e}");

    // The source runs from here on (its QEMU; the lab disks boot no OS).
    prod_host.platform().set_power("web-01", shared_types::platform::PowerState::Running).unwrap();

    // Test failover: a test VM on the DR host's isolated network; the replica untouched.
    let before_top = std::fs::metadata(replica()).unwrap().modified().unwrap();
    let (flow, _) = done(&api, &id, "test-failover", json!({})).await;
    assert_eq!(flow.state, ReplicationState::Testing);
    let test_vm = flow.test_vm_name.clone().expect("the test VM's name");
    assert!(running(&dr_host, &test_vm));
    let host: Value = serde_json::from_slice(&std::fs::read(dr_dir.join("host.json")).unwrap()).unwrap();
    let isolated: Vec<&str> = host["networks"].as_array().unwrap().iter().filter(|n| n["isolated"] == true).filter_map(|n| n["name"].as_str()).collect();
    let p = dr_host.platform();
    let tvm = p.definition(&p.domain(&p.connect().unwrap(), &test_vm).unwrap()).unwrap();
    assert!(!tvm.nics.is_empty() && tvm.nics.iter().all(|n| isolated.contains(&n.network.as_str())), "{:?} on {isolated:?}", tvm.nics);
    assert!(running(&prod_host, "web-01"), "the source is untouched by a test");
    let e = api.refused(&format!("/api/v1/replication/{id}/sync"), json!({}), StatusCode::CONFLICT, "invalid_state").await;
    assert!(e.contains("end the test"), "{e}");
    let (flow, _) = done(&api, &id, "end-test", json!({})).await;
    assert_eq!(flow.state, ReplicationState::Healthy);
    assert!(!dr_host.vm_names().contains(&test_vm), "the test VM is gone");
    assert_eq!(std::fs::metadata(replica()).unwrap().modified().unwrap(), before_top, "the replica was not written");

    // Map the networks with the recommendations, then fail over for real.
    let rec: Recommendations = api
        .ok("GET", &format!("/api/v1/networks/recommendations?source_platform_id={}&target_platform_id={}", prod.id, dr.id), None, StatusCode::OK)
        .await;
    let pairs: Vec<Value> = rec.recommendations.iter().map(|r| json!({"source_network": r.source_network, "target_network": r.target_network})).collect();
    let _: Value = api
        .ok("PATCH", &format!("/api/v1/replication/{id}"), Some(json!({"network_mapping": pairs})), StatusCode::OK)
        .await;
    let d: ReplicationDetails = api.ok("GET", &format!("/api/v1/replication/{id}"), None, StatusCode::OK).await;
    assert!(d.flow.network_problems.is_empty(), "{:?}", d.flow.network_problems);
    let reply = api.call("POST", &format!("/api/v1/replication/{id}/failover"), Some(json!({"confirm": "web-02"}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let e: ErrorBody = reply.json();
    assert_eq!(e.details[0].field, "confirm");
    // (No guest answers ACPI here: the source is stopped hard after 1 s.)
    let (flow, j) = done(&api, &id, "failover", json!({"confirm": "web-01", "shutdown_timeout_seconds": 1})).await;
    assert_eq!(flow.state, ReplicationState::FailedOver, "{:?}", flow.failure_reason);
    assert!(!running(&prod_host, "web-01"));
    assert!(running(&dr_host, "web-01-replica"));
    let src_disk = prod_host.vm("web-01").disk("vda").to_path_buf();
    assert!(same_image(&replica(), &src_disk), "the replica equals the source at the failover point");
    let log = j["logs"].as_array().unwrap().iter().filter_map(|l| l["message"].as_str()).collect::<Vec<_>>().join("\n");
    assert!(log.contains("downtime"), "{log}");
    let e = api.refused(&format!("/api/v1/replication/{id}/sync"), json!({}), StatusCode::CONFLICT, "invalid_state").await;
    assert!(e.contains("roll back first"), "{e}");
    let reply = api.call("DELETE", &format!("/api/v1/replication/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "production on the replica: no delete");

    // Rollback with the replica's changes synced back.
    let (flow, _) = done(&api, &id, "rollback", json!({"confirm": "web-01", "sync_back": true})).await;
    assert_eq!(flow.state, ReplicationState::Healthy, "{:?}", flow.failure_reason);
    assert!(running(&prod_host, "web-01"));
    assert!(!running(&dr_host, "web-01-replica"));
    assert!(same_image(&replica(), &src_disk), "source and replica equal after the rollback");

    // Pause and resume.
    let p = act(&api, &id, "pause", json!({})).await;
    assert!(p.job.is_none() && p.flow.state == ReplicationState::Paused && p.flow.next_sync_at.is_none());
    let e = api.refused(&format!("/api/v1/replication/{id}/sync"), json!({}), StatusCode::CONFLICT, "invalid_state").await;
    assert!(e.contains("resume"), "{e}");
    let (flow, _) = done(&api, &id, "resume", json!({})).await;
    assert_eq!(flow.state, ReplicationState::Healthy);
    assert!(flow.point_count <= 3, "keeps at most keep_points: {}", flow.point_count);

    // The interval schedule: two intervals later the RPO is missed (one
    // warning) and the scheduler queues the sync that is due.
    let mut events = api.f.state.events.subscribe();
    let later = chrono::Utc::now() + chrono::Duration::seconds(1300);
    sendense::runner::replication_job::tick(&api.f.state.runner, later).await.unwrap();
    sendense::runner::replication_job::tick(&api.f.state.runner, later).await.unwrap();
    let mut alerts = Vec::new();
    while let Ok(msg) = events.try_recv() {
        if let shared_types::ws::ServerMessage::Alert(a) = msg {
            alerts.push(a);
        }
    }
    assert_eq!(alerts.len(), 1, "one alert per missed stretch: {alerts:?}");
    let alert = &alerts[0];
    assert!(alert.title.contains("missed its RPO") && alert.message.contains("600 s"), "{alert:?}");
    let d: ReplicationDetails = api.ok("GET", &format!("/api/v1/replication/{id}"), None, StatusCode::OK).await;
    let queued = d.active_job.expect("the scheduler queued the due sync");
    assert_eq!(queued.requested_by.as_deref(), Some("schedule"));
    let j = api.wait(&queued.id, 180).await;
    assert_eq!(j["job"]["status"], "completed", "{j}");
    let d: ReplicationDetails = api.ok("GET", &format!("/api/v1/replication/{id}"), None, StatusCode::OK).await;
    assert!(!d.flow.lag.rpo_missed, "a new point: the lag is back under the RPO");

    // Deleting the flow removes the replica from the DR host.
    let top = replica();
    let reply = api.call("DELETE", &format!("/api/v1/replication/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(!dr_host.vm_names().contains(&"web-01-replica".to_string()) && !top.exists(), "the replica is gone");
    api.error(&format!("/api/v1/replication/{id}"), StatusCode::NOT_FOUND, "replication_not_found").await;
}

/// A site failover (test mode) with a boot order: stage 1 (web-02) starts
/// at once; stage 2 (web-01) only once stage 1's test failover ended and
/// its 2 s delay passed; bad boot orders are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_failover_starts_its_vms_in_boot_order() {
    use shared_types::replication::SiteFailoverResult;
    let f = support::fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let (prod_host, dr_host) = tokio::join!(TestHost::start(lab_dir.join("hosts/kvm-prod-01")), TestHost::start(lab_dir.join("hosts/kvm-dr-01")));
    let prod: Platform = api.add_host(&prod_host).await;
    let dr: Platform = api.add_host(&dr_host).await;
    let _: Value = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": dr.id})), StatusCode::OK).await;
    let ids = api.manage(&prod, &["web-01", "web-02"]).await;
    let group: Value = api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "web tier", "vm_ids": ids})), StatusCode::CREATED).await;
    let gid = group["group"]["id"].as_str().unwrap_or_else(|| panic!("{group}")).to_string();
    let mut flows = Vec::new();
    for vm in &ids {
        let started: ReplicationAccepted =
            api.ok("POST", "/api/v1/replication/start", Some(json!({"vm_id": vm, "target_platform_id": dr.id})), StatusCode::CREATED).await;
        let j = api.wait(&started.job.unwrap().id, 300).await;
        assert_eq!(j["job"]["status"], "completed", "{j}");
        flows.push(started.flow.id);
    }

    let e = api.refused(
        "/api/v1/replication/site-failover",
        json!({"group_id": gid, "mode": "test", "boot_order": [{"vm_ids": ["nope"]}]}),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    )
    .await;
    assert!(e.contains("'nope' is not in the group"), "{e}");
    api.refused(
        "/api/v1/replication/site-failover",
        json!({"group_id": gid, "mode": "test", "boot_order": [{"vm_ids": [ids[1]], "delay_seconds": 99999}]}),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    )
    .await;

    let r: SiteFailoverResult = api
        .ok(
            "POST",
            "/api/v1/replication/site-failover",
            Some(json!({"group_id": gid, "mode": "test", "boot_order": [{"vm_ids": [ids[1]], "delay_seconds": 2}, {"vm_ids": [ids[0]]}]})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(r.started.iter().map(|a| a.flow.id.clone()).collect::<Vec<_>>(), vec![flows[1].clone()], "stage 1: web-02 only");
    assert_eq!(r.scheduled.len(), 1);
    assert_eq!((r.scheduled[0].stage, r.scheduled[0].flows[0].id.clone(), r.scheduled[0].wait_for_boot, r.scheduled[0].delay_seconds), (2, flows[0].clone(), true, 2));
    let first = api.wait(&r.started[0].job.as_ref().unwrap().id, 180).await;
    assert_eq!(first["job"]["status"], "completed", "{first}");
    let first_done = chrono::DateTime::parse_from_rfc3339(first["job"]["finished_at"].as_str().unwrap()).unwrap();
    // Stage 2's test failover, queued by the server after the delay.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let second = loop {
        let d: ReplicationDetails = api.ok("GET", &format!("/api/v1/replication/{}", flows[0]), None, StatusCode::OK).await;
        if let Some(j) = d.recent_jobs.iter().find(|j| j.operation.map(|o| o.as_str() == "test_failover").unwrap_or(false)) {
            break j.clone();
        }
        assert!(std::time::Instant::now() < until, "stage 2 never started");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let gap = (second.created_at - first_done.with_timezone(&chrono::Utc)).num_milliseconds();
    assert!(gap >= 2000, "stage 2 was queued {gap} ms after stage 1's guest was up: at least the 2 s delay");
    let j = api.wait(&second.id, 180).await;
    assert_eq!(j["job"]["status"], "completed", "{j}");
    for flow in &flows {
        done(&api, flow, "end-test", json!({})).await;
    }
    assert!(!api_data_dir_plan_left(&api), "the plan file is gone once its last stage started");
}

fn api_data_dir_plan_left(api: &Api) -> bool {
    std::fs::read_dir(api.f.data.path().join("site-failover")).map(|d| d.flatten().next().is_some()).unwrap_or(false)
}
