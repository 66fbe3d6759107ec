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
//! absent, then checks that segment `n` is still there and that the
//! segment its contents rest on (its anchor) has the body it had: two GETs
//! when nothing is new, no listing at all. A repository rolled back at the
//! same location, or a log compacted past the cache ([`compact`]: each GC
//! deletes all but the newest [`KEEP_SEGMENTS`]), fails that check and the
//! cache lists every pack index.
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
    /// Random, set by [`append`]: no two segments have the same body, so a
    /// cache that remembers a segment's hash ([`Fetched::hash`]) tells the
    /// one it read from another written at the same number after the
    /// repository was rolled back.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
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

/// A segment as read: parsed, and the hash of its body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `Err(why)` when it does not parse or is of a later version (a
    /// reader then lists everything).
    pub segment: std::result::Result<Segment, String>,
    /// BLAKE3 of the body (hex).
    pub hash: String,
}

/// BLAKE3 (hex) of a segment's body, as [`Fetched::hash`].
pub fn body_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

/// Segment `seq` and the hash of its body; `None` when absent.
pub fn fetch(repo: &dyn Repository, seq: u64) -> Result<Option<Fetched>> {
    let key = segment_key(seq);
    let body = match repo.get(&key) {
        Ok(b) => b,
        Err(EngineError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let segment = match serde_json::from_slice::<Segment>(&body) {
        Ok(seg) if seg.version == 1 => Ok(seg),
        Ok(seg) => Err(format!("index log segment '{key}' is of version {}", seg.version)),
        Err(e) => Err(format!("index log segment '{key}' is unreadable: {e}")),
    };
    Ok(Some(Fetched { segment, hash: body_hash(&body) }))
}

/// Segment `seq`; `None` when absent, `Some(Err(why))` when it does not
/// parse or is of a later version (a reader then lists everything).
pub fn read(repo: &dyn Repository, seq: u64) -> Result<Option<std::result::Result<Segment, String>>> {
    Ok(fetch(repo, seq)?.map(|f| f.segment))
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
/// exists, e.g. the position of the caller's cache; `None` or `Some(0)`:
/// found with [`head`], as the log may have been compacted past 1 since
/// the caller saw it empty). Returns the number taken. Nothing to say (no
/// pack added or removed, not a GC) writes nothing and returns `None`.
pub fn append(repo: &dyn Repository, known: Option<u64>, seg: &mut Segment) -> Result<Option<u64>> {
    Ok(append_hashed(repo, known, seg)?.map(|(seq, _)| seq))
}

/// [`append`], returning the number taken and the hash of the body written.
pub fn append_hashed(repo: &dyn Repository, known: Option<u64>, seg: &mut Segment) -> Result<Option<(u64, String)>> {
    if seg.added.is_empty() && seg.removed.is_empty() && seg.gc_plan.is_none() {
        return Ok(None);
    }
    if seg.id.is_empty() {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
        seg.id = hex::encode(id);
    }
    let mut seq = match known {
        Some(k) if k > 0 => k + 1,
        _ => head(repo)? + 1,
    };
    for _ in 0..CLAIM_TRIES {
        seg.seq = seq;
        let body = serde_json::to_vec(seg).expect("serialize index log segment");
        if repo.put_if_absent(&segment_key(seq), &body)? {
            return Ok(Some((seq, body_hash(&body))));
        }
        seq += 1;
    }
    Err(EngineError::Pipeline(format!("{}: could not claim an index log number after {seq}", repo.describe())))
}

/// How many of the newest segments a GC keeps when it compacts the log
/// ([`compact`]): a cache further behind lists every pack index instead
/// (at up to a million packs a listing costs fewer requests than reading
/// a thousand segments), and a cold open's search for the head lists about
/// one page of `index-log/`.
pub const KEEP_SEGMENTS: u64 = 1000;

static KEEP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(KEEP_SEGMENTS);

/// The number of segments a GC keeps ([`KEEP_SEGMENTS`] unless set).
pub fn keep_segments() -> u64 {
    KEEP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets how many segments a GC keeps in this process (at least 1; tests
/// compact short logs with it).
pub fn set_keep_segments(n: u64) {
    KEEP.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// Compaction: deletes the segments numbered up to `upto`, one at a time in
/// ascending order (never a batch, whose order is not defined). Run by a
/// GC, which holds the GC lock (one compaction at a time), after its own
/// record, with `upto` below that record: the newest segment always stays,
/// so [`head`] still finds the head. Returns how many were deleted.
///
/// Readers: a cache whose position is in the deleted range finds its own
/// segment gone and lists every pack index. The ascending order is what
/// makes a reader racing the deletion safe: if the segment after a
/// reader's last one was absent because it was deleted, every segment
/// below it was deleted before, so the reader's check of its last segment
/// (made after that absence) finds it gone too. A segment the listing
/// missed stays behind: a cache standing on it is in the case of a lost
/// segment (it misses later packs, which costs re-stored chunks or a
/// listing, never a wrong chunk), and GC removals are checked by plan
/// numbers anyway.
pub fn compact(repo: &dyn Repository, upto: u64) -> Result<usize> {
    let mut old: Vec<u64> = repo.list(LOG_PREFIX)?.iter().filter_map(|o| parse_seq(&o.key)).filter(|&s| s <= upto).collect();
    old.sort_unstable();
    for &seq in &old {
        repo.delete(&segment_key(seq))?;
    }
    Ok(old.len())
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
