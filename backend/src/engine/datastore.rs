//! A repository opened for use: its `config.json`, the storage backend, the
//! key (when encrypted) and the snapshot catalogue (manifests by name).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::chunk_store::ChunkStore;
use super::crypto::CryptConfig;
use super::digest::Hasher;
use super::error::{EngineError, Result};
use super::fixed_index::{self, FixedIndex};
use super::local_repository::{LocalRepository, TMP_DIR};
use super::manifest::{self, Manifest};
use super::repository::Repository;
use super::sealed::{self, Kind};
use crate::repos::RepoSpec;

pub const CONFIG_KEY: &str = "config.json";
/// 64 KiB: the qcow2 cluster and dirty-bitmap granularity; see `engine` docs.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
pub const DEFAULT_PACK_SIZE: u32 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptionConfig {
    pub cipher: String,
    /// Derived from the master key; proves a key file belongs here.
    pub key_check: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    pub sendense_repository: u32,
    pub chunk_size: u32,
    pub pack_size: u32,
    pub created: String,
    #[serde(default)]
    pub encryption: Option<EncryptionConfig>,
}

pub struct Datastore {
    pub repo: Arc<dyn Repository>,
    pub config: RepoConfig,
    pub crypt: Option<Arc<CryptConfig>>,
    pub hasher: Hasher,
}

impl Datastore {
    /// Create a repository in `path` (absent or an empty directory). With
    /// `key_file`, create a new key there (outside the repository).
    pub fn init(path: &Path, key_file: Option<&Path>) -> Result<Datastore> {
        Self::init_with(path, key_file, DEFAULT_CHUNK_SIZE)
    }

    /// [`Datastore::init`] with another chunk size (a power of two, 4 KiB to 16 MiB).
    pub fn init_with(path: &Path, key_file: Option<&Path>, chunk_size: u32) -> Result<Datastore> {
        check_chunk_size(chunk_size)?;
        if path.join(CONFIG_KEY).exists() {
            return Err(EngineError::AlreadyExists { path: path.into() });
        }
        if let Some(k) = key_file {
            let abs_k = absolute(k.parent().unwrap_or(Path::new(".")));
            if abs_k.starts_with(absolute(path)) {
                return Err(EngineError::Invalid(format!(
                    "key file '{}' must not be inside the repository '{}'",
                    k.display(),
                    path.display()
                )));
            }
        }
        std::fs::create_dir_all(path.join(TMP_DIR)).map_err(|e| EngineError::file(path, e))?;
        let repo: Arc<dyn Repository> = Arc::new(LocalRepository::new(path));
        Self::create_in(repo, key_file, chunk_size)
    }

    /// Writes a new `config.json` (and the key file) into an empty backend.
    fn create_in(repo: Arc<dyn Repository>, key_file: Option<&Path>, chunk_size: u32) -> Result<Datastore> {
        let crypt = match key_file {
            Some(k) => Some(Arc::new(CryptConfig::create_key_file(k)?)),
            None => None,
        };
        let config = RepoConfig {
            sendense_repository: 1,
            chunk_size,
            pack_size: DEFAULT_PACK_SIZE.max(chunk_size),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            encryption: crypt.as_ref().map(|c| EncryptionConfig {
                cipher: "aes-256-gcm+blake3-keyed".into(),
                key_check: c.check_value().to_string(),
            }),
        };
        repo.put(CONFIG_KEY, &serde_json::to_vec_pretty(&config).expect("serialize config"))?;
        let hasher = hasher_for(crypt.as_deref());
        Ok(Datastore { repo, config, crypt, hasher })
    }

    /// Create a repository where `spec` says: a local spec is exactly
    /// [`Datastore::init_with`]; in an object store the bucket or container
    /// must exist and hold no `config.json` under the prefix. `key_file`
    /// (encryption) is always a local file, outside any repository.
    pub fn init_spec(spec: &RepoSpec, key_file: Option<&Path>, chunk_size: u32) -> Result<Datastore> {
        if let Some(path) = spec.local_path() {
            return Self::init_with(path, key_file, chunk_size);
        }
        check_chunk_size(chunk_size)?;
        let repo = backend(spec)?;
        if repo.stat(CONFIG_KEY)?.is_some() {
            return Err(EngineError::AlreadyExists { path: spec.describe().into() });
        }
        Self::create_in(repo, key_file, chunk_size)
    }

