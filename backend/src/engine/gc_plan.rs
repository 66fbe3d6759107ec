//! The two-phase GC plan: how garbage collection and backups agree on what
//! may be deleted without comparing any clock with an object's time.
//!
//! 1. GC N, holding the GC lock, claims `gc/plan-<seq>` (the next sequence
//!    number, create-if-absent; our own retried claim is recognised by the
//!    lock's token) holding its *candidates*: the packs (and orphan pack
//!    indexes) no snapshot references, the partly used packs it would
//!    repack, and the fixed indexes no snapshot names. **Then** it lists the
//!    leases and records the live backups in the plan (a rewrite).
//! 2. A backup puts its lease **then** reads the newest plan and avoids its
//!    candidates: it never reuses a chunk from a candidate pack (it stores it
//!    again) and never lets a pack or fixed index it writes land on a
//!    candidate's key (it changes the bytes instead, see `backup`).
//!    Store-then-load on both sides: either GC N sees the backup's lease, or
//!    the backup sees plan N (this needs read-after-write and
//!    list-after-write consistency: local directories, AWS S3 since 2020,
//!    Azure Blob, moto and Azurite have it).
//! 3. A later GC deletes (pack index first, then pack) or repacks a
//!    candidate of plan N only if plan N is complete (its leases recorded),
//!    at least the grace period old by the storage's clock, every lease it
//!    recorded is gone or stale, and the candidate is still unreferenced
//!    now, by a mark completed *after* that check (a recorded backup that
//!    ended between the first mark and the check has its manifest seen by
//!    the second listing of `snapshots/`). Backups not recorded in plan N read plan N or a newer one, whose
//!    candidates include every candidate of N still unreferenced. When plan
//!    N recorded no live backup and the grace period is zero, GC N itself
//!    may act on it at once: no backup can be using its candidates.
//! 4. The backup's final check stays as the safety net
//!    ([`check_reused`]): only a GC that claimed a plan *after* the one the
//!    backup read can have deleted a pack it reused (every GC claims its
//!    plan before it deletes, and deletes only candidates of its own plan,
//!    which a backup that read that plan avoided). So the check lists the
//!    plans once; only when a newer one appeared does it look for the
//!    reused packs (a listing of `packs/` or a HEAD each, whichever is
//!    fewer requests), instead of one HEAD per reused pack every time.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{EngineError, Result};
use super::repository::{ObjectInfo, Repository};

pub const PLAN_PREFIX: &str = "gc/";
const PLAN_NAME: &str = "plan-";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcPlan {
    pub version: u32,
    pub seq: u64,
    /// The GC lock token of the run that made it.
    pub token: String,
    /// Pack ids (hex) nothing referenced: pack and pack index go.
    pub packs: Vec<String>,
    /// Pack ids (hex) partly used: their chunks in use are copied out.
    pub repack: Vec<String>,
    /// Fixed index keys no snapshot names.
    pub indexes: Vec<String>,
    /// Keys of the backup leases live once the plan was visible; `None`
    /// while not yet recorded (such a plan is never acted on).
    pub leases: Option<Vec<String>>,
}

pub fn plan_key(seq: u64) -> String {
    format!("{PLAN_PREFIX}{PLAN_NAME}{seq:020}")
}

pub fn parse_seq(key: &str) -> Option<u64> {
    key.strip_prefix(PLAN_PREFIX)?.strip_prefix(PLAN_NAME)?.parse().ok()
}

/// What a backup must not use: the newest plan's candidates.
#[derive(Debug, Default, Clone)]
pub struct Avoid {
    pub packs: HashSet<Digest>,
    pub indexes: HashSet<String>,
}

