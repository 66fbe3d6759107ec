//! Throughput history: what data-moving jobs read per second of their run.
//! (TELEMETRY's 24 h / 7 day history comes from the per-second samples;
//! these are pruned after the job-history retention, so the long range
//! reads each job's totals.)

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::reports::{ThroughputDay, ThroughputReport};

use super::{finished_jobs, run_seconds, Days};
use crate::catalog::to_u64;

pub const METHOD: &str = "Completed backup, restore and replication jobs, by the day they finished. A job's rate = bytes \
    it read ÷ its running time (finish − start, at least one second). Mean per day = the day's bytes read ÷ the \
    day's summed running time; fastest job = the highest job rate that day.";

pub async fn report(db: &DatabaseConnection, days: u32, now: DateTime<Utc>) -> Result<ThroughputReport, DbErr> {
    let d = Days::new(days, now);
    let jobs = finished_jobs(db, &[JobKind::Backup, JobKind::Restore, JobKind::Replication], d.start).await?;
    let mut out: Vec<ThroughputDay> = (0..d.n)
        .map(|i| ThroughputDay { day: d.day(i), jobs: 0, bytes_read: 0, job_seconds: 0, mean_bps: 0, peak_bps: 0 })
        .collect();
    for job in jobs.iter().filter(|j| j.status == JobStatus::Completed.as_str()) {
        let (Some(seconds), Some(i)) = (run_seconds(job), job.finished_at.and_then(|f| d.index(f))) else { continue };
        let seconds = seconds.max(1);
        let read = to_u64(job.bytes_read);
        let day = &mut out[i];
        day.jobs += 1;
        day.bytes_read += read;
        day.job_seconds += seconds;
        day.peak_bps = day.peak_bps.max(read / seconds);
    }
    for day in &mut out {
        day.mean_bps = day.bytes_read.checked_div(day.job_seconds).unwrap_or(0);
    }
    let (read, seconds) = out.iter().fold((0u64, 0u64), |(r, s), d| (r + d.bytes_read, s + d.job_seconds));
    Ok(ThroughputReport {
        window: d.window(),
        method: METHOD.into(),
        mean_bps: read.checked_div(seconds).unwrap_or(0),
        peak_bps: out.iter().map(|d| d.peak_bps).max().unwrap_or(0),
        days: out,
    })
}
