//! Global search over the catalog: VMs, backup and replication flows,
//! protection groups, platforms, repositories, restore points and jobs,
//! by name, any case, ranked as [`shared_types::search`] says.
//!
//! Every table is asked once, with a `LIKE` on `lower(name)` (the user's
//! `%`, `_` and `\` escaped) ordered best match first and a `LIMIT`, so a
//! search costs a fixed number of bounded queries whatever the catalog
//! holds. Restore points and jobs have no name of their own: they are found
//! through their VM (the best-matching VMs, newest first, through the
//! `(vm_context_id, created_at)` indexes), a repository job through its
//! repository, and either by the start of its id. The rank each hit gets is
//! computed again here with [`match_rank`], the same function the cockpit
//! uses for its pages, so both sides order alike.
//!
//! SQLite's `lower()` folds ASCII letters only: a name with other letters
//! matches in the case it is stored in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoSimpleExpr, Order, QueryFilter, QueryOrder, QuerySelect};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::platform::PlatformKind;
use shared_types::search::{match_rank, route, sort_hits, MatchRank, SearchHit, SearchKind};

use super::convert::Names;
use super::from_wire;
use crate::db::entities::{backups, flows, jobs, platforms, protection_groups, replication_flows, repositories, vm_contexts};

/// The search text as the queries use it.
struct Needle {
    /// Trimmed, lower case.
    lower: String,
    /// Lower case with `\`, `%` and `_` escaped for `LIKE … ESCAPE '\'`.
    escaped: String,
}

impl Needle {
    fn new(text: &str) -> Needle {
        let lower = text.trim().to_lowercase();
        let escaped = lower.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        Needle { lower, escaped }
    }

    fn like(&self, pattern: String) -> LikeExpr {
        LikeExpr::new(pattern).escape('\\')
    }

    /// `lower(col)` contains the text.
    fn matches(&self, col: impl IntoSimpleExpr) -> SimpleExpr {
        lower(col).like(self.like(format!("%{}%", self.escaped)))
    }

    /// 0 exact, 1 prefix, 2 after a common separator, 3 elsewhere: the
    /// database keeps the best rows under its `LIMIT`.
    fn best_first<C: IntoSimpleExpr + Clone>(&self, col: C) -> SimpleExpr {
        let word = ["% ", "%-", "%\\_", "%.", "%/", "%:"]
            .into_iter()
            .map(|sep| lower(col.clone()).like(self.like(format!("{sep}{}%", self.escaped))))
            .reduce(SimpleExpr::or)
            .unwrap_or_else(|| Expr::val(false).into());
        Expr::case(lower(col.clone()).eq(self.lower.clone()), 0)
            .case(lower(col).like(self.like(format!("{}%", self.escaped))), 1)
            .case(word, 2)
            .finally(3)
            .into()
    }

