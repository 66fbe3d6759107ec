//! `GET /api/v1/telemetry/history` through the real router, over a catalog
//! this test fills with jobs and their samples (a fixture: the product only
//! ever records real jobs): what moved per time step, outcomes, error rates,
//! the repository and platform breakdown, and both windows.

mod support;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sendense::catalog::repositories::ensure_local;
use shared_types::telemetry::{HistoryWindow, TelemetryHistory};
use support::fixture;
use support::rows::{self, job as insert_job, sample as insert_sample, Job};

#[tokio::test]
async fn steps_outcomes_and_shares_over_a_day_and_a_week() {
    let f = fixture().await;
    let db = &f.state.db;
    let repo = ensure_local(db, f.data.path()).await.unwrap();
    let now = Utc::now();
    rows::platform(db, "plat-prod", "prod").await;
    rows::platform(db, "plat-dr", "dr").await;
    rows::vm(db, "vm-web", "plat-prod", "web-01").await;

    // A backup 3 h ago: two samples, and 300/100 more bytes after the last.
    let a = now - Duration::hours(3);
    insert_job(db, Job { id: "a", kind: "backup", backup_type: Some("full"), status: "completed", started: a, finished: Some(a + Duration::seconds(30)), bytes: (1000, 400), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None, flow: None }).await;
    insert_sample(db, "a", a + Duration::seconds(10), 300, 100, 30).await;
    insert_sample(db, "a", a + Duration::seconds(20), 700, 300, 40).await;
    // A backup that failed 30 min ago without a sample.
    let b = now - Duration::minutes(30);
    insert_job(db, Job { id: "b", kind: "backup", backup_type: Some("full"), status: "failed", started: b, finished: Some(b + Duration::seconds(5)), bytes: (50, 0), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None, flow: None }).await;
    // A restore to the DR platform 3 days ago (in the week, not the day).
    let c = now - Duration::days(3);
    insert_job(db, Job { id: "c", kind: "restore", backup_type: None, status: "completed", started: c, finished: Some(c + Duration::seconds(60)), bytes: (5000, 5000), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: Some("plat-dr"), flow: None }).await;
    // A backup running for 5 minutes; it started before a sample that the
    // day counts from zero, and is not finished (no outcome yet).
    let d = now - Duration::minutes(5);
    insert_job(db, Job { id: "d", kind: "backup", backup_type: Some("full"), status: "running", started: d, finished: None, bytes: (200, 80), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None, flow: None }).await;
    insert_sample(db, "d", d + Duration::seconds(1), 200, 80, 200).await;
    // Finished 9 days ago: in neither window.
    let e = now - Duration::days(9);
    insert_job(db, Job { id: "e", kind: "backup", backup_type: Some("full"), status: "failed", started: e, finished: Some(e), bytes: (7, 7), repository: Some(&repo.id), vm: Some("vm-web"), target_platform: None, flow: None }).await;

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
