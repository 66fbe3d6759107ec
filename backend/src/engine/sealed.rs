//! Metadata objects as stored: fixed indexes, pack indexes, the chunk
//! dictionary and, in an encrypted repository, manifests. Each kind keeps its
//! own plain encoding (with its own checks); this envelope compresses it with
//! zstd when that is smaller and, when the repository has a key, encrypts it
//! with AES-256-GCM (the metadata key, see [`CryptConfig`]), so an encrypted
//! repository shows no digest, size or name in clear.
//!
//! Format: magic (8 bytes, names the kind and version), u8 flags (1 = zstd,
//! 2 = encrypted), 3 reserved zero bytes, u64 plain length, u64 body length,
//! body, BLAKE3 of everything before (32 bytes). Encrypted body: nonce ||
//! ciphertext || tag, with the header and a per-object context (pack id,
//! object key) as associated data, so an object cannot be moved or swapped.
//! Parsing is strict: a truncated, altered, plain-in-an-encrypted-repository
//! or wrongly keyed object is an error (the caller names the object).

use std::io::Read;

use super::crypto::CryptConfig;
use super::error::{EngineError, Result};

const FLAG_ZSTD: u8 = 1;
const FLAG_ENCRYPTED: u8 = 2;
const HEADER: usize = 8 + 4 + 8 + 8;
const SUM: usize = 32;
/// Metadata is small next to the chunks: a stronger level costs little.
const LEVEL: i32 = 3;

/// What a sealed object holds; the magic tells the kinds apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FixedIndex,
    PackIndex,
    Manifest,
    Dictionary,
}

impl Kind {
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::FixedIndex => b"SDFIDX02",
            Kind::PackIndex => b"SDPIDX02",
            Kind::Manifest => b"SDMANI01",
            Kind::Dictionary => b"SDDICT01",
        }
    }
}

/// True when `data` starts like a sealed object of `kind`.
pub fn is_sealed(data: &[u8], kind: Kind) -> bool {
    data.starts_with(kind.magic())
}

/// Seal `plain`: compressed when that is smaller, encrypted when `crypt` is given.
pub fn seal(kind: Kind, plain: &[u8], context: &[u8], crypt: Option<&CryptConfig>) -> Result<Vec<u8>> {
    let mut flags = 0u8;
    let compressed = zstd::bulk::compress(plain, LEVEL).map_err(|e| EngineError::Pipeline(format!("zstd: {e}")))?;
    let mut body = if compressed.len() < plain.len() {
        flags |= FLAG_ZSTD;
        compressed
    } else {
        plain.to_vec()
    };
    if crypt.is_some() {
        flags |= FLAG_ENCRYPTED;
    }
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(kind.magic());
    header.extend_from_slice(&[flags, 0, 0, 0]);
    header.extend_from_slice(&(plain.len() as u64).to_le_bytes());
    if let Some(c) = crypt {
        body = c.encrypt_meta(&body, &aad(&header, context))?;
    }
    header.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let mut out = header;
    out.reserve(body.len() + SUM);
    out.extend_from_slice(&body);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Ok(out)
}

