//! Policies through the real router, on SQLite and PostgreSQL: create, read,
//! change and remove with the server's validation; flows and a protection
//! group follow a policy (its retention and immutability become theirs, and
//! change with it); a policy that requires encryption refuses unencrypted
//! repositories; removal is refused while a flow or group uses it; the
//! preview of a retention names the restore points that a real prune job
//! then deletes, no more and no fewer, and keeps immutable ones; a policy's
//! verify schedule queues verifies of its flows' repository.

mod support;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::{backups, jobs, repositories};
use sendense::engine::datastore::Datastore;
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::error::ErrorBody;
use shared_types::flow::Flow;
use shared_types::groups::{GroupDetails, ProtectionGroup};
use shared_types::jobs::Job;
use shared_types::bulk::BulkOutcome;
use shared_types::policies::{AssignVmsReport, Policy, PolicyPreview};
use support::api::Api;
use support::{fixture, rows, Fixture};

// The migrations' throw-away PostgreSQL server, shared rather than copied.
#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_sqlite() {
    policies_on(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    policies_on(support::postgres_fixture(&cluster.url(), "policies").await).await;
}




async fn ids_of(db: &sea_orm::DatabaseConnection, vm: &str) -> BTreeSet<String> {
    backups::Entity::find().filter(backups::Column::VmContextId.eq(vm)).all(db).await.unwrap().into_iter().map(|b| b.id).collect()
}

