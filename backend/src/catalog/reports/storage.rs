//! Storage growth per repository and a forecast of when it fills.
//!
//! A repository's stored bytes at the end of each day are reconstructed
//! from the jobs that changed it: bytes its backup jobs wrote (failed and
//! cancelled ones included: their data stays until GC) minus the bytes its
//! GC jobs gave back, summed from its first job. The forecast fits a
//! least-squares line through those daily values and divides the
//! filesystem's free space now by the line's slope.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::reports::{ForecastOutcome, RepositoryGrowth, StoragePoint, StorageReport, FORECAST_MIN_DAYS};
use shared_types::repositories::Capacity;

use super::{finished_jobs, Days};
use crate::db::entities::{jobs, repositories};

pub fn method() -> String {
    format!(
        "Stored bytes at the end of each day = bytes written to the repository by backup jobs (failed ones included: \
         their data stays until GC) minus bytes given back by GC jobs, summed from the repository's first job. \
         Forecast: a least-squares straight line through the daily stored bytes of the period's days since the \
         repository was created (at least {FORECAST_MIN_DAYS} days); days until full = the filesystem's free space \
         now ÷ the line's slope (bytes per day). Other data on the same filesystem is not forecast."
    )
}

/// Growth faster than this many days to full is reported as not growing
/// (a century away).
const DAYS_TO_FULL_MAX: f64 = 36_500.0;

/// Slope (per step) of the least-squares line through `ys` at x = 0, 1, 2…
pub fn least_squares_slope(ys: &[f64]) -> Option<f64> {
    let n = ys.len();
    if n < 2 {
        return None;
    }
    let mean_x = (n - 1) as f64 / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    Some(sxy / sxx)
}

/// The forecast from the daily stored bytes and the free space now.
pub fn forecast(stored: &[f64], free_bytes: Option<u64>, now: DateTime<Utc>) -> (ForecastOutcome, Option<f64>, Option<f64>, Option<DateTime<Utc>>) {
    if stored.len() < FORECAST_MIN_DAYS as usize {
        return (ForecastOutcome::NotEnoughHistory, None, None, None);
    }
    let slope = least_squares_slope(stored);
    let Some(free) = free_bytes else { return (ForecastOutcome::CapacityUnknown, slope, None, None) };
    match slope {
        Some(s) if s > 0.0 && free as f64 / s <= DAYS_TO_FULL_MAX => {
            let days = free as f64 / s;
            let fills = now + Duration::seconds((days * 86_400.0).round() as i64);
            (ForecastOutcome::Fills, slope, Some(days), Some(fills))
        }
        _ => (ForecastOutcome::NotGrowing, slope, None, None),
    }
}

/// `capacity`: each repository's filesystem now (missing: unreadable).
pub async fn report(db: &DatabaseConnection, days: u32, capacity: &HashMap<String, Capacity>, now: DateTime<Utc>) -> Result<StorageReport, DbErr> {
    let d = Days::new(days, now);
    let repos = repositories::Entity::find().order_by_asc(repositories::Column::Name).all(db).await?;
    let ended = [JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled];
    // Before the period: one sum per repository and kind.
    let base: Vec<(Option<String>, String, Option<i64>)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::RepositoryId)
        .column(jobs::Column::Kind)
        .column_as(Expr::cust("CAST(SUM(bytes_written) AS BIGINT)"), "written")
        .filter(jobs::Column::Kind.is_in([JobKind::Backup.as_str(), JobKind::Gc.as_str()]))
        .filter(jobs::Column::Status.is_in(ended.iter().map(|s| s.as_str())))
        .filter(jobs::Column::FinishedAt.lt(d.start))
        .group_by(jobs::Column::RepositoryId)
        .group_by(jobs::Column::Kind)
        .into_tuple()
        .all(db)
        .await?;
    let sign = |kind: &str| if kind == JobKind::Gc.as_str() { -1 } else { 1 };
    let mut start_bytes: HashMap<String, i64> = HashMap::new();
    for (repo, kind, written) in base {
        let Some(repo) = repo else { continue };
        *start_bytes.entry(repo).or_default() += sign(&kind) * written.unwrap_or(0);
    }
    let mut deltas: HashMap<String, Vec<i64>> = HashMap::new();
    for job in finished_jobs(db, &[JobKind::Backup, JobKind::Gc], d.start).await? {
        let (Some(repo), Some(i)) = (job.repository_id, job.finished_at.and_then(|f| d.index(f))) else { continue };
        deltas.entry(repo).or_insert_with(|| vec![0; d.n])[i] += sign(&job.kind) * job.bytes_written;
    }
    let mut out = Vec::with_capacity(repos.len());
    for repo in repos {
        let created = repo.created_at.duration_trunc(Duration::days(1)).unwrap_or(repo.created_at);
        let first = d.index(created.max(d.start)).unwrap_or(d.n.saturating_sub(1));
        let mut stored = start_bytes.get(&repo.id).copied().unwrap_or(0);
        let day_deltas = deltas.remove(&repo.id).unwrap_or_else(|| vec![0; d.n]);
        let mut points = Vec::new();
        for (i, delta) in day_deltas.iter().enumerate() {
            stored += delta;
            if i >= first {
                points.push(StoragePoint { day: d.day(i), stored_bytes: u64::try_from(stored).unwrap_or(0) });
            }
        }
        let ys: Vec<f64> = points.iter().map(|p| p.stored_bytes as f64).collect();
        let cap = capacity.get(&repo.id);
        let (outcome, slope, days_to_full, fills_on) = forecast(&ys, cap.map(|c| c.free_bytes), now);
        out.push(RepositoryGrowth {
            id: repo.id,
            name: repo.name,
            history_days: points.len() as u32,
            points,
            growth_bytes_per_day: slope,
            total_bytes: cap.map(|c| c.total_bytes),
            free_bytes: cap.map(|c| c.free_bytes),
            outcome,
            days_to_full,
            fills_on,
        });
    }
    Ok(StorageReport { window: d.window(), method: method(), repositories: out })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn fits_a_line_and_forecasts_the_day_the_free_space_is_used() {
        assert_eq!(least_squares_slope(&[1.0, 3.0, 5.0, 7.0]), Some(2.0));
        // Noise around 10 per day: the slope stays close.
        let ys: Vec<f64> = (0..30).map(|i| 100.0 + 10.0 * i as f64 + if i % 2 == 0 { 3.0 } else { -3.0 }).collect();
        let s = least_squares_slope(&ys).unwrap();
        assert!((s - 10.0).abs() < 0.1, "{s}");
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap();
        let line: Vec<f64> = (0..10).map(|i| 1000.0 * i as f64).collect();
        let (o, _, days, at) = forecast(&line, Some(5_000_000), now);
        assert_eq!(o, ForecastOutcome::Fills);
        assert_eq!(days, Some(5000.0));
        assert_eq!(at, Some(now + Duration::days(5000)));
        assert_eq!(forecast(&line[..6], Some(1), now).0, ForecastOutcome::NotEnoughHistory);
        assert_eq!(forecast(&[5.0; 10], Some(1), now).0, ForecastOutcome::NotGrowing);
        assert_eq!(forecast(&line, None, now).0, ForecastOutcome::CapacityUnknown);
    }
}