/// The plain bytes of a sealed object; `Err(reason)` says what is wrong.
pub fn open(kind: Kind, data: &[u8], context: &[u8], crypt: Option<&CryptConfig>) -> Result<Vec<u8>, String> {
    if data.len() < HEADER + SUM || !is_sealed(data, kind) {
        return Err(format!("bad header or truncated ({} bytes)", data.len()));
    }
    let flags = data[8];
    let plain_len = u64::from_le_bytes(le8(&data[12..20]));
    let body_len = u64::from_le_bytes(le8(&data[20..28]));
    let expected = (HEADER as u64).saturating_add(body_len).saturating_add(SUM as u64);
    if data.len() as u64 != expected {
        return Err(format!("{} bytes, expected {expected} (truncated?)", data.len()));
    }
    if flags & !(FLAG_ZSTD | FLAG_ENCRYPTED) != 0 || data[9..12] != [0, 0, 0] {
        return Err(format!("unknown flags {flags:#x}"));
    }
    let (stored, sum) = data.split_at(data.len() - SUM);
    if blake3::hash(stored).as_bytes() != sum {
        return Err("checksum mismatch".into());
    }
    let body = &stored[HEADER..];
    let decrypted;
    let body = match (flags & FLAG_ENCRYPTED != 0, crypt) {
        (true, Some(c)) => {
            decrypted = c
                .decrypt_meta(body, &aad(&data[..20], context))
                .ok_or("authentication failed (wrong key, altered or moved object)")?;
            &decrypted[..]
        }
        (true, None) => return Err("object is encrypted but no key is loaded".into()),
        (false, Some(_)) => return Err("object is not encrypted in an encrypted repository".into()),
        (false, None) => body,
    };
    let plain = if flags & FLAG_ZSTD != 0 {
        // Streamed and bounded: a lying length cannot make us allocate it up front.
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(plain_len.saturating_add(1)).read_to_end(&mut out))
            .map_err(|e| format!("zstd: {e}"))?;
        out
    } else {
        body.to_vec()
    };
    if plain.len() as u64 != plain_len {
        return Err(format!("{} plain bytes, expected {plain_len}", plain.len()));
    }
    Ok(plain)
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    a
}

/// Associated data: magic, flags, plain length (everything known before
/// encrypting), then the caller's context.
fn aad(header: &[u8], context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(20 + context.len());
    a.extend_from_slice(&header[..20]);
    a.extend_from_slice(context);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_roundtrip_compresses_and_rejects_damage() {
        let plain = [[0u8; 32]; 300].concat();
        let s = seal(Kind::FixedIndex, &plain, b"", None).unwrap();
        assert!(s.len() < plain.len() / 10, "{} bytes", s.len());
        assert_eq!(open(Kind::FixedIndex, &s, b"", None).unwrap(), plain);
        assert!(open(Kind::PackIndex, &s, b"", None).is_err(), "kind is checked");
        assert!(open(Kind::FixedIndex, &s[..s.len() - 3], b"", None).unwrap_err().contains("truncated"));
        let mut bad = s.clone();
        bad[HEADER + 2] ^= 1;
        assert_eq!(open(Kind::FixedIndex, &bad, b"", None).unwrap_err(), "checksum mismatch");
        // Incompressible input is stored as is.
        let mut random = vec![0u8; 4096];
        getrandom::fill(&mut random).unwrap();
        let s = seal(Kind::PackIndex, &random, b"", None).unwrap();
        assert_eq!(s[8], 0);
        assert_eq!(open(Kind::PackIndex, &s, b"", None).unwrap(), random);
    }

    #[test]
    fn encrypted_needs_the_key_and_the_context() {
        let c = CryptConfig::from_master(&[1u8; 32]);
        let plain = b"{\"name\":\"secret-vm\",\"disks\":[]}".repeat(20);
        let s = seal(Kind::Manifest, &plain, b"snapshots/a/1.json", Some(&c)).unwrap();
        assert!(!s.windows(10).any(|w| w == b"secret-vm\""));
        assert_eq!(open(Kind::Manifest, &s, b"snapshots/a/1.json", Some(&c)).unwrap(), plain);
        assert!(open(Kind::Manifest, &s, b"snapshots/a/2.json", Some(&c)).unwrap_err().contains("authentication"));
        let other = CryptConfig::from_master(&[2u8; 32]);
        assert!(open(Kind::Manifest, &s, b"snapshots/a/1.json", Some(&other)).unwrap_err().contains("authentication"));
        assert!(open(Kind::Manifest, &s, b"snapshots/a/1.json", None).unwrap_err().contains("no key"));
        let clear = seal(Kind::Manifest, &plain, b"snapshots/a/1.json", None).unwrap();
        assert!(open(Kind::Manifest, &clear, b"snapshots/a/1.json", Some(&c)).unwrap_err().contains("not encrypted"));
    }
}
