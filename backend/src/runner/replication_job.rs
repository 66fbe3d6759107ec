//! Replication jobs: every action on a replication flow that moves data or
//! changes VMs (sync, test failover, end of test, failover, rollback,
//! cleanup) is a job of kind `replication` with its operation, live
//! progress and log, like a backup.
//!
//! * [`act`]: the one entry point (API, scheduler, site failover): checks
//!   the flow's state rule ([`transition`]), moves the flow to the action's
//!   `during` state with a conditional update (two racing requests cannot
//!   both win), and queues the job with what it needs ([`JobOptions`]).
//! * [`run`]: the job. The engine runs on a blocking thread; afterwards the
//!   flow settles in the state the transition names, reconciled with the
//!   replica's phase ([`catalog::replication::reconcile`]), and mirrors the
//!   replica's points.
//! * [`recover`]: after a restart, flows left in a busy state settle the
//!   same way (the replica's phase says where a crashed action stopped).
//! * [`tick`]: the interval schedule (the RPO) and the missed-RPO alert.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use shared_types::jobs::{JobKind, JobStatus, LogLevel};
use shared_types::networks::{MappingPurpose, NetworkPair};
use shared_types::platform::{PlatformKind, PowerState};
use shared_types::replication::{lag, refusal, transition, ReplicationAction, ReplicationOperation, ReplicationState, SyncSummary};
use shared_types::ws::{AlertSeverity, ServerMessage};

use super::backup_job::{self, start};
use super::{queued_row, telemetry, Runner, RunnerError};
use crate::catalog::network_mapping::{self, MappingError};
use crate::catalog::replication::{self as rules, mirror, next_sync, phase_note, reconcile, set_state, spec};
use crate::catalog::{from_wire, inventory};
use crate::db::entities::{jobs, platforms, replication_flows, vm_contexts};
use crate::engine::progress::Progress;
use crate::replication::{self, Ctx, FailoverOptions, ReplicaState, ReplicationError};

/// What a replication job does besides its operation, decided and checked
/// when it was queued (`jobs.options`, JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobOptions {
    /// Test failover: the point (`None`: the newest).
    #[serde(default)]
    pub point: Option<u64>,
    /// Failover: power the source off and copy its last changes first.
    #[serde(default)]
    pub final_sync: Option<bool>,
    /// Failover: seconds the source's guest gets to shut down before a hard stop.
    #[serde(default)]
    pub shutdown_timeout_seconds: Option<u32>,
    /// Rollback: copy the replica's changes back.
    #[serde(default)]
    pub sync_back: Option<bool>,
    /// Failover: every source network → its target network (resolved and
    /// validated from the catalog's mappings when queued). Test failover:
    /// the test mappings (unmapped networks go to the target's isolated network).
    #[serde(default)]
    pub network_mapping: Vec<NetworkPair>,
    /// The flow's state before the action (a job stopped before it started goes back to it).
    pub before: Option<ReplicationState>,
    pub on_success: Option<ReplicationState>,
    pub on_failure: Option<ReplicationState>,
}

/// An action asked of a flow.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    ReplicateNow,
    Pause,
    Resume,
    TestFailover { point: Option<u64> },
    EndTest,
    Failover { final_sync: bool, shutdown_timeout_seconds: Option<u32> },
    Rollback { sync_back: bool },
    Cleanup,
}

impl Act {
    pub fn action(&self) -> ReplicationAction {
        use ReplicationAction as A;
        match self {
            Act::ReplicateNow => A::ReplicateNow,
            Act::Pause => A::Pause,
            Act::Resume => A::Resume,
            Act::TestFailover { .. } => A::TestFailover,
            Act::EndTest => A::EndTest,
            Act::Failover { .. } => A::Failover,
            Act::Rollback { .. } => A::Rollback,
            Act::Cleanup => A::Cleanup,
        }
    }
}

/// Why an action was not accepted; the API maps these to 4xx.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The state rule refuses it (409).
    #[error("{0}")]
    Refused(String),
    /// The VM's NICs cannot be placed on the target (422).
    #[error(transparent)]
    Network(MappingError),
    /// A named thing (a point) does not exist (422).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Runner(#[from] RunnerError),
    #[error("catalog: {0}")]
    Db(#[from] DbErr),
}

impl From<MappingError> for ActError {
    fn from(e: MappingError) -> Self {
        match e {
            MappingError::Db(e) => ActError::Db(e),
            e => ActError::Network(e),
        }
    }
}

