//! Fires backup flows on their cron schedule (UTC): every enabled flow with a
//! schedule gets a backup job per VM when its next run time passes. Each
//! tick also queues the replication syncs that are due
//! ([`super::replication_job::tick`]), the repositories' scheduled verify
//! and GC ([`maintenance_tick`]; a repository is verified on its own
//! schedule and on the verify schedule of each policy its flows follow), and once a day the catalog prunes its own
//! history ([`crate::catalog::housekeeping`]). A run missed while the server
//! was down is not replayed; the next one fires.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use shared_types::flow::{FlowAction, FlowKind};
use shared_types::jobs::{BackupType, JobKind};

use super::{BackupRequest, Runner, RunnerError};
use crate::catalog::{flows as flow_rules, schedule, upkeep};
use crate::db::entities::{flows, repositories};

/// How often schedules are looked at.
const TICK: Duration = Duration::from_secs(15);

pub async fn run(runner: Runner) {
    let mut next: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut next_upkeep: HashMap<(String, JobKind), DateTime<Utc>> = HashMap::new();
    // The first pruning a minute after start, once the flags are applied.
    let mut housekept: Option<DateTime<Utc>> = Some(Utc::now() - chrono::Duration::days(1) + chrono::Duration::minutes(1));
    loop {
        if let Err(e) = tick(&runner, &mut next, Utc::now()).await {
            tracing::error!(error = %e, "flow scheduler");
        }
        if let Err(e) = maintenance_tick(&runner, &mut next_upkeep, Utc::now()).await {
            tracing::error!(error = %e, "repository maintenance scheduler");
        }
        if housekept.is_none_or(|at| Utc::now() - at >= chrono::Duration::days(1)) {
            housekept = Some(Utc::now());
            match crate::catalog::housekeeping::prune(runner.db(), runner.catalog_retention(), Utc::now()).await {
                Ok(p) => tracing::info!(samples = p.job_samples, logs = p.job_logs, sessions = p.sessions, audit = p.audit, notifications = p.notifications, "catalog pruned its history"),
                Err(e) => tracing::error!(error = %e, "pruning the catalog's history"),
            }
        }
        if let Err(e) = super::replication_job::tick(&runner, Utc::now()).await {
            tracing::error!(error = %e, "replication scheduler");
        }
        tokio::select! {
            _ = runner.shutdown_token().cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// One look at the schedules as of `now`; `next` remembers each flow's next run.
pub async fn tick(runner: &Runner, next: &mut HashMap<String, DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
    let due_flows = flows::Entity::find().filter(flows::Column::Enabled.eq(true)).all(runner.db()).await?;
    next.retain(|id, _| due_flows.iter().any(|f| &f.id == id));
    for flow in due_flows {
        let Some(pattern) = flow.schedule.clone().filter(|p| !p.trim().is_empty()) else { continue };
        let Some(&at) = next.get(&flow.id) else {
            if let Some(at) = schedule::next_run(&pattern, now) {
                next.insert(flow.id.clone(), at);
            }
            continue;
        };
        if at > now {
            continue;
        }
        if let Some(at) = schedule::next_run(&pattern, now) {
            next.insert(flow.id.clone(), at);
        }
        match run_flow(runner, &flow, "schedule").await {
            Ok(n) => tracing::info!(flow = %flow.name, jobs = n, "scheduled run"),
            Err(e) => {
                tracing::warn!(flow = %flow.name, error = %e, "scheduled run skipped");
                if let RunnerError::Conflict(why) = &e {
                    super::telemetry::schedule_alert(runner, &flow.id, &flow.name, why).await;
                }
            }
        }
    }
    Ok(())
}

/// One look at the repositories' verify and GC schedules as of `now`;
/// `next` remembers each schedule's next run. A due run that finds one of
/// its kind still active is skipped (the next one fires).
pub async fn maintenance_tick(runner: &Runner, next: &mut HashMap<(String, JobKind), DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
    let repos = repositories::Entity::find().all(runner.db()).await?;
    // Verify schedules of the policies that flows writing to each repository follow.
    let mut by_policy: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (repo, policy, pattern) in crate::catalog::policies::verify_schedules(runner.db()).await? {
        by_policy.entry(repo).or_default().push((format!("{policy}@"), pattern));
    }
    let mut live = std::collections::HashSet::new();
    for repo in &repos {
        let own = [(String::new(), JobKind::Verify, upkeep::verify_schedule(repo)), (String::new(), JobKind::Gc, upkeep::gc_schedule(repo))];
        let policies = by_policy.remove(&repo.id).unwrap_or_default().into_iter().map(|(p, pattern)| (p, JobKind::Verify, Some(pattern)));
        for (prefix, kind, pattern) in own.into_iter().chain(policies) {
            // A policy's schedule is remembered apart (`<policy id>@<repository id>`).
            let key = (format!("{prefix}{}", repo.id), kind);
            let Some(pattern) = pattern else { continue };
            live.insert(key.clone());
            let Some(&at) = next.get(&key) else {
                if let Some(at) = schedule::next_run(&pattern, now) {
                    next.insert(key, at);
                }
                continue;
            };
            if at > now {
                continue;
            }
            if let Some(at) = schedule::next_run(&pattern, now) {
                next.insert(key, at);
            }
            if repo.maintenance_reason.is_some() {
                continue; // queued jobs of a repository in maintenance wait anyway
            }
            match super::maintenance_job::enqueue(runner, &repo.id, kind, "schedule").await {
                Ok(_) => tracing::info!(repository = %repo.name, kind = kind.as_str(), "scheduled maintenance queued"),
                Err(RunnerError::Db(e)) => return Err(e),
                Err(e) => tracing::info!(repository = %repo.name, kind = kind.as_str(), "scheduled maintenance skipped: {e}"),
            }
        }
    }
    next.retain(|k, _| live.contains(k));
    Ok(())
}

/// Queues a backup job for every VM of a backup flow ("backup now" and the
/// schedule); refused by the flow's state rule. Returns how many were queued.
pub async fn run_flow(runner: &Runner, flow: &flows::Model, by: &str) -> Result<usize, RunnerError> {
    if flow_rules::kind(flow) != FlowKind::Backup {
        return Err(RunnerError::Conflict(format!("flow '{}' is not a backup flow", flow.name)));
    }
    flow_rules::check(flow, FlowAction::BackupNow).map_err(RunnerError::Conflict)?;
    let vms = flow_rules::vm_ids(runner.db(), flow).await?;
    if vms.is_empty() {
        return Err(RunnerError::Conflict(format!("flow '{}' has no VMs to back up: add VMs to it or to its group", flow.name)));
    }
    let repo = repositories::Entity::find_by_id(flow.repository_id.clone())
        .one(runner.db())
        .await?
        .ok_or_else(|| RunnerError::NotFound(format!("the repository of flow '{}' no longer exists", flow.name)))?;
    if let Some(why) = crate::catalog::repositories::refusal(&repo) {
        return Err(RunnerError::Conflict(why));
    }
    let mut queued = 0;
    for vm in vms {
        let req = BackupRequest {
            vm_context_id: vm,
            repository_id: flow.repository_id.clone(),
            flow_id: Some(flow.id.clone()),
            backup_type: BackupType::Incremental,
            priority: 0,
            requested_by: Some(by.to_string()),
        };
        match runner.enqueue_backup(req).await {
            Ok(_) => queued += 1,
            Err(RunnerError::Conflict(msg)) => tracing::info!(flow = %flow.name, "{msg}"),
            Err(e) => return Err(e),
        }
    }
    if queued == 0 {
        return Err(RunnerError::Conflict(format!("every VM of flow '{}' is already being backed up", flow.name)));
    }
    Ok(queued)
}
