//! How one chunk is stored: zstd level 1 when it saves at least 1/8, then
//! AES-256-GCM when the repository is encrypted. Decoding checks everything:
//! authentication tag, decompressed length, and the digest of the result.

use super::crypto::CryptConfig;
use super::digest::{Digest, Hasher};

pub const FLAG_ZSTD: u8 = 1;
pub const FLAG_ENCRYPTED: u8 = 2;

/// Bytes compressed first to estimate whether the whole chunk is worth it.
const PROBE: usize = 4096;

/// Stored bytes and flags for a plain chunk.
pub fn encode(raw: &[u8], digest: &Digest, crypt: Option<&CryptConfig>) -> Result<(Vec<u8>, u8), String> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> = const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Compressor::new(1).map_err(|e| format!("zstd: {e}"))?);
        }
        encode_with(slot.as_mut().unwrap(), raw, digest, crypt)
    })
}

fn encode_with(
    compressor: &mut zstd::bulk::Compressor<'static>,
    raw: &[u8],
    digest: &Digest,
    crypt: Option<&CryptConfig>,
) -> Result<(Vec<u8>, u8), String> {
    let mut flags = 0u8;
    // Incompressible data (already compressed or encrypted in the guest) is
    // recognised on a 4 KiB probe instead of compressing 64 KiB for nothing.
    let worth_trying = raw.len() <= 2 * PROBE
        || compressor.compress(&raw[..PROBE]).map(|c| c.len() < PROBE - PROBE / 16).unwrap_or(true);
    let compressed = if worth_trying { Some(compressor.compress(raw).map_err(|e| format!("zstd: {e}"))?) } else { None };
    let body: Vec<u8> = match compressed {
        Some(c) if c.len() <= raw.len() - raw.len() / 8 => {
            flags |= FLAG_ZSTD;
            c
        }
        _ => raw.to_vec(),
    };
    match crypt {
        Some(c) => {
            flags |= FLAG_ENCRYPTED;
            let ct = c.encrypt(&body, &digest.0).map_err(|e| e.to_string())?;
            Ok((ct, flags))
        }
        None => Ok((body, flags)),
    }
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
        zstd::bulk::decompress(body, raw_len).map_err(|e| format!("zstd: {e}"))?
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
