//! Global search (`GET /api/v1/search`) through the real router: VMs of a
//! real libvirt host brought under management, a group and a flow made
//! through the API, a restore point and its job from a real backup; the
//! ranking, every kind, the user's `%` and `_` taken literally, bad input,
//! roles, and the time a search takes beside 1,000 VMs and 20,000 restore
//! points and jobs; on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, Set};
use sendense::catalog::repositories::ensure_local;
use sendense::platforms::kvm::definition::{self, DiskDefinition, HostDefinition, VmDefinition};
use serde_json::{json, Value};
use shared_types::auth::Role;
use shared_types::error::ErrorBody;
use shared_types::groups::GroupDetails;
use shared_types::search::{MatchRank, SearchHit, SearchKind, SearchResults};

mod support;
use support::api::Api;
use support::kvm::TestHost;
use support::Fixture;

// The migrations' throw-away PostgreSQL server, shared rather than copied.
#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

/// A KVM host layout with `vms`, each with one small qcow2 disk.
fn host_dir(root: &Path, host: &str, vms: &[&str]) -> PathBuf {
    let dir = root.join(host);
    definition::write_host(
        &dir,
        &HostDefinition {
            name: host.into(),
            cpu_cores: 8,
            memory_mib: 16384,
            networks: vec![shared_types::platform::NetworkInfo { name: "lan".into(), bridge: None, cidr: None, ..Default::default() }],
        },
    )
    .unwrap();
    for (i, name) in vms.iter().enumerate() {
        definition::write_vm(
            &dir,
            &VmDefinition {
                name: (*name).into(),
                uuid: format!("00000000-0000-4000-8000-{i:012}"),
                vcpus: 1,
                memory_mib: 512,
                firmware: shared_types::platform::Firmware::Bios,
                os: shared_types::platform::GuestOs::Linux,
                power: shared_types::platform::PowerState::Stopped,
                role: None,
                nics: vec![],
                disks: vec![DiskDefinition { name: "disk0".into(), file: "disk0.qcow2".into(), format: shared_types::platform::DiskFormat::Qcow2, bus: "virtio".into() }],
            },
        )
        .unwrap();
        let disk = definition::vm_dir(&dir, name).join("disk0.qcow2");
        let out = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&disk).arg("4M").output().expect("qemu-img runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    dir
}

async fn search(api: &Api, q: &str) -> SearchResults {
    let path = format!("/api/v1/search?q={}", urlencode(q));
    api.ok("GET", &path, None, StatusCode::OK).await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn of(hits: &[SearchHit], kind: SearchKind) -> Vec<&str> {
    hits.iter().filter(|h| h.kind == kind).map(|h| h.title.as_str()).collect()
}

async fn group(api: &Api, name: &str, vm_ids: &[&String]) -> GroupDetails {
    api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": name, "vm_ids": vm_ids})), StatusCode::CREATED).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_finds_every_kind_and_takes_wildcards_literally() {
    ranks_finds_every_kind_and_takes_wildcards_literally_on(support::fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_works_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    ranks_finds_every_kind_and_takes_wildcards_literally_on(support::postgres_fixture(&cluster.url(), "ranks").await).await;
    stays_fast_on(support::postgres_fixture(&cluster.url(), "scale").await, "PostgreSQL").await;
}


async fn ranks_finds_every_kind_and_takes_wildcards_literally_on(f: Fixture) {
    let repo = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let root = tempfile::tempdir().unwrap();
    let names = ["myweb", "shop-web", "web-01", "web", "db-01"];
    let host = TestHost::start(host_dir(root.path(), "kvm-search-01", &names)).await;
    let platform = api.add_host(&host).await;
    let ids = api.manage(&platform, &names).await;
    let id = |name: &str| ids[names.iter().position(|n| *n == name).unwrap()].clone();

    // A group and a flow through the API; groups whose names hold % and _.
    let web_group = group(&api, "web-servers", &[&id("web"), &id("web-01")]).await;
    let flow: Value = api
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "web-nightly", "kind": "backup", "source": {"type": "group", "group_id": web_group.group.id}, "repository_id": repo.id, "schedule": "@daily"})),
            StatusCode::CREATED,
        )
        .await;
    for name in ["50%_off", "500-off", "db_team", "db-team"] {
        group(&api, name, &[]).await;
    }
    // A real restore point of web-01 and the job that made it.
    let point = api.back_up(&id("web-01"), "full").await;

    // Exact, prefix, word prefix, substring; the flow and group tie with
    // the prefix VM and come after it by kind.
    let r = search(&api, "WEB").await;
    assert_eq!(r.query, "WEB");
    let order: Vec<(SearchKind, &str, MatchRank)> = r.hits.iter().map(|h| (h.kind, h.title.as_str(), h.rank)).collect();
    assert_eq!(
        order,
        [
            (SearchKind::Vm, "web", MatchRank::Exact),
            (SearchKind::Vm, "web-01", MatchRank::Prefix),
            (SearchKind::Flow, "web-nightly", MatchRank::Prefix),
            (SearchKind::Group, "web-servers", MatchRank::Prefix),
            (SearchKind::Vm, "shop-web", MatchRank::WordPrefix),
            (SearchKind::Vm, "myweb", MatchRank::Substring),
        ],
        "{r:#?}"
    );
    let web = &r.hits[0];
    assert_eq!((web.id.clone(), web.route.clone()), (id("web"), format!("/assets?vm={}", id("web"))));
    assert_eq!(web.subtitle, "kvm-search-01 · stopped");
    assert_eq!(r.hits[2].route, format!("/flows?flow={}", flow["id"].as_str().unwrap()));
    assert_eq!(r.hits[3].route, format!("/assets?group={}", web_group.group.id));
    assert!(r.hits[3].subtitle.contains("2 VMs"), "{:?}", r.hits[3]);

    // A VM's name finds its restore points and jobs, newest first.
    let r = search(&api, "web-01").await;
    assert_eq!((r.hits[0].kind, r.hits[0].title.as_str()), (SearchKind::Vm, "web-01"));
    let rp = r.hits.iter().find(|h| h.kind == SearchKind::RestorePoint).expect("the restore point");
    assert_eq!((rp.id.as_str(), rp.rank), (point.as_str(), MatchRank::Exact));
    assert_eq!(rp.route, format!("/recovery?restore_point={point}"));
    assert!(rp.title.starts_with("web-01 · ") && rp.subtitle.starts_with("full restore point · local"), "{rp:?}");
    let job = r.hits.iter().find(|h| h.kind == SearchKind::Job).expect("the backup job");
    assert!(job.title == "Backup · web-01" && job.subtitle.starts_with("Completed"), "{job:?}");
    assert_eq!(job.route, format!("/flows?job={}", job.id));
    let kinds: Vec<SearchKind> = r.hits.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, [SearchKind::Vm, SearchKind::RestorePoint, SearchKind::Job], "{r:#?}");
    // ... and the start of an id finds one.
    let r = search(&api, &job.id[..8]).await;
    assert!(r.hits.iter().any(|h| h.id == job.id && h.kind == SearchKind::Job), "{r:#?}");

    // Platforms and repositories.
    let r = search(&api, "kvm-search").await;
    assert_eq!(of(&r.hits, SearchKind::Platform), ["kvm-search-01"]);
    assert_eq!(r.hits[0].route, format!("/platforms?platform={}", platform.id));
    assert!(r.hits[0].subtitle.starts_with("KVM/QEMU · "), "{:?}", r.hits[0]);
    let r = search(&api, "local").await;
    assert_eq!(r.hits[0].kind, SearchKind::Repository);
    assert_eq!(r.hits[0].route, format!("/repositories?repository={}", repo.id));

    // % and _ are the user's characters, not wildcards.
    assert_eq!(of(&search(&api, "50%").await.hits, SearchKind::Group), ["50%_off"]);
    assert_eq!(of(&search(&api, "%_").await.hits, SearchKind::Group), ["50%_off"]);
    assert_eq!(of(&search(&api, "db_").await.hits, SearchKind::Group), ["db_team"]);
    let r = search(&api, "db").await;
    assert_eq!(of(&r.hits, SearchKind::Vm), ["db-01"]);
    assert_eq!(of(&r.hits, SearchKind::Group), ["db-team", "db_team"]);
    assert!(search(&api, "nothing-like-this").await.hits.is_empty());

    // The limit bounds the answer.
    let r: SearchResults = api.ok("GET", "/api/v1/search?q=web&limit=2", None, StatusCode::OK).await;
    assert_eq!(r.hits.len(), 2);

    // Bad input: a 400 naming the field.
    for (path, field) in [
        ("/api/v1/search", "q"),
        ("/api/v1/search?q=", "q"),
        ("/api/v1/search?q=%20%20", "q"),
        ("/api/v1/search?q=web&limit=0", "limit"),
        ("/api/v1/search?q=web&limit=51", "limit"),
    ] {
        let reply = api.call("GET", path, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.body);
        let e: ErrorBody = reply.json();
        assert_eq!(e.details[0].field, field, "{path}: {}", reply.body);
    }
    let long = format!("/api/v1/search?q={}", "a".repeat(101));
    let e = api.error(&long, StatusCode::BAD_REQUEST, "invalid_field").await;
    assert!(e.contains("101 characters"), "{e}");
    api.error("/api/v1/search?q=web&limit=x", StatusCode::BAD_REQUEST, "invalid_query").await;

    // A viewer may search; nobody signed in may not.
    let (_, viewer) = api.f.user_with_role("watcher", Role::Viewer).await;
    let reply = api.f.call("GET", "/api/v1/search?q=web", Some(&viewer), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(api.f.call("GET", "/api/v1/search?q=web", None, None).await.status, StatusCode::UNAUTHORIZED);
    let doc: Value = api.ok("GET", "/api/v1/openapi.json", None, StatusCode::OK).await;
    assert!(doc["paths"]["/search"]["get"].is_object());
    assert!(doc["components"]["schemas"]["SearchResults"].is_object());
}

