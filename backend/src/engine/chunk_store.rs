//! The chunk store: every stored chunk's location, loaded from the pack
//! indexes, and chunk reads (ranged GET from its pack, then decode and check;
//! the chunk dictionary is loaded on the first chunk that needs it).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::chunk_codec;
use super::chunk_dict::{self, ChunkDict};
use super::crypto::CryptConfig;
use super::digest::{Digest, Hasher};
use super::error::{EngineError, Result};
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

pub struct ChunkStore {
    pub repo: Arc<dyn Repository>,
    pub crypt: Option<Arc<CryptConfig>>,
    pub hasher: Hasher,
    pub packs: Vec<Digest>,
    pub map: HashMap<Digest, ChunkLoc>,
    dict: OnceLock<std::result::Result<Arc<ChunkDict>, String>>,
}

impl ChunkStore {
    /// Load every pack index. A corrupt pack index is an error naming it.
    pub fn load(repo: Arc<dyn Repository>, crypt: Option<Arc<CryptConfig>>, hasher: Hasher) -> Result<ChunkStore> {
        let mut store = ChunkStore { repo, crypt, hasher, packs: Vec::new(), map: HashMap::new(), dict: OnceLock::new() };
        for obj in store.repo.list(pack::PACK_INDEX_PREFIX)? {
            let Some(id) = pack::id_from_key(&obj.key) else { continue };
            let data = match store.repo.get(&obj.key) {
                Ok(d) => d,
                // Removed by a concurrent GC between list and get: its pack is going too.
                Err(EngineError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let entries = pack::open_index(&id, &data, store.crypt.as_deref())
                .map_err(|reason| EngineError::CorruptPackIndex { key: obj.key.clone(), reason })?;
            store.add_pack(id, &entries);
        }
        Ok(store)
    }

    pub fn add_pack(&mut self, id: Digest, entries: &[PackEntry]) {
        let p = self.packs.len() as u32;
        self.packs.push(id);
        for e in entries {
            self.map.entry(e.digest).or_insert(ChunkLoc {
                pack: p,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
                flags: e.flags,
            });
        }
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.map.contains_key(d)
    }

    pub fn pack_key_of(&self, loc: &ChunkLoc) -> String {
        pack::pack_key(&self.packs[loc.pack as usize])
    }

    /// The plain chunk, checked against its digest. `snapshot` names the
    /// snapshot in the error when the chunk is missing.
    pub fn read_chunk(&self, digest: &Digest, snapshot: &str) -> Result<Vec<u8>> {
        let loc = self
            .map
            .get(digest)
            .ok_or_else(|| EngineError::MissingChunk { snapshot: snapshot.to_string(), digest: digest.to_hex() })?;
        let key = self.pack_key_of(loc);
        let stored = match self.repo.get_range(&key, loc.offset, loc.stored_len as usize) {
            Ok(s) => s,
            Err(EngineError::NotFound { .. }) => {
                return Err(EngineError::MissingChunk { snapshot: snapshot.to_string(), digest: digest.to_hex() })
            }
            Err(e) => return Err(e),
        };
        let corrupt = |reason: String| EngineError::CorruptChunk {
            digest: digest.to_hex(),
            pack: self.packs[loc.pack as usize].to_hex(),
            offset: loc.offset,
            reason,
        };
        let dict = if loc.flags & chunk_codec::FLAG_DICT != 0 { Some(self.dict().map_err(corrupt)?) } else { None };
        chunk_codec::decode(&stored, loc.flags, loc.raw_len as usize, digest, self.crypt.as_deref(), &self.hasher, dict)
            .map_err(corrupt)
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
