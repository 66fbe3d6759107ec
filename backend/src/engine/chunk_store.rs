//! The chunk store: every stored chunk's location, from the local index
//! cache ([`index_cache`]: sorted tables on this machine's disk, refreshed
//! from the pack indexes written since the last open, memory-mapped; no map
//! of every chunk in memory), and chunk reads (ranged GET from its pack,
//! then decode and check; the chunk dictionary is loaded on the first chunk
//! that needs it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use super::chunk_codec;
use super::chunk_dict::{self, ChunkDict};
use super::crypto::CryptConfig;
use super::datastore::CONFIG_KEY;
use super::digest::{Digest, Hasher};
use super::error::{EngineError, Result};
use super::index_cache::{self, Run};
use super::pack::{self, PackEntry};
use super::repository::Repository;

#[derive(Debug, Clone, Copy)]
pub struct ChunkLoc {
    /// Index into [`ChunkStore::packs`].
    pub pack: u32,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub flags: u8,
}

/// Chunks of one pack closer than this are read with one request, the gap
/// read and dropped: on an object store a request costs far more than a
/// MiB of loopback or LAN transfer (object_store coalesces the same way).
pub(crate) const COALESCE_GAP: u64 = 1 << 20;
/// The longest coalesced read: a whole pack of the default size. A pack
/// is closed once it holds [`DEFAULT_PACK_SIZE`](super::datastore::DEFAULT_PACK_SIZE)
/// (8 MiB) or more, so it ends up to one stored chunk (64 KiB, plus its
/// encryption) past that: with a limit of exactly 8 MiB nearly every pack
/// took two requests, the second for its last chunk (a restore of the 2 GiB
/// benchmark image from S3 made 204 GETs for 102 packs, and the store read
/// each pack twice to answer them).
pub(crate) const MAX_SPAN: u64 = 9 << 20;

/// One ranged read of a pack and the chunks it covers: `first..end` of the
/// list [`coalesce`] was given.
pub(crate) struct Span {
    pub pack: u32,
    pub offset: u64,
    pub len: u64,
    pub first: usize,
    pub end: usize,
}

/// The reads for chunk locations sorted by pack and offset: neighbours in
/// one pack closer than [`COALESCE_GAP`] in one read of at most
/// [`MAX_SPAN`] bytes (restore, verify and copy read this way).
pub(crate) fn coalesce<'a>(sorted: impl IntoIterator<Item = &'a ChunkLoc>) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for (i, loc) in sorted.into_iter().enumerate() {
        let (start, end) = (loc.offset, loc.offset + u64::from(loc.stored_len));
        if let Some(sp) = spans.last_mut() {
            let sp_end = sp.offset + sp.len;
            if sp.pack == loc.pack && start <= sp_end + COALESCE_GAP && end.max(sp_end) - sp.offset <= MAX_SPAN {
                sp.len = end.max(sp_end) - sp.offset;
                sp.end = i + 1;
                continue;
            }
        }
        spans.push(Span { pack: loc.pack, offset: start, len: end - start, first: i, end: i + 1 });
    }
    spans
}

impl ChunkLoc {
    /// The pack index entry of chunk `digest` stored here.
    fn entry(&self, digest: &Digest) -> PackEntry {
        PackEntry { digest: *digest, offset: self.offset, stored_len: self.stored_len, raw_len: self.raw_len, flags: self.flags }
    }
}

