//! Recording restore points: the job runner calls [`record`] once a
//! snapshot's manifest is committed, so the catalog and the repository
//! agree on what exists; and a restore point's chain ([`chain`]) from the
//! parent links recorded with them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use shared_types::backups::{BackupStatus, ChainRelation};
use shared_types::jobs::BackupType;

use super::{new_id, to_i64};
use crate::db::entities::backups;
use crate::engine::manifest::Manifest;

/// What the catalog records about a committed snapshot.
pub struct NewBackup<'a> {
    pub vm_context_id: &'a str,
    pub job_id: Option<&'a str>,
    pub repository_id: &'a str,
    pub manifest: &'a Manifest,
    /// Days the restore point cannot be deleted (the flow's `immutable_days`).
    pub immutable_days: u32,
    /// How the engine read the VM (`None`: incremental when the snapshot has a parent).
    pub backup_type: Option<BackupType>,
}

/// Inserts the restore point of a committed snapshot. Incremental when the
/// snapshot has a parent; sizes come from the manifest (what the engine
/// really read and wrote).
pub async fn record(db: &impl ConnectionTrait, b: NewBackup<'_>) -> Result<backups::Model, DbErr> {
    let m = b.manifest;
    let created: DateTime<Utc> = m.created_at().unwrap_or_else(Utc::now);
    let immutable_until = match m.immutable_until.as_deref().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
        Some(u) => Some(u.with_timezone(&Utc)),
        None if b.immutable_days > 0 => Some(created + Duration::days(i64::from(b.immutable_days))),
        None => None,
    };
    let row = backups::ActiveModel {
        id: Set(new_id()),
        vm_context_id: Set(b.vm_context_id.to_owned()),
        job_id: Set(b.job_id.map(str::to_owned)),
        repository_id: Set(b.repository_id.to_owned()),
        snapshot_name: Set(m.name.clone()),
        snapshot_id: Set(m.id.clone()),
        parent_snapshot_id: Set(m.parent.clone()),
        backup_type: Set(b.backup_type.unwrap_or(if m.parent.is_some() { BackupType::Incremental } else { BackupType::Full }).as_str().to_owned()),
        status: Set(BackupStatus::Available.as_str().to_owned()),
        logical_bytes: Set(to_i64(m.disks.iter().map(|d| d.size).sum())),
        bytes_read: Set(to_i64(m.stats.bytes_read)),
        bytes_written: Set(to_i64(m.stats.bytes_written)),
        created_at: Set(created),
        immutable_until: Set(immutable_until),
        verified_at: Set(None),
        verify_reason: Set(None),
    }
    .insert(db)
    .await?;
    super::backup_locations::record_primary(db, &row).await?;
    Ok(row)
}

/// A restore point's chain from the catalog's parent links, oldest first:
/// the points it reads from (back to its full), itself, the points that
/// read from it; and the parent the oldest names when that point is no
/// longer in the catalog. Parents are snapshots of the same name in the
/// same repository.
pub async fn chain(db: &impl ConnectionTrait, this: &backups::Model) -> Result<(Vec<(ChainRelation, backups::Model)>, Option<String>), DbErr> {
    let rows = backups::Entity::find()
        .filter(backups::Column::RepositoryId.eq(this.repository_id.clone()))
        .filter(backups::Column::SnapshotName.eq(this.snapshot_name.clone()))
        .all(db)
        .await?;
    Ok(links(rows, &this.id))
}

/// [`chain`] over one name's restore points.
pub fn links(rows: Vec<backups::Model>, this_id: &str) -> (Vec<(ChainRelation, backups::Model)>, Option<String>) {
    let by_snapshot: HashMap<&str, &backups::Model> = rows.iter().map(|r| (r.snapshot_id.as_str(), r)).collect();
    let Some(this) = rows.iter().find(|r| r.id == this_id) else {
        return (Vec::new(), None);
    };
    let mut out: Vec<(ChainRelation, backups::Model)> = vec![(ChainRelation::This, this.clone())];
    let mut seen: HashSet<&str> = HashSet::from([this.snapshot_id.as_str()]);
    // Back along the parents (a loop in bad data ends the walk).
    let mut missing = None;
    let mut at = this;
    while let Some(parent) = at.parent_snapshot_id.as_deref() {
        match by_snapshot.get(parent) {
            Some(p) if seen.insert(p.snapshot_id.as_str()) => {
                out.push((ChainRelation::Ancestor, (*p).clone()));
                at = p;
            }
            Some(_) => break,
            None => {
                missing = Some(parent.to_owned());
                break;
            }
        }
    }
    // Forward to every point that reads from it, directly or not.
    let mut frontier = vec![this.snapshot_id.clone()];
    while let Some(s) = frontier.pop() {
        for child in rows.iter().filter(|r| r.parent_snapshot_id.as_deref() == Some(s.as_str())) {
            if seen.insert(child.snapshot_id.as_str()) {
                out.push((ChainRelation::Descendant, child.clone()));
                frontier.push(child.snapshot_id.clone());
            }
        }
    }
    out.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then_with(|| a.1.snapshot_id.cmp(&b.1.snapshot_id)));
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, parent: Option<&str>, minute: i64) -> backups::Model {
        backups::Model {
            id: format!("b-{id}"),
            vm_context_id: "vm".into(),
            job_id: None,
            repository_id: "r".into(),
            snapshot_name: "web".into(),
            snapshot_id: id.into(),
            parent_snapshot_id: parent.map(Into::into),
            backup_type: if parent.is_some() { "incremental" } else { "full" }.into(),
            status: "available".into(),
            logical_bytes: 1,
            bytes_read: 1,
            bytes_written: 1,
            created_at: DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap(),
            immutable_until: None,
            verified_at: None,
            verify_reason: None,
        }
    }

    #[test]
    fn a_chain_runs_from_the_full_through_the_point_to_what_reads_from_it() {
        // full1 <- i1 <- i2 <- i3, and a second chain full2 <- j1.
        let rows = vec![row("i2", Some("i1"), 2), row("full1", None, 0), row("i1", Some("full1"), 1), row("i3", Some("i2"), 3), row("full2", None, 4), row("j1", Some("full2"), 5)];
        let (links_of_i1, missing) = links(rows.clone(), "b-i1");
        let got: Vec<(ChainRelation, &str)> = links_of_i1.iter().map(|(r, m)| (*r, m.snapshot_id.as_str())).collect();
        assert_eq!(
            got,
            vec![(ChainRelation::Ancestor, "full1"), (ChainRelation::This, "i1"), (ChainRelation::Descendant, "i2"), (ChainRelation::Descendant, "i3")]
        );
        assert_eq!(missing, None);
        let (of_full2, _) = links(rows.clone(), "b-full2");
        assert_eq!(of_full2.iter().map(|(_, m)| m.snapshot_id.as_str()).collect::<Vec<_>>(), vec!["full2", "j1"]);
        // The full deleted: the chain of i2 names the parent it lost.
        let without_full: Vec<_> = rows.into_iter().filter(|r| r.snapshot_id != "full1").collect();
        let (of_i2, missing) = links(without_full, "b-i2");
        assert_eq!(of_i2.len(), 3);
        assert_eq!(missing.as_deref(), Some("full1"));
    }

    #[test]
    fn a_loop_in_the_parent_links_ends_the_walk() {
        let rows = vec![row("a", Some("b"), 0), row("b", Some("a"), 1)];
        let (l, _) = links(rows, "b-a");
        assert_eq!(l.len(), 2);
    }
}
