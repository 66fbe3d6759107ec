//! `GET /api/v1/schedules` through the real router: backup flows made
//! through the API with their cron schedules, a repository's verify and GC,
//! expected durations from the flows' completed runs (rows written into the
//! catalog as history), and the overlaps they make on the repository and the
//! platform they share.

mod support;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sendense::catalog::repositories::ensure_local;
use serde_json::json;
use shared_types::flow::Flow;
use shared_types::schedules::{LoadTarget, ScheduleTimeline, ScheduledKind};
use support::fixture;
use support::rows::{self, Job};

#[tokio::test]
async fn runs_durations_and_overlaps_of_the_next_days() {
    let f = fixture().await;
    let db = &f.state.db;
    let repo = ensure_local(db, f.data.path()).await.unwrap();
    rows::platform(db, "plat-prod", "prod").await;
    rows::vm(db, "vm-a", "plat-prod", "app-a").await;
    rows::vm(db, "vm-b", "plat-prod", "app-b").await;
    let token = f.admin_token().await;
    let flow = |name: &'static str, vm: &'static str, schedule: &'static str| {
        let body = json!({"name": name, "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": repo.id, "schedule": schedule});
        let f = &f;
        let token = token.clone();
        async move {
            let reply = f.call("POST", "/api/v1/flows", Some(&token), Some(body)).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            reply.json::<Flow>()
        }
    };
    let nightly = flow("nightly", "vm-a", "0 2 * * *").await;
    let late = flow("late", "vm-b", "30 2 * * *").await;
    let weekly = flow("weekly", "vm-b", "0 12 * * 6").await;

    // The nightly flow's history: three runs of one hour, one of two hours
    // that failed (not counted), each queued at once.
    for (i, (hours, status)) in [(1, "completed"), (1, "completed"), (2, "failed"), (1, "completed")].into_iter().enumerate() {
        let started = Utc::now() - Duration::days(i as i64 + 1);
        let id = format!("hist-{i}");
        rows::job(db, Job {
            id: &id, kind: "backup", status, started, finished: Some(started + Duration::hours(hours)), bytes: (1, 1),
            repository: Some(&repo.id), vm: Some("vm-a"), target_platform: None, backup_type: Some("incremental"), flow: Some(&nightly.id),
        })
        .await;
    }

    let reply = f.call("GET", "/api/v1/schedules", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let t: ScheduleTimeline = reply.json();
    assert_eq!(t.end - t.start, Duration::days(7));
    let entry = |key: String| t.entries.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("{key} in {:?}", t.entries));
    let n = entry(format!("backup:{}", nightly.id));
    assert_eq!((n.kind, n.runs.len(), n.expected_seconds, n.history_runs), (ScheduledKind::Backup, 7, Some(3600), 3));
    assert!(n.runs.iter().all(|r| r.format("%H:%M").to_string() == "02:00"), "{:?}", n.runs);
    assert!(n.loads.contains(&LoadTarget::Repository { id: repo.id.clone() }) && n.loads.contains(&LoadTarget::Platform { id: "plat-prod".into() }));
    let l = entry(format!("backup:{}", late.id));
    assert_eq!((l.runs.len(), l.expected_seconds), (7, None));
    assert_eq!(entry(format!("backup:{}", weekly.id)).runs.len(), 1);
    // The repository's own upkeep, on its default schedules.
    assert_eq!(entry(format!("verify:{}", repo.id)).kind, ScheduledKind::Verify);
    assert_eq!(entry(format!("gc:{}", repo.id)).kind, ScheduledKind::Gc);

    // nightly (02:00, an hour) and late (02:30) meet every night.
    let nights: Vec<_> = t
        .overlaps
        .iter()
        .filter(|o| o.entries.contains(&n.key) && o.entries.contains(&l.key))
        .collect();
    // Nights with both runs in the window (6 when it opens between 02:00
    // and 02:31), on the repository and on the platform.
    let both = n.runs.iter().filter(|r| l.runs.contains(&(**r + Duration::minutes(30)))).count();
    assert!(both >= 6, "{:?} / {:?}", n.runs, l.runs);
    assert_eq!(nights.len(), 2 * both, "{:?}", t.overlaps);
    for o in &nights {
        assert_eq!((o.start.format("%H:%M").to_string(), o.end - o.start, o.concurrent), ("02:30".into(), Duration::minutes(1), 2));
    }
    assert!(nights.iter().any(|o| o.target_name == repo.name) && nights.iter().any(|o| o.target_name == "prod"));

    let fortnight: ScheduleTimeline = f.call("GET", "/api/v1/schedules?days=14", Some(&token), None).await.json();
    assert_eq!(fortnight.entries.iter().find(|e| e.key == n.key).map(|e| e.runs.len()), Some(14));
    // A disabled flow does not run on its own.
    let disabled = f.call("POST", &format!("/api/v1/flows/{}/disable", late.id), Some(&token), None).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    let after: ScheduleTimeline = f.call("GET", "/api/v1/schedules", Some(&token), None).await.json();
    assert!(after.entries.iter().all(|e| e.key != l.key));

    for bad in ["days=0", "days=15", "days=seven"] {
        let reply = f.call("GET", &format!("/api/v1/schedules?{bad}"), Some(&token), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {}", reply.body);
        assert!(reply.body.contains("days"), "{}", reply.body);
    }
}

