//! `GET /api/v1/reports/*` through the real router on a catalog holding a
//! year of generated job history (`support/history.rs`, a test fixture:
//! the product records real jobs only), on SQLite and on PostgreSQL. Every
//! expected figure is computed here from the rows the generator wrote:
//! success rates per VM, flow and group; durations and sizes; change rate;
//! throughput; stored bytes per day, the least-squares slope and the day
//! the repository fills; RPO breaches. Then CSV, the SVG charts and the
//! printable page, bad parameters (4xx with a message), a viewer's access,
//! and how long each report takes over a year of history.

use std::time::Instant;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sendense::catalog::repositories::ensure_local;
use sendense::db::entities::repositories;
use serde_json::json;
use shared_types::auth::Role;
use shared_types::error::ErrorBody;
use shared_types::flow::Flow;
use shared_types::groups::GroupDetails;
use shared_types::reports::{
    BackupsReport, ChangeRateReport, ForecastOutcome, RpoReport, StorageReport, SuccessReport, ThroughputReport,
};

mod support;
#[path = "support/history.rs"]
mod history;
use history::{History, Row};
use support::api::Api;
use support::{rows, Fixture};

// The migrations' throw-away PostgreSQL server, shared rather than copied.
#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_a_year_of_history_on_sqlite() {
    reports_on(support::fixture().await, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_over_a_year_of_history_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    reports_on(support::postgres_fixture(&cluster.url(), "reports").await, "PostgreSQL").await;
}


/// Six VMs, a group of three, three scheduled flows and a year of jobs.
async fn seeded(f: Fixture) -> (Api, History) {
    let db = f.state.db.clone();
    let repo = ensure_local(&db, f.data.path()).await.unwrap();
    rows::platform(&db, "plat-h", "hist").await;
    let vms: Vec<String> = (0..6).map(|i| format!("vm-{i}")).collect();
    for v in &vms {
        rows::vm(&db, v, "plat-h", &format!("app-{}", &v[3..])).await;
    }
    let api = Api::admin(f).await;
    let group: GroupDetails =
        api.ok("POST", "/api/v1/protection-groups", Some(json!({"name": "front", "vm_ids": &vms[..3]})), StatusCode::CREATED).await;
    let flow = |name: &'static str, source: serde_json::Value, schedule: &'static str| {
        let body = json!({"name": name, "kind": "backup", "source": source, "repository_id": repo.id, "schedule": schedule});
        let api = &api;
        async move { api.ok::<Flow>("POST", "/api/v1/flows", Some(body), StatusCode::CREATED).await.id }
    };
    let daily = flow("front-nightly", json!({"type": "group", "group_id": group.group.id}), "0 2 * * *").await;
    let hourly = flow("db-hourly", json!({"type": "vms", "vm_ids": [&vms[3]]}), "0 * * * *").await;
    let weekly = flow("archive-weekly", json!({"type": "vms", "vm_ids": [&vms[4]]}), "0 3 * * 0").await;
    let h = history::write(&db, vms, group.group.id.clone(), [daily, hourly, weekly], repo.id.clone()).await;
    (api, h)
}

fn midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::days(1)).unwrap()
}

fn in_window<'a>(h: &'a History, kind: &'a str, start: DateTime<Utc>, end: DateTime<Utc>) -> impl Iterator<Item = &'a Row> + 'a {
    h.rows.iter().filter(move |r| r.kind == kind && r.finished >= start && r.finished <= end)
}

fn tally<'a>(rows: impl Iterator<Item = &'a Row>) -> (u64, u64, u64) {
    rows.fold((0, 0, 0), |(c, f, x), r| match r.status {
        "completed" => (c + 1, f, x),
        "failed" => (c, f + 1, x),
        _ => (c, f, x + 1),
    })
}

