//! `GET /api/v1/telemetry/history` through the real router, over a catalog
//! this test fills with jobs and their samples (a fixture: the product only
//! ever records real jobs): what moved per time step, outcomes, error rates,
//! the repository and platform breakdown, and both windows.

mod support;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::{job_samples, jobs, platforms, vm_contexts};
use shared_types::telemetry::{HistoryWindow, TelemetryHistory};
use support::fixture;

struct Job<'a> {
    id: &'a str,
    status: &'a str,
    started: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
    bytes: (i64, i64),
    repository: Option<&'a str>,
    vm: Option<&'a str>,
    target_platform: Option<&'a str>,
}

async fn insert_job(db: &DatabaseConnection, j: Job<'_>) {
    jobs::ActiveModel {
        id: Set(j.id.into()),
        flow_id: Set(None),
        vm_context_id: Set(j.vm.map(Into::into)),
        repository_id: Set(j.repository.map(Into::into)),
        kind: Set(if j.target_platform.is_some() { "restore" } else { "backup" }.into()),
        backup_type: Set(None),
        status: Set(j.status.into()),
        priority: Set(0),
        bytes_total: Set(j.bytes.0),
        bytes_read: Set(j.bytes.0),
        bytes_written: Set(j.bytes.1),
        error: Set((j.status == "failed").then(|| "the disk could not be read".into())),
        requested_by: Set(None),
        created_at: Set(j.started),
        started_at: Set(Some(j.started)),
        finished_at: Set(j.finished),
        updated_at: Set(j.finished.unwrap_or(j.started)),
        backup_id: Set(None),
        target_platform_id: Set(j.target_platform.map(Into::into)),
        options: Set(None),
        replication_id: Set(None),
        operation: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
}

async fn insert_sample(db: &DatabaseConnection, job: &str, at: DateTime<Utc>, read: i64, written: i64, bps: i64) {
    job_samples::ActiveModel {
        id: sea_orm::NotSet,
        job_id: Set(job.into()),
        at: Set(at),
        bytes_read: Set(read),
        bytes_written: Set(written),
        throughput_bps: Set(bps),
    }
    .insert(db)
    .await
    .unwrap();
}

#[tokio::test]
async fn steps_outcomes_and_shares_over_a_day_and_a_week() {
    let f = fixture().await;
    let db = &f.state.db;
    let repo = ensure_local(db, f.data.path()).await.unwrap();
    let now = Utc::now();
    for (id, name) in [("plat-prod", "prod"), ("plat-dr", "dr")] {
        platforms::ActiveModel {
            id: Set(id.into()),
            name: Set(name.into()),
            kind: Set("kvm".into()),
            address: Set(format!("qemu:///{name}")),
            status: Set("online".into()),
            last_discovery_at: Set(None),
            last_error: Set(None),
            discovered_vms: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .unwrap();
    }
    vm_contexts::ActiveModel {
        id: Set("vm-web".into()),
        platform_id: Set("plat-prod".into()),
        platform_vm_id: Set("uuid-web".into()),
        name: Set("web-01".into()),
        vcpus: Set(1),
        memory_mib: Set(512),
        power: Set("running".into()),
        power_since: Set(None),
        os: Set("linux".into()),
        firmware: Set("bios".into()),
        role: Set(None),
        capacity_bytes: Set(1 << 30),
        group_id: Set(None),
        status: Set("active".into()),
        created_at: Set(now),
        last_seen_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();

    // A backup 3 h ago: two samples, and 300/100 more bytes after the last.
    let a = now - Duration::hours(3);
    insert_job(db, Job { id: "a", status: "completed", started: a, finished: Some(a + Duration::seconds(30)), bytes: (1000, 400), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None }).await;
    insert_sample(db, "a", a + Duration::seconds(10), 300, 100, 30).await;
    insert_sample(db, "a", a + Duration::seconds(20), 700, 300, 40).await;
    // A backup that failed 30 min ago without a sample.
    let b = now - Duration::minutes(30);
    insert_job(db, Job { id: "b", status: "failed", started: b, finished: Some(b + Duration::seconds(5)), bytes: (50, 0), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None }).await;
    // A restore to the DR platform 3 days ago (in the week, not the day).
    let c = now - Duration::days(3);
    insert_job(db, Job { id: "c", status: "completed", started: c, finished: Some(c + Duration::seconds(60)), bytes: (5000, 5000), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: Some("plat-dr") }).await;
    // A backup running for 5 minutes; it started before a sample that the
    // day counts from zero, and is not finished (no outcome yet).
    let d = now - Duration::minutes(5);
    insert_job(db, Job { id: "d", status: "running", started: d, finished: None, bytes: (200, 80), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None }).await;
    insert_sample(db, "d", d + Duration::seconds(1), 200, 80, 200).await;
    // Finished 9 days ago: in neither window.
    let e = now - Duration::days(9);
    insert_job(db, Job { id: "e", status: "failed", started: e, finished: Some(e), bytes: (7, 7), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None }).await;

    let token = f.admin_token().await;
    let reply = f.call("GET", "/api/v1/telemetry/history?window=24h", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let day: TelemetryHistory = reply.json();
    assert_eq!((day.window, day.bucket_seconds, day.steps.len()), (HistoryWindow::Day, 3600, 24));
    assert!(day.steps.windows(2).all(|w| w[1].start - w[0].start == Duration::hours(1)));
    assert!(day.steps[23].start <= now && now < day.steps[23].start + Duration::hours(1));
    let read: u64 = day.steps.iter().map(|s| s.jobs.bytes_read).sum();
    let written: u64 = day.steps.iter().map(|s| s.jobs.bytes_written).sum();
    assert_eq!((read, written), (1000 + 50 + 200, 400 + 80), "every byte counted once: {:?}", day.steps);
    let peak = day.steps.iter().map(|s| s.peak_bps).max().unwrap();
    assert_eq!(peak, 200);
    let a_step = day.steps.iter().find(|s| s.start <= a + Duration::seconds(10) && a + Duration::seconds(10) < s.start + Duration::hours(1)).unwrap();
    assert_eq!(a_step.mean_bps, 35, "the mean of the sampled seconds of job a");
    assert_eq!((day.totals.completed, day.totals.failed, day.totals.cancelled), (1, 1, 0));
    assert_eq!(day.totals.error_rate(), Some(0.5));
    assert_eq!(day.repositories.len(), 1);
    assert_eq!((day.repositories[0].name.as_str(), day.repositories[0].jobs.completed + day.repositories[0].jobs.failed), (repo.name.as_str(), 2));
    assert_eq!(day.platforms.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), vec!["prod"]);

    let week: TelemetryHistory = f.call("GET", "/api/v1/telemetry/history?window=7d", Some(&token), None).await.json();
    assert_eq!((week.bucket_seconds, week.steps.len()), (6 * 3600, 28));
    assert_eq!((week.totals.completed, week.totals.failed), (2, 1));
    let week_read: u64 = week.steps.iter().map(|s| s.jobs.bytes_read).sum();
    assert_eq!(week_read, 1000 + 50 + 200 + 5000);
    let shares: Vec<(&str, u64)> = week.platforms.iter().map(|p| (p.name.as_str(), p.jobs.completed + p.jobs.failed)).collect();
    assert_eq!(shares, vec![("prod", 2), ("dr", 1)], "busiest first; the restore counts for its target platform");

    let bad = f.call("GET", "/api/v1/telemetry/history?window=3d", Some(&token), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("window"), "the error names the parameter: {}", bad.body);
    let anonymous = f.call("GET", "/api/v1/telemetry/history", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