/// A policy with a verify schedule, followed by a flow: the repository the
/// flow writes to gets the policy's verify runs beside its own, named by the
/// policy, and a policy nobody follows adds nothing.
#[tokio::test]
async fn a_policys_verify_runs_show_on_the_repositories_its_flows_use() {
    let f = fixture().await;
    let db = &f.state.db;
    let repo = ensure_local(db, f.data.path()).await.unwrap();
    rows::platform(db, "plat-prod", "prod").await;
    rows::vm(db, "vm-a", "plat-prod", "app-a").await;
    let token = f.admin_token().await;
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>, status: StatusCode| {
        let (f, token) = (&f, token.clone());
        async move {
            let reply = f.call(method, &path, Some(&token), body).await;
            assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
            reply.json::<serde_json::Value>()
        }
    };
    let gold = call("POST", "/api/v1/policies".into(), Some(json!({"name": "gold", "verify_schedule": "0 4 * * *"})), StatusCode::CREATED).await;
    call("POST", "/api/v1/policies".into(), Some(json!({"name": "idle", "verify_schedule": "0 5 * * *"})), StatusCode::CREATED).await;
    let gold_id = gold["id"].as_str().unwrap().to_owned();
    let flow = json!({"name": "nightly", "kind": "backup", "source": {"type": "vms", "vm_ids": ["vm-a"]}, "repository_id": repo.id, "schedule": "0 2 * * *", "policy_id": gold_id});
    call("POST", "/api/v1/flows".into(), Some(flow), StatusCode::CREATED).await;

    let t: ScheduleTimeline = serde_json::from_value(call("GET", "/api/v1/schedules?days=3".into(), None, StatusCode::OK).await).unwrap();
    let by_policy: Vec<_> = t.entries.iter().filter(|e| e.policy.is_some()).collect();
    assert_eq!(by_policy.len(), 1, "{:?}", t.entries);
    let e = by_policy[0];
    assert_eq!((e.key.as_str(), e.kind, e.id.as_str(), e.schedule.as_str()), (format!("verify:{}:{gold_id}", repo.id).as_str(), ScheduledKind::Verify, repo.id.as_str(), "0 4 * * *"));
    assert_eq!(e.policy.as_ref().map(|p| (p.id.as_str(), p.name.as_str())), Some((gold_id.as_str(), "gold")));
    assert!(e.name.contains("gold") && e.runs.len() == 3 && e.runs.iter().all(|r| r.format("%H:%M").to_string() == "04:00"), "{e:?}");
    assert_eq!(e.loads, vec![LoadTarget::Repository { id: repo.id.clone() }]);
    // The repository's own verify is still there, its own.
    assert!(t.entries.iter().any(|x| x.key == format!("verify:{}", repo.id) && x.policy.is_none()));
}
