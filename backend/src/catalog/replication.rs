//! Replication flows in the catalog: rows to [`ReplicationFlow`], the state
//! a flow settles in after a job, read against its replica's phase (the
//! replica on the target host is the truth after a crash), and the figures
//! mirrored from the replica (point count, newest point).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use shared_types::jobs::JobStatus;
use shared_types::networks::{MappingPurpose, NetworkPair};
use shared_types::recovery::NoteSeverity;
use shared_types::replication::{allowed_actions, lag, ReplicationFlow, ReplicationState, SyncSummary};
use shared_types::NamedRef;

use super::{network_mapping, to_u64};
use crate::db::entities::{jobs, platforms, replication_flows, vm_contexts};
use crate::replication::{Phase, ReplicaSpec, ReplicaState};

pub fn state(m: &replication_flows::Model) -> ReplicationState {
    ReplicationState::parse(&m.state).unwrap_or(ReplicationState::Failed)
}

pub fn has_point(m: &replication_flows::Model) -> bool {
    m.point_count > 0
}

/// What the engine needs to know of a flow.
pub fn spec(m: &replication_flows::Model, source_vm: &vm_contexts::Model) -> ReplicaSpec {
    ReplicaSpec {
        id: m.id.clone(),
        source_vm: source_vm.name.clone(),
        source_vm_id: source_vm.platform_vm_id.clone(),
        replica_name: m.replica_name.clone(),
        keep_points: u32::try_from(m.keep_points).unwrap_or(1).max(1),
    }
}

/// `idle` without a point, `healthy` with one.
pub fn settled(point_count: usize) -> ReplicationState {
    if point_count > 0 {
        ReplicationState::Healthy
    } else {
        ReplicationState::Idle
    }
}

/// The state a flow shows once no job of it runs: `wanted` (what the job's
/// transition says), unless the replica's phase says otherwise: a replica
/// that is failed over (or half way back) is `failed_over` (rolling back
/// again finishes it), one with a test VM is `testing`, one stopped half way
/// into a failover is `failed` (failing over again or cleanup finishes or
/// undoes it), and one that just replicates is never `testing` or
/// `failed_over`. `healthy` and `idle` follow the replica's point count.
pub fn reconcile(wanted: ReplicationState, replica: Option<&ReplicaState>) -> ReplicationState {
    use ReplicationState as S;
    let Some(r) = replica else {
        // No replica (yet, or removed): nothing can be tested or failed over.
        return match wanted {
            S::Testing | S::FailedOver | S::Healthy => S::Idle,
            s if s.is_busy() => S::Failed,
            s => s,
        };
    };
    let settle = |s: S| if matches!(s, S::Healthy | S::Idle) { settled(r.points.len()) } else { s };
    match &r.phase {
        Phase::FailedOver { .. } | Phase::RollingBack { .. } => S::FailedOver,
        Phase::Testing { .. } => S::Testing,
        Phase::FailingOver { .. } => S::Failed,
        Phase::Replicating => match wanted {
            S::Testing | S::FailedOver => settled(r.points.len()),
            s if s.is_busy() => S::Failed,
            s => settle(s),
        },
    }
}

/// Why a state was reconciled away from what the job wanted, for the flow's
/// failure reason (`None`: nothing to explain).
pub fn phase_note(replica: Option<&ReplicaState>) -> Option<String> {
    match &replica?.phase {
        Phase::FailingOver { .. } => {
            Some("a failover stopped half way: run the failover again to finish it, or cleanup to undo it (the source is powered on again)".into())
        }
        Phase::RollingBack { .. } => Some("a rollback stopped half way: run the rollback again to finish it".into()),
        _ => None,
    }
}

