//! The catalog prunes its own growth: job throughput samples and log lines
//! older than the job-history retention, sessions that expired (or were
//! revoked) more than a day ago, audit entries older than the audit
//! retention, and notification deliveries that ended (delivered or given
//! up) longer ago than the job-history retention (alerts themselves stay). The scheduler runs [`prune`] once a day; jobs and restore
//! points themselves are kept.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::db::entities::{audit_log, job_logs, job_samples, notification_deliveries, sessions};

/// Default days job samples and log lines are kept.
pub const DEFAULT_JOB_HISTORY_DAYS: u32 = 90;
/// Default days the audit log is kept.
pub const DEFAULT_AUDIT_DAYS: u32 = 400;

/// How long the catalog keeps what grows without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub job_history_days: u32,
    pub audit_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { job_history_days: DEFAULT_JOB_HISTORY_DAYS, audit_days: DEFAULT_AUDIT_DAYS }
    }
}

/// Rows removed by one [`prune`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub job_samples: u64,
    pub job_logs: u64,
    pub sessions: u64,
    pub audit: u64,
    pub notifications: u64,
}

/// Deletes what `retention` no longer keeps as of `now`.
pub async fn prune(db: &impl ConnectionTrait, retention: Retention, now: DateTime<Utc>) -> Result<Pruned, DbErr> {
    let jobs_before = now - Duration::days(i64::from(retention.job_history_days));
    let audit_before = now - Duration::days(i64::from(retention.audit_days));
    // A day of slack: a session that just ended still explains a 401.
    let sessions_before = now - Duration::days(1);
    let job_samples = job_samples::Entity::delete_many().filter(job_samples::Column::At.lt(jobs_before)).exec(db).await?.rows_affected;
    let job_logs = job_logs::Entity::delete_many().filter(job_logs::Column::At.lt(jobs_before)).exec(db).await?.rows_affected;
    let sessions = sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiresAt.lt(sessions_before).or(sessions::Column::RevokedAt.lt(sessions_before)))
        .exec(db)
        .await?
        .rows_affected;
    let audit = audit_log::Entity::delete_many().filter(audit_log::Column::At.lt(audit_before)).exec(db).await?.rows_affected;
    let notifications = notification_deliveries::Entity::delete_many()
        .filter(notification_deliveries::Column::State.ne(crate::alerts::delivery::STATE_PENDING))
        .filter(notification_deliveries::Column::CreatedAt.lt(jobs_before))
        .exec(db)
        .await?
        .rows_affected;
    Ok(Pruned { job_samples, job_logs, sessions, audit, notifications })
}
