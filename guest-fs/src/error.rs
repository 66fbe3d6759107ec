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
        /// The structure being read.
        what: String,
        /// Byte offset (on the disk, or in the partition for filesystem reads).
        offset: u64,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// A path given by the caller was refused by the normaliser.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The partition table is present but malformed.
    #[error("partition table ({table}): {reason}")]
    PartitionTable {
        /// `GPT` or `MBR`.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `Disk::filesystem` was given an index that is not in `Disk::partitions`.
    #[error("no partition with index {index} (the disk has {count})")]
    NoSuchPartition {
        /// The index asked for.
        index: usize,
        /// How many partitions there are.
        count: usize,
    },
    /// The partition holds no filesystem this crate reads.
    #[error("partition {index} holds no filesystem this crate can read (detected: {detected})")]
    Unsupported {
        /// The partition index.
        index: usize,
        /// What detection found.
        detected: FsKind,
    },
    /// The filesystem's own structures are corrupt or unsupported; `message`
    /// is the parser's description.
    #[error("{fs} filesystem: {context}: {message}")]
    Filesystem {
        /// The filesystem kind.
        fs: FsKind,
        /// What was being done (often a path).
        context: String,
        /// The parser's message.
        message: String,
    },
    /// The path does not exist in the guest filesystem.
    #[error("{path:?} does not exist")]
    NotFound {
        /// The guest path.
        path: String,
    },
    /// A directory was expected.
    #[error("{path:?} is not a directory")]
    NotADirectory {
        /// The guest path.
        path: String,
    },
    /// A regular file was expected.
    #[error("{path:?} is not a regular file")]
    NotAFile {
        /// The guest path.
        path: String,
    },
    /// The path goes through (or ends at) a symbolic link or reparse point;
    /// links are never followed.
    #[error("{path:?} is a symbolic link (or reparse point); links are never followed")]
    Symlink {
        /// The guest path of the link.
        path: String,
    },
    /// A safety limit was hit (hostile or unusually large filesystem).
    #[error("{what}: more than {limit} (limit reached; the image may be corrupt)")]
    LimitExceeded {
        /// What was counted.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A background reader thread stopped, panicked or timed out.
    #[error("{fs} reader: {reason}")]
    Worker {
        /// The filesystem kind.
        fs: FsKind,
        /// What happened.
        reason: String,
    },
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