    /// The start of a row id (ids are lower-case UUIDs): only for text that
    /// could be one.
    fn id_prefix(&self) -> Option<String> {
        (self.lower.len() >= 8 && self.lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-')).then(|| format!("{}%", self.escaped))
    }
}

fn lower(col: impl IntoSimpleExpr) -> SimpleExpr {
    Func::lower(col.into_simple_expr()).into()
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Up to `limit` hits for `text` (already checked), best first.
pub async fn search(db: &impl ConnectionTrait, text: &str, limit: u64) -> Result<Vec<SearchHit>, DbErr> {
    let n = Needle::new(text);
    // Restore points and jobs are many per VM: a few of the newest.
    let few = limit.div_ceil(4).max(3).min(limit);
    let mut hits = Vec::new();

    let vms = vms(db, &n, limit).await?;
    let best_vms = best_ids(&vms, |(vm, rank)| (vm.id.clone(), *rank));
    hits.extend(vm_hits(db, vms).await?);
    hits.extend(flow_hits(db, &n, limit).await?);
    hits.extend(group_hits(db, &n, limit).await?);
    hits.extend(platform_hits(db, &n, limit).await?);
    let repos = named::<repositories::Entity, _>(db, &n, repositories::Column::Name, limit).await?;
    let best_repos = best_ids(&repos, |(r, rank)| (r.id.clone(), *rank));
    hits.extend(repos.into_iter().map(|(r, rank)| SearchHit {
        kind: SearchKind::Repository,
        subtitle: match &r.maintenance_reason {
            Some(why) => format!("{} repository · in maintenance: {why}", r.kind),
            None => format!("{} repository", r.kind),
        },
        route: route::repository(&r.id),
        title: r.name,
        id: r.id,
        rank,
        at: None,
    }));
    hits.extend(restore_point_hits(db, &n, &best_vms, few).await?);
    hits.extend(job_hits(db, &n, &best_vms, &best_repos, few).await?);

    sort_hits(&mut hits);
    hits.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(hits)
}

/// Rows of `E` whose `name` contains the text, best first, with their rank.
async fn named<E, C>(db: &impl ConnectionTrait, n: &Needle, name: C, limit: u64) -> Result<Vec<(E::Model, MatchRank)>, DbErr>
where
    E: EntityTrait,
    C: ColumnTrait + IntoSimpleExpr,
    E::Model: HasName,
{
    let rows = E::find()
        .filter(n.matches(name))
        .order_by(n.best_first(name), Order::Asc)
        .order_by(name, Order::Asc)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|r| match_rank(&n.lower, r.name()).map(|rank| (r, rank))).collect())
}

/// The rows' names, for [`named`].
trait HasName {
    fn name(&self) -> &str;
}

macro_rules! has_name {
    ($($m:path),*) => { $(impl HasName for $m { fn name(&self) -> &str { &self.name } })* };
}
has_name!(vm_contexts::Model, flows::Model, replication_flows::Model, protection_groups::Model, platforms::Model, repositories::Model);

/// The ids of the rows with the best rank found.
fn best_ids<T>(rows: &[T], key: impl Fn(&T) -> (String, MatchRank)) -> Vec<String> {
    let keyed: Vec<(String, MatchRank)> = rows.iter().map(key).collect();
    let Some(best) = keyed.iter().map(|(_, r)| *r).min_by_key(|r| MatchRank::ALL.iter().position(|x| x == r)) else {
        return Vec::new();
    };
    keyed.into_iter().filter(|(_, r)| *r == best).map(|(id, _)| id).collect()
}

async fn vms(db: &impl ConnectionTrait, n: &Needle, limit: u64) -> Result<Vec<(vm_contexts::Model, MatchRank)>, DbErr> {
    named::<vm_contexts::Entity, _>(db, n, vm_contexts::Column::Name, limit).await
}

async fn vm_hits(db: &impl ConnectionTrait, vms: Vec<(vm_contexts::Model, MatchRank)>) -> Result<Vec<SearchHit>, DbErr> {
    let ids: Vec<String> = vms.iter().map(|(v, _)| v.platform_id.clone()).collect();
    let platforms: HashMap<String, platforms::Model> = if ids.is_empty() {
        HashMap::new()
    } else {
        platforms::Entity::find().filter(platforms::Column::Id.is_in(ids)).all(db).await?.into_iter().map(|p| (p.id.clone(), p)).collect()
    };
    Ok(vms
        .into_iter()
        .map(|(v, rank)| {
            let platform = platforms.get(&v.platform_id);
            // The stored word is the API's (`running`, `stopped`, ...).
            let mut subtitle = format!("{} · {}", platform.map(|p| p.name.as_str()).unwrap_or("(removed platform)"), v.power);
            if v.status == "missing" {
                subtitle.push_str(" · missing from its platform");
            }
            SearchHit { kind: SearchKind::Vm, route: route::vm(&v.id), title: v.name, id: v.id, subtitle, rank, at: None }
        })
        .collect())
}

