//! The schedule timeline (`GET /api/v1/schedules`): every run that starts on
//! its own in the next days — backup flows by their cron pattern,
//! replication flows by their interval, each repository's verify and GC,
//! and the verify runs policies ask of their flows' repositories —
//! with the duration each is expected to take from its own completed runs
//! (the median of the last ten), and the spans where runs share a
//! repository or platform.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::replication::ReplicationState;
use shared_types::schedules::{LoadTarget, Overlap, SchedulePolicy, ScheduleTimeline, ScheduledEntry, ScheduledKind, RUNS_MAX};

use super::{flows as flow_logic, replication as replication_logic, schedule, upkeep};
use crate::db::entities::{flows, jobs, policies, replication_flows, repositories, vm_contexts};

/// Completed runs the expected duration is the median of.
const HISTORY_RUNS: usize = 10;
/// Jobs of one flow queued this close together belong to one run of it.
const RUN_GAP_SECONDS: i64 = 60;
/// A run without history counts this long in the overlaps.
const UNKNOWN_SECONDS: i64 = 60;
/// Most overlaps listed.
const OVERLAPS_MAX: usize = 500;

pub async fn timeline(db: &DatabaseConnection, days: u32, now: DateTime<Utc>) -> Result<ScheduleTimeline, DbErr> {
    let end = now + Duration::days(i64::from(days));
    let mut entries = Vec::new();

    for flow in flows::Entity::find().filter(flows::Column::Enabled.eq(true)).order_by_asc(flows::Column::Name).all(db).await? {
        let Some(pattern) = flow.schedule.clone().filter(|s| !s.trim().is_empty()) else { continue };
        let Ok(cron) = schedule::parse(&pattern) else { continue };
        let (runs, truncated) = cron_runs(&cron, now, end);
        let mut loads = vec![LoadTarget::Repository { id: flow.repository_id.clone() }];
        loads.extend(vm_platforms(db, flow_logic::vm_ids(db, &flow).await?).await?.into_iter().map(|id| LoadTarget::Platform { id }));
        let (expected_seconds, history_runs) = flow_expected(db, &flow.id).await?;
        entries.push(ScheduledEntry {
            key: format!("backup:{}", flow.id),
            kind: ScheduledKind::Backup,
            id: flow.id,
            name: flow.name,
            describe: cron.describe(),
            schedule: pattern,
            expected_seconds,
            history_runs,
            runs,
            truncated,
            loads,
            policy: None,
        });
    }

    for flow in replication_flows::Entity::find().order_by_asc(replication_flows::Column::Name).all(db).await? {
        let state = replication_logic::state(&flow);
        if matches!(state, ReplicationState::Paused | ReplicationState::FailingOver | ReplicationState::FailedOver | ReplicationState::RollingBack) {
            continue;
        }
        let interval = Duration::seconds(flow.interval_seconds.max(60));
        let mut at = flow.next_sync_at.unwrap_or(now).max(now);
        let mut runs = Vec::new();
        while at < end && runs.len() < RUNS_MAX {
            runs.push(at);
            at += interval;
        }
        let truncated = at < end;
        let mut loads = vm_platforms(db, vec![flow.vm_context_id.clone()]).await?.into_iter().map(|id| LoadTarget::Platform { id }).collect::<Vec<_>>();
        loads.push(LoadTarget::Platform { id: flow.target_platform_id.clone() });
        loads.dedup();
        let durations = durations(db, jobs::Column::ReplicationId.eq(flow.id.clone()), JobKind::Replication).await?;
        let (expected_seconds, history_runs) = median(durations);
        entries.push(ScheduledEntry {
            key: format!("replication:{}", flow.id),
            kind: ScheduledKind::Replication,
            id: flow.id,
            name: flow.name,
            schedule: format!("every {}", words(flow.interval_seconds.max(60) as u64)),
            describe: format!("A sync every {}, from the next one due.", words(flow.interval_seconds.max(60) as u64)),
            expected_seconds,
            history_runs,
            runs,
            truncated,
            loads,
            policy: None,
        });
    }

    let repos = repositories::Entity::find().order_by_asc(repositories::Column::Name).all(db).await?;
    for repo in &repos {
        for (kind, job_kind, pattern) in [
            (ScheduledKind::Verify, JobKind::Verify, upkeep::verify_schedule(repo)),
            (ScheduledKind::Gc, JobKind::Gc, upkeep::gc_schedule(repo)),
        ] {
            let Some(pattern) = pattern else { continue };
            let Ok(cron) = schedule::parse(&pattern) else { continue };
            let (runs, truncated) = cron_runs(&cron, now, end);
            let durations = durations(db, jobs::Column::RepositoryId.eq(repo.id.clone()), job_kind).await?;
            let (expected_seconds, history_runs) = median(durations);
            entries.push(ScheduledEntry {
                key: format!("{}:{}", kind.as_str(), repo.id),
                kind,
                id: repo.id.clone(),
                name: repo.name.clone(),
                describe: cron.describe(),
                schedule: pattern,
                expected_seconds,
                history_runs,
                runs,
                truncated,
                loads: vec![LoadTarget::Repository { id: repo.id.clone() }],
                policy: None,
            });
        }
    }

    // The verify runs policies ask of the repositories their flows write to
    // (the scheduler runs them beside the repository's own).
    let policy_names: HashMap<String, String> = policies::Entity::find().all(db).await?.into_iter().map(|p| (p.id, p.name)).collect();
    for (repo_id, policy_id, pattern) in super::policies::verify_schedules(db).await? {
        let (Some(repo), Some(policy_name)) = (repos.iter().find(|r| r.id == repo_id), policy_names.get(&policy_id)) else { continue };
        let Ok(cron) = schedule::parse(&pattern) else { continue };
        let (runs, truncated) = cron_runs(&cron, now, end);
        let durations = durations(db, jobs::Column::RepositoryId.eq(repo.id.clone()), JobKind::Verify).await?;
        let (expected_seconds, history_runs) = median(durations);
        entries.push(ScheduledEntry {
            key: format!("verify:{}:{policy_id}", repo.id),
            kind: ScheduledKind::Verify,
            id: repo.id.clone(),
            name: format!("{} · policy {policy_name}", repo.name),
            describe: cron.describe(),
            schedule: pattern,
            expected_seconds,
            history_runs,
            runs,
            truncated,
            loads: vec![LoadTarget::Repository { id: repo.id.clone() }],
            policy: Some(SchedulePolicy { id: policy_id, name: policy_name.clone() }),
        });
    }

    let overlaps = overlaps(db, &entries).await?;
    Ok(ScheduleTimeline { start: now, end, entries, overlaps })
}

