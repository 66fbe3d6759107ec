//! `GET /api/v1/telemetry/health` (server, catalog, system sample, job
//! counts) and `GET /api/v1/telemetry/performance` (per-minute throughput
//! from the jobs' samples, today's bytes and outcomes) and
//! `GET /api/v1/telemetry/overview` (the COMMAND page: fleet health, platform
//! distribution, operations, throughput, storage efficiency) and
//! `GET /api/v1/telemetry/history` (24 h or 7 days per time step, repository
//! and platform; `catalog::job_history`). Every figure
//! comes from the catalog, the repositories or the live sampler.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde::Deserialize;
use shared_types::error::ErrorBody;
use shared_types::health::CatalogHealth;
use shared_types::jobs::JobStatus;
use shared_types::overview::{Overview, StorageTotals, ThroughputNow};
use shared_types::repositories::RepositoryStatus;
use shared_types::telemetry::{HistoryWindow, JobCounts, MinuteThroughput, Performance, TelemetryHealth, TelemetryHistory};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery};
use crate::catalog::{fleet, job_history, repositories as repo_logic, to_u64};
use crate::db::entities::{job_samples, jobs, repositories};
use crate::state::AppState;

/// Longest window `performance` covers.
const WINDOW_MAX_MINUTES: i64 = 24 * 60;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(performance)).routes(routes!(overview)).routes(routes!(history))
}

fn midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::days(1)).unwrap_or(now)
}

async fn job_counts(state: &AppState, now: DateTime<Utc>) -> Result<JobCounts, ApiError> {
    let count = |status: JobStatus, since: Option<DateTime<Utc>>| {
        let mut q = jobs::Entity::find().filter(jobs::Column::Status.eq(status.as_str()));
        if let Some(t) = since {
            q = q.filter(jobs::Column::FinishedAt.gte(t));
        }
        q.count(&state.db)
    };
    let today = Some(midnight(now));
    Ok(JobCounts {
        queued: count(JobStatus::Queued, None).await?,
        running: count(JobStatus::Running, None).await?,
        paused: count(JobStatus::Paused, None).await?,
        completed_today: count(JobStatus::Completed, today).await?,
        failed_today: count(JobStatus::Failed, today).await?,
        cancelled_today: count(JobStatus::Cancelled, today).await?,
    })
}

/// The server now: uptime, catalog, the latest system sample, jobs by state.
#[utoipa::path(get, path = "/telemetry/health", tag = "telemetry", responses((status = 200, body = TelemetryHealth)))]
async fn health(State(state): State<AppState>) -> Result<ApiJson<TelemetryHealth>, ApiError> {
    let now = Utc::now();
    let ping = state.db.ping().await;
    let catalog = CatalogHealth { ok: ping.is_ok(), backend: state.catalog_kind.as_str().to_owned(), error: ping.err().map(|e| e.to_string()) };
    let system = state.latest_health.borrow().clone();
    Ok(ApiJson(TelemetryHealth { server_time: now, uptime_seconds: state.uptime_seconds(), catalog, system, jobs: job_counts(&state, now).await? }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PerformanceQuery {
    /// Minutes of history, 1 to 1440 (default 60).
    minutes: Option<i64>,
}

/// Throughput per minute over the window, today's bytes and job outcomes.
#[utoipa::path(get, path = "/telemetry/performance", tag = "telemetry", params(PerformanceQuery),
    responses((status = 200, body = Performance), (status = 400, body = ErrorBody)))]
async fn performance(State(state): State<AppState>, ApiQuery(q): ApiQuery<PerformanceQuery>) -> Result<ApiJson<Performance>, ApiError> {
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=WINDOW_MAX_MINUTES).contains(&minutes) {
        return Err(ApiError::invalid_field("minutes", format!("use 1 to {WINDOW_MAX_MINUTES} minutes")));
    }
    let now = Utc::now();
    let start = (now - Duration::minutes(minutes - 1)).duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let samples = samples_since(&state, start).await?;
    // Sum the jobs' throughput per second, then average the seconds of each minute.
    let per_second = per_second(&samples);
    let peak_bps = per_second.values().copied().max().unwrap_or(0);
    let mut per_minute_sum: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (second, bps) in &per_second {
        let e = per_minute_sum.entry(second - second.rem_euclid(60)).or_default();
        e.0 += bps;
        e.1 += 1;
    }
    let per_minute = (0..minutes)
        .map(|i| {
            let minute = start + Duration::minutes(i);
            let (sum, n) = per_minute_sum.get(&minute.timestamp()).copied().unwrap_or((0, 0));
            MinuteThroughput { minute, throughput_bps: sum.checked_div(n).unwrap_or(0) }
        })
        .collect();
    let today: Vec<(i64, i64)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::BytesRead)
        .column(jobs::Column::BytesWritten)
        .filter(jobs::Column::CreatedAt.gte(midnight(now)))
        .into_tuple()
        .all(&state.db)
        .await?;
    Ok(ApiJson(Performance {
        per_minute,
        bytes_read_today: today.iter().map(|(r, _)| to_u64(*r)).sum(),
        bytes_written_today: today.iter().map(|(_, w)| to_u64(*w)).sum(),
        peak_bps,
        jobs: job_counts(&state, now).await?,
    }))
}