#[tokio::test]
async fn search_stays_fast_beside_a_thousand_vms_and_twenty_thousand_points_and_jobs() {
    stays_fast_on(support::fixture().await, "SQLite").await;
}

async fn stays_fast_on(f: Fixture, backend: &str) {
    use sendense::db::entities::{backups, jobs, platforms, vm_contexts};
    let repo = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let db = &api.f.state.db;
    let now = Utc::now();
    platforms::ActiveModel {
        id: Set("p".into()),
        name: Set("bench".into()),
        kind: Set("kvm".into()),
        address: Set("qemu:///bench".into()),
        status: Set("online".into()),
        last_discovery_at: Set(None),
        last_error: Set(None),
        discovered_vms: Set(1000),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let vms: Vec<vm_contexts::ActiveModel> = (0..1000)
        .map(|i| vm_contexts::ActiveModel {
            id: Set(format!("vm-{i:04}")),
            platform_id: Set("p".into()),
            platform_vm_id: Set(format!("uuid-{i}")),
            name: Set(format!("app-{i:04}")),
            vcpus: Set(2),
            memory_mib: Set(2048),
            power: Set("running".into()),
            power_since: Set(None),
            os: Set("linux".into()),
            firmware: Set("bios".into()),
            role: Set(None),
            capacity_bytes: Set(10 << 30),
            group_id: Set(None),
            status: Set("active".into()),
            created_at: Set(now),
            last_seen_at: Set(now),
        })
        .collect();
    sendense::catalog::inventory::insert_batched(db, vms).await.unwrap();
    let points: Vec<backups::ActiveModel> = (0..20_000)
        .map(|k| backups::ActiveModel {
            id: Set(format!("b-{k:05}")),
            vm_context_id: Set(format!("vm-{:04}", k % 1000)),
            job_id: Set(None),
            repository_id: Set(repo.id.clone()),
            snapshot_name: Set(format!("app-{:04}", k % 1000)),
            snapshot_id: Set(format!("s{k}")),
            parent_snapshot_id: Set(None),
            backup_type: Set("incremental".into()),
            status: Set("available".into()),
            logical_bytes: Set(1 << 30),
            bytes_read: Set(1 << 20),
            bytes_written: Set(1 << 19),
            created_at: Set(now - Duration::minutes(k)),
            immutable_until: Set(None),
            verified_at: Set(None),
            verify_reason: Set(None),
        })
        .collect();
    sendense::catalog::inventory::insert_batched(db, points).await.unwrap();
    let job_rows: Vec<jobs::ActiveModel> = (0..20_000)
        .map(|k| jobs::ActiveModel {
            id: Set(format!("j-{k:05}")),
            vm_context_id: Set(Some(format!("vm-{:04}", k % 1000))),
            repository_id: Set(Some(repo.id.clone())),
            kind: Set("backup".into()),
            backup_type: Set(Some("incremental".into())),
            status: Set("completed".into()),
            priority: Set(0),
            bytes_total: Set(1 << 30),
            bytes_read: Set(1 << 30),
            bytes_written: Set(1 << 19),
            created_at: Set(now - Duration::minutes(k)),
            updated_at: Set(now - Duration::minutes(k)),
            ..Default::default()
        })
        .collect();
    sendense::catalog::inventory::insert_batched(db, job_rows).await.unwrap();

    let mut report = Vec::new();
    for q in ["ap", "app-0999", "0999", "99", "bench", "zzz"] {
        let started = Instant::now();
        let r = search(&api, q).await;
        let ms = started.elapsed().as_millis();
        report.push(format!("{q:>9}: {:>2} hits in {ms} ms", r.hits.len()));
        assert!(ms < 1000, "searching {q} took {ms} ms");
        assert!(r.hits.len() <= 20);
        match q {
            // Two keystrokes: 20 hits, VMs first, by name.
            "ap" => assert_eq!(of(&r.hits, SearchKind::Vm)[..3], ["app-0000", "app-0001", "app-0002"]),
            "app-0999" => {
                let kinds: Vec<SearchKind> = r.hits.iter().map(|h| h.kind).collect();
                assert_eq!(kinds[0], SearchKind::Vm);
                // The newest 5 restore points and jobs of that VM (20 each).
                assert_eq!(kinds.iter().filter(|k| **k == SearchKind::RestorePoint).count(), 5, "{r:#?}");
                assert_eq!(kinds.iter().filter(|k| **k == SearchKind::Job).count(), 5, "{r:#?}");
                assert_eq!(r.hits[1].id, "b-00999");
            }
            "0999" => assert_eq!(r.hits[0].title, "app-0999"),
            "bench" => assert_eq!(r.hits[0].kind, SearchKind::Platform),
            "zzz" => assert!(r.hits.is_empty()),
            _ => {}
        }
    }
    println!("{backend}: search beside 1,000 VMs, 20,000 restore points, 20,000 jobs:\n{}", report.join("\n"));
}
