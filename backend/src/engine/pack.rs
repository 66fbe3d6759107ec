//! Packs: many small chunks appended into one object (about 8 MiB), written
//! whole and named by the BLAKE3 of its bytes (`packs/<hh>/<hex>`), so small
//! chunks do not mean millions of objects on an object store. Beside each
//! pack, a pack index object (`pack-index/<hh>/<hex>`) lists its chunks:
//! digest → (offset, stored length, plain length, flags). The pack index is
//! written after its pack; a pack without an index is an orphan of a crashed
//! backup and garbage collection removes it.
//!
//! Pack index plain encoding: `SDPIDX01`, u32 count, count × (digest 32,
//! offset u64, stored u32, plain u32, flags u8), BLAKE3 of all that (32
//! bytes). Stored sealed ([`sealed`], `SDPIDX02`: zstd, encrypted when the
//! repository has a key, bound to its pack id); a plain `SDPIDX01` object is
//! still read in a repository without a key.

use super::crypto::CryptConfig;
use super::digest::Digest;
use super::error::Result;
use super::repository::Repository;
use super::sealed::{self, Kind};

pub const PACK_PREFIX: &str = "packs/";
pub const PACK_INDEX_PREFIX: &str = "pack-index/";
const MAGIC: &[u8; 8] = b"SDPIDX01";
const ENTRY: usize = 32 + 8 + 4 + 4 + 1;

pub fn pack_key(id: &Digest) -> String {
    let h = id.to_hex();
    format!("{PACK_PREFIX}{}/{h}", &h[..2])
}
pub fn pack_index_key(id: &Digest) -> String {
    let h = id.to_hex();
    format!("{PACK_INDEX_PREFIX}{}/{h}", &h[..2])
}
/// The pack id from a `packs/..` or `pack-index/..` key.
pub fn id_from_key(key: &str) -> Option<Digest> {
    Digest::from_hex(key.rsplit('/').next()?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub digest: Digest,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub flags: u8,
}

pub fn encode_index(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + entries.len() * ENTRY + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.digest.0);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.stored_len.to_le_bytes());
        out.extend_from_slice(&e.raw_len.to_le_bytes());
        out.push(e.flags);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

pub fn decode_index(data: &[u8]) -> Result<Vec<PackEntry>, String> {
    if data.len() < 12 + 32 || &data[..8] != MAGIC {
        return Err(format!("bad header or truncated ({} bytes)", data.len()));
    }
    let count = u32::from_le_bytes(data[8..12].try_into().unwrap()) as usize;
    let body_len = 12 + count * ENTRY;
    if data.len() != body_len + 32 {
        return Err(format!("{} bytes, expected {} for {count} entries", data.len(), body_len + 32));
    }
    if blake3::hash(&data[..body_len]).as_bytes() != &data[body_len..] {
        return Err("checksum mismatch".into());
    }
    let mut out = Vec::with_capacity(count);
    for e in data[12..body_len].chunks_exact(ENTRY) {
        out.push(PackEntry {
            digest: Digest(e[..32].try_into().unwrap()),
            offset: u64::from_le_bytes(e[32..40].try_into().unwrap()),
            stored_len: u32::from_le_bytes(e[40..44].try_into().unwrap()),
            raw_len: u32::from_le_bytes(e[44..48].try_into().unwrap()),
            flags: e[48],
        });
    }
    Ok(out)
}

/// The pack index of pack `id` as stored.
pub fn seal_index(id: &Digest, entries: &[PackEntry], crypt: Option<&CryptConfig>) -> Result<Vec<u8>> {
    sealed::seal(Kind::PackIndex, &encode_index(entries), &id.0, crypt)
}

/// The entries of pack `id` from its stored index (sealed, or plain `SDPIDX01` without a key).
pub fn open_index(id: &Digest, data: &[u8], crypt: Option<&CryptConfig>) -> Result<Vec<PackEntry>, String> {
    if crypt.is_none() && data.starts_with(MAGIC) {
        return decode_index(data);
    }
    decode_index(&sealed::open(Kind::PackIndex, data, &id.0, crypt)?)
}

