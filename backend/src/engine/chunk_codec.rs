//! How one chunk is stored: zstd level 1 when it saves at least 1/64, then
//! AES-256-GCM when the repository is encrypted. Decoding checks everything:
//! authentication tag, decompressed length, and the digest of the result.

use zstd::zstd_safe::CParameter;

use super::crypto::CryptConfig;
use super::digest::{Digest, Hasher};

pub const FLAG_ZSTD: u8 = 1;
pub const FLAG_ENCRYPTED: u8 = 2;

/// Bytes compressed first to estimate whether the whole chunk is worth it.
const PROBE: usize = 4096;
/// Stored compressed when that saves at least 1/64 of the chunk (1 KiB at 64 KiB).
const MIN_SAVING_DIV: usize = 64;
const LEVEL: i32 = 1;

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Stored bytes and flags for a plain chunk.
pub fn encode(raw: &[u8], digest: &Digest, crypt: Option<&CryptConfig>) -> Result<(Vec<u8>, u8), String> {
    let zerr = |e: std::io::Error| format!("zstd: {e}");
    let (body, flags) = COMPRESSOR.with(|cell| -> Result<(Vec<u8>, u8), String> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut c = zstd::bulk::Compressor::new(LEVEL).map_err(zerr)?;
            // The pack index records the length.
            c.set_parameter(CParameter::ContentSizeFlag(false)).map_err(zerr)?;
            *slot = Some(c);
        }
        let c = slot.as_mut().ok_or("zstd: no context")?;
        if !worth_trying(c, raw) {
            return Ok((raw.to_vec(), 0));
        }
        let compressed = c.compress(raw).map_err(zerr)?;
        if compressed.len() <= raw.len() - raw.len() / MIN_SAVING_DIV {
            Ok((compressed, FLAG_ZSTD))
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
        decompress(body, raw_len).map_err(|e| format!("zstd: {e}"))?
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

/// With a per-thread context.
fn decompress(body: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(z) => z.decompress(body, raw_len),
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
        let (stored, flags) = encode(&text, &d, None).unwrap();
        assert_eq!(flags, FLAG_ZSTD);
        assert!(stored.len() < text.len() / 4);
        assert_eq!(decode(&stored, flags, text.len(), &d, None, &h).unwrap(), text);

        let mut random = vec![0u8; 65536];
        getrandom::fill(&mut random).unwrap();
        let d = h.digest(&random);
        let (mut stored, flags) = encode(&random, &d, None).unwrap();
        assert_eq!(flags, 0);
        stored[100] ^= 0x40;
        assert_eq!(decode(&stored, flags, random.len(), &d, None, &h).unwrap_err(), "digest mismatch");
    }

    #[test]
    fn encrypted_roundtrip() {
        let c = CryptConfig::from_master(&[3u8; 32]);
        let h = Hasher::keyed(c.id_key());
        let data = vec![5u8; 65536];
        let d = h.digest(&data);
        let (stored, flags) = encode(&data, &d, Some(&c)).unwrap();
        assert_eq!(flags, FLAG_ZSTD | FLAG_ENCRYPTED);
        assert_eq!(decode(&stored, flags, data.len(), &d, Some(&c), &h).unwrap(), data);
        let other = CryptConfig::from_master(&[4u8; 32]);
        assert!(decode(&stored, flags, data.len(), &d, Some(&other), &h).is_err());
    }
}
