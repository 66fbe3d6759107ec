//! A disk's fixed index: one digest per fixed-size chunk, chunk `i` covering
//! bytes `[i*chunk_size, min((i+1)*chunk_size, size))` of the image; the
//! reserved all-zero digest marks an all-zero chunk (never stored).
//! Stored content-addressed as `indexes/<hh>/<blake3 of the object>`.
//!
//! Plain encoding: `SDFIDX01`, u32 chunk size, u32 reserved, u64 image size,
//! u64 count, count × 32-byte digests, BLAKE3 of all that (32 bytes). Stored
//! sealed ([`sealed`], `SDFIDX02`: zstd, encrypted when the repository has a
//! key); a plain `SDFIDX01` object (written before sealing existed) is still
//! read in a repository without a key.

use super::crypto::CryptConfig;
use super::digest::Digest;
use super::error::Result;
use super::sealed::{self, Kind};

pub const INDEX_PREFIX: &str = "indexes/";
const MAGIC: &[u8; 8] = b"SDFIDX01";
const HEADER: usize = 8 + 4 + 4 + 8 + 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIndex {
    pub chunk_size: u32,
    pub size: u64,
    pub digests: Vec<Digest>,
}

pub fn chunk_count(size: u64, chunk_size: u32) -> usize {
    size.div_ceil(chunk_size as u64) as usize
}

impl FixedIndex {
    pub fn new(size: u64, chunk_size: u32) -> Self {
        FixedIndex { chunk_size, size, digests: vec![Digest::ZERO_CHUNK; chunk_count(size, chunk_size)] }
    }

    /// Byte range of chunk `i`.
    pub fn chunk_range(&self, i: usize) -> (u64, usize) {
        let start = i as u64 * self.chunk_size as u64;
        let len = (self.size - start).min(self.chunk_size as u64) as usize;
        (start, len)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_salted(0)
    }

    /// [`Self::encode`] with `salt` in the reserved word (readers ignore
    /// it): the same index under another key, for a backup whose index
    /// would otherwise land on a key garbage collection is about to delete.
    pub fn encode_salted(&self, salt: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.digests.len() * 32 + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&salt.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.digests.len() as u64).to_le_bytes());
        for d in &self.digests {
            out.extend_from_slice(&d.0);
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<FixedIndex, String> {
        if data.len() < HEADER + 32 || &data[..8] != MAGIC {
            return Err(format!("bad header or truncated ({} bytes)", data.len()));
        }
        let chunk_size = u32::from_le_bytes(data[8..12].try_into().unwrap());
        let size = u64::from_le_bytes(data[16..24].try_into().unwrap());
        let count = u64::from_le_bytes(data[24..32].try_into().unwrap()) as usize;
        if chunk_size == 0 || count != chunk_count(size, chunk_size) {
            return Err(format!("{count} chunks do not cover {size} bytes"));
        }
        let body = HEADER + count * 32;
        if data.len() != body + 32 {
            return Err(format!("{} bytes, expected {} (truncated?)", data.len(), body + 32));
        }
        if blake3::hash(&data[..body]).as_bytes() != &data[body..] {
            return Err("checksum mismatch".into());
        }
        let digests = data[HEADER..body].chunks_exact(32).map(|c| Digest(c.try_into().unwrap())).collect();
        Ok(FixedIndex { chunk_size, size, digests })
    }
}

impl FixedIndex {
    /// The object as stored.
    pub fn seal(&self, crypt: Option<&CryptConfig>) -> Result<Vec<u8>> {
        sealed::seal(Kind::FixedIndex, &self.encode(), b"", crypt)
    }

    /// The object as stored, with a salt (see [`Self::encode_salted`]).
    pub fn seal_salted(&self, crypt: Option<&CryptConfig>, salt: u32) -> Result<Vec<u8>> {
        sealed::seal(Kind::FixedIndex, &self.encode_salted(salt), b"", crypt)
    }

    /// From a stored object (sealed, or plain `SDFIDX01` without a key).
    pub fn open(data: &[u8], crypt: Option<&CryptConfig>) -> Result<FixedIndex, String> {
        if crypt.is_none() && data.starts_with(MAGIC) {
            return FixedIndex::decode(data);
        }
        FixedIndex::decode(&sealed::open(Kind::FixedIndex, data, b"", crypt)?)
    }
}

/// `indexes/<hh>/<BLAKE3 of the stored object>`.
pub fn index_key(encoded: &[u8]) -> String {
    let h = blake3::hash(encoded).to_hex();
    format!("{INDEX_PREFIX}{}/{}", &h[..2], h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_ranges_and_corruption() {
        let mut idx = FixedIndex::new(65536 * 2 + 100, 65536);
        assert_eq!(idx.digests.len(), 3);
        assert_eq!(idx.chunk_range(2), (131072, 100));
        idx.digests[1] = Digest([9; 32]);
        let enc = idx.encode();
        assert_eq!(FixedIndex::decode(&enc).unwrap(), idx);
        assert!(FixedIndex::decode(&enc[..enc.len() - 5]).unwrap_err().contains("truncated"));
        let mut bad = enc.clone();
        bad[40] ^= 1;
        assert_eq!(FixedIndex::decode(&bad).unwrap_err(), "checksum mismatch");
        assert!(index_key(&enc).starts_with(INDEX_PREFIX));
    }

    #[test]
    fn sealed_is_small_and_legacy_plain_still_opens() {
        let mut idx = FixedIndex::new(65536 * 1000, 65536);
        idx.digests[7] = Digest([9; 32]);
        let sealed = idx.seal(None).unwrap();
        assert!(sealed.len() < 1000, "zero digests compress: {} bytes", sealed.len());
        assert_eq!(FixedIndex::open(&sealed, None).unwrap(), idx);
        assert_eq!(FixedIndex::open(&idx.encode(), None).unwrap(), idx);
        let c = CryptConfig::from_master(&[5; 32]);
        let enc = idx.seal(Some(&c)).unwrap();
        assert!(!enc.windows(32).any(|w| w == [9; 32]));
        assert_eq!(FixedIndex::open(&enc, Some(&c)).unwrap(), idx);
        assert!(FixedIndex::open(&idx.encode(), Some(&c)).is_err(), "no plain index in an encrypted repository");
        assert!(FixedIndex::open(&sealed[..sealed.len() / 2], None).unwrap_err().contains("truncated"));
    }
}