/// Writes a whole pack, then its index, both create-if-absent (the index
/// last: a pack without one is an orphan GC removes). Returns the pack's id
/// and the bytes this call actually wrote (0 for objects already there).
pub fn write(repo: &dyn Repository, crypt: Option<&CryptConfig>, data: &[u8], entries: &[PackEntry]) -> Result<(Digest, u64)> {
    let id = Digest(*blake3::hash(data).as_bytes());
    let mut written = 0;
    if repo.put_if_absent(&pack_key(&id), data)? {
        written += data.len() as u64;
    }
    let idx = seal_index(&id, entries, crypt)?;
    if repo.put_if_absent(&pack_index_key(&id), &idx)? {
        written += idx.len() as u64;
    }
    Ok((id, written))
}

/// [`write`] for a backup: the pack is durable before its index is
/// published (a pack index never outlives its pack in a crash), the index
/// is published with [`Repository::put_if_absent_deferred`]: the caller
/// calls [`Repository::sync_published`] before anything references it.
pub fn write_deferred(repo: &dyn Repository, crypt: Option<&CryptConfig>, data: &[u8], entries: &[PackEntry]) -> Result<(Digest, u64)> {
    let id = Digest(*blake3::hash(data).as_bytes());
    let mut written = 0;
    if repo.put_if_absent(&pack_key(&id), data)? {
        written += data.len() as u64;
    }
    let idx = seal_index(&id, entries, crypt)?;
    if repo.put_if_absent_deferred(&pack_index_key(&id), &idx)? {
        written += idx.len() as u64;
    }
    Ok((id, written))
}

/// Accumulates chunks for one pack in memory.
#[derive(Default)]
pub struct PackBuilder {
    pub data: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// Room for `bytes` up front: a pack grows to its full size without reallocating.
    pub fn with_capacity(bytes: usize) -> PackBuilder {
        PackBuilder { data: Vec::with_capacity(bytes), entries: Vec::new() }
    }

    pub fn add(&mut self, digest: Digest, stored: &[u8], raw_len: u32, flags: u8) {
        self.entries.push(PackEntry {
            digest,
            offset: self.data.len() as u64,
            stored_len: stored.len() as u32,
            raw_len,
            flags,
        });
        self.data.extend_from_slice(stored);
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_roundtrip_and_truncation() {
        let mut b = PackBuilder::default();
        b.add(Digest([1; 32]), b"abc", 10, 1);
        b.add(Digest([2; 32]), b"defg", 4, 0);
        let enc = encode_index(&b.entries);
        assert_eq!(decode_index(&enc).unwrap(), b.entries);
        assert!(decode_index(&enc[..enc.len() - 1]).is_err());
        let mut bad = enc.clone();
        bad[20] ^= 1;
        assert_eq!(decode_index(&bad).unwrap_err(), "checksum mismatch");
        assert_eq!(b.entries[1].offset, 3);
    }

    #[test]
    fn sealed_index_is_bound_to_its_pack() {
        let mut b = PackBuilder::default();
        for i in 0..100u8 {
            b.add(Digest([i; 32]), &[i; 10], 65536, 1);
        }
        let id = Digest([7; 32]);
        let plain = encode_index(&b.entries);
        let s = seal_index(&id, &b.entries, None).unwrap();
        assert!(s.len() < plain.len());
        assert_eq!(open_index(&id, &s, None).unwrap(), b.entries);
        assert_eq!(open_index(&id, &plain, None).unwrap(), b.entries, "legacy plain index");
        let c = CryptConfig::from_master(&[6; 32]);
        let e = seal_index(&id, &b.entries, Some(&c)).unwrap();
        assert!(!e.windows(32).any(|w| w == [42; 32]));
        assert_eq!(open_index(&id, &e, Some(&c)).unwrap(), b.entries);
        assert!(open_index(&Digest([8; 32]), &e, Some(&c)).is_err(), "moved to another pack");
    }
}