async fn flow_hits(db: &impl ConnectionTrait, n: &Needle, limit: u64) -> Result<Vec<SearchHit>, DbErr> {
    let backup = named::<flows::Entity, _>(db, n, flows::Column::Name, limit).await?;
    let repos = if backup.is_empty() { Names::default() } else { Names::repositories(db).await? };
    let mut hits: Vec<SearchHit> = backup
        .into_iter()
        .map(|(f, rank)| {
            let state = shared_types::flow::FlowState::parse(&f.state).map(|s| s.label()).unwrap_or("Unknown");
            let enabled = if f.enabled { "" } else { " · disabled" };
            SearchHit {
                kind: SearchKind::Flow,
                subtitle: format!("Backup flow · {state} · to {}{enabled}", repos.get(&f.repository_id)),
                route: route::flow(&f.id),
                title: f.name,
                id: f.id,
                rank,
                at: f.last_run_at,
            }
        })
        .collect();
    let replication = named::<replication_flows::Entity, _>(db, n, replication_flows::Column::Name, limit).await?;
    let vms = Names::vms(db, replication.iter().map(|(r, _)| r.vm_context_id.clone())).await?;
    hits.extend(replication.into_iter().map(|(r, rank)| {
        let state = shared_types::replication::ReplicationState::parse(&r.state).map(|s| s.label()).unwrap_or("Unknown");
        SearchHit {
            kind: SearchKind::Flow,
            subtitle: format!("Replication of {} · {state}", vms.get(&r.vm_context_id)),
            route: route::replication(&r.id),
            title: r.name,
            id: r.id,
            rank,
            at: r.last_consistent_at,
        }
    }));
    Ok(hits)
}

async fn group_hits(db: &impl ConnectionTrait, n: &Needle, limit: u64) -> Result<Vec<SearchHit>, DbErr> {
    let groups = named::<protection_groups::Entity, _>(db, n, protection_groups::Column::Name, limit).await?;
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = groups.iter().map(|(g, _)| g.id.clone()).collect();
    let counts = super::vm_list::group_sizes(db, ids).await?;
    Ok(groups
        .into_iter()
        .map(|(g, rank)| {
            let count = counts.get(&g.id).copied().unwrap_or(0);
            let mut subtitle = format!("Protection group · {count} VM{}", if count == 1 { "" } else { "s" });
            if let Some(d) = g.description.as_deref().filter(|d| !d.is_empty()) {
                subtitle.push_str(" · ");
                subtitle.push_str(d);
            }
            SearchHit { kind: SearchKind::Group, route: route::group(&g.id), title: g.name, id: g.id, subtitle, rank, at: None }
        })
        .collect())
}

async fn platform_hits(db: &impl ConnectionTrait, n: &Needle, limit: u64) -> Result<Vec<SearchHit>, DbErr> {
    let rows = named::<platforms::Entity, _>(db, n, platforms::Column::Name, limit).await?;
    Ok(rows
        .into_iter()
        .map(|(p, rank)| {
            let kind = from_wire::<PlatformKind>(&p.kind).map(|k| k.label()).unwrap_or("platform");
            SearchHit {
                kind: SearchKind::Platform,
                subtitle: format!("{kind} · {} · {} VMs found", p.status, p.discovered_vms),
                route: route::platform(&p.id),
                title: p.name,
                id: p.id,
                rank,
                at: p.last_discovery_at,
            }
        })
        .collect())
}

async fn restore_point_hits(db: &impl ConnectionTrait, n: &Needle, vm_ids: &[String], few: u64) -> Result<Vec<SearchHit>, DbErr> {
    let mut rows = Vec::new();
    if !vm_ids.is_empty() {
        rows = backups::Entity::find()
            .filter(backups::Column::VmContextId.is_in(vm_ids.to_vec()))
            .order_by_desc(backups::Column::CreatedAt)
            .limit(few)
            .all(db)
            .await?;
    }
    if let Some(prefix) = n.id_prefix() {
        let by_id = backups::Entity::find()
            .filter(Expr::col(backups::Column::Id).like(n.like(prefix)))
            .order_by_desc(backups::Column::CreatedAt)
            .limit(few)
            .all(db)
            .await?;
        rows.extend(by_id.into_iter().filter(|b| !vm_ids.contains(&b.vm_context_id)));
    }
    let vms = Names::vms(db, rows.iter().map(|b| b.vm_context_id.clone())).await?;
    let repos = if rows.is_empty() { Names::default() } else { Names::repositories(db).await? };
    Ok(rows
        .into_iter()
        .filter_map(|b| {
            let vm = vms.get(&b.vm_context_id);
            let rank = match_rank(&n.lower, &vm).or_else(|| match_rank(&n.lower, &b.id))?;
            Some(SearchHit {
                kind: SearchKind::RestorePoint,
                title: format!("{vm} · {}", when(b.created_at)),
                subtitle: format!("{} restore point · {} · {}", b.backup_type, repos.get(&b.repository_id), b.status),
                route: route::restore_point(&b.id),
                id: b.id,
                rank,
                at: Some(b.created_at),
            })
        })
        .collect())
}

