//! Policies in the catalog: rows to API types with where each applies, the
//! one way a flow comes to follow a policy ([`follow`], which writes the
//! policy's retention and immutability to the flow, as [`sync_followers`]
//! does after every change of the policy, so the runner's retention and the
//! next backups use them), the repositories a policy's verify schedule
//! covers, and the preview of what a retention would delete now, decided by
//! the runner's own retention code ([`crate::runner::retention::decide`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::flow::{FlowKind, RetentionPolicy};
use shared_types::policies::{describe_retention, FlowPreview, Policy, PolicyPreview, PreviewPoint};
use shared_types::NamedRef;

use super::convert::Names;
use super::{flows as flow_logic, schedule};
use crate::db::entities::{flows, group_policies, policies, protection_groups, repositories};
use crate::runner::retention::{self, Fate};

pub fn retention(m: &policies::Model) -> RetentionPolicy {
    serde_json::from_str(&m.retention).unwrap_or_else(|e| {
        tracing::error!(policy = %m.id, error = %e, "unreadable retention; keeping everything");
        RetentionPolicy::default()
    })
}

pub fn immutable_days(m: &policies::Model) -> u32 {
    u32::try_from(m.immutable_days).unwrap_or(0)
}

/// Policies as the API shows them, with the flows and groups that follow each, by name.
pub async fn to_api(db: &impl ConnectionTrait, rows: Vec<policies::Model>) -> Result<Vec<Policy>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|p| p.id.clone()).collect();
    let mut by_flow: HashMap<String, Vec<NamedRef>> = HashMap::new();
    for (id, name, policy) in flows::Entity::find()
        .select_only()
        .columns([flows::Column::Id, flows::Column::Name, flows::Column::PolicyId])
        .filter(flows::Column::PolicyId.is_in(ids.clone()))
        .order_by_asc(flows::Column::Name)
        .into_tuple::<(String, String, Option<String>)>()
        .all(db)
        .await?
    {
        if let Some(p) = policy {
            by_flow.entry(p).or_default().push(NamedRef { id, name });
        }
    }
    let mut by_group: HashMap<String, Vec<NamedRef>> = HashMap::new();
    let links = group_policies::Entity::find().filter(group_policies::Column::PolicyId.is_in(ids)).all(db).await?;
    if !links.is_empty() {
        let names: HashMap<String, String> = protection_groups::Entity::find()
            .select_only()
            .columns([protection_groups::Column::Id, protection_groups::Column::Name])
            .filter(protection_groups::Column::Id.is_in(links.iter().map(|l| l.group_id.clone())))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        for l in links {
            let name = names.get(&l.group_id).cloned().unwrap_or_default();
            by_group.entry(l.policy_id).or_default().push(NamedRef { id: l.group_id, name });
        }
        for g in by_group.values_mut() {
            g.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }
    Ok(rows
        .into_iter()
        .map(|m| {
            let r = retention(&m);
            Policy {
                keeps: describe_retention(&r),
                retention: r,
                immutable_days: immutable_days(&m),
                verify_schedule_description: m.verify_schedule.as_deref().and_then(schedule::describe),
                flows: by_flow.remove(&m.id).unwrap_or_default(),
                groups: by_group.remove(&m.id).unwrap_or_default(),
                id: m.id,
                name: m.name,
                description: m.description,
                require_encryption: m.require_encryption,
                copy_target: super::backup_locations::parse_target(m.copy_target.as_deref()),
                verify_schedule: m.verify_schedule,
                created_at: m.created_at,
                updated_at: m.updated_at,
            }
        })
        .collect())
}

/// What a policy keeps and guards, in words.
pub fn describe(m: &policies::Model) -> String {
    shared_types::policies::summary(&retention(m), immutable_days(m), m.require_encryption)
}