async fn samples_since(state: &AppState, start: DateTime<Utc>) -> Result<Vec<(DateTime<Utc>, i64)>, ApiError> {
    Ok(job_samples::Entity::find()
        .select_only()
        .column(job_samples::Column::At)
        .column(job_samples::Column::ThroughputBps)
        .filter(job_samples::Column::At.gte(start))
        .into_tuple()
        .all(&state.db)
        .await?)
}

/// The jobs' throughput summed per second.
fn per_second(samples: &[(DateTime<Utc>, i64)]) -> BTreeMap<i64, u64> {
    let mut out: BTreeMap<i64, u64> = BTreeMap::new();
    for (at, bps) in samples {
        *out.entry(at.timestamp()).or_default() += to_u64(*bps);
    }
    out
}

/// Throughput now (each running job's latest sample of the last 3 s) and
/// the peak second of today.
async fn throughput(state: &AppState, now: DateTime<Utc>) -> Result<ThroughputNow, ApiError> {
    let recent: Vec<(String, DateTime<Utc>, i64)> = job_samples::Entity::find()
        .select_only()
        .column(job_samples::Column::JobId)
        .column(job_samples::Column::At)
        .column(job_samples::Column::ThroughputBps)
        .filter(job_samples::Column::At.gte(now - Duration::seconds(3)))
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut latest: BTreeMap<String, (DateTime<Utc>, i64)> = BTreeMap::new();
    for (job, at, bps) in recent {
        let e = latest.entry(job).or_insert((at, bps));
        if at >= e.0 {
            *e = (at, bps);
        }
    }
    let running: Vec<String> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::Id)
        .filter(jobs::Column::Status.eq(JobStatus::Running.as_str()))
        .into_tuple()
        .all(&state.db)
        .await?;
    let current_bps = running.iter().filter_map(|id| latest.get(id)).map(|(_, bps)| to_u64(*bps)).sum();
    let peak_bps_today = per_second(&samples_since(state, midnight(now)).await?).values().copied().max().unwrap_or(0);
    let limit = state.runner.read_limit();
    Ok(ThroughputNow { current_bps, peak_bps_today, read_limit_bps: (limit > 0).then_some(limit) })
}

/// Storage efficiency over every repository that answers.
async fn storage(state: &AppState) -> Result<StorageTotals, ApiError> {
    let rows = repositories::Entity::find().all(&state.db).await?;
    let mut t = StorageTotals { repositories: rows.len() as u64, ..Default::default() };
    for row in rows {
        let r = repo_logic::describe(&state.data_dir, row, 0, &state.repo_stats).await;
        match r.status {
            RepositoryStatus::Unavailable => t.unavailable += 1,
            RepositoryStatus::Maintenance => t.in_maintenance += 1,
            RepositoryStatus::Degraded => t.degraded += 1,
            RepositoryStatus::Online => {}
        }
        if let Some(s) = r.stats {
            t.logical_bytes += s.logical_bytes;
            t.unique_bytes += s.unique_bytes;
            t.stored_bytes += s.stored_bytes;
            t.repository_bytes += s.repository_bytes;
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    t.dedup_ratio = ratio(t.logical_bytes, t.unique_bytes);
    t.compression_ratio = ratio(t.unique_bytes, t.stored_bytes);
    t.savings_ratio = if t.logical_bytes == 0 { 0.0 } else { 1.0 - ratio(t.repository_bytes, t.logical_bytes) };
    Ok(t)
}

/// Everything the COMMAND page shows: the fleet by health (the rule is
/// `shared_types::overview::fleet_health`), VMs per platform, jobs by
/// state, throughput now and today's peak, storage efficiency.
#[utoipa::path(get, path = "/telemetry/overview", tag = "telemetry", responses((status = 200, body = Overview)))]
async fn overview(State(state): State<AppState>) -> Result<ApiJson<Overview>, ApiError> {
    let now = Utc::now();
    let fleet = fleet::fleet(&state.db, now).await?;
    Ok(ApiJson(Overview {
        generated_at: now,
        fleet: fleet.counts,
        issues: fleet.issues,
        platforms: fleet.platforms,
        jobs: job_counts(&state, now).await?,
        throughput: throughput(&state, now).await?,
        storage: storage(&state).await?,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// `24h` (hourly steps, the default) or `7d` (6-hour steps).
    window: Option<HistoryWindow>,
}

/// Throughput, job counts and error rates over the last 24 hours or 7 days:
/// per time step, per repository and per platform, from the jobs and their
/// samples in the catalog.
#[utoipa::path(get, path = "/telemetry/history", tag = "telemetry", params(HistoryQuery),
    responses((status = 200, body = TelemetryHistory), (status = 400, body = ErrorBody)))]
async fn history(State(state): State<AppState>, ApiQuery(q): ApiQuery<HistoryQuery>) -> Result<ApiJson<TelemetryHistory>, ApiError> {
    let window = q.window.unwrap_or(HistoryWindow::Day);
    Ok(ApiJson(job_history::history(&state.db, window, Utc::now()).await?))
}
