//! The one error type of the crate. Every variant names the object (path,
//! partition, structure) and the cause, so a person can act on it; none
//! carries an HTTP status (the API layer chooses those).

use std::io;

use crate::detect::FsKind;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading a guest disk.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying disk could not be read.
    #[error("reading {what} at byte {offset} of the disk: {source}")]
    Io {
        what: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// A path given by the caller was refused by the normaliser.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The partition table is present but malformed.
    #[error("partition table ({table}): {reason}")]
    PartitionTable { table: &'static str, reason: String },
    /// `Disk::filesystem` was given an index that is not in `Disk::partitions`.
    #[error("no partition with index {index} (the disk has {count})")]
    NoSuchPartition { index: usize, count: usize },
    /// The partition holds no filesystem this crate reads.
    #[error("partition {index} holds no filesystem this crate can read (detected: {detected})")]
    Unsupported { index: usize, detected: FsKind },
    /// The filesystem's own structures are corrupt or unsupported; `message`
    /// is the parser's description.
    #[error("{fs} filesystem: {context}: {message}")]
    Filesystem {
        fs: FsKind,
        context: String,
        message: String,
    },
    /// The path does not exist in the guest filesystem.
    #[error("{path:?} does not exist")]
    NotFound { path: String },
    /// A directory was expected.
    #[error("{path:?} is not a directory")]
    NotADirectory { path: String },
    /// A regular file was expected.
    #[error("{path:?} is not a regular file")]
    NotAFile { path: String },
    /// The path goes through (or ends at) a symbolic link or reparse point;
    /// links are never followed.
    #[error("{path:?} is a symbolic link (or reparse point); links are never followed")]
    Symlink { path: String },
    /// A safety limit was hit (hostile or unusually large filesystem).
    #[error("{what}: more than {limit} (limit reached; the image may be corrupt)")]
    LimitExceeded { what: String, limit: u64 },
    /// A background reader thread stopped, panicked or timed out.
    #[error("{fs} reader: {reason}")]
    Worker { fs: FsKind, reason: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, offset: u64, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            offset,
            source,
        }
    }

    pub(crate) fn fs(fs: FsKind, context: impl Into<String>, message: impl ToString) -> Self {
        Error::Filesystem {
            fs,
            context: context.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn limit(what: impl Into<String>, limit: u64) -> Self {
        Error::LimitExceeded {
            what: what.into(),
            limit,
        }
    }
}
