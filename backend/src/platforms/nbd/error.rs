//! [`NbdError`]: everything the NBD client and the `qemu-nbd` wrapper can
//! report. Messages name the socket or the disk file and say what to do.
//!
//! Callers doing changed-block tracking need to tell "the bitmap is not
//! there" (fall back to a full read) apart from real failures:
//! [`NbdError::is_bitmap_unavailable`] answers that.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    // ---- connection and protocol ----
    #[error("cannot connect to the NBD server at {socket}: {source}")]
    Connect { socket: PathBuf, source: io::Error },

    #[error("NBD connection to {socket} failed while {during}: {source}")]
    Io {
        socket: PathBuf,
        during: String,
        source: io::Error,
    },

    #[error("the NBD server at {socket} broke the protocol: {detail}")]
    Protocol { socket: PathBuf, detail: String },

    #[error("the NBD connection to {socket} is unusable after an earlier error; reconnect")]
    Poisoned { socket: PathBuf },

    #[error("the NBD server at {socket} has no export named '{export}'{}", server_says(.message))]
    ExportNotFound {
        socket: PathBuf,
        export: String,
        message: String,
    },

    #[error("the NBD server at {socket} refused {option} for export '{export}': {reason}{}", server_says(.message))]
    OptionRefused {
        socket: PathBuf,
        export: String,
        option: &'static str,
        reason: String,
        message: String,
    },

    #[error("the NBD server at {socket} does not support {what}")]
    Unsupported { socket: PathBuf, what: String },

    /// The meta context was not negotiated: the server does not offer it (for
    /// `qemu:dirty-bitmap:NAME`, the bitmap is not exported), or it was not
    /// asked for when connecting.
    #[error("meta context '{context}' is not available on export '{export}' at {socket}{}", context_hint(.context))]
    ContextUnavailable {
        socket: PathBuf,
        export: String,
        context: String,
    },

    // ---- transmission ----
    #[error("export '{export}' at {socket} is read-only: cannot {op}")]
    ReadOnly {
        socket: PathBuf,
        export: String,
        op: &'static str,
    },

    #[error("{op} of {len} bytes at offset {offset} is outside export '{export}' ({size} bytes) at {socket}")]
    OutOfRange {
        socket: PathBuf,
        export: String,
        op: &'static str,
        offset: u64,
        len: u64,
        size: u64,
    },

    /// The server carried out the request and answered with an error.
    #[error("the NBD server at {socket} failed {op} at offset {offset}: {}{}", crate::platforms::nbd::proto::errno_name(*.errno), server_says(.message))]
    Command {
        socket: PathBuf,
        op: &'static str,
        offset: u64,
        errno: u32,
        message: String,
    },

    // ---- qemu-nbd ----
    #[error("qemu-nbd was not found on PATH (looked for '{program}'); install the Debian package qemu-utils")]
    QemuNbdMissing { program: String },

    #[error("cannot serve disk {disk}: {reason}")]
    InvalidRequest { disk: PathBuf, reason: String },

    #[error("disk {disk} does not exist")]
    DiskNotFound { disk: PathBuf },

    #[error("disk {disk} has no dirty bitmap named '{bitmap}'")]
    BitmapNotFound { disk: PathBuf, bitmap: String },

    #[error("dirty bitmap '{bitmap}' in disk {disk} is inconsistent (the image was not closed cleanly, or a running VM has it open) and cannot be used; a full read is needed")]
    BitmapInconsistent { disk: PathBuf, bitmap: String },

    #[error("disk {disk} has no internal snapshot named '{snapshot}'")]
    SnapshotNotFound { disk: PathBuf, snapshot: String },

    #[error("disk {disk} is in use by another process (a running VM?) that holds its write lock; export it read-only with force-share, or stop that process")]
    DiskLocked { disk: PathBuf },

    #[error("cannot start qemu-nbd for disk {disk}: {source}")]
    Spawn { disk: PathBuf, source: io::Error },

    #[error("qemu-nbd could not serve disk {disk}: {stderr}")]
    QemuNbdFailed { disk: PathBuf, stderr: String },

    #[error("qemu-nbd serving disk {disk} has exited ({status}){}", stderr_tail(.stderr))]
    QemuNbdExited {
        disk: PathBuf,
        status: String,
        stderr: String,
    },

    #[error("qemu-nbd serving disk {disk} was not ready after {waited:?}{}", stderr_tail(.stderr))]
    QemuNbdTimeout {
        disk: PathBuf,
        waited: Duration,
        stderr: String,
    },
}

impl NbdError {
    /// True when the error means a dirty bitmap cannot be used (missing,
    /// inconsistent, or its meta context is not offered): the caller should
    /// fall back to a full read instead of failing the job.
    pub fn is_bitmap_unavailable(&self) -> bool {
        match self {
            NbdError::BitmapNotFound { .. } | NbdError::BitmapInconsistent { .. } => true,
            NbdError::ContextUnavailable { context, .. } => context.starts_with(super::BITMAP_CONTEXT_PREFIX),
            _ => false,
        }
    }
}

fn server_says(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" (server says: {message})")
    }
}

fn stderr_tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

fn context_hint(context: &str) -> String {
    match context.strip_prefix(super::BITMAP_CONTEXT_PREFIX) {
        Some(bitmap) => format!(
            " (dirty bitmap '{bitmap}' is not exported: it does not exist on the disk, or qemu-nbd was not started with -B {bitmap}, or it was not requested when connecting)"
        ),
        None => " (the server does not offer it, or it was not requested when connecting)".into(),
    }
}
