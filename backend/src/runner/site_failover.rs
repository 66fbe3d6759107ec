//! Site failovers with a boot order: the request starts stage 1; a task
//! starts each later stage once the previous one's failover jobs ended
//! (each ends when its guest printed its boot line) if the stage waits for
//! boot, then after the stage's delay. The plan is a file,
//! `DATA_DIR/site-failover/<id>.json`, rewritten after every stage, so a
//! server restart goes on with it ([`resume`]); it is removed when the last
//! stage started. A flow of a later stage that cannot start then (its
//! state changed) is logged and alerted, and the next stages go on.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use shared_types::jobs::JobStatus;
use shared_types::replication::SiteFailoverMode;
use shared_types::NamedRef;

use super::replication_job::{self, Act};
use super::Runner;
use crate::db::entities::{jobs, replication_flows};

/// One stage: its flows, and what comes before the next stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStage {
    pub flows: Vec<NamedRef>,
    pub wait_for_boot: bool,
    pub delay_seconds: u32,
}

/// A site failover whose later stages are still to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub group: NamedRef,
    pub mode: SiteFailoverMode,
    pub final_sync: bool,
    pub requested_by: String,
    /// Every stage, the first included.
    pub stages: Vec<PlanStage>,
    /// The index of the next stage to start (1 after the request).
    pub next: usize,
    /// The jobs of the stage started last.
    pub waiting_on: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

fn dir(runner: &Runner) -> Result<PathBuf, String> {
    Ok(runner.data_dir()?.join("site-failover"))
}

fn save(runner: &Runner, plan: &Plan) -> Result<(), String> {
    let d = dir(runner)?;
    std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    let path = d.join(format!("{}.json", plan.id));
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(plan).map_err(|e| e.to_string())?).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn remove(runner: &Runner, id: &str) {
    if let Ok(d) = dir(runner) {
        let _ = std::fs::remove_file(d.join(format!("{id}.json")));
    }
}

fn act_of(plan: &Plan) -> Act {
    match plan.mode {
        SiteFailoverMode::Test => Act::TestFailover { point: None },
        SiteFailoverMode::Live => Act::Failover { final_sync: plan.final_sync, shutdown_timeout_seconds: None },
    }
}

/// Records `plan` (stage 1 started, its jobs in `waiting_on`) and runs its
/// later stages in the background.
pub fn schedule(runner: &Runner, plan: Plan) -> Result<(), String> {
    save(runner, &plan)?;
    let r = runner.clone();
    tokio::spawn(async move { run(r, plan).await });
    Ok(())
}

/// Goes on with the plans a stopped server left (call once at start).
pub async fn resume(runner: &Runner) -> usize {
    let Ok(d) = dir(runner) else { return 0 };
    let Ok(entries) = std::fs::read_dir(&d) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Plan>(&b).ok()) {
            Some(plan) => {
                tracing::warn!(group = %plan.group.name, stage = plan.next + 1, "going on with a site failover's boot order after a restart");
                let r = runner.clone();
                tokio::spawn(async move { run(r, plan).await });
                n += 1;
            }
            None => tracing::error!(path = %path.display(), "a site failover plan cannot be read; its later stages will not start"),
        }
    }
    n
}

/// Waits until none of `ids` is queued or running; false when the server stops first.
async fn wait_jobs(runner: &Runner, ids: &[String]) -> bool {
    loop {
        let mut active = false;
        for id in ids {
            match jobs::Entity::find_by_id(id.clone()).one(runner.db()).await {
                Ok(Some(j)) if JobStatus::parse(&j.status).is_some_and(|s| s.is_active()) => active = true,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading a site failover's job");
                    active = true;
                }
            }
        }
        if !active {
            return true;
        }
        tokio::select! {
            _ = runner.shutdown_token().cancelled() => return false,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn run(runner: Runner, mut plan: Plan) {
    while plan.next < plan.stages.len() {
        let before = plan.stages[plan.next - 1].clone();
        if before.wait_for_boot && !wait_jobs(&runner, &plan.waiting_on).await {
            return; // the server stops; the plan file stays for the next start
        }
        if before.delay_seconds > 0 {
            tokio::select! {
                _ = runner.shutdown_token().cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(before.delay_seconds as u64)) => {}
            }
        }
        let stage = plan.stages[plan.next].clone();
        let mut jobs_started = Vec::new();
        for f in &stage.flows {
            let row = match replication_flows::Entity::find_by_id(f.id.clone()).one(runner.db()).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    tracing::warn!(flow = %f.name, "a site failover's flow was removed before its stage");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading a site failover's flow");
                    continue;
                }
            };
            match replication_job::act(&runner, row, act_of(&plan), &plan.requested_by).await {
                Ok((_, Some(job))) => jobs_started.push(job.id),
                Ok((_, None)) => {}
                Err(e) => {
                    let message = format!("site failover of group '{}', stage {}: '{}' did not start: {e}", plan.group.name, plan.next + 1, f.name);
                    tracing::warn!("{message}");
                    super::telemetry::group_warning(&runner, &plan.group.id, &format!("Site failover of {}: a VM did not start", plan.group.name), &message).await;
                }
            }
        }
        tracing::info!(group = %plan.group.name, stage = plan.next + 1, jobs = jobs_started.len(), "site failover: boot stage started");
        plan.waiting_on = jobs_started;
        plan.next += 1;
        plan.updated_at = Utc::now();
        if plan.next < plan.stages.len() {
            if let Err(e) = save(&runner, &plan) {
                tracing::error!(error = %e, "recording a site failover's progress");
            }
        }
    }
    remove(&runner, &plan.id);
}
