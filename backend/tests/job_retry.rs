//! `POST /api/v1/jobs/{id}/retry` through the real router: a failed backup
//! is queued again with what it was asked to do, by whom is recorded, and
//! what cannot be retried is refused with where to go instead.

mod support;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sendense::catalog::repositories::ensure_local;
use shared_types::error::ErrorBody;
use shared_types::jobs::{BackupType, Job, JobKind, JobStatus};
use support::fixture;
use support::rows::{self, Job as Row};

#[tokio::test]
async fn a_failed_backup_runs_again_and_the_rest_is_refused_with_a_reason() {
    let f = fixture().await;
    let db = &f.state.db;
    let repo = ensure_local(db, f.data.path()).await.unwrap();
    rows::platform(db, "plat-prod", "prod").await;
    rows::vm(db, "vm-web", "plat-prod", "web-01").await;
    let at = Utc::now() - Duration::minutes(10);
    let row = |id, kind, status, backup_type| Row {
        id,
        kind,
        status,
        started: at,
        finished: Some(at + Duration::seconds(5)),
        bytes: (0, 0),
        repository: Some(repo.id.as_str()),
        vm: Some("vm-web"),
        target_platform: None,
        backup_type,
        flow: None,
    };
    rows::job(db, row("failed-full", "backup", "failed", Some("full"))).await;
    rows::job(db, row("done", "backup", "completed", Some("incremental"))).await;
    rows::job(db, row("repl", "replication", "failed", None)).await;
    let token = f.admin_token().await;

    let reply = f.call("POST", "/api/v1/jobs/failed-full/retry", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let new: Job = reply.json();
    assert_ne!(new.id, "failed-full");
    assert_eq!((new.kind, new.backup_type, new.vm_context_id.as_str()), (JobKind::Backup, Some(BackupType::Full), "vm-web"));
    assert_eq!(new.repository_id.as_deref(), Some(repo.id.as_str()));
    assert_eq!(new.requested_by.as_deref(), Some("admin"));
    // The old job stays as it ended.
    let old: shared_types::jobs::JobDetails = f.call("GET", "/api/v1/jobs/failed-full", Some(&token), None).await.json();
    assert_eq!(old.job.status, JobStatus::Failed);

    let completed = f.call("POST", "/api/v1/jobs/done/retry", Some(&token), None).await;
    assert_eq!(completed.status, StatusCode::CONFLICT);
    assert!(completed.json::<ErrorBody>().message.contains("only a failed or cancelled job"), "{}", completed.body);
    let replication = f.call("POST", "/api/v1/jobs/repl/retry", Some(&token), None).await;
    assert_eq!(replication.status, StatusCode::CONFLICT);
    assert!(replication.body.contains("Replicate now"), "says where to go instead: {}", replication.body);
    let missing = f.call("POST", "/api/v1/jobs/no-such-job/retry", Some(&token), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let (_, viewer) = f.user_with_role("watcher", shared_types::auth::Role::Viewer).await;
    let refused = f.call("POST", "/api/v1/jobs/failed-full/retry", Some(&viewer), None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}
