//! The jobs' history over a window (`GET /api/v1/telemetry/history`): per
//! time step the bytes moved (from the jobs' samples), the throughput and
//! the jobs that finished; per repository and per platform the jobs that
//! finished and what they moved. Every figure comes from the `jobs` and
//! `job_samples` rows; nothing is estimated.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::jobs::JobStatus;
use shared_types::telemetry::{HistoryShare, HistoryStep, HistoryWindow, JobTally, TelemetryHistory};

use super::to_u64;
use crate::db::entities::{job_samples, jobs, vm_contexts};

/// The window ending at `now`, in whole steps (the last one is under way).
pub async fn history(db: &DatabaseConnection, window: HistoryWindow, now: DateTime<Utc>) -> Result<TelemetryHistory, DbErr> {
    let step = Duration::seconds(window.bucket_seconds());
    let last_step = now.duration_trunc(step).unwrap_or(now);
    let steps_n = window.seconds() / window.bucket_seconds();
    let start = last_step - step * (steps_n as i32 - 1);
    let index = |at: DateTime<Utc>| -> Option<usize> {
        let i = (at - start).num_seconds().div_euclid(window.bucket_seconds());
        (0..steps_n).contains(&i).then_some(i as usize)
    };

    // Jobs that ran in the window: finished in it, or not finished.
    let rows = jobs::Entity::find()
        .filter(Condition::any().add(jobs::Column::FinishedAt.gte(start)).add(jobs::Column::FinishedAt.is_null()))
        .all(db)
        .await?;
    let by_id: HashMap<&str, &jobs::Model> = rows.iter().map(|j| (j.id.as_str(), j)).collect();

    let mut steps: Vec<HistoryStep> = (0..steps_n)
        .map(|i| HistoryStep { start: start + step * i as i32, jobs: JobTally::default(), mean_bps: 0, peak_bps: 0 })
        .collect();

    // Bytes moved per step: the growth of each job's counters between its
    // samples, plus what a job finished with after its last sample.
    let samples: Vec<(String, DateTime<Utc>, i64, i64, i64)> = job_samples::Entity::find()
        .select_only()
        .column(job_samples::Column::JobId)
        .column(job_samples::Column::At)
        .column(job_samples::Column::BytesRead)
        .column(job_samples::Column::BytesWritten)
        .column(job_samples::Column::ThroughputBps)
        .filter(job_samples::Column::At.gte(start))
        .order_by_asc(job_samples::Column::JobId)
        .order_by_asc(job_samples::Column::At)
        .into_tuple()
        .all(db)
        .await?;
    let mut per_second: BTreeMap<i64, u64> = BTreeMap::new();
    let mut last_seen: HashMap<&str, (u64, u64)> = HashMap::new();
    for (job_id, at, read, written, bps) in &samples {
        *per_second.entry(at.timestamp()).or_default() += to_u64(*bps);
        let (read, written) = (to_u64(*read), to_u64(*written));
        let previous = match last_seen.get(job_id.as_str()) {
            Some(p) => Some(*p),
            // A job's first sample counts from zero when the job started in
            // the window; one that started before is counted from here on.
            None => by_id.get(job_id.as_str()).and_then(|j| j.started_at).filter(|s| *s >= start).map(|_| (0, 0)),
        };
        if let (Some((r0, w0)), Some(i)) = (previous, index(*at)) {
            steps[i].jobs.bytes_read += read.saturating_sub(r0);
            steps[i].jobs.bytes_written += written.saturating_sub(w0);
        }
        last_seen.insert(job_id.as_str(), (read, written));
    }
    for job in &rows {
        let Some(i) = job.finished_at.and_then(index) else { continue };
        let tally = &mut steps[i].jobs;
        count_outcome(tally, &job.status);
        let sampled = last_seen.get(job.id.as_str()).copied();
        let started_in_window = job.started_at.is_some_and(|s| s >= start);
        if let Some((r, w)) = sampled.or(started_in_window.then_some((0, 0))) {
            tally.bytes_read += to_u64(job.bytes_read).saturating_sub(r);
            tally.bytes_written += to_u64(job.bytes_written).saturating_sub(w);
        }
    }
    // Throughput: the jobs' summed rate per sampled second; per step its
    // mean over the seconds with a job running, and its peak.
    let mut sums: HashMap<usize, (u64, u64)> = HashMap::new();
    for (second, bps) in &per_second {
        let Some(i) = DateTime::from_timestamp(*second, 0).and_then(index) else { continue };
        steps[i].peak_bps = steps[i].peak_bps.max(*bps);
        let e = sums.entry(i).or_default();
        e.0 += bps;
        e.1 += 1;
    }
    for (i, (sum, n)) in sums {
        steps[i].mean_bps = sum.checked_div(n).unwrap_or(0);
    }

    // Per repository and per platform: the jobs that finished in the window.
    let finished: Vec<&jobs::Model> = rows.iter().filter(|j| j.finished_at.is_some_and(|f| f >= start)).collect();
    let vm_ids: Vec<String> = finished.iter().filter_map(|j| j.vm_context_id.clone()).collect();
    let vm_platform: HashMap<String, String> = if vm_ids.is_empty() {
        HashMap::new()
    } else {
        vm_contexts::Entity::find()
            .select_only()
            .column(vm_contexts::Column::Id)
            .column(vm_contexts::Column::PlatformId)
            .filter(vm_contexts::Column::Id.is_in(vm_ids))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let mut per_repository: HashMap<String, JobTally> = HashMap::new();
    let mut per_platform: HashMap<String, JobTally> = HashMap::new();
    let mut totals = JobTally::default();
    for job in &finished {
        let add = |tally: &mut JobTally| {
            count_outcome(tally, &job.status);
            tally.bytes_read += to_u64(job.bytes_read);
            tally.bytes_written += to_u64(job.bytes_written);
        };
        add(&mut totals);
        if let Some(repository) = &job.repository_id {
            add(per_repository.entry(repository.clone()).or_default());
        }
        let platform = job.target_platform_id.clone().or_else(|| job.vm_context_id.as_ref().and_then(|v| vm_platform.get(v).cloned()));
        if let Some(platform) = platform {
            add(per_platform.entry(platform).or_default());
        }
    }
    let (repository_names, platform_names) = super::repository_and_platform_names(db).await?;
    Ok(TelemetryHistory {
        window,
        bucket_seconds: window.bucket_seconds() as u64,
        start,
        end: now,
        steps,
        totals,
        repositories: shares(per_repository, &repository_names),
        platforms: shares(per_platform, &platform_names),
    })
}

fn count_outcome(tally: &mut JobTally, status: &str) {
    match JobStatus::parse(status) {
        Some(JobStatus::Completed) => tally.completed += 1,
        Some(JobStatus::Failed) => tally.failed += 1,
        Some(JobStatus::Cancelled) => tally.cancelled += 1,
        _ => {}
    }
}

/// Busiest first (most jobs, then most bytes), then by name. A row whose
/// repository or platform was removed since keeps its id and says so.
fn shares(tallies: HashMap<String, JobTally>, names: &HashMap<String, String>) -> Vec<HistoryShare> {
    let mut out: Vec<HistoryShare> = tallies
        .into_iter()
        .map(|(id, jobs)| {
            let name = names.get(&id).cloned().unwrap_or_else(|| format!("removed ({id})"));
            HistoryShare { id, name, jobs }
        })
        .collect();
    out.sort_by(|a, b| {
        let count = |t: &JobTally| t.completed + t.failed + t.cancelled;
        count(&b.jobs)
            .cmp(&count(&a.jobs))
            .then((b.jobs.bytes_read + b.jobs.bytes_written).cmp(&(a.jobs.bytes_read + a.jobs.bytes_written)))
            .then(a.name.cmp(&b.name))
    });
    out
}
