//! The engine's error type: every variant names the object it is about
//! (repository path, object key, snapshot id, chunk digest, file path) and
//! carries the cause. No HTTP status here: the API layer maps these.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("repository object '{key}': {source}")]
    Object { key: String, #[source] source: std::io::Error },
    #[error("repository object '{key}' not found")]
    NotFound { key: String },
    #[error("file '{path}': {source}")]
    File { path: PathBuf, #[source] source: std::io::Error },
    #[error("'{path}' is not a Sendense repository (no config.json): {reason}")]
    NotARepository { path: PathBuf, reason: String },
    #[error("repository '{path}' already exists")]
    AlreadyExists { path: PathBuf },
    #[error("repository is encrypted: give its key file with --key KEYFILE (or SENDENSE_KEY_FILE)")]
    KeyMissing,
    #[error("repository '{repository}' is encrypted and its key file '{path}' is missing: put the key exported for safekeeping (`sendense key export`) back at that path")]
    KeyFileMissing { repository: String, path: PathBuf },
    #[error("key file '{path}' does not belong to this repository (key check mismatch)")]
    WrongKey { path: PathBuf },
    #[error("key file '{path}' is invalid: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error("repository is not encrypted but a key file was given")]
    KeyNotNeeded,
    #[error("snapshot '{snapshot}': manifest '{key}' is corrupt: {reason}")]
    CorruptManifest { snapshot: String, key: String, reason: String },
    #[error("snapshot '{snapshot}': index '{key}' is corrupt: {reason}")]
    CorruptIndex { snapshot: String, key: String, reason: String },
    #[error("pack index '{key}' is corrupt: {reason}")]
    CorruptPackIndex { key: String, reason: String },
    #[error("chunk dictionary '{key}' is corrupt: {reason}")]
    CorruptDictionary { key: String, reason: String },
    #[error("snapshot '{snapshot}': chunk {digest} is missing from the repository")]
    MissingChunk { snapshot: String, digest: String },
    #[error("chunk {digest} (pack {pack}, offset {offset}) is corrupt: {reason}")]
    CorruptChunk { digest: String, pack: String, offset: u64, reason: String },
    #[error("snapshot '{0}' not found")]
    SnapshotNotFound(String),
    #[error("no snapshot named '{0}' in the repository")]
    NoSnapshots(String),
    #[error("snapshot '{snapshot}' is immutable until {until}: it cannot be deleted or pruned")]
    Immutable { snapshot: String, until: String },
    #[error("snapshot '{snapshot}' is in use by an instant recovery (pinned): finalize or discard it first")]
    Pinned { snapshot: String },
    #[error("changed ranges file '{path}': {reason}")]
    BadChangedRanges { path: PathBuf, reason: String },
    #[error("image '{path}' is shorter ({actual} bytes) than its changed ranges claim (range ends at {claimed})")]
    ImageTooShort { path: PathBuf, actual: u64, claimed: u64 },
    #[error("image '{path}' changed size during the backup")]
    ImageChanged { path: PathBuf },
    #[error("pack {pack} vanished during the backup (concurrent garbage collection); no snapshot was written, run the backup again")]
    PackVanished { pack: String },
    #[error("repository '{repository}': its listing of snapshots/ misses {count} restore point(s) known to exist (first: {first}); garbage collection refused, as it would delete the chunks they need")]
    ListingIncomplete { repository: String, count: usize, first: String },
    #[error("another garbage collection holds the lock '{key}'")]
    GcLocked { key: String },
    #[error("cancelled by an operator; no snapshot was written and the repository is unchanged")]
    Cancelled,
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("{0}")]
    Pipeline(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn object(key: impl Into<String>, source: std::io::Error) -> Self {
        let key = key.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            EngineError::NotFound { key }
        } else {
            EngineError::Object { key, source }
        }
    }
    pub fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::File { path: path.into(), source }
    }
}
