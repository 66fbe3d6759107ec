//! ASSETS upkeep through the real router: the managed-VM list filtered by
//! power (with platform, group, protection), and the bulk actions on a
//! selection, each VM with its own outcome: add to a protection group (VMs
//! in another group refused by name, VMs in it already unchanged) and back
//! up now through the VM's backup flow (no flow, a disabled flow, a backup
//! already running: refused, said per VM). On SQLite and PostgreSQL.

mod support;

#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::vm_contexts;
use serde_json::json;
use shared_types::auth::Role;
use shared_types::audit::AuditPage;
use shared_types::bulk::{BulkOutcome, BulkReport, BulkVmResult};
use shared_types::error::ErrorBody;
use shared_types::flow::Flow;
use shared_types::groups::GroupDetails;
use shared_types::vms::VmContextPage;
use support::api::Api;
use support::rows::{self, Job};
use support::Fixture;

#[tokio::test]
async fn vm_filters_and_bulk_actions_on_sqlite() {
    filters_and_bulk_actions_on(support::fixture().await).await;
}

#[tokio::test]
async fn vm_filters_and_bulk_actions_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    filters_and_bulk_actions_on(support::postgres_fixture(&cluster.url(), "bulk").await).await;
}


fn names(p: &VmContextPage) -> Vec<&str> {
    p.items.iter().map(|v| v.name.as_str()).collect()
}

fn of<'a>(r: &'a BulkReport, vm: &str) -> &'a BulkVmResult {
    r.items.iter().find(|i| i.vm_id == vm).unwrap_or_else(|| panic!("{vm} in {r:?}"))
}

