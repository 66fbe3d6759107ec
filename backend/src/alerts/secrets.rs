//! Secrets kept in the catalog (a webhook's signing secret, an SMTP
//! password), sealed with AES-256-GCM under the server's catalog secret key
//! `DATA_DIR/keys/catalog-secrets.key` (32 random bytes, file 0600 in the
//! 0700 keys directory beside the repository keys, made on first use). A
//! copy of the catalog alone reveals none of them. Each secret is bound to
//! its row (the row id is the associated data), so a sealed value moved to
//! another row does not open.
//!
//! Stored form: `v1:` + base64(nonce (12 bytes) || ciphertext || tag).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

const KEY_FILE: &str = "catalog-secrets.key";
const PREFIX: &str = "v1:";
const NONCE: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("catalog secret key {path}: {source}")]
    Key { path: PathBuf, source: std::io::Error },
    #[error("catalog secret key {0} is not 32 bytes: put back the original file")]
    BadKey(PathBuf),
    #[error("random source: {0}")]
    Random(String),
    #[error("a stored secret does not open with the catalog secret key (was {0} replaced?); enter the secret again")]
    Unreadable(PathBuf),
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    crate::catalog::repository_keys::keys_dir(data_dir).join(KEY_FILE)
}

/// The key, made on first use.
fn key(data_dir: &Path) -> Result<Aes256Gcm, SecretError> {
    let path = key_path(data_dir);
    let io = |source| SecretError::Key { path: path.clone(), source };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = crate::catalog::repository_keys::keys_dir(data_dir);
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io)?;
            let mut k = [0u8; 32];
            getrandom::fill(&mut k).map_err(|e| SecretError::Random(e.to_string()))?;
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(mut f) => {
                    f.write_all(&k).and_then(|_| f.sync_all()).map_err(io)?;
                    k.to_vec()
                }
                // Made by a concurrent first use: read theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&path).map_err(io)?,
                Err(e) => return Err(io(e)),
            }
        }
        Err(e) => return Err(io(e)),
    };
    Aes256Gcm::new_from_slice(&bytes).map_err(|_| SecretError::BadKey(path.clone()))
}

/// Seals `plain` for the row `row_id`.
pub fn seal(data_dir: &Path, row_id: &str, plain: &str) -> Result<String, SecretError> {
    let cipher = key(data_dir)?;
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: row_id.as_bytes() })
        .map_err(|_| SecretError::Random("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out)))
}

/// Opens a value [`seal`] made for `row_id`.
pub fn open(data_dir: &Path, row_id: &str, sealed: &str) -> Result<String, SecretError> {
    let cipher = key(data_dir)?;
    let bad = || SecretError::Unreadable(key_path(data_dir));
    let raw = sealed.strip_prefix(PREFIX).ok_or_else(bad)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| bad())?;
    if raw.len() < NONCE + 16 {
        return Err(bad());
    }
    let (nonce, ct) = raw.split_at(NONCE);
    let plain = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: row_id.as_bytes() }).map_err(|_| bad())?;
    String::from_utf8(plain).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_row() {
        let dir = tempfile::tempdir().unwrap();
        let s = seal(dir.path(), "row-1", "hunter2-hunter2").unwrap();
        assert!(!s.contains("hunter2"));
        assert_eq!(open(dir.path(), "row-1", &s).unwrap(), "hunter2-hunter2");
        assert!(open(dir.path(), "row-2", &s).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
