//! Keys of the server's encrypted repositories: one key file per repository,
//! `DATA_DIR/keys/<repository id>.key` (directory 0700, file 0600), never
//! inside the repository. Whether a repository is encrypted is written in
//! its own `config.json` (with the key's check value), so repositories
//! created unencrypted by an older server keep working without a key.
//!
//! Anyone holding a key file and its repository can read every backup in
//! it; without the key nothing in the repository can be restored. Export it
//! for safekeeping with `sendense key export` or
//! `GET /api/v1/repositories/{id}/key`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::engine::crypto::CryptConfig;
use crate::engine::datastore::Datastore;
use crate::engine::{EngineError, Result};

/// Directory of the key files in the data directory.
pub const KEYS_DIR: &str = "keys";

/// How many hex digits of the key's check value name it to people.
pub const FINGERPRINT_LEN: usize = 16;

pub fn keys_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(KEYS_DIR)
}

/// Where the key of repository `repository_id` lives. Ids are the server's
/// own (uuid-like); anything else could leave the directory and is refused.
pub fn key_path(data_dir: &Path, repository_id: &str) -> Result<PathBuf> {
    let safe = !repository_id.is_empty()
        && repository_id.len() <= 64
        && repository_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !safe {
        return Err(EngineError::Invalid(format!("'{repository_id}' is not a repository id")));
    }
    Ok(keys_dir(data_dir).join(format!("{repository_id}.key")))
}

/// Creates the keys directory (0700, tightened if it exists looser).
fn prepare_dir(data_dir: &Path) -> Result<PathBuf> {
    let dir = keys_dir(data_dir);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| EngineError::file(&dir, e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| EngineError::file(&dir, e))?;
    Ok(dir)
}

/// Creates an encrypted repository in `path` with a new key for
/// `repository_id` (refused when that key file already exists).
pub fn init_encrypted(data_dir: &Path, repository_id: &str, path: &Path) -> Result<Datastore> {
    init_encrypted_spec(data_dir, repository_id, &crate::repos::RepoSpec::Local { path: path.to_path_buf() })
}

/// [`init_encrypted`] where `spec` says (a bucket or container too): the
/// key file stays in `DATA_DIR/keys`, never in the object store.
pub fn init_encrypted_spec(data_dir: &Path, repository_id: &str, spec: &crate::repos::RepoSpec) -> Result<Datastore> {
    prepare_dir(data_dir)?;
    let key = key_path(data_dir, repository_id)?;
    match Datastore::init_spec(spec, Some(&key), crate::engine::datastore::DEFAULT_CHUNK_SIZE) {
        Ok(ds) => Ok(ds),
        Err(e) => {
            // A key whose repository was not created is of no use to anyone.
            if !matches!(e, EngineError::File { ref path, .. } if path == &key) {
                let _ = std::fs::remove_file(&key);
            }
            Err(e)
        }
    }
}

/// The key's fingerprint (start of its check value, which the repository
/// stores) when the repository in `path` is encrypted.
pub fn fingerprint(path: &Path) -> Result<Option<String>> {
    let config = Datastore::read_config(path)?;
    Ok(config.encryption.map(|e| e.key_check.chars().take(FINGERPRINT_LEN).collect()))
}

/// Opens the datastore of repository `repository_id` in `path`, with its key
/// when its configuration says it is encrypted. The one way the server opens
/// a repository. Blocking.
pub fn open_datastore(data_dir: &Path, repository_id: &str, path: &Path) -> Result<Datastore> {
    let config = Datastore::read_config(path)?;
    if config.encryption.is_none() {
        return Datastore::open(path, None);
    }
    let key = key_path(data_dir, repository_id)?;
    if !key.exists() {
        return Err(EngineError::KeyFileMissing { repository: path.display().to_string(), path: key });
    }
    Datastore::open(path, Some(&key))
}

/// The key file's bytes, checked against the repository (a key that does not
/// open it is refused, not handed out); `None` for an unencrypted repository.
pub fn export(data_dir: &Path, repository_id: &str, path: &Path) -> Result<Option<Vec<u8>>> {
    export_for(data_dir, repository_id, &path.display().to_string(), Datastore::read_config(path)?)
}