async fn filters_and_bulk_actions_on(f: Fixture) {
    let db = f.state.db.clone();
    let repo = ensure_local(&db, f.data.path()).await.unwrap();
    rows::platform(&db, "plat-prod", "prod").await;
    rows::platform(&db, "plat-lab", "lab").await;
    for (id, platform, name) in [("vm-a", "plat-prod", "app-a"), ("vm-b", "plat-prod", "app-b"), ("vm-c", "plat-lab", "lab-c"), ("vm-d", "plat-lab", "lab-d")] {
        rows::vm(&db, id, platform, name).await;
    }
    let mut b = vm_contexts::Entity::find_by_id("vm-b".to_string()).one(&db).await.unwrap().unwrap().into_active_model();
    b.power = Set("stopped".into());
    b.update(&db).await.unwrap();
    let (_, viewer) = f.user_with_role("watcher", Role::Viewer).await;
    let api = Api::admin(f).await;

    // Power, alone and with the platform; a word that is no power state is refused.
    let stopped: VmContextPage = api.ok("GET", "/api/v1/vm-contexts?power=stopped", None, StatusCode::OK).await;
    assert_eq!((names(&stopped), stopped.total), (vec!["app-b"], 1));
    let running: VmContextPage = api.ok("GET", "/api/v1/vm-contexts?power=running&platform=plat-prod", None, StatusCode::OK).await;
    assert_eq!(names(&running), vec!["app-a"]);
    let paged: VmContextPage = api.ok("GET", "/api/v1/vm-contexts?power=running&limit=1&offset=1", None, StatusCode::OK).await;
    assert_eq!((names(&paged), paged.total), (vec!["lab-c"], 3));
    let reply = api.call("GET", "/api/v1/vm-contexts?power=off", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    // Groups: web (empty), db holding lab-d.
    let web: GroupDetails = api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "web"})), StatusCode::CREATED).await;
    let dbg: GroupDetails = api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "db", "vm_ids": ["vm-d"]})), StatusCode::CREATED).await;
    let web_id = web.group.id.clone();

    // Add to group: each VM with its outcome; the one in another group is refused by name.
    let body = json!({"group_id": web_id, "vm_ids": ["vm-a", "vm-d", "ghost", "vm-a"]});
    let r: BulkReport = api.ok("POST", "/api/v1/vm-contexts/bulk/add-to-group", Some(body.clone()), StatusCode::OK).await;
    assert_eq!(r.items.len(), 3, "duplicates dropped: {r:?}");
    assert_eq!((r.done, r.unchanged, r.refused), (1, 0, 2));
    assert_eq!((of(&r, "vm-a").outcome, of(&r, "vm-a").vm_name.as_str()), (BulkOutcome::Done, "app-a"));
    let d = of(&r, "vm-d");
    assert_eq!(d.outcome, BulkOutcome::Refused);
    assert!(d.message.contains("'db'"), "{}", d.message);
    assert!(of(&r, "ghost").message.contains("No managed VM"), "{r:?}");
    let again: BulkReport = api.ok("POST", "/api/v1/vm-contexts/bulk/add-to-group", Some(body), StatusCode::OK).await;
    assert_eq!((again.done, again.unchanged), (0, 1));
    // The group filter now finds it; lab-d stayed in db.
    let in_web: VmContextPage = api.ok("GET", &format!("/api/v1/vm-contexts?group={web_id}"), None, StatusCode::OK).await;
    assert_eq!(names(&in_web), vec!["app-a"]);
    let in_db: VmContextPage = api.ok("GET", &format!("/api/v1/vm-contexts?group={}", dbg.group.id), None, StatusCode::OK).await;
    assert_eq!(names(&in_db), vec!["lab-d"]);
    // Bad requests: no VM, no such group, unknown field; a viewer may not.
    let e = api.refused("/api/v1/vm-contexts/bulk/add-to-group", json!({"group_id": web_id, "vm_ids": []}), StatusCode::BAD_REQUEST, "invalid_field").await;
    assert!(e.contains("at least one"), "{e}");
    api.refused("/api/v1/vm-contexts/bulk/add-to-group", json!({"group_id": "nope", "vm_ids": ["vm-b"]}), StatusCode::NOT_FOUND, "group_not_found").await;
    let reply = api.call("POST", "/api/v1/vm-contexts/bulk/add-to-group", Some(json!({"group_id": web_id, "vm_ids": ["vm-b"], "x": 1}))).await;
    assert!(reply.status.is_client_error(), "{}", reply.body);
    let reply = api.f.call("POST", "/api/v1/vm-contexts/bulk/add-to-group", Some(&viewer), Some(json!({"group_id": web_id, "vm_ids": ["vm-b"]}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let unchanged: VmContextPage = api.ok("GET", "/api/v1/vm-contexts?ungrouped=true", None, StatusCode::OK).await;
    assert_eq!(names(&unchanged), vec!["app-b", "lab-c"], "nothing else moved");

    // Back up now: app-a through the web group's flow; app-b in no flow;
    // lab-c in a disabled flow; lab-d's flow is fine but a backup of it runs.
    let flow = |name: &str, source: serde_json::Value| json!({"name": name, "kind": "backup", "source": source, "repository_id": repo.id});
    let web_flow: Flow = api.ok("POST", "/api/v1/flows", Some(flow("web-nightly", json!({"type": "group", "group_id": web_id}))), StatusCode::CREATED).await;
    let lab_flow: Flow = api.ok("POST", "/api/v1/flows", Some(flow("lab-c-flow", json!({"type": "vms", "vm_ids": ["vm-c"]}))), StatusCode::CREATED).await;
    api.ok::<serde_json::Value>("POST", &format!("/api/v1/flows/{}/disable", lab_flow.id), None, StatusCode::OK).await;
    api.ok::<Flow>("POST", "/api/v1/flows", Some(flow("db-flow", json!({"type": "group", "group_id": dbg.group.id}))), StatusCode::CREATED).await;
    let now = Utc::now();
    rows::job(&db, Job {
        id: "running-d", kind: "backup", status: "running", started: now, finished: None, bytes: (0, 0),
        repository: Some(&repo.id), vm: Some("vm-d"), target_platform: None, backup_type: Some("full"), flow: None,
    })
    .await;

    let r: BulkReport =
        api.ok("POST", "/api/v1/vm-contexts/bulk/backup-now", Some(json!({"vm_ids": ["vm-a", "vm-b", "vm-c", "vm-d"]})), StatusCode::OK).await;
    assert_eq!((r.done, r.refused), (1, 3), "{r:?}");
    assert_eq!(r.items.iter().map(|i| i.vm_id.as_str()).collect::<Vec<_>>(), vec!["vm-a", "vm-b", "vm-c", "vm-d"], "in the request's order");
    let a = of(&r, "vm-a");
    assert_eq!((a.outcome, a.flow.as_ref().map(|f| f.name.as_str())), (BulkOutcome::Done, Some("web-nightly")));
    let job: serde_json::Value = api.ok("GET", &format!("/api/v1/jobs/{}", a.job_id.as_deref().expect("a job")), None, StatusCode::OK).await;
    assert_eq!(job["job"]["flow_id"].as_str(), Some(web_flow.id.as_str()), "{job}");
    assert_eq!(job["job"]["repository"]["id"].as_str().or(job["job"]["repository_id"].as_str()), Some(repo.id.as_str()), "{job}");
    assert!(of(&r, "vm-b").message.contains("In no backup flow"), "{r:?}");
    assert!(of(&r, "vm-c").message.contains("lab-c-flow"), "{r:?}");
    let d = of(&r, "vm-d");
    assert!(d.message.contains("already being backed up") && d.job_id.is_none(), "{d:?}");
    // Bad requests.
    api.refused("/api/v1/vm-contexts/bulk/backup-now", json!({"vm_ids": ["bad\u{1}id"]}), StatusCode::BAD_REQUEST, "invalid_field").await;
    let too_many: Vec<String> = (0..1001).map(|i| format!("vm-{i}")).collect();
    api.refused("/api/v1/vm-contexts/bulk/backup-now", json!({"vm_ids": too_many}), StatusCode::BAD_REQUEST, "invalid_field").await;
    let reply = api.f.call("POST", "/api/v1/vm-contexts/bulk/backup-now", Some(&viewer), Some(json!({"vm_ids": ["vm-a"]}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let _: ErrorBody = reply.json();

    // Both actions are in the audit log with what they did.
    let audit: AuditPage = api.ok("GET", "/api/v1/audit?limit=500", None, StatusCode::OK).await;
    let targets: Vec<(&str, &str)> = audit.entries.iter().map(|e| (e.action.as_str(), e.target.as_str())).collect();
    assert!(targets.contains(&("group.add_vms", "web (+1 of 3 VMs)")), "{targets:?}");
    assert!(targets.contains(&("backup.start", "1 of 4 VM(s) queued")), "{targets:?}");
}

#[tokio::test]
async fn the_upkeep_routes_and_filters_are_in_the_openapi_document() {
    let f = support::fixture().await;
    let reply = f.call("GET", "/api/v1/openapi.json", None, None).await;
    let doc: serde_json::Value = reply.json();
    for path in ["/vm-contexts/bulk/add-to-group", "/vm-contexts/bulk/backup-now", "/backup/{id}/chain"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    let params = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
    };
    assert!(params("/vm-contexts").contains(&"power".to_string()));
    for p in ["immutable", "from", "to", "vm", "repository", "type", "status", "limit", "offset"] {
        assert!(params("/backup/list").contains(&p.to_string()), "{p} not documented on /backup/list");
    }
    for schema in ["BulkReport", "BulkVmResult", "BulkOutcome", "PointChain", "ChainRelation"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} missing");
    }
}
