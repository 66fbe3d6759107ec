//! Reading VM disks over NBD: a blocking NBD client written against the
//! protocol document, and [`QemuNbd`], which serves one disk image with
//! `qemu-nbd` on a unix socket in a private directory.
//!
//! * [`client`]: [`NbdClient`], the transmission phase (read, write, flush,
//!   block status, disconnect).
//! * [`handshake`]: fixed newstyle negotiation, structured replies, meta
//!   contexts, `NBD_OPT_GO`.
//! * [`conn`], [`proto`]: the socket with error mapping; wire constants.
//! * [`ranges`]: [`allocated_ranges`] (`base:allocation`) and
//!   [`dirty_ranges`] (`qemu:dirty-bitmap:NAME`).
//! * [`qemu_nbd`]: the `qemu-nbd` child process.
//! * [`server`]: [`server::NbdServer`], a read-only NBD server on a unix
//!   socket (restore points served to a hypervisor).
//! * [`source`]: [`NbdSource`], an NBD export as a backup's block source.
//! * [`error`]: the error type, [`NbdError`].
//!
//! Typical changed-block read:
//!
//! ```no_run
//! # use sendense::platforms::nbd::*;
//! # fn f() -> Result<(), NbdError> {
//! let server = QemuNbd::start("disk.qcow2".as_ref(), &QemuNbdOptions::qcow2().read_only().bitmap("cbt1"))?;
//! let mut nbd = server.connect(&[BASE_ALLOCATION, &bitmap_context("cbt1")])?;
//! for (offset, len) in dirty_ranges(&mut nbd, "cbt1")? {
//!     let mut buf = vec![0; len as usize];
//!     nbd.read_at(&mut buf, offset)?;
//! }
//! nbd.disconnect()?;
//! server.close()?;
//! # Ok(()) }
//! ```
//!
//! Everything here blocks: async callers use `spawn_blocking`.

pub mod client;
pub mod conn;
pub mod error;
pub mod handshake;
pub mod proto;
pub mod qemu_nbd;
pub mod ranges;
pub mod server;
pub mod source;

pub use client::NbdClient;
pub use error::NbdError;
pub use qemu_nbd::{ImageFormat, QemuNbd, QemuNbdOptions};
pub use ranges::{allocated_ranges, dirty_ranges};
pub use source::NbdSource;

/// The standard allocation meta context: flag bit 0 = hole, bit 1 = reads as zeros.
pub const BASE_ALLOCATION: &str = "base:allocation";
/// `base:allocation` flag: the extent is not allocated.
pub const STATE_HOLE: u32 = 1 << 0;
/// `base:allocation` flag: the extent reads as zeros.
pub const STATE_ZERO: u32 = 1 << 1;
/// Prefix of qemu's dirty-bitmap meta contexts; flag bit 0 = dirty.
pub const BITMAP_CONTEXT_PREFIX: &str = "qemu:dirty-bitmap:";
/// `qemu:dirty-bitmap:NAME` flag: the extent changed since the bitmap started.
pub const STATE_DIRTY: u32 = 1 << 0;

/// The meta context name of dirty bitmap `bitmap`.
pub fn bitmap_context(bitmap: &str) -> String {
    format!("{BITMAP_CONTEXT_PREFIX}{bitmap}")
}

/// A run of bytes with the same block-status flags in one meta context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    pub flags: u32,
}
