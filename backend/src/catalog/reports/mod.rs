//! Reports and analytics over the catalog's history (`GET /api/v1/reports/*`,
//! types in `shared_types::reports`). Every figure comes from the `jobs`
//! rows, which the catalog keeps for good (`housekeeping` prunes only their
//! per-second samples and log lines), so a report reaches back as far as the
//! period asks (365 days at most) whatever the job-history retention.
//! Days are whole UTC days; the last one is today, up to now.

pub mod backups;
pub mod change_rate;
pub mod rpo;
pub mod storage;
pub mod success;
pub mod throughput;

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::reports::ReportWindow;

use crate::db::entities::{jobs, vm_contexts};

/// The period's days: `days` whole UTC days ending today.
#[derive(Debug, Clone, Copy)]
pub struct Days {
    pub start: DateTime<Utc>,
    pub n: usize,
    pub now: DateTime<Utc>,
}

impl Days {
    pub fn new(days: u32, now: DateTime<Utc>) -> Days {
        let today = now.duration_trunc(Duration::days(1)).unwrap_or(now);
        let days = days.max(1);
        Days { start: today - Duration::days(i64::from(days) - 1), n: days as usize, now }
    }

    /// The day `at` falls on, if inside the period.
    pub fn index(&self, at: DateTime<Utc>) -> Option<usize> {
        if at > self.now {
            return None;
        }
        let i = (at - self.start).num_seconds().div_euclid(86_400);
        (0..self.n as i64).contains(&i).then_some(i as usize)
    }

    /// Midnight UTC of day `i`.
    pub fn day(&self, i: usize) -> DateTime<Utc> {
        self.start + Duration::days(i as i64)
    }

    pub fn window(&self) -> ReportWindow {
        ReportWindow { days: self.n as u32, start: self.start, end: self.now }
    }
}

/// Jobs of `kinds` that finished (completed, failed or cancelled) from
/// `since` to now.
pub async fn finished_jobs(db: &DatabaseConnection, kinds: &[JobKind], since: DateTime<Utc>) -> Result<Vec<jobs::Model>, DbErr> {
    let ended = [JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled];
    jobs::Entity::find()
        .filter(jobs::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())))
        .filter(jobs::Column::Status.is_in(ended.iter().map(|s| s.as_str())))
        .filter(jobs::Column::FinishedAt.gte(since))
        .all(db)
        .await
}

/// Seconds a job ran (`None` without both ends).
pub fn run_seconds(job: &jobs::Model) -> Option<u64> {
    let (s, f) = (job.started_at?, job.finished_at?);
    u64::try_from((f - s).num_seconds()).ok()
}

/// Id to name of every managed VM.
pub async fn vm_names(db: &DatabaseConnection) -> Result<HashMap<String, String>, DbErr> {
    Ok(vm_contexts::Entity::find()
        .select_only()
        .column(vm_contexts::Column::Id)
        .column(vm_contexts::Column::Name)
        .into_tuple::<(String, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// The name of `id` in `names`, or what says it was removed.
pub fn name_of(names: &HashMap<String, String>, id: &str) -> String {
    names.get(id).cloned().unwrap_or_else(|| format!("removed ({id})"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn days_end_today_and_index_whole_utc_days() {
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 10, 30, 0).unwrap();
        let d = Days::new(7, now);
        assert_eq!(d.start, Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap());
        assert_eq!(d.index(d.start), Some(0));
        assert_eq!(d.index(now), Some(6));
        assert_eq!(d.index(d.start - Duration::seconds(1)), None);
        assert_eq!(d.index(now + Duration::seconds(1)), None);
        assert_eq!(d.day(6), Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap());
    }
}
