//! The index log: what lets an open with a warm index cache read only the
//! pack indexes added since it last looked, instead of listing the whole
//! `pack-index/` prefix (100 LIST pages per open at 100,000 packs on S3).
//! See `docs/design/index-log.md`.
//!
//! Every run that publishes packs (backup, copy, a GC that repacks) then
//! publishes one small immutable **segment** `index-log/<seq>` naming the
//! packs it added; every GC that claimed a plan publishes one naming the
//! packs it removed and its plan's number, when it ends (with an error
//! too). Segment numbers are dense: each is claimed with create-if-absent
//! at the next number, never past one that exists (a taken number moves on
//! by one). A cache at position `n` reads `n+1`, `n+2`, … until one is
//! absent: one GET (404) when nothing is new, no listing at all.
//!
//! No decision relies on a listing being complete or on a clock, and the
//! log is never the last word ([`super::index_cache`] falls back to the full
//! listing whenever it could be stale):
//! * a segment never written (a writer that died, or an older Sendense)
//!   leaves packs the cache does not know: their chunks are stored again
//!   by a backup, and a chunk a manifest references that the cache lacks
//!   makes the reader list everything ([`super::chunk_store::ChunkStore::relist`]);
//! * removals: each GC claims its plan (dense numbers too) before it deletes
//!   anything and deletes only its plan's candidates. The cache records up
//!   to which plan it has seen the removals; an open lists everything when
//!   a GC record skips a plan or the newest plan is more than one past it
//!   (a GC that died, or an older Sendense). The newest plan's own GC may be
//!   running: a backup avoids that plan's candidates, which hold all that
//!   GC deletes, or (it read an older plan) its safety net
//!   ([`super::gc_plan::check_reused`]) looks for its reused packs; readers
//!   find a chunk again in the pack indexes when its pack has gone.

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{EngineError, Result};
use super::repository::Repository;

pub const LOG_PREFIX: &str = "index-log/";

/// Tries at consecutive numbers before a writer gives up (others writing
/// at the same time each take one).
const CLAIM_TRIES: u64 = 1000;

/// One segment: packs added and removed by one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub version: u32,
    pub seq: u64,
    /// Pack ids (hex) published (their pack indexes are durable).
    #[serde(default)]
    pub added: Vec<String>,
    /// Pack ids (hex) deleted by a GC.
    #[serde(default)]
    pub removed: Vec<String>,
    /// The GC plan number of the GC that wrote it (`None`: not a GC).
    #[serde(default)]
    pub gc_plan: Option<u64>,
}

impl Segment {
    pub fn added(ids: impl IntoIterator<Item = Digest>) -> Segment {
        let mut added: Vec<String> = ids.into_iter().map(|d| d.to_hex()).collect();
        added.sort_unstable();
        added.dedup();
        Segment { version: 1, added, ..Segment::default() }
    }

    pub fn added_ids(&self) -> impl Iterator<Item = Digest> + '_ {
        self.added.iter().filter_map(|h| Digest::from_hex(h))
    }

    pub fn removed_ids(&self) -> impl Iterator<Item = Digest> + '_ {
        self.removed.iter().filter_map(|h| Digest::from_hex(h))
    }
}

pub fn segment_key(seq: u64) -> String {
    format!("{LOG_PREFIX}{seq:020}")
}

pub fn parse_seq(key: &str) -> Option<u64> {
    key.strip_prefix(LOG_PREFIX)?.parse().ok()
}

/// Segment `seq`; `None` when absent, `Some(Err(why))` when it does not
/// parse or is of a later version (a reader then lists everything).
pub fn read(repo: &dyn Repository, seq: u64) -> Result<Option<std::result::Result<Segment, String>>> {
    let key = segment_key(seq);
    let body = match repo.get(&key) {
        Ok(b) => b,
        Err(EngineError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(match serde_json::from_slice::<Segment>(&body) {
        Ok(seg) if seg.version == 1 => Ok(seg),
        Ok(seg) => Err(format!("index log segment '{key}' is of version {}", seg.version)),
        Err(e) => Err(format!("index log segment '{key}' is unreadable: {e}")),
    }))
}

/// The number of the newest segment (0: none). The listing is not trusted
/// to be complete at its end: the numbers after the highest listed are
/// probed until one is absent.
pub fn head(repo: &dyn Repository) -> Result<u64> {
    let mut top = repo.list(LOG_PREFIX)?.iter().filter_map(|o| parse_seq(&o.key)).max().unwrap_or(0);
    while repo.stat(&segment_key(top + 1))?.is_some() {
        top += 1;
    }
    Ok(top)
}

/// Publishes `seg` at the first free number after `known` (a number that
/// exists or 0, e.g. the position of the caller's cache; `None`: found with
/// [`head`]). Returns the number taken. Nothing to say (no pack added or
/// removed, not a GC) writes nothing and returns `None`.
pub fn append(repo: &dyn Repository, known: Option<u64>, seg: &mut Segment) -> Result<Option<u64>> {
    if seg.added.is_empty() && seg.removed.is_empty() && seg.gc_plan.is_none() {
        return Ok(None);
    }
    let mut seq = match known {
        Some(k) => k + 1,
        None => head(repo)? + 1,
    };
    for _ in 0..CLAIM_TRIES {
        seg.seq = seq;
        let body = serde_json::to_vec(seg).expect("serialize index log segment");
        if repo.put_if_absent(&segment_key(seq), &body)? {
            return Ok(Some(seq));
        }
        seq += 1;
    }
    Err(EngineError::Pipeline(format!("{}: could not claim an index log number after {seq}", repo.describe())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::local_repository::LocalRepository;

    #[test]
    fn segments_are_numbered_densely_from_any_known_position() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let r = LocalRepository::new(dir.path());
        assert_eq!(head(&r).unwrap(), 0);
        let mut empty = Segment { version: 1, ..Segment::default() };
        assert_eq!(append(&r, Some(0), &mut empty).unwrap(), None, "nothing to say, nothing written");
        let mut a = Segment::added([Digest([1; 32]), Digest([1; 32])]);
        assert_eq!(a.added.len(), 1);
        assert_eq!(append(&r, Some(0), &mut a).unwrap(), Some(1));
        // A writer whose position is behind takes the next free number.
        let mut b = Segment::added([Digest([2; 32])]);
        assert_eq!(append(&r, Some(0), &mut b).unwrap(), Some(2));
        let mut g = Segment { version: 1, removed: vec![Digest([1; 32]).to_hex()], gc_plan: Some(1), ..Segment::default() };
        assert_eq!(append(&r, None, &mut g).unwrap(), Some(3));
        assert_eq!(head(&r).unwrap(), 3);
        assert_eq!(read(&r, 2).unwrap().unwrap().unwrap().added_ids().collect::<Vec<_>>(), vec![Digest([2; 32])]);
        assert_eq!(read(&r, 3).unwrap().unwrap().unwrap(), g);
        assert!(read(&r, 4).unwrap().is_none());
        r.put(&segment_key(4), b"not json").unwrap();
        assert!(read(&r, 4).unwrap().unwrap().is_err(), "unreadable: the reader lists everything");
    }
}