/// The flow's failover mapping in force for its VM's NICs, and what stops a
/// live failover (blockers of the network validation).
pub async fn network_view(db: &impl ConnectionTrait, m: &replication_flows::Model) -> Result<(Vec<NetworkPair>, Vec<String>), DbErr> {
    match network_mapping::validate(db, std::slice::from_ref(&m.vm_context_id), &m.target_platform_id, Some(&m.id), MappingPurpose::Failover).await {
        Ok(report) => {
            let mut pairs: Vec<NetworkPair> = Vec::new();
            let mut problems = Vec::new();
            for vm in report.vms {
                problems.extend(vm.issues.iter().filter(|n| n.severity == NoteSeverity::Blocker).map(|n| n.message.clone()));
                for nic in vm.nics {
                    problems.extend(nic.issues.iter().filter(|n| n.severity == NoteSeverity::Blocker).map(|n| n.message.clone()));
                    if let Some(to) = nic.target_network {
                        if !pairs.iter().any(|p| p.source_network == nic.source_network) {
                            pairs.push(NetworkPair { source_network: nic.source_network, target_network: to });
                        }
                    }
                }
            }
            problems.dedup();
            Ok((pairs, problems))
        }
        Err(network_mapping::MappingError::Db(e)) => Err(e),
        Err(e) => Ok((Vec::new(), vec![e.to_string()])),
    }
}

/// Rows as the API shows them, in the given order.
pub async fn to_api(db: &impl ConnectionTrait, rows: Vec<replication_flows::Model>) -> Result<Vec<ReplicationFlow>, DbErr> {
    let now = Utc::now();
    let vm_ids: Vec<String> = rows.iter().map(|r| r.vm_context_id.clone()).collect();
    let vms: HashMap<String, vm_contexts::Model> =
        vm_contexts::Entity::find().filter(vm_contexts::Column::Id.is_in(vm_ids)).all(db).await?.into_iter().map(|v| (v.id.clone(), v)).collect();
    let platforms: HashMap<String, String> = platforms::Entity::find().all(db).await?.into_iter().map(|p| (p.id, p.name)).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut active: HashMap<String, String> = HashMap::new();
    for j in jobs::Entity::find()
        .filter(jobs::Column::ReplicationId.is_in(ids))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .order_by_asc(jobs::Column::CreatedAt)
        .all(db)
        .await?
    {
        if let Some(r) = j.replication_id {
            active.entry(r).or_insert(j.id);
        }
    }
    let named = |id: &str| NamedRef { id: id.to_owned(), name: platforms.get(id).cloned().unwrap_or_else(|| format!("(removed {id})")) };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (network_mapping, network_problems) = network_view(db, &r).await?;
        let vm = vms.get(&r.vm_context_id);
        let st = state(&r);
        let has_point = has_point(&r);
        let interval = to_u64(r.interval_seconds);
        let scheduled = matches!(st, ReplicationState::Idle | ReplicationState::Healthy | ReplicationState::Failed);
        out.push(ReplicationFlow {
            source_vm: NamedRef { id: r.vm_context_id.clone(), name: vm.map(|v| v.name.clone()).unwrap_or_else(|| format!("(removed {})", r.vm_context_id)) },
            source_platform: vm.map(|v| named(&v.platform_id)).unwrap_or_else(|| NamedRef { id: String::new(), name: "(unknown)".into() }),
            target_platform: named(&r.target_platform_id),
            replica_vm_name: r.replica_name.clone(),
            interval_seconds: interval,
            keep_points: u32::try_from(r.keep_points).unwrap_or(1),
            network_mapping,
            network_problems,
            state: st,
            failure_reason: r.failure_reason.clone(),
            allowed_actions: allowed_actions(st, has_point),
            lag: lag(now, r.last_consistent_at, r.created_at, interval),
            last_consistent_at: r.last_consistent_at,
            last_sync: r.last_sync.as_deref().and_then(|s| serde_json::from_str::<SyncSummary>(s).ok()),
            point_count: u32::try_from(r.point_count).unwrap_or(0),
            next_sync_at: if scheduled { r.next_sync_at } else { None },
            active_job_id: active.remove(&r.id),
            test_vm_name: r.test_vm_name.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            id: r.id,
            name: r.name,
        });
    }
    Ok(out)
}