async fn job_hits(db: &impl ConnectionTrait, n: &Needle, vm_ids: &[String], repo_ids: &[String], few: u64) -> Result<Vec<SearchHit>, DbErr> {
    let mut rows = Vec::new();
    if !vm_ids.is_empty() {
        rows = jobs::Entity::find()
            .filter(jobs::Column::VmContextId.is_in(vm_ids.to_vec()))
            .order_by_desc(jobs::Column::CreatedAt)
            .limit(few)
            .all(db)
            .await?;
    }
    if !repo_ids.is_empty() {
        rows.extend(
            jobs::Entity::find()
                .filter(jobs::Column::VmContextId.is_null())
                .filter(jobs::Column::RepositoryId.is_in(repo_ids.to_vec()))
                .order_by_desc(jobs::Column::CreatedAt)
                .limit(few)
                .all(db)
                .await?,
        );
    }
    if let Some(prefix) = n.id_prefix() {
        let seen: Vec<String> = rows.iter().map(|j| j.id.clone()).collect();
        let by_id = jobs::Entity::find()
            .filter(Expr::col(jobs::Column::Id).like(n.like(prefix)))
            .order_by_desc(jobs::Column::CreatedAt)
            .limit(few)
            .all(db)
            .await?;
        rows.extend(by_id.into_iter().filter(|j| !seen.contains(&j.id)));
    }
    let converted = super::convert::jobs(db, rows).await?;
    Ok(converted
        .into_iter()
        .filter_map(|j| {
            let rank = match_rank(&n.lower, &j.vm_name).or_else(|| match_rank(&n.lower, &j.id))?;
            let kind = job_kind_label(j.kind);
            let status = job_status_label(j.status);
            let mut subtitle = format!("{status} · {}", when(j.created_at));
            if let Some(flow) = &j.flow_name {
                subtitle.push_str(&format!(" · {flow}"));
            }
            Some(SearchHit {
                kind: SearchKind::Job,
                title: format!("{kind} · {}", j.vm_name),
                subtitle,
                route: route::job(&j.id),
                id: j.id,
                rank,
                at: Some(j.created_at),
            })
        })
        .collect())
}

fn job_kind_label(k: JobKind) -> &'static str {
    match k {
        JobKind::Backup => "Backup",
        JobKind::Restore => "Restore",
        JobKind::Replication => "Replication",
        JobKind::FileRestore => "File restore",
        JobKind::Verify => "Verify",
        JobKind::Gc => "Garbage collection",
        JobKind::Prune => "Prune",
        JobKind::InstantRecovery => "Instant recovery",
        JobKind::Copy => "Copy",
    }
}

fn job_status_label(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "Queued",
        JobStatus::Running => "Running",
        JobStatus::Paused => "Paused",
        JobStatus::Completed => "Completed",
        JobStatus::Failed => "Failed",
        JobStatus::Cancelled => "Cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_wildcards_are_escaped() {
        let n = Needle::new(" 50%_Off\\ ");
        assert_eq!(n.lower, "50%_off\\");
        assert_eq!(n.escaped, "50\\%\\_off\\\\");
        assert_eq!(Needle::new("web").id_prefix(), None);
        assert_eq!(Needle::new("1a2b3c4d-").id_prefix().as_deref(), Some("1a2b3c4d-%"));
    }
}
