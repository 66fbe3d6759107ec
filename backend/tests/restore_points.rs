//! Restore points upkeep through the real router: the list filtered by VM,
//! repository, type, status, immutability and date, paged, with 400 for
//! values it cannot use; one restore point's chain from the catalog's parent
//! links; delete refused inside the immutability window with its end in the
//! message, a viewer refused, a deleted full leaving its incrementals'
//! chain with the parent it lost. On SQLite and PostgreSQL.

mod support;

#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use sendense::catalog::repositories::ensure_local;
use shared_types::audit::AuditPage;
use shared_types::auth::Role;
use shared_types::backups::{BackupPage, ChainRelation, PointChain};
use support::api::Api;
use support::rows;
use support::Fixture;

#[tokio::test]
async fn restore_point_filters_chain_and_delete_on_sqlite() {
    filters_chain_and_delete_on(support::fixture().await).await;
}

#[tokio::test]
async fn restore_point_filters_chain_and_delete_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    filters_chain_and_delete_on(support::postgres_fixture(&cluster.url(), "points").await).await;
}

fn ids(p: &BackupPage) -> Vec<&str> {
    p.items.iter().map(|b| b.id.as_str()).collect()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn filters_chain_and_delete_on(f: Fixture) {
    let db = f.state.db.clone();
    let repo = ensure_local(&db, f.data.path()).await.unwrap();
    rows::platform(&db, "plat", "prod").await;
    rows::vm(&db, "vm-web", "plat", "web").await;
    rows::vm(&db, "vm-db", "plat", "db").await;
    let now = Utc::now();
    let day = Duration::days(1);
    let locked_until = now + Duration::days(7);
    let web = |id, parent, status, at| rows::Point { name: "web".into(), parent, status, at, ..rows::Point::new(id, "vm-web", &repo.id) };
    rows::point(&db, web("f1", None, "available", now - day * 3)).await;
    rows::point(&db, web("i1", Some("f1"), "available", now - day * 2)).await;
    rows::point(&db, web("i2", Some("i1"), "verified", now - day)).await;
    let db_point = rows::Point::new("d1", "vm-db", &repo.id);
    rows::point(&db, rows::Point { name: "db".into(), status: "corrupt", at: now - Duration::hours(1), immutable_until: Some(locked_until), ..db_point }).await;
    let (_, viewer) = f.user_with_role("watcher", Role::Viewer).await;
    let api = Api::admin(f).await;
    let list = |q: String| {
        let api = &api;
        async move { api.ok::<BackupPage>("GET", &format!("/api/v1/backup/list?{q}"), None, StatusCode::OK).await }
    };

    // Each filter alone, then together, newest first.
    assert_eq!(ids(&list(String::new()).await), vec!["d1", "i2", "i1", "f1"]);
    assert_eq!(ids(&list("vm=vm-web&type=incremental".into()).await), vec!["i2", "i1"]);
    assert_eq!(ids(&list("type=full".into()).await), vec!["d1", "f1"]);
    assert_eq!(ids(&list("status=verified".into()).await), vec!["i2"]);
    assert_eq!(ids(&list("status=corrupt".into()).await), vec!["d1"]);
    assert_eq!(ids(&list("immutable=true".into()).await), vec!["d1"]);
    assert_eq!(ids(&list("immutable=false".into()).await), vec!["i2", "i1", "f1"]);
    assert_eq!(ids(&list(format!("repository={}", repo.id)).await).len(), 4);
    assert_eq!(list("repository=elsewhere".into()).await.total, 0);
    let window = list(format!("from={}&to={}", stamp(now - day * 2 - Duration::hours(1)), stamp(now - Duration::hours(2)))).await;
    assert_eq!(ids(&window), vec!["i2", "i1"]);
    assert_eq!(ids(&list(format!("from={}&vm=vm-web", stamp(now - Duration::hours(30)))).await), vec!["i2"]);
    // Paging: the total counts every match.
    let page = list("limit=2&offset=1".into()).await;
    assert_eq!((ids(&page), page.total), (vec!["i2", "i1"], 4));
    let last = list("vm=vm-web&limit=2&offset=2".into()).await;
    assert_eq!((ids(&last), last.total), (vec!["f1"], 3));

    // Values the list cannot use: 400 with the field named.
    for q in [
        "type=differential", "status=broken", "immutable=maybe", "from=yesterday", "limit=0", "limit=1001", "to=2026-13-01T00:00:00Z",
        "from=1900-01-01T00:00:00Z", "to=%2B12345-01-01T00:00:00Z", "vm=%01",
    ] {
        let reply = api.call("GET", &format!("/api/v1/backup/list?{q}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{q}: {}", reply.body);
    }
    let e = api.error(&format!("/api/v1/backup/list?from={}&to={}", stamp(now), stamp(now - day)), StatusCode::BAD_REQUEST, "invalid_field").await;
    assert!(e.contains("must come before"), "{e}");

    // A point's chain: its full, itself, what reads from it.
    let chain: PointChain = api.ok("GET", "/api/v1/backup/i1/chain", None, StatusCode::OK).await;
    let got: Vec<(ChainRelation, &str)> = chain.links.iter().map(|l| (l.relation, l.backup.id.as_str())).collect();
    assert_eq!(got, vec![(ChainRelation::Ancestor, "f1"), (ChainRelation::This, "i1"), (ChainRelation::Descendant, "i2")]);
    assert_eq!((chain.missing_parent, chain.links[0].backup.vm_name.as_str()), (None, "web"));
    let alone: PointChain = api.ok("GET", "/api/v1/backup/d1/chain", None, StatusCode::OK).await;
    assert_eq!(alone.links.len(), 1);
    assert_eq!(api.call("GET", "/api/v1/backup/ghost/chain", None).await.status, StatusCode::NOT_FOUND);

    // Delete inside the immutability window: 409 with its end; the point stays.
    let reply = api.call("DELETE", "/api/v1/backup/d1", None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let e: shared_types::error::ErrorBody = reply.json();
    assert_eq!(e.code, "backup_immutable");
    assert!(e.message.contains(&locked_until.format("%Y-%m-%d").to_string()), "the date is in the message: {}", e.message);
    assert_eq!(list("vm=vm-db".into()).await.total, 1);
    // A viewer may not delete at all.
    let reply = api.f.call("DELETE", "/api/v1/backup/f1", Some(&viewer), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // Deleting the full (its snapshot is gone from the repository already):
    // the incrementals stay, their chain names the parent it lost.
    let reply = api.call("DELETE", "/api/v1/backup/f1", None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(ids(&list("vm=vm-web".into()).await), vec!["i2", "i1"]);
    let chain: PointChain = api.ok("GET", "/api/v1/backup/i2/chain", None, StatusCode::OK).await;
    assert_eq!(chain.links.iter().map(|l| l.backup.id.as_str()).collect::<Vec<_>>(), vec!["i1", "i2"]);
    assert_eq!(chain.missing_parent.as_deref(), Some("snap-f1"));
    assert_eq!(api.call("DELETE", "/api/v1/backup/f1", None).await.status, StatusCode::NOT_FOUND);

    let audit: AuditPage = api.ok("GET", "/api/v1/audit?limit=500", None, StatusCode::OK).await;
    let deletes: Vec<(&str, u16)> = audit.entries.iter().filter(|e| e.action == "backup.delete" || e.target.contains("/backup/")).map(|e| (e.result.as_str(), e.status)).collect();
    assert!(deletes.contains(&("ok", 204)), "{deletes:?}");
    assert!(audit.entries.iter().any(|e| e.action == "backup.delete" && e.target == "web/snap-f1"), "{:?}", audit.entries);
}