    /// Open the repository `spec` names; a local spec is exactly [`Datastore::open`].
    pub fn open_spec(spec: &RepoSpec, key_file: Option<&Path>) -> Result<Datastore> {
        if let Some(path) = spec.local_path() {
            return Self::open(path, key_file);
        }
        let label = PathBuf::from(spec.describe());
        Self::open_repo(backend(spec)?, &label, key_file)
    }

    /// [`Datastore::read_config`] for any spec.
    pub fn read_config_spec(spec: &RepoSpec) -> Result<RepoConfig> {
        if let Some(path) = spec.local_path() {
            return Self::read_config(path);
        }
        Self::config_of(backend(spec)?.as_ref(), &PathBuf::from(spec.describe()))
    }

    pub fn open(path: &Path, key_file: Option<&Path>) -> Result<Datastore> {
        let repo: Arc<dyn Repository> = Arc::new(LocalRepository::new(path));
        Self::open_repo(repo, path, key_file)
    }

    /// The configuration of the repository in `path` (says whether it is
    /// encrypted), without opening it.
    pub fn read_config(path: &Path) -> Result<RepoConfig> {
        Self::config_of(&LocalRepository::new(path), path)
    }

    fn config_of(repo: &dyn Repository, path: &Path) -> Result<RepoConfig> {
        let body = match repo.get(CONFIG_KEY) {
            Ok(b) => b,
            Err(EngineError::NotFound { .. }) => {
                return Err(EngineError::NotARepository { path: path.into(), reason: "missing".into() })
            }
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&body)
            .map_err(|e| EngineError::NotARepository { path: path.into(), reason: format!("config.json: {e}") })
    }

    pub fn open_repo(repo: Arc<dyn Repository>, path: &Path, key_file: Option<&Path>) -> Result<Datastore> {
        let config = Self::config_of(repo.as_ref(), path)?;
        let crypt = match (&config.encryption, key_file) {
            (None, None) => None,
            (None, Some(_)) => return Err(EngineError::KeyNotNeeded),
            (Some(_), None) => return Err(EngineError::KeyMissing),
            (Some(enc), Some(k)) => {
                let c = CryptConfig::load_key_file(k)?;
                if c.check_value() != enc.key_check {
                    return Err(EngineError::WrongKey { path: k.into() });
                }
                Some(Arc::new(c))
            }
        };
        let hasher = hasher_for(crypt.as_deref());
        Ok(Datastore { repo, config, crypt, hasher })
    }

    pub fn load_chunk_store(&self) -> Result<ChunkStore> {
        ChunkStore::load(self.repo.clone(), self.crypt.clone(), self.hasher.clone())
    }

    /// [`Self::load_chunk_store`] refreshed from the full listing of pack
    /// indexes, never from the index log alone (what must find every pack
    /// of many restore points, such as extending their retention).
    pub fn load_chunk_store_listed(&self) -> Result<ChunkStore> {
        let refresh = super::index_cache::Refresh { full: true, newest_plan: None };
        ChunkStore::load_with(self.repo.clone(), self.crypt.clone(), self.hasher.clone(), refresh)
    }

    /// [`Self::load_chunk_store`] by a writer that has just read the newest
    /// GC plan (`plan`: its number, `None`: there is none), which the
    /// refresh then need not read again.
    pub fn load_chunk_store_after_plan(&self, plan: Option<u64>) -> Result<ChunkStore> {
        let refresh = super::index_cache::Refresh { full: false, newest_plan: Some(plan.unwrap_or(0)) };
        ChunkStore::load_with(self.repo.clone(), self.crypt.clone(), self.hasher.clone(), refresh)
    }

    /// All snapshots as (name, id), oldest first within a name.
    pub fn list_snapshots(&self, name: Option<&str>) -> Result<Vec<(String, String)>> {
        let prefix = match name {
            Some(n) => format!("{}{n}/", manifest::SNAPSHOT_PREFIX),
            None => manifest::SNAPSHOT_PREFIX.to_string(),
        };
        let mut out: Vec<_> =
            self.repo.list(&prefix)?.iter().filter_map(|o| manifest::parse_manifest_key(&o.key)).collect();
        out.sort();
        Ok(out)
    }

