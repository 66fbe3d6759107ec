//! Platform connectors and the plumbing they share.
//!
//! * [`nbd`]: a blocking NBD client and a `qemu-nbd` process wrapper, how the
//!   KVM/QEMU connector reads disks, allocation and dirty bitmaps.

pub mod nbd;