fn cron_runs(cron: &croner::Cron, now: DateTime<Utc>, end: DateTime<Utc>) -> (Vec<DateTime<Utc>>, bool) {
    let mut runs = Vec::new();
    for at in cron.iter_after(now) {
        if at >= end {
            return (runs, false);
        }
        if runs.len() == RUNS_MAX {
            return (runs, true);
        }
        runs.push(at);
    }
    (runs, false)
}

/// The distinct platforms of these managed VMs.
async fn vm_platforms(db: &DatabaseConnection, vm_ids: Vec<String>) -> Result<BTreeSet<String>, DbErr> {
    if vm_ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let ids: Vec<String> = vm_contexts::Entity::find()
        .select_only()
        .column(vm_contexts::Column::PlatformId)
        .filter(vm_contexts::Column::Id.is_in(vm_ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().collect())
}

/// Durations (seconds) of the newest completed jobs of `kind` matching `filter`.
async fn durations(db: &DatabaseConnection, filter: sea_orm::sea_query::SimpleExpr, kind: JobKind) -> Result<Vec<i64>, DbErr> {
    let rows: Vec<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::StartedAt)
        .column(jobs::Column::FinishedAt)
        .filter(filter)
        .filter(jobs::Column::Kind.eq(kind.as_str()))
        .filter(jobs::Column::Status.eq(JobStatus::Completed.as_str()))
        .order_by_desc(jobs::Column::FinishedAt)
        .limit(HISTORY_RUNS as u64)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|(s, f)| Some((f? - s?).num_seconds().max(0))).collect())
}