impl Avoid {
    pub fn of(plan: &GcPlan) -> Avoid {
        Avoid {
            packs: plan.packs.iter().chain(&plan.repack).filter_map(|h| Digest::from_hex(h)).collect(),
            indexes: plan.indexes.iter().cloned().collect(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.packs.is_empty() && self.indexes.is_empty()
    }
}

/// The sequence numbers of the plans present, ascending. The listing is not
/// trusted to be complete at its end: the numbers after the highest listed
/// are probed until one is absent.
pub fn plan_seqs(repo: &dyn Repository) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = repo.list(PLAN_PREFIX)?.iter().filter_map(|o| parse_seq(&o.key)).collect();
    seqs.sort_unstable();
    let mut next = seqs.last().copied().unwrap_or(0) + 1;
    while repo.stat(&plan_key(next))?.is_some() {
        seqs.push(next);
        next += 1;
    }
    Ok(seqs)
}

/// The newest plan and its object (`None` before the first GC).
pub fn newest_plan(repo: &dyn Repository) -> Result<Option<(GcPlan, ObjectInfo)>> {
    for _ in 0..3 {
        let Some(&seq) = plan_seqs(repo)?.last() else { return Ok(None) };
        match read_plan(repo, seq)? {
            Some(p) => return Ok(Some(p)),
            None => continue, // removed between listing and reading: list again
        }
    }
    Ok(None)
}

/// Plan `seq` with its object info; `None` when absent.
pub fn read_plan(repo: &dyn Repository, seq: u64) -> Result<Option<(GcPlan, ObjectInfo)>> {
    let key = plan_key(seq);
    let Some(info) = repo.stat(&key)? else { return Ok(None) };
    let body = match repo.get(&key) {
        Ok(b) => b,
        Err(EngineError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let plan: GcPlan = serde_json::from_slice(&body)
        .map_err(|e| EngineError::Pipeline(format!("{}: GC plan '{key}' is unreadable: {e}", repo.describe())))?;
    Ok(Some((plan, info)))
}

/// The backup's (and copy's) safety net under the plan protocol, run
/// before its manifest: `read` is the newest plan it read after taking its
/// lease (`None`: there was none), `reused` the packs it counted on that it
/// did not write, `known_packs` how many packs its chunk map knows (what a
/// listing of `packs/` would return). Nothing more than the plans' listing (one LIST and one
/// HEAD) unless a GC claimed a newer plan since; then every reused pack is
/// looked for (absent from a listing of `packs/` is confirmed by a HEAD, a
/// listing is not trusted to be complete) and a missing one is
/// [`EngineError::PackVanished`]. Returns how many packs were looked for.
pub fn check_reused(repo: &dyn Repository, read: Option<u64>, reused: &[Digest], known_packs: usize) -> Result<usize> {
    if reused.is_empty() {
        return Ok(0);
    }
    let newest = plan_seqs(repo)?.last().copied();
    if newest == read {
        return Ok(0);
    }
    tracing::info!(read = ?read, newest = ?newest, packs = reused.len(), "a GC ran during this backup: checking the packs it reused");
    let list_requests = known_packs / LIST_PAGE + 1;
    let listed: Option<HashSet<String>> = if list_requests < reused.len() {
        Some(repo.list(super::pack::PACK_PREFIX)?.into_iter().map(|o| o.key).collect())
    } else {
        None
    };
    for id in reused {
        let key = super::pack::pack_key(id);
        if listed.as_ref().is_some_and(|l| l.contains(&key)) {
            continue;
        }
        if repo.stat(&key)?.is_none() {
            return Err(EngineError::PackVanished { pack: id.to_hex() });
        }
    }
    Ok(reused.len())
}

/// Keys a listing request returns (S3: 1,000; Azure: up to 5,000): what
/// [`check_reused`] weighs a listing of `packs/` against a HEAD per pack by.
const LIST_PAGE: usize = 1000;

/// Claims the next plan number for `plan` (its `seq` is set) with
/// create-if-absent. A number taken by someone else moves on; one holding
/// our own token is ours (a retried write whose first answer was lost).
pub fn claim(repo: &dyn Repository, plan: &mut GcPlan) -> Result<u64> {
    let mut seq = plan_seqs(repo)?.last().copied().unwrap_or(0) + 1;
    for _ in 0..64 {
        plan.seq = seq;
        let body = serde_json::to_vec(plan).expect("serialize plan");
        if repo.put_if_absent(&plan_key(seq), &body)? {
            return Ok(seq);
        }
        if read_plan(repo, seq)?.is_some_and(|(p, _)| p.token == plan.token) {
            return Ok(seq);
        }
        seq += 1;
    }
    Err(EngineError::Pipeline(format!("{}: could not claim a GC plan number after {seq}", repo.describe())))
}

/// Rewrites a claimed plan (its leases recorded).
pub fn record(repo: &dyn Repository, plan: &GcPlan) -> Result<()> {
    repo.put(&plan_key(plan.seq), &serde_json::to_vec(plan).expect("serialize plan"))
}

/// Why an earlier plan may not be acted on yet (`None`: it may).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Its GC died before recording the leases.
    Incomplete,
    /// Younger than the grace period (storage times).
    Grace { left: Duration },
    /// A backup it recorded still runs.
    Lease(String),
}

/// Whether plan `plan`, last written at `written` (storage time), may be
/// acted on at `server_now` with `grace`; `live(key)` says whether a
/// recorded lease is still live (absent or stale: `false`).
pub fn may_act(
    plan: &GcPlan,
    written: SystemTime,
    server_now: SystemTime,
    grace: Duration,
    mut live: impl FnMut(&str) -> Result<bool>,
) -> Result<Option<Wait>> {
    let Some(leases) = &plan.leases else { return Ok(Some(Wait::Incomplete)) };
    let age = server_now.duration_since(written).unwrap_or_default();
    if age < grace {
        return Ok(Some(Wait::Grace { left: grace - age }));
    }
    for key in leases {
        if live(key)? {
            return Ok(Some(Wait::Lease(key.clone())));
        }
    }
    Ok(None)
}

/// What a pack is now, from the current mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackNow {
    /// No chunk in use (or an index without its pack, or a pack without index).
    Unused,
    /// In use, with at least the repack share of its bytes unused.
    Repack,
    /// In use.
    Keep,
}

/// What GC does with a pack: act only on candidates of a plan it may act
/// on, and only as the pack is now (a candidate used again since is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    Repack,
    Keep,
    /// A candidate (listed in this run's plan) waiting for a later GC.
    Wait,
}

