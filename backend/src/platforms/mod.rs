//! Platform connectors: how Sendense sees VMs and reads and writes their
//! disks. One module per platform behind the [`Platform`] trait.
//!
//! * [`kvm`]: KVM/QEMU hosts kept as a host directory.
//! * [`tools`]: running `qemu-img` and friends with errors naming packages.

pub mod error;
pub mod kvm;
pub mod tools;

pub use error::{PlatformError, Result};