async fn policies_on(f: Fixture) {
    let db = f.state.db.clone();
    let repo = ensure_local(&db, f.data.path()).await.unwrap();
    // An unencrypted repository, as an older server made them.
    let plain_dir = f.data.path().join("repos").join("plain");
    Datastore::init(&plain_dir, None).unwrap();
    repositories::ActiveModel {
        id: Set("plain-repo".into()),
        name: Set("plain".into()),
        kind: Set("local".into()),
        path: Set(plain_dir.display().to_string()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    rows::platform(&db, "plat", "prod").await;
    for (id, name) in [("vm-a", "app-a"), ("vm-b", "app-b"), ("vm-c", "web-c")] {
        rows::vm(&db, id, "plat", name).await;
    }
    let (_, viewer) = f.user_with_role("watcher", Role::Viewer).await;
    let api = Api::admin(f).await;

    // Flows with their own retention.
    let flow = |name: &str, vms: &[&str], repository: &str| {
        json!({"name": name, "kind": "backup", "source": {"type": "vms", "vm_ids": vms}, "repository_id": repository, "retention": {"keep_last": 30}})
    };
    let nightly: Flow = api.ok("POST", "/api/v1/flows", Some(flow("nightly", &["vm-a", "vm-b"], &repo.id)), StatusCode::CREATED).await;
    let plain_flow: Flow = api.ok("POST", "/api/v1/flows", Some(flow("plain-flow", &["vm-a"], "plain-repo")), StatusCode::CREATED).await;
    assert_eq!(nightly.policy, None);

    // --- Create, read, validation.
    let gold: Policy = api
        .ok(
            "POST",
            "/api/v1/policies",
            Some(json!({"name": "gold", "description": "production", "retention": {"keep_last": 2, "keep_daily": 3}, "immutable_days": 7, "verify_schedule": "0 4 * * *"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!((gold.keeps.as_str(), gold.immutable_days, gold.require_encryption), ("the last 2, 3 daily", 7, false));
    assert_eq!(gold.verify_schedule.as_deref(), Some("0 4 * * *"));
    assert!(gold.verify_schedule_description.is_some() && gold.flows.is_empty() && gold.groups.is_empty());
    let listed: Vec<Policy> = api.ok("GET", "/api/v1/policies", None, StatusCode::OK).await;
    assert_eq!(listed, vec![gold.clone()]);
    let got: Policy = api.ok("GET", &format!("/api/v1/policies/{}", gold.id), None, StatusCode::OK).await;
    assert_eq!(got, gold);
    assert!(api.error("/api/v1/policies/nope", StatusCode::NOT_FOUND, "policy_not_found").await.contains("GET /api/v1/policies"));
    api.rejected("POST", "/api/v1/policies", Some(json!({"name": "gold"})), StatusCode::CONFLICT, "policy_name_taken").await;
    for (body, status, field) in [
        (json!({"name": ""}), StatusCode::BAD_REQUEST, "name"),
        (json!({"name": "x", "retention": {"keep_last": 0}}), StatusCode::BAD_REQUEST, "retention.keep_last"),
        (json!({"name": "x", "retention": {"keep_daily": 10001}}), StatusCode::BAD_REQUEST, "retention.keep_daily"),
        (json!({"name": "x", "immutable_days": 4000}), StatusCode::BAD_REQUEST, "immutable_days"),
        (json!({"name": "x", "verify_schedule": "every night"}), StatusCode::UNPROCESSABLE_ENTITY, "verify_schedule"),
        (json!({"name": "x", "description": "d".repeat(1001)}), StatusCode::BAD_REQUEST, "description"),
    ] {
        let reply = api.call("POST", "/api/v1/policies", Some(body.clone())).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let e: ErrorBody = reply.json();
        assert!(e.details.iter().any(|d| d.field == field), "{body}: {}", reply.body);
    }
    let reply = api.call("POST", "/api/v1/policies", Some(json!({"name": "x", "copy_to": "elsewhere"}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "unknown fields are refused: {}", reply.body);
    // Viewers read, operators and admins change.
    let reply = api.f.call("POST", "/api/v1/policies", Some(&viewer), Some(json!({"name": "v"}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(api.f.call("GET", "/api/v1/policies", Some(&viewer), None).await.status, StatusCode::OK);

    // --- Restore points: app-a has six (hourly, newest first), the oldest
    // immutable for five more days; app-b has three; app-a also has one in
    // the unencrypted repository (another flow's: never a candidate here).
    let soon = Some(Utc::now() + Duration::days(5));
    for (i, hours) in [1, 2, 3, 4, 5, 6].into_iter().enumerate() {
        rows::point(&db, rows::Point { name: "vm/vm-a".into(), at: Utc::now() - Duration::hours(hours), immutable_until: if i == 5 { soon } else { None }, logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new(&format!("a{i}"), "vm-a", &repo.id) }).await;
    }
    for (i, hours) in [1, 30, 60].into_iter().enumerate() {
        rows::point(&db, rows::Point { name: "vm/vm-b".into(), at: Utc::now() - Duration::hours(hours), logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new(&format!("b{i}"), "vm-b", &repo.id) }).await;
    }
    rows::point(&db, rows::Point { name: "vm/vm-a".into(), at: Utc::now() - Duration::hours(10), logical_bytes: 1 << 20, bytes: (1 << 20, 1 << 19), ..rows::Point::new("p0", "vm-a", "plain-repo") }).await;

    // --- Preview before anything is saved: keep the last one.
    let preview: PolicyPreview =
        api.ok("POST", "/api/v1/policies/preview", Some(json!({"retention": {"keep_last": 1}, "flow_ids": [nightly.id]})), StatusCode::OK).await;
    assert_eq!(preview.keeps, "the last 1");
    assert_eq!(preview.flows.len(), 1);
    let fp = &preview.flows[0];
    assert_eq!((fp.flow.name.as_str(), fp.repository.id.as_str(), fp.total, fp.kept), ("nightly", repo.id.as_str(), 9, 2));
    let deleted: BTreeSet<String> = fp.deleted.iter().map(|p| p.backup_id.clone()).collect();
    let expected: BTreeSet<String> = ["a1", "a2", "a3", "a4", "b1", "b2"].iter().map(|s| s.to_string()).collect();
    assert_eq!(deleted, expected);
    assert_eq!(fp.kept_immutable.iter().map(|p| p.backup_id.as_str()).collect::<Vec<_>>(), vec!["a5"], "the immutable one stays");
    assert!(fp.kept_immutable[0].immutable_until.is_some() && fp.kept_pinned.is_empty());
    assert!(fp.deleted.iter().all(|p| (p.vm.name == "app-a") == p.backup_id.starts_with('a')), "points name their VM");
    assert_eq!((preview.deleted_total, preview.kept_immutable_total), (6, 1));
    // Nothing was deleted by a preview.
    assert_eq!(backups::Entity::find().count(&db).await.unwrap(), 10);
    // Keeping everything deletes nothing.
    let all: PolicyPreview = api.ok("POST", "/api/v1/policies/preview", Some(json!({"flow_ids": [nightly.id]})), StatusCode::OK).await;
    assert_eq!((all.keeps.as_str(), all.deleted_total, all.flows[0].kept), ("every restore point", 0, 9));
    api.rejected("POST", "/api/v1/policies/preview", Some(json!({"flow_ids": ["no-such-flow"]})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    api.rejected("POST", "/api/v1/policies/preview", Some(json!({"policy_id": "no-such-policy"})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    api.rejected("POST", "/api/v1/policies/preview", Some(json!({"retention": {"keep_last": 0}})), StatusCode::BAD_REQUEST, "invalid_field").await;

    // --- A flow follows the policy: its retention and immutability are the policy's.
    let path = format!("/api/v1/flows/{}", nightly.id);
    let followed: Flow = api.ok("PATCH", &path, Some(json!({"policy_id": gold.id})), StatusCode::OK).await;
    assert_eq!(followed.policy.as_ref().map(|p| p.name.as_str()), Some("gold"));
    assert_eq!((followed.retention.clone(), followed.immutable_days), (gold.retention.clone(), 7));
    let msg = api.rejected("PATCH", &path, Some(json!({"retention": {"keep_last": 9}})), StatusCode::CONFLICT, "flow_follows_policy").await.message;
    assert!(msg.contains("gold") && msg.contains("policy_id: null"), "{msg}");
    api.rejected("PATCH", &path, Some(json!({"policy_id": "nope"})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    api.ok::<Flow>("PATCH", &format!("/api/v1/flows/{}", plain_flow.id), Some(json!({"policy_id": gold.id})), StatusCode::OK).await;

    // The preview of a change to the policy covers its flows.
    let candidate = json!({"keep_last": 1});
    let preview: PolicyPreview =
        api.ok("POST", "/api/v1/policies/preview", Some(json!({"retention": candidate, "policy_id": gold.id})), StatusCode::OK).await;
    let names: Vec<&str> = preview.flows.iter().map(|f| f.flow.name.as_str()).collect();
    assert_eq!(names, vec!["nightly", "plain-flow"]);
    assert!(preview.flows.iter().all(|f| f.policy.as_ref().is_some_and(|p| p.id == gold.id)));
    let plain_preview = &preview.flows[1];
    assert_eq!((plain_preview.total, plain_preview.deleted.len()), (1, 0), "one restore point in the plain repository, the last one kept");
    let to_delete: BTreeSet<String> = preview.flows.iter().flat_map(|f| f.deleted.iter().map(|p| p.backup_id.clone())).collect();
    assert_eq!(to_delete, expected);

    // Saving the policy changes every flow that follows it.
    let changed: Policy = api.ok("PATCH", &format!("/api/v1/policies/{}", gold.id), Some(json!({"retention": candidate})), StatusCode::OK).await;
    assert_eq!(changed.keeps, "the last 1");
    assert_eq!(changed.flows.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["nightly", "plain-flow"]);
    let now: Value = api.ok("GET", &path, None, StatusCode::OK).await;
    assert_eq!((now["flow"]["retention"].clone(), now["flow"]["immutable_days"].clone()), (json!({"keep_last": 1}), json!(7)));

    // A real prune job deletes exactly what the preview named.
    let before: BTreeSet<String> = [ids_of(&db, "vm-a").await, ids_of(&db, "vm-b").await].into_iter().flatten().collect();
    let job: Job = api.ok("POST", &format!("/api/v1/repositories/{}/prune", repo.id), None, StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 60).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");
    let job: Job = api.ok("POST", "/api/v1/repositories/plain-repo/prune", None, StatusCode::ACCEPTED).await;
    assert_eq!(api.wait(&job.id, 60).await["job"]["status"], "completed");
    let after: BTreeSet<String> = [ids_of(&db, "vm-a").await, ids_of(&db, "vm-b").await].into_iter().flatten().collect();
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(gone, to_delete, "the prune deleted what the preview said, no more, no fewer");
    assert!(after.contains("a5") && after.contains("a0") && after.contains("b0") && after.contains("p0"));

    // --- Encryption required: refused for the plain repository, wherever it comes from.
    let sealed: Policy =
        api.ok("POST", "/api/v1/policies", Some(json!({"name": "sealed", "require_encryption": true})), StatusCode::CREATED).await;
    assert!(sealed.require_encryption);
    let msg = api.rejected("PATCH", &format!("/api/v1/flows/{}", plain_flow.id), Some(json!({"policy_id": sealed.id})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await.message;
    assert!(msg.contains("'plain'") && msg.contains("encrypted"), "{msg}");
    let msg = api.rejected("PATCH", &format!("/api/v1/policies/{}", gold.id), Some(json!({"require_encryption": true})), StatusCode::CONFLICT, "policy_encryption").await.message;
    assert!(msg.contains("'plain'"), "{msg}");
    let sealed_flow: Flow = api
        .ok("POST", "/api/v1/flows", Some(json!({"name": "sealed-flow", "kind": "backup", "source": {"type": "vms", "vm_ids": ["vm-b"]}, "repository_id": repo.id, "policy_id": sealed.id})), StatusCode::CREATED)
        .await;
    assert_eq!(sealed_flow.policy.as_ref().map(|p| p.id.as_str()), Some(sealed.id.as_str()));
    api.rejected("PATCH", &format!("/api/v1/flows/{}", sealed_flow.id), Some(json!({"repository_id": "plain-repo"})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
    let reply = api
        .call("POST", "/api/v1/flows", Some(json!({"name": "sealed-plain", "kind": "backup", "source": {"type": "vms", "vm_ids": ["vm-b"]}, "repository_id": "plain-repo", "policy_id": sealed.id})))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);

    // --- A group gives its policy to its flows, now and later.
    let group: GroupDetails = api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "web", "vm_ids": ["vm-c"]})), StatusCode::CREATED).await;
    let gflow = |name: &str| json!({"name": name, "kind": "backup", "source": {"type": "group", "group_id": group.group.id}, "repository_id": repo.id});
    let web_one: Flow = api.ok("POST", "/api/v1/flows", Some(gflow("web-one")), StatusCode::CREATED).await;
    assert_eq!(web_one.policy, None);
    let g: GroupDetails =
        api.ok("PATCH", &format!("/api/v1/protection-groups/{}", group.group.id), Some(json!({"policy_id": gold.id})), StatusCode::OK).await;
    assert_eq!(g.group.policy.as_ref().map(|p| p.name.as_str()), Some("gold"));
    let groups: Vec<ProtectionGroup> = api.ok("GET", "/api/v1/protection-groups", None, StatusCode::OK).await;
    assert_eq!(groups[0].policy.as_ref().map(|p| p.id.as_str()), Some(gold.id.as_str()));
    let one: Value = api.ok("GET", &format!("/api/v1/flows/{}", web_one.id), None, StatusCode::OK).await;
    assert_eq!(one["flow"]["policy"]["name"], "gold", "{one}");
    assert_eq!(one["flow"]["retention"], json!({"keep_last": 1}));
    let web_two: Flow = api.ok("POST", "/api/v1/flows", Some(gflow("web-two")), StatusCode::CREATED).await;
    assert_eq!((web_two.policy.as_ref().map(|p| p.name.as_str()), web_two.immutable_days), (Some("gold"), 7));
    let mut own = gflow("web-three");
    own["retention"] = json!({"keep_last": 9});
    let reply = api.call("POST", "/api/v1/flows", Some(own)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(reply.body.contains("gold") && reply.body.contains("group"), "{}", reply.body);

    // --- A policy copying to the repository the group's flows write to is
    // refused for the group (422 naming the repository and the flows), and
    // for them in the ASSETS bulk action; the group keeps its policy.
    let offsite: Policy = api
        .ok("POST", "/api/v1/policies", Some(json!({"name": "copy-local", "copy_target": {"repository_id": repo.id}})), StatusCode::CREATED)
        .await;
    let msg = api.rejected("PATCH", &format!("/api/v1/protection-groups/{}", group.group.id), Some(json!({"policy_id": offsite.id})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await.message;
    assert!(msg.contains(&format!("'{}'", repo.name)) && msg.contains("'web-one'") && msg.contains("'web-two'") && msg.contains("second repository"), "{msg}");
    let reply = api.call("PATCH", &format!("/api/v1/protection-groups/{}", group.group.id), Some(json!({"policy_id": offsite.id}))).await;
    let e: ErrorBody = reply.json();
    assert!(e.details.iter().any(|d| d.field == "policy_id"), "{e:?}");
    let g: GroupDetails = api.ok("GET", &format!("/api/v1/protection-groups/{}", group.group.id), None, StatusCode::OK).await;
    assert_eq!(g.group.policy.as_ref().map(|p| p.name.as_str()), Some("gold"), "the group keeps its policy");
    let r: AssignVmsReport =
        api.ok("POST", &format!("/api/v1/policies/{}/assign-vms", offsite.id), Some(json!({"vm_ids": ["vm-c"], "preview": true})), StatusCode::OK).await;
    let item = &r.report.items[0];
    assert_eq!(item.outcome, BulkOutcome::Refused, "{item:?}");
    assert!(item.message.contains(&format!("copies restore points to '{}'", repo.name)) && item.message.contains("'web-one'"), "{}", item.message);
    assert!(r.flows.is_empty(), "{:?}", r.flows);
    assert_eq!(api.call("DELETE", &format!("/api/v1/policies/{}", offsite.id), None).await.status, StatusCode::NO_CONTENT);

    // --- Removal is refused while used, with who uses it.
    let reply = api.call("DELETE", &format!("/api/v1/policies/{}", gold.id), None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let e: ErrorBody = reply.json();
    assert_eq!(e.code, "policy_in_use");
    assert!(e.message.contains("'nightly'") && e.message.contains("'web-two'") && e.message.contains("group 'web'"), "{}", e.message);
    for f in [&nightly.id, &plain_flow.id, &web_one.id, &web_two.id] {
        let detached: Flow = api.ok("PATCH", &format!("/api/v1/flows/{f}"), Some(json!({"policy_id": null})), StatusCode::OK).await;
        assert_eq!((detached.policy, detached.retention.keep_last), (None, Some(1)), "a detached flow keeps the policy's values");
    }
    let reply = api.call("DELETE", &format!("/api/v1/policies/{}", gold.id), None).await;
    assert!(reply.body.contains("group 'web'") && !reply.body.contains("nightly"), "{}", reply.body);
    api.ok::<GroupDetails>("PATCH", &format!("/api/v1/protection-groups/{}", group.group.id), Some(json!({"policy_id": null})), StatusCode::OK).await;
    let reply = api.call("DELETE", &format!("/api/v1/policies/{}", gold.id), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = api.call("DELETE", &format!("/api/v1/policies/{}", gold.id), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);

    // --- ASSETS bulk action: the flows protecting the chosen VMs follow a
    // policy; a preview first changes nothing.
    let assign = format!("/api/v1/policies/{}/assign-vms", sealed.id);
    let body = json!({"vm_ids": ["vm-a", "vm-c", "ghost"], "preview": true});
    let r: AssignVmsReport = api.ok("POST", &assign, Some(body), StatusCode::OK).await;
    assert!(r.preview_only);
    assert_eq!(r.flows.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["nightly", "web-one", "web-two"]);
    let outcome = |r: &AssignVmsReport, vm: &str| r.report.items.iter().find(|i| i.vm_id == vm).map(|i| (i.outcome, i.message.clone())).unwrap();
    let (o, m) = outcome(&r, "vm-a");
    assert_eq!(o, BulkOutcome::Refused, "plain-flow writes to the unencrypted repository: {m}");
    assert!(m.contains("'plain-flow'") && m.contains("'nightly'"), "{m}");
    assert_eq!(outcome(&r, "vm-c").0, BulkOutcome::Done);
    assert_eq!(outcome(&r, "ghost").0, BulkOutcome::Refused);
    assert_eq!((r.report.done, r.report.refused, r.preview.flows.len()), (1, 2, 3));
    let still: Value = api.ok("GET", &format!("/api/v1/flows/{}", nightly.id), None, StatusCode::OK).await;
    assert!(still["flow"]["policy"].is_null(), "a preview changes nothing: {still}");
    let r: AssignVmsReport = api.ok("POST", &assign, Some(json!({"vm_ids": ["vm-a", "vm-c"]})), StatusCode::OK).await;
    assert!(!r.preview_only && r.flows.len() == 3);
    for (f, expected) in [(&nightly.id, Some("sealed")), (&web_one.id, Some("sealed")), (&plain_flow.id, None)] {
        let v: Value = api.ok("GET", &format!("/api/v1/flows/{f}"), None, StatusCode::OK).await;
        assert_eq!(v["flow"]["policy"]["name"].as_str(), expected, "{v}");
    }
    let r: AssignVmsReport = api.ok("POST", &assign, Some(json!({"vm_ids": ["vm-b", "vm-c"]})), StatusCode::OK).await;
    assert_eq!((r.report.unchanged, r.flows.len()), (2, 0), "{:?}", r.report);
    api.rejected("POST", &assign, Some(json!({"vm_ids": []})), StatusCode::BAD_REQUEST, "invalid_field").await;
    assert_eq!(api.call("POST", "/api/v1/policies/nope/assign-vms", Some(json!({"vm_ids": ["vm-a"]}))).await.status, StatusCode::NOT_FOUND);

    // --- A policy's verify schedule verifies its flows' repository (the
    // repository's own schedules off).
    api.ok::<Value>("PATCH", &format!("/api/v1/repositories/{}/maintenance-schedule", repo.id), Some(json!({"verify_schedule": "", "gc_schedule": ""})), StatusCode::OK).await;
    let verifies = || {
        let db = db.clone();
        async move { jobs::Entity::find().filter(jobs::Column::Kind.eq("verify")).count(&db).await.unwrap() }
    };
    let mut plan = std::collections::HashMap::new();
    let t0 = Utc::now();
    let runner = &api.f.state.runner;
    sendense::runner::scheduler::maintenance_tick(runner, &mut plan, t0).await.unwrap();
    sendense::runner::scheduler::maintenance_tick(runner, &mut plan, t0 + Duration::minutes(6)).await.unwrap();
    assert_eq!(verifies().await, 0, "no policy with a verify schedule is followed");
    api.ok::<Policy>("PATCH", &format!("/api/v1/policies/{}", sealed.id), Some(json!({"verify_schedule": "*/5 * * * *"})), StatusCode::OK).await;
    let mut plan = std::collections::HashMap::new();
    sendense::runner::scheduler::maintenance_tick(runner, &mut plan, t0).await.unwrap();
    assert_eq!(verifies().await, 0, "the first look only plans");
    sendense::runner::scheduler::maintenance_tick(runner, &mut plan, t0 + Duration::minutes(6)).await.unwrap();
    assert_eq!(verifies().await, 1, "sealed-flow's repository is verified on its policy's schedule");

    // Every change is in the audit log.
    let audit: Value = api.ok("GET", "/api/v1/audit?limit=200", None, StatusCode::OK).await;
    let text = audit.to_string();
    for action in ["policy.create", "policy.update", "policy.delete", "policy.preview", "policy.assign_vms", "flow.update", "group.update"] {
        assert!(text.contains(action), "{action} in the audit log");
    }
}