/// Mirrors the replica's points and test VM into the row (no save).
pub fn mirror(a: &mut replication_flows::ActiveModel, replica: Option<&ReplicaState>) {
    let points = replica.map(|r| r.points.as_slice()).unwrap_or_default();
    a.point_count = Set(i32::try_from(points.len()).unwrap_or(i32::MAX));
    a.last_consistent_at = Set(points.last().map(|p| p.consistent_at));
    a.test_vm_name = Set(match replica.map(|r| &r.phase) {
        Some(Phase::Testing { vm, .. }) => Some(vm.clone()),
        _ => None,
    });
}

/// Sets a flow's state (and failure reason: `Some` replaces, `None` keeps);
/// returns the row as saved.
pub async fn set_state(
    db: &impl ConnectionTrait,
    row: replication_flows::Model,
    to: ReplicationState,
    reason: Option<Option<String>>,
) -> Result<replication_flows::Model, DbErr> {
    let mut a: replication_flows::ActiveModel = row.into();
    a.state = Set(to.as_str().to_owned());
    if let Some(r) = reason {
        a.failure_reason = Set(r);
    }
    a.updated_at = Set(Utc::now());
    a.update(db).await
}

/// The next scheduled sync after a sync that started at `started`: one
/// interval later, or now when that has passed already.
pub fn next_sync(started: DateTime<Utc>, interval_seconds: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    (started + chrono::Duration::seconds(interval_seconds)).max(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::replica::PointRecord;
    use shared_types::replication::SyncKind;
    use ReplicationState as S;

    fn replica(points: usize, phase: Phase) -> ReplicaState {
        ReplicaState {
            format: 1,
            replication_id: "r".into(),
            source_vm: "web-01".into(),
            source_vm_id: "x".into(),
            source_nics: vec![],
            disks: vec![],
            points: (1..=points as u64)
                .map(|seq| PointRecord { seq, consistent_at: Utc::now(), kind: SyncKind::Full, bytes_copied: 1, failover: false })
                .collect(),
            next_seq: points as u64 + 1,
            phase,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn the_replica_phase_wins_over_what_a_job_wanted() {
        let now = Utc::now();
        let r = replica(2, Phase::Replicating);
        assert_eq!(reconcile(S::Healthy, Some(&r)), S::Healthy);
        assert_eq!(reconcile(S::Syncing, Some(&r)), S::Failed, "a busy state never survives a job");
        assert_eq!(reconcile(S::Testing, Some(&r)), S::Healthy, "no test VM: not testing");
        assert_eq!(reconcile(S::Healthy, Some(&replica(0, Phase::Replicating))), S::Idle);
        assert_eq!(reconcile(S::Paused, Some(&r)), S::Paused);
        let t = replica(2, Phase::Testing { point: 2, vm: "web-01-test".into(), started_at: now });
        assert_eq!(reconcile(S::Healthy, Some(&t)), S::Testing, "an end of test that failed leaves the test running");
        let f = replica(2, Phase::FailingOver { source_was_running: true, started_at: now });
        assert_eq!(reconcile(S::FailingOver, Some(&f)), S::Failed);
        assert!(phase_note(Some(&f)).unwrap().contains("failover again"));
        let rb = replica(2, Phase::RollingBack { point: 2, sync_back: true, data_done: false });
        assert_eq!(reconcile(S::Healthy, Some(&rb)), S::FailedOver, "a half rollback is finished by rolling back again");
        assert_eq!(reconcile(S::FailedOver, None), S::Idle);
        assert_eq!(reconcile(S::Syncing, None), S::Failed);
    }

    #[test]
    fn the_next_sync_is_an_interval_after_the_last_start() {
        let t0 = Utc::now();
        assert_eq!(next_sync(t0, 900, t0), t0 + chrono::Duration::seconds(900));
        let late = t0 + chrono::Duration::seconds(2000);
        assert_eq!(next_sync(t0, 900, late), late);
    }
}