/// [`export`] for a repository whose configuration was read already (an
/// object store's); `repository` names it in errors.
pub fn export_for(data_dir: &Path, repository_id: &str, repository: &str, config: crate::engine::datastore::RepoConfig) -> Result<Option<Vec<u8>>> {
    let Some(enc) = config.encryption else { return Ok(None) };
    let key = key_path(data_dir, repository_id)?;
    if !key.exists() {
        return Err(EngineError::KeyFileMissing { repository: repository.to_owned(), path: key });
    }
    if CryptConfig::load_key_file(&key)?.check_value() != enc.key_check {
        return Err(EngineError::WrongKey { path: key });
    }
    std::fs::read(&key).map(Some).map_err(|e| EngineError::file(&key, e))
}

/// Stores a key file's contents given to attach an encrypted repository as
/// the key of `repository_id` (created new, mode 0600), when they are a key
/// whose check value is `key_check` (the repository's). The error is for
/// the person who gave them.
pub fn import(data_dir: &Path, repository_id: &str, body: &[u8], key_check: &str) -> std::result::Result<(), String> {
    check_given(body, key_check)?;
    prepare_dir(data_dir).map_err(|e| e.to_string())?;
    let path = key_path(data_dir, repository_id).map_err(|e| e.to_string())?;
    write_export(&path, body).map_err(|e| format!("storing the key in {}: {e}", path.display()))
}

/// Whether a key file's contents given by a person are the key whose check
/// value is `key_check`; the error says what is wrong.
pub fn check_given(body: &[u8], key_check: &str) -> std::result::Result<(), String> {
    let key = CryptConfig::parse_key_file(body).map_err(|e| format!("the key given is not a Sendense key file ({e}): paste the whole file `sendense key export` wrote"))?;
    if key.check_value() != key_check {
        return Err(format!(
            "the key given (fingerprint {}) does not open this repository (its key's fingerprint is {}): give the key exported for this repository",
            &key.check_value()[..FINGERPRINT_LEN],
            &key_check[..FINGERPRINT_LEN.min(key_check.len())]
        ));
    }
    Ok(())
}

/// Writes exported key bytes to `out` (created new, mode 0600).
pub fn write_export(out: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(out)?;
    f.write_all(body)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_repository_opens_only_with_its_key_file() {
        let data = tempfile::tempdir().unwrap();
        let repo = data.path().join("repos/r1");
        init_encrypted(data.path(), "r1", &repo).unwrap();
        let key = key_path(data.path(), "r1").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(keys_dir(data.path())).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(!key.starts_with(&repo));
        assert!(open_datastore(data.path(), "r1", &repo).unwrap().crypt.is_some());
        assert_eq!(fingerprint(&repo).unwrap().unwrap().len(), FINGERPRINT_LEN);
        assert_eq!(export(data.path(), "r1", &repo).unwrap().unwrap(), std::fs::read(&key).unwrap());

        // Missing key: the error names the file to put back.
        let aside = data.path().join("aside.key");
        std::fs::rename(&key, &aside).unwrap();
        let err = open_datastore(data.path(), "r1", &repo).err().unwrap().to_string();
        assert!(err.contains(&key.display().to_string()) && err.contains("missing"), "{err}");
        // Another repository's key is refused.
        init_encrypted(data.path(), "r2", &data.path().join("repos/r2")).unwrap();
        std::fs::copy(key_path(data.path(), "r2").unwrap(), &key).unwrap();
        assert!(matches!(open_datastore(data.path(), "r1", &repo), Err(EngineError::WrongKey { .. })));
        assert!(matches!(export(data.path(), "r1", &repo), Err(EngineError::WrongKey { .. })));
        assert!(key_path(data.path(), "../x").is_err());
    }

    #[test]
    fn unencrypted_repository_needs_no_key() {
        let data = tempfile::tempdir().unwrap();
        let repo = data.path().join("plain");
        Datastore::init(&repo, None).unwrap();
        assert!(open_datastore(data.path(), "p", &repo).unwrap().crypt.is_none());
        assert_eq!(fingerprint(&repo).unwrap(), None);
        assert_eq!(export(data.path(), "p", &repo).unwrap(), None);
    }
}