pub struct ChunkStore {
    pub repo: Arc<dyn Repository>,
    pub crypt: Option<Arc<CryptConfig>>,
    pub hasher: Hasher,
    /// Pack ids by pack number ([`ChunkLoc::pack`]): every pack the cache
    /// knows, usable or not.
    pub packs: Vec<Digest>,
    /// Packs whose chunks may be used: listed when the store was opened and
    /// not avoided ([`Self::avoid_packs`]).
    usable: Vec<bool>,
    /// Packs listed (or named by the index log) at open, avoided or not.
    listed: Vec<bool>,
    /// Packs holding chunks compressed with the dictionary.
    dict_packs: Vec<bool>,
    /// The cache's sorted tables.
    runs: Vec<Run>,
    /// Chunks of packs added by this process ([`Self::add_pack`]).
    added: HashMap<Digest, ChunkLoc>,
    dict: OnceLock<std::result::Result<Arc<ChunkDict>, String>>,
    /// Chunks found again after a GC repacked them (see [`Self::read_chunk`]).
    moved: Mutex<Moved>,
    /// Pack indexes read from the repository at open (the rest came from the cache).
    pub indexes_read: usize,
    /// Whether the open listed every pack index (else it read the index log).
    pub listed_all: bool,
    /// The index log position the cache stood at after the open.
    log_seq: u64,
    /// Packs this process wrote, for its index log segment ([`Self::publish_written`]).
    written: Mutex<Vec<Digest>>,
    /// Whether [`Self::distrust_cache`] was done already.
    distrusted: std::sync::atomic::AtomicBool,
    /// This process's mark in the cache while packs it put there are not
    /// published yet ([`index_cache::mark_writing`]).
    writing: Mutex<Option<index_cache::WriteMark>>,
    /// The index cache's directory.
    cache_dir: std::path::PathBuf,
    /// Held while the store lives: the cache is in use ([`index_cache::remove_where`] keeps it).
    _in_use: Option<std::fs::File>,
}

/// Pack indexes read after loading: the packs looked at and their chunks.
#[derive(Default)]
struct Moved {
    scanned: bool,
    gone: HashSet<Digest>,
    seen: HashSet<Digest>,
    chunks: HashMap<Digest, (Digest, PackEntry)>,
}

impl ChunkStore {
    /// Opens the repository's index cache, reading only the pack indexes
    /// it does not hold yet. A corrupt pack index is an error naming it.
    pub fn load(repo: Arc<dyn Repository>, crypt: Option<Arc<CryptConfig>>, hasher: Hasher) -> Result<ChunkStore> {
        Self::load_with(repo, crypt, hasher, index_cache::Refresh::default())
    }

    /// [`Self::load`], refreshed as `refresh` says.
    pub fn load_with(
        repo: Arc<dyn Repository>,
        crypt: Option<Arc<CryptConfig>>,
        hasher: Hasher,
        refresh: index_cache::Refresh,
    ) -> Result<ChunkStore> {
        let config = repo.get(CONFIG_KEY)?;
        let dir = index_cache::writable_dir(index_cache::dir_for(&repo.describe(), &config));
        let mut store = ChunkStore {
            repo,
            crypt,
            hasher,
            packs: Vec::new(),
            usable: Vec::new(),
            listed: Vec::new(),
            dict_packs: Vec::new(),
            runs: Vec::new(),
            added: HashMap::new(),
            dict: OnceLock::new(),
            moved: Mutex::default(),
            indexes_read: 0,
            listed_all: false,
            log_seq: 0,
            written: Mutex::default(),
            distrusted: Default::default(),
            writing: Mutex::default(),
            cache_dir: dir,
            _in_use: None,
        };
        store.refresh(refresh)?;
        Ok(store)
    }

    fn refresh(&mut self, refresh: index_cache::Refresh) -> Result<()> {
        let store = self;
        let opened = index_cache::open(&store.cache_dir, store.repo.as_ref(), refresh, |id, key| store.read_pack_index(id, key))?;
        if let Some(reason) = &opened.relist_reason {
            tracing::debug!(repository = %store.repo.describe(), %reason, "index cache refreshed from the full listing of pack indexes");
        }
        store.listed_all = opened.listed_all;
        store.log_seq = opened.log_seq;
        store.packs = opened.packs;
        store.listed = opened.listed.clone();
        store.usable = opened.listed;
        store.dict_packs = opened.dict;
        store.runs = opened.runs;
        store.indexes_read += opened.indexes_read;
        store._in_use = Some(opened.in_use);
        store.added.clear();
        *store.moved.lock().unwrap_or_else(|e| e.into_inner()) = Moved::default();
        Ok(())
    }

