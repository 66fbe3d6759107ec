//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4).
//!
//! Two sources:
//! * counted in this process since it started ([`METRICS`]): HTTP request
//!   latencies by route, job durations and bytes moved by kind (recorded
//!   once when a job ends), WebSocket clients connected now;
//! * read from the catalog and the repositories at each scrape
//!   ([`render`]): jobs by kind and state, each managed VM's newest restore
//!   point age and whether its backup RPO is breached, replication RPO
//!   breaches, repository capacity, usage and last verify / GC results.
//!
//! Backup RPO: a VM in an enabled, scheduled backup flow whose newest
//! restore point is older than twice the flow's schedule interval (the gap
//! between its next two runs), or that has none once the flow is that old.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use crate::db::entities::{backups, flows, jobs, replication_flows, repositories, vm_contexts};
use crate::engine::stats::StatsCache;

/// Bucket bounds (seconds) of the HTTP latency histogram.
const HTTP_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket bounds (seconds) of the job duration histogram.
const JOB_BUCKETS: [f64; 10] = [1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0];
/// Finished jobs remembered so a job is counted once (then forgotten in bulk).
const SEEN_JOBS: usize = 100_000;

/// A histogram: per-bucket counts (not cumulative), sum and count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Default)]
struct Counted {
    /// (method, route, status class) → latencies.
    http: BTreeMap<(String, String, String), Histogram>,
    /// (kind, outcome) → durations.
    job_seconds: BTreeMap<(String, String), Histogram>,
    /// kind → bytes.
    bytes_read: BTreeMap<String, u64>,
    bytes_written: BTreeMap<String, u64>,
    seen: HashSet<String>,
}

/// What this process counted since it started.
#[derive(Default)]
pub struct Metrics {
    counted: Mutex<Counted>,
    ws_clients: AtomicI64,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Counts a WebSocket client while it lives.
pub struct WsClient(());

impl Drop for WsClient {
    fn drop(&mut self) {
        METRICS.ws_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn counted(&self) -> std::sync::MutexGuard<'_, Counted> {
        self.counted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One HTTP request answered: `route` is the matched route pattern
    /// (never a raw path: ids would make a series each).
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let class = format!("{}xx", status / 100);
        self.counted().http.entry((method.to_string(), route.to_string(), class)).or_default().observe(&HTTP_BUCKETS, seconds);
    }

    /// A job as it changed: counted once, when it has ended.
    pub fn job_changed(&self, job: &jobs::Model) {
        let (Some(started), Some(finished)) = (job.started_at, job.finished_at) else { return };
        let mut c = self.counted();
        if c.seen.len() >= SEEN_JOBS {
            c.seen.clear();
        }
        if !c.seen.insert(job.id.clone()) {
            return;
        }
        let seconds = (finished - started).num_milliseconds().max(0) as f64 / 1000.0;
        c.job_seconds.entry((job.kind.clone(), job.status.clone())).or_default().observe(&JOB_BUCKETS, seconds);
        *c.bytes_read.entry(job.kind.clone()).or_default() += u64::try_from(job.bytes_read).unwrap_or(0);
        *c.bytes_written.entry(job.kind.clone()).or_default() += u64::try_from(job.bytes_written).unwrap_or(0);
    }