/// A backup flow's runs: its jobs grouped by when they were queued (a run
/// queues all of its VMs at once); a run lasts from its first job's start to
/// its last job's end. Only runs whose jobs all completed count.
async fn flow_expected(db: &DatabaseConnection, flow_id: &str) -> Result<(Option<u64>, u32), DbErr> {
    let rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, String)> = jobs::Entity::find()
        .select_only()
        .column(jobs::Column::CreatedAt)
        .column(jobs::Column::StartedAt)
        .column(jobs::Column::FinishedAt)
        .column(jobs::Column::Status)
        .filter(jobs::Column::FlowId.eq(flow_id))
        .filter(jobs::Column::Kind.eq(JobKind::Backup.as_str()))
        .order_by_desc(jobs::Column::CreatedAt)
        .limit(1000)
        .into_tuple()
        .all(db)
        .await?;
    let mut runs: Vec<Vec<(Option<DateTime<Utc>>, Option<DateTime<Utc>>, String)>> = Vec::new();
    let mut last_created: Option<DateTime<Utc>> = None;
    for (created, started, finished, status) in rows {
        let same_run = last_created.is_some_and(|l| (l - created).num_seconds() <= RUN_GAP_SECONDS);
        if !same_run {
            runs.push(Vec::new());
        }
        last_created = Some(created);
        if let Some(run) = runs.last_mut() {
            run.push((started, finished, status));
        }
    }
    let spans: Vec<i64> = runs
        .iter()
        .filter(|run| run.iter().all(|(_, _, s)| s == JobStatus::Completed.as_str()))
        .filter_map(|run| {
            let start = run.iter().filter_map(|(s, _, _)| *s).min()?;
            let end = run.iter().filter_map(|(_, f, _)| *f).max()?;
            Some((end - start).num_seconds().max(0))
        })
        .take(HISTORY_RUNS)
        .collect();
    Ok(median(spans))
}

fn median(mut values: Vec<i64>) -> (Option<u64>, u32) {
    let n = values.len() as u32;
    if values.is_empty() {
        return (None, 0);
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    let m = if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2 };
    (Some(m.max(0) as u64), n)
}

fn words(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} seconds"),
    }
}

/// Sweeps each repository's and platform's runs in time order; a span where
/// two or more run at once is an overlap.
async fn overlaps(db: &DatabaseConnection, entries: &[ScheduledEntry]) -> Result<Vec<Overlap>, DbErr> {
    // target -> (time, +1/-1, entry key); ends sort before starts at one instant.
    let mut events: BTreeMap<LoadTarget, Vec<(DateTime<Utc>, i32, &str)>> = BTreeMap::new();
    for e in entries {
        let length = Duration::seconds(e.expected_seconds.map(|s| s as i64).unwrap_or(UNKNOWN_SECONDS).max(1));
        for target in &e.loads {
            let list = events.entry(target.clone()).or_default();
            for run in &e.runs {
                list.push((*run, 1, &e.key));
                list.push((*run + length, -1, &e.key));
            }
        }
    }
    let names = target_names(db).await?;
    let mut out = Vec::new();
    'targets: for (target, mut list) in events {
        list.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut active: HashMap<&str, u32> = HashMap::new();
        let mut open: Option<(DateTime<Utc>, BTreeSet<String>, u32)> = None;
        for (at, delta, key) in list {
            if delta > 0 {
                *active.entry(key).or_default() += 1;
            } else if let Some(n) = active.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    active.remove(key);
                }
            }
            let running: u32 = active.values().sum();
            match (&mut open, running >= 2) {
                (None, true) => open = Some((at, active.keys().map(|k| k.to_string()).collect(), running)),
                (Some((_, keys, most)), true) => {
                    keys.extend(active.keys().map(|k| k.to_string()));
                    *most = (*most).max(running);
                }
                (Some(_), false) => {
                    let Some((start, keys, most)) = open.take() else { continue };
                    let target_name = name_of(&names, &target);
                    out.push(Overlap { target: target.clone(), target_name, start, end: at, entries: keys.into_iter().collect(), concurrent: most });
                    if out.len() >= OVERLAPS_MAX {
                        break 'targets;
                    }
                }
                (None, false) => {}
            }
        }
    }
    out.sort_by(|a, b| a.start.cmp(&b.start));
    Ok(out)
}

async fn target_names(db: &DatabaseConnection) -> Result<HashMap<String, String>, DbErr> {
    // Ids are UUIDs: one map holds both kinds.
    let (mut names, platforms) = super::repository_and_platform_names(db).await?;
    names.extend(platforms);
    Ok(names)
}

fn name_of(names: &HashMap<String, String>, target: &LoadTarget) -> String {
    let (LoadTarget::Repository { id } | LoadTarget::Platform { id }) = target;
    names.get(id).cloned().unwrap_or_else(|| id.clone())
}
