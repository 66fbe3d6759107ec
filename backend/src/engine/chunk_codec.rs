//! How one chunk is stored: zstd level 1 (with the repository's chunk
//! dictionary once there is one, [`super::chunk_dict`]) when it saves at
//! least 1/64, then AES-256-GCM when the repository is encrypted. Decoding
//! checks everything: authentication tag, decompressed length, and the digest
//! of the result.

use zstd::zstd_safe::CParameter;

use super::chunk_dict::ChunkDict;
use super::crypto::CryptConfig;
use super::digest::{Digest, Hasher};

pub const FLAG_ZSTD: u8 = 1;
pub const FLAG_ENCRYPTED: u8 = 2;
/// Compressed with the repository's chunk dictionary (always with [`FLAG_ZSTD`]).
pub const FLAG_DICT: u8 = 4;

/// Bytes compressed first to estimate whether the whole chunk is worth it.
const PROBE: usize = 4096;
/// Stored compressed when that saves at least 1/64 of the chunk (1 KiB at 64 KiB).
const MIN_SAVING_DIV: usize = 64;

/// Per-thread zstd state: a context for chunks without dictionary (and the
/// probes), and one for dictionary frames with its buffer, which holds the
/// dictionary content with the chunk copied right after it (a contiguous
/// prefix, see [`super::chunk_dict`]). The dictionary is matched by id, never
/// by address: a process may serve several repositories.
struct Contexts {
    plain: zstd::bulk::Compressor<'static>,
    with_dict: zstd::zstd_safe::CCtx<'static>,
    buf: Vec<u8>,
    dict_id: Option<[u8; 32]>,
}

impl Contexts {
    fn new() -> std::io::Result<Contexts> {
        let mut plain = zstd::bulk::Compressor::new(LEVEL)?;
        // The pack index records the length.
        plain.set_parameter(CParameter::ContentSizeFlag(false))?;
        Ok(Contexts { plain, with_dict: zstd::zstd_safe::CCtx::create(), buf: Vec::new(), dict_id: None })
    }

    fn compress(&mut self, raw: &[u8], dict: Option<&ChunkDict>) -> Result<Vec<u8>, String> {
        let Some(d) = dict else {
            return self.plain.compress(raw).map_err(|e| format!("zstd: {e}"));
        };
        if self.dict_id != Some(d.id) {
            self.buf.clear();
            self.buf.extend_from_slice(&d.bytes);
            self.dict_id = Some(d.id);
        }
        self.buf.truncate(d.bytes.len());
        self.buf.extend_from_slice(raw);
        let (prefix, src) = self.buf.split_at(d.bytes.len());
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
        self.with_dict
            .compress_using_dict(&mut out, src, prefix, LEVEL)
            .map_err(|code| format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))?;
        Ok(out)
    }
}

const LEVEL: i32 = 1;

thread_local! {
    static CONTEXTS: std::cell::RefCell<Option<Contexts>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<(Option<[u8; 32]>, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn with_contexts<T>(f: impl FnOnce(&mut Contexts) -> Result<T, String>) -> Result<T, String> {
    CONTEXTS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Contexts::new().map_err(|e| format!("zstd: {e}"))?);
        }
        f(slot.as_mut().ok_or("zstd: no context")?)
    })
}

/// Stored bytes and flags for a plain chunk.
pub fn encode(
    raw: &[u8],
    digest: &Digest,
    crypt: Option<&CryptConfig>,
    dict: Option<&ChunkDict>,
) -> Result<(Vec<u8>, u8), String> {
    let (body, flags) = with_contexts(|ctx| {
        if !worth_trying(&mut ctx.plain, raw) {
            return Ok((raw.to_vec(), 0));
        }
        let compressed = ctx.compress(raw, dict)?;
        if compressed.len() <= raw.len() - raw.len() / MIN_SAVING_DIV {
            Ok((compressed, if dict.is_some() { FLAG_ZSTD | FLAG_DICT } else { FLAG_ZSTD }))
        } else {
            Ok((raw.to_vec(), 0))
        }
    })?;
    match crypt {
        Some(c) => {
            let ct = c.encrypt(&body, &digest.0).map_err(|e| e.to_string())?;
            Ok((ct, flags | FLAG_ENCRYPTED))
        }
        None => Ok((body, flags)),
    }
}

/// Compressed size of `raw` (with `dict`), for measuring a dictionary.
pub fn compressed_len(raw: &[u8], dict: Option<&ChunkDict>) -> Option<usize> {
    with_contexts(|ctx| ctx.compress(raw, dict)).ok().map(|c| c.len())
}

/// Incompressible data (already compressed or encrypted in the guest) is
/// recognised on a 4 KiB probe instead of compressing 64 KiB for nothing.
/// When the first 1 KiB is far from uniform (fewer than 200 distinct byte
/// values, where random data shows about 250: text, tables, code) the chunk is
/// worth trying without the trial compression.
fn worth_trying(plain: &mut zstd::bulk::Compressor<'static>, raw: &[u8]) -> bool {
    if raw.len() <= 2 * PROBE {
        return true;
    }
    let mut seen = [0u64; 4];
    for &b in &raw[..1024] {
        seen[(b >> 6) as usize] |= 1u64 << (b & 63);
    }
    if seen.iter().map(|w| w.count_ones()).sum::<u32>() < 200 {
        return true;
    }
    plain.compress(&raw[..PROBE]).map(|c| c.len() < PROBE - PROBE / 16).unwrap_or(true)
}