    /// Refreshes the cache from the full listing of pack indexes when this
    /// open read the index log instead: the fallback before deciding a
    /// chunk a manifest references is missing (an error, or a backup that
    /// would store it again). Call it before adding packs ([`Self::add_pack`]):
    /// pack numbers change, and packs avoided must be avoided again.
    /// Returns whether it listed.
    pub fn relist(&mut self) -> Result<bool> {
        if self.listed_all {
            return Ok(false);
        }
        tracing::info!(repository = %self.repo.describe(), "a chunk in use is not in the index cache: listing every pack index");
        self.refresh(index_cache::Refresh { full: true, newest_plan: None })?;
        Ok(true)
    }

    /// [`Self::relist`] when any of `digests` (zero markers aside) is not
    /// in a usable pack; whether it listed.
    pub fn relist_unless_all_known<'a>(&mut self, digests: impl IntoIterator<Item = &'a Digest>) -> Result<bool> {
        if self.listed_all {
            return Ok(false);
        }
        if digests.into_iter().any(|d| !d.is_zero_marker() && !self.known(d)) {
            return self.relist();
        }
        Ok(false)
    }

    /// The next open lists every pack index (a pack this store counted on
    /// was found gone: the cache may be stale).
    pub fn distrust_cache(&self) {
        if !self.distrusted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            index_cache::distrust(&self.cache_dir);
        }
    }

    /// Notes a pack this process wrote for [`Self::publish_written`]
    /// (packs also given to [`Self::remember_written`] are noted there).
    pub fn note_written(&self, id: Digest) {
        self.written.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }

    /// Publishes the index log segment naming the packs this process wrote
    /// (their pack indexes must be published first); none written, nothing.
    /// A failure is logged, not returned: without the segment other caches
    /// only miss these packs (they list everything before calling a chunk
    /// a manifest needs missing).
    pub fn publish_written(&self) {
        let ids = std::mem::take(&mut *self.written.lock().unwrap_or_else(|e| e.into_inner()));
        let mut seg = super::index_log::Segment::added(ids);
        match super::index_log::append_hashed(self.repo.as_ref(), Some(self.log_seq), &mut seg) {
            Ok(Some((seq, hash))) => {
                tracing::debug!(seq, packs = seg.added.len(), "index log segment published");
                // The cache holds these packs: it rests on this segment
                // from now on (a repository rolled back past it is noticed).
                if let Err(e) = index_cache::note_published(&self.cache_dir, seq, &hash) {
                    tracing::warn!(error = %e, "index cache not told of its segment; it lists at its next open");
                    self.distrust_cache();
                }
            }
            Ok(None) => {}
            Err(e) => {
                // Named by no segment, the packs this cache took would go
                // unchecked: the next open lists instead.
                tracing::warn!(error = %e, "the index log segment of the packs written was not published");
                self.distrust_cache();
            }
        }
        // Durable (the caller synced them first): the cache may trust them.
        if let Some(mark) = self.writing.lock().unwrap_or_else(|e| e.into_inner()).take() {
            mark.done();
        }
    }

    /// The entries of pack `id`'s index at `key`; `None` when it vanished
    /// (a concurrent GC removed it between list and get: its pack is going
    /// too). A corrupt index is an error naming it.
    fn read_pack_index(&self, id: &Digest, key: &str) -> Result<Option<Vec<PackEntry>>> {
        let data = match self.repo.get(key) {
            Ok(d) => d,
            Err(EngineError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        pack::open_index(id, &data, self.crypt.as_deref())
            .map(Some)
            .map_err(|reason| EngineError::CorruptPackIndex { key: key.to_string(), reason })
    }

    /// Makes pack `id` (just written by this process) usable.
    pub fn add_pack(&mut self, id: Digest, entries: &[PackEntry]) {
        let p = self.packs.len() as u32;
        self.packs.push(id);
        self.usable.push(true);
        self.listed.push(true);
        self.dict_packs.push(entries.iter().any(|e| e.flags & chunk_codec::FLAG_DICT != 0));
        for e in entries {
            self.added.entry(e.digest).or_insert(ChunkLoc {
                pack: p,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
                flags: e.flags,
            });
        }
    }

    /// Tells the index cache about packs (and their entries) this process
    /// wrote, so the next open need not read their indexes. Best effort:
    /// a cache that cannot take them reads the indexes at the next open.
    /// A mark in the cache comes first: should this process stop before
    /// publishing them, the next open lists instead of trusting them.
    pub fn remember_written(&self, written: &[(Digest, Vec<PackEntry>)]) {
        self.written.lock().unwrap_or_else(|e| e.into_inner()).extend(written.iter().map(|(id, _)| *id));
        {
            let mut mark = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            if mark.is_none() {
                match index_cache::mark_writing(&self.cache_dir) {
                    Ok(m) => *mark = Some(m),
                    Err(e) => {
                        tracing::warn!(error = %e, "packs just written not added to the index cache (no writer's mark)");
                        return;
                    }
                }
            }
        }
        if let Err(e) = index_cache::add_packs(&self.cache_dir, written) {
            tracing::warn!(error = %e, "packs just written not added to the index cache");
        }
    }

    /// Where chunk `d` is stored, in a usable pack.
    pub fn get(&self, d: &Digest) -> Option<ChunkLoc> {
        let usable = |p: u32| self.usable.get(p as usize).copied().unwrap_or(false);
        if let Some(l) = self.added.get(d).filter(|l| usable(l.pack)) {
            return Some(*l);
        }
        self.runs.iter().rev().find_map(|run| {
            run.find(d, |r| usable(r.pack)).map(|r| ChunkLoc {
                pack: r.pack,
                offset: r.offset,
                stored_len: r.stored_len,
                raw_len: r.raw_len,
                flags: r.flags,
            })
        })
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.get(d).is_some()
    }

    /// Whether a pack the repository holds (as of the open) has chunk `d`,
    /// usable or avoided ([`Self::avoid_packs`]).
    pub fn known(&self, d: &Digest) -> bool {
        let listed = |p: u32| self.listed.get(p as usize).copied().unwrap_or(false);
        self.added.get(d).is_some_and(|l| listed(l.pack)) || self.runs.iter().any(|run| run.find(d, |r| listed(r.pack)).is_some())
    }

    /// Stops using the chunks of these packs (a GC plan's candidates: a
    /// backup stores such chunks again rather than reuse them).
    pub fn avoid_packs(&mut self, avoid: &HashSet<Digest>) {
        if avoid.is_empty() {
            return;
        }
        for (p, id) in self.packs.iter().enumerate() {
            if avoid.contains(id) {
                self.usable[p] = false;
            }
        }
    }

    /// Whether any usable pack holds chunks compressed with the dictionary.
    pub fn any_dict_chunk(&self) -> bool {
        self.dict_packs.iter().zip(&self.usable).any(|(d, u)| *d && *u)
    }

    /// Reads every pack index the repository lists and checks it opens
    /// (checksum, key): verify's look at what the cache stands in for.
    pub fn check_pack_indexes(&self) -> Result<usize> {
        let mut n = 0;
        for obj in self.repo.list(pack::PACK_INDEX_PREFIX)? {
            let Some(id) = pack::id_from_key(&obj.key) else { continue };
            if self.read_pack_index(&id, &obj.key)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn pack_key_of(&self, loc: &ChunkLoc) -> String {
        pack::pack_key(&self.packs[loc.pack as usize])
    }

    /// The plain chunk, checked against its digest. `snapshot` names the
    /// snapshot in the error when the chunk is missing.
    ///
    /// A GC may repack a chunk while this store is in use (restore, verify
    /// and reads take no lock): when its pack has gone, or the chunk was not
    /// in any pack index at load time, the chunk is looked up once more in
    /// the pack indexes written since, and read from there.
    pub fn read_chunk(&self, digest: &Digest, snapshot: &str) -> Result<Vec<u8>> {
        let missing = || EngineError::MissingChunk { snapshot: snapshot.to_string(), digest: digest.to_hex() };
        let mut gone = None;
        if let Some(loc) = self.get(digest) {
            let entry = loc.entry(digest);
            let pack = self.packs[loc.pack as usize];
            match self.read_entry(&pack, &entry) {
                Err(EngineError::NotFound { .. }) => {
                    self.distrust_cache();
                    gone = Some(pack)
                }
                other => return other,
            }
        }
        let (pack, entry) = self.find_moved(digest, gone)?.ok_or_else(missing)?;
        match self.read_entry(&pack, &entry) {
            Err(EngineError::NotFound { .. }) => Err(missing()),
            other => other,
        }
    }

    fn read_entry(&self, pack: &Digest, e: &PackEntry) -> Result<Vec<u8>> {
        let stored = self.repo.get_range(&pack::pack_key(pack), e.offset, e.stored_len as usize)?;
        self.decode_entry(pack, e, &stored)
    }

    /// `len` stored bytes of pack number `pack` (see [`ChunkLoc::pack`]) at
    /// `offset`: one ranged read that may cover many chunks (restore reads
    /// coalesced runs and decodes them with [`Self::decode_at`]).
    pub fn read_span(&self, pack: u32, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.repo.get_range(&pack::pack_key(&self.packs[pack as usize]), offset, len)
    }

    /// The plain chunk `digest` at `loc` from its stored bytes (read by
    /// [`Self::read_span`]), checked against its digest.
    pub fn decode_at(&self, digest: &Digest, loc: &ChunkLoc, stored: &[u8]) -> Result<Vec<u8>> {
        self.decode_entry(&self.packs[loc.pack as usize], &loc.entry(digest), stored)
    }

    fn decode_entry(&self, pack: &Digest, e: &PackEntry, stored: &[u8]) -> Result<Vec<u8>> {
        let corrupt = |reason: String| EngineError::CorruptChunk {
            digest: e.digest.to_hex(),
            pack: pack.to_hex(),
            offset: e.offset,
            reason,
        };
        let dict = if e.flags & chunk_codec::FLAG_DICT != 0 { Some(self.dict().map_err(corrupt)?) } else { None };
        chunk_codec::decode(stored, e.flags, e.raw_len as usize, &e.digest, self.crypt.as_deref(), &self.hasher, dict)
            .map_err(corrupt)
    }

    /// Where `digest` is now, from the pack indexes not read before. They
    /// are listed again once per pack found gone (`gone`), and once for
    /// chunks no pack index listed at load time: a damaged repository with
    /// many missing chunks is not listed once per chunk.
    fn find_moved(&self, digest: &Digest, gone: Option<Digest>) -> Result<Option<(Digest, PackEntry)>> {
        let mut moved = self.moved.lock().unwrap_or_else(|e| e.into_inner());
        let rescan = match gone {
            Some(pack) => moved.gone.insert(pack),
            None => !moved.scanned,
        };
        if !rescan {
            return Ok(moved.chunks.get(digest).copied());
        }
        moved.scanned = true;
        if moved.seen.is_empty() {
            let usable = self.packs.iter().zip(&self.usable).filter(|(_, u)| **u);
            moved.seen.extend(usable.map(|(id, _)| *id));
        }
        for obj in self.repo.list(pack::PACK_INDEX_PREFIX)? {
            let Some(id) = pack::id_from_key(&obj.key) else { continue };
            if !moved.seen.insert(id) {
                continue;
            }
            let Some(entries) = self.read_pack_index(&id, &obj.key)? else { continue };
            for e in entries {
                moved.chunks.insert(e.digest, (id, e));
            }
        }
        Ok(moved.chunks.get(digest).copied())
    }

    /// The repository's chunk dictionary (loaded once); `Err` names it and says why not.
    fn dict(&self) -> std::result::Result<&ChunkDict, String> {
        let loaded = self.dict.get_or_init(|| match chunk_dict::load(self.repo.as_ref(), self.crypt.as_deref()) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(format!("its dictionary '{}' is missing", chunk_dict::DICT_KEY)),
            Err(e) => Err(e.to_string()),
        });
        loaded.as_deref().map_err(|e| e.clone())
    }
}