/// Pushes the flow as it now is to WebSocket clients.
pub async fn publish(runner: &Runner, row: replication_flows::Model) {
    match rules::to_api(runner.db(), vec![row]).await {
        Ok(mut v) => {
            if let Some(flow) = v.pop() {
                let _ = runner.events().send(ServerMessage::ReplicationUpdate { flow: Box::new(flow) });
            }
        }
        Err(e) => tracing::warn!(error = %e, "describing a replication flow for the WebSocket"),
    }
}

/// The flow's job that is queued, running or paused, if any.
pub async fn active_job(db: &impl ConnectionTrait, flow_id: &str) -> Result<Option<jobs::Model>, DbErr> {
    jobs::Entity::find()
        .filter(jobs::Column::ReplicationId.eq(flow_id.to_owned()))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .one(db)
        .await
}

/// Moves the flow from `from` to `to` only if nobody moved it meanwhile.
async fn swap_state(db: &impl ConnectionTrait, id: &str, from: ReplicationState, to: ReplicationState) -> Result<bool, DbErr> {
    let res = replication_flows::Entity::update_many()
        .col_expr(replication_flows::Column::State, Expr::value(to.as_str()))
        .col_expr(replication_flows::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(replication_flows::Column::Id.eq(id.to_owned()))
        .filter(replication_flows::Column::State.eq(from.as_str()))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

async fn reload(db: &impl ConnectionTrait, id: &str) -> Result<replication_flows::Model, ActError> {
    replication_flows::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ActError::Invalid(format!("replication flow '{id}' was removed")))
}

/// Accepts `act` on `flow` (see the module docs): the flow as it now is and
/// the job queued (none for pause).
pub async fn act(runner: &Runner, flow: replication_flows::Model, act: Act, by: &str) -> Result<(replication_flows::Model, Option<jobs::Model>), ActError> {
    let db = runner.db();
    let state = rules::state(&flow);
    let action = act.action();
    let t = transition(state, action, rules::has_point(&flow)).map_err(|_| {
        ActError::Refused(refusal(&flow.name, state, action, rules::has_point(&flow)).unwrap_or_else(|| "not possible now".into()))
    })?;
    if act == Act::Pause {
        if !swap_state(db, &flow.id, state, ReplicationState::Paused).await? {
            return Err(ActError::Refused(format!("the replication flow '{}' changed meanwhile; look again", flow.name)));
        }
        if let Some(job) = active_job(db, &flow.id).await? {
            // The sync stops at its next chunk; the replica stays at its last
            // point and the next sync picks up from there.
            runner.stop(&job.id, &format!("replication paused by {by}")).await?;
        }
        let row = reload(db, &flow.id).await?;
        publish(runner, row.clone()).await;
        return Ok((row, None));
    }
    let Some(op) = t.job else {
        return Err(ActError::Refused(format!("'{action}' runs no job")));
    };
    let vm = vm_contexts::Entity::find_by_id(flow.vm_context_id.clone())
        .one(db)
        .await?
        .ok_or_else(|| ActError::Invalid(format!("the source VM of '{}' is no longer managed", flow.name)))?;
    let mut options = JobOptions { before: Some(state), on_success: Some(t.on_success), on_failure: Some(t.on_failure), ..Default::default() };
    match &act {
        Act::TestFailover { point } => {
            if let Some(seq) = point {
                let target = target_platform(db, &flow).await?;
                let state = replica_status(&target.address, &flow.replica_name).await;
                if !state.as_ref().is_some_and(|s| s.points.iter().any(|p| p.seq == *seq)) {
                    return Err(ActError::Invalid(format!(
                        "the replica of '{}' has no point {}; GET /api/v1/replication/{} lists its points",
                        flow.name,
                        replication::replica::point_id(*seq),
                        flow.id
                    )));
                }
            }
            options.point = *point;
            let test = network_mapping::effective(db, &vm.platform_id, &flow.target_platform_id, Some(&flow.id), MappingPurpose::Test).await?;
            options.network_mapping =
                test.into_iter().map(|(source_network, (target_network, _))| NetworkPair { source_network, target_network }).collect();
        }
        Act::Failover { final_sync, shutdown_timeout_seconds } => {
            options.shutdown_timeout_seconds = *shutdown_timeout_seconds;
            let nics = network_mapping::resolve(db, &vm.id, &flow.target_platform_id, Some(&flow.id), MappingPurpose::Failover).await?;
            let mut pairs: Vec<NetworkPair> = Vec::new();
            for n in nics {
                if !pairs.iter().any(|p| p.source_network == n.source_network) {
                    pairs.push(NetworkPair { source_network: n.source_network, target_network: n.target_network });
                }
            }
            options.network_mapping = pairs;
            options.final_sync = Some(*final_sync);
        }
        Act::Rollback { sync_back } => options.sync_back = Some(*sync_back),
        _ => {}
    }
    if !swap_state(db, &flow.id, state, t.during).await? {
        return Err(ActError::Refused(format!("the replication flow '{}' changed meanwhile; look again", flow.name)));
    }
    let queued = enqueue(runner, &flow, op, &options, by).await;
    let job = match queued {
        Ok(j) => j,
        Err(e) => {
            swap_state(db, &flow.id, t.during, state).await?;
            return Err(e.into());
        }
    };
    let row = reload(db, &flow.id).await?;
    publish(runner, row.clone()).await;
    Ok((row, Some(job)))
}

async fn enqueue(runner: &Runner, flow: &replication_flows::Model, op: ReplicationOperation, options: &JobOptions, by: &str) -> Result<jobs::Model, RunnerError> {
    let db = runner.db();
    if let Some(j) = active_job(db, &flow.id).await? {
        return Err(RunnerError::Conflict(format!(
            "replication flow '{}' already has a job {} ({}); wait for it or stop it first",
            flow.name, j.id, j.status
        )));
    }
    let mut row = queued_row(JobKind::Replication, &flow.vm_context_id, "", if op == ReplicationOperation::Sync { 0 } else { 50 }, Some(by.to_owned()));
    row.repository_id = Set(None);
    row.target_platform_id = Set(Some(flow.target_platform_id.clone()));
    row.replication_id = Set(Some(flow.id.clone()));
    row.operation = Set(Some(op.as_str().to_owned()));
    row.options = Set(Some(serde_json::to_string(options).map_err(|e| RunnerError::Conflict(format!("job options: {e}")))?));
    let job = row.insert(db).await?;
    telemetry::job_changed(runner, &job).await;
    runner.wake();
    Ok(job)
}

async fn target_platform(db: &impl ConnectionTrait, flow: &replication_flows::Model) -> Result<platforms::Model, ActError> {
    platforms::Entity::find_by_id(flow.target_platform_id.clone())
        .one(db)
        .await?
        .ok_or_else(|| ActError::Invalid(format!("the target platform of '{}' was removed", flow.name)))
}

/// The replica's record on its target host (`None`: no replica, or unreadable).
pub async fn replica_status(target_address: &str, replica_name: &str) -> Option<ReplicaState> {
    let address = target_address.to_owned();
    let name = replica_name.to_owned();
    tokio::task::spawn_blocking(move || {
        let host = inventory::connect(PlatformKind::Kvm, &address).ok()?;
        replication::status(host.as_ref(), &name).ok().flatten()
    })
    .await
    .ok()
    .flatten()
}

/// What the blocking part returns besides its outcome.
struct Done {
    /// One line for the job log with the operation's figures.
    summary: String,
    /// The operation's report as JSON (for the log, the benchmark reads it).
    report: serde_json::Value,
    sync: Option<SyncSummary>,
    /// The source VM's power after the operation, when it changed.
    source_power: Option<PowerState>,
}

pub async fn run(runner: &Runner, job: jobs::Model, vm: vm_contexts::Model, progress: Arc<Progress>) {
    let db = runner.db().clone();
    let Some(job) = start(runner, job).await else { return };
    let started = job.started_at.unwrap_or_else(Utc::now);
    let flow = match job.replication_id.as_deref() {
        Some(id) => replication_flows::Entity::find_by_id(id.to_owned()).one(&db).await.ok().flatten(),
        None => None,
    };
    let Some(flow) = flow else {
        end_job(runner, job, &vm.name, JobStatus::Failed, Some("the replication flow was removed".into()), &progress).await;
        return;
    };
    let options: JobOptions = job.options.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or_default();
    let op = job.operation.as_deref().and_then(ReplicationOperation::parse);
    let platforms = (
        platforms::Entity::find_by_id(vm.platform_id.clone()).one(&db).await.ok().flatten(),
        platforms::Entity::find_by_id(flow.target_platform_id.clone()).one(&db).await.ok().flatten(),
    );
    let (outcome, replica) = match (op, platforms) {
        (Some(op), (Some(source), Some(target))) => execute(runner, &job, &flow, &vm, op, &options, source, target, progress.clone()).await,
        (None, _) => (Err(format!("the job's operation '{}' is unknown", job.operation.clone().unwrap_or_default())), None),
        _ => (Err("the source or target platform was removed".into()), None),
    };
    let cancelled = progress.control.is_cancelled();
    let (status, error) = match &outcome {
        Ok(done) => {
            telemetry::log(runner, &job.id, LogLevel::Info, done.summary.clone()).await;
            telemetry::log(runner, &job.id, LogLevel::Debug, format!("report {}", done.report)).await;
            (JobStatus::Completed, None)
        }
        Err(m) if cancelled => (JobStatus::Cancelled, Some(m.clone())),
        Err(m) => (JobStatus::Failed, Some(m.clone())),
    };
    // The flow settles before the job ends (whoever sees the job ended sees
    // the flow settled); it is announced after, so the announcement names
    // no finished job as active.
    let settled = match settle(runner, &flow.id, op, &options, &outcome, cancelled, replica.as_ref(), started).await {
        Ok(row) => row,
        Err(e) => {
            tracing::error!(error = %e, "settling the replication flow after its job");
            None
        }
    };
    if let Ok(Done { source_power: Some(p), .. }) = &outcome {
        let _ = crate::catalog::power_watch::record_power(&db, &vm.id, *p).await;
    }
    end_job(runner, job, &vm.name, status, error, &progress).await;
    if let Some(row) = settled {
        publish(runner, row).await;
    }
}

async fn end_job(runner: &Runner, job: jobs::Model, vm: &str, status: JobStatus, error: Option<String>, progress: &Progress) {
    if let Some(e) = &error {
        telemetry::log(runner, &job.id, if status == JobStatus::Failed { LogLevel::Error } else { LogLevel::Warn }, e.clone()).await;
    }
    let Some(job) = backup_job::end_job(runner, job, status, error.clone(), progress).await else {
        return;
    };
    if status == JobStatus::Failed {
        telemetry::alert(runner, &job, vm, error.as_deref().unwrap_or("failed")).await;
    }
}

/// The flow's state, reason and mirrored figures after a job; the row as
/// saved (to announce once the job has ended).
#[allow(clippy::too_many_arguments)]
async fn settle(
    runner: &Runner,
    flow_id: &str,
    op: Option<ReplicationOperation>,
    options: &JobOptions,
    outcome: &Result<Done, String>,
    cancelled: bool,
    replica: Option<&ReplicaState>,
    started: DateTime<Utc>,
) -> Result<Option<replication_flows::Model>, DbErr> {
    let db = runner.db();
    let Some(row) = replication_flows::Entity::find_by_id(flow_id.to_owned()).one(db).await? else { return Ok(None) };
    let now = Utc::now();
    let paused_meanwhile = rules::state(&row) == ReplicationState::Paused;
    let points = replica.map(|r| r.points.len()).unwrap_or(0);
    let wanted = match outcome {
        _ if paused_meanwhile => ReplicationState::Paused,
        Ok(_) => options.on_success.unwrap_or(rules::settled(points)),
        // A stopped sync leaves the replica at its last point: nothing failed.
        Err(_) if cancelled && op == Some(ReplicationOperation::Sync) => rules::settled(points),
        Err(_) => options.on_failure.unwrap_or(ReplicationState::Failed),
    };
    let to = reconcile(wanted, replica);
    let reason = match outcome {
        Ok(_) => phase_note(replica),
        Err(m) if cancelled && op == Some(ReplicationOperation::Sync) => Some(format!("last sync stopped: {m}")),
        Err(m) => Some(match phase_note(replica) {
            Some(note) => format!("{m}; {note}"),
            None => m.clone(),
        }),
    };
    let had = row.last_consistent_at;
    let interval = row.interval_seconds;
    let mut a: replication_flows::ActiveModel = row.into();
    a.state = Set(to.as_str().to_owned());
    a.failure_reason = Set(reason);
    if replica.is_some() || matches!(op, Some(ReplicationOperation::Cleanup)) {
        mirror(&mut a, replica);
    }
    if let Ok(Done { sync: Some(s), .. }) = outcome {
        a.last_sync = Set(serde_json::to_string(s).ok());
    }
    if op == Some(ReplicationOperation::Sync) {
        a.next_sync_at = Set(Some(next_sync(started, interval, now)));
    }
    let new_point = replica.and_then(|r| r.points.last()).map(|p| p.consistent_at) != had;
    if new_point {
        a.rpo_alerted_at = Set(None);
    }
    a.updated_at = Set(now);
    let row = a.update(db).await?;
    if new_point {
        let reason = format!("replication {} has a new point", row.name);
        if let Err(e) = runner.alerts().resolve(&[crate::alerts::keys::rpo_missed(&row.id)], &reason).await {
            tracing::warn!(error = %e, "resolving a replication's RPO alert");
        }
    }
    Ok(Some(row))
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    runner: &Runner,
    job: &jobs::Model,
    flow: &replication_flows::Model,
    vm: &vm_contexts::Model,
    op: ReplicationOperation,
    options: &JobOptions,
    source: platforms::Model,
    target: platforms::Model,
    progress: Arc<Progress>,
) -> (Result<Done, String>, Option<ReplicaState>) {
    let sampler = telemetry::spawn_sampler(runner.clone(), job.clone(), vm.name.clone(), progress.clone());
    let (tx, logger) = telemetry::spawn_logger(runner.clone(), job.id.clone());
    let spec = spec(flow, vm);
    let options = options.clone();
    let span = tracing::info_span!("replication_job", job = %job.id, flow = %flow.name, op = %op);
    let result = tokio::task::spawn_blocking(move || {
        let _span = span.entered();
        let log = move |line: String| {
            let _ = tx.send(line);
        };
        let ctx = Ctx::new(&progress, &log);
        let target_host = match open_target(&target) {
            Ok(h) => h,
            Err(e) => return (Err(e), None),
        };
        let stop = progress.clone();
        let outcome = crate::platforms::tools::with_stop(move || stop.control.is_cancelled(), || operate(op, &options, &spec, &source, target_host.as_ref(), &ctx));
        let replica = replication::status(target_host.as_ref(), &spec.replica_name).ok().flatten();
        (outcome, replica)
    })
    .await;
    sampler.abort();
    let _ = logger.await;
    match result {
        Ok(r) => r,
        Err(e) => (Err(format!("the replication thread failed: {e}")), None),
    }
}

/// The replication's target host.
fn open_target(p: &platforms::Model) -> Result<Box<dyn crate::platforms::Platform>, String> {
    let kind: PlatformKind = from_wire(&p.kind).ok_or_else(|| format!("platform '{}' has an unknown kind", p.name))?;
    inventory::connect(kind, &p.address).map_err(|e| format!("target platform '{}': {e}", p.name))
}

fn operate(op: ReplicationOperation, o: &JobOptions, spec: &replication::ReplicaSpec, source: &platforms::Model, target: &dyn crate::platforms::Platform, ctx: &Ctx) -> Result<Done, String> {
    let explain = |e: ReplicationError| if e.is_cancelled() { "stopped by an operator".to_string() } else { e.to_string() };
    let connect = || -> Result<Box<dyn crate::platforms::Platform>, String> {
        let kind: PlatformKind = from_wire(&source.kind).ok_or_else(|| format!("platform '{}' has an unknown kind", source.name))?;
        inventory::connect(kind, &source.address).map_err(|e| format!("source platform '{}': {e}", source.name))
    };
    match op {
        ReplicationOperation::Sync => {
            let src = connect()?;
            let r = replication::sync(src.as_ref(), target, spec, ctx).map_err(explain)?;
            let s = SyncSummary {
                kind: r.kind,
                started_at: Utc::now() - chrono::Duration::milliseconds(r.duration_ms as i64),
                finished_at: Utc::now(),
                bytes_changed: r.bytes_changed,
                bytes_read: r.bytes_read,
                bytes_written: r.bytes_written + r.bytes_zeroed,
            };
            let secs = r.duration_ms as f64 / 1000.0;
            Ok(Done {
                summary: format!(
                    "{} sync made {}: {} bytes changed, {} read, {} written, {} zeroed in {:.2} s ({:.1} MB/s){}",
                    r.kind,
                    replication::replica::point_id(r.point.seq),
                    r.bytes_changed,
                    r.bytes_read,
                    r.bytes_written,
                    r.bytes_zeroed,
                    secs,
                    r.bytes_read as f64 / secs.max(0.001) / 1e6,
                    if r.pruned.is_empty() { String::new() } else { format!("; merged away {} old points", r.pruned.len()) }
                ),
                report: json(&r),
                sync: Some(s),
                source_power: None,
            })
        }
        ReplicationOperation::TestFailover => {
            let r = replication::test_failover(target, spec, o.point, &o.network_mapping, ctx).map_err(explain)?;
            Ok(Done {
                summary: match &r.boot_line {
                    Some(line) => format!("test VM '{}' is up from {} in {} ms: {line}", r.vm, replication::replica::point_id(r.point), r.duration_ms),
                    None => format!("test VM '{}' runs from {} ({} ms)", r.vm, replication::replica::point_id(r.point), r.duration_ms),
                },
                report: json(&r),
                sync: None,
                source_power: None,
            })
        }
        ReplicationOperation::EndTest => {
            let r = replication::end_test(target, spec, ctx).map_err(explain)?;
            Ok(Done { summary: format!("test VM '{}' removed ({} ms)", r.vm, r.duration_ms), report: json(&r), sync: None, source_power: None })
        }
        ReplicationOperation::Failover => {
            let src = connect()?;
            let opts = FailoverOptions {
                network_mapping: o.network_mapping.clone(),
                final_sync: o.final_sync.unwrap_or(true),
                shutdown_timeout: std::time::Duration::from_secs(
                    o.shutdown_timeout_seconds.unwrap_or(shared_types::replication::FAILOVER_SHUTDOWN_TIMEOUT_SECONDS).into(),
                ),
            };
            let r = replication::failover(src.as_ref(), target, spec, &opts, ctx).map_err(explain)?;
            Ok(Done {
                summary: format!(
                    "failed over to '{}' at {}: pre-sync {} ms, source off {} ms, final sync {} ms, replica on {} ms, guest up {}; downtime {} ms, total {} ms",
                    spec.replica_name,
                    replication::replica::point_id(r.point),
                    r.presync_ms,
                    r.power_off_ms,
                    r.final_sync_ms,
                    r.power_on_ms,
                    r.boot_ms.map_or("not seen".to_string(), |b| format!("{b} ms later")),
                    r.downtime_ms,
                    r.duration_ms
                ),
                report: json(&r),
                sync: None,
                source_power: r.source_powered_off.then_some(PowerState::Stopped),
            })
        }
        ReplicationOperation::Rollback => {
            let src = connect()?;
            let r = replication::rollback(src.as_ref(), target, spec, o.sync_back.unwrap_or(true), ctx).map_err(explain)?;
            Ok(Done {
                summary: format!(
                    "rolled back to the source ({}): {} bytes changed on the replica, {} written to the source; downtime {} ms, total {} ms",
                    if r.sync_back { "changes synced back" } else { "changes discarded" },
                    r.bytes_changed_on_replica,
                    r.bytes_written,
                    r.downtime_ms,
                    r.duration_ms
                ),
                report: json(&r),
                sync: None,
                source_power: Some(PowerState::Running),
            })
        }
        ReplicationOperation::Cleanup => {
            let src = connect()?;
            let r = replication::cleanup(src.as_ref(), target, spec, ctx).map_err(explain)?;
            let summary = if r.removed.is_empty() {
                format!("nothing to clean up ({} ms)", r.duration_ms)
            } else {
                format!("cleaned up: {} ({} ms)", r.removed.join("; "), r.duration_ms)
            };
            Ok(Done { summary, report: json(&r), sync: None, source_power: None })
        }
    }
}

/// A report as JSON for the job log.
fn json<T: Serialize>(report: &T) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}