    pub fn load_manifest(&self, name: &str, id: &str) -> Result<Manifest> {
        let key = manifest::manifest_key(name, id);
        let label = format!("{name}/{id}");
        let body = match self.repo.get(&key) {
            Ok(b) => b,
            Err(EngineError::NotFound { .. }) => return Err(EngineError::SnapshotNotFound(label)),
            Err(e) => return Err(e),
        };
        let corrupt = |reason: String| EngineError::CorruptManifest { snapshot: label.clone(), key: key.clone(), reason };
        // Sealed (and encrypted) in an encrypted repository, plain JSON otherwise.
        let body = if self.crypt.is_some() || sealed::is_sealed(&body, Kind::Manifest) {
            sealed::open(Kind::Manifest, &body, key.as_bytes(), self.crypt.as_deref()).map_err(corrupt)?
        } else {
            body
        };
        let m: Manifest = serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
        if m.id != id || m.name != name {
            return Err(EngineError::CorruptManifest { snapshot: label, key, reason: "id or name mismatch".into() });
        }
        Ok(m)
    }

    /// Write a manifest (atomic replace): plain JSON, or sealed and
    /// encrypted (bound to its key) when the repository has a key.
    pub fn put_manifest(&self, m: &Manifest) -> Result<()> {
        let key = manifest::manifest_key(&m.name, &m.id);
        let json = serde_json::to_vec_pretty(m).expect("serialize manifest");
        let body = match self.crypt.as_deref() {
            Some(c) => sealed::seal(Kind::Manifest, &json, key.as_bytes(), Some(c))?,
            None => json,
        };
        self.repo.put(&key, &body)
    }

    /// `latest` or an id.
    pub fn resolve(&self, name: &str, which: &str) -> Result<Manifest> {
        if which == "latest" {
            let all = self.list_snapshots(Some(name))?;
            let (_, id) = all.last().ok_or_else(|| EngineError::NoSnapshots(name.to_string()))?;
            self.load_manifest(name, id)
        } else {
            self.load_manifest(name, which)
        }
    }

    pub fn load_index(&self, snapshot: &str, key: &str) -> Result<FixedIndex> {
        let body = match self.repo.get(key) {
            Ok(b) => b,
            Err(EngineError::NotFound { .. }) => {
                return Err(EngineError::CorruptIndex {
                    snapshot: snapshot.into(),
                    key: key.into(),
                    reason: "index object is missing".into(),
                })
            }
            Err(e) => return Err(e),
        };
        let corrupt = |reason: String| EngineError::CorruptIndex { snapshot: snapshot.into(), key: key.into(), reason };
        let index = FixedIndex::open(&body, self.crypt.as_deref()).map_err(corrupt)?;
        // Content addressed: an object moved to another index's name is refused.
        if fixed_index::index_key(&body) != key {
            return Err(corrupt("content does not match the object name".into()));
        }
        Ok(index)
    }

    /// Store a fixed index (create-if-absent); its key and the bytes written
    /// (0 when an identical object was already there).
    pub fn put_index(&self, index: &FixedIndex) -> Result<(String, u64)> {
        let body = index.seal(self.crypt.as_deref())?;
        let key = fixed_index::index_key(&body);
        let written = if self.repo.put_if_absent(&key, &body)? { body.len() as u64 } else { 0 };
        Ok((key, written))
    }
}

fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if !chunk_size.is_power_of_two() || !(4096..=16 << 20).contains(&chunk_size) {
        return Err(EngineError::Invalid(format!("chunk size {chunk_size} (a power of two, 4 KiB to 16 MiB)")));
    }
    Ok(())
}

/// The storage backend of a spec, its opening errors as engine errors.
fn backend(spec: &RepoSpec) -> Result<Arc<dyn Repository>> {
    crate::repos::open_backend(spec).map_err(|e| EngineError::Invalid(format!("{e:#}")))
}

fn hasher_for(crypt: Option<&CryptConfig>) -> Hasher {
    match crypt {
        Some(c) => Hasher::keyed(c.id_key()),
        None => Hasher::plain(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}