pub fn decide(now: PackNow, actionable: bool) -> Action {
    match (now, actionable) {
        (PackNow::Keep, _) => Action::Keep,
        (PackNow::Unused, true) => Action::Delete,
        (PackNow::Repack, true) => Action::Repack,
        (_, false) => Action::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::local_repository::LocalRepository;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn repo() -> (tempfile::TempDir, LocalRepository) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let r = LocalRepository::new(dir.path());
        (dir, r)
    }

    #[test]
    fn a_plan_acts_only_when_complete_old_enough_and_its_backups_are_gone() {
        let mut p = GcPlan { packs: vec!["aa".into()], ..Default::default() };
        let none = |_: &str| Ok(false);
        assert_eq!(may_act(&p, at(0), at(100), Duration::ZERO, none).unwrap(), Some(Wait::Incomplete));
        p.leases = Some(vec!["locks/backup-1.json".into(), "locks/backup-2.json".into()]);
        // Grace by the storage's times only.
        assert_eq!(may_act(&p, at(0), at(30), Duration::from_secs(60), none).unwrap(), Some(Wait::Grace { left: Duration::from_secs(30) }));
        assert_eq!(may_act(&p, at(50), at(0), Duration::from_secs(1), none).unwrap(), Some(Wait::Grace { left: Duration::from_secs(1) }));
        // One recorded backup still runs: wait for it.
        let live2 = |k: &str| Ok(k.ends_with("-2.json"));
        assert_eq!(may_act(&p, at(0), at(60), Duration::from_secs(60), live2).unwrap(), Some(Wait::Lease("locks/backup-2.json".into())));
        assert_eq!(may_act(&p, at(0), at(60), Duration::from_secs(60), none).unwrap(), None);
        // An error reading a lease stops the decision.
        assert!(may_act(&p, at(0), at(60), Duration::ZERO, |_| Err(EngineError::Invalid("x".into()))).is_err());
    }

    #[test]
    fn candidates_used_again_are_kept_and_waiting_ones_wait() {
        assert_eq!(decide(PackNow::Unused, true), Action::Delete);
        assert_eq!(decide(PackNow::Repack, true), Action::Repack);
        assert_eq!(decide(PackNow::Keep, true), Action::Keep, "a candidate a committed backup uses again");
        assert_eq!(decide(PackNow::Unused, false), Action::Wait);
        assert_eq!(decide(PackNow::Repack, false), Action::Wait);
        assert_eq!(decide(PackNow::Keep, false), Action::Keep);
    }

    /// A backend whose listings show only their first object (a lagging
    /// object-store listing) and whose create-if-absent answers get lost
    /// after the write landed (the client then retries and hears "exists").
    struct Odd {
        inner: LocalRepository,
        short_list: bool,
        lost_answers: bool,
        /// HEADs (`stat`) and listings made.
        stats: std::sync::atomic::AtomicUsize,
        lists: std::sync::atomic::AtomicUsize,
    }
    impl Repository for Odd {
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn get(&self, k: &str) -> Result<Vec<u8>> {
            self.inner.get(k)
        }
        fn get_range(&self, k: &str, o: u64, l: usize) -> Result<Vec<u8>> {
            self.inner.get_range(k, o, l)
        }
        fn put(&self, k: &str, d: &[u8]) -> Result<()> {
            self.inner.put(k, d)
        }
        fn put_if_absent(&self, k: &str, d: &[u8]) -> Result<bool> {
            let created = self.inner.put_if_absent(k, d)?;
            Ok(created && !self.lost_answers)
        }
        fn delete(&self, k: &str) -> Result<()> {
            self.inner.delete(k)
        }
        fn list(&self, p: &str) -> Result<Vec<ObjectInfo>> {
            self.lists.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let all = self.inner.list(p)?;
            Ok(if self.short_list { all.into_iter().take(1).collect() } else { all })
        }
        fn stat(&self, k: &str) -> Result<Option<ObjectInfo>> {
            self.stats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.stat(k)
        }
        fn touch(&self, k: &str) -> Result<bool> {
            self.inner.touch(k)
        }
    }

    fn odd(short_list: bool, lost_answers: bool) -> (tempfile::TempDir, Odd) {
        let (d, inner) = repo();
        (d, Odd { inner, short_list, lost_answers, stats: Default::default(), lists: Default::default() })
    }

    #[test]
    fn plans_are_numbered_densely_and_a_retried_claim_is_ours() {
        let (_d, r) = odd(false, false);
        assert!(newest_plan(&r).unwrap().is_none());
        let mut a = GcPlan { version: 1, token: "t1".into(), packs: vec!["ab".repeat(32)], ..Default::default() };
        assert_eq!(claim(&r, &mut a).unwrap(), 1);
        // Number 2 taken by another GC (its token): the next claim moves on.
        let other = GcPlan { version: 1, seq: 2, token: "other".into(), leases: Some(vec![]), ..Default::default() };
        r.put(&plan_key(2), &serde_json::to_vec(&other).unwrap()).unwrap();
        let mut b = GcPlan { version: 1, token: "t2".into(), ..Default::default() };
        assert_eq!(claim(&r, &mut b).unwrap(), 3);
        assert_eq!(plan_seqs(&r).unwrap(), vec![1, 2, 3]);
        assert_eq!(read_plan(&r, 1).unwrap().unwrap().0, a);
        assert_eq!(newest_plan(&r).unwrap().unwrap().0, b);
        let avoid = Avoid::of(&a);
        assert!(avoid.packs.contains(&Digest::from_hex(&"ab".repeat(32)).unwrap()) && avoid.indexes.is_empty());

        // Every answer lost after the write landed: our token says it is ours.
        let (_d, r) = odd(false, true);
        let mut c = GcPlan { version: 1, token: "t3".into(), ..Default::default() };
        assert_eq!(claim(&r, &mut c).unwrap(), 1);
        let mut e = GcPlan { version: 1, token: "t4".into(), ..Default::default() };
        assert_eq!(claim(&r, &mut e).unwrap(), 2, "not mistaken for number 1");
    }

    #[test]
    fn reused_packs_are_looked_for_only_after_a_newer_plan() {
        use std::sync::atomic::Ordering::Relaxed;
        let (_d, r) = odd(false, false);
        let ids: Vec<Digest> = (1..=5u8).map(|i| Digest([i; 32])).collect();
        for id in &ids[..4] {
            r.put(&crate::engine::pack::pack_key(id), b"pack").unwrap();
        }
        let requests = |r: &Odd| (r.stats.swap(0, Relaxed), r.lists.swap(0, Relaxed));
        // No plan then, none now: one listing of gc/ and one probe, whatever
        // the packs (the fifth is not even there: no GC can have deleted it).
        assert_eq!(check_reused(&r, None, &ids, 5).unwrap(), 0);
        assert_eq!(requests(&r), (1, 1));
        assert_eq!(check_reused(&r, None, &[], 5).unwrap(), 0);
        assert_eq!(requests(&r), (0, 0), "nothing reused, nothing asked");
        // A GC made plan 1 since: every reused pack is looked for.
        let mut p = GcPlan { version: 1, token: "t".into(), leases: Some(vec![]), ..Default::default() };
        claim(&r, &mut p).unwrap();
        requests(&r);
        // Few reused packs in a big repository: a HEAD each.
        assert_eq!(check_reused(&r, None, &ids[..4], 10_000).unwrap(), 4);
        assert_eq!(requests(&r), (1 + 4, 1));
        match check_reused(&r, None, &ids, 10_000) {
            Err(EngineError::PackVanished { pack }) => assert_eq!(pack, ids[4].to_hex()),
            other => panic!("{other:?}"),
        }
        // More reused packs than a listing of packs/ takes requests: one
        // listing, and a HEAD only to confirm the one it lacks.
        requests(&r);
        assert_eq!(check_reused(&r, None, &ids[..4], 4).unwrap(), 4);
        assert_eq!(requests(&r), (1, 2));
        assert!(matches!(check_reused(&r, None, &ids, 5), Err(EngineError::PackVanished { .. })));
        assert_eq!(requests(&r), (1 + 1, 2));
        // The plan it read is still the newest: nothing looked for.
        assert_eq!(check_reused(&r, Some(1), &ids, 5).unwrap(), 0);
        assert_eq!(requests(&r), (1, 1));
    }

    #[test]
    fn the_newest_plan_is_found_past_a_short_listing() {
        let (_d, r) = odd(true, false);
        for t in ["a", "b", "c"] {
            let mut p = GcPlan { version: 1, token: t.into(), ..Default::default() };
            claim(&r, &mut p).unwrap();
        }
        assert_eq!(plan_seqs(&r).unwrap(), vec![1, 2, 3]);
        assert_eq!(newest_plan(&r).unwrap().unwrap().0.token, "c");
    }
}