/// A queued job of a flow was stopped before it started: the flow goes
/// back to the state it had before the action (unless paused meanwhile).
pub async fn unqueued(runner: &Runner, job: &jobs::Model) -> Result<(), DbErr> {
    let Some(id) = job.replication_id.as_deref() else { return Ok(()) };
    let Some(row) = replication_flows::Entity::find_by_id(id.to_owned()).one(runner.db()).await? else { return Ok(()) };
    let options: JobOptions = job.options.as_deref().and_then(|o| serde_json::from_str(o).ok()).unwrap_or_default();
    let state = rules::state(&row);
    if !state.is_busy() {
        return Ok(());
    }
    let back = options.before.filter(|s| !s.is_busy()).unwrap_or(rules::settled(row.point_count as usize));
    let row = set_state(runner.db(), row, back, None).await?;
    publish(runner, row).await;
    Ok(())
}

/// After a restart: flows left busy settle by their replica's phase, with
/// the interruption as their reason. Call after interrupted jobs were
/// marked failed.
pub async fn recover(db: &impl ConnectionTrait, events: &tokio::sync::broadcast::Sender<ServerMessage>) -> Result<u64, DbErr> {
    let mut n = 0;
    for row in replication_flows::Entity::find().all(db).await? {
        let state = rules::state(&row);
        if !state.is_busy() {
            continue;
        }
        let target = platforms::Entity::find_by_id(row.target_platform_id.clone()).one(db).await?;
        let replica = match target {
            Some(t) => replica_status(&t.address, &row.replica_name).await,
            None => None,
        };
        let to = reconcile(ReplicationState::Healthy, replica.as_ref());
        let what = if state == ReplicationState::Syncing { "a sync" } else { "an operation" };
        let mut reason = format!("{what} ({}) was interrupted by a server restart", state.label().to_lowercase());
        if state == ReplicationState::Syncing {
            reason.push_str("; the next sync redoes or resumes it from the replica's last point");
        }
        if let Some(note) = phase_note(replica.as_ref()) {
            reason = format!("{reason}; {note}");
        }
        let mut a: replication_flows::ActiveModel = row.into();
        a.state = Set(to.as_str().to_owned());
        a.failure_reason = Set(Some(reason));
        mirror(&mut a, replica.as_ref());
        a.next_sync_at = Set(Some(Utc::now()));
        a.updated_at = Set(Utc::now());
        let row = a.update(db).await?;
        tracing::warn!(flow = %row.name, from = %state, to = %to, "replication flow settled after a restart");
        if let Ok(mut v) = rules::to_api(db, vec![row]).await {
            if let Some(flow) = v.pop() {
                let _ = events.send(ServerMessage::ReplicationUpdate { flow: Box::new(flow) });
            }
        }
        n += 1;
    }
    Ok(n)
}