/// Policy names for these ids.
pub async fn names(db: &impl ConnectionTrait, ids: impl IntoIterator<Item = String>) -> Result<Names, DbErr> {
    let ids: Vec<String> = ids.into_iter().collect::<HashSet<_>>().into_iter().collect();
    if ids.is_empty() {
        return Ok(Names::default());
    }
    let rows: Vec<(String, String)> = policies::Entity::find()
        .select_only()
        .columns([policies::Column::Id, policies::Column::Name])
        .filter(policies::Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(Names(rows.into_iter().collect()))
}

/// Makes the flows `flow_ids` follow `policy`: its id, retention,
/// immutability and copy target written to each of them.
pub async fn follow(db: &impl ConnectionTrait, policy: &policies::Model, flow_ids: Vec<String>) -> Result<u64, DbErr> {
    if flow_ids.is_empty() {
        return Ok(0);
    }
    let done = flows::Entity::update_many()
        .col_expr(flows::Column::PolicyId, Expr::value(Some(policy.id.clone())))
        .col_expr(flows::Column::Retention, Expr::value(policy.retention.clone()))
        .col_expr(flows::Column::ImmutableDays, Expr::value(policy.immutable_days))
        .col_expr(flows::Column::CopyTarget, Expr::value(policy.copy_target.clone()))
        .col_expr(flows::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(flows::Column::Id.is_in(flow_ids))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// Writes `policy`'s retention, immutability and copy target to every flow that follows it.
pub async fn sync_followers(db: &impl ConnectionTrait, policy: &policies::Model) -> Result<u64, DbErr> {
    let done = flows::Entity::update_many()
        .col_expr(flows::Column::Retention, Expr::value(policy.retention.clone()))
        .col_expr(flows::Column::ImmutableDays, Expr::value(policy.immutable_days))
        .col_expr(flows::Column::CopyTarget, Expr::value(policy.copy_target.clone()))
        .col_expr(flows::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(flows::Column::PolicyId.eq(policy.id.clone()))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// The policy a group gives its flows.
pub async fn of_group(db: &impl ConnectionTrait, group_id: &str) -> Result<Option<policies::Model>, DbErr> {
    let Some(link) = group_policies::Entity::find_by_id(group_id.to_owned()).one(db).await? else { return Ok(None) };
    policies::Entity::find_by_id(link.policy_id).one(db).await
}

/// Backup flows whose source is group `group_id`.
pub async fn group_flow_ids(db: &impl ConnectionTrait, group_id: &str) -> Result<Vec<String>, DbErr> {
    flows::Entity::find()
        .select_only()
        .column(flows::Column::Id)
        .filter(flows::Column::GroupId.eq(group_id))
        .filter(flows::Column::Kind.eq(FlowKind::Backup.as_str()))
        .into_tuple()
        .all(db)
        .await
}

/// Whether the repository in `path` is encrypted (its configuration says
/// so); `Err` when it cannot be read. Blocking.
pub fn is_encrypted(path: &Path) -> Result<bool, String> {
    super::repository_keys::fingerprint(path).map(|f| f.is_some()).map_err(|e| e.to_string())
}

/// The repositories among `repository_ids` that are not encrypted (or
/// cannot be read), by name with the reason.
pub async fn unencrypted(db: &impl ConnectionTrait, repository_ids: Vec<String>) -> Result<Vec<String>, DbErr> {
    if repository_ids.is_empty() {
        return Ok(Vec::new());
    }
    let repos = repositories::Entity::find().filter(repositories::Column::Id.is_in(repository_ids)).all(db).await?;
    let checked = tokio::task::spawn_blocking(move || {
        repos
            .into_iter()
            .filter_map(|r| match if r.kind == "local" { is_encrypted(Path::new(&r.path)) } else { Ok(r.encrypted) } {
                Ok(true) => None,
                Ok(false) => Some(format!("'{}'", r.name)),
                Err(e) => Some(format!("'{}' (unreadable: {e})", r.name)),
            })
            .collect::<Vec<_>>()
    })
    .await;
    Ok(checked.unwrap_or_else(|e| vec![format!("(the check stopped: {e})")]))
}

/// (repository id, policy id, verify pattern) for every repository a flow
/// following a policy with a verify schedule writes to.
pub async fn verify_schedules(db: &impl ConnectionTrait) -> Result<Vec<(String, String, String)>, DbErr> {
    let scheduled: HashMap<String, String> = policies::Entity::find()
        .filter(policies::Column::VerifySchedule.is_not_null())
        .all(db)
        .await?
        .into_iter()
        .filter_map(|p| p.verify_schedule.filter(|s| !s.trim().is_empty()).map(|s| (p.id, s)))
        .collect();
    if scheduled.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<(String, Option<String>)> = flows::Entity::find()
        .select_only()
        .columns([flows::Column::RepositoryId, flows::Column::PolicyId])
        .filter(flows::Column::PolicyId.is_in(scheduled.keys().cloned()))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let mut out: Vec<(String, String, String)> = pairs
        .into_iter()
        .filter_map(|(repo, policy)| {
            let policy = policy?;
            scheduled.get(&policy).map(|s| (repo, policy.clone(), s.clone()))
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// What `candidate` would delete now from each flow of `flow_rows`, VM by
/// VM in the flow's repository, as the runner's retention decides it
/// (immutable restore points kept; pins of running instant recoveries read
/// from the repository).
pub async fn preview(
    db: &impl ConnectionTrait,
    data_dir: &Path,
    candidate: &RetentionPolicy,
    flow_rows: Vec<flows::Model>,
) -> Result<PolicyPreview, DbErr> {
    let rules = flow_logic::keep_rules(candidate);
    let now = Utc::now();
    let repos = Names::repositories(db).await?;
    let policy_names = names(db, flow_rows.iter().filter_map(|f| f.policy_id.clone())).await?;
    let mut out = PolicyPreview { keeps: describe_retention(candidate), flows: Vec::new(), deleted_total: 0, kept_immutable_total: 0 };
    // Pins per repository, read once.
    let mut pins: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for flow in flow_rows {
        let vm_ids = flow_logic::vm_ids(db, &flow).await?;
        let vm_names = Names::vms(db, vm_ids.clone()).await?;
        if !pins.contains_key(&flow.repository_id) {
            pins.insert(flow.repository_id.clone(), pinned(db, data_dir, &flow.repository_id).await?);
        }
        let pinned = &pins[&flow.repository_id];
        let mut fp = FlowPreview {
            flow: NamedRef { id: flow.id.clone(), name: flow.name.clone() },
            repository: repos.named(&flow.repository_id),
            policy: flow.policy_id.as_deref().map(|p| policy_names.named(p)),
            total: 0,
            kept: 0,
            deleted: Vec::new(),
            kept_immutable: Vec::new(),
            kept_pinned: Vec::new(),
        };
        for vm in &vm_ids {
            let rows = retention::candidates(db, &flow.repository_id, vm).await?;
            let fates = retention::decide(&rows, &rules, now);
            fp.total += rows.len() as u64;
            for (row, fate) in rows.into_iter().zip(fates) {
                let point = |immutable_until| PreviewPoint {
                    backup_id: row.id.clone(),
                    vm: vm_names.named(vm),
                    created_at: row.created_at,
                    immutable_until,
                };
                match fate {
                    Fate::Keep => fp.kept += 1,
                    Fate::KeepImmutable => fp.kept_immutable.push(point(row.immutable_until)),
                    Fate::Remove if pinned.contains(&format!("{}/{}", row.snapshot_name, row.snapshot_id)) => fp.kept_pinned.push(point(None)),
                    Fate::Remove => fp.deleted.push(point(None)),
                }
            }
        }
        out.deleted_total += fp.deleted.len() as u64;
        out.kept_immutable_total += fp.kept_immutable.len() as u64;
        out.flows.push(fp);
    }
    Ok(out)
}

/// The snapshots (`name/id`) pins hold in a repository; none when it cannot
/// be read (its restore points cannot be removed then either).
async fn pinned(db: &impl ConnectionTrait, data_dir: &Path, repository_id: &str) -> Result<HashSet<String>, DbErr> {
    let Some(row) = repositories::Entity::find_by_id(repository_id.to_owned()).one(db).await? else { return Ok(HashSet::new()) };
    let data_dir = data_dir.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let ds = super::repositories::open_datastore(&data_dir, &row)?;
        crate::engine::lease::pinned_snapshots(ds.repo.as_ref())
    })
    .await;
    Ok(match read {
        Ok(Ok(set)) => set,
        Ok(Err(e)) => {
            tracing::warn!(repository = %repository_id, error = %e, "reading pins for a retention preview");
            HashSet::new()
        }
        Err(e) => {
            tracing::warn!(error = %e, "the pin reading thread failed");
            HashSet::new()
        }
    })
}

/// How many flows and groups use a policy (for refusing its removal).
pub async fn usage(db: &impl ConnectionTrait, policy_id: &str) -> Result<(Vec<String>, Vec<String>), DbErr> {
    let flows: Vec<String> = flows::Entity::find()
        .select_only()
        .column(flows::Column::Name)
        .filter(flows::Column::PolicyId.eq(policy_id))
        .order_by_asc(flows::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    let group_ids: Vec<String> = group_policies::Entity::find()
        .select_only()
        .column(group_policies::Column::GroupId)
        .filter(group_policies::Column::PolicyId.eq(policy_id))
        .into_tuple()
        .all(db)
        .await?;
    let groups: Vec<String> = if group_ids.is_empty() {
        Vec::new()
    } else {
        protection_groups::Entity::find()
            .select_only()
            .column(protection_groups::Column::Name)
            .filter(protection_groups::Column::Id.is_in(group_ids))
            .order_by_asc(protection_groups::Column::Name)
            .into_tuple()
            .all(db)
            .await?
    };
    Ok((flows, groups))
}
