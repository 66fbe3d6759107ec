//! Retention: keep-last / hourly / daily / weekly / monthly / yearly, applied
//! per snapshot name (newest first, as Proxmox Backup Server does: each rule
//! keeps the newest snapshot of each of its N most recent periods not already
//! covered by a previous rule). Snapshots inside their immutability window are
//! never removed. Removing a snapshot deletes its manifest only; the chunks
//! are reclaimed by garbage collection.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::datastore::Datastore;
use super::error::{EngineError, Result};
use super::manifest::{self, Manifest};

#[derive(Debug, Clone, Default)]
pub struct KeepRules {
    pub last: Option<usize>,
    pub hourly: Option<usize>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
}

impl KeepRules {
    pub fn is_empty(&self) -> bool {
        [self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly].iter().all(|r| r.is_none())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Remove,
    /// Would be removed, but is immutable.
    KeepImmutable,
    /// Would be removed, but a pin holds it (an instant recovery runs on it).
    KeepPinned,
}

#[derive(Debug, Default)]
pub struct PruneReport {
    /// (name/id, decision)
    pub decisions: Vec<(String, Decision)>,
}

/// Decide for one name's snapshots, given newest first.
pub fn select(list: &[(String, DateTime<Utc>)], rules: &KeepRules) -> Vec<bool> {
    let mut keep = vec![false; list.len()];
    if let Some(n) = rules.last {
        for k in keep.iter_mut().take(n) {
            *k = true;
        }
    }
    type KeyFn = fn(&DateTime<Utc>) -> String;
    let periods: [(Option<usize>, KeyFn); 5] = [
        (rules.hourly, |t| format!("{}-{}-{}", t.year(), t.ordinal(), t.hour())),
        (rules.daily, |t| format!("{}-{}", t.year(), t.ordinal())),
        (rules.weekly, |t| {
            let w = t.iso_week();
            format!("{}-{}", w.year(), w.week())
        }),
        (rules.monthly, |t| format!("{}-{}", t.year(), t.month())),
        (rules.yearly, |t| format!("{}", t.year())),
    ];
    for (count, key) in periods {
        let Some(n) = count else { continue };
        let mut covered: HashSet<String> = list.iter().zip(&keep).filter(|(_, k)| **k).map(|(s, _)| key(&s.1)).collect();
        let mut added = 0;
        for (i, (_, t)) in list.iter().enumerate() {
            if keep[i] {
                continue;
            }
            let k = key(t);
            if covered.contains(&k) {
                continue;
            }
            if added >= n {
                break;
            }
            covered.insert(k);
            keep[i] = true;
            added += 1;
        }
    }
    keep
}

pub fn prune(ds: &Datastore, name: Option<&str>, rules: &KeepRules, dry_run: bool) -> Result<PruneReport> {
    if rules.is_empty() {
        return Err(EngineError::Invalid("prune needs at least one --keep-* rule".into()));
    }
    let now = Utc::now();
    let mut by_name: std::collections::BTreeMap<String, Vec<Manifest>> = Default::default();
    for (n, id) in ds.list_snapshots(name)? {
        by_name.entry(n.clone()).or_default().push(ds.load_manifest(&n, &id)?);
    }
    let pinned = super::lease::pinned_snapshots(ds.repo.as_ref())?;
    let mut report = PruneReport::default();
    for (_, mut snaps) in by_name {
        snaps.sort_by(|a, b| b.id.cmp(&a.id));
        let list: Vec<_> = snaps.iter().map(|m| (m.id.clone(), m.created_at().unwrap_or(now))).collect();
        let keep = select(&list, rules);
        for (m, k) in snaps.iter().zip(keep) {
            let label = format!("{}/{}", m.name, m.id);
            let d = if k {
                Decision::Keep
            } else if m.immutable_at(now) {
                Decision::KeepImmutable
            } else if pinned.contains(&label) {
                Decision::KeepPinned
            } else {
                Decision::Remove
            };
            if d == Decision::Remove && !dry_run {
                ds.repo.delete(&manifest::manifest_key(&m.name, &m.id))?;
            }
            report.decisions.push((label, d));
        }
    }
    Ok(report)
}

/// Delete one snapshot (its manifest), refused inside the immutability
/// window and while a pin holds it.
pub fn forget(ds: &Datastore, name: &str, id: &str) -> Result<()> {
    let m = ds.load_manifest(name, id)?;
    if super::lease::pinned_snapshots(ds.repo.as_ref())?.contains(&format!("{name}/{id}")) {
        return Err(EngineError::Pinned { snapshot: format!("{name}/{id}") });
    }
    if m.immutable_at(Utc::now()) {
        return Err(EngineError::Immutable {
            snapshot: format!("{name}/{id}"),
            until: m.immutable_until.unwrap_or_default(),
        });
    }
    ds.repo.delete(&manifest::manifest_key(name, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap()
    }

    #[test]
    fn keep_last_and_daily() {
        // Newest first: 3 on day 5, 2 on day 4, 1 on day 3.
        let list: Vec<_> = [(5, 20), (5, 12), (5, 1), (4, 22), (4, 3), (3, 9)]
            .iter()
            .enumerate()
            .map(|(i, &(d, h))| (format!("s{i}"), t(d, h)))
            .collect();
        let keep = select(&list, &KeepRules { last: Some(1), ..Default::default() });
        assert_eq!(keep, vec![true, false, false, false, false, false]);
        let keep = select(&list, &KeepRules { daily: Some(2), ..Default::default() });
        assert_eq!(keep, vec![true, false, false, true, false, false]);
        let keep = select(&list, &KeepRules { last: Some(2), daily: Some(2), ..Default::default() });
        // day 5 covered by keep-last; daily adds day 4 and day 3.
        assert_eq!(keep, vec![true, true, false, true, false, true]);
        let keep = select(&list, &KeepRules { monthly: Some(1), ..Default::default() });
        assert_eq!(keep.iter().filter(|k| **k).count(), 1);
    }
}