/// Plain chunk from stored bytes; `Err(reason)` names what failed.
pub fn decode(
    stored: &[u8],
    flags: u8,
    raw_len: usize,
    digest: &Digest,
    crypt: Option<&CryptConfig>,
    hasher: &Hasher,
    dict: Option<&ChunkDict>,
) -> Result<Vec<u8>, String> {
    let decrypted;
    let body: &[u8] = if flags & FLAG_ENCRYPTED != 0 {
        let c = crypt.ok_or("chunk is encrypted but no key is loaded")?;
        decrypted = c.decrypt(stored, &digest.0).ok_or("authentication failed (wrong key or altered bytes)")?;
        &decrypted
    } else {
        stored
    };
    let raw = if flags & FLAG_ZSTD != 0 {
        let dict = if flags & FLAG_DICT != 0 {
            Some(dict.ok_or("chunk needs the repository's chunk dictionary, which is not loaded")?)
        } else {
            None
        };
        decompress(body, raw_len, dict).map_err(|e| format!("zstd: {e}"))?
    } else {
        body.to_vec()
    };
    if raw.len() != raw_len {
        return Err(format!("length {} instead of {raw_len}", raw.len()));
    }
    if hasher.digest(&raw) != *digest {
        return Err("digest mismatch".into());
    }
    Ok(raw)
}

/// With a per-thread context (holding the dictionary, matched by id).
fn decompress(body: &[u8], raw_len: usize, dict: Option<&ChunkDict>) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let want = dict.map(|d| d.id);
        if slot.as_ref().map(|(id, _)| *id) != Some(want) {
            let z = match dict {
                Some(d) => zstd::bulk::Decompressor::with_dictionary(&d.bytes)?,
                None => zstd::bulk::Decompressor::new()?,
            };
            *slot = Some((want, z));
        }
        match slot.as_mut() {
            Some((_, z)) => z.decompress(body, raw_len),
            None => Err(std::io::Error::other("no context")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_only_when_it_pays_and_detects_flips() {
        let h = Hasher::plain();
        let text = b"2024-03-01 node-01 sshd: Accepted publickey\n".repeat(1500);
        let d = h.digest(&text);
        let (stored, flags) = encode(&text, &d, None, None).unwrap();
        assert_eq!(flags, FLAG_ZSTD);
        assert!(stored.len() < text.len() / 4);
        assert_eq!(decode(&stored, flags, text.len(), &d, None, &h, None).unwrap(), text);

        let mut random = vec![0u8; 65536];
        getrandom::fill(&mut random).unwrap();
        let d = h.digest(&random);
        let (mut stored, flags) = encode(&random, &d, None, None).unwrap();
        assert_eq!(flags, 0);
        stored[100] ^= 0x40;
        assert_eq!(decode(&stored, flags, random.len(), &d, None, &h, None).unwrap_err(), "digest mismatch");
    }

    #[test]
    fn encrypted_roundtrip() {
        let c = CryptConfig::from_master(&[3u8; 32]);
        let h = Hasher::keyed(c.id_key());
        let data = vec![5u8; 65536];
        let d = h.digest(&data);
        let (stored, flags) = encode(&data, &d, Some(&c), None).unwrap();
        assert_eq!(flags, FLAG_ZSTD | FLAG_ENCRYPTED);
        assert_eq!(decode(&stored, flags, data.len(), &d, Some(&c), &h, None).unwrap(), data);
        let other = CryptConfig::from_master(&[4u8; 32]);
        assert!(decode(&stored, flags, data.len(), &d, Some(&other), &h, None).is_err());
    }

    #[test]
    fn dictionary_flag_roundtrip_and_required() {
        let h = Hasher::plain();
        let sample = b"2024-03-01 node-01 sshd: Accepted publickey for deploy\n".repeat(1200);
        // Raw content, as the repository keeps it.
        let dict = ChunkDict::new(b"node-02 kernel: EXT4-fs mounted; sshd: Accepted publickey".repeat(100));
        let d = h.digest(&sample);
        let (stored, flags) = encode(&sample, &d, None, Some(&dict)).unwrap();
        assert_eq!(flags, FLAG_ZSTD | FLAG_DICT);
        assert_eq!(decode(&stored, flags, sample.len(), &d, None, &h, Some(&dict)).unwrap(), sample);
        assert!(decode(&stored, flags, sample.len(), &d, None, &h, None).unwrap_err().contains("dictionary"));
        // The same thread switches back to no dictionary.
        let (stored, flags) = encode(&sample, &d, None, None).unwrap();
        assert_eq!(flags, FLAG_ZSTD);
        assert_eq!(decode(&stored, flags, sample.len(), &d, None, &h, None).unwrap(), sample);
    }
}
