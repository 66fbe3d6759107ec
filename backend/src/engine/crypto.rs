//! Encryption: a 32-byte master key lives in a key file outside the
//! repository (mode 0600, written by `repo init --encrypt KEYFILE`). From it
//! BLAKE3 `derive_key` gives four independent keys: the AES-256-GCM chunk key,
//! the AES-256-GCM metadata key (fixed indexes, pack indexes, manifests, the
//! chunk dictionary: [`super::sealed`]), the keyed-BLAKE3 chunk-id key
//! (digests reveal nothing about content), and a check value — the only
//! key-derived thing stored in the repository, used to refuse a wrong key
//! before anything is read or written.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};

use super::error::{EngineError, Result};

const NONCE_LEN: usize = 12;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    sendense_key: u32,
    master_key: String,
}

pub struct CryptConfig {
    cipher: Aes256Gcm,
    meta_cipher: Aes256Gcm,
    id_key: [u8; 32],
    check: String,
}

impl CryptConfig {
    pub fn from_master(master: &[u8; 32]) -> Self {
        let enc = blake3::derive_key("sendense 2026 chunk encryption key v1", master);
        let meta = blake3::derive_key("sendense 2026 metadata encryption key v1", master);
        let id_key = blake3::derive_key("sendense 2026 chunk id key v1", master);
        let check = blake3::derive_key("sendense 2026 key check value v1", master);
        CryptConfig {
            cipher: Aes256Gcm::new_from_slice(&enc).expect("32-byte key"),
            meta_cipher: Aes256Gcm::new_from_slice(&meta).expect("32-byte key"),
            id_key,
            check: hex::encode(check),
        }
    }

    /// Create a new random key and write it to `path` (which must not exist), mode 0600.
    pub fn create_key_file(path: &Path) -> Result<CryptConfig> {
        let mut master = [0u8; 32];
        getrandom::fill(&mut master).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
        let body = serde_json::to_vec_pretty(&KeyFile { sendense_key: 1, master_key: hex::encode(master) })
            .expect("serialize key file");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| EngineError::file(path, e))?;
        f.write_all(&body).and_then(|_| f.sync_all()).map_err(|e| EngineError::file(path, e))?;
        Ok(CryptConfig::from_master(&master))
    }

    pub fn load_key_file(path: &Path) -> Result<CryptConfig> {
        let body = std::fs::read(path).map_err(|e| EngineError::file(path, e))?;
        Self::parse_key_file(&body).map_err(|reason| EngineError::BadKeyFile { path: path.into(), reason })
    }

    /// A key file's contents (as [`create_key_file`](Self::create_key_file)
    /// writes them) read into a key; the error says what is wrong with them.
    pub fn parse_key_file(body: &[u8]) -> std::result::Result<CryptConfig, String> {
        let kf: KeyFile = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let mut master = [0u8; 32];
        hex::decode_to_slice(kf.master_key.trim(), &mut master).map_err(|e| format!("master_key: {e}"))?;
        Ok(CryptConfig::from_master(&master))
    }

    pub fn check_value(&self) -> &str {
        &self.check
    }
    pub fn id_key(&self) -> [u8; 32] {
        self.id_key
    }

    /// nonce || ciphertext+tag; the chunk digest is authenticated data, so a
    /// chunk cannot be swapped for another.
    pub fn encrypt(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.cipher, plain, aad)
    }

    /// `None` when authentication fails (wrong key or altered bytes).
    pub fn decrypt(&self, data: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.cipher, data, aad)
    }

    /// Like [`CryptConfig::encrypt`], with the metadata key.
    pub fn encrypt_meta(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.meta_cipher, plain, aad)
    }

    pub fn decrypt_meta(&self, data: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        open_with(&self.meta_cipher, data, aad)
    }
}

fn seal_with(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| EngineError::Pipeline(format!("random source: {e}")))?;
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| EngineError::Pipeline("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_with(cipher: &Aes256Gcm, data: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if data.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, ct) = data.split_at(NONCE_LEN);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_roundtrip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let a = CryptConfig::create_key_file(&p).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let b = CryptConfig::load_key_file(&p).unwrap();
        assert_eq!(a.check_value(), b.check_value());
        let mut ct = a.encrypt(b"hello", b"aad").unwrap();
        assert_eq!(b.decrypt(&ct, b"aad").unwrap(), b"hello");
        assert!(b.decrypt(&ct, b"other").is_none());
        assert!(b.decrypt_meta(&ct, b"aad").is_none(), "chunk and metadata keys differ");
        ct[14] ^= 1;
        assert!(b.decrypt(&ct, b"aad").is_none());
        assert!(CryptConfig::create_key_file(&p).is_err(), "never overwrite a key file");
    }
}