/// One look at replication flows as of `now`: queues the syncs that are due
/// (idle, healthy or failed flows whose next sync time passed) and raises a
/// warning once per stretch in which a flow misses its RPO.
pub async fn tick(runner: &Runner, now: DateTime<Utc>) -> Result<(), DbErr> {
    for row in replication_flows::Entity::find().all(runner.db()).await? {
        let state = rules::state(&row);
        let due = matches!(state, ReplicationState::Idle | ReplicationState::Healthy | ReplicationState::Failed)
            && row.next_sync_at.is_some_and(|t| t <= now);
        let interval = crate::catalog::to_u64(row.interval_seconds);
        let l = lag(now, row.last_consistent_at, row.created_at, interval);
        if l.rpo_missed && row.rpo_alerted_at.is_none() && state != ReplicationState::FailedOver {
            let behind = l.seconds.map(|s| format!("its newest point is {s} s old")).unwrap_or_else(|| "it has no point yet".into());
            telemetry::raise(runner, crate::alerts::Raise {
                key: crate::alerts::keys::rpo_missed(&row.id),
                severity: AlertSeverity::Warning,
                source_kind: shared_types::alerts::AlertSourceKind::Replication,
                source_id: Some(row.id.clone()),
                title: format!("Replication {} missed its RPO", row.name),
                message: format!("{behind}; the RPO is {interval} s (state: {})", state.label().to_lowercase()),
                job_id: None,
            })
            .await;
            let mut a: replication_flows::ActiveModel = row.clone().into();
            a.rpo_alerted_at = Set(Some(now));
            a.update(runner.db()).await?;
        }
        if due {
            match act(runner, row.clone(), Act::ReplicateNow, "schedule").await {
                Ok(_) => tracing::info!(flow = %row.name, "scheduled sync queued"),
                Err(e) => {
                    tracing::warn!(flow = %row.name, error = %e, "scheduled sync skipped");
                    // Try again an interval later, not every tick.
                    let mut a: replication_flows::ActiveModel = row.into();
                    a.next_sync_at = Set(Some(now + chrono::Duration::seconds(interval as i64)));
                    a.update(runner.db()).await?;
                }
            }
        }
    }
    Ok(())
}