async fn reports_on(f: Fixture, label: &str) {
    let (api, h) = seeded(f).await;
    assert!(h.rows.len() > 1900, "a year of history: {} jobs", h.rows.len());
    let first = h.rows.iter().map(|r| r.started).min().unwrap();
    assert!(h.now - first >= Duration::days(365), "history reaches back a year");

    // Success per VM, flow and group over 30 days.
    let s: SuccessReport = api.ok("GET", "/api/v1/reports/success?days=30&by=vm", None, StatusCode::OK).await;
    assert_eq!(s.window.start, midnight(s.window.end) - Duration::days(29));
    let (start, end) = (s.window.start, s.window.end);
    for vm in &h.vms {
        let want = tally(in_window(&h, "backup", start, end).filter(|r| r.vm.as_ref() == Some(vm)));
        let row = s.rows.iter().find(|r| &r.id == vm).unwrap_or_else(|| panic!("{vm} in {:?}", s.rows));
        assert_eq!((row.outcomes.completed, row.outcomes.failed, row.outcomes.cancelled), want, "{vm}");
        let rate = want.0 as f64 * 100.0 / (want.0 + want.1) as f64;
        assert!((row.success_percent.unwrap() - rate).abs() < 1e-9, "{vm}: {:?} vs {rate}", row.success_percent);
        let last_failure = in_window(&h, "backup", start, end).filter(|r| r.vm.as_ref() == Some(vm) && r.status == "failed").map(|r| r.finished).max();
        assert_eq!(row.last_failure.map(|t| t.timestamp()), last_failure.map(|t| t.timestamp()), "{vm}");
    }
    let rates: Vec<f64> = s.rows.iter().filter_map(|r| r.success_percent).collect();
    assert!(rates.windows(2).all(|w| w[0] <= w[1]), "lowest rate first: {rates:?}");
    let all = tally(in_window(&h, "backup", start, end));
    assert_eq!((s.total.completed, s.total.failed, s.total.cancelled), all);
    assert_eq!(s.days.len(), 30);
    assert_eq!(s.days.iter().map(|d| d.outcomes.completed).sum::<u64>(), all.0);
    let today = tally(in_window(&h, "backup", midnight(end), end));
    assert_eq!(s.days[29].outcomes.completed, today.0);

    let by_group: SuccessReport = api.ok("GET", "/api/v1/reports/success?days=30&by=group", None, StatusCode::OK).await;
    let grouped = tally(in_window(&h, "backup", start, end).filter(|r| h.vms[..3].contains(r.vm.as_ref().unwrap())));
    let g = by_group.rows.iter().find(|r| r.id == h.group).unwrap();
    assert_eq!((g.name.as_str(), g.outcomes.completed, g.outcomes.failed, g.outcomes.cancelled), ("front", grouped.0, grouped.1, grouped.2));
    let none = by_group.rows.iter().find(|r| r.id.is_empty()).unwrap();
    assert_eq!(none.outcomes.completed + g.outcomes.completed, all.0);
    let by_flow: SuccessReport = api.ok("GET", "/api/v1/reports/success?days=30&by=flow", None, StatusCode::OK).await;
    let manual = tally(in_window(&h, "backup", start, end).filter(|r| r.flow.is_none()));
    let m = by_flow.rows.iter().find(|r| r.id.is_empty()).unwrap();
    assert_eq!((m.outcomes.completed, m.outcomes.failed), (manual.0, manual.1));
    assert_eq!(by_flow.rows.iter().find(|r| r.id == h.hourly_flow).unwrap().name, "db-hourly");
    let nightly = by_flow.rows.iter().find(|r| r.id == h.daily_flow).unwrap();
    assert_eq!((nightly.name.as_str(), nightly.outcomes.completed), ("front-nightly", grouped.0));
    assert!(by_flow.rows.iter().any(|r| r.id == h.weekly_flow));

    // Backup duration and size over 90 days.
    let b: BackupsReport = api.ok("GET", "/api/v1/reports/backups?days=90", None, StatusCode::OK).await;
    let (start, end) = (b.window.start, b.window.end);
    for vm in &h.vms {
        let done: Vec<&Row> = in_window(&h, "backup", start, end).filter(|r| r.vm.as_ref() == Some(vm) && r.status == "completed").collect();
        let row = b.vms.iter().find(|r| &r.id == vm).unwrap();
        let mean = done.iter().map(|r| (r.finished - r.started).num_seconds() as f64).sum::<f64>() / done.len() as f64;
        assert_eq!(row.runs, done.len() as u64, "{vm}");
        assert_eq!(row.full, done.iter().filter(|r| r.backup_type == Some("full")).count() as u64, "{vm}");
        assert!((row.mean_seconds.unwrap() - mean).abs() < 1e-6, "{vm}: {:?} vs {mean}", row.mean_seconds);
        assert_eq!(row.bytes_read, done.iter().map(|r| r.read as u64).sum::<u64>(), "{vm}");
        assert_eq!(row.bytes_written, done.iter().map(|r| r.written as u64).sum::<u64>(), "{vm}");
    }
    for (i, day) in b.days.iter().enumerate() {
        let from = start + Duration::days(i as i64);
        let done: Vec<&Row> = in_window(&h, "backup", from, from + Duration::days(1) - Duration::nanoseconds(1)).filter(|r| r.status == "completed").collect();
        assert_eq!(day.runs, done.len() as u64, "day {i}");
        assert_eq!(day.max_seconds, done.iter().map(|r| (r.finished - r.started).num_seconds() as u64).max(), "day {i}");
    }

    // Change rate over 30 days: the hourly VM's first backup is inside the
    // period, so its rate covers the days since.
    let c: ChangeRateReport = api.ok("GET", "/api/v1/reports/change-rate?days=30", None, StatusCode::OK).await;
    let (start, end) = (c.window.start, c.window.end);
    for vm in &h.vms[..4] {
        let done = || h.rows.iter().filter(|r| r.kind == "backup" && r.status == "completed" && r.vm.as_ref() == Some(vm));
        let incr: Vec<&Row> = done().filter(|r| r.finished >= start && r.finished <= end && r.backup_type == Some("incremental")).collect();
        let changed: i64 = incr.iter().map(|r| r.total).sum();
        let from = if done().any(|r| r.finished < start) { start } else { done().map(|r| r.finished).min().unwrap() };
        let per_day = changed as f64 / ((end - from).num_seconds() as f64 / 86_400.0).max(1.0);
        let row = c.vms.iter().find(|r| &r.id == vm).unwrap();
        assert_eq!((row.incrementals, row.changed_bytes), (incr.len() as u64, changed as u64), "{vm}");
        assert!((row.bytes_per_day as f64 - per_day).abs() <= 1.0, "{vm}: {} vs {per_day}", row.bytes_per_day);
        assert!((row.percent_per_day.unwrap() - per_day * 100.0 / (100 * history::GIB) as f64).abs() < 1e-6);
    }
    assert_eq!(c.days.iter().map(|d| d.changed_bytes).sum::<u64>(), c.vms.iter().map(|v| v.changed_bytes).sum::<u64>());

    // Throughput per day over 7 days: backups and restores.
    let t: ThroughputReport = api.ok("GET", "/api/v1/reports/throughput?days=7", None, StatusCode::OK).await;
    for (i, day) in t.days.iter().enumerate() {
        let from = t.window.start + Duration::days(i as i64);
        let done: Vec<&Row> = h
            .rows
            .iter()
            .filter(|r| matches!(r.kind, "backup" | "restore") && r.status == "completed" && r.finished >= from && r.finished < from + Duration::days(1))
            .collect();
        let read: u64 = done.iter().map(|r| r.read as u64).sum();
        let secs: u64 = done.iter().map(|r| ((r.finished - r.started).num_seconds() as u64).max(1)).sum();
        let peak = done.iter().map(|r| r.read as u64 / ((r.finished - r.started).num_seconds() as u64).max(1)).max().unwrap_or(0);
        assert_eq!((day.jobs, day.bytes_read, day.job_seconds, day.mean_bps, day.peak_bps), (done.len() as u64, read, secs, read / secs, peak), "day {i}");
    }

    // Storage over 90 days: stored bytes per day, the slope and the day it fills.
    let st: StorageReport = api.ok("GET", "/api/v1/reports/storage?days=90", None, StatusCode::OK).await;
    assert!(st.method.contains("least-squares"), "{}", st.method);
    let g = st.repositories.iter().find(|r| r.id == h.repository).unwrap();
    assert_eq!(g.points.len(), 90);
    let stored_by = |until: DateTime<Utc>| -> i64 {
        h.rows
            .iter()
            .filter(|r| r.finished < until && r.repository.as_deref() == Some(&h.repository))
            .map(|r| match r.kind {
                "backup" => r.written,
                "gc" => -r.written,
                _ => 0,
            })
            .sum()
    };
    let ys: Vec<f64> = (0..90).map(|i| stored_by(st.window.start + Duration::days(i + 1)) as f64).collect();
    for (i, p) in g.points.iter().enumerate() {
        assert_eq!(p.stored_bytes as f64, ys[i], "day {i}");
    }
    let n = ys.len() as f64;
    let (sx, sy) = ((0..90).map(|i| i as f64).sum::<f64>(), ys.iter().sum::<f64>());
    let sxy: f64 = ys.iter().enumerate().map(|(i, y)| i as f64 * y).sum();
    let sxx: f64 = (0..90).map(|i| (i * i) as f64).sum();
    let slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    assert!(slope > 0.0, "the history grows: {slope}");
    assert!((g.growth_bytes_per_day.unwrap() - slope).abs() / slope < 1e-9, "{:?} vs {slope}", g.growth_bytes_per_day);
    assert_eq!(g.outcome, ForecastOutcome::Fills);
    let free = g.free_bytes.expect("the repository's filesystem");
    let days = free as f64 / slope;
    assert!((g.days_to_full.unwrap() - days).abs() < 1e-6);
    let fills = st.window.end + Duration::seconds((days * 86_400.0) as i64);
    assert!((g.fills_on.unwrap() - fills).num_seconds().abs() <= 1, "{:?} vs {fills}", g.fills_on);
    println!("{label}: the repository grows {:.2} GiB a day and fills in {days:.0} days", slope / history::GIB as f64);

    // RPO over 90 days: breaches from the schedule-derived RPO.
    let rpo: RpoReport = api.ok("GET", "/api/v1/reports/rpo?days=90", None, StatusCode::OK).await;
    assert!(rpo.rule.contains("longest time between two consecutive runs"), "{}", rpo.rule);
    let (start, end) = (rpo.window.start, rpo.window.end);
    let rpo_of = [95_040i64, 95_040, 95_040, 3_960, 665_280];
    for (i, vm) in h.vms.iter().enumerate() {
        let row = rpo.vms.iter().find(|r| &r.id == vm).unwrap();
        if i == 5 {
            assert_eq!((row.rpo_seconds, row.compliant_now, row.breaches.len()), (None, None, 0), "manual backups only: no RPO");
            continue;
        }
        assert_eq!(row.rpo_seconds, Some(rpo_of[i] as u64), "{vm}");
        let since = if i == 3 { h.now - Duration::days(30) } else { h.now - Duration::days(history::DAYS) };
        let mut points: Vec<DateTime<Utc>> = h
            .rows
            .iter()
            .filter(|r| r.kind == "backup" && r.status == "completed" && !r.corrupt && r.vm.as_ref() == Some(vm))
            .map(|r| r.started)
            .collect();
        points.sort();
        let limit = Duration::seconds(rpo_of[i]);
        let mut want = Vec::new();
        let mut anchor = since;
        for p in points.iter().copied() {
            if p > anchor + limit {
                want.push((anchor + limit, Some(p)));
            }
            anchor = anchor.max(p);
        }
        if end > anchor + limit {
            want.push((anchor + limit, None));
        }
        want.retain(|(_, e)| e.unwrap_or(end) > start);
        let got: Vec<(i64, Option<i64>)> = row.breaches.iter().map(|b| (b.start.timestamp(), b.end.map(|e| e.timestamp()))).collect();
        let want_s: Vec<(i64, Option<i64>)> = want.iter().map(|(s, e)| (s.timestamp(), e.map(|e| e.timestamp()))).collect();
        assert_eq!(got, want_s, "{vm}");
        let seconds: i64 = want.iter().map(|(s, e)| (e.unwrap_or(end) - (*s).max(start)).num_seconds()).sum();
        assert!((row.breach_seconds as i64 - seconds).abs() <= 1, "{vm}");
        assert_eq!(row.last_good_point.map(|t| t.timestamp()), points.last().map(|t| t.timestamp()));
    }
    // vm-1 was off for five days 40 days ago; vm-2's point 20 days ago was corrupt.
    let overlaps = |vm: &str, at: DateTime<Utc>| rpo.vms.iter().find(|r| r.id == vm).unwrap().breaches.iter().any(|b| b.start <= at && b.end.is_none_or(|e| e >= at));
    assert!(overlaps(&h.vms[1], midnight(end) - Duration::days(38)));
    assert!(overlaps(&h.vms[3], midnight(end) - Duration::days(12) + Duration::hours(9)), "the hourly VM's six missing hours");
    let day = |ago: i64| rpo.days.iter().find(|d| d.day == midnight(end) - Duration::days(ago)).unwrap();
    assert!(day(38).in_breach >= 1 && day(38).vms == 4, "{:?}", day(38));
    assert!(rpo.vms.windows(2).all(|w| w[0].rpo_seconds.is_none() <= w[1].rpo_seconds.is_none()));

    // CSV: a header, a line per row, the raw figures.
    let reply = api.call("GET", "/api/v1/reports/success?days=30&by=vm&format=csv", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(reply.headers["content-disposition"], "attachment; filename=\"sendense-success-30d-by-vm.csv\"");
    let lines: Vec<Vec<&str>> = reply.body.trim_end().split("\r\n").map(|l| l.split(',').collect()).collect();
    assert_eq!(lines[0], ["VM", "Success rate", "Completed", "Failed", "Cancelled", "Last failure", "Last error"]);
    assert_eq!(lines.len(), s.rows.len() + 1);
    for (line, row) in lines[1..].iter().zip(&s.rows) {
        assert_eq!(line[0], row.name);
        assert_eq!(line[2].parse::<u64>().unwrap(), row.outcomes.completed);
        assert_eq!(line[1].parse::<f64>().ok().map(|p| (p * 100.0).round()), row.success_percent.map(|p| (p * 100.0).round()));
    }
    let days_csv = api.call("GET", "/api/v1/reports/rpo?days=7&format=csv&table=1", None).await;
    assert_eq!(days_csv.status, StatusCode::OK);
    assert!(days_csv.body.starts_with("VM,From,Until,In the period\r\n"), "{}", days_csv.body);
    let storage_csv = api.call("GET", "/api/v1/reports/storage?days=90&format=csv", None).await;
    let forecast_line = storage_csv.body.lines().nth(1).unwrap().to_owned();
    assert!(forecast_line.starts_with("local,") && forecast_line.contains(",fills,"), "{forecast_line}");

    // SVG chart and the printable page.
    let svg = api.call("GET", "/api/v1/reports/storage/chart?days=90", None).await;
    assert_eq!((svg.status, svg.headers["content-type"].to_str().unwrap()), (StatusCode::OK, "image/svg+xml"));
    assert!(svg.body.starts_with("<svg") && svg.body.trim_end().ends_with("</svg>"), "{}", &svg.body[..100]);
    assert!(svg.body.contains("<polyline") && svg.body.contains("local"), "the repository's line and name");
    let second = api.call("GET", "/api/v1/reports/success/chart?days=30&n=1", None).await;
    assert!(second.body.contains("completed") && second.body.contains("failed"));
    let page = api.call("GET", "/api/v1/reports/rpo/print?days=90", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.body.starts_with("<!DOCTYPE html>") && page.body.contains("<h1>RPO compliance</h1>"));
    assert_eq!(page.body.matches("<svg").count(), 1);
    assert_eq!(page.body.matches("</svg>").count(), 1);
    assert!(page.body.contains("<table>") && page.body.contains("app-1") && page.body.contains("@media print"));

    // Bad input: a 4xx that says what to change.
    let msg = api.error("/api/v1/reports/success?days=8", StatusCode::BAD_REQUEST, "invalid_field").await;
    assert!(msg.contains("7, 30, 90, 365"), "{msg}");
    api.error("/api/v1/reports/success?days=many", StatusCode::BAD_REQUEST, "invalid_query").await;
    let msg = api.error("/api/v1/reports/success?by=host", StatusCode::BAD_REQUEST, "invalid_query").await;
    assert!(msg.contains("vm") && msg.contains("group"), "{msg}");
    api.error("/api/v1/reports/backups?format=xml", StatusCode::BAD_REQUEST, "invalid_query").await;
    let msg = api.error("/api/v1/reports/rpo?format=csv&table=7", StatusCode::BAD_REQUEST, "invalid_field").await;
    assert!(msg.contains("0 = Per VM") && msg.contains("1 = Breaches"), "{msg}");
    api.error("/api/v1/reports/rpo?table=1", StatusCode::BAD_REQUEST, "invalid_field").await;
    let msg = api.error("/api/v1/reports/uptime/print", StatusCode::NOT_FOUND, "report_not_found").await;
    assert!(msg.contains("change-rate"), "{msg}");
    api.error("/api/v1/reports/rpo/chart?n=3", StatusCode::BAD_REQUEST, "invalid_field").await;
    api.error("/api/v1/reports/rpo/print?n=0", StatusCode::BAD_REQUEST, "invalid_field").await;
    api.error("/api/v1/reports/throughput?days=-1", StatusCode::BAD_REQUEST, "invalid_query").await;

    // The OpenAPI document describes every report, its JSON schema and its CSV.
    let doc: serde_json::Value = api.ok("GET", "/api/v1/openapi.json", None, StatusCode::OK).await;
    for (path, schema) in [
        ("/reports/success", "SuccessReport"),
        ("/reports/backups", "BackupsReport"),
        ("/reports/change-rate", "ChangeRateReport"),
        ("/reports/throughput", "ThroughputReport"),
        ("/reports/storage", "StorageReport"),
        ("/reports/rpo", "RpoReport"),
    ] {
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        assert_eq!(content["application/json"]["schema"]["$ref"], format!("#/components/schemas/{schema}"), "{path}: {content}");
        assert!(content["text/csv"].is_object(), "{path}: {content}");
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
    assert!(doc["paths"]["/reports/{report}/print"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
    assert!(doc["paths"]["/reports/{report}/chart"]["get"]["responses"]["200"]["content"]["image/svg+xml"].is_object());

    // A viewer reads reports.
    let (_, viewer) = api.f.user_with_role("watcher", Role::Viewer).await;
    let reply = api.f.call("GET", "/api/v1/reports/rpo?days=7", Some(&viewer), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = api.f.call("GET", "/api/v1/reports/rpo?days=7", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let _: ErrorBody = reply.json();

    // How long each report takes over the whole year.
    for path in [
        "/api/v1/reports/success?days=365&by=vm",
        "/api/v1/reports/success?days=365&by=group",
        "/api/v1/reports/backups?days=365",
        "/api/v1/reports/change-rate?days=365",
        "/api/v1/reports/throughput?days=365",
        "/api/v1/reports/storage?days=365",
        "/api/v1/reports/rpo?days=365",
        "/api/v1/reports/backups/print?days=365",
        "/api/v1/reports/rpo/chart?days=365",
    ] {
        let started = Instant::now();
        let reply = api.call("GET", path, None).await;
        let took = started.elapsed();
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        println!("{label}: {path} took {} ms ({} KB, {} jobs in the catalog)", took.as_millis(), reply.body.len() / 1024, h.rows.len());
        assert!(took.as_millis() < 1000, "{path} took {took:?}");
    }

    // A repository with only days of history has no forecast yet.
    repositories::Entity::update_many()
        .col_expr(repositories::Column::CreatedAt, Expr::value(Utc::now() - Duration::days(3)))
        .filter(repositories::Column::Id.eq(h.repository.clone()))
        .exec(&api.f.state.db)
        .await
        .unwrap();
    let st: StorageReport = api.ok("GET", "/api/v1/reports/storage?days=30", None, StatusCode::OK).await;
    let g = &st.repositories[0];
    assert_eq!((g.outcome, g.history_days, g.fills_on), (ForecastOutcome::NotEnoughHistory, 4, None));
}