    /// A WebSocket client connected; counted until the guard drops.
    pub fn ws_client(&self) -> WsClient {
        self.ws_clients.fetch_add(1, Ordering::Relaxed);
        WsClient(())
    }
}

/// Times every API request and counts it under its route pattern.
pub async fn track(matched: Option<axum::extract::MatchedPath>, req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = req.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let route = matched.as_ref().map(|m| m.as_str()).unwrap_or("unmatched");
    METRICS.http_request(&method, route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// The text exposition being written: families with HELP and TYPE.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], bounds: &[f64], h: &Histogram) {
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += h.buckets.get(i).copied().unwrap_or(0);
            let le = number(*bound);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &l, cumulative as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The whole exposition: what this process counted, then the catalog's and
/// the repositories' state now.
pub async fn render(db: &DatabaseConnection, data_dir: &std::path::Path, stats: &Arc<StatsCache>) -> Result<String, sea_orm::DbErr> {
    let mut out = Out(String::with_capacity(16 * 1024));
    counted(&mut out);
    catalog(&mut out, db, data_dir, stats).await?;
    Ok(out.0)
}

fn counted(out: &mut Out) {
    let c = METRICS.counted();
    out.family("sendense_http_request_duration_seconds", "histogram", "Time to answer HTTP requests, by method, route and status class.");
    for ((method, route, class), h) in &c.http {
        out.histogram("sendense_http_request_duration_seconds", &[("method", method), ("route", route), ("status", class)], &HTTP_BUCKETS, h);
    }
    out.family("sendense_job_duration_seconds", "histogram", "Run time of the jobs that ended since the server started, by kind and outcome.");
    for ((kind, outcome), h) in &c.job_seconds {
        out.histogram("sendense_job_duration_seconds", &[("kind", kind), ("outcome", outcome)], &JOB_BUCKETS, h);
    }
    out.family("sendense_job_read_bytes_total", "counter", "Bytes read by the jobs that ended since the server started, by kind.");
    for (kind, v) in &c.bytes_read {
        out.sample("sendense_job_read_bytes_total", &[("kind", kind)], *v as f64);
    }
    out.family("sendense_job_written_bytes_total", "counter", "Bytes written by the jobs that ended since the server started, by kind.");
    for (kind, v) in &c.bytes_written {
        out.sample("sendense_job_written_bytes_total", &[("kind", kind)], *v as f64);
    }
    drop(c);
    out.family("sendense_websocket_clients", "gauge", "Cockpit WebSocket connections open now.");
    out.sample("sendense_websocket_clients", &[], METRICS.ws_clients.load(Ordering::Relaxed).max(0) as f64);
}

/// The gap between a cron schedule's next two runs after `now`.
fn schedule_interval(pattern: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    let first = crate::catalog::schedule::next_run(pattern, now)?;
    let second = crate::catalog::schedule::next_run(pattern, first)?;
    Some(second - first)
}

async fn catalog(out: &mut Out, db: &DatabaseConnection, data_dir: &std::path::Path, stats: &Arc<StatsCache>) -> Result<(), sea_orm::DbErr> {
    let now = Utc::now();
    // Jobs by kind and state.
    let counts: Vec<(String, String, i64)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Kind)
        .column(jobs::Column::Status)
        .column_as(jobs::Column::Id.count(), "n")
        .group_by(jobs::Column::Kind)
        .group_by(jobs::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    out.family("sendense_jobs", "gauge", "Jobs in the catalog's history, by kind and state.");
    for (kind, state, n) in &counts {
        out.sample("sendense_jobs", &[("kind", kind), ("state", state)], *n as f64);
    }

    // Each managed VM's newest restore point.
    let vms = vm_contexts::Entity::find().all(db).await?;
    let newest: Vec<(String, Option<DateTime<Utc>>)> = backups::Entity::find()
        .select_only()
        .column(backups::Column::VmContextId)
        .column_as(backups::Column::CreatedAt.max(), "newest")
        .group_by(backups::Column::VmContextId)
        .into_tuple()
        .all(db)
        .await?;
    let newest: BTreeMap<String, DateTime<Utc>> = newest.into_iter().filter_map(|(id, at)| Some((id, at?))).collect();
    out.family("sendense_restore_point_age_seconds", "gauge", "Age of each managed VM's newest restore point.");
    for vm in &vms {
        if let Some(at) = newest.get(&vm.id) {
            out.sample("sendense_restore_point_age_seconds", &[("vm_id", &vm.id), ("vm", &vm.name)], (now - *at).num_seconds().max(0) as f64);
        }
    }

    // Backup RPO: the VMs of enabled, scheduled backup flows.
    let flows = flows::Entity::find().filter(flows::Column::Enabled.eq(true)).all(db).await?;
    let mut members = BTreeMap::new();
    for flow in &flows {
        members.insert(flow.id.clone(), crate::catalog::flows::vm_ids(db, flow).await?);
    }
    out.family("sendense_backup_rpo_breached", "gauge", "1 when a VM's newest restore point is older than twice its backup flow's schedule interval.");
    let mut breaches = 0;
    let names: BTreeMap<&str, &str> = vms.iter().map(|v| (v.id.as_str(), v.name.as_str())).collect();
    for flow in &flows {
        let Some(interval) = flow.schedule.as_deref().and_then(|s| schedule_interval(s, now)) else { continue };
        let limit = interval * 2;
        for vm_id in members.get(&flow.id).into_iter().flatten() {
            let breached = match newest.get(vm_id) {
                Some(at) => now - *at > limit,
                None => now - flow.created_at > limit,
            };
            breaches += usize::from(breached);
            let name = names.get(vm_id.as_str()).copied().unwrap_or("");
            out.sample("sendense_backup_rpo_breached", &[("vm_id", vm_id), ("vm", name), ("flow", &flow.name)], f64::from(u8::from(breached)));
        }
    }
    out.family("sendense_backup_rpo_breaches", "gauge", "VMs whose backup RPO is breached now.");
    out.sample("sendense_backup_rpo_breaches", &[], breaches as f64);

    // Replication RPO: a replica with no consistent point inside its interval.
    let replications = replication_flows::Entity::find().all(db).await?;
    out.family("sendense_replication_rpo_breached", "gauge", "1 when a replication's newest consistent point is older than its interval allows.");
    for r in &replications {
        let breached = r.rpo_alerted_at.is_some();
        out.sample("sendense_replication_rpo_breached", &[("replication", &r.name), ("vm_id", &r.vm_context_id)], f64::from(u8::from(breached)));
    }

    // Repositories: capacity, usage, last verify and GC.
    let repos = repositories::Entity::find().all(db).await?;
    let mut described = Vec::new();
    for row in repos {
        described.push(crate::catalog::repositories::describe(data_dir, row, 0, stats).await);
    }
    type Gauge = fn(&shared_types::repositories::Repository) -> Option<f64>;
    let gauges: [(&str, &str, Gauge); 8] = [
        ("sendense_repository_capacity_bytes", "Size of the filesystem a repository lives on.", |r| r.capacity.as_ref().map(|c| c.total_bytes as f64)),
        ("sendense_repository_free_bytes", "Space left on the filesystem a repository lives on.", |r| r.capacity.as_ref().map(|c| c.free_bytes as f64)),
        ("sendense_repository_stored_bytes", "Bytes the repository's own files take (packs, indexes, manifests).", |r| {
            r.stats.as_ref().map(|s| s.repository_bytes as f64)
        }),
        ("sendense_repository_restore_points", "Restore points in the repository.", |r| r.stats.as_ref().map(|s| s.snapshots as f64)),
        ("sendense_repository_up", "1 when the repository can be read.", |r| Some(f64::from(u8::from(r.stats.is_some())))),
        ("sendense_verify_last_timestamp_seconds", "When the repository's last verify ran (Unix time).", |r| {
            r.upkeep.last_verify.as_ref().map(|v| v.at.timestamp() as f64)
        }),
        ("sendense_gc_last_timestamp_seconds", "When the repository's last garbage collection ran (Unix time).", |r| {
            r.upkeep.last_gc.as_ref().map(|g| g.at.timestamp() as f64)
        }),
        ("sendense_gc_last_reclaimed_bytes", "Bytes the repository's last garbage collection gave back.", |r| {
            r.upkeep.last_gc.as_ref().map(|g| g.reclaimed_bytes as f64)
        }),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        for r in &described {
            if let Some(v) = value(r) {
                out.sample(name, &[("repository", &r.name)], v);
            }
        }
    }
    // With the verify's outcome as a label too.
    out.family("sendense_verify_last_damaged_restore_points", "gauge", "Restore points the repository's last verify found damaged.");
    for r in &described {
        if let Some(v) = &r.upkeep.last_verify {
            out.sample("sendense_verify_last_damaged_restore_points", &[("repository", &r.name), ("outcome", v.outcome.as_str())], v.damaged as f64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let mut h = Histogram::default();
        for v in [0.003, 0.02, 0.02, 7.0, 60.0] {
            h.observe(&HTTP_BUCKETS, v);
        }
        let mut out = Out(String::new());
        out.histogram("x_seconds", &[("route", "a\"b\\c")], &HTTP_BUCKETS, &h);
        let text = out.0;
        assert!(text.contains("x_seconds_bucket{route=\"a\\\"b\\\\c\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("le=\"0.025\"} 3\n"), "{text}");
        assert!(text.contains("le=\"10\"} 4\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("x_seconds_count{route=\"a\\\"b\\\\c\"} 5\n"), "{text}");
    }
}
